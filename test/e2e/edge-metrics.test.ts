// Under the HAProxy edge, the per-instance request metrics (tenement_requests_total, the duration histogram, the
// dashboard's request rate and latency) come from HAProxy's counters for what it carried straight to an
// instance, and from the `request` hook for what the built-in proxy (the activator) carried: each request once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import dashboard from '../../plugins/dashboard/index.ts';
import metrics from '../../plugins/metrics/index.ts';
import { edgeKernel, edgeSkip } from '../edges.ts';
import { ADMIN, staticAuth } from '../fixtures/static-auth.ts';
import { echoService, request, waitFor } from '../helpers.ts';

/** A sample's value from the exposition text, or 0 when absent. */
function sample(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((label) => l.includes(label)));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

test('haproxy edge: request counts and latency of the traffic HAProxy carries come from its counters, each request counted once', { timeout: 180_000, skip: edgeSkip('haproxy') }, async (t) => {
  const e = await edgeKernel(t, 'haproxy', { echo: echoService({ idleTimeout: 0 }) }, { plugins: [metrics, dashboard, staticAuth] });
  const alice = await e.kernel.spawnInstance('echo', 'alice');
  await e.settled();
  const scrape = async (): Promise<string> => (await request(e.kernel, 'localhost', '/metrics')).body;
  const ok = (text: string): number => sample(text, 'tenement_requests_total', 'instance="echo:alice",code_class="2xx"');
  const durations = (text: string): number => sample(text, 'tenement_request_duration_seconds_count', 'service="echo"');
  assert.equal(ok(await scrape()), 0);

  const viaBuiltin = e.viaBuiltin();
  for (let i = 0; i < 25; i++) assert.equal((await request(e.url, 'alice.echo.localhost', '/echo')).status, 200);
  await waitFor(async () => ok(await scrape()) >= 25, '25 requests counted from haproxy', 20_000);
  assert.equal(e.viaBuiltin(), viaBuiltin, 'HAProxy carried them: the request hook saw none');
  const text = await scrape();
  assert.equal(ok(text), 25, 'each request counted once');
  assert.equal(durations(text), 25, 'and has a duration');

  // The dashboard's history (request rate and latency) has them too.
  const history = JSON.parse((await request(e.kernel, 'localhost', '/api/instances/echo/alice/history', { headers: ADMIN })).body) as { points: Array<{ rps: number; p50: number | null }> };
  const last = history.points.at(-1)!;
  assert.ok(last.rps > 0 && last.p50 !== null, JSON.stringify(history.points.slice(-2)));

  // A wake goes through the activator: its requests are the request hook's, not counted again from HAProxy's
  // counters (the server counts them too, pointed at the activator). Once woken, HAProxy goes direct again.
  await e.kernel.hibernate(alice, 'test');
  await e.settled();
  for (let i = 0; i < 3; i++) assert.equal((await request(e.url, 'alice.echo.localhost', '/echo')).status, 200);
  await waitFor(() => e.viaBuiltin() - viaBuiltin >= 1, 'the activator to report the wake request', 10_000);
  await e.settled();
  for (let i = 0; i < 4; i++) assert.equal((await request(e.url, 'alice.echo.localhost', '/echo')).status, 200);
  await waitFor(async () => ok(await scrape()) >= 25 + 3 + 4, 'every request counted', 20_000);
  // More reads of the counters later, nothing has been counted twice.
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  assert.equal(ok(await scrape()), 25 + 3 + 4);
  assert.equal(durations(await scrape()), 25 + 3 + 4);
});
