/**
 * The config fields the network plugin owns (docs/network.md): a service's `network` and `egress`, and
 * `settings.network`. Composed into the config schema when the plugin is loaded (core/config/compose.ts).
 */
import { z } from 'zod';
import { ipv4Aligned, parseCidr } from '../../core/config/cidr.ts';
import { isServiceEntry } from '../../core/config/egress.ts';

/**
 * An address or CIDR a private instance may reach, or the name of a service it may call by name (service
 * discovery, docs/discovery.md; core/config/schema.ts checks the name is a service of the config).
 */
const egressEntry = z.string().transform((value, ctx) => {
  if (isServiceEntry(value)) return value;
  try {
    return parseCidr(value).text;
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `${(error as Error).message}, or the name of a service (a DNS label such as 'notes')` });
    return z.NEVER;
  }
});

export const networkServiceFields = {
  /** host: the host's network; private: own network namespace behind a veth; none: loopback only (docs/network.md). */
  network: z.enum(['host', 'private', 'none']).default('host'),
  /** Addresses or CIDRs a `private` instance may connect to, and services it may call by name; everything else is refused (docs/network.md, docs/discovery.md). */
  egress: z.array(egressEntry).optional(),
};

/** Where veth pairs of private instances take their addresses: one /30 per instance. */
const networkSettings = z.strictObject({
  range: z
    .string()
    .default('10.231.0.0/16')
    .superRefine((value, ctx) => {
      let cidr;
      try {
        cidr = parseCidr(value);
      } catch (error) {
        return ctx.addIssue({ code: 'custom', message: (error as Error).message });
      }
      if (cidr.family !== 4) return ctx.addIssue({ code: 'custom', message: `expected an IPv4 range like 10.231.0.0/16, got ${JSON.stringify(value)}` });
      if (cidr.prefix > 29) return ctx.addIssue({ code: 'custom', message: `expected a range of at least /29 (two instances), got /${cidr.prefix}` });
      if (!ipv4Aligned(cidr)) ctx.addIssue({ code: 'custom', message: `${value} has host bits set: expected the network address of the range` });
    }),
  /** Forward and masquerade private instances' traffic to allowed addresses off this host (host-wide ip_forward; docs/network.md). */
  nat: z.boolean().default(false),
});

export const networkSettingsFields = {
  /** Addresses for private instances' veth pairs (docs/network.md). */
  network: networkSettings.default({ range: '10.231.0.0/16', nat: false }),
};
