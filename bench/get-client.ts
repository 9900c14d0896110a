/**
 * A client in a process of its own that times single GETs on fresh connections, for figures about what a client
 * sees (bench/wasm-cold.ts). A client in the bench's own process would share the server's event loop: whatever
 * the server does after it has written an answer (the work it defers with setImmediate, a state row written,
 * the next store made ahead) would delay the client reading that answer, and count as latency no real client
 * ever sees. This one only waits for the wire. It is plain JavaScript run by `node -e`, so no loader is started.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { LOOPBACK } from './lib.ts';

const CLIENT = `
const http = require('node:http');
const lines = require('node:readline').createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const { port, host, path } = JSON.parse(line);
  const started = performance.now();
  const req = http.request({ host: ${JSON.stringify(LOOPBACK)}, port, path, method: 'GET', headers: { host }, agent: false, timeout: 10000 }, (res) => {
    const chunks = [];
    res.on('data', (chunk) => chunks.push(chunk));
    res.on('end', () => {
      const ms = performance.now() - started;
      process.stdout.write(JSON.stringify({ status: res.statusCode, ms, body: Buffer.concat(chunks).toString('utf8').slice(0, 200) }) + '\\n');
    });
  });
  req.once('timeout', () => req.destroy(new Error('timed out after 10 s')));
  req.once('error', (error) => process.stdout.write(JSON.stringify({ status: 0, ms: 0, body: error.message }) + '\\n'));
  req.end();
});
`;

export interface TimedReply {
  status: number;
  /** From the request's start to the answer's last byte, timed in the client's process. */
  ms: number;
  body: string;
}

/** One client process; its GETs run one at a time, in the order asked. */
export class GetClient {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiting: Array<(reply: TimedReply) => void> = [];

  constructor() {
    this.child = spawn(process.execPath, ['-e', CLIENT], { stdio: ['pipe', 'pipe', 'pipe'] });
    const replies = createInterface({ input: this.child.stdout });
    replies.on('line', (line) => this.waiting.shift()?.(JSON.parse(line) as TimedReply));
    this.child.once('exit', (code) => {
      for (const resolve of this.waiting.splice(0)) resolve({ status: 0, ms: 0, body: `the client process exited (${code})` });
    });
  }

  get(port: number, host: string, urlPath = '/'): Promise<TimedReply> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.child.stdin.write(`${JSON.stringify({ port, host, path: urlPath })}\n`);
    });
  }

  close(): void {
    this.child.stdin.end();
    this.child.kill();
  }
}
