/**
 * Churn soak: steady load over many tenants of a small Node app behind a real `ten serve` while instances
 * hibernate (a short idleTimeout, and through the API), wake, restart (API), get created and deleted (API).
 * Prints, every sample interval, the server's RSS, open descriptors, listening sockets, threads, requests and
 * errors. Loopback only; every loop is bounded by the run's duration.
 *
 *   npm run bench -- soak                          # 30 minutes
 *   SOAK_MINUTES=5 SOAK_TENANTS=20 SOAK_RPS=150 npm run bench -- soak
 *   node --import tsx bench/soak.ts                # alone
 *
 * Env: SOAK_MINUTES (30), SOAK_TENANTS (30), SOAK_CONCURRENCY (8), SOAK_RPS (200, all workers together),
 * SOAK_CHURN_MS (500: one API action per interval), SOAK_SAMPLE_SECONDS (60), SOAK_WARMUP_SECONDS (30).
 *
 * Every request is sorted into one of three counts: served (the tenant's own app answered), raced (a coded
 * Tenement answer to a request whose tenant was being deleted while it ran: documented and retryable, the
 * tenant is gone), and errors (anything else: a 5xx, a hang-up, a timeout, another tenant's answer).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { BENCH_DIR, MB, fmt, fmtInt, isMain, makeTempDir, removeTempDir, sleep, startTenServe } from './lib.ts';
import { SLOW_MS, soakOptionsFromEnv, type SoakOptions } from './soak-options.ts';
import { fdCount, listenSocketCount, rssOf, threadCount } from './soak-proc.ts';
import { formatSoak, type SoakResult, type SoakSample } from './soak-report.ts';

export { soakOptionsFromEnv, type SoakOptions } from './soak-options.ts';
export { fdCount, listenSocketCount, threadCount } from './soak-proc.ts';
export { formatSoak, type SoakResult, type SoakSample } from './soak-report.ts';

const APP = path.join(BENCH_DIR, 'fixtures', 'soak-app.mjs');
const SERVICE = 'soak';

// ---- HTTP ----

interface Answer {
  status: number;
  body: string;
}

function send(port: number, host: string, method: string, urlPath: string, options: { agent?: http.Agent | false; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path: urlPath, headers: { host, ...options.headers }, agent: options.agent ?? false, timeout: options.timeoutMs ?? 60_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function codeOf(body: string): string | null {
  try {
    return (JSON.parse(body) as { error?: { code?: string } }).error?.code ?? null;
  } catch {
    return null;
  }
}

interface Tenant {
  id: string;
  state: 'live' | 'deleting' | 'deleted';
  /** An API action on it is running: the churn loop takes one tenant at a time. */
  busy: boolean;
  /** The last API action on it and when it ran (performance.now()), to tell what a slow request overlapped. */
  lastAction: { kind: string; start: number; end: number } | null;
}

