"""The notes app with Python's standard library only: one copy per tenant, notes kept in its DATA_DIR."""
import json
import os
import signal
import sys
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STORE = os.path.join(os.environ["DATA_DIR"], "notes.json")
TENANT = os.environ.get("TENEMENT_INSTANCE", "local")


def load():
    try:
        with open(STORE, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def save(notes):
    tmp = STORE + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(notes, f)
    os.replace(tmp, STORE)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            return self.send(200, {"ok": True})
        if self.path == "/notes":
            return self.send(200, {"tenant": TENANT, "notes": load()})
        if self.path == "/":
            return self.send(200, {"tenant": TENANT, "hint": "GET /notes, POST /notes with a text body"})
        self.send(404, {"error": "not found"})

    def do_POST(self):
        if self.path != "/notes":
            return self.send(404, {"error": "not found"})
        length = int(self.headers.get("Content-Length") or 0)
        text = self.rfile.read(length).decode().strip()
        if not text:
            return self.send(400, {"error": "empty note"})
        notes = load()
        note = {"id": len(notes) + 1, "text": text, "at": datetime.now(timezone.utc).isoformat()}
        notes.append(note)
        save(notes)
        self.send(201, note)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "3000"))), Handler)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"notes for {TENANT} listening on {server.server_address[1]}", flush=True)
server.serve_forever()
