// What the HAProxy edge tests share: why they skip without haproxy, a kernel programming a real haproxy on a
// loopback port (with a count of what the built-in proxy, the activator, forwarded), and the wait until haproxy
// routes an instance directly.
import path from 'node:path';
import type { TestContext } from 'node:test';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import type { ConfigInput } from '../../core/config/schema.ts';
import edgeHaproxy from '../../plugins/edge-haproxy/index.ts';
import { RuntimeApi } from '../../plugins/edge-haproxy/runtime-api.ts';
import { freePort, onPath, request, servePlugins, waitFor } from '../helpers.ts';

/** Why the tests that run haproxy skip (it is not installed), or false. */
export function haproxyMissing(): string | false {
  return onPath('haproxy') ? false : 'haproxy is not installed (apt-get install haproxy): the HAProxy edge cannot be tested';
}

export interface Edge {
  kernel: TestKernel;
  /** HAProxy's public address, as a base URL. */
  edge: string;
  api: RuntimeApi;
  /** Requests the built-in proxy (the activator) forwarded to an instance. */
  viaActivator: string[];
}

/** A kernel with the HAProxy edge (managed, on a free loopback port; `edgeExtra` added), closed after test `t`. */
export async function startEdge(t: TestContext, services: ConfigInput['services'], edgeExtra: Record<string, unknown> = {}): Promise<Edge> {
  const port = await freePort();
  const viaActivator: string[] = [];
  const counter = {
    name: 'count-activator',
    version: '1.0.0',
    kernel: '^1',
    setup(ctx: { hooks: { request: { tap(fn: (r: { instance: { key: string } | null }) => void): void } } }) {
      ctx.hooks.request.tap((r) => {
        if (r.instance) viaActivator.push(r.instance.key);
      });
    },
  };
  const kernel = await createTestKernel({
    plugins: [...servePlugins, edgeHaproxy, counter as never],
    config: { settings: { listen: '127.0.0.1', edge: { kind: 'haproxy', listen: `127.0.0.1:${port}`, ...edgeExtra } } as never, services },
  });
  t.after(() => kernel.close());
  const api = new RuntimeApi(path.join(kernel.config.settings.dataDir, 'haproxy', 'admin.sock'));
  await waitFor(async () => api.pid().then(() => true, () => false), 'haproxy to answer on its runtime API', 20_000);
  return { kernel, edge: `http://127.0.0.1:${port}`, api, viaActivator };
}

/** Starts the instance, waits for direct routing, hibernates it, and waits for HAProxy to send its traffic to the activator. */
export async function hibernatedBehindActivator(e: Edge, service: string, id: string): Promise<void> {
  const instance = await e.kernel.spawnInstance(service, id);
  await untilDirect(e, service, id);
  await e.kernel.hibernate(instance, 'test');
  await waitFor(
    async () => (await e.api.serverStats((b) => b === `i.${service}.${id}`)).some((s) => s.server === id && s.maint),
    `haproxy to send ${id}'s traffic to the activator`,
    10_000,
  );
}

/** Waits until HAProxy's servers for the instance point at its own port and its requests go there (direct routing). */
export async function untilDirect(e: Edge, service: string, id: string, options: { probe: boolean } = { probe: true }): Promise<void> {
  await waitFor(
    async () => {
      const view = e.kernel.instances.get(service, id);
      const port = view?.handle?.address.port;
      if (!port || view?.state !== 'running') return false;
      const stats = await e.api.serverStats((b) => b === `i.${service}.${id}` || b === `s.${service}`);
      const mine = stats.filter((s) => s.server === id);
      if (!(mine.length === 2 && mine.every((s) => !s.maint && s.addr.endsWith(`:${port}`)))) return false;
      // (A TLS edge is not probed with plain HTTP: its test asks over TLS itself.)
      if (!options.probe) return true;
      // And what a client gets: after a reload the worker before it may still take a connection or two (its map
      // has no such host yet, so the activator serves it: correct, and seen once in CI under load), so three
      // requests in a row must come straight from HAProxy.
      for (let i = 0; i < 3; i++) {
        const before = e.viaActivator.length;
        if ((await request(e.edge, `${id}.${service}.localhost`, '/pid')).status !== 200 || e.viaActivator.length !== before) return false;
      }
      return true;
    },
    `haproxy to route ${id}.${service} directly`,
    20_000,
  );
}
