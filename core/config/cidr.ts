import { isIPv4, isIPv6 } from 'node:net';

/** An address or a block of addresses: `10.0.0.5`, `10.0.0.0/8`, `2001:db8::/32`. */
export interface Cidr {
  family: 4 | 6;
  /** As written, without the prefix. */
  address: string;
  prefix: number;
  /** `address/prefix`, the form nftables takes. */
  text: string;
}

/** Parses an address or CIDR; throws an Error whose message says what was expected. */
export function parseCidr(value: string): Cidr {
  const [address = '', prefixText, extra] = value.trim().split('/');
  if (extra !== undefined) throw new Error(`expected an address or CIDR like 10.0.0.0/8, got ${JSON.stringify(value)}`);
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : null;
  if (family === null) throw new Error(`expected an IPv4 or IPv6 address or CIDR like 10.0.0.0/8, got ${JSON.stringify(value)}`);
  const max = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= max)) throw new Error(`expected a prefix length from 0 to ${max} in ${JSON.stringify(value)}`);
  return { family, address, prefix, text: `${address}/${prefix}` };
}

export function ipv4ToNumber(address: string): number {
  return address.split('.').reduce((value, part) => value * 256 + Number(part), 0);
}

export function numberToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** Whether an IPv4 block's host bits are zero (10.231.0.0/16, not 10.231.4.0/16). */
export function ipv4Aligned(cidr: Cidr): boolean {
  return cidr.family === 4 && ipv4ToNumber(cidr.address) % 2 ** (32 - cidr.prefix) === 0;
}

/** Whether two IPv4 blocks share an address. */
export function ipv4Overlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== 4 || b.family !== 4) return false;
  const prefix = Math.min(a.prefix, b.prefix);
  const size = 2 ** (32 - prefix);
  return Math.floor(ipv4ToNumber(a.address) / size) === Math.floor(ipv4ToNumber(b.address) / size);
}
