// The proxy policy (core/dataplane/policy.ts) end to end, on both paths: a kept-alive upstream connection that
// the instance closes just as it is reused is sent the request again on a fresh connection, once.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { TestKernel } from '../../core/test-kernel.ts';
import { FIXTURES, request, trackedKernel } from '../helpers.ts';

const STALE_APP = path.join(FIXTURES, 'stale-keepalive-app.mjs');

async function staleKernel(t: TestContext, fastPath: boolean): Promise<TestKernel> {
  if (!fastPath) process.env.TENEMENT_FAST_PROXY = '0';
  try {
    const { kernel } = await trackedKernel(t, { stale: { command: `node ${STALE_APP}`, idleTimeout: false } });
    await kernel.spawnInstance('stale', 'a');
    assert.equal(kernel.server.listener === kernel.server.http, !fastPath);
    return kernel;
  } finally {
    delete process.env.TENEMENT_FAST_PROXY;
  }
}

for (const fastPath of [true, false]) {
  const name = fastPath ? 'fast path' : 'node:http path';
  test(`${name}: a stale kept-alive connection is replaced and the request sent again (GET and bodyless POST)`, { timeout: 60_000 }, async (t) => {
    const kernel = await staleKernel(t, fastPath);
    const seen: number[] = [];
    for (const method of ['GET', 'GET', 'POST', 'GET', 'DELETE', 'GET']) {
      const reply = await request(kernel, 'a.stale.localhost', '/', { method });
      assert.equal(reply.status, 200, `${method} #${seen.length + 1}: ${reply.status} ${reply.body}`);
      seen.push(Number(reply.body));
    }
    // Every request after the first found its pooled connection stale and was answered on a new one.
    assert.ok(seen.every((connection, i) => i === 0 || connection > seen[i - 1]!), `connections: ${seen.join(', ')}`);
  });
}
