import { isIPv6 } from 'node:net';
import { createdWeight } from './api/identity.ts';
import type { ServiceConfig } from './config/schema.ts';
import { ErrorCodes, type ErrorCode } from './errors.ts';
import type { InstanceView } from './instance.ts';
import type { PluginContext } from './plugin-context.ts';

export type AutoCreateBounds = Exclude<ServiceConfig['autoCreate'], false>;

export interface AutoCreateRefusal {
  kind: 'reject';
  status: 429 | 503;
  code: ErrorCode;
  message: string;
  retryAfter?: number;
}

/**
 * Client addresses remembered per service. Past it the least recently seen address is forgotten (it starts
 * again with a full allowance): the table stays bounded whatever the number of addresses, and the
 * service's `max` still bounds what many addresses can create together.
 */
export const MAX_TRACKED_ADDRESSES = 4096;

interface Bucket {
  /** Creations this address may still make now; refills continuously at count per window. */
  tokens: number;
  at: number;
}

/**
 * The key an address is counted under: an IPv4 address itself (also when mapped into IPv6), an IPv6 address by
 * its /64, the smallest block one client (one host, one LAN) usually gets, so rotating addresses within it
 * does not buy new allowances.
 */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const [head = '', tail] = address.toLowerCase().split('::');
  const front = head === '' ? [] : head.split(':');
  const back = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? front : [...front, ...Array<string>(Math.max(0, 8 - front.length - back.length)).fill('0'), ...back];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** A token bucket per client address, for one service: `count` creations, refilled over `window`. */
export class AddressAllowance {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly count: number,
    private readonly windowMs: number,
    private readonly maxAddresses = MAX_TRACKED_ADDRESSES,
  ) {}

  get size(): number {
    return this.buckets.size;
  }

  /** Seconds until `address` may create again; 0 when it may now. */
  retryAfter(address: string, now = Date.now()): number {
    const tokens = this.tokensOf(addressKey(address), now);
    if (tokens >= 1) return 0;
    return Math.max(1, Math.ceil(((1 - tokens) * this.windowMs) / this.count / 1000));
  }

  /** Counts one creation by `address` (after `retryAfter` said 0). */
  take(address: string, now = Date.now()): void {
    const key = addressKey(address);
    const tokens = this.tokensOf(key, now);
    // Re-inserted, so the Map's order is least recently seen first.
    this.buckets.delete(key);
    this.buckets.set(key, { tokens: tokens - 1, at: now });
    while (this.buckets.size > this.maxAddresses) this.buckets.delete(this.buckets.keys().next().value!);
  }

  private tokensOf(key: string, now: number): number {
    const bucket = this.buckets.get(key);
    if (!bucket) return this.count;
    const refill = ((now - bucket.at) * this.count) / this.windowMs;
    return Math.min(this.count, bucket.tokens + Math.max(0, refill));
  }
}

/** What auto-creation needs of a plugin's context: the instances of a service, and creating one. */
export type AutoCreateContext = Pick<PluginContext, 'instances' | 'lifecycle'>;

/**
 * Allowances per server, keyed by its lifecycle (one object per kernel, shared by every plugin's context), so
 * the router and the wasm plugins' routes draw on the same allowance of an address.
 */
const allowances = new WeakMap<AutoCreateContext['lifecycle'], Map<string, AddressAllowance>>();

function allowanceOf(ctx: AutoCreateContext, service: string, bounds: AutoCreateBounds): AddressAllowance {
  let byService = allowances.get(ctx.lifecycle);
  if (!byService) allowances.set(ctx.lifecycle, (byService = new Map()));
  let allowance = byService.get(service);
  if (!allowance) byService.set(service, (allowance = new AddressAllowance(bounds.perAddress.count, bounds.perAddress.window)));
  return allowance;
}

/**
 * Used by every plugin that routes tenant traffic (the router, wasm plugins' `route`), which is why it lives
 * in core: one module, so one allowance per address and service however a request is routed.
 *
 * Creates `service:id` for a request from `address` to an unknown id of a service with autoCreate, within its
 * bounds: with `max` instances already a 503, beyond the address's allowance a 429 with Retry-After. A refused
 * request creates, spawns and persists nothing. The instance gets the weight an anonymous creator may give
 * (min(weight, tenants.maxWeight)), so visitors cannot add instances to `{service}.{domain}` traffic.
 */
export function autoCreate(
  ctx: AutoCreateContext,
  service: string,
  config: ServiceConfig & { autoCreate: AutoCreateBounds },
  id: string,
  address: string,
): InstanceView | AutoCreateRefusal {
  const bounds = config.autoCreate;
  if (ctx.instances.ofService(service).length >= bounds.max) {
    return {
      kind: 'reject',
      status: 503,
      code: ErrorCodes.AUTO_CREATE_LIMIT,
      message: `service '${service}' has its autoCreate limit of ${bounds.max} instances; '${id}' was not created`,
    };
  }
  const allowance = allowanceOf(ctx, service, bounds);
  const wait = allowance.retryAfter(address);
  if (wait > 0) {
    return {
      kind: 'reject',
      status: 429,
      code: ErrorCodes.RATE_LIMITED,
      message: `too many new instances of '${service}' from ${address} (${bounds.perAddress.count} per ${bounds.perAddress.window / 1000}s); retry in ${wait}s`,
      retryAfter: wait,
    };
  }
  allowance.take(address);
  return ctx.lifecycle.create(service, id, { weight: createdWeight(null, config) });
}

/** Whether a service creates unknown ids on their first request. */
export function autoCreates(config: ServiceConfig): config is ServiceConfig & { autoCreate: AutoCreateBounds } {
  return config.autoCreate !== false;
}
