/**
 * Private networking: what a namespace costs to set up and tear down, what it adds to a wake, and what the veth or
 * a Unix socket adds to a proxied request, against the host network on loopback, all in one run.
 *
 *   node --import tsx bench/network.ts      (root, iproute2, nftables)
 *
 * Env: BENCH_NET_ROUNDS (9 set-ups and wakes per variant), BENCH_NET_REQUESTS (400 sequential keep-alive GETs).
 */
import http from 'node:http';
import path from 'node:path';
import { createTestKernel, type TestKernel } from '../core/test-kernel.ts';
import type { ServiceInput } from '../core/config/schema.ts';
import type { PluginEntry } from '../core/plugin.ts';
import health from '../plugins/health/index.ts';
import hibernate from '../plugins/hibernate/index.ts';
import network from '../plugins/network/index.ts';
import { AddressPool } from '../plugins/network/addresses.ts';
import { findNetTools, missingTools, run } from '../plugins/network/commands.ts';
import { createIsolated, createPrivate, deleteNet, type InstanceNet } from '../plugins/network/netns.ts';
import router from '../plugins/router/index.ts';
import processRuntime from '../runtimes/process/index.ts';
import { ROOT, fmt, isMain, median, percentile, table } from './lib.ts';

const ROUNDS = Number(process.env.BENCH_NET_ROUNDS ?? 9);
const REQUESTS = Number(process.env.BENCH_NET_REQUESTS ?? 400);
const APP = path.join(ROOT, 'test', 'fixtures', 'net-app.mjs');
const RANGE = '10.249.0.0/24';

const elapsed = async (work: () => Promise<unknown>): Promise<number> => {
  const started = performance.now();
  await work();
  return performance.now() - started;
};

/** Set-up and teardown of one namespace, straight through the plugin's commands. */
async function setupCosts(): Promise<string[][]> {
  const tools = findNetTools();
  const ip = tools.ip!;
  const pool = new AddressPool(RANGE);
  const rows: Record<string, number[]> = {
    'private: create (netns, veth, addresses, nft)': [],
    'private: delete': [],
    'none: create': [],
    'none: delete': [],
    'nft -f inside (alone)': [],
  };
  const round = async (i: number): Promise<void> => {
    const addresses = pool.allocate()!;
    const names = { netns: `tnbench-${i}`, veth: `tnbenchv${i}` };
    const full = { ip, nft: tools.nft!, nsenter: tools.nsenter! };
    let net: InstanceNet | null = null;
    rows['private: create (netns, veth, addresses, nft)']!.push(
      await elapsed(async () => (net = await createPrivate(full, names.netns, names.veth, addresses, { range: RANGE, egress: ['10.0.0.1'] }))),
    );
    const rules = 'table inet bench {\n  chain output {\n    type filter hook output priority 0; policy accept;\n  }\n}\n';
    rows['nft -f inside (alone)']!.push(await elapsed(() => run(full.nsenter, [`--net=/run/netns/${names.netns}`, '--', full.nft, '-f', '-'], rules)));
    rows['private: delete']!.push(await elapsed(() => deleteNet({ ip }, net!)));
    pool.release(addresses.slot);
    let isolated: InstanceNet | null = null;
    rows['none: create']!.push(await elapsed(async () => (isolated = await createIsolated({ ...tools, ip }, `tnbench-n${i}`))));
    rows['none: delete']!.push(await elapsed(() => deleteNet({ ip }, isolated!)));
  };
  try {
    for (let i = 0; i < ROUNDS; i++) await round(i);
  } finally {
    // Whatever a failed round left behind.
    for (let i = 0; i < ROUNDS; i++) await deleteNet({ ip }, { netns: `tnbench-${i}`, veth: `tnbenchv${i}` });
    for (let i = 0; i < ROUNDS; i++) await deleteNet({ ip }, { netns: `tnbench-n${i}`, veth: null });
  }
  return Object.entries(rows).map(([what, values]) => [what, fmt(median(values), 1), fmt(Math.min(...values), 1), fmt(Math.max(...values), 1)]);
}

