// A pool closed while its workers still load their code (a server stopped right after it started, before any
// call needed a worker). On Node 24 a worker terminated inside require(esm) aborts the whole process (an assertion in
// ModuleWrap::CreateRequiredModuleFacade, seen in CI), so close() lets a starting worker finish loading first, then
// ends it. Runs on both Node versions in CI; the process living through it is the test.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WasmPool } from '../../core/wasm/pool.ts';

test('pools closed while their workers still start, at once and after a few ms, close cleanly and leave no worker', async () => {
  for (let i = 0; i < 12; i++) {
    const pool = new WasmPool({ threads: 2 });
    if (i % 3 !== 0) await new Promise((resolve) => setTimeout(resolve, (i % 3) * 20));
    await pool.close();
    assert.equal(pool.readyWorkers, 0, 'no worker serves after close');
    assert.equal(pool.running + pool.queueSize, 0);
  }
});
