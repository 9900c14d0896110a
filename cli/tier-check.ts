/**
 * Checks each isolation tier for real, as `ten doctor` reports it: the runtime's probe hook, then a tiny node
 * HTTP app started in the tier by a kernel booted with the plugins `ten serve` loads (in a temporary data
 * directory), one request through the proxy, and a stop. Tiers run side by side, each under its own deadline.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { TIERS, type ServiceInput, type Tier } from '../core/config/schema.ts';
import { errorMessage } from '../core/errors.ts';
import { bootKernel, type BootedKernel } from '../core/boot.ts';
import type { Instance } from '../core/instance.ts';
import type { TierProbe } from '../core/types.ts';
import { pluginsWithAllRuntimes } from './tier-runtimes.ts';

/**
 * works: a tiny app started, answered and stopped; available: its probe says yes, nothing was started (--probe-only,
 * or wasm); missing: no runtime in this build; unavailable: its probe says no; failed: the tiny app did not answer.
 */
export type TierStatus = 'works' | 'available' | 'missing' | 'unavailable' | 'failed';

export interface TierReport {
  tier: Tier;
  status: TierStatus;
  /** A runtime for the tier is loaded. */
  runtime: boolean;
  /** Its probe says this host can run it. */
  available: boolean;
  /** Usable as far as checked: status 'works' or 'available'. */
  works: boolean;
  /** Spawn to first answer, ms (null when it did not answer, or was not started). */
  answeredMs: number | null;
  /** Worth knowing even when it works (emulated and slow, the platform chosen...). */
  note: string | null;
  /** Why it does not work, and how to fix it. */
  reason: string | null;
}

export interface TierCheckOptions {
  /** Deadline of each tier, ms; the microvm tier (a whole VM boot, emulated on some hosts) gets four times it. */
  timeoutMs?: number;
  /** Only ask the probes; start nothing. */
  probeOnly?: boolean;
}

