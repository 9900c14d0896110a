import type { Logger } from '../../core/logger.ts';
import type { ServiceDirectory } from '../../core/plugin-context.ts';
import { ErrorCodes, TenementError } from '../../sdk/index.ts';
import type { AddressPool } from './addresses.ts';
import { missingTools, type NetTools } from './commands.ts';
import type { HostNat } from './nat.ts';
import { sequenceName, type NetNames } from './names.ts';
import { createIsolated, createPrivate, deleteNet, type InstanceNet } from './netns.ts';

export interface NamespacesOptions {
  tools: NetTools;
  names: NetNames;
  /** settings.network.range: the /30s of private instances. */
  range: string;
  pool: AddressPool;
  /** Outbound NAT, loaded before the first private namespace of a service that allows addresses off this host. */
  nat: HostNat | null;
  offHost: ReadonlyMap<string, readonly string[]>;
  services: ServiceDirectory;
  log: Logger;
  /** Keep one namespace per service ready ahead of its next start. */
  spare: boolean;
}

/**
 * The network namespaces of this server's instances: one fresh namespace per run (names are never reused within
 * a server's life), removed in the background once the run ended, and one spare per service made ahead of time
 * so a start or a wake does not wait the ~25 ms set-up.
 */
export class Namespaces {
  private readonly live = new Map<string, InstanceNet>();
  private readonly cleaning = new Map<string, Promise<void>>();
  private readonly spares = new Map<string, Promise<InstanceNet | null>>();
  private seq = 0;
  private closing = false;

  constructor(private readonly options: NamespacesOptions) {}

  /** The namespace of a new run of `key` (the previous run's goes in the background). */
  async attach(service: string, key: string): Promise<InstanceNet> {
    this.release(key);
    const net = (await this.takeSpare(service)) ?? (await this.create(service, key));
    this.prepareSpare(service);
    this.live.set(key, net);
    return net;
  }

  /** Removes the instance's namespace in the background and gives its /30 back once it is gone. */
  release(key: string): void {
    const { tools, pool, log } = this.options;
    const net = this.live.get(key);
    if (!net || !tools.ip) return;
    this.live.delete(key);
    const ip = tools.ip;
    const started = performance.now();
    const run = (this.cleaning.get(key) ?? Promise.resolve())
      .then(() => deleteNet({ ip }, net))
      .then(() => log.debug({ instance: key, netns: net.netns, ms: Math.round(performance.now() - started) }, 'namespace removed'))
      .finally(() => {
        if (net.addresses) pool.release(net.addresses.slot);
        if (this.cleaning.get(key) === run) this.cleaning.delete(key);
      });
    this.cleaning.set(key, run);
  }

  /** Makes the service's next namespace now, when spares are on and this host can give it one. */
  prepareSpare(service: string): void {
    // Two starts at once both ask for the next spare: one is enough (and one that is not in the map leaks).
    if (!this.options.spare || this.closing || this.spares.has(service)) return;
    const made = this.create(service, `spare network namespace of ${service}`).catch((error: unknown) => {
      this.options.log.debug({ service, err: (error as Error).message }, 'no spare namespace');
      return null;
    });
    this.spares.set(service, made);
  }

  async close(): Promise<void> {
    const ip = this.options.tools.ip;
    this.closing = true;
    for (const key of [...this.live.keys()]) this.release(key);
    const unused = await Promise.all([...this.spares.values()]);
    this.spares.clear();
    for (const net of unused) if (net && ip) await deleteNet({ ip }, net);
    await Promise.all(this.cleaning.values());
  }

  private async takeSpare(service: string): Promise<InstanceNet | null> {
    const made = this.spares.get(service);
    this.spares.delete(service);
    return made ? await made : null;
  }

  /** A fresh namespace for one run of `service`: errors name the instance (or the service, for a spare). */
  private async create(service: string, who: string): Promise<InstanceNet> {
    const { tools, names, log } = this.options;
    const network = this.options.services.get(service)!.network as 'private' | 'none';
    const missing = missingTools(tools, network);
    if (missing) throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `${who}: ${missing}`);
    const netns = `${names.netnsPrefix}${sequenceName(this.seq)}`;
    const veth = `${names.vethPrefix}${sequenceName(this.seq)}`;
    this.seq += 1;
    const started = performance.now();
    if (network === 'none') {
      const net = await createIsolated({ ...tools, ip: tools.ip! }, netns);
      log.debug({ service, netns, ms: Math.round(performance.now() - started) }, 'namespace ready');
      return net;
    }
    return this.createPrivate(service, who, netns, veth, started);
  }

  private async createPrivate(service: string, who: string, netns: string, veth: string, started: number): Promise<InstanceNet> {
    const { tools, range, pool, nat, offHost, log } = this.options;
    if (nat && offHost.has(service)) {
      await nat.ensure().catch((error: unknown) => {
        throw new TenementError(ErrorCodes.SPAWN_FAILED, `${who}: cannot set up outbound NAT (settings.network.nat): ${(error as Error).message}`, {
          cause: error,
        });
      });
    }
    const addresses = pool.allocate();
    if (!addresses) {
      throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `${who}: no free /30 left in settings.network.range ${range}: use a larger range`);
    }
    try {
      const net = await createPrivate({ ip: tools.ip!, nft: tools.nft!, nsenter: tools.nsenter! }, netns, veth, addresses, {
        range,
        egress: this.options.services.get(service)!.egress ?? [],
      });
      log.debug({ service, netns, address: addresses.guest, ms: Math.round(performance.now() - started) }, 'namespace ready');
      return net;
    } catch (error) {
      pool.release(addresses.slot);
      throw new TenementError(ErrorCodes.SPAWN_FAILED, `${who}: cannot set up its private network: ${(error as Error).message}`, { cause: error });
    }
  }
}
