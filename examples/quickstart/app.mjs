// The smallest tenant app: it serves one customer and keeps a visit counter in its own DATA_DIR.
import { createServer } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const counterFile = join(process.env.DATA_DIR, 'visits');
const tenant = process.env.TENEMENT_INSTANCE;

const server = createServer((req, res) => {
  if (req.url === '/health') return res.end('ok');
  let visits = 0;
  try {
    visits = Number(readFileSync(counterFile, 'utf8')) || 0;
  } catch {}
  writeFileSync(counterFile, String(++visits));
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.end(`Hello, ${tenant}! This is visit ${visits} to your own copy of the app (pid ${process.pid}).\n`);
});
server.listen(Number(process.env.PORT), process.env.HOST);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