function get(kernel: TestKernel, host: string, agent?: http.Agent): Promise<number> {
  const url = new URL(kernel.url);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.get({ host: url.hostname, port: url.port, path: '/health', headers: { host }, agent: agent ?? false }, (res) => {
      res.resume();
      res.once('end', () => (res.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.once('error', reject);
  });
}

const VARIANTS: Array<{ name: string; service: ServiceInput; spare?: boolean }> = [
  { name: 'host, port (baseline)', service: {} as ServiceInput },
  { name: 'host, socket', service: { listen: 'socket' } as ServiceInput },
  { name: 'private, port (spare ready)', service: { network: 'private' } as ServiceInput },
  { name: 'private, port (no spare)', service: { network: 'private' } as ServiceInput, spare: false },
  { name: 'private, socket (spare ready)', service: { network: 'private', listen: 'socket' } as ServiceInput },
  { name: 'none, socket (spare ready)', service: { network: 'none', listen: 'socket' } as ServiceInput },
];

/** Wake (hibernated -> first response through the proxy) and proxied GET latency, per variant, interleaved. */
async function wakeAndRequests(): Promise<string[][]> {
  const plugins: PluginEntry[] = [processRuntime, router, health, hibernate, network];
  const kernels: TestKernel[] = [];
  try {
    for (const [i, variant] of VARIANTS.entries()) {
      const services = { [`v${i}`]: { command: `node ${APP}`, health: '/health', ...variant.service } };
      const kernel = await createTestKernel({
        plugins,
        config: { settings: { network: { range: `10.249.${i + 1}.0/24` } }, services, pluginOptions: { network: { spare: variant.spare ?? true } } },
      });
      kernels.push(kernel);
      await kernel.spawnInstance(`v${i}`, 'a');
    }
    const wakes: number[][] = VARIANTS.map(() => []);
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, kernel] of kernels.entries()) {
        const instance = kernel.instances.get(`v${i}`, 'a')!;
        await kernel.hibernate(instance);
        // Let teardown and the next spare finish: a wake after a pause, as in real life.
        await new Promise((resolve) => setTimeout(resolve, 150));
        wakes[i]!.push(await get(kernel, `a.v${i}.localhost`));
      }
    }
    const latencies: number[][] = VARIANTS.map(() => []);
    const agents = kernels.map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }));
    for (let slice = 0; slice < 4; slice++) {
      for (const [i, kernel] of kernels.entries()) {
        for (let n = 0; n < REQUESTS / 4; n++) latencies[i]!.push(await get(kernel, `a.v${i}.localhost`, agents[i]));
      }
    }
    for (const agent of agents) agent.destroy();
    const baseWake = median(wakes[0]!);
    const baseP50 = median(latencies[0]!);
    return VARIANTS.map((variant, i) => [
      variant.name,
      fmt(median(wakes[i]!), 1),
      fmt(median(wakes[i]!) / baseWake, 2),
      fmt(median(latencies[i]!) * 1000, 0),
      fmt(percentile(latencies[i]!, 99) * 1000, 0),
      fmt(median(latencies[i]!) / baseP50, 2),
    ]);
  } finally {
    for (const kernel of kernels) await kernel.close();
  }
}

export async function runNetworkBench(): Promise<string> {
  const missing = missingTools(findNetTools(), 'private');
  if (missing) throw new Error(missing);
  const costs = await setupCosts();
  const wakes = await wakeAndRequests();
  return [
    `namespace set-up and teardown, ms over ${ROUNDS} runs`,
    table(['step', 'median', 'min', 'max'], costs),
    '',
    `wake (hibernated -> first response, median of ${ROUNDS}) and proxied GET /health (${REQUESTS} sequential keep-alive)`,
    table(['variant', 'wake ms', 'wake ×', 'p50 µs', 'p99 µs', 'p50 ×'], wakes),
  ].join('\n');
}

if (isMain(import.meta.url)) {
  runNetworkBench().then(
    (text) => process.stdout.write(`${text}\n`),
    (error: unknown) => {
      process.stderr.write(`network bench failed: ${(error as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
