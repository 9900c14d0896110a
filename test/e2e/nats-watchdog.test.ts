// The NATS watchdog of `ten nats start` (plugins/fleet/nats-server): its decisions on real /healthz bodies, and
// against real nats-servers: a killed server is started again, a server reporting "not current" is restarted,
// and the command runs, stops and refuses a folder that is not its own.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { connect } from 'nats';
import { startLocalCluster, serverConfig, type LocalCluster } from '../../plugins/fleet/nats-server/cluster.ts';
import { classifyHealthz, decide, newWatch } from '../../plugins/fleet/nats-server/health.ts';
import type { WatchdogEvent } from '../../plugins/fleet/nats-server/watchdog.ts';
import { alive, waitFor } from '../helpers.ts';
import { TEN, cleanEnv } from '../ten-cli.ts';
import { natsServerAvailable } from '../nats-cluster.ts';

const skip = natsServerAvailable() ? false : 'nats-server is not installed (apt-get install nats-server)';

// Recorded from nats-server 2.9.10 on this machine: a replica behind after SIGSTOP/SIGCONT during writes, and
// the one server left of a cluster of three.
const NOT_CURRENT = `{"status":"unavailable","error":"JetStream stream '$G \\u003e KV_probe' is not current"}`;
const NO_META_LEADER = '{"status":"unavailable","error":"JetStream has not established contact with a meta leader"}';
const OK = '{"status":"ok"}';