const APP = `import { createServer } from 'node:http';
const server = createServer((req, res) => res.end('ok'));
if (process.env.SOCKET_PATH) server.listen(process.env.SOCKET_PATH);
else server.listen(Number(process.env.PORT), process.env.HOST || '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

/** Tiers whose instance is not a node program (wasm runs a WebAssembly module): probed, not started. */
const PROBE_ONLY_TIERS: ReadonlySet<Tier> = new Set(['wasm']);

const serviceName = (tier: Tier): string => `doctor-${tier}`;

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`}`)), ms);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

async function probeTier(kernel: BootedKernel, tier: Tier, timeoutMs: number): Promise<TierProbe> {
  const hook = kernel.hooks.probe.get(tier);
  if (!hook || hook.taps.length === 0) return { available: true };
  try {
    return (await withTimeout(hook.promise(), timeoutMs, `the ${tier} probe`)) ?? { available: true };
  } catch (error) {
    return { available: false, reason: errorMessage(error) };
  }
}

/** GET / through the kernel's proxy with the instance's host name. */
function getThroughProxy(kernel: BootedKernel, host: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  const url = new URL(kernel.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: '/', headers: { host }, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.once('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.once('error', reject);
    req.end();
  });
}

/** The instance's last error and the tail of its output: what a failed start leaves to go on. */
function failureDetail(instance: Instance | undefined): string {
  if (!instance) return '';
  const tail = instance.logs
    .query({ limit: 3 })
    .map((line) => line.line.trim())
    .filter(Boolean)
    .join(' | ');
  return [instance.lastError, tail && `output: ${tail}`].filter(Boolean).join('; ');
}

type StartResult = Pick<TierReport, 'status' | 'works' | 'answeredMs' | 'reason'>;
const failed = (reason: string): StartResult => ({ status: 'failed', works: false, answeredMs: null, reason });

async function startTier(kernel: BootedKernel, tier: Tier, timeoutMs: number): Promise<StartResult> {
  const service = serviceName(tier);
  const started = performance.now();
  try {
    const instance = await withTimeout(kernel.spawnInstance(service, 'probe'), timeoutMs, `starting a ${tier} instance`);
    if (instance.state !== 'running') return failed(`the instance did not start: ${failureDetail(instance) || instance.state}`);
    if (instance.tier !== tier) return failed(`the instance ran on the ${instance.tier} tier instead: ${kernel.tierOf(instance.service).fallbackReason ?? ''}`);
    const left = Math.max(1_000, timeoutMs - (performance.now() - started));
    const reply = await getThroughProxy(kernel, `probe.${service}.${kernel.config.settings.domain}`, left);
    const answeredMs = Math.round(performance.now() - started);
    if (reply.status !== 200 || reply.body !== 'ok') return failed(`the instance answered ${reply.status}: ${reply.body.slice(0, 200)}`);
    await withTimeout(kernel.removeInstance(instance, 'doctor'), timeoutMs, `stopping the ${tier} instance`);
    return { status: 'works', works: true, answeredMs, reason: null };
  } catch (error) {
    return failed([errorMessage(error), failureDetail(kernel.instances.get(service, 'probe'))].filter(Boolean).join('; '));
  }
}

export async function checkTiers(options: TierCheckOptions = {}): Promise<TierReport[]> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  // An emulated (TCG) guest boot took 20-40 s on a loaded 2-vCPU host.
  const deadline = (tier: Tier): number => (tier === 'microvm' ? timeoutMs * 4 : timeoutMs);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-doctor-'));
  // The tenant uid (Tenement as root) must reach the app; the data dir's own folders are prepared by the runtimes.
  chmodSync(dir, 0o755);
  const app = path.join(dir, 'app.mjs');
  writeFileSync(app, APP, { mode: 0o644 });
  // No management API: the check needs no token (and leaves no admin.token message behind).
  const { plugins, loadErrors } = await pluginsWithAllRuntimes({ exclude: ['auth-bearer'] });
  const services: Record<string, ServiceInput> = {};
  for (const tier of TIERS) {
    if (PROBE_ONLY_TIERS.has(tier)) continue;
    services[serviceName(tier)] = {
      command: 'node',
      args: [app],
      cwd: dir,
      isolation: tier,
      // A tier without a runtime would stop the whole kernel's start-up; its report says why it is missing.
      ...(tier === 'process' ? {} : { fallback: ['process'] }),
      health: '/',
      restart: 'never',
      idleTimeout: false,
      startupTimeout: deadline(tier),
      stopTimeout: 2_000,
    };
  }
  let kernel: BootedKernel | null = null;
  try {
    kernel = await bootKernel({
      plugins,
      config: { settings: { dataDir: path.join(dir, 'data'), listen: '127.0.0.1' }, services },
      dir,
    });
    const booted = kernel;
    const reports = await Promise.all(
      TIERS.map(async (tier): Promise<TierReport> => {
        const runtime = (booted.hooks.spawn.get(tier)?.taps.length ?? 0) > 0;
        if (!runtime) {
          const reason = loadErrors.get(tier) ?? `no runtime for the '${tier}' tier in this build (runtimes/${tier} is missing)`;
          return { tier, status: 'missing', runtime, available: false, works: false, answeredMs: null, note: null, reason };
        }
        const probe = await probeTier(booted, tier, deadline(tier));
        const base = { tier, runtime, available: probe.available, note: probe.note ?? null };
        if (!probe.available) {
          return { ...base, status: 'unavailable', works: false, answeredMs: null, reason: probe.reason ?? 'its probe says the host cannot run it' };
        }
        if (options.probeOnly || PROBE_ONLY_TIERS.has(tier)) {
          const note = [base.note, PROBE_ONLY_TIERS.has(tier) ? 'probed only (its instances are WebAssembly modules, not a node app)' : 'probed only']
            .filter(Boolean)
            .join('; ');
          return { ...base, note, status: 'available', works: true, answeredMs: null, reason: null };
        }
        return { ...base, ...(await startTier(booted, tier, deadline(tier))) };
      }),
    );
    // One key order for every tier, for people reading the JSON.
    return reports.map((r) => ({ tier: r.tier, status: r.status, runtime: r.runtime, available: r.available, works: r.works, answeredMs: r.answeredMs, note: r.note, reason: r.reason }));
  } catch (error) {
    // The kernel itself did not boot: every tier is reported with that reason.
    const reason = `cannot boot a kernel with the default plugins: ${errorMessage(error)}`;
    return TIERS.map((tier) => ({ tier, status: 'failed', runtime: false, available: false, works: false, answeredMs: null, note: null, reason }));
  } finally {
    await kernel?.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}
