// A notes app written for a single customer. Tenement runs one copy per tenant; each copy keeps its notes
// in its own DATA_DIR and never sees anyone else's.
import { createServer } from 'node:http';
import { readFile, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';

const store = join(process.env.DATA_DIR, 'notes.json');
const tenant = process.env.TENEMENT_INSTANCE ?? 'local';

async function load() {
  try {
    return JSON.parse(await readFile(store, 'utf8'));
  } catch {
    return [];
  }
}

async function save(notes) {
  // Write-then-rename, so a crash mid-write never leaves a half-written file.
  await writeFile(`${store}.tmp`, JSON.stringify(notes));
  await rename(`${store}.tmp`, store);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://local');
    if (url.pathname === '/health') return send(res, 200, { ok: true });
    if (url.pathname === '/notes' && req.method === 'GET') return send(res, 200, { tenant, notes: await load() });
    if (url.pathname === '/notes' && req.method === 'POST') {
      const text = (await readBody(req)).trim();
      if (!text) return send(res, 400, { error: 'empty note' });
      const notes = await load();
      const note = { id: notes.length + 1, text, at: new Date().toISOString() };
      notes.push(note);
      await save(notes);
      return send(res, 201, note);
    }
    if (url.pathname === '/') return send(res, 200, { tenant, hint: 'GET /notes, POST /notes with a text body' });
    send(res, 404, { error: 'not found' });
  } catch (error) {
    send(res, 500, { error: String(error) });
  }
});

server.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1', () => {
  console.log(`notes for ${tenant} listening on ${process.env.PORT}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
