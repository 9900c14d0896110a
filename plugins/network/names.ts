import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';

/**
 * Names of one Tenement's (one data directory's) network objects: `tn` + 6 hex of the data dir's hash, so two
 * servers or parallel tests never remove each other's namespaces, and interface names stay within Linux's
 * 15 characters. netns `tn1a2b3c-<seq>`, host-side veth `tn1a2b3cv<seq>` (seq in base 36, unique per run).
 */
export interface NetNames {
  /** `tn` + 6 hex: names the host-side objects of this data directory (also its nftables NAT table). */
  scope: string;
  /** Prefix of every namespace of this scope. */
  netnsPrefix: string;
  /** Prefix of every host-side veth of this scope. */
  vethPrefix: string;
}

/** Where `ip netns` keeps named namespaces. */
export const NETNS_DIR = '/run/netns';

export function netNames(dataDir: string): NetNames {
  const scope = `tn${createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 6)}`;
  return { scope, netnsPrefix: `${scope}-`, vethPrefix: `${scope}v` };
}

/** At most 6 base-36 digits, so a veth name is at most 15 characters. */
export function sequenceName(seq: number): string {
  return (seq % 36 ** 6).toString(36);
}

/** Namespaces and host-side veths of this scope that exist now (after a crash, nobody owns them). */
export function leftovers(prefixes: { netnsPrefix: string; vethPrefix: string }): { netns: string[]; veths: string[] } {
  const list = (dir: string, prefix: string): string[] => {
    try {
      return readdirSync(dir).filter((name) => name.startsWith(prefix));
    } catch {
      return [];
    }
  };
  return { netns: list(NETNS_DIR, prefixes.netnsPrefix), veths: list('/sys/class/net', prefixes.vethPrefix) };
}
