// A per-tenant counter kept in the tenant's DATA_DIR through the `tenant-data` import: alice's count is not
// bob's, and both survive restarts and hibernation. `ten build counter.ts` makes counter.wasm. See docs/wasm.md.
import { data, type Request, type Response } from '../../sdk/wasm.ts';

const FILE = 'count.json';

function current(): number {
  const text = data.readText(FILE);
  return text === null ? 0 : (JSON.parse(text) as { count: number }).count;
}

export function handle(req: Request): Response {
  if (req.method === 'GET' && req.path === '/') return json(200, { count: current() });
  if (req.method === 'POST' && req.path === '/increment') {
    const count = current() + 1;
    data.writeText(FILE, JSON.stringify({ count }));
    return json(200, { count });
  }
  if (req.method === 'DELETE' && req.path === '/') return json(200, { removed: data.remove(FILE) });
  if (req.method === 'GET' && req.path === '/files') return json(200, { files: data.names() });
  // Reads any name the client asks for: the host refuses anything but a flat name in this tenant's own dir.
  if (req.method === 'GET' && req.path.startsWith('/file/')) {
    const name = decodeURIComponent(req.path.slice('/file/'.length));
    try {
      const text = data.readText(name);
      return text === null ? json(404, { error: 'no such file' }) : { status: 200, body: text };
    } catch (error) {
      return json(400, { error: (error as Error).message });
    }
  }
  return json(404, { error: `no route for ${req.method} ${req.path}` });
}

function json(status: number, value: unknown): Response {
  return { status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) };
}
