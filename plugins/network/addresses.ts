import { networkInterfaces } from 'node:os';
import { ipv4ToNumber, numberToIpv4, parseCidr } from '../../core/config/cidr.ts';

/** One private instance's /30: the host side and the guest (instance) side of its veth pair. */
export interface VethAddresses {
  slot: number;
  host: string;
  guest: string;
  prefix: 30;
}

/**
 * Hands out /30 blocks of `settings.network.range`, lowest free first. A block whose host-side address is
 * already on one of the host's interfaces (another Tenement on the same range, a leftover) is skipped.
 */
export class AddressPool {
  private readonly base: number;
  private readonly slots: number;
  private readonly taken = new Set<number>();
  readonly range: string;

  constructor(range: string) {
    const cidr = parseCidr(range);
    this.range = cidr.text;
    this.base = ipv4ToNumber(cidr.address);
    this.slots = 2 ** (32 - cidr.prefix) / 4;
  }

  allocate(): VethAddresses | null {
    const inUse = hostAddresses();
    for (let slot = 0; slot < this.slots; slot++) {
      if (this.taken.has(slot)) continue;
      const addresses = this.addressesOf(slot);
      if (inUse.has(addresses.host) || inUse.has(addresses.guest)) continue;
      this.taken.add(slot);
      return addresses;
    }
    return null;
  }

  release(slot: number): void {
    this.taken.delete(slot);
  }

  private addressesOf(slot: number): VethAddresses {
    const network = this.base + slot * 4;
    return { slot, host: numberToIpv4(network + 1), guest: numberToIpv4(network + 2), prefix: 30 };
  }
}

function hostAddresses(): Set<string> {
  const found = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const entry of list ?? []) found.add(entry.address);
  return found;
}
