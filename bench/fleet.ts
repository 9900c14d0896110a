/**
 * Fleet mode (plugins/fleet, docs/fleet.md) on a real 3-server NATS JetStream cluster:
 *  - forwarded request overhead: p50 of a request answered by the node it reached (local) against one that
 *    node forwards to the owner (forwarded), sequential over one kept-alive client connection, same run;
 *  - failover: a `ten serve --fleet` node killed with SIGKILL until its tenant answers through another (median);
 *  - placement decisions per second (new instances claimed, sequential and 32 in flight).
 *
 *   node --import tsx bench/fleet.ts        or   npm run bench -- fleet
 */
import http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { FLEET_SECRET, closeNode, fleetApp, startNode, tempFile, waitLive, type TestNode } from '../test/fleet-harness.ts';
import { startNatsCluster } from '../test/nats-cluster.ts';
import { TEN, cleanEnv, instancePids, tempDir } from '../test/ten-cli.ts';
import { freePort, request, waitFor } from '../test/helpers.ts';
import { fmt, isMain, median } from './lib.ts';

export interface FleetBenchResult {
  rounds: Array<{ localP50Ms: number; forwardedP50Ms: number }>;
  localP50Ms: number;
  forwardedP50Ms: number;
  overheadP50Ms: number;
  ratio: number;
  failoverMs: number[];
  placementsPerSecSequential: number;
  placementsPerSecConcurrent: number;
}

function timeRequests(port: number, host: string, count: number): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const times: number[] = [];
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const started = performance.now();
      const req = http.get({ host: '127.0.0.1', port, path: '/', headers: { host }, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
          times.push(performance.now() - started);
          resolve();
        });
      });
      req.on('error', reject);
    });
  return (async () => {
    for (let i = 0; i < count; i++) await one();
    agent.destroy();
    return times;
  })();
}

