// Tracing end to end, the spans that are not a proxied request's: a wasm invocation under its request, the spawn of
// a wake by an upgrade, a crash's restart, and periodic health checks; exported over OTLP/HTTP to a real receiver.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import otel from '../../plugins/otel/index.ts';
import wasmRuntime from '../../runtimes/wasm/index.ts';
import { request, servePlugins, waitFor } from '../helpers.ts';
import { startOtlpReceiver } from '../otlp-receiver.ts';
import { rawExchange } from '../raw-http.ts';
import { buildCGuests, wasmFunction } from '../wasm-guests.ts';
import { APP, CLIENT, HOST, SERVER, byName, one, tracedKernel } from './otel-fixture.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-otel-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('tracing (plugins/otel)', { timeout: 120_000 }, () => {
  test('a wasm invocation is a span of its own under the request', async (t) => {
    const { handler, skip } = buildCGuests(work);
    if (skip) return t.skip(skip);
    const receiver = await startOtlpReceiver();
    t.after(() => receiver.close());
    const kernel = await createTestKernel({
      plugins: [...servePlugins, wasmRuntime, otel],
      config: { settings: { otel: { endpoint: receiver.url } }, services: { hello: wasmFunction(handler) } },
    });
    try {
      const answer = await request(kernel, 'alice.hello.localhost', '/?x=1');
      assert.equal(answer.status, 200, answer.body);
    } finally {
      await kernel.close();
    }
    const server = one(receiver.spans, 'request (SERVER)', (s) => s.kind === SERVER);
    const invoke = one(receiver.spans, 'wasm invocation', (s) => s.name === 'tenement.wasm.invoke');
    assert.equal(invoke.parentSpanId, server.spanId);
    assert.equal(invoke.traceId, server.traceId);
    assert.equal(invoke.attributes['tenement.tier'], 'wasm');
    assert.equal(invoke.attributes['tenement.instance'], 'alice');
    assert.equal(invoke.attributes['http.response.status_code'], 200);
    assert.equal(receiver.spans.filter((s) => s.kind === CLIENT).length, 0, 'no connection, so no CLIENT span');
  });

  test('an upgrade that wakes an instance is not traced as a request: its spawn span is a root, not under a span never sent', async (t) => {
    const receiver = await startOtlpReceiver();
    t.after(() => receiver.close());
    const kernel = await tracedKernel(receiver);
    try {
      const instance = await kernel.spawnInstance('app', 'alice');
      await kernel.hibernate(instance);
      // The app does not speak WebSocket: it closes the upgraded connection, after the wake that matters here.
      await rawExchange(
        kernel,
        [`GET /ws HTTP/1.1\r\nHost: ${HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`],
        () => false,
        { timeoutMs: 20_000, resetIsClose: true },
      );
      await waitFor(() => instance.state === 'running', 'the upgrade to wake the instance', 20_000);
    } finally {
      await kernel.close();
    }
    const spawns = byName(receiver.spans, 'tenement.spawn');
    assert.equal(spawns.length, 2, 'the first start and the wake');
    for (const spawn of spawns) assert.equal(spawn.parentSpanId, '', 'nothing exported waits above it');
    assert.equal(byName(receiver.spans, 'tenement.wake').length, 0);
    assert.equal(receiver.spans.filter((s) => s.kind === SERVER && s.name === 'GET').length, 0);
  });
  test('a crash is a restart span with its spawn under it; periodic health checks are spans of their own', async (t) => {
    const receiver = await startOtlpReceiver();
    t.after(() => receiver.close());
    const kernel = await createTestKernel({
      plugins: [...servePlugins, otel],
      config: {
        settings: { otel: { endpoint: receiver.url }, healthInterval: '100ms' },
        services: { app: { command: process.execPath, args: [APP], health: '/health', idleTimeout: false, backoff: { base: '50ms', max: '100ms' } } },
      },
    });
    try {
      const instance = await kernel.spawnInstance('app', 'alice');
      const pid = instance.handle!.pid!;
      process.kill(pid, 'SIGKILL');
      await waitFor(() => instance.state === 'running' && instance.handle?.pid !== pid, 'the instance to be restarted', 20_000);
      // Periodic checks every 100 ms; exported within the batch delay (1 s), before the kernel closes.
      await waitFor(() => byName(receiver.spans, 'tenement.health').length >= 2, 'health check spans to be exported', 20_000);
    } finally {
      await kernel.close();
    }
    const restart = one(receiver.spans, 'restart', (s) => s.name === 'tenement.restart');
    assert.equal(restart.parentSpanId, '');
    assert.equal(restart.attributes['tenement.instance'], 'alice');
    assert.equal(restart.attributes['tenement.from'], 'running');
    assert.match(String(restart.attributes['tenement.reason']), /SIGKILL|signal|exit/i);
    assert.equal(restart.status.code, 0, 'running again: the restart succeeded');
    const respawn = one(receiver.spans, 'spawn under the restart', (s) => s.name === 'tenement.spawn' && s.parentSpanId === restart.spanId);
    assert.equal(respawn.traceId, restart.traceId);
    const health = byName(receiver.spans, 'tenement.health');
    assert.ok(health.length >= 2, `periodic health checks were traced (${health.length})`);
    for (const span of health) {
      assert.equal(span.parentSpanId, '', 'a health check is a root span');
      assert.equal(span.attributes['tenement.health.kind'], 'http');
      assert.equal(span.attributes['url.path'], '/health');
      assert.equal(span.attributes['tenement.service'], 'app');
      assert.ok(span.endNs >= span.startNs, 'a health span does not end before it starts');
    }
  });
});
