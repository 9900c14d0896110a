// A TypeScript HTTP handler that runs as a WebAssembly component: `ten build hello.ts` (or `npm run build`)
// makes hello.wasm, and `ten serve` answers {tenant}.hello.localhost with it. See docs/wasm.md.
import { header, queryParams, type Request, type Response } from '../../sdk/wasm.ts';

export function handle(req: Request): Response {
  if (req.path === '/boom') throw new Error('boom requested'); // a guest error: a 500 and a log line
  const name = queryParams(req).get('name') ?? 'world';
  console.log(`${req.method} ${req.path} for ${name}`);
  return {
    status: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      hello: name,
      method: req.method,
      path: req.path,
      bytes: req.body.length,
      agent: header(req, 'user-agent') ?? null,
      at: new Date().toISOString(),
    }),
  };
}
