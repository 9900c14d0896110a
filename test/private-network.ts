// What the private-network tests share: the tools they need, a tenant range of their own, the test app.
import path from 'node:path';
import type { ServiceInput } from '../core/config/schema.ts';
import { FIXTURES, onPath } from './helpers.ts';

export const NET_APP = path.join(FIXTURES, 'net-app.mjs');

/** Why a private-network test cannot run here (`rootFor`: what it needs root for), or false. */
export function privateNetworkSkip(rootFor: string): string | false {
  if (process.getuid?.() !== 0) return `needs root (${rootFor})`;
  if (!onPath('ip')) return 'needs ip (apt-get install iproute2)';
  if (!onPath('nft')) return 'needs nft (apt-get install nftables)';
  if (!onPath('nsenter')) return 'needs nsenter (apt-get install util-linux)';
  return false;
}

/**
 * A /24 of its own per test file run (10.200-249.x.0/24), so parallel runs and other servers on 10.231.0.0/16
 * do not collide. The first private instance takes the first /30: host side .1, guest .2; the second .5 and .6.
 */
export function tenantRange(): { base: string; range: string } {
  const base = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}`;
  return { base, range: `${base}.0/24` };
}

/** The net app as a service (it reports its interfaces and environment, and connects where it is told). */
export function netService(overrides: Partial<ServiceInput> = {}): ServiceInput {
  return { command: `node ${NET_APP}`, health: '/health', cwd: FIXTURES, ...overrides };
}

/** What the net app's /connect answers. */
export interface Connect {
  ok: boolean;
  code?: string;
}
