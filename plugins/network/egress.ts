import { parseCidr } from '../../core/config/cidr.ts';
import { egressAddresses, egressServices } from '../../core/config/egress.ts';

/**
 * Where service discovery (plugins/discovery, docs/discovery.md) listens on each private instance's host side: the
 * DNS responder (udp and tcp) and the HTTP listener that carries calls by name into the proxy.
 */
export const DISCOVERY_PORTS = { dns: 53, http: 80 } as const;

/**
 * The nftables rule set loaded inside a private instance's namespace: loopback and replies to connections
 * made to it (the proxy's) pass; new connections go only to the allow-list; the rest of the veth range
 * (neighbours) is refused even when a broad allow-list entry covers it, unless it is the instance's own host
 * side; everything else is refused (fast failure for the app, not a timeout). When the allow-list names a
 * service, the instance's own host side is reachable on the discovery ports (DNS, HTTP), and only those.
 */
export function egressRuleset(options: { range: string; hostSide: string; egress: readonly string[] }): string {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const entry of egressAddresses(options.egress)) {
    const cidr = parseCidr(entry);
    (cidr.family === 4 ? v4 : v6).push(cidr.text);
  }
  const lines = [
    'table inet tenement {',
    '  chain output {',
    '    type filter hook output priority 0; policy drop;',
    '    oif "lo" accept',
    '    ct state established,related accept',
    `    ip daddr ${options.range} ip daddr != ${options.hostSide} reject with icmpx type admin-prohibited`,
  ];
  if (v4.length > 0) lines.push(`    ip daddr { ${v4.join(', ')} } accept`);
  if (v6.length > 0) lines.push(`    ip6 daddr { ${v6.join(', ')} } accept`);
  if (egressServices(options.egress).length > 0) {
    lines.push(
      `    ip daddr ${options.hostSide} udp dport ${DISCOVERY_PORTS.dns} accept`,
      `    ip daddr ${options.hostSide} tcp dport { ${DISCOVERY_PORTS.dns}, ${DISCOVERY_PORTS.http} } accept`,
    );
  }
  lines.push('    reject with icmpx type admin-prohibited', '  }', '}', '');
  return lines.join('\n');
}
