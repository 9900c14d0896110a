import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { RECORD_FIELDS, RecordBatch, forEachRecord, type RequestRecord } from '../../core/dataplane/workers/records.ts';

const read = (strings: unknown, numbers: unknown): RequestRecord[] => {
  const out: RequestRecord[] = [];
  forEachRecord(strings, numbers, (record) => out.push(record));
  return out;
};

test('a worker report packs each request into numbers and a table of distinct strings, and reads back the same across IPC serialization', () => {
  const batch = new RecordBatch(10_000);
  const sent: RequestRecord[] = [];
  for (let i = 0; i < 1_000; i++) {
    const record = { key: `notes:t${i % 3}`, method: i % 2 ? 'GET' : 'POST', status: 200 + (i % 5), durationMs: i / 7, wakeMs: i % 11 ? 0 : 3.5, target: `/n/${i % 4}`, hostname: '__proto__', remoteAddress: '127.0.0.1' };
    assert.ok(batch.add(record.key, record.method, record.status, record.durationMs, record.wakeMs, record.target, record.hostname, record.remoteAddress));
    sent.push(record);
  }
  const packed = batch.take();
  // 3 keys, 2 methods, 4 targets, one hostname, one address: the strings once each, whatever the request count.
  assert.equal(packed.strings.length, 11);
  assert.equal(packed.numbers.length, 1_000 * RECORD_FIELDS);
  const message = v8.deserialize(v8.serialize({ t: 'requests', served: 1_000, ...packed, dropped: 0 })) as { strings: unknown; numbers: unknown };
  assert.deepEqual(read(message.strings, message.numbers), sent);
  // Taken: the next report starts empty.
  assert.deepEqual(batch.take(), { strings: [], numbers: new Float64Array(0) });
});

test('a worker report is bounded, and a malformed one is skipped record by record, never thrown on', () => {
  const batch = new RecordBatch(2);
  assert.ok(batch.add('a:b', 'GET', 200, 1, 0, '/', 'h', '::1'));
  assert.ok(batch.add('a:b', 'GET', 200, 1, 0, '/', 'h', '::1'));
  assert.equal(batch.add('a:b', 'GET', 200, 1, 0, '/', 'h', '::1'), false);
  const { strings, numbers } = batch.take();
  assert.equal(read(strings, numbers).length, 2);
  // An index past the table, a negative or fractional one, a string that is not one: those records only.
  const bad = Float64Array.from([...numbers.subarray(0, RECORD_FIELDS), 99, 1, 200, 1, 0, 2, 3, 4, -1, 1, 200, 1, 0, 2, 3, 4, 0.5, 1, 200, 1, 0, 2, 3, 4]);
  assert.equal(read(strings, bad).length, 1);
  assert.equal(read([1, 2, 3, 4, 5], numbers).length, 0);
  assert.equal(read(strings, [0, 1, 200, 1, 0, 2, 3, 4]).length, 0);
  assert.equal(read(null, numbers).length, 0);
  // A trailing partial record is ignored.
  assert.equal(read(strings, numbers.subarray(0, RECORD_FIELDS + 3)).length, 1);
});
