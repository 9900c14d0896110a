// plugins/otel/batch.ts: the bounded export queue. The exporter here is a recorder the test answers by hand
// (the queue is what is under test: the HTTP export itself runs against a real receiver in test/e2e/otel-*.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SpanKind, TraceFlags } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchExport, batchOptions, type BatchExporter, type EncodedBatch, type SpanCounters } from '../../plugins/otel/batch.ts';
import { Bytes } from '../../plugins/otel/bytes.ts';
import { jsonEncoding } from '../../plugins/otel/otlp-json.ts';
import { protobufEncoding } from '../../plugins/otel/otlp-proto.ts';
import { SpanRecord } from '../../plugins/otel/records.ts';
import { decodeOtlpProto } from '../otlp-proto.ts';
import { decodeOtlpJson } from '../otlp-receiver.ts';

const sink = { resource: resourceFromAttributes({}), scope: { name: 't' }, onEnd() {} };

function span(i: number, flags: number = TraceFlags.SAMPLED): SpanRecord {
  const s = new SpanRecord(sink, `s${i}`, SpanKind.SERVER, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: String(i + 1).padStart(16, '0'), traceFlags: flags }, undefined, 1, {});
  s.end = 2;
  return s;
}

/** Decodes each batch's request as the exporter writes it (names of its spans), and answers when told. */
class Recorder implements BatchExporter {
  batches: string[][] = [];
  answers: Array<(result: ExportResult) => void> = [];
  shutDown = false;
  constructor(readonly encoding = protobufEncoding) {}
  export(batch: EncodedBatch, done: (result: ExportResult) => void): void {
    const out = new Bytes(16);
    this.encoding.request(batch.resource, batch.scope, batch.body.view(), out);
    const spans = this.encoding === jsonEncoding ? decodeOtlpJson(out.view().toString('utf8')) : decodeOtlpProto(Buffer.from(out.view()));
    assert.equal(spans.length, batch.spans);
    this.batches.push(spans.map((s) => s.name));
    this.answers.push(done);
  }
  async shutdown(): Promise<void> {
    this.shutDown = true;
  }
  answer(code: ExportResultCode = ExportResultCode.SUCCESS): void {
    this.answers.shift()!({ code });
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('OTEL_BSP_* variables: positive integers taken, anything else ignored; a batch is never larger than the queue', () => {
  assert.deepEqual(batchOptions({}), { maxQueue: 8192, batchSize: 2048, delayMs: 1000, exportTimeoutMs: 30000 });
  assert.deepEqual(batchOptions({ OTEL_BSP_MAX_QUEUE_SIZE: '100', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '500', OTEL_BSP_SCHEDULE_DELAY: '50', OTEL_BSP_EXPORT_TIMEOUT: '7' }), {
    maxQueue: 100,
    batchSize: 100,
    delayMs: 50,
    exportTimeoutMs: 7,
  });
  for (const bad of ['0', '-5', '1.5', 'ten', '', ' ', '1e3', '99999999999999999999']) {
    assert.equal(batchOptions({ OTEL_BSP_MAX_QUEUE_SIZE: bad }).maxQueue, 8192, JSON.stringify(bad));
  }
});

test('a full batch goes at once, one export at a time; past the queue spans are dropped and counted, never queued', async () => {
  const exporter = new Recorder();
  const counters: SpanCounters = { exported: 0, failed: 0, dropped: 0 };
  const batch = new BatchExport(exporter, { maxQueue: 10, batchSize: 4, delayMs: 60_000, exportTimeoutMs: 60_000 }, counters);
  for (let i = 0; i < 4; i++) batch.onEnd(span(i));
  assert.equal(exporter.batches.length, 0, 'not inside the call that filled the batch');
  await tick();
  assert.deepEqual(exporter.batches.map((b) => b.length), [4]);
  // The export hangs: the queue fills to 10, then drops.
  for (let i = 4; i < 20; i++) batch.onEnd(span(i));
  await tick();
  assert.equal(exporter.batches.length, 1, 'one export in flight at a time');
  assert.equal(counters.dropped, 6);
  batch.onEnd(span(99, TraceFlags.NONE));
  assert.equal(counters.dropped, 6, 'an unsampled span is neither queued nor counted');
  exporter.answer();
  await tick();
  await tick();
  assert.equal(counters.exported, 4);
  assert.deepEqual(exporter.batches.map((b) => b.length), [4, 4], 'what queued meanwhile follows, a batch at a time');
  exporter.answer(ExportResultCode.FAILED);
  await tick();
  await tick();
  assert.equal(counters.failed, 4);
  assert.deepEqual(exporter.batches.map((b) => b.length), [4, 4, 4]);
  const flushed = batch.shutdown();
  exporter.answer();
  await tick();
  await tick();
  assert.deepEqual(exporter.batches.map((b) => b.length), [4, 4, 4, 2], 'shutdown sends the rest');
  exporter.answer();
  await flushed;
  assert.equal(exporter.shutDown, true);
  assert.deepEqual(counters, { exported: 10, failed: 4, dropped: 6 }, 'every span made is counted once');
  batch.onEnd(span(100));
  assert.equal(exporter.batches.length, 4, 'nothing is queued after shutdown');
});

test('a partial batch waits for the delay; an export that never answers is counted failed after the export timeout', async () => {
  const exporter = new Recorder();
  const counters: SpanCounters = { exported: 0, failed: 0, dropped: 0 };
  const batch = new BatchExport(exporter, { maxQueue: 100, batchSize: 50, delayMs: 20, exportTimeoutMs: 50 }, counters);
  batch.onEnd(span(1));
  batch.onEnd(span(2));
  await tick();
  assert.equal(exporter.batches.length, 0);
  const started = Date.now();
  while (exporter.batches.length === 0 && Date.now() - started < 10_000) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(exporter.batches.map((b) => b.length), [2]);
  while (counters.failed === 0 && Date.now() - started < 10_000) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(counters.failed, 2, 'the hanging export gave up');
  exporter.answer();
  assert.deepEqual(counters, { exported: 0, failed: 2, dropped: 0 }, 'a late answer is not counted again');
});

test('spans of another resource or scope start a batch of their own; a batch is sealed at 4 MB, whatever its count', async () => {
  const exporter = new Recorder();
  const counters: SpanCounters = { exported: 0, failed: 0, dropped: 0 };
  const batch = new BatchExport(exporter, { maxQueue: 1000, batchSize: 512, delayMs: 60_000, exportTimeoutMs: 60_000 }, counters);
  const other = { resource: resourceFromAttributes({ 'service.name': 'other' }), scope: { name: 't' }, onEnd() {} };
  const mixed = [span(1), span(2), new SpanRecord(other, 'other', SpanKind.SERVER, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00000000000000aa', traceFlags: 1 }, undefined, 1, {}), span(3)];
  for (const s of mixed) batch.onEnd(s);
  // About 256 KB each (64 values of 4,096 one-byte characters): the 4 MB seal comes before the 512 count.
  const big: Record<string, string> = {};
  for (let i = 0; i < 64; i++) big[`k${i}`] = 'x'.repeat(10_000);
  for (let i = 0; i < 20; i++) {
    const s = new SpanRecord(sink, `big${i}`, SpanKind.SERVER, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: String(i + 100).padStart(16, '0'), traceFlags: 1 }, undefined, 1, big);
    s.end = 2;
    batch.onEnd(s);
  }
  await tick();
  assert.deepEqual(exporter.batches[0], ['s1', 's2'], 'the first resource\'s spans, then the batch was sealed');
  for (let i = 0; i < 3; i++) {
    exporter.answer();
    await tick();
    await tick();
  }
  assert.deepEqual(exporter.batches[1], ['other']);
  assert.equal(exporter.batches[2]![0], 's3');
  const sizes = exporter.batches.slice(2).map((b) => b.length);
  assert.ok(sizes[0]! > 1 && sizes[0]! < 21, `sealed by size, not by count: ${sizes}`);
  const flushed = batch.shutdown();
  for (let i = 0; i < 5 && exporter.answers.length > 0; i++) {
    exporter.answer();
    await tick();
    await tick();
  }
  await flushed;
  assert.equal(counters.exported, 24, 'every span sent once');
  assert.equal(counters.dropped, 0);
});
