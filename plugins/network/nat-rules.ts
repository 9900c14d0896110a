/** The host's NAT table of one data directory (its scope, see names.ts): two servers never remove each other's. */
export function natTableName(scope: string): string {
  return `tenement-nat-${scope}`;
}

/**
 * One nft transaction that replaces the table atomically (declare, delete, declare again: no error when it
 * was absent, and no moment without rules when it was there). Nothing outside this table is touched.
 */
function replaceTable(table: string, body: string[]): string {
  return [`table ip ${table}`, `delete table ip ${table}`, `table ip ${table} {`, ...body, '}', ''].join('\n');
}

/** Deletes the table if it exists (the same declare-then-delete trick: nft 1.0.6 has no `destroy`). */
export function deleteTableScript(table: string): string {
  return `table ip ${table}\ndelete table ip ${table}\n`;
}

/**
 * The host side of outbound NAT for private instances. `forward` is defence in depth behind each namespace's
 * own allow-list: it judges only packets that come from or go into this server's tenant veths (`<vethPrefix>*`)
 * and leaves every other forwarded packet of the host to the host's own firewall (policy accept).
 *  - Into a tenant veth: only replies to the tenant's own connections; nothing from outside, no neighbour.
 *  - Out of a tenant veth: only from the tenant range (no spoofed source), never to the range (a neighbour,
 *    also one behind another server's veth), only to addresses some private service allows off the host.
 *    The host's own addresses never show up here: packets to them take the input path, not forward.
 * `postrouting` masquerades tenant packets leaving through any non-tenant interface, so the far side sees the
 * host's address on that interface and its replies come back through the host.
 */
export function natRuleset(options: { table: string; range: string; vethPrefix: string; allowed: readonly string[] }): string {
  const veth = `"${options.vethPrefix}*"`;
  return replaceTable(options.table, [
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    `    oifname ${veth} ct state established,related accept`,
    `    oifname ${veth} drop`,
    `    iifname ${veth} ip saddr != ${options.range} drop`,
    `    iifname ${veth} ip daddr ${options.range} drop`,
    `    iifname ${veth} ip daddr { ${options.allowed.join(', ')} } accept`,
    `    iifname ${veth} drop`,
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    iifname ${veth} oifname != ${veth} ip saddr ${options.range} masquerade`,
    '  }',
  ]);
}