async function serveFleet(dir: string, port: number, urls: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [TEN, 'serve', '--config', path.join(dir, 'tenement.config.json'), '--fleet', urls.join(',')], {
    cwd: dir,
    env: cleanEnv(),
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  await waitFor(
    () => request(`http://127.0.0.1:${port}`, '127.0.0.1', '/health', { timeoutMs: 2000 }).then((r) => r.status === 200, () => false),
    'ten serve --fleet',
    60_000,
  );
  return child;
}

export async function runFleetBench(options: { rounds?: number; requests?: number; failovers?: number } = {}): Promise<FleetBenchResult> {
  const rounds = options.rounds ?? 3;
  const count = options.requests ?? 1500;
  const cluster = await startNatsCluster({ size: 3 });
  const spawns = tempFile('tnm-fleet-bench-');
  const dir = tempDir('tnm-fleet-bench-n3-');
  const dataDir = path.join(dir, 'data');
  const nodes: TestNode[] = [];
  let child: ChildProcess | null = null;
  try {
    const services = { app: fleetApp(spawns.file, { idleTimeout: '1h' }) };
    const fast = { expiryMs: 1500 };
    nodes.push(await startNode('n1', cluster.urls, services, fast), await startNode('n2', [...cluster.urls].reverse(), services, fast));
    await waitLive(nodes, 2);
    const [a, b] = nodes as [TestNode, TestNode];
    // One instance on each node: `local` is served by a, `remote` is forwarded by a to b.
    let local = '';
    let remote = '';
    for (let i = 0; (!local || !remote) && i < 50; i++) {
      const placement = await a.fleet.placer.ensure('app', `bench${i}`);
      if (placement.node === a.id && !local) local = `bench${i}`;
      if (placement.node === b.id && !remote) remote = `bench${i}`;
    }
    const port = Number(new URL(a.kernel.url).port);
    const result: FleetBenchResult['rounds'] = [];
    await timeRequests(port, `${local}.app.localhost`, 200);
    await timeRequests(port, `${remote}.app.localhost`, 200);
    for (let round = 0; round < rounds; round++) {
      const localTimes = await timeRequests(port, `${local}.app.localhost`, count);
      const forwardedTimes = await timeRequests(port, `${remote}.app.localhost`, count);
      result.push({ localP50Ms: median(localTimes), forwardedP50Ms: median(forwardedTimes) });
    }

    // Placement decisions: new instances claimed by one node, one at a time, then 32 in flight from both nodes.
    const sequential = 300;
    let started = performance.now();
    for (let i = 0; i < sequential; i++) await a.fleet.placer.ensure('app', `seq${i}`);
    const placementsPerSecSequential = sequential / ((performance.now() - started) / 1000);
    const concurrent = 2000;
    started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async (_, worker) => {
        const placer = nodes[worker % 2]!.fleet.placer;
        while (next < concurrent) await placer.ensure('app', `par${next++}`);
      }),
    );
    const placementsPerSecConcurrent = concurrent / ((performance.now() - started) / 1000);

    // Failover: a ten serve --fleet node owning one tenant, killed with SIGKILL, until the tenant answers via a.
    const failoverMs: number[] = [];
    const n3Port = await freePort();
    writeFileSync(
      path.join(dir, 'tenement.config.json'),
      JSON.stringify({
        settings: { port: n3Port, listen: '127.0.0.1', domain: 'localhost', dataDir, fleet: { servers: cluster.urls, node: 'n3', heartbeatMs: 200, expiryMs: 1500, secret: FLEET_SECRET } },
        services,
      }),
    );
    for (let run = 0; run < (options.failovers ?? 3); run++) {
      child = await serveFleet(dir, n3Port, cluster.urls);
      await waitLive(nodes, 3);
      // Cordon the others' choices away: a policy-free way to land a tenant on n3 is to claim through n3 itself.
      let victim = '';
      for (let i = 0; !victim && i < 200; i++) {
        const id = `fo${run}x${i}`;
        const placement = await a.fleet.placer.ensure('app', id);
        if (placement.node === 'n3') victim = id;
      }
      if (!victim) throw new Error('no tenant was placed on n3');
      const warm = await request(a.kernel, `${victim}.app.localhost`, '/');
      if (warm.status !== 200) throw new Error(`victim not served: ${warm.status} ${warm.body}`);
      const killedAt = Date.now();
      child.kill('SIGKILL');
      for (const pid of instancePids(dataDir)) process.kill(pid, 'SIGKILL');
      await waitFor(
        () => request(a.kernel, `${victim}.app.localhost`, '/', { timeoutMs: 5000 }).then((r) => r.status === 200, () => false),
        'failover',
        60_000,
      );
      failoverMs.push(Date.now() - killedAt);
      await waitFor(() => !a.fleet.state.isLive('n3'), 'n3 to be seen dead', 10_000);
    }
    const localP50Ms = median(result.map((r) => r.localP50Ms));
    const forwardedP50Ms = median(result.map((r) => r.forwardedP50Ms));
    return {
      rounds: result,
      localP50Ms,
      forwardedP50Ms,
      overheadP50Ms: forwardedP50Ms - localP50Ms,
      ratio: forwardedP50Ms / localP50Ms,
      failoverMs,
      placementsPerSecSequential,
      placementsPerSecConcurrent,
    };
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    for (const pid of instancePids(dataDir)) process.kill(pid, 'SIGKILL');
    await Promise.allSettled(nodes.map((node) => closeNode(node)));
    await cluster.stop();
    spawns.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatFleet(r: FleetBenchResult): string {
  return [
    'fleet (3-server NATS cluster, 2 in-process nodes + 1 ten serve --fleet; sequential keep-alive requests)',
    ...r.rounds.map((x, i) => `  round ${i + 1}: local p50 ${fmt(x.localP50Ms)} ms, forwarded p50 ${fmt(x.forwardedP50Ms)} ms (${fmt(x.forwardedP50Ms / x.localP50Ms)}x)`),
    `  forwarded vs local p50: ${fmt(r.ratio)}x, +${fmt(r.overheadP50Ms)} ms (goal: under 1 ms)`,
    `  failover after kill -9 (expiryMs 1500, heartbeatMs 200): median ${fmt(median(r.failoverMs))} ms (runs: ${r.failoverMs.join(', ')} ms; goal: under 10 s)`,
    `  placement decisions: ${Math.round(r.placementsPerSecSequential)}/s sequential, ${Math.round(r.placementsPerSecConcurrent)}/s with 32 in flight (R3 claims)`,
  ].join('\n');
}

if (isMain(import.meta.url)) {
  runFleetBench().then(
    (result) => {
      process.stdout.write(`${formatFleet(result)}\n`);
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(`fleet bench failed: ${String(error)}\n`);
      process.exit(1);
    },
  );
}
