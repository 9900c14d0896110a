/**
 * Shared pieces of the benchmarks: temp dirs, child processes that are always cleaned up, `ten serve` and nginx
 * launchers, a wrk runner and parser, and small statistics helpers. Everything listens on 127.0.0.1 only.
 *
 * The one place the benches (and the tests) import these from; each lives in a module of its own below, and none
 * of those imports this file, so there is no cycle.
 */
export { BENCH_DIR, LOOPBACK, ROOT, TEN_BIN, isMain, sleep, tenEntry, type TenEntry } from './base.ts';
export { makeTempDir, removeTempDir, startChild, type ManagedChild } from './children.ts';
export { findBinary, requireTools } from './tools.ts';
export { coldStarts, freePort, httpGet, waitForOk, type Reply } from './http-get.ts';
export { killLeftovers, startTenServe, type TenServe } from './ten-serve.ts';
export { startNginx, startNginxWorkers, type Nginx } from './nginx.ts';
export { parseWrk, runWrk, type WrkOptions, type WrkResult } from './wrk.ts';
export { MB, fmt, fmtInt, fmtPct, mean, median, percentile, spread, spreadRow, table, timeEach, type Spread } from './numbers.ts';
export {
  childCommandLines,
  childPids,
  cpuMicros,
  cpuMicrosOf,
  descendants,
  mainThreadCpuMicros,
  rssBytes,
  threadCpuMicros,
} from './proc-stats.ts';
export { writeJson, type Goal } from './results.ts';
