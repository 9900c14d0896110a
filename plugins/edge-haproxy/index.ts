import fs from 'node:fs';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { definePlugin } from '../../sdk/index.ts';
import { checkHaproxy } from './check.ts';
import { HaproxyEdge } from './edge.ts';
import { HaproxyProcess } from './process.ts';
import { renderConfig, renderMap, type Address, type LbMode } from './render.ts';
import { RuntimeApi } from './runtime-api.ts';
import { edgeSettingsFields, type EdgeSetting, type HaproxyEdge as EdgeConfig } from './schema.ts';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** How often counters are read and servers compared: a quarter of the shortest idleTimeout, 100 ms to 1 s. */
function tickMs(ctx: PluginContext): number {
  let shortest = Infinity;
  for (const [, service] of ctx.services.entries()) if (service.idleTimeout > 0) shortest = Math.min(shortest, service.idleTimeout);
  return Number.isFinite(shortest) ? Math.min(1_000, Math.max(100, Math.floor(shortest / 4))) : 1_000;
}

/** The longest one request may take through HAProxy: a wake and the request itself, for the slowest service. */
function serverTimeoutMs(ctx: PluginContext): number {
  let longest = 30_000;
  for (const [, service] of ctx.services.entries()) longest = Math.max(longest, service.startupTimeout + service.requestTimeout + 5_000);
  return longest;
}

/** Each service's `lb`, which HAProxy applies to the instances it carries directly (render.ts). */
function balanceOf(ctx: PluginContext): Map<string, LbMode> {
  const balance = new Map<string, LbMode>();
  for (const [name, service] of ctx.services.entries()) balance.set(name, service.lb);
  return balance;
}

function activatorAddress(url: string): Address {
  const parsed = new URL(url);
  return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port) };
}

/** Waits for HAProxy's runtime API to answer (a fresh start or reload takes a moment), bounded. */
async function untilAnswering(api: RuntimeApi, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await api.pid();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`HAProxy's runtime API did not answer within ${timeoutMs}ms: ${String(error)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function start(ctx: PluginContext, edge: EdgeConfig): void {
  const settings = ctx.settings;
  if (edge.mode === 'managed' && !LOOPBACK.test(settings.listen)) {
    throw new TenementError(
      ErrorCodes.CONFIG_INVALID,
      `settings.listen is '${settings.listen}': with edge.kind 'haproxy' the built-in proxy is HAProxy's activator and must listen on loopback (127.0.0.1); HAProxy takes the public address edge.listen`,
    );
  }
  if (edge.mode === 'managed') {
    const found = checkHaproxy(edge.binary);
    if (!found.ok) throw new TenementError(ErrorCodes.PLUGIN_UNAVAILABLE, `settings.edge is haproxy but ${found.reason ?? 'haproxy is not usable'}`);
  }
  const dir = path.join(ctx.paths.dataDir, 'haproxy');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const socket = edge.socket ?? path.join(dir, 'admin.sock');
  const api = new RuntimeApi(socket);
  const files = { configFile: path.join(dir, 'haproxy.cfg'), mapFile: path.join(dir, 'hosts.map'), errorDir: path.join(dir, 'errors') };
  let edgeSync: HaproxyEdge | null = null;
  let haproxy: HaproxyProcess | null = null;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  // The activator's address is known once the server listens (port 0 in tests): begin then.
  const begin = (): void => {
    if (closed) return;
    if (!ctx.serving) {
      setTimeout(begin, 20).unref();
      return;
    }
    const activator = activatorAddress(ctx.url);
    const listen = edge.listen;
    const render =
      edge.mode === 'managed' && listen
        ? (services: Parameters<typeof renderMap>[1]) => ({
            config: renderConfig({ domain: settings.domain, listen, activator, socket, mapFile: files.mapFile, errorDir: files.errorDir, certDir: edge.certDir, threads: edge.threads, serverTimeoutMs: serverTimeoutMs(ctx), services, balance: balanceOf(ctx) }),
            map: renderMap(settings.domain, services),
          })
        : null;
    if (render) haproxy = new HaproxyProcess(edge.binary, files.configFile, path.join(dir, 'haproxy.pid'), ctx.log);
    const sync = new HaproxyEdge(ctx, api, render, render ? files : null, haproxy);
    edgeSync = sync;
    if (haproxy) {
      try {
        fs.rmSync(socket, { force: true });
      } catch {
        // A socket left by a killed HAProxy: HAProxy replaces it itself when it can.
      }
      haproxy.killLeftover();
      sync.writeFiles();
      haproxy.onSpawn = () => {
        void untilAnswering(api, 10_000)
          .then(() => sync.kick())
          .catch((error: unknown) => ctx.log.warn({ err: String(error) }, 'haproxy did not come up'));
      };
      haproxy.start();
    } else sync.kick();
    ctx.instances.watch(() => sync.kick());
    const tick = (): void => {
      if (closed) return;
      sync.kick();
      timer = setTimeout(tick, tickMs(ctx));
      timer.unref();
    };
    tick();
  };
  setTimeout(begin, 0).unref();

  ctx.onClose(async () => {
    closed = true;
    if (timer) clearTimeout(timer);
    edgeSync?.close();
    await haproxy?.stop();
  });
}

/**
 * The production edge (docs/edge.md): with `settings.edge: { kind: 'haproxy', ... }` HAProxy carries the public
 * traffic and Tenement programs it over its runtime API; the built-in proxy becomes the activator on loopback.
 * With `edge: 'builtin'` (the default) it does nothing.
 */
export default definePlugin({
  name: 'edge-haproxy',
  version: '1.0.0',
  kernel: '^1',
  settingsFields: edgeSettingsFields,
  setup(ctx) {
    const edge = (ctx.settings as { edge?: EdgeSetting }).edge;
    if (edge === undefined || edge === 'builtin') return;
    start(ctx, edge);
  },
});
