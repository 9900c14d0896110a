/**
 * The config the edge-haproxy plugin owns (docs/edge.md): `settings.edge`, which edge carries the public traffic.
 * `'builtin'` (the default): Tenement's own proxy listens on `settings.listen:port`. `{ kind: 'haproxy' }`:
 * HAProxy listens on the public address and Tenement programs it; the built-in proxy stays on
 * `settings.listen:port`, which must then be loopback, as the activator (wakes, unknown hosts, management).
 * Composed into the settings schema when the plugin is loaded (core/config/compose.ts).
 */
import { z } from 'zod';

/** `host:port`, IPv4 or `[IPv6]`; a port from 1 to 65535 (0 would give HAProxy a port nobody can find). */
const hostPort = z.string().transform((value, ctx) => {
  const match = /^(\[[0-9a-fA-F:.]+\]|[0-9]{1,3}(?:\.[0-9]{1,3}){3}|\*):([0-9]{1,5})$/.exec(value);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port < 1 || port > 65535) {
    ctx.addIssue({ code: 'custom', message: "expected an address like '0.0.0.0:80', '127.0.0.1:8443' or '[::]:443' (an IP and a port from 1 to 65535)" });
    return z.NEVER;
  }
  return { host: match[1] === '*' ? '0.0.0.0' : match[1]!, port };
});

/** Paths HAProxy reads: absolute, no newline or quote (they are written into its config file). */
const path = (what: string) =>
  z
    .string()
    .max(1024, `expected a ${what} path of at most 1024 characters`)
    .regex(/^\/[^\n\r"'#\s]*$/, `expected an absolute ${what} path without spaces, quotes or '#'`);

const haproxyEdge = z
  .strictObject({
    kind: z.literal('haproxy'),
    /** managed: `ten serve` writes the config, starts and supervises HAProxy. attach: program a running one over `socket`. */
    mode: z.enum(['managed', 'attach'], { error: "expected mode 'managed' (ten serve runs HAProxy) or 'attach' (a running HAProxy, over socket)" }).default('managed'),
    /** The public address HAProxy listens on (managed mode). */
    listen: hostPort.optional(),
    /** HAProxy's runtime API socket (level admin). Managed: default `<dataDir>/haproxy/admin.sock`; attach: required. */
    socket: path('socket').optional(),
    /** TLS termination: every certificate (PEM with its key) in this directory, chosen by SNI (`crt <dir>` on the bind). */
    certDir: path('certificate directory').optional(),
    /** HAProxy's threads (`nbthread`, managed mode); default: HAProxy's own, one per core it may run on. */
    threads: z.number({ error: 'expected a number of threads from 1 to 64' }).int('expected a whole number of threads').min(1, 'expected at least 1 thread').max(64, 'expected at most 64 threads').optional(),
    /** The haproxy binary (managed mode). */
    binary: z.string().min(1).max(1024).regex(/^[^\n\r]+$/, 'expected a command name or path').default('haproxy'),
  })
  .superRefine((edge, ctx) => {
    if (edge.mode === 'managed' && edge.listen === undefined) {
      ctx.addIssue({ code: 'custom', path: ['listen'], message: "expected listen, the public address HAProxy serves on, like '0.0.0.0:80' (mode 'managed')" });
    }
    if (edge.mode === 'attach' && edge.socket === undefined) {
      ctx.addIssue({ code: 'custom', path: ['socket'], message: "expected socket, the running HAProxy's runtime API socket (stats socket ... level admin), for mode 'attach'" });
    }
  });

export type HaproxyEdge = z.output<typeof haproxyEdge>;
export type EdgeSetting = 'builtin' | HaproxyEdge;

const edge = z.unknown().transform((value, ctx): EdgeSetting => {
  if (value === 'builtin') return 'builtin';
  if (value === 'haproxy') {
    ctx.addIssue({ code: 'custom', message: "expected edge: { kind: 'haproxy', listen: '0.0.0.0:80' } (HAProxy needs its public address), or 'builtin'" });
    return z.NEVER;
  }
  if (typeof value !== 'object' || value === null) {
    ctx.addIssue({ code: 'custom', message: "expected edge 'builtin' or { kind: 'haproxy', mode, listen, socket, certDir }" });
    return z.NEVER;
  }
  const result = haproxyEdge.safeParse(value);
  if (result.success) return result.data;
  for (const issue of result.error.issues) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
  return z.NEVER;
});

export const edgeSettingsFields = {
  /** Which edge carries the public traffic (docs/edge.md): 'builtin' (default) or HAProxy programmed by Tenement. */
  edge: edge.optional(),
};
