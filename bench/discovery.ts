/**
 * Service discovery benchmark (docs/discovery.md): against a real `ten serve` (a process of its own, with the
 * discovery plugin's loopback responder and listener for host-network tenants):
 *  - DNS lookup time, p50/p99, of `alice.hello.tenement.internal` from the discovery responder, against the same
 *    query to a minimal dns-packet echo on loopback (bench/fixtures/dns-echo.mjs, its own process) and a lookup
 *    of `localhost` in /etc/hosts (getaddrinfo, no DNS at all), interleaved round by round;
 *  - the per-request cost of calling a service by name (the discovery listener, Host: alice.hello.tenement.internal)
 *    against calling it by its tenant host on the main listener (Host: alice.hello.localhost): one kept-alive
 *    connection, sequential requests (p50/p99), and wrk -c16 when wrk is installed (req/s, p99);
 *  - as root with bwrap, ip and nft: the same lookups from inside a private namespace-tier tenant, with plain
 *    getaddrinfo through its generated /etc/resolv.conf, against `localhost` from its /etc/hosts (timed in the tenant).
 *
 *   node --import tsx bench/discovery.ts          # or: npm run bench -- discovery
 *
 * Env: BENCH_ROUNDS (5), BENCH_QUERIES (400 per target per round), BENCH_REQUESTS (400), BENCH_SECONDS (2).
 */
import dns from 'node:dns';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  type Goal,
  type ManagedChild,
  type TenServe,
  BENCH_DIR,
  LOOPBACK,
  findBinary,
  fmt,
  fmtInt,
  freePort,
  httpGet,
  isMain,
  makeTempDir,
  median,
  percentile,
  removeTempDir,
  runWrk,
  startChild,
  startTenServe,
  table,
  waitForOk,
} from './lib.ts';

const NAME = 'alice.hello.tenement.internal';
const PUBLIC_HOST = 'alice.hello.localhost';

export interface Latency {
  p50Ms: number;
  p99Ms: number;
}

export interface DiscoveryRound {
  dns: { discovery: Latency; echo: Latency; hosts: Latency };
  http: { byName: Latency; byHost: Latency };
  wrk: { byName: { rps: number; p99Ms: number }; byHost: { rps: number; p99Ms: number } } | null;
  /** Inside a private tenant (getaddrinfo): the zone name, and localhost from /etc/hosts. Null without root. */
  tenant: { byName: Latency; hosts: Latency } | null;
}

export interface DiscoveryBenchResult {
  queries: number;
  requests: number;
  rounds: DiscoveryRound[];
  ratios: { dnsP50: number; dnsP99: number; httpP50: number; httpP99: number; wrkRps: number | null; tenantP50: number | null };
  ranges: { dnsP50: [number, number]; httpP50: [number, number] };
  goals: Goal[];
}

const envInt = (name: string, fallback: number): number => {
  const value = Number(process.env[name]);
  return Number.isInteger(value) && value > 0 ? value : fallback;
};

/** Why the in-tenant lookups are left out, or null when this host can run a private namespace-tier tenant. */
function tenantSkip(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  for (const tool of ['bwrap', 'ip', 'nft', 'nsenter']) if (!findBinary(tool)) return `no ${tool}`;
  return null;
}

const latency = (samples: number[]): Latency => ({ p50Ms: median(samples), p99Ms: percentile(samples, 99) });

async function timeQueries(count: number, run: () => Promise<unknown>): Promise<Latency> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await run();
    samples.push(performance.now() - started);
  }
  return latency(samples);
}

function resolverAt(port: number): dns.promises.Resolver {
  // One try, a short timeout: a lost packet shows as a slow sample, not a 5 s stall.
  const resolver = new dns.promises.Resolver({ timeout: 1_000, tries: 2 });
  resolver.setServers([`${LOOPBACK}:${port}`]);
  return resolver;
}

function get(agent: http.Agent, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: LOOPBACK, port, path: '/', headers: { host }, agent }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${host}: HTTP ${res.statusCode}`))));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`${host}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

async function startEcho(): Promise<{ child: ManagedChild; port: number }> {
  const child = startChild(process.execPath, [path.join(BENCH_DIR, 'fixtures', 'dns-echo.mjs')]);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const match = /dns-echo (\d+)/.exec(child.output());
    if (match) return { child, port: Number(match[1]) };
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await child.stop('SIGKILL');
  throw new Error(`the dns-packet echo did not start: ${child.output()}`);
}

