import type net from 'node:net';
import { autoCreates } from '../../core/auto-create.ts';
import { egressServices } from '../../core/config/egress.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { DnsResponder, listenTcp, type QueryCounts } from './responder.ts';
import type { ResolvConfFiles } from './resolv-conf.ts';
import { discoveryRoute, type Caller } from './route.ts';
import type { ZoneView } from './zone.ts';

/** Ports on each private instance's host side (the network plugin opens exactly these: plugins/network/egress.ts). */
export const PRIVATE_PORTS = { dns: 53, http: 80 } as const;
/** HTTP connections one instance may hold open to its discovery listener. */
const MAX_HTTP_CONNECTIONS = 256;

type Ctx = Pick<PluginContext, 'services' | 'instances' | 'proxy' | 'settings' | 'log'>;

/** The zone as a caller sees it: services it may call; instances that exist or that autoCreate would make. */
export function zoneView(ctx: Ctx, allowed: (service: string) => boolean, address: string, port: number): ZoneView {
  return {
    allowed: (service) => ctx.services.get(service) !== undefined && allowed(service),
    instanceKnown(service, id) {
      const config = ctx.services.get(service);
      return config !== undefined && (ctx.instances.get(service, id) !== undefined || autoCreates(config));
    },
    address,
    port,
  };
}

/** Whether an instance of `service` may call `target` by name: its current `egress` names it. */
export function egressAllows(ctx: Pick<PluginContext, 'services'>, service: string, target: string): boolean {
  return egressServices(ctx.services.get(service)?.egress).includes(target);
}

/** One run of a private instance whose egress names services: its listeners on its host side, its resolv.conf. */
interface PrivateCaller {
  key: string;
  address: string;
  hostSide: string;
  dns: DnsResponder | null;
  http: net.Server | null;
  resolvConf: string;
}

/**
 * The discovery listeners of private instances, one set per run: made when the run's namespace is attached
 * (beforeSpawn, before the app can ask anything), closed when the run ends. Bounded by the instances running.
 */
export class PrivateCallers {
  private readonly byKey = new Map<string, PrivateCaller>();

  constructor(
    private readonly ctx: Ctx,
    private readonly files: ResolvConfFiles,
    private readonly counts: QueryCounts,
  ) {}

  get size(): number {
    return this.byKey.size;
  }

  async attach(key: string, service: string, net: { address: string; hostSide: string }): Promise<PrivateCaller> {
    await this.release(key);
    // A host side another run still holds (its end not seen yet) is that run's no longer.
    for (const [other, caller] of this.byKey) if (caller.hostSide === net.hostSide) await this.release(other);
    const { ctx } = this;
    const caller: Caller = {
      who: key,
      from: (remote) => remote === net.address,
      allowed: (target) => egressAllows(ctx, service, target),
    };
    const dns = await DnsResponder.start({
      host: net.hostSide,
      port: PRIVATE_PORTS.dns,
      view: (remote) => (caller.from(remote) ? zoneView(ctx, caller.allowed, net.hostSide, PRIVATE_PORTS.http) : null),
      log: ctx.log,
      counts: this.counts,
    });
    const route = discoveryRoute(ctx, caller);
    const http = await listenTcp(net.hostSide, PRIVATE_PORTS.http, (socket) => ctx.proxy.accept(socket, route), {
      maxConnections: MAX_HTTP_CONNECTIONS,
      allowHalfOpen: true,
    }).catch((error: NodeJS.ErrnoException) => {
      ctx.log.warn({ instance: key, address: `${net.hostSide}:${PRIVATE_PORTS.http}`, err: error.message }, `service discovery cannot listen for HTTP on ${net.hostSide}:${PRIVATE_PORTS.http}: ${error.code ?? error.message}`);
      return null;
    });
    const entry: PrivateCaller = { key, address: net.address, hostSide: net.hostSide, dns, http, resolvConf: this.files.write(net.hostSide, key) };
    this.byKey.set(key, entry);
    return entry;
  }

  /** Closes the run's listeners and removes its resolv.conf (the sandbox that bound it is gone by then). */
  async release(key: string): Promise<void> {
    const entry = this.byKey.get(key);
    if (!entry) return;
    this.byKey.delete(key);
    this.files.remove(entry.resolvConf);
    // Not waited for: its connections belong to the proxy now, which ends them (the kernel destroys the rest at stop).
    entry.http?.close();
    await entry.dns?.close();
  }

  async close(): Promise<void> {
    await Promise.all([...this.byKey.keys()].map((key) => this.release(key)));
  }
}
