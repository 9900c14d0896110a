/**
 * HAProxy's config and host map, written from the services and instances of the moment (docs/edge.md). One
 * backend per service (`s.<service>`: a server per instance, with its weight) for `{service}.{domain}`, one per
 * instance (`i.<service>.<id>`) for `{id}.{service}.{domain}`, and `activator`: Tenement's built-in proxy on
 * loopback, which every unknown host and every instance that is not running is sent to. Which address a server
 * has (the instance's, or the activator's) is changed later over the runtime API, without a reload.
 */

export interface Address {
  host: string;
  port: number;
}

export interface ServerEntry {
  /** The instance id: the server's name in both of its backends. */
  id: string;
  weight: number;
  /** Where it is served from now: the instance's own address, or the activator's. */
  target: Address;
}

export interface RenderInput {
  domain: string;
  listen: Address;
  activator: Address;
  socket: string;
  mapFile: string;
  certDir?: string | undefined;
  threads?: number | undefined;
  /** The longest a request may take, waking included (the largest startupTimeout + requestTimeout). */
  serverTimeoutMs: number;
  services: ReadonlyMap<string, readonly ServerEntry[]>;
}

export const serviceBackend = (service: string): string => `s.${service}`;
export const instanceBackend = (service: string, id: string): string => `i.${service}.${id}`;
export const ACTIVATOR_BACKEND = 'activator';

const addr = (a: Address): string => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);

/** The host map: every `{service}.{domain}` and `{id}.{service}.{domain}` known, to its backend. */
export function renderMap(domain: string, services: RenderInput['services']): string {
  const lines: string[] = [];
  for (const [service, servers] of services) {
    lines.push(`${service}.${domain} ${serviceBackend(service)}`);
    for (const server of servers) lines.push(`${server.id}.${service}.${domain} ${instanceBackend(service, server.id)}`);
  }
  return `${lines.join('\n')}\n`;
}

export function renderConfig(input: RenderInput): string {
  const tls = input.certDir ? ` ssl crt ${input.certDir} alpn http/1.1` : '';
  const out: string[] = [
    '# Written by Tenement (plugins/edge-haproxy) at every start and instance set change: edits are lost.',
    'global',
    '  master-worker',
    `  stats socket ${input.socket} mode 600 level admin expose-fd listeners`,
    '  stats timeout 30s',
    ...(input.threads ? [`  nbthread ${input.threads}`] : []),
    // Request heads are refused above 16 KB like the built-in proxy's (its limit is the same order).
    '  tune.bufsize 32768',
    '  tune.http.maxhdr 128',
    '',
    'defaults',
    '  mode http',
    '  option http-keep-alive',
    // Strict framing: header names outside the token set are refused (the default only drops '_' ones), and no
    // option accept-invalid-http-request: obs-fold, bare LF, CL+TE and duplicate Content-Length are 400.
    '  option http-restrict-req-hdr-names reject',
    '  option forwardfor',
    '  http-reuse safe',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout http-request 10s',
    '  timeout http-keep-alive 60s',
    `  timeout server ${Math.max(1000, Math.ceil(input.serverTimeoutMs))}ms`,
    '  timeout tunnel 1h',
    '',
    'frontend public',
    `  bind ${addr(input.listen)}${tls}`,
    `  http-request set-header X-Forwarded-Proto ${input.certDir ? 'https' : 'http'}`,
    '  http-request set-header X-Forwarded-Host %[req.hdr(host)]',
    // The host without its port, lower-cased, looked up in the map; anything unknown goes to the activator,
    // which answers it as the built-in edge would (404 TNM_ERR_UNKNOWN_HOST, 400 TNM_ERR_BAD_HOST, management).
    `  use_backend %[req.hdr(host),lower,field(1,:),map(${input.mapFile},${ACTIVATOR_BACKEND})]`,
    `  default_backend ${ACTIVATOR_BACKEND}`,
    '',
    `backend ${ACTIVATOR_BACKEND}`,
    `  server tenement ${addr(input.activator)}`,
  ];
  for (const [service, servers] of input.services) {
    out.push('', `backend ${serviceBackend(service)}`, '  balance roundrobin');
    // No server with weight left (all 0, or none yet): the activator answers as the built-in proxy would.
    out.push(`  server activator ${addr(input.activator)} backup`);
    for (const server of servers) out.push(`  server ${server.id} ${addr(server.target)} weight ${server.weight}`);
    for (const server of servers) {
      out.push('', `backend ${instanceBackend(service, server.id)}`, `  server ${server.id} ${addr(server.target)}`);
    }
  }
  return `${out.join('\n')}\n`;
}
