import { serviceConfig } from '../../core/config/lookup.ts';
import { definePlugin, ErrorCodes, TenementError } from '../../sdk/index.ts';
import type { InstanceEvent, InstanceState, SpawnSpec } from '../../sdk/index.ts';
import { AddressPool } from './addresses.ts';
import { findNetTools, missingTools } from './commands.ts';
import { HostNat, removeNatTable } from './nat.ts';
import { natTableName } from './nat-rules.ts';
import { netNames, sequenceName } from './names.ts';
import { createIsolated, createPrivate, deleteNet, leftovers, type InstanceNet } from './netns.ts';
import { offHostEntries } from './off-host.ts';

/** States in which an instance's process has ended: its namespace goes then (a new run gets a fresh one). */
const ENDED: ReadonlySet<InstanceState> = new Set(['restarting', 'failed', 'stopped', 'hibernated']);

/**
 * Private networking (docs/network.md): an instance with `network: 'private'` runs in its own network
 * namespace, reached by the proxy through a veth pair with a /30 from `settings.network.range` (or through its
 * Unix socket), with an nftables egress allow-list inside; `network: 'none'` gets loopback only and listens on
 * a socket. Services on the host network are left alone.
 */
export interface NetworkOptions {
  /** Keep one namespace per service ready ahead of its next start (default true): spawns and wakes skip its set-up. */
  spare?: boolean;
}

