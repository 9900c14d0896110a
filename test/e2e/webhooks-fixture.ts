// What every alert webhooks test file needs: the signing secret, real HTTP receivers on loopback (a well-behaved
// one, or hostile ones scripted to hang, flood or redirect), the receiver's check of a signature, and an app that
// crashes on demand. Importing this registers the `after` that closes every receiver a file opened.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after } from 'node:test';

export const SECRET = 'whsec_test_0123456789abcdef';

export interface Received {
  headers: http.IncomingHttpHeaders;
  raw: string;
  body: Record<string, unknown>;
}

export type Behaviour = (req: IncomingMessage, res: ServerResponse) => void;

export interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** Answers for the next requests, in order; then 200. */
  script: Behaviour[];
  close(): Promise<void>;
}

// Receivers, and `ten serve` children (webhooks-serve.ts), closed in reverse order once the file's tests are done.
export const closers: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

/** A webhook receiver on loopback; every request is recorded whole before the scripted answer. */
export async function receiver(port = 0, host = '127.0.0.1'): Promise<Receiver> {
  const received: Received[] = [];
  const script: Behaviour[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        // recorded as is
      }
      received.push({ headers: req.headers, raw, body });
      const behaviour = script.shift();
      if (behaviour) behaviour(req, res);
      else res.end('ok');
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const bound = (server.address() as AddressInfo).port;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  closers.push(close);
  return { url: `http://${host}:${bound}/hook`, port: bound, received, script, close };
}

/** The receiver's side, as docs/observability.md shows it: HMAC-SHA256 over `${t}.${raw body}`, t within 5 minutes. */
export function verifySignature(secret: string, raw: string, header: string | undefined): boolean {
  if (!header) return false;
  const fields = Object.fromEntries(header.split(',').map((kv) => kv.split('=', 2) as [string, string]));
  const t = Number(fields.t);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > 300) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${raw}`).digest('hex');
  const given = String(fields.v1 ?? '');
  return given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}

/** An app that exits at once unless the file `ok` exists next to it: fails past its restart limit on demand. */
export function crashApp(dir: string): string {
  const file = path.join(dir, 'crash-app.mjs');
  writeFileSync(
    file,
    `import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
if (!existsSync(${JSON.stringify(path.join(dir, 'ok'))})) { console.error('no ok file: exiting'); process.exit(3); }
createServer((req, res) => res.end('up')).listen(Number(process.env.PORT), process.env.HOST);
`,
  );
  return file;
}
