import type { PluginContext } from '../../core/plugin-context.ts';
import { definePlugin } from '../../sdk/index.ts';
import type { InstanceEvent, InstanceState, SpawnSpec } from '../../sdk/index.ts';
import { AddressPool } from './addresses.ts';
import { findNetTools, missingTools, type NetTools } from './commands.ts';
import { HostNat, removeNatTable } from './nat.ts';
import { natTableName } from './nat-rules.ts';
import { Namespaces } from './namespaces.ts';
import { leftovers, netNames, type NetNames } from './names.ts';
import { deleteNet, type InstanceNet } from './netns.ts';
import { offHostEntries } from './off-host.ts';
import { networkServiceFields, networkSettingsFields } from './schema.ts';

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
  // `network`, `egress` and `settings.network` are this plugin's config (./schema.ts).
  serviceFields: networkServiceFields,
  settingsFields: networkSettingsFields,
  async setup(ctx) {
    const tools = findNetTools();
    const names = netNames(ctx.paths.dataDir);
    const range = ctx.settings.network.range;
    await removeLeftovers(ctx, tools, names);
    const { nat, offHost } = await outboundNat(ctx, tools, names);
    const namespaces = new Namespaces({
      tools,
      names,
      range,
      pool: new AddressPool(range),
      nat,
      offHost,
      services: ctx.services,
      log: ctx.log,
      spare: ctx.config?.spare ?? true,
    });
    for (const [service, config] of ctx.services.entries()) {
      if (config.network !== 'host' && missingTools(tools, config.network) === null) namespaces.prepareSpare(service);
    }

    ctx.hooks.beforeSpawn.tap(async (spec) => {
      if (spec.config.network === 'host') return spec;
      return inNamespace(spec, await namespaces.attach(spec.service, `${spec.service}:${spec.id}`));
    });
    releaseEndedRuns(ctx, namespaces);
    ctx.onClose(async () => {
      await namespaces.close();
      await nat?.close();
    });
  },
});

/** Namespaces and veths of a previous run on this data directory (a crash, a kill -9): nobody owns them now. */
async function removeLeftovers(ctx: Pick<PluginContext, 'log'>, tools: NetTools, names: NetNames): Promise<void> {
  if (!tools.ip) return;
  const left = leftovers(names);
  for (const veth of left.veths) await deleteNet({ ip: tools.ip }, { netns: null, veth });
  for (const netns of left.netns) await deleteNet({ ip: tools.ip }, { netns, veth: null });
  if (left.netns.length + left.veths.length > 0) ctx.log.warn({ ...left }, 'removed namespaces left by a previous run');
}

/**
 * Outbound NAT (settings.network.nat): only for private services that allow addresses off this host. With NAT
 * off, each such service is named in a warning (its instances cannot reach those addresses).
 */
async function outboundNat(
  ctx: Pick<PluginContext, 'settings' | 'services' | 'log'>,
  tools: NetTools,
  names: NetNames,
): Promise<{ nat: HostNat | null; offHost: Map<string, string[]> }> {
  const range = ctx.settings.network.range;
  const natTable = natTableName(names.scope);
  if (tools.nft && process.getuid?.() === 0) await removeNatTable(tools.nft, natTable).catch(() => undefined); // a crashed run's
  const offHost = new Map<string, string[]>();
  for (const [service, config] of ctx.services.entries()) {
    const entries = config.network === 'private' ? offHostEntries(config.egress ?? [], range) : [];
    if (entries.length > 0) offHost.set(service, entries);
  }
  const natOn = ctx.settings.network.nat;
  if (!natOn) {
    for (const [service, entries] of offHost) {
      ctx.log.warn(
        { service, egress: entries },
        `${service} allows ${entries.join(', ')} in egress, off this host, but settings.network.nat is off: this host neither forwards nor NATs ${range}, so its instances cannot reach them; set settings.network.nat: true (docs/network.md)`,
      );
    }
  }
  const nat =
    natOn && offHost.size > 0 && tools.nft
      ? new HostNat({ nft: tools.nft, table: natTable, range, vethPrefix: names.vethPrefix, allowed: [...new Set([...offHost.values()].flat())] }, ctx.log)
      : null;
  return { nat, offHost };
}

/** The spec of a run in `net`: a port listener binds the namespace's own address (the proxy comes in through the veth). */
function inNamespace(spec: SpawnSpec, net: InstanceNet): SpawnSpec {
  const next: SpawnSpec = { ...spec, netns: net.netnsPath, env: { ...spec.env } };
  if (net.addresses) next.privateNet = { address: net.addresses.guest, hostSide: net.addresses.host };
  if (net.addresses && !spec.socketPath) {
    next.host = net.addresses.guest;
    next.env.HOST = net.addresses.guest;
  }
  return next;
}

/** A run's namespace goes when its process has ended (or the instance is removed). */
function releaseEndedRuns(ctx: Pick<PluginContext, 'hooks' | 'instances'>, namespaces: Namespaces): void {
  ctx.hooks.stateChange.tap((event: InstanceEvent) => {
    if (event.type !== 'removed' && !ENDED.has(event.to)) return;
    // Listeners run after the transition: if a new run already started, its beforeSpawn replaced the namespace.
    const state = ctx.instances.getByKey(event.instance)?.state;
    if (event.type !== 'removed' && (state === 'starting' || state === 'waking' || state === 'running')) return;
    namespaces.release(event.instance);
  });
}
