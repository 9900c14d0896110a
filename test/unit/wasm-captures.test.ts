/**
 * wasmtime's stdout/stderr captures (core/wasm/wasmtime/captures.ts) on real memfds: what the writer's own
 * descriptor wrote comes back exactly (trailing NUL bytes included: the size of the sealed file says nothing),
 * writes past the cap fail, and nothing stays open. The writer here opens the path the way wasmtime's
 * `wasi_config_set_stdout_file` does (File::create: write-only, create, truncate).
 */
import assert from 'node:assert/strict';
import { closeSync, openSync, readdirSync, readlinkSync, writeSync } from 'node:fs';
import { test } from 'node:test';
import { FileCapture, loadLibc } from '../../core/wasm/wasmtime/captures.ts';

const NAME = `tenement-test-captures-${process.pid}`;
const openMemfds = (): number =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(`/memfd:${NAME}`);
    } catch {
      return false;
    }
  }).length;

test('a file capture returns exactly what the writer wrote, refuses writes past its cap, and leaves nothing open', { skip: process.platform !== 'linux' && 'memfds are Linux only' }, () => {
  const libc = loadLibc();
  const capture = FileCapture.create(libc, NAME, 8192)!;
  assert.ok(capture, 'memfd_create failed');
  let theirs = -1;
  assert.equal(capture.attach((path) => ((theirs = openSync(path, 'w')), true)), true);
  try {
    writeSync(theirs, Buffer.from('Status: 200\r\n\r\nab\0\0'));
    assert.deepEqual(capture.take(), Buffer.from('Status: 200\r\n\r\nab\0\0'));
    // Up to the cap and one page, then the sealed size refuses more.
    writeSync(theirs, Buffer.alloc(8192 + 4096 - 19, 1));
    assert.throws(() => writeSync(theirs, Buffer.from('x')), /EPERM/);
    assert.equal(capture.take().length, 8192 + 4096);
  } finally {
    closeSync(theirs);
    capture.close();
  }
  assert.equal(openMemfds(), 0);
});

test('a writer whose descriptor cannot be found, or that fails to open, leaves the caller to its fallback', { skip: process.platform !== 'linux' && 'memfds are Linux only' }, () => {
  const libc = loadLibc();
  const failed = FileCapture.create(libc, NAME, 4096)!;
  assert.equal(failed.attach(() => false), false);
  failed.close();
  // Opened by the writer, then closed before it could be found (as if another thread's numbers were in the way).
  const lost = FileCapture.create(libc, NAME, 4096)!;
  assert.equal(lost.attach((path) => (closeSync(openSync(path, 'w')), true)), false);
  lost.close();
  assert.equal(openMemfds(), 0);
});
