// Fleet-mode test helpers: Tenement nodes (in-process kernels with the fleet plugin) on one NATS cluster.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ServiceInput } from '../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../core/test-kernel.ts';
import fleet, { fleetOf, type FleetNode } from '../plugins/fleet/index.ts';
import type { PluginEntry } from '../sdk/index.ts';
import authBearer from '../plugins/auth-bearer/index.ts';
import { FIXTURES, servePlugins, waitFor } from './helpers.ts';

export const FLEET_APP = path.join(FIXTURES, 'fleet-app.mjs');
export const FLEET_SECRET = 'test-fleet-secret-0123456789abcdef';

export interface TestNode {
  id: string;
  kernel: TestKernel;
  fleet: FleetNode;
  dataDir: string;
}

/** The app service: autoCreate without the per-address bound (every test client is 127.0.0.1). */
export function fleetApp(spawnLog: string, overrides: Partial<ServiceInput> = {}): ServiceInput {
  return {
    command: `node ${FLEET_APP}`,
    health: '/health',
    autoCreate: { max: 10_000, perAddress: { count: 10_000, window: '1m' } },
    env: { SPAWN_LOG: spawnLog },
    ...overrides,
  };
}

export async function startNode(
  id: string,
  servers: string[],
  services: Record<string, ServiceInput>,
  fleetOptions: Record<string, unknown> = {},
  instances: Record<string, string[]> = {},
  extraPlugins: readonly PluginEntry[] = [],
): Promise<TestNode> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `tnm-fleet-${id}-`));
  const kernel = await createTestKernel({
    plugins: [...servePlugins, authBearer, fleet, ...extraPlugins],
    config: {
      settings: { dataDir, fleet: { servers, node: id, heartbeatMs: 200, expiryMs: 4000, secret: FLEET_SECRET, ...fleetOptions } },
      services,
      instances,
    },
  });
  const node = fleetOf(id);
  if (!node) throw new Error(`fleet node ${id} did not start`);
  return { id, kernel, fleet: node, dataDir };
}

export async function closeNode(node: TestNode): Promise<void> {
  await node.kernel.close().finally(() => rmSync(node.dataDir, { recursive: true, force: true }));
}

/** Waits until every node sees `count` live nodes. */
export async function waitLive(nodes: readonly TestNode[], count: number, timeoutMs = 30_000): Promise<void> {
  await waitFor(() => nodes.every((n) => n.fleet.state.nodes().filter((v) => v.live).length === count), `${count} live fleet nodes`, timeoutMs);
}

export function tempFile(prefix: string): { file: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  const file = path.join(dir, 'log');
  writeFileSync(file, '');
  // Instances run as their own tenant uid when the tests run as root: they append to it too.
  chmodSync(dir, 0o755);
  chmodSync(file, 0o666);
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