test('healthz bodies are classified: ok, not current (stream/consumer), unavailable, unreachable', () => {
  assert.equal(classifyHealthz(200, OK).verdict, 'ok');
  const notCurrent = classifyHealthz(503, NOT_CURRENT);
  assert.equal(notCurrent.verdict, 'not-current');
  assert.equal(notCurrent.error, "JetStream stream '$G > KV_probe' is not current");
  assert.equal(classifyHealthz(503, `{"status":"unavailable","error":"JetStream consumer '$G > KV_x > c1' is not current"}`).verdict, 'not-current');
  // Meta-level trouble is the cluster's (an election, lost quorum): a restart would not help.
  assert.equal(classifyHealthz(503, NO_META_LEADER).verdict, 'unavailable');
  assert.equal(classifyHealthz(503, '{"status":"unavailable","error":"JetStream is not current with the meta leader"}').verdict, 'unavailable');
  assert.equal(classifyHealthz(503, 'not json').verdict, 'unavailable');
  assert.equal(classifyHealthz(null, 'ECONNREFUSED').verdict, 'unreachable');
  assert.equal(classifyHealthz(200, '{"status":"ok","__proto__":{"polluted":1}}').verdict, 'ok');
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('decide: restart only after not current for notCurrentMs, past the grace, with a healthy peer; anything else resets', () => {
  const policy = { notCurrentMs: 15_000, graceMs: 10_000 };
  const watch = newWatch(0);
  const step = (verdict: 'ok' | 'not-current' | 'unavailable' | 'unreachable', at: number, peers = 2) =>
    decide(watch, verdict, verdict === 'not-current' ? 'x is not current' : null, at, peers, policy).kind;
  assert.equal(step('not-current', 20_000), 'none');
  assert.equal(step('not-current', 34_999), 'none');
  assert.equal(step('not-current', 35_000), 'restart');
  // A healthy poll in between starts the count again.
  assert.equal(step('ok', 36_000), 'none');
  assert.equal(step('not-current', 37_000), 'none');
  assert.equal(step('unreachable', 40_000), 'none');
  assert.equal(step('not-current', 41_000), 'none');
  assert.equal(step('not-current', 55_999), 'none');
  // No healthy peer to catch up from: no restart however long.
  assert.equal(step('not-current', 90_000, 0), 'none');
  assert.equal(step('not-current', 90_000, 1), 'restart');
  // Within the grace after a (re)start: no restart.
  const fresh = newWatch(100_000);
  assert.equal(decide(fresh, 'not-current', 'x', 100_000, 2, { notCurrentMs: 0, graceMs: 10_000 }).kind, 'none');
  assert.equal(decide(fresh, 'not-current', 'x', 110_000, 2, { notCurrentMs: 0, graceMs: 10_000 }).kind, 'restart');
});

test('config files: monitors and routes on loopback, paths quoted', () => {
  const plan = { size: 3 as const, host: '0.0.0.0', servers: [1, 2, 3].map((i) => ({ name: `n${i}`, client: 4221 + i, route: 6221 + i, monitor: 8221 + i })) };
  const text = serverConfig(plan.servers[0]!, plan, '/tmp/a "b"/n1');
  assert.match(text, /listen: "0\.0\.0\.0:4222"/);
  assert.match(text, /http: "127\.0\.0\.1:8222"/);
  assert.match(text, /listen: "127\.0\.0\.1:6222"/);
  assert.match(text, /routes: \["nats:\/\/127\.0\.0\.1:6223", "nats:\/\/127\.0\.0\.1:6224"\]/);
  assert.match(text, /store_dir: "\/tmp\/a \\"b\\"\/n1\/store"/);
});

async function localCluster(t: import('node:test').TestContext, events: WatchdogEvent[], policy = { notCurrentMs: 15_000, graceMs: 15_000 }): Promise<LocalCluster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tnm-natswd-'));
  let cluster: LocalCluster | null = null;
  t.after(async () => {
    try {
      await cluster?.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  cluster = await startLocalCluster({ dir, size: 3, port: 0, clusterPort: 0, monitorPort: 0, pollMs: 200, policy, onEvent: (e) => events.push(e) });
  return cluster;
}

test('the watchdog starts a killed server again (same ports and store) and the cluster is whole', { skip, timeout: 120_000 }, async (t) => {
  const events: WatchdogEvent[] = [];
  const cluster = await localCluster(t, events);
  const victim = cluster.servers[1]!;
  const before = victim.pid!;
  process.kill(before, 'SIGKILL');
  await waitFor(() => victim.running && victim.pid !== before, 'the watchdog to start n2 again', 30_000);
  assert.ok(events.some((e) => e.kind === 'exited' && e.server === 'n2' && e.signal === 'SIGKILL'), JSON.stringify(events));
  await waitFor(async () => (await fetch(`${victim.spec.monitorUrl}/healthz`).catch(() => null))?.status === 200, 'n2 healthy again', 30_000);
  const nc = await connect({ servers: victim.spec.url });
  t.after(() => nc.close());
  const kv = await nc.jetstream().views.kv('wd', { replicas: 3 });
  await kv.put('k', new TextEncoder().encode('v'));

  const pids = cluster.servers.map((s) => s.pid!);
  await cluster.stop();
  for (const pid of pids) assert.equal(alive(pid), false, `nats-server ${pid} stopped`);
  // Stopped on purpose: no restart.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(cluster.servers.some((s) => s.running), false);
});

test('the watchdog restarts a server whose real /healthz reports "not current"', { skip, timeout: 300_000 }, async (t) => {
  const events: WatchdogEvent[] = [];
  // Zero thresholds: one not-current poll is enough, so the transient state a stopped-then-continued replica
  // reports while it catches up (real, measured: tens of ms) triggers the restart path.
  const cluster = await localCluster(t, events, { notCurrentMs: 0, graceMs: 0 });
  const nc = await connect({ servers: cluster.servers[0]!.spec.url });
  t.after(() => nc.close());
  const kv = await nc.jetstream().views.kv('behind', { replicas: 3, history: 1 });
  await kv.put('x', new TextEncoder().encode('1'));
  const victim = cluster.servers[2]!;
  const big = new Uint8Array(10_000);
  let restarted = false;
  for (let attempt = 0; attempt < 10 && !restarted; attempt++) {
    const pid = victim.pid!;
    process.kill(pid, 'SIGSTOP');
    await Promise.allSettled(Array.from({ length: 3000 }, (_, i) => kv.put(`k${i % 500}`, big)));
    process.kill(pid, 'SIGCONT');
    const until = Date.now() + 3000;
    while (Date.now() < until && !restarted) {
      await cluster.watchdog.poll();
      restarted = events.some((e) => e.kind === 'restarting' && e.server === 'n3');
    }
  }
  // The restart may have been decided by the watchdog's own timer: stop() waits for it to start the process.
  await cluster.watchdog.stop();
  assert.ok(restarted, `n3 was restarted for not being current: ${JSON.stringify(events)}`);
  const restart = events.find((e) => e.kind === 'restarting')!;
  assert.match((restart as { reason: string }).reason, /is not current/);
  assert.ok(events.some((e) => e.kind === 'health' && e.server === 'n3' && e.verdict === 'not-current'));
  assert.ok(events.some((e) => e.kind === 'started' && e.server === 'n3'));
  assert.equal(victim.running, true);
  // Back to current. nats-server 2.9.10 can leave a replica stuck behind again after its restart (the bug the
  // watchdog is there for; once in CI, under the suite's load): in service the watchdog restarts it again, and
  // with the watchdog stopped here the test does the same, twice at most, then fails with n3's last word and log.
  let last = '';
  const current = async (): Promise<boolean> => {
    const answer = await fetch(`${victim.spec.monitorUrl}/healthz`).catch(() => null);
    last = answer ? `${answer.status} ${await answer.text()}` : 'no answer';
    return answer?.status === 200;
  };
  for (let restarts = 0; ; restarts++) {
    try {
      await waitFor(current, 'n3 current after the restart', 45_000);
      break;
    } catch {
      if (restarts === 2) assert.fail(`n3 not current after the watchdog's restart and ${restarts} more: ${last}\n${victim.logTail(2000)}`);
      await victim.restart();
    }
  }
});

function runTen(args: string[], cwd: string): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [TEN, ...args], { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (c: Buffer) => (text += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (text += c.toString()));
  return { child, output: () => text };
}

test('ten nats start runs a cluster in the foreground, stops it on SIGTERM, refuses a folder it did not make', { skip, timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tnm-natscli-'));
  const run = runTen(['nats', 'start', '--size', '3', '--port', '0', '--cluster-port', '0', '--monitor-port', '0', '--dir', 'nats', '--json', '--poll', '200ms'], dir);
  const exited = new Promise<number | null>((resolve) => run.child.once('exit', (code) => resolve(code)));
  const runs = [run];
  t.after(async () => {
    if (runs.some((r) => r.child.exitCode === null)) {
      for (const r of runs) if (r.child.exitCode === null) r.child.kill('SIGKILL');
      for (const n of ['n1', 'n2', 'n3']) {
        try {
          process.kill(Number(readFileSync(path.join(dir, 'nats', n, 'nats-server.pid'), 'utf8')), 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  await waitFor(() => run.output().includes('"kind":"ready"') || run.child.exitCode !== null, 'ten nats start to be ready', 60_000);
  const readyLine = run.output().split('\n').find((l) => l.includes('"kind":"ready"'));
  assert.ok(readyLine, run.output());
  const ready = JSON.parse(readyLine) as { urls: string[]; servers: Array<{ pid: number; monitorUrl: string }> };
  assert.equal(ready.urls.length, 3);
  for (const s of ready.servers) assert.match(s.monitorUrl, /^http:\/\/127\.0\.0\.1:\d+$/);

  // A second one on the same folder is refused while the first runs.
  const second = runTen(['nats', 'start', '--dir', 'nats', '--port', '0', '--cluster-port', '0', '--monitor-port', '0'], dir);
  const secondCode = await new Promise<number | null>((resolve) => second.child.once('exit', (code) => resolve(code)));
  assert.notEqual(secondCode, 0);
  assert.match(second.output(), /already runs on/);

  const nc = await connect({ servers: ready.urls });
  const kv = await nc.jetstream().views.kv('cli', { replicas: 3 });
  await kv.put('k', new TextEncoder().encode('v'));
  await nc.close();

  run.child.kill('SIGTERM');
  assert.equal(await exited, 0, run.output());
  for (const s of ready.servers) assert.equal(alive(s.pid), false);
  assert.equal(existsSync(path.join(dir, 'nats', 'ten-nats.pid')), false);

  // Started again on its folder: the same ports (kept in cluster.json, though none are given now) and the stores.
  const again = runTen(['nats', 'start', '--size', '3', '--dir', 'nats', '--json', '--poll', '200ms'], dir);
  runs.push(again);
  const againExited = new Promise<number | null>((resolve) => again.child.once('exit', (code) => resolve(code)));
  await waitFor(() => again.output().includes('"kind":"ready"') || again.child.exitCode !== null, 'ten nats start to be ready again', 60_000);
  const readyAgain = JSON.parse(again.output().split('\n').find((l) => l.includes('"kind":"ready"')) ?? 'null') as { urls: string[] } | null;
  assert.deepEqual(readyAgain?.urls, ready.urls, again.output());
  const nc2 = await connect({ servers: ready.urls });
  // "ready" means JetStream has its meta leader; the bucket's own stream elects its leader after that (seconds on
  // 2.9), and opening or reading it before then times out: open and read until it answers.
  let value: string | undefined;
  await waitFor(
    async () => {
      value = await nc2
        .jetstream()
        .views.kv('cli', { replicas: 3 })
        .then((kv2) => kv2.get('k'))
        .then((entry) => entry?.string(), () => undefined);
      return value !== undefined;
    },
    'the restarted bucket to answer a read',
    60_000,
  );
  assert.equal(value, 'v');
  await nc2.close();
  again.child.kill('SIGTERM');
  assert.equal(await againExited, 0, again.output());
  // A different size on that folder is refused (its stores belong to a cluster of 3).
  const resized = runTen(['nats', 'start', '--size', '1', '--dir', 'nats'], dir);
  runs.push(resized);
  assert.notEqual(await new Promise<number | null>((resolve) => resized.child.once('exit', (code) => resolve(code))), 0);
  assert.match(resized.output(), /holds a cluster of 3/);

  // A folder with someone else's files is not taken.
  const foreign = path.join(dir, 'foreign');
  mkdirSync(foreign);
  writeFileSync(path.join(foreign, 'notes.txt'), 'mine');
  const refused = runTen(['nats', 'start', '--dir', 'foreign', '--size', '1', '--port', '0', '--cluster-port', '0', '--monitor-port', '0'], dir);
  const refusedCode = await new Promise<number | null>((resolve) => refused.child.once('exit', (code) => resolve(code)));
  assert.notEqual(refusedCode, 0);
  assert.match(refused.output(), /not empty and was not made by ten nats start/);
  assert.equal(readFileSync(path.join(foreign, 'notes.txt'), 'utf8'), 'mine');
});