export async function runDiscoveryBench(options: { log?: (line: string) => void } = {}): Promise<DiscoveryBenchResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const rounds = envInt('BENCH_ROUNDS', 5);
  const queries = envInt('BENCH_QUERIES', 400);
  const requests = envInt('BENCH_REQUESTS', 400);
  const seconds = envInt('BENCH_SECONDS', 2);
  const wrk = findBinary('wrk');
  const dir = makeTempDir('discovery');
  const dnsPort = await freePort();
  const httpPort = await freePort();
  const config = path.join(dir, 'tenement.config.json');
  const skipTenant = tenantSkip();
  const tenantApp = path.join(BENCH_DIR, '..', 'test', 'fixtures', 'discovery-app.mjs');
  // A /24 of its own, away from a server on the default range.
  const range = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}.0/24`;
  writeFileSync(
    config,
    JSON.stringify({
      settings: { domain: 'localhost', port: 0, listen: LOOPBACK, dataDir: path.join(dir, 'data'), healthInterval: '60s', network: { range } },
      services: {
        hello: { command: process.execPath, args: [path.join(BENCH_DIR, 'fixtures', 'hello.mjs')], idleTimeout: false },
        ...(skipTenant
          ? {}
          : { web: { command: process.execPath, args: [tenantApp], cwd: path.dirname(tenantApp), health: '/health', idleTimeout: false, network: 'private', isolation: 'namespace', egress: ['hello'] } }),
      },
      instances: { hello: ['alice'], ...(skipTenant ? {} : { web: ['a'] }) },
      pluginOptions: { discovery: { dnsPort, httpPort } },
    }),
  );
  let serve: TenServe | null = null;
  let echo: { child: ManagedChild; port: number } | null = null;
  const agents = { byName: new http.Agent({ keepAlive: true, maxSockets: 1 }), byHost: new http.Agent({ keepAlive: true, maxSockets: 1 }) };
  try {
    serve = await startTenServe({ config, dataDir: path.join(dir, 'data') });
    await waitForOk(serve.port, PUBLIC_HOST, 30_000, 'hello:alice through ten serve');
    await waitForOk(httpPort, NAME, 10_000, 'hello:alice by name through the discovery listener');
    echo = await startEcho();
    const discovery = resolverAt(dnsPort);
    const baseline = resolverAt(echo.port);
    const check = await discovery.resolve4(NAME);
    if (check[0] !== LOOPBACK) throw new Error(`discovery answered ${JSON.stringify(check)} for ${NAME}`);
    if (!skipTenant) await waitForOk(serve.port, 'a.web.localhost', 30_000, 'the private tenant web:a', '/health');
    const tenantLookups = async (name: string): Promise<Latency> => {
      const reply = await httpGet(serve!.port, 'a.web.localhost', `/lookups?n=${queries}&name=${encodeURIComponent(name)}`, 60_000);
      if (reply.status !== 200) throw new Error(`in-tenant lookups of ${name}: HTTP ${reply.status} ${reply.body}`);
      const { p50, p99 } = JSON.parse(reply.body) as { p50: number; p99: number };
      return { p50Ms: p50, p99Ms: p99 };
    };
    log(skipTenant ? `discovery: no in-tenant lookups (${skipTenant})` : 'discovery: in-tenant lookups from web:a (private, namespace tier)');
    log(`discovery: ${rounds} rounds of ${queries} lookups per resolver and ${requests} sequential requests per path${wrk ? `, wrk -c16 ${seconds}s per path` : ' (no wrk: no throughput rows)'}`);
    const all: DiscoveryRound[] = [];
    for (let r = 0; r < rounds; r++) {
      const dnsRound = { discovery: await timeQueries(queries, () => discovery.resolve4(NAME)), echo: await timeQueries(queries, () => baseline.resolve4(NAME)), hosts: await timeQueries(queries, () => dns.promises.lookup('localhost', { family: 4 })) };
      const byName = (): Promise<Latency> => timeQueries(requests, () => get(agents.byName, httpPort, NAME));
      const byHost = (): Promise<Latency> => timeQueries(requests, () => get(agents.byHost, serve!.port, PUBLIC_HOST));
      // Alternating which path goes first, so neither always runs right after the DNS loops.
      const httpRound = r % 2 === 0 ? { byName: await byName(), byHost: await byHost() } : await byHost().then(async (host) => ({ byHost: host, byName: await byName() }));
      const wrkRound = wrk
        ? await (async () => {
            const byName = await runWrk({ binary: wrk, port: httpPort, host: NAME, threads: 1, connections: 16, seconds });
            const byHost = await runWrk({ binary: wrk, port: serve!.port, host: PUBLIC_HOST, threads: 1, connections: 16, seconds });
            if (byName.non2xx + byHost.non2xx > 0) throw new Error(`wrk saw non-2xx answers: by name ${byName.non2xx}, by host ${byHost.non2xx}`);
            return { byName: { rps: byName.requestsPerSec, p99Ms: byName.p99Ms }, byHost: { rps: byHost.requestsPerSec, p99Ms: byHost.p99Ms } };
          })()
        : null;
      const tenant = skipTenant ? null : { byName: await tenantLookups(NAME), hosts: await tenantLookups('localhost') };
      all.push({ dns: dnsRound, http: httpRound, wrk: wrkRound, tenant });
      log(
        `  round ${r + 1}: dns p50 discovery ${fmt(dnsRound.discovery.p50Ms, 3)} ms, echo ${fmt(dnsRound.echo.p50Ms, 3)} ms, /etc/hosts ${fmt(dnsRound.hosts.p50Ms, 3)} ms; ` +
          `GET p50 by name ${fmt(httpRound.byName.p50Ms, 3)} ms, by host ${fmt(httpRound.byHost.p50Ms, 3)} ms` +
          (wrkRound ? `; wrk by name ${fmtInt(wrkRound.byName.rps)} req/s, by host ${fmtInt(wrkRound.byHost.rps)} req/s` : '') +
          (tenant ? `; in tenant ${fmt(tenant.byName.p50Ms, 3)} ms by name, ${fmt(tenant.hosts.p50Ms, 3)} ms /etc/hosts` : ''),
      );
    }
    const per = (pick: (round: DiscoveryRound) => number): number[] => all.map(pick);
    const dnsP50 = per((x) => x.dns.discovery.p50Ms / x.dns.echo.p50Ms);
    const httpP50 = per((x) => x.http.byName.p50Ms / x.http.byHost.p50Ms);
    const ratios = {
      dnsP50: median(dnsP50),
      dnsP99: median(per((x) => x.dns.discovery.p99Ms / x.dns.echo.p99Ms)),
      httpP50: median(httpP50),
      httpP99: median(per((x) => x.http.byName.p99Ms / x.http.byHost.p99Ms)),
      wrkRps: wrk ? median(per((x) => x.wrk!.byName.rps / x.wrk!.byHost.rps)) : null,
      tenantP50: skipTenant ? null : median(per((x) => x.tenant!.byName.p50Ms / x.tenant!.hosts.p50Ms)),
    };
    const range = (values: number[]): [number, number] => [Math.min(...values), Math.max(...values)];
    const goals: Goal[] = [
      { name: 'DNS lookup p50, discovery vs a bare dns-packet echo (same run)', measured: fmt(ratios.dnsP50), goal: '<= 1.5', met: ratios.dnsP50 <= 1.5 },
      { name: 'GET p50 by name vs by tenant host (same run)', measured: fmt(ratios.httpP50), goal: '<= 1.2', met: ratios.httpP50 <= 1.2 },
    ];
    return { queries, requests, rounds: all, ratios, ranges: { dnsP50: range(dnsP50), httpP50: range(httpP50) }, goals };
  } finally {
    agents.byName.destroy();
    agents.byHost.destroy();
    await echo?.child.stop('SIGTERM');
    await serve?.stop();
    removeTempDir(dir);
  }
}

export function formatDiscovery(result: DiscoveryBenchResult): string {
  const med = (pick: (round: DiscoveryRound) => number, digits = 3): string => `${fmt(median(result.rounds.map(pick)), digits)} ms`;
  const r = result.ratios;
  const rows = [
    ['DNS lookup: discovery responder', med((x) => x.dns.discovery.p50Ms), med((x) => x.dns.discovery.p99Ms), ''],
    ['DNS lookup: dns-packet echo (baseline)', med((x) => x.dns.echo.p50Ms), med((x) => x.dns.echo.p99Ms), ''],
    ['lookup of localhost in /etc/hosts', med((x) => x.dns.hosts.p50Ms), med((x) => x.dns.hosts.p99Ms), ''],
    ['GET by name (discovery listener)', med((x) => x.http.byName.p50Ms), med((x) => x.http.byName.p99Ms), ''],
    ['GET by tenant host (main listener)', med((x) => x.http.byHost.p50Ms), med((x) => x.http.byHost.p99Ms), ''],
    ...(r.tenantP50 !== null
      ? [
          ['in a private tenant: getaddrinfo of the zone name', med((x) => x.tenant!.byName.p50Ms), med((x) => x.tenant!.byName.p99Ms), ''],
          ['in a private tenant: localhost from /etc/hosts', med((x) => x.tenant!.hosts.p50Ms), med((x) => x.tenant!.hosts.p99Ms), ''],
        ]
      : []),
  ];
  const lines = [
    `== service discovery: ${result.rounds.length} rounds, ${result.queries} lookups and ${result.requests} sequential GETs per target per round (medians) ==`,
    table(['what', 'p50', 'p99', ''], rows),
    '',
    table(
      ['ratio (same round)', 'median', 'range'],
      [
        ['DNS p50 discovery / echo', fmt(r.dnsP50), `${fmt(result.ranges.dnsP50[0])}..${fmt(result.ranges.dnsP50[1])}`],
        ['DNS p99 discovery / echo', fmt(r.dnsP99), ''],
        ['GET p50 by name / by host', fmt(r.httpP50), `${fmt(result.ranges.httpP50[0])}..${fmt(result.ranges.httpP50[1])}`],
        ['GET p99 by name / by host', fmt(r.httpP99), ''],
        ...(r.wrkRps !== null ? [['wrk -c16 req/s by name / by host', fmt(r.wrkRps), '']] : []),
        ...(r.tenantP50 !== null ? [['in-tenant lookup p50 zone name / /etc/hosts', fmt(r.tenantP50), '']] : []),
      ],
    ),
  ];
  return lines.join('\n');
}

if (isMain(import.meta.url)) {
  const result = await runDiscoveryBench();
  process.stdout.write(`\n${formatDiscovery(result)}\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'met ' : 'MISS'} ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
