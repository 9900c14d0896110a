/**
 * The dashboard's metrics history (plugins/dashboard/history.ts) at BENCH_INSTANCES (1,000) instances: the memory
 * a full hour of every instance's ring takes (measured: heap + array buffers before and after, with a GC each
 * side), against what the layout says it should, and the cost of recording a request (ns per `record`, against a
 * baseline in the same run: pushing the same duration into a plain array, which is what an unbounded log would do).
 *
 *   node --expose-gc --import tsx bench/dashboard-history.ts
 */
import { HistoryTable, InstanceHistory, POINTS, STEP_MS } from '../plugins/dashboard/history.ts';

const INSTANCES = Number(process.env.BENCH_INSTANCES ?? 1_000);
const RECORDS = 2_000_000;

function used(): number {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const start = Date.now() - POINTS * STEP_MS;
const before = used();
const table = new HistoryTable();
for (let i = 0; i < INSTANCES; i++) table.of(`svc:tenant-${i}`);
// A whole hour of points: every ring written all the way round.
for (let step = 0; step < POINTS; step++) {
  const now = start + step * STEP_MS;
  for (let i = 0; i < INSTANCES; i++) {
    const h = table.peek(`svc:tenant-${i}`)!;
    h.record(1 + (i % 50), now);
    h.sample(50_000_000, step * 0.1, 1, now);
  }
}
const after = used();
const perInstance = (after - before) / INSTANCES;

const one = new InstanceHistory();
// The plugin passes a clock it reads twice a second (plugins/dashboard/sampler.ts), as here.
const clock = Date.now();
for (let i = 0; i < RECORDS; i++) one.record((i % 997) / 10, clock);
let t0 = process.hrtime.bigint();
for (let i = 0; i < RECORDS; i++) one.record((i % 997) / 10, clock);
const recordNs = Number(process.hrtime.bigint() - t0) / RECORDS;
for (let i = 0; i < RECORDS; i++) [].push((i % 997) / 10 as never);
const baseline: number[] = [];
t0 = process.hrtime.bigint();
for (let i = 0; i < RECORDS; i++) baseline.push((i % 997) / 10);
const pushNs = Number(process.hrtime.bigint() - t0) / RECORDS;

console.log(`instances:                 ${INSTANCES}`);
console.log(`layout bytes per instance: ${InstanceHistory.bytesPerInstance}`);
console.log(`measured per instance:     ${Math.round(perInstance)} bytes (typed arrays + object)`);
console.log(`total at ${INSTANCES}:            ${((after - before) / 1024 / 1024).toFixed(1)} MiB`);
console.log(`record(): ${recordNs.toFixed(1)} ns; baseline array push: ${pushNs.toFixed(1)} ns; ratio ${(recordNs / pushNs).toFixed(2)}`);
if (table.size !== INSTANCES || baseline.length !== RECORDS) throw new Error('unexpected sizes');
