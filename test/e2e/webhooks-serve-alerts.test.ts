// Alert webhooks (plugins/webhooks) end to end, what is sent and when: `ten serve` as a real child process whose
// instance really crashes, one signed alert per incident at a real HTTP receiver on loopback, and the same delivery
// seen through the management API and `ten alerts`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ROOT, sleep, waitFor } from '../helpers.ts';
import { adminToken, type ServeChild } from '../security/serve-child.ts';
import { SECRET, receiver, verifySignature } from './webhooks-fixture.ts';
import { alerts, api, deliveries, project, serve, type Delivery } from './webhooks-serve.ts';

async function instanceState(serve: ServeChild, key: string): Promise<string> {
  const [service, id] = key.split(':');
  const answer = await api<{ state: string }>(serve, `/api/instances/${service}/${id}`);
  return answer.body.state;
}

/** `ten alerts` against the server, as a user runs it. */
function tenAlerts(serve: ServeChild, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'ten.mjs'), 'alerts', '--server', serve.url, '--token', adminToken(serve.dataDir), ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('alert webhooks', { timeout: 300_000 }, () => {
  test('an instance killed past its restart limit sends one signed alert, visible in the API and `ten alerts`', async (t) => {
    const hook = await receiver();
    // A metric rule with a misspelt name (the metric is tenement_instance_resident_memory_bytes) is said once in the log.
    const rules = [{ on: 'failed' }, { name: 'typo', metric: 'tenement_instance_memory_bytes', above: 1 }];
    const setup = await project('signed', alerts([{ name: 'ops', url: hook.url, secret: SECRET }], rules));
    const server = await serve(setup);
    t.after(() => server.stop());
    await waitFor(() => hook.received.length >= 1, 'the alert at the receiver', 60_000);
    const [alert] = hook.received;
    assert.ok(verifySignature(SECRET, alert!.raw, alert!.headers['tenement-signature'] as string), `signature ${alert!.headers['tenement-signature']}`);
    assert.equal(verifySignature('another-secret-0123456789', alert!.raw, alert!.headers['tenement-signature'] as string), false);
    assert.equal(verifySignature(SECRET, alert!.raw.replace('crashy', 'crashz'), alert!.headers['tenement-signature'] as string), false, 'a changed body fails');
    assert.equal(alert!.body.type, 'alert.firing');
    assert.equal(alert!.body.rule, 'failed');
    assert.equal(alert!.body.instance, 'crashy:a');
    assert.match(String(alert!.body.detail), /gave up after 1 restarts/);
    assert.equal(alert!.headers['tenement-event'], 'firing');
    assert.equal(alert!.headers['tenement-alert'], alert!.body.id);

    await waitFor(async () => (await deliveries(server))[0]?.state === 'delivered', 'the delivery recorded as delivered', 10_000);
    const [row] = await deliveries(server);
    assert.equal(row!.attempts, 1);
    assert.equal(row!.lastStatus, 200);
    assert.equal(row!.delivery, alert!.headers['tenement-delivery']);
    assert.equal(row!.nextAttemptAt, null);
    assert.ok(!JSON.stringify(row).includes(hook.url), 'the API never shows the webhook URL');

    // Admin only: a tenant token, even the affected tenant's, gets 403.
    const created = await fetch(`${server.url}/api/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken(server.dataDir)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'tenant-a', tenant: 'a' }),
    });
    const tenant = ((await created.json()) as { token: string }).token;
    assert.equal((await api(server, '/api/alerts', { token: tenant })).status, 403);
    assert.equal((await api(server, '/api/alerts?state=bogus')).status, 400);
    assert.equal((await api(server, '/api/alerts?limit=100000')).status, 400);
    assert.equal((await api(server, '/api/alerts?before=0')).status, 400);
    assert.equal((await api(server, '/api/alerts?surprise=1')).status, 400);
    for (const name of ['__proto__', 'constructor', "ops' OR 1=1 --"]) {
      const filtered = await api<{ deliveries: Delivery[] }>(server, `/api/alerts?webhook=${encodeURIComponent(name)}`);
      assert.equal(filtered.status, 200);
      assert.deepEqual(filtered.body.deliveries, [], `webhook=${name} matches nothing`);
    }
    const page = await api<{ deliveries: Delivery[]; next: number | null }>(server, '/api/alerts?state=delivered&webhook=ops&limit=1');
    assert.equal(page.body.deliveries.length, 1);

    // Three CLI processes at once: each spends most of its time loading.
    const [cli, table, bad] = await Promise.all([tenAlerts(server, ['--json']), tenAlerts(server, []), tenAlerts(server, ['--state', 'nope'])]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal((JSON.parse(cli.stdout) as { deliveries: Delivery[] }).deliveries[0]?.alert, alert!.body.id);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /crashy:a/);
    assert.match(table.stdout, /delivered/);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /nope/);
    // Exactly one alert: no second message for the same incident.
    await sleep(500);
    assert.equal(hook.received.length, 1);
    assert.equal(server.output().match(/no metric named tenement_instance_memory_bytes/g)?.length, 1, 'the missing metric is said once');
    assert.ok(!server.output().includes(SECRET), 'the secret is never logged');
    assert.ok(!JSON.stringify(await deliveries(server)).includes(SECRET), 'nor shown by the API');
  });

  test('cool-down: repeated failures within it give one alert, then a resolved one when the instance runs again', async (t) => {
    const hook = await receiver();
    const setup = await project('cooldown', alerts([{ name: 'ops', url: hook.url, secret: SECRET, format: 'generic' }]));
    const server = await serve(setup);
    t.after(() => server.stop());
    await waitFor(() => hook.received.length >= 1, 'the first alert', 60_000);
    // Fails again (the restart revives it, it crashes past its limit again) within the cool-down.
    await api(server, '/api/instances/crashy/a/restart', { method: 'POST' });
    await waitFor(async () => (await instanceState(server, 'crashy:a')) === 'failed', 'crashy:a failed again', 30_000);
    await api(server, '/api/instances/crashy/a/restart', { method: 'POST' });
    await waitFor(async () => (await instanceState(server, 'crashy:a')) === 'failed', 'crashy:a failed a third time', 30_000);
    await sleep(500);
    assert.equal(hook.received.length, 1, 'one alert for the incident');

    writeFileSync(path.join(setup.dir, 'ok'), '');
    const restarted = await api<{ state: string }>(server, '/api/instances/crashy/a/restart', { method: 'POST' });
    assert.equal(restarted.body.state, 'running');
    await waitFor(() => hook.received.length >= 2, 'the resolved message', 30_000);
    const [firing, resolved] = hook.received;
    assert.equal(firing!.body.kind, 'firing');
    assert.equal(resolved!.body.kind, 'resolved');
    assert.equal(resolved!.body.id, firing!.body.id, 'one incident: the same alert id');
    assert.equal(resolved!.body.count, 3, 'the three failures merged into it');
    assert.match(String(resolved!.body.summary), /running again/);
    assert.ok(verifySignature(SECRET, resolved!.raw, resolved!.headers['tenement-signature'] as string));
    await sleep(500);
    assert.equal(hook.received.length, 2);
  });
});
