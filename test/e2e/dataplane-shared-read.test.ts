// The fast path reads every connection into one shared buffer (core/dataplane/read-buffer.ts): a chunk is valid
// only until its read callback returns, so whatever outlives it must be a copy. Here the bytes that outlive their
// read the most (a request body queued behind an instance that does not read yet, a response queued behind a
// client that does not read yet, a pipelined request waiting for the one before it) travel while other
// connections keep reading into the same buffer: a byte kept by reference would come out as someone else's.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { FIXTURES, trackedKernel } from '../helpers.ts';

const APP = path.join(FIXTURES, 'slow-reader-app.mjs');
const HOST = 'a.slow.localhost';

interface Response {
  status: number;
  body: Buffer;
}

/** One connection: writes `bytes` (paused for `pauseMs` before reading anything), reads `count` Content-Length responses. */
function exchange(port: number, bytes: Buffer, count: number, pauseMs = 0): Promise<Response[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no ${count} responses within 30 s`));
    }, 30_000);
    let received = Buffer.alloc(0);
    const responses: Response[] = [];
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      for (;;) {
        const end = received.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = received.toString('latin1', 0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
        if (!Number.isFinite(length)) return fail(new Error(`no Content-Length in ${head}`));
        if (received.length < end + 4 + length) return;
        responses.push({ status: Number(head.slice(9, 12)), body: received.subarray(end + 4, end + 4 + length) });
        received = received.subarray(end + 4 + length);
        if (responses.length === count) {
          clearTimeout(timer);
          socket.destroy();
          return resolve(responses);
        }
      }
    });
    const fail = (error: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    socket.on('error', fail);
    socket.on('end', () => fail(new Error(`closed after ${responses.length} of ${count} responses`)));
    if (pauseMs > 0) {
      socket.pause();
      setTimeout(() => socket.resume(), pauseMs);
    }
    socket.write(bytes);
  });
}

const head = (method: string, target: string, extra = ''): string => `${method} ${target} HTTP/1.1\r\nHost: ${HOST}\r\n${extra}\r\n`;

function assertPattern(body: Buffer, bytes: number): void {
  assert.equal(body.length, bytes);
  for (let i = 0; i < body.length; i++) if (body[i] !== i % 251) assert.fail(`byte ${i} of ${bytes} is ${body[i]}, not ${i % 251}`);
}

test('bytes kept past a read are the bytes sent while other connections read into the same buffer', { timeout: 120_000 }, async (t) => {
  const { kernel } = await trackedKernel(t, { slow: { command: `node ${APP}`, health: '/health', idleTimeout: false } });
  await kernel.spawnInstance('slow', 'a');
  const port = Number(new URL(kernel.url).port);

  // Bodies larger than the loopback socket buffers hold: the proxy's writes to an instance that waits before
  // reading are left queued, with the next request pipelined behind each body in the same write.
  const uploads = [0, 1, 2].map(async (i) => {
    const body = randomBytes(6 * 1024 * 1024 + i);
    const request = Buffer.concat([
      Buffer.from(head('POST', '/digest?waitMs=200', `Content-Length: ${body.length}\r\n`), 'latin1'),
      body,
      Buffer.from(head('GET', `/big?bytes=${70_000 + i}`), 'latin1'),
    ]);
    const [digest, big] = await exchange(port, request, 2);
    assert.equal(digest!.status, 200);
    assert.deepEqual(JSON.parse(digest!.body.toString()), { bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') });
    assertPattern(big!.body, 70_000 + i);
  });
  // Responses larger than the socket buffers, to clients that do not read yet: the proxy's writes to them queue.
  const downloads = [0, 1, 2].map(async (i) => {
    const bytes = 5 * 1024 * 1024 + i;
    const [big] = await exchange(port, Buffer.from(head('GET', `/big?bytes=${bytes}`), 'latin1'), 1, 200);
    assertPattern(big!.body, bytes);
  });
  // Meanwhile small pipelined exchanges keep the shared buffer busy.
  let done = false;
  const noise = [0, 1].map(async (i) => {
    for (let round = 0; round < 200 && !done; round++) {
      const answers = await exchange(port, Buffer.from(head('GET', `/big?bytes=${300 + i}`).repeat(4), 'latin1'), 4);
      for (const answer of answers) assertPattern(answer.body, 300 + i);
    }
  });
  await Promise.all([...uploads, ...downloads]).finally(() => (done = true));
  await Promise.all(noise);
});
