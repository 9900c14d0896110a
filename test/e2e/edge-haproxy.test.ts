// The HAProxy edge (plugins/edge-haproxy, docs/edge.md): a real haproxy on a loopback port, programmed by a real
// kernel over its runtime API; echo-app instances behind it; Tenement's built-in proxy as the activator.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import type { Kernel } from '../../core/kernel.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import type { ConfigInput } from '../../core/config/schema.ts';
import edgeHaproxy from '../../plugins/edge-haproxy/index.ts';
import { RuntimeApi } from '../../plugins/edge-haproxy/runtime-api.ts';
import { echoService, freePort, onPath, request, servePlugins, waitFor } from '../helpers.ts';

const skip = onPath('haproxy') ? false : 'haproxy is not installed (apt-get install haproxy): the HAProxy edge cannot be tested';

interface Edge {
  kernel: Kernel;
  /** HAProxy's public address, as a base URL. */
  edge: string;
  api: RuntimeApi;
  /** Requests the built-in proxy (the activator) forwarded to an instance. */
  viaActivator: string[];
}

async function startEdge(t: TestContext, services: ConfigInput['services']): Promise<Edge> {
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
    config: { settings: { listen: '127.0.0.1', edge: { kind: 'haproxy', listen: `127.0.0.1:${port}` } } as never, services },
  });
  t.after(() => kernel.close());
  const api = new RuntimeApi(path.join(kernel.config.settings.dataDir, 'haproxy', 'admin.sock'));
  await waitFor(async () => api.pid().then(() => true, () => false), 'haproxy to answer on its runtime API', 20_000);
  return { kernel, edge: `http://127.0.0.1:${port}`, api, viaActivator };
}

/** Waits until HAProxy's server for the instance points at the instance's own port (direct routing). */
async function untilDirect(e: Edge, service: string, id: string): Promise<void> {
  await waitFor(
    async () => {
      const view = e.kernel.instances.get(service, id);
      const port = view?.handle?.address.port;
      if (!port || view?.state !== 'running') return false;
      const stats = await e.api.serverStats((b) => b === `i.${service}.${id}` || b === `s.${service}`);
      const mine = stats.filter((s) => s.server === id);
      return mine.length === 2 && mine.every((s) => s.addr.endsWith(`:${port}`));
    },
    `haproxy to route ${id}.${service} directly`,
    20_000,
  );
}

describe('HAProxy edge', { skip, timeout: 180_000 }, () => {
  test('routes two tenants through haproxy, directly to their instances', async (t) => {
    const e = await startEdge(t, { echo: echoService({ idleTimeout: 0 }) });
    await e.kernel.spawnInstance('echo', 'alice');
    await e.kernel.spawnInstance('echo', 'bob');
    await untilDirect(e, 'echo', 'alice');
    await untilDirect(e, 'echo', 'bob');
    const before = e.viaActivator.length;
    const a = await request(e.edge, 'alice.echo.localhost', '/pid');
    const b = await request(e.edge, 'bob.echo.localhost:8080', '/pid');
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal(Number(a.body), e.kernel.instances.get('echo', 'alice')?.handle?.pid);
    assert.equal(Number(b.body), e.kernel.instances.get('echo', 'bob')?.handle?.pid);
    assert.equal(e.viaActivator.length, before, 'served by haproxy directly, not through the activator');
    const echoed = JSON.parse((await request(e.edge, 'alice.echo.localhost', '/echo')).body) as { headers: Record<string, string> };
    assert.equal(echoed.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(echoed.headers['x-forwarded-proto'], 'http');
  });
});
