// The two edges a client can reach Tenement through (docs/edge.md), for tests that must hold on both: the
// built-in proxy (`edge: 'builtin'`), and HAProxy programmed by Tenement (`edge: { kind: 'haproxy' }`, a real
// haproxy on a loopback port, the built-in proxy behind it as the activator). A test takes `EDGES`, boots a
// kernel per edge with `edgeKernel`, sends to `url`, and calls `settled()` after changing instances or weights
// so that HAProxy routes as the kernel does before the test asserts anything.
import fs from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type { ConfigInput, ServiceInput } from '../core/config/schema.ts';
import type { PluginEntry } from '../core/plugin.ts';
import { createTestKernel, type TestKernel } from '../core/test-kernel.ts';
import type { InstanceEvent } from '../core/types.ts';
import edgeHaproxy from '../plugins/edge-haproxy/index.ts';
import { RuntimeApi } from '../plugins/edge-haproxy/runtime-api.ts';
import { freePort, onPath, reapSpawns, servePlugins, waitFor } from './helpers.ts';

export type EdgeKind = 'builtin' | 'haproxy';

export const EDGES: readonly EdgeKind[] = ['builtin', 'haproxy'];

/** A test's `skip` for an edge: false, or why it cannot run here. */
export function edgeSkip(edge: EdgeKind): false | string {
  if (edge === 'builtin' || onPath('haproxy')) return false;
  return 'haproxy is not installed (apt-get install haproxy): the HAProxy edge cannot be tested';
}

export interface EdgeServer {
  edge: EdgeKind;
  kernel: TestKernel;
  /** Where a client sends its requests: the built-in proxy, or HAProxy's public address. */
  url: string;
  /** HAProxy's runtime API (null on the built-in edge). */
  api: RuntimeApi | null;
  /** Requests the built-in proxy carried to an instance (its `request` hook): on HAProxy, only the activator's. */
  viaBuiltin: () => number;
  /** 'spawned' events per instance key, and every lifecycle event in order. */
  spawns: Map<string, number>;
  events: InstanceEvent[];
  /**
   * Resolves once the edge routes as the kernel does now: on HAProxy, every instance has its servers, each at
   * the instance's address while it runs (in maintenance otherwise: the activator serves) and with its weight.
   * At once on the built-in.
   */
  settled(timeoutMs?: number): Promise<void>;
}

export interface EdgeOptions {
  settings?: Record<string, unknown>;
  /** Plugins besides the serve plugins (and edge-haproxy, added on the HAProxy edge). */
  plugins?: readonly PluginEntry[];
  /** Extra fields of settings.edge on the HAProxy edge. */
  haproxy?: Record<string, unknown>;
}

/**
 * A started kernel behind the given edge, closed after the test (HAProxy stopped with it); every process it
 * spawned must be gone by then.
 */
export async function edgeKernel(t: TestContext, edge: EdgeKind, services: Record<string, ServiceInput>, options: EdgeOptions = {}): Promise<EdgeServer> {
  const plugins = [...servePlugins, ...(edge === 'haproxy' ? [edgeHaproxy] : []), ...(options.plugins ?? [])];
  const publicPort = edge === 'haproxy' ? await freePort() : 0;
  const settings = {
    ...options.settings,
    ...(edge === 'haproxy' ? { listen: '127.0.0.1', edge: { kind: 'haproxy', listen: `127.0.0.1:${publicPort}`, ...options.haproxy } } : {}),
  };
  const config = { settings, services } as ConfigInput;
  const kernel = await createTestKernel({ plugins, config });
  let carried = 0;
  kernel.hooks.request.tap('test-edge-count', () => void carried++);
  const viaBuiltin = (): number => carried;
  const { spawns, events } = reapSpawns(t, kernel);
  if (edge === 'builtin') {
    return { edge, kernel, url: kernel.url, api: null, viaBuiltin, spawns, events, settled: () => Promise.resolve() };
  }
  const api = new RuntimeApi(path.join(kernel.config.settings.dataDir, 'haproxy', 'admin.sock'));
  const pidFile = path.join(kernel.config.settings.dataDir, 'haproxy', 'haproxy.pid');
  await waitFor(async () => api.pid().then(() => true, () => false), 'haproxy to answer on its runtime API', 20_000);
  let mismatch = '';
  const settled = (timeoutMs = 20_000): Promise<void> =>
    waitFor(
      async () => {
        // Just after a reload the old worker still accepts for a moment on the listeners it shares with the new one
        // (the admin socket too): a stats read may come from either, and a request may land on the other. Routing
        // is settled only once one worker is left (CI: one request of seven reached the activator via the old one).
        const workers = haproxyWorkers(pidFile);
        if (workers !== 1) {
          mismatch = `${workers} haproxy workers`;
          return false;
        }
        const stats = await api.serverStats((b) => b.startsWith('s.') || b.startsWith('i.')).catch(() => null);
        if (!stats) return false;
        mismatch = `instances ${JSON.stringify(kernel.instances.list().map((v) => [v.key, v.state, v.weight, v.handle?.address.port]))}, haproxy ${JSON.stringify(stats.map((s) => [s.backend, s.server, s.addr, s.maint, s.weight]))}`;
        for (const view of kernel.instances.list()) {
          const address = view.state === 'running' ? view.handle?.address : undefined;
          // Running on TCP: both servers at its port; otherwise both in maintenance (the activator serves).
          const port = address?.port && !address.socketPath ? address.port : null;
          const pooled = stats.find((s) => s.backend === `s.${view.service}` && s.server === view.id);
          const own = stats.find((s) => s.backend === `i.${view.service}.${view.id}` && s.server === view.id);
          // A server in maintenance does not show the weight it was set (HAProxy reports the one it went there with).
          if (!pooled || !own || (port !== null && pooled.weight !== view.weight)) return false;
          for (const server of [pooled, own]) {
            if (port === null ? !server.maint : server.maint || !server.addr.endsWith(`:${port}`)) return false;
          }
        }
        return true;
      },
      'haproxy to route as the kernel does',
      timeoutMs,
    ).catch((error: Error) => {
      throw new Error(`${error.message}: ${mismatch}`);
    });
  return { edge, kernel, url: `http://127.0.0.1:${publicPort}`, api, viaBuiltin, spawns, events, settled };
}

/** How many worker processes the HAProxy master named in its pid file has now (-1: no master). */
function haproxyWorkers(pidFile: string): number {
  let master: number;
  try {
    master = Number(fs.readFileSync(pidFile, 'utf8').trim().split('\n')[0]);
  } catch {
    return -1;
  }
  let count = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The parent pid is the 2nd field after the command's closing parenthesis (a command may hold spaces).
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === master) count++;
    } catch {
      // gone meanwhile
    }
  }
  return count;
}