export default definePlugin<NetworkOptions | undefined>({
  name: 'network',
  version: '1.0.0',
  kernel: '^1',
  async setup(kernel, options) {
    const spare = options?.spare ?? true;
    const tools = findNetTools();
    const names = netNames(kernel.config.settings.dataDir);
    const range = kernel.config.settings.network.range;
    const pool = new AddressPool(range);
    const live = new Map<string, InstanceNet>();
    const cleaning = new Map<string, Promise<void>>();
    let seq = 0;

    // Namespaces and veths of a previous run on this data directory (a crash, a kill -9): nobody owns them now.
    if (tools.ip) {
      const left = leftovers(names);
      for (const veth of left.veths) await deleteNet({ ip: tools.ip }, { netns: null, veth });
      for (const netns of left.netns) await deleteNet({ ip: tools.ip }, { netns, veth: null });
      if (left.netns.length + left.veths.length > 0) kernel.log.warn({ ...left }, 'network: removed namespaces left by a previous run');
    }

    // Outbound NAT (settings.network.nat): only for private services that allow addresses off this host.
    const natTable = natTableName(names.scope);
    if (tools.nft && process.getuid?.() === 0) await removeNatTable(tools.nft, natTable).catch(() => undefined); // a crashed run's
    const offHost = new Map<string, string[]>();
    for (const [service, config] of Object.entries(kernel.config.services)) {
      const entries = config.network === 'private' ? offHostEntries(config.egress ?? [], range) : [];
      if (entries.length > 0) offHost.set(service, entries);
    }
    const natOn = kernel.config.settings.network.nat;
    const nat =
      natOn && offHost.size > 0 && tools.nft
        ? new HostNat({ nft: tools.nft, table: natTable, range, vethPrefix: names.vethPrefix, allowed: [...new Set([...offHost.values()].flat())] }, kernel.log)
        : null;
    if (!natOn) {
      for (const [service, entries] of offHost) {
        kernel.log.warn(
          { service, egress: entries },
          `network: ${service} allows ${entries.join(', ')} in egress, off this host, but settings.network.nat is off: this host neither forwards nor NATs ${range}, so its instances cannot reach them; set settings.network.nat: true (docs/network.md)`,
        );
      }
    }

    const release = (key: string): void => {
      const net = live.get(key);
      if (!net || !tools.ip) return;
      live.delete(key);
      const ip = tools.ip;
      const started = performance.now();
      const run = (cleaning.get(key) ?? Promise.resolve())
        .then(() => deleteNet({ ip }, net))
        .then(() => kernel.log.debug({ instance: key, netns: net.netns, ms: Math.round(performance.now() - started) }, 'network: namespace removed'))
        .finally(() => {
          if (net.addresses) pool.release(net.addresses.slot);
          if (cleaning.get(key) === run) cleaning.delete(key);
        });
      cleaning.set(key, run);
    };

    /** A fresh namespace for one run of `service`: errors name the instance (or the service, for a spare). */
    const create = async (service: string, who: string): Promise<InstanceNet> => {
      const config = serviceConfig(kernel.config, service)!;
      const network = config.network as 'private' | 'none';
      const missing = missingTools(tools, network);
      if (missing) throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `${who}: ${missing}`);
      const netns = `${names.netnsPrefix}${sequenceName(seq)}`;
      const veth = `${names.vethPrefix}${sequenceName(seq)}`;
      seq += 1;
      const started = performance.now();
      if (network === 'none') {
        const net = await createIsolated({ ...tools, ip: tools.ip! }, netns);
        kernel.log.debug({ service, netns, ms: Math.round(performance.now() - started) }, 'network: namespace ready');
        return net;
      }
      if (nat && offHost.has(service)) {
        await nat.ensure().catch((error: unknown) => {
          throw new TenementError(ErrorCodes.SPAWN_FAILED, `${who}: cannot set up outbound NAT (settings.network.nat): ${(error as Error).message}`, {
            cause: error,
          });
        });
      }
      const addresses = pool.allocate();
      if (!addresses) {
        throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `${who}: no free /30 left in settings.network.range ${range}: use a larger range`, {
        });
      }
      try {
        const net = await createPrivate({ ip: tools.ip!, nft: tools.nft!, nsenter: tools.nsenter! }, netns, veth, addresses, {
          range,
          egress: config.egress ?? [],
        });
        kernel.log.debug({ service, netns, address: addresses.guest, ms: Math.round(performance.now() - started) }, 'network: namespace ready');
        return net;
      } catch (error) {
        pool.release(addresses.slot);
        throw new TenementError(ErrorCodes.SPAWN_FAILED, `${who}: cannot set up its private network: ${(error as Error).message}`, { cause: error });
      }
    };

    // One namespace per service made ahead of time, so a start or a wake does not wait the ~25 ms it takes.
    const spares = new Map<string, Promise<InstanceNet | null>>();
    let closing = false;
    const prepareSpare = (service: string): void => {
      // Two starts at once both ask for the next spare: one is enough (and one that is not in the map leaks).
      if (!spare || closing || spares.has(service)) return;
      const made = create(service, `spare network namespace of ${service}`).catch((error: unknown) => {
        kernel.log.debug({ service, err: (error as Error).message }, 'network: no spare namespace');
        return null;
      });
      spares.set(service, made);
    };
    const takeSpare = async (service: string): Promise<InstanceNet | null> => {
      const made = spares.get(service);
      spares.delete(service);
      return made ? await made : null;
    };
    for (const [service, config] of Object.entries(kernel.config.services)) {
      if (config.network !== 'host' && missingTools(tools, config.network) === null) prepareSpare(service);
    }

    kernel.hooks.beforeSpawn.tapPromise('network', async (spec: SpawnSpec): Promise<SpawnSpec> => {
      if (spec.config.network === 'host') return spec;
      const key = `${spec.service}:${spec.id}`;
      // The previous run's namespace goes (in the background: names are never reused within a run).
      release(key);
      const net = (await takeSpare(spec.service)) ?? (await create(spec.service, key));
      prepareSpare(spec.service);
      live.set(key, net);

      const next: SpawnSpec = { ...spec, netns: net.netnsPath, env: { ...spec.env } };
      // A port listener binds the namespace's own address (the proxy comes in through the veth).
      if (net.addresses && !spec.socketPath) {
        next.host = net.addresses.guest;
        next.env.HOST = net.addresses.guest;
      }
      return next;
    });

    kernel.hooks.stateChange.tapPromise('network', async (event: InstanceEvent) => {
      if (event.type !== 'removed' && !ENDED.has(event.to)) return;
      // Listeners run after the transition: if a new run already started, its beforeSpawn replaced the namespace.
      const state = kernel.instances.getByKey(event.instance)?.state;
      if (event.type !== 'removed' && (state === 'starting' || state === 'waking' || state === 'running')) return;
      release(event.instance);
    });

    kernel.onClose(async () => {
      closing = true;
      for (const key of [...live.keys()]) release(key);
      const unused = await Promise.all([...spares.values()]);
      spares.clear();
      for (const net of unused) if (net && tools.ip) await deleteNet({ ip: tools.ip }, net);
      await Promise.all(cleaning.values());
      await nat?.close();
    });
  },
});
