import { parseCidr } from './cidr.ts';
import { DNS_LABEL } from './names.ts';

/**
 * An `egress` entry names either addresses (an IPv4/IPv6 address or CIDR) or a service (a bare DNS label such as
 * `notes`: the tenant may call that service by name through service discovery, docs/discovery.md). The one rule
 * both the network plugin (its nftables allow-list) and the discovery plugin (who may resolve and call what) read.
 */
export function isServiceEntry(entry: string): boolean {
  return DNS_LABEL.test(entry) && !isAddressEntry(entry);
}

function isAddressEntry(entry: string): boolean {
  try {
    parseCidr(entry);
    return true;
  } catch {
    return false;
  }
}

/** The services an `egress` list names, in order, without repeats. */
export function egressServices(egress: readonly string[] | undefined): string[] {
  return [...new Set((egress ?? []).filter(isServiceEntry))];
}

/** The address entries of an `egress` list (what the nftables allow-list holds). */
export function egressAddresses(egress: readonly string[] | undefined): string[] {
  return (egress ?? []).filter((entry) => !isServiceEntry(entry));
}
