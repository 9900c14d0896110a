// A fleet node as test/fleet-harness.ts makes them, plus auth-bearer and the instances API: for the tests of
// fleet-wide tokens and of the fleet CLI (tenant scope and `ten ps --fleet` read /api/instances).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ServiceInput } from '../core/config/schema.ts';
import { createTestKernel } from '../core/test-kernel.ts';
import authBearer from '../plugins/auth-bearer/index.ts';
import fleet, { fleetOf } from '../plugins/fleet/index.ts';
import instancesApi from '../plugins/instances-api/index.ts';
import { FLEET_SECRET, type TestNode } from './fleet-harness.ts';
import { servePlugins } from './helpers.ts';

/** `fleetFirst`: the fleet plugin set up before auth-bearer (replication must not depend on the order). */
export async function startApiNode(id: string, servers: string[], services: Record<string, ServiceInput>, options: { fleetFirst?: boolean } = {}): Promise<TestNode> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `tnm-fleet-${id}-`));
  const kernel = await createTestKernel({
    plugins: options.fleetFirst ? [...servePlugins, fleet, authBearer, instancesApi] : [...servePlugins, authBearer, instancesApi, fleet],
    config: { settings: { dataDir, fleet: { servers, node: id, heartbeatMs: 200, expiryMs: 1500, secret: FLEET_SECRET } }, services },
  }).catch((error: unknown) => {
    // A kernel that failed to start closed itself: its folder is the only thing left.
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  });
  const node = fleetOf(id);
  if (!node) throw new Error(`fleet node ${id} did not start`);
  return { id, kernel, fleet: node, dataDir };
}

/**
 * Nodes one after the other, each told every server (its own first): nodes starting at the same moment race to
 * create the fleet's buckets, and the loser's first heartbeat can meet a stream still electing its leader (503).
 * Pushed into `nodes` as they start, so the caller's cleanup closes those that started when a later one fails.
 */
export async function startApiNodes(ids: readonly string[], urls: readonly string[], services: Record<string, ServiceInput>, nodes: TestNode[]): Promise<TestNode[]> {
  for (const [i, id] of ids.entries()) {
    const own = urls[i % urls.length]!;
    nodes.push(await startApiNode(id, [own, ...urls.filter((u) => u !== own)], services));
  }
  return nodes;
}
