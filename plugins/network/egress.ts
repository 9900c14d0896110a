import { parseCidr } from '../../core/config/cidr.ts';

/**
 * The nftables rule set loaded inside a private instance's namespace: loopback and replies to connections
 * made to it (the proxy's) pass; new connections go only to the allow-list; the rest of the veth range
 * (neighbours) is refused even when a broad allow-list entry covers it, unless it is the instance's own host
 * side; everything else is refused (fast failure for the app, not a timeout).
 */
export function egressRuleset(options: { range: string; hostSide: string; egress: readonly string[] }): string {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const entry of options.egress) {
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
  lines.push('    reject with icmpx type admin-prohibited', '  }', '}', '');
  return lines.join('\n');
}
