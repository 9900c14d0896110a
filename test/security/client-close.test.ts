// A client that goes away ends its exchange at once, on both paths: the upstream request is aborted and the
// instance's in-flight count drops (so it can hibernate). A true half-close (the client shut its write side and
// still reads) keeps its answer. And a kept-alive connection that sees many wakes keeps no listener per wake.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import type { TestKernel } from '../../core/test-kernel.ts';
import { getJson, waitFor } from '../helpers.ts';
import { HOST, countingKernel } from './smuggling-kernel.ts';

const paths = [
  { name: 'fast path', fast: true },
  { name: 'node:http path', fast: false },
];

function connect(kernel: TestKernel): Promise<net.Socket> {
  const url = new URL(kernel.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname, () => resolve(socket));
    socket.on('error', reject);
  });
}

const aborted = async (kernel: TestKernel): Promise<number> => (await getJson<{ aborted: number }>(kernel, HOST, '/__aborted')).aborted;

test('a client that closes while its request waits (socket.destroy, Ctrl-C) aborts the upstream request', { timeout: 90_000 }, async (t) => {
  for (const { name, fast } of paths) {
    const kernel = await countingKernel(t, fast);
    const instance = kernel.instances.get('count', 'a')!;
    const socket = await connect(kernel);
    socket.write(`GET /__slow HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    await waitFor(() => instance.inFlight === 1, `${name}: the request to be in flight`);
    socket.destroy();
    await waitFor(() => instance.inFlight === 0, `${name}: the in-flight count to drop after the client closed`, 10_000);
    await waitFor(async () => (await aborted(kernel)) === 1, `${name}: the upstream connection to be closed`, 10_000);
  }
});

test('a client that closes in the middle of its request body aborts the exchange', { timeout: 90_000 }, async (t) => {
  for (const { name, fast } of paths) {
    const kernel = await countingKernel(t, fast);
    const instance = kernel.instances.get('count', 'a')!;
    const socket = await connect(kernel);
    socket.write(`POST /__slow HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 100\r\n\r\nhalf`);
    await waitFor(() => instance.inFlight === 1, `${name}: the request to be in flight`);
    socket.end();
    await waitFor(() => instance.inFlight === 0, `${name}: the in-flight count to drop after FIN mid-body`, 10_000);
    socket.destroy();
    // The head and the FIN together, no body byte: abandoned before any upstream request is made.
    const early = await connect(kernel);
    early.on('error', () => undefined);
    early.end(`POST /never-sent HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 100\r\n\r\n`);
    await new Promise((resolve) => early.once('close', resolve));
    await getJson(kernel, HOST, '/after');
    assert.equal(instance.inFlight, 0, name);
    const stats = await getJson<{ paths: string[] }>(kernel, HOST, '/__stats');
    assert.ok(!stats.paths.includes('/never-sent'), `${name}: ${stats.paths.join(' ')}`);
  }
});

test('a true half-close (write side shut, still reading) gets its answer', { timeout: 90_000 }, async (t) => {
  for (const { name, fast } of paths) {
    const kernel = await countingKernel(t, fast);
    const socket = await connect(kernel);
    let text = '';
    const ended = new Promise<void>((resolve) => socket.on('end', resolve));
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    // Two pipelined requests, then the write side shut: both are answered, in order, then the connection closes.
    socket.end(`GET /half HTTP/1.1\r\nHost: ${HOST}\r\n\r\nGET /half-2 HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    await Promise.race([ended, new Promise((_, reject) => setTimeout(() => reject(new Error(`${name}: no answer: ${text}`)), 10_000))]);
    socket.destroy();
    assert.match(text, /HTTP\/1\.1 200 OK\r\n[\s\S]*"path":"\/half"[\s\S]*HTTP\/1\.1 200 OK\r\n[\s\S]*"path":"\/half-2"/, `${name}: ${text}`);
  }
});

test('20 wakes on one kept-alive connection leave no close listener behind', { timeout: 180_000 }, async (t) => {
  const warnings: Error[] = [];
  const onWarning = (warning: Error): void => {
    if (warning.name === 'MaxListenersExceededWarning') warnings.push(warning);
  };
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  for (const { name, fast } of paths) {
    const kernel = await countingKernel(t, fast);
    const instance = kernel.instances.get('count', 'a')!;
    const socket = await connect(kernel);
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    for (let i = 0; i < 20; i++) {
      await kernel.hibernate(instance, 'test');
      const before = text.length;
      socket.write(`GET /wake-${i} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      await waitFor(() => text.slice(before).includes(`"/wake-${i}"`), `${name}: wake ${i} answered`, 20_000);
    }
    socket.destroy();
    assert.deepEqual(warnings.map((w) => w.message), [], name);
  }
});
