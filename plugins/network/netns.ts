import type { VethAddresses } from './addresses.ts';
import { run, type NetTools } from './commands.ts';
import { egressRuleset } from './egress.ts';
import { NETNS_DIR } from './names.ts';

/** One instance's network namespace (and, for `private`, its veth pair and addresses). */
export interface InstanceNet {
  netns: string;
  /** The namespace file the instance's launcher enters. */
  netnsPath: string;
  /** Host side of the veth pair, for `private`. */
  veth: string | null;
  addresses: VethAddresses | null;
}

/** `none`: a namespace with loopback only. Two commands, about 10 ms. */
export async function createIsolated(tools: NetTools & { ip: string }, netns: string): Promise<InstanceNet> {
  await run(tools.ip, ['netns', 'add', netns]);
  const net: InstanceNet = { netns, netnsPath: `${NETNS_DIR}/${netns}`, veth: null, addresses: null };
  try {
    await run(tools.ip, ['-n', netns, 'link', 'set', 'lo', 'up']);
  } catch (error) {
    await deleteNet(tools, net);
    throw error;
  }
  return net;
}

/**
 * `private`: a namespace with loopback, a veth pair (host side `veth` with the /30's first address, `eth0`
 * inside with the second), a default route through the host side, and the egress rules. Three commands in
 * all (`ip -batch` on each side, `nft -f -` inside), so the cost is mostly the kernel's.
 */
export async function createPrivate(
  tools: NetTools & { ip: string; nft: string; nsenter: string },
  netns: string,
  veth: string,
  addresses: VethAddresses,
  rules: { range: string; egress: readonly string[] },
): Promise<InstanceNet> {
  const net: InstanceNet = { netns, netnsPath: `${NETNS_DIR}/${netns}`, veth, addresses };
  const cidr = (address: string): string => `${address}/${addresses.prefix}`;
  try {
    await run(
      tools.ip,
      ['-batch', '-'],
      [
        `netns add ${netns}`,
        `link add ${veth} type veth peer name eth0 netns ${netns}`,
        `addr add ${cidr(addresses.host)} dev ${veth}`,
        `link set ${veth} up`,
        '',
      ].join('\n'),
    );
    await run(
      tools.ip,
      ['-n', netns, '-batch', '-'],
      [
        'link set lo up',
        `addr add ${cidr(addresses.guest)} dev eth0`,
        'link set eth0 up',
        // Allowed addresses beyond the host side leave through the host (settings.network.nat forwards and NATs them).
        `route add default via ${addresses.host} dev eth0`,
        '',
      ].join('\n'),
    );
    await run(tools.nsenter, [`--net=${net.netnsPath}`, '--', tools.nft, '-f', '-'], egressRuleset({ range: rules.range, hostSide: addresses.host, egress: rules.egress }));
  } catch (error) {
    await deleteNet(tools, net);
    throw error;
  }
  return net;
}

/**
 * Removes the veth pair first (synchronously, both ends; a namespace's own removal is deferred by the kernel,
 * and its interfaces could outlive `netns del` while a process still holds the namespace), then the namespace.
 * Missing pieces are not errors: a failed setup cleans up what it made.
 */
export async function deleteNet(tools: { ip: string }, net: { netns: string | null; veth: string | null }): Promise<void> {
  const lines = [...(net.veth ? [`link del ${net.veth}`] : []), ...(net.netns ? [`netns del ${net.netns}`] : []), ''];
  await run(tools.ip, ['-force', '-batch', '-'], lines.join('\n')).catch(() => undefined);
}
