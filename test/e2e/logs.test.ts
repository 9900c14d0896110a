// What an instance prints is captured line by line, with timestamps and stream, in a bounded buffer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import type { LogLine } from '../../core/types.ts';
import { echoService, request, servePlugins, waitFor } from '../helpers.ts';

test('stdout and stderr lines are captured per instance, timestamped, and offered on the log hook', { timeout: 60_000 }, async (t) => {
  const kernel = await createTestKernel({
    plugins: servePlugins,
    config: { settings: { logBuffer: '4KB' }, services: { echo: echoService() } },
  });
  t.after(() => kernel.close());
  const seen: Array<[string, LogLine]> = [];
  kernel.hooks.log.tap('test', (instance, line) => {
    seen.push([instance.key, line]);
  });
  const alice = await kernel.spawnInstance('echo', 'alice');
  const bob = await kernel.spawnInstance('echo', 'bob');
  const before = Date.now();
  await request(kernel, 'alice.echo.localhost', '/log?line=hello-from-alice');
  await request(kernel, 'bob.echo.localhost', '/log?line=hello-from-bob');
  await waitFor(() => alice.logs.query({ search: 'hello-from-alice' }).length === 2, 'alice to log both lines');
  const [out, err] = alice.logs.query({ search: 'hello-from-alice' });
  assert.equal(out!.stream, 'stdout');
  assert.equal(out!.line, 'hello-from-alice');
  assert.equal(err!.stream, 'stderr');
  assert.equal(err!.line, 'err:hello-from-alice');
  assert.ok(out!.at >= before && out!.at <= Date.now());
  assert.equal(alice.logs.query({ search: 'hello-from-bob' }).length, 0, 'logs are per instance');
  await waitFor(() => bob.logs.query({ search: 'hello-from-bob' }).length === 2, 'bob to log');
  assert.ok(seen.some(([key, line]) => key === 'echo:alice' && line.line === 'hello-from-alice'));

  // The buffer is bounded: 200 more lines do not fit in 4KB (each is charged its heap cost), oldest go first.
  for (let i = 0; i < 100; i++) await request(kernel, 'alice.echo.localhost', `/log?line=filler-${i}-${'x'.repeat(24)}`);
  await waitFor(() => alice.logs.query({ search: 'filler-99-' }).length === 2, 'the last filler line');
  assert.equal(alice.logs.query({ search: 'hello-from-alice' }).length, 0, 'the oldest lines were dropped');
  assert.ok(alice.logs.size < 200);
});

test('a hibernated instance keeps only a short tail of its output in memory', { timeout: 60_000 }, async (t) => {
  const kernel = await createTestKernel({ plugins: servePlugins, config: { services: { echo: echoService({ idleTimeout: false }) } } });
  t.after(() => kernel.close());
  const alice = await kernel.spawnInstance('echo', 'alice');
  for (let i = 0; i < 150; i++) await request(kernel, 'alice.echo.localhost', `/log?line=${i}-${'y'.repeat(100)}`);
  await waitFor(() => alice.logs.query({ search: '149-' }).length === 2, 'the last line');
  assert.ok(alice.logs.bytesUsed > 40_000, `a running instance keeps its full buffer (${alice.logs.bytesUsed} bytes)`);
  await kernel.hibernate(alice);
  assert.equal(alice.state, 'hibernated');
  assert.ok(alice.logs.bytesUsed <= 16_384, `kept ${alice.logs.bytesUsed} bytes`);
  assert.equal(alice.logs.query({ limit: 1 })[0]!.line, `err:149-${'y'.repeat(100)}`);
});
