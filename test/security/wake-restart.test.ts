// A request that wakes a hibernated instance and an API restart of that instance, at the same moment, resolve to
// one outcome: the request is answered by the app (never TNM_ERR_WAKE_FAILED because the restart's stop left
// the instance `stopped` for a moment), and one process runs at the end.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import { ADMIN, staticAuth } from '../fixtures/static-auth.ts';
import { alive, apiCall, echoService, request, servePlugins, sleep, waitFor } from '../helpers.ts';

const HOST = 'a.echo.localhost';
const ROUNDS = 30;

test('overlapping wakes and API restarts: every request gets the app, one process at the end', { timeout: 300_000 }, async (t) => {
  const kernel = await createTestKernel({
    plugins: [...servePlugins, staticAuth, instancesApi],
    config: {
      settings: { healthInterval: '1h' },
      services: { echo: echoService({ idleTimeout: false, startupTimeout: '20s' }) },
    },
  });
  t.after(() => kernel.close());
  const instance = await kernel.spawnInstance('echo', 'a');
  const seen = new Set<number>();
  const failures: string[] = [];

  for (let round = 0; round < ROUNDS; round++) {
    await kernel.hibernate(instance, 'test');
    assert.equal(instance.state, 'hibernated');
    // The restart lands anywhere from before the wake's spawn to after its readiness (a cold start of the echo
    // app takes 50-150 ms here): the window that lost requests is a restart whose stop ends the wake's process.
    const offset = (round % 10) * 12;
    const [reply, restart] = await Promise.all([
      request(kernel, HOST, '/pid', { timeoutMs: 30_000 }),
      sleep(offset).then(() => apiCall(kernel, 'POST', '/api/instances/echo/a/restart', ADMIN)),
    ]);
    if (reply.status !== 200 || !/^\d+$/.test(reply.body)) failures.push(`round ${round} (+${offset} ms): ${reply.status} ${reply.body}`);
    else seen.add(Number(reply.body));
    assert.ok(restart.status < 300, `round ${round}: the restart answers ${restart.status} ${restart.body}`);
    await waitFor(() => instance.state === 'running' && instance.handle !== null, `round ${round}: running again`, 30_000);
    seen.add(instance.handle!.pid!);
  }

  assert.deepEqual(failures, [], 'every request is answered by the app');
  const current = instance.handle!.pid!;
  const reply = await request(kernel, HOST, '/pid');
  assert.equal(Number(reply.body), current, 'the running process answers');
  await waitFor(() => [...seen].every((pid) => pid === current || !alive(pid)), 'every earlier process to be gone', 20_000);
  assert.deepEqual([...seen].filter(alive), [current], 'exactly one process runs at the end');
});
