// Tracing end to end, the export: an unreachable or hanging collector holds up neither requests nor shutdown, and
// /metrics counts the spans exported, failed and dropped when the queue fills.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import metrics from '../../plugins/metrics/index.ts';
import otel from '../../plugins/otel/index.ts';
import { echoService, request, servePlugins, waitFor } from '../helpers.ts';
import { startOtlpReceiver } from '../otlp-receiver.ts';
// For its side effect only: the environment's OTEL_* variables cleared, so tracing is on or off by the config alone.
import './otel-fixture.ts';

describe('tracing (plugins/otel)', { timeout: 120_000 }, () => {
  test('an unreachable or hanging collector holds up neither requests nor shutdown', async (t) => {
    const hanging = await startOtlpReceiver({ answer: 'never' });
    t.after(() => hanging.close());
    const closed = await startOtlpReceiver();
    const unreachable = closed.url;
    await closed.close();
    for (const endpoint of [unreachable, hanging.url]) {
      // The echo app (no tracing of its own): only Tenement's exports meet the bad collector.
      const kernel = await createTestKernel({
        plugins: [...servePlugins, otel],
        // Shutdown waits for the last export at most shutdownTimeout (5 s by default): what is proven is that it ends.
        config: { settings: { otel: { endpoint, shutdownTimeout: '500ms' } }, services: { echo: echoService({ idleTimeout: false }) } },
      });
      let closedIn = 0;
      try {
        await kernel.spawnInstance('echo', 'alice');
        // More spans than one export batch, so exports start (and fail, or hang) while requests go on.
        for (let i = 0; i < 300; i++) {
          const answer = await request(kernel, 'alice.echo.localhost', `/r${i}`, { timeoutMs: 10_000 });
          assert.equal(answer.status, 200, `request ${i} through a kernel exporting to ${endpoint === unreachable ? 'nowhere' : 'a hanging collector'}`);
        }
      } finally {
        const started = Date.now();
        await kernel.close();
        closedIn = Date.now() - started;
      }
      // The export on shutdown is bounded (shutdownTimeout), whatever the collector does; generous for a loaded machine.
      assert.ok(closedIn < 30_000, `shutdown took ${closedIn} ms`);
    }
    await waitFor(() => hanging.posts > 0, 'the hanging collector to have been posted to', 10_000);
  });

  test('/metrics counts spans exported, and spans dropped when a hanging collector lets the queue fill', async (t) => {
    const hanging = await startOtlpReceiver({ answer: 'never' });
    const receiver = await startOtlpReceiver();
    t.after(() => Promise.all([hanging.close(), receiver.close()]));
    const counter = (text: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    // A queue of 50 spans: the first export (up to 50) hangs, the next requests' spans fill the queue, the rest drop.
    process.env.OTEL_BSP_MAX_QUEUE_SIZE = '50';
    let kernel;
    try {
      kernel = await createTestKernel({
        plugins: [...servePlugins, metrics, otel],
        config: { settings: { otel: { endpoint: hanging.url, shutdownTimeout: '500ms' } }, services: { echo: echoService({ idleTimeout: false }) } },
      });
    } finally {
      delete process.env.OTEL_BSP_MAX_QUEUE_SIZE;
    }
    try {
      await kernel.spawnInstance('echo', 'alice');
      for (let i = 0; i < 100; i++) assert.equal((await request(kernel, 'alice.echo.localhost', `/r${i}`, { timeoutMs: 10_000 })).status, 200);
      const text = (await request(kernel, 'localhost', '/metrics')).body;
      // 200 request spans (and the spawn's): at most 100 waiting or in flight, the rest dropped, none exported.
      assert.ok(counter(text, 'tenement_otel_spans_dropped_total') >= 100, text.split('\n').filter((l) => l.includes('otel')).join('\n'));
      assert.equal(counter(text, 'tenement_otel_spans_exported_total'), 0);
    } finally {
      await kernel.close();
    }
    const healthy = await createTestKernel({
      plugins: [...servePlugins, metrics, otel],
      config: { settings: { otel: { endpoint: receiver.url } }, services: { echo: echoService({ idleTimeout: false }) } },
    });
    try {
      await healthy.spawnInstance('echo', 'alice');
      for (let i = 0; i < 10; i++) assert.equal((await request(healthy, 'alice.echo.localhost', `/r${i}`)).status, 200);
      await waitFor(() => receiver.spans.length >= 20, 'the request spans to be exported (1 s batch delay)', 20_000);
      const text = (await request(healthy, 'localhost', '/metrics')).body;
      assert.ok(counter(text, 'tenement_otel_spans_exported_total') >= 20);
      assert.equal(counter(text, 'tenement_otel_spans_dropped_total'), 0);
      assert.equal(counter(text, 'tenement_otel_spans_failed_total'), 0);
    } finally {
      await healthy.close();
    }
  });
});
