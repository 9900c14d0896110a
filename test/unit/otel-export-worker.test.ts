// plugins/otel/export-worker.ts: batches sent from the export thread reach a real OTLP/HTTP receiver on loopback
// intact (the body's memory goes to the thread and back, and is written into again), in both encodings; a
// collector that is down or never answers fails the export without holding anything; a thread that dies fails
// what waited on it, and later batches go from the main thread.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { SpanKind, TraceFlags } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { EncodedBatch } from '../../plugins/otel/batch.ts';
import { Bytes } from '../../plugins/otel/bytes.ts';
import type { SpanEncoding } from '../../plugins/otel/encoding.ts';
import { workerExporter } from '../../plugins/otel/export-worker.ts';
import { jsonEncoding } from '../../plugins/otel/otlp-json.ts';
import { protobufEncoding } from '../../plugins/otel/otlp-proto.ts';
import { SpanRecord } from '../../plugins/otel/records.ts';
import { startOtlpReceiver } from '../otlp-receiver.ts';
import { resource, scope, sink, TRACE } from '../otel-spans.ts';

/** A batch of `count` request records named `${prefix}${i}`, written in `encoding`. */
function batch(encoding: SpanEncoding, prefix: string, count: number): EncodedBatch {
  const body = new Bytes(64);
  for (let i = 0; i < count; i++) {
    const span = new SpanRecord(sink, `${prefix}${i}`, SpanKind.SERVER, { traceId: TRACE, spanId: (i + 1).toString(16).padStart(16, '0'), traceFlags: TraceFlags.SAMPLED }, undefined, 1, { 'url.path': `/${prefix}/${i}` });
    span.end = 2;
    encoding.span(body, span, i);
  }
  return { resource, scope, spans: count, body };
}

const send = (exporter: ReturnType<typeof workerExporter>, b: EncodedBatch): Promise<ExportResult> => new Promise((resolve) => exporter.export(b, resolve));

for (const encoding of [protobufEncoding, jsonEncoding]) {
  test(`batches sent from the export thread arrive whole and in order (${encoding.contentType}), the body's memory reused`, async () => {
    const receiver = await startOtlpReceiver();
    const exporter = workerExporter({ url: `${receiver.url}/v1/traces`, headers: { 'x-test': 'yes' }, timeoutMillis: 5_000, encoding });
    try {
      assert.notEqual(exporter.thread, null, 'the export thread started');
      // Sizes that grow and shrink: a reused buffer holding a longer earlier body must not leak its tail.
      const sizes = [300, 5, 2_000, 1, 40];
      for (const [n, size] of sizes.entries()) {
        const result = await send(exporter, batch(encoding, `b${n}-`, size));
        assert.equal(result.code, ExportResultCode.SUCCESS, `batch ${n}`);
      }
      assert.equal(receiver.rejected, 0);
      assert.equal(receiver.posts, sizes.length);
      let at = 0;
      for (const [n, size] of sizes.entries()) {
        const spans = receiver.spans.slice(at, at + size);
        at += size;
        assert.deepEqual(spans.map((s) => s.name), Array.from({ length: size }, (_, i) => `b${n}-${i}`), `batch ${n}`);
        assert.deepEqual(spans.map((s) => s.attributes['url.path']), Array.from({ length: size }, (_, i) => `/b${n}-/${i}`));
        assert.equal(spans[0]!.resource['service.name'], 'tenement');
      }
      assert.equal(receiver.spans.length, at, 'nothing more than was sent');
      assert.equal(exporter.thread !== null, true, 'still sending from its thread');
    } finally {
      await exporter.shutdown();
      await receiver.close();
    }
    assert.equal(exporter.thread, null, 'the thread ended at shutdown');
  });
}

test('a collector that is down fails the export; one that never answers fails it at the timeout; nothing waits after', async () => {
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const down = workerExporter({ url: `http://127.0.0.1:${port}/v1/traces`, headers: {}, timeoutMillis: 2_000, encoding: protobufEncoding });
  const hanging = await startOtlpReceiver({ answer: 'never' });
  const slow = workerExporter({ url: `${hanging.url}/v1/traces`, headers: {}, timeoutMillis: 500, encoding: protobufEncoding });
  try {
    const started = performance.now();
    assert.equal((await send(down, batch(protobufEncoding, 'x', 10))).code, ExportResultCode.FAILED);
    assert.equal((await send(slow, batch(protobufEncoding, 'y', 10))).code, ExportResultCode.FAILED);
    assert.ok(performance.now() - started < 5_000, 'failed within the exporters\' timeouts');
    assert.equal(hanging.count, 10, 'the hanging collector did get the body');
  } finally {
    await down.shutdown();
    await slow.shutdown();
    await hanging.close();
  }
});

test('the export thread dying fails the export in flight; later batches go from the main thread and arrive', async () => {
  const hanging = await startOtlpReceiver({ answer: 'never' });
  const receiver = await startOtlpReceiver();
  const stuck = workerExporter({ url: `${hanging.url}/v1/traces`, headers: {}, timeoutMillis: 10_000, encoding: protobufEncoding });
  const exporter = workerExporter({ url: `${receiver.url}/v1/traces`, headers: {}, timeoutMillis: 5_000, encoding: protobufEncoding });
  try {
    const inFlight = send(stuck, batch(protobufEncoding, 'lost', 3));
    while (hanging.count < 3) await new Promise((resolve) => setTimeout(resolve, 10));
    await stuck.thread!.terminate();
    const result = await inFlight;
    assert.equal(result.code, ExportResultCode.FAILED, 'the batch that waited on the dead thread is failed, not left waiting');
    assert.equal(stuck.thread, null);

    await exporter.thread!.terminate();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(exporter.thread, null);
    assert.equal((await send(exporter, batch(protobufEncoding, 'after', 4))).code, ExportResultCode.SUCCESS);
    assert.deepEqual(receiver.spans.map((s) => s.name), ['after0', 'after1', 'after2', 'after3'], 'sent from the main thread instead');
  } finally {
    await stuck.shutdown();
    await exporter.shutdown();
    await hanging.close();
    await receiver.close();
  }
});
