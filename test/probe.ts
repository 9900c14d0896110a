// The isolation probe app (fixtures/probe-app.mjs) as the tier tests use it: the service that runs it and the
// shape of what it reports.
import assert from 'node:assert/strict';
import path from 'node:path';
import type { ServiceInput, Tier } from '../core/config/schema.ts';
import type { Kernel } from '../core/kernel.ts';
import type { SpawnSpec } from '../core/types.ts';
import { FIXTURES } from './helpers.ts';

export const PROBE_APP = path.join(FIXTURES, 'probe-app.mjs');

/** The outcome of one thing the probe tried: a write, a read, a signal, a connection. */
export interface Attempt {
  ok: boolean;
  code?: string;
}

/** The answer of GET /probe: what the tenant sees and may do. */
export interface Probe {
  pids: number[];
  hostname: string;
  uid: number;
  gid: number;
  capEff: string | null;
  writable: Record<'/' | '/usr' | '/tmp' | 'dataDir', Attempt>;
  read: Attempt | null;
  kill: Attempt | null;
  mount: { ok: boolean; stderr: string };
  env: Record<string, string>;
}

/** A service running the probe app (health-checked, in the fixtures folder), with overrides: the tier, limits... */
export function probeService(overrides: Partial<ServiceInput> = {}): ServiceInput {
  return { command: `node ${PROBE_APP}`, health: '/health', cwd: FIXTURES, ...overrides };
}

/**
 * What a sandboxing tier promises the probe app of instance `a`: its own hostname, not root (when Tenement is),
 * no capabilities, a read-only system with /tmp and DATA_DIR writable, no signal to a host process, no mount,
 * and none of the host's environment (the caller sets TENEMENT_TEST_SECRET).
 */
export function assertConfined(probe: Probe): void {
  assert.equal(probe.hostname, 'a-probe');
  if (process.getuid?.() === 0) assert.notEqual(probe.uid, 0, 'a tenant never runs as root');
  assert.equal(probe.capEff, '0000000000000000', 'no capabilities');
  assert.equal(probe.writable['/'].ok, false, '/ is read-only');
  assert.equal(probe.writable['/usr'].ok, false, '/usr is read-only');
  assert.equal(probe.writable['/tmp'].ok, true, '/tmp is writable');
  assert.equal(probe.writable.dataDir.ok, true, 'DATA_DIR is writable');
  assert.equal(probe.kill?.ok, false, 'a host process cannot be signalled');
  assert.equal(probe.mount.ok, false, 'mount fails');
  assert.equal(probe.env.TENEMENT_TEST_SECRET, undefined, "the host's environment does not leak in");
}

/**
 * Asserts that `tier`'s runtime refuses to spawn the probe app (as instance `probe:x` of the kernel's `probe`
 * service) with TNM_ERR_TIER_UNAVAILABLE, its message naming `fix` (the package to install).
 */
export async function assertTierUnavailable(kernel: Kernel, tier: Tier, fix: RegExp): Promise<void> {
  const spec: SpawnSpec = {
    service: 'probe',
    id: 'x',
    tier,
    command: 'node',
    args: [PROBE_APP],
    env: {},
    cwd: FIXTURES,
    port: 1,
    host: '127.0.0.1',
    dataDir: kernel.instanceDir('probe', 'x'),
    config: kernel.config.services.probe!,
    onLog: () => undefined,
    onExit: () => undefined,
  };
  await assert.rejects(kernel.hooks.spawn.get(tier)!.promise(spec), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'TNM_ERR_TIER_UNAVAILABLE');
    assert.match(error.message, fix);
    return true;
  });
}