/** Runs the soak against a fresh `ten serve` and returns every figure; prints a line per sample. */
export async function runSoakBench(options: SoakOptions): Promise<SoakResult> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const dir = makeTempDir('soak');
  const dataDir = path.join(dir, 'data');
  const configFile = path.join(dir, 'tenement.config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      settings: { domain: 'localhost', dataDir, listen: '127.0.0.1' },
      services: {
        [SERVICE]: { command: `node ${APP}`, health: '/', idleTimeout: '2s', startupTimeout: '30s', wakeQueue: 1000 },
      },
    }),
  );
  const serve = await startTenServe({ config: configFile, dataDir, timeoutMs: 60_000, ...(options.script ? { script: options.script } : {}) });
  const pid = serve.child.pid;
  let listenerWarnings = 0;
  serve.child.process.stderr?.on('data', (chunk: Buffer) => {
    listenerWarnings += chunk.toString('utf8').split('MaxListenersExceededWarning').length - 1;
  });
  const token = readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
  const api = (method: string, urlPath: string): Promise<Answer> =>
    send(serve.port, 'localhost', method, urlPath, { headers: { authorization: `Bearer ${token}` } });

  const result: SoakResult = {
    options: { minutes: options.minutes, tenants: options.tenants, concurrency: options.concurrency, rps: options.rps, churnEveryMs: options.churnEveryMs, sampleEveryMs: options.sampleEveryMs, warmupMs: options.warmupMs },
    samples: [],
    requests: 0,
    served: 0,
    raced: 0,
    errors: 0,
    errorKinds: {},
    errorSamples: [],
    raceKinds: {},
    actions: {},
    maxLatencyMs: 0,
    slowOver2500ms: 0,
    slowCauses: {},
    quietFds: { afterWarmup: 0, end: 0 },
    rssFromMinute5: null,
    internalErrors: 0,
    serverExited: false,
    goals: [],
  };
  const countError = (kind: string): void => {
    result.errors += 1;
    result.errorKinds[kind] = (result.errorKinds[kind] ?? 0) + 1;
  };

  let nextId = 0;
  const tenants: Tenant[] = [];
  const live = (): Tenant[] => tenants.filter((t) => t.state === 'live');
  const create = async (): Promise<void> => {
    const tenant: Tenant = { id: `t${nextId++}`, state: 'deleted', busy: true, lastAction: null };
    const answer = await api('POST', `/api/instances/${SERVICE}/${tenant.id}`).catch((e: Error) => ({ status: 0, body: e.message }));
    result.actions[`create ${answer.status}`] = (result.actions[`create ${answer.status}`] ?? 0) + 1;
    if (answer.status === 200 || answer.status === 201) {
      tenant.state = 'live';
      tenant.busy = false;
      tenants.push(tenant);
    }
  };

  try {
    for (let i = 0; i < options.tenants; i += 4) await Promise.all(Array.from({ length: Math.min(4, options.tenants - i) }, () => create()));

    let stopped = false;
    let paused = false;
    let interval = { requests: 0, errors: 0, raced: 0, actions: 0 };

    // Skewed traffic: tenant i of the live list is picked with weight 1/(i+1)^2, so the head is busy and the
    // tail quiet enough to hibernate on its idleTimeout and be woken again by a later request.
    const weight = (i: number): number => 1 / ((i + 1) * (i + 1));
    const pick = (): Tenant | null => {
      const list = live();
      if (list.length === 0) return null;
      let total = 0;
      for (let i = 0; i < list.length; i++) total += weight(i);
      let r = Math.random() * total;
      for (let i = 0; i < list.length; i++) {
        r -= weight(i);
        if (r <= 0) return list[i]!;
      }
      return list[list.length - 1]!;
    };

    const agents: http.Agent[] = [];
    /** Load requests sent and not yet answered. */
    let inFlight = 0;
    const worker = async (): Promise<void> => {
      let agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      agents.push(agent);
      const gapMs = (options.concurrency * 1000) / options.rps;
      let next = performance.now();
      while (!stopped) {
        if (paused) {
          agent.destroy();
          while (paused && !stopped) await sleep(100);
          agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
          agents.push(agent);
          next = performance.now();
          continue;
        }
        next += gapMs;
        const wait = next - performance.now();
        if (wait > 0) await sleep(wait);
        else if (wait < -1000) next = performance.now();
        const tenant = pick();
        if (!tenant) {
          await sleep(50);
          continue;
        }
        const started = performance.now();
        result.requests += 1;
        interval.requests += 1;
        let answer: Answer | null = null;
        let failure = '';
        inFlight += 1;
        try {
          answer = await send(serve.port, `${tenant.id}.${SERVICE}.localhost`, 'GET', '/', { agent });
        } catch (error) {
          failure = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
        } finally {
          inFlight -= 1;
        }
        const ms = performance.now() - started;
        if (ms > result.maxLatencyMs) result.maxLatencyMs = ms;
        if (ms > SLOW_MS) {
          result.slowOver2500ms += 1;
          const action = tenant.lastAction;
          const overlapped = action && action.start <= started + ms && (action.end === 0 || action.end >= started) ? action.kind : 'no API action';
          result.slowCauses[overlapped] = (result.slowCauses[overlapped] ?? 0) + 1;
        }
        if (answer && answer.status === 200 && answer.body === `tenant ${tenant.id}`) {
          result.served += 1;
          continue;
        }
        const code = answer ? codeOf(answer.body) : null;
        if (tenant.state !== 'live' && code !== null) {
          result.raced += 1;
          const kind = `${answer!.status} ${code}`;
          result.raceKinds[kind] = (result.raceKinds[kind] ?? 0) + 1;
          interval.raced += 1;
          continue;
        }
        interval.errors += 1;
        countError(answer ? `${answer.status} ${code ?? answer.body.slice(0, 60)}` : `client: ${failure}`);
        if (result.errorSamples.length < 5) {
          const action = tenant.lastAction;
          const near = action ? `${action.kind} ${Math.round(action.start - started)} ms from its start${action.end === 0 ? ', still running' : `, ended ${Math.round(action.end - started)} ms`}` : 'no API action';
          result.errorSamples.push(`${tenant.id} after ${Math.round(ms)} ms (${near}): ${answer ? `${answer.status} ${answer.body.slice(0, 300).trim()}` : failure}`);
        }
      }
    };

    const act = async (): Promise<void> => {
      const candidates = live().filter((t) => !t.busy);
      if (candidates.length === 0) return;
      const tenant = candidates[Math.floor(Math.random() * candidates.length)]!;
      const roll = Math.random();
      const kind = roll < 0.4 ? 'hibernate' : roll < 0.8 ? 'restart' : 'replace';
      tenant.busy = true;
      interval.actions += 1;
      const record = { kind, start: performance.now(), end: 0 };
      tenant.lastAction = record;
      try {
        if (kind === 'replace') {
          tenant.state = 'deleting';
          const answer = await api('DELETE', `/api/instances/${SERVICE}/${tenant.id}`).catch((e: Error) => ({ status: 0, body: e.message }));
          result.actions[`delete ${answer.status}`] = (result.actions[`delete ${answer.status}`] ?? 0) + 1;
          tenant.state = 'deleted';
          tenants.splice(tenants.indexOf(tenant), 1);
          await create();
          return;
        }
        const answer = await api('POST', `/api/instances/${SERVICE}/${tenant.id}/${kind}`).catch((e: Error) => ({ status: 0, body: e.message }));
        result.actions[`${kind} ${answer.status}`] = (result.actions[`${kind} ${answer.status}`] ?? 0) + 1;
      } finally {
        record.end = performance.now();
        tenant.busy = false;
      }
    };

    const churn = async (): Promise<void> => {
      const running = new Set<Promise<void>>();
      while (!stopped) {
        await sleep(options.churnEveryMs);
        if (paused || stopped) continue;
        // At most a few actions at once: a slow restart must not pile up behind the interval.
        if (running.size >= 4) continue;
        const action = act().catch(() => undefined);
        running.add(action);
        void action.then(() => running.delete(action));
      }
      await Promise.all(running);
    };

    /** Load paused, every tenant hibernated, client connections closed: the server's own descriptors. */
    const quietFds = async (): Promise<number> => {
      paused = true;
      // Requests already sent finish first (one waiting on a wake can take seconds on a busy machine): destroying
      // the agents under them would count the client's own "socket hang up" (ECONNRESET) as a server error.
      const settleBy = Date.now() + 60_000;
      while (inFlight > 0 && Date.now() < settleBy) await sleep(50);
      for (const agent of agents) agent.destroy();
      for (const tenant of live()) await api('POST', `/api/instances/${SERVICE}/${tenant.id}/hibernate`).catch(() => undefined);
      // Upstream keep-alive sockets to the stopped apps and closed client sockets go within a few seconds.
      await sleep(6_000);
      const fds = fdCount(pid);
      paused = false;
      return fds;
    };

    const workers = Array.from({ length: options.concurrency }, () => worker());
    const churning = churn();
    const loadStarted = Date.now();
    await sleep(options.warmupMs);
    result.quietFds.afterWarmup = await quietFds();
    interval = { requests: 0, errors: 0, raced: 0, actions: 0 };
    print(`soak: ${options.tenants} tenants, ${options.concurrency} workers at ${options.rps} req/s, an API action every ${options.churnEveryMs} ms; descriptors after warm-up (quiet): ${result.quietFds.afterWarmup}`);
    print('  time   RSS MB    fds  listen  threads  requests  errors  raced  actions  running  hibernated  listener-warnings');

    const end = loadStarted + options.minutes * 60_000;
    let minute5Rss: number | null = null;
    while (Date.now() < end) {
      await sleep(Math.min(options.sampleEveryMs, Math.max(0, end - Date.now())));
      if (serve.child.process.exitCode !== null || serve.child.process.signalCode !== null) {
        result.serverExited = true;
        break;
      }
      const view = await api('GET', '/api/instances').catch(() => null);
      const states = view?.status === 200 ? ((JSON.parse(view.body) as { instances?: Array<{ state: string }> }).instances ?? []) : [];
      const sample: SoakSample = {
        at: Math.round((Date.now() - loadStarted) / 1000),
        rssMb: rssOf(pid) / MB,
        fds: fdCount(pid),
        listenSockets: listenSocketCount(pid),
        threads: threadCount(pid),
        ...interval,
        running: states.filter((s) => s.state === 'running').length,
        hibernated: states.filter((s) => s.state === 'hibernated').length,
        listenerWarnings,
      };
      interval = { requests: 0, errors: 0, raced: 0, actions: 0 };
      result.samples.push(sample);
      if (sample.at >= 300 && minute5Rss === null) minute5Rss = sample.rssMb;
      print(
        `${`${Math.floor(sample.at / 60)}:${String(sample.at % 60).padStart(2, '0')}`.padStart(6)} ${fmt(sample.rssMb, 1).padStart(8)} ${String(sample.fds).padStart(6)} ${String(sample.listenSockets).padStart(7)} ${String(sample.threads).padStart(8)} ${String(sample.requests).padStart(9)} ${String(sample.errors).padStart(7)} ${String(sample.raced).padStart(6)} ${String(sample.actions).padStart(8)} ${String(sample.running).padStart(8)} ${String(sample.hibernated).padStart(11)} ${String(sample.listenerWarnings).padStart(18)}`,
      );
    }
    stopped = true;
    await Promise.all(workers);
    await churning;
    if (!result.serverExited) {
      paused = true;
      result.quietFds.end = await quietFds();
      const metrics = await send(serve.port, 'localhost', 'GET', '/metrics').catch(() => null);
      for (const match of metrics?.body.matchAll(/^tenement_internal_errors_total\{[^}]*\} (\d+)/gm) ?? []) result.internalErrors += Number(match[1]);
    }
    for (const agent of agents) agent.destroy();

    const late = minute5Rss === null ? [] : result.samples.filter((s) => s.at >= 300).map((s) => s.rssMb / minute5Rss!);
    result.rssFromMinute5 = late.length >= 2 ? { min: Math.min(...late), max: Math.max(...late) } : null;
    result.goals.push(
      { name: 'soak: every request served (raced deletions apart)', measured: `${fmtInt(result.errors)} errors of ${fmtInt(result.requests)}`, goal: '0', met: result.errors === 0 && !result.serverExited },
      {
        name: 'soak: descriptors flat (quiet, end vs after warm-up)',
        measured: `${result.quietFds.end} vs ${result.quietFds.afterWarmup}`,
        goal: '<= +5',
        met: result.quietFds.end - result.quietFds.afterWarmup <= 5,
      },
    );
    if (result.rssFromMinute5) {
      result.goals.push({
        name: 'soak: RSS from minute 5 on, against minute 5',
        measured: `${fmt(result.rssFromMinute5.min, 3)}-${fmt(result.rssFromMinute5.max, 3)}`,
        goal: 'within 0.90-1.10',
        met: result.rssFromMinute5.min >= 0.9 && result.rssFromMinute5.max <= 1.1,
      });
    }
    return result;
  } finally {
    await serve.stop();
    removeTempDir(dir);
  }
}

if (isMain(import.meta.url)) {
  const result = await runSoakBench(soakOptionsFromEnv());
  process.stdout.write(`\n${formatSoak(result)}\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'MET ' : 'MISS'}  ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
