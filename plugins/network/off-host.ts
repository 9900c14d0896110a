import { networkInterfaces } from 'node:os';
import { ipv4Overlap, parseCidr, type Cidr } from '../../core/config/cidr.ts';
import { egressAddresses } from '../../core/config/egress.ts';

const LOOPBACK = parseCidr('127.0.0.0/8');

/** Whether every address of `inner` lies in `outer` (both IPv4). */
function within(inner: Cidr, outer: Cidr): boolean {
  return inner.prefix >= outer.prefix && ipv4Overlap(inner, outer);
}

/**
 * The IPv4 `egress` entries a tenant can only reach through the host's forwarding and NAT: everything but
 * blocks inside `settings.network.range` (host sides; neighbours are refused anyway), loopback, and single
 * addresses of the host's own interfaces. IPv6 entries are left out: the veth carries only link-local IPv6,
 * so NAT would not help them (docs/network.md, known gaps), and service names (discovery goes through the host side).
 */
export function offHostEntries(egress: readonly string[], range: string): string[] {
  const tenants = parseCidr(range);
  const own = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const entry of list ?? []) if (entry.family === 'IPv4') own.add(entry.address);
  return egressAddresses(egress).filter((entry) => {
    const cidr = parseCidr(entry);
    if (cidr.family !== 4) return false;
    if (within(cidr, tenants) || within(cidr, LOOPBACK)) return false;
    return !(cidr.prefix === 32 && own.has(cidr.address));
  });
}
