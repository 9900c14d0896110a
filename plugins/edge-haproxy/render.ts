/**
 * HAProxy's config and host map, written from the services and instances of the moment (docs/edge.md). One
 * backend per service (`s.<service>`: a server per instance, with its weight) for `{service}.{domain}`, one per
 * instance (`i.<service>.<id>`) for `{id}.{service}.{domain}`, and `activator`: Tenement's built-in proxy on
 * loopback, which every unknown host is sent to, and the backup server of every backend: an instance that is
 * not running has its servers in maintenance, so its traffic goes to the activator, which wakes it. A server's
 * address and state are changed later over the runtime API, without a reload.
 */

export interface Address {
  host: string;
  port: number;
}

export interface ServerEntry {
  /** The instance id: the server's name in both of its backends. */
  id: string;
  weight: number;
  /**
   * The instance's own address while it runs on TCP; null otherwise: the server is then in maintenance and the
   * backend's backup server, the activator, takes its traffic (and wakes it).
   */
  target: Address | null;
}

export interface RenderInput {
  domain: string;
  listen: Address;
  activator: Address;
  socket: string;
  mapFile: string;
  /** Where the error files (errorFiles()) are written: HAProxy's own answers in Tenement's JSON error shape. */
  errorDir: string;
  certDir?: string | undefined;
  threads?: number | undefined;
  /** The longest a request may take, waking included (the largest startupTimeout + requestTimeout). */
  serverTimeoutMs: number;
  services: ReadonlyMap<string, readonly ServerEntry[]>;
  /** Each service's `lb` (docs/lb.md); a service not named here is balanced by weight. */
  balance?: ReadonlyMap<string, LbMode> | undefined;
}

export type LbMode = 'weighted' | 'least-requests' | 'p2c';

/**
 * HAProxy's algorithm for a service's `lb`, over the servers HAProxy carries directly: `leastconn` is the
 * fewest connections in flight (weights break ties), `random(2)` draws two servers by weight and takes the one
 * with fewer in flight, as the built-in p2c does; `roundrobin` is smooth weighted round robin.
 */
const HAPROXY_BALANCE: Record<LbMode, string> = { weighted: 'roundrobin', 'least-requests': 'leastconn', p2c: 'random(2)' };

export const serviceBackend = (service: string): string => `s.${service}`;
export const instanceBackend = (service: string, id: string): string => `i.${service}.${id}`;
export const ACTIVATOR_BACKEND = 'activator';
export const BACKUP_SERVER = '_activator';

/**
 * The answers HAProxy makes itself (not those of an instance or the activator, which pass through), in the
 * built-in proxy's shape and with its status: a refused connection to an instance is 502
 * TNM_ERR_UPSTREAM_REFUSED as on the built-in edge (HAProxy's own status for it is 503). Errors found by
 * HAProxy 2.6's HTTP/1 parser itself (a malformed head) are answered before any rule or error file applies:
 * those are HAProxy's HTML 400 page (docs/edge.md, where the edges differ).
 */
const ERRORS: ReadonlyArray<[haproxyStatus: number, status: number, reason: string, code: string, message: string]> = [
  [400, 400, 'Bad Request', 'TNM_ERR_BAD_REQUEST_FRAMING', 'malformed request (refused by the edge)'],
  [405, 405, 'Method Not Allowed', 'TNM_ERR_METHOD_NOT_ALLOWED', 'CONNECT is not supported here'],
  [408, 408, 'Request Timeout', 'TNM_ERR_REQUEST_TIMEOUT', 'the request head was not received in time'],
  [502, 502, 'Bad Gateway', 'TNM_ERR_UPSTREAM_ERROR', 'the instance sent an invalid response'],
  [503, 502, 'Bad Gateway', 'TNM_ERR_UPSTREAM_REFUSED', 'the instance refused the connection'],
  [504, 504, 'Gateway Timeout', 'TNM_ERR_UPSTREAM_TIMEOUT', 'the instance did not answer in time'],
];

/** Error file name to its content: a whole HTTP/1.1 response, as HAProxy's `errorfile` reads it. */
export function errorFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const [haproxyStatus, status, reason, code, message] of ERRORS) {
    const body = JSON.stringify({ error: { code, message } });
    const head = [`HTTP/1.1 ${status} ${reason}`, 'content-type: application/json; charset=utf-8', `content-length: ${Buffer.byteLength(body)}`, 'cache-control: no-store', 'connection: close'];
    files.set(`${haproxyStatus}.http`, `${head.join('\r\n')}\r\n\r\n${body}`);
  }
  return files;
}

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
    // Strict framing: no option accept-invalid-http-request (conflicting Content-Lengths, a Transfer-Encoding
    // other than chunked, malformed names and control bytes in the head are refused by HAProxy's parser).
    // Header names with characters other than letters, digits and '-' (`X_Forwarded_For`, which CGI/WSGI-style
    // apps read as X-Forwarded-For) are dropped before the instance sees them, as nginx does by default; the
    // request itself is answered as on the built-in edge.
    '  option http-restrict-req-hdr-names delete',
    '  option forwardfor',
    '  http-reuse safe',
    // A connection refused by an instance (killed, before the kernel noticed) is tried again on another server
    // of the service (the one that failed is avoided), as the built-in proxy falls back to the next.
    '  retries 2',
    '  option redispatch 1',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout http-request 10s',
    '  timeout http-keep-alive 60s',
    `  timeout server ${Math.max(1000, Math.ceil(input.serverTimeoutMs))}ms`,
    '  timeout tunnel 1h',
    ...ERRORS.map(([status]) => `  errorfile ${status} ${input.errorDir}/${status}.http`),
    '',
    'frontend public',
    `  bind ${addr(input.listen)}${tls}`,
    // What HAProxy's parser lets through and the built-in proxy refuses: CONNECT (a tenant is no forward proxy)
    // and control bytes in header values (NUL included; RFC 9110 §5.5), each with the built-in's status.
    '  http-request deny deny_status 405 if METH_CONNECT',
    "  http-request deny deny_status 400 if { req.hdrs -m reg '[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]' }",
    // An instance's response whose Connection header lists a framing header is refused (502), as on the built-in.
    '  http-response deny deny_status 502 if { res.hdr(connection) -i content-length transfer-encoding }',
    `  http-request set-header X-Forwarded-Proto ${input.certDir ? 'https' : 'http'}`,
    '  http-request set-header X-Forwarded-Host %[req.hdr(host)]',
    // The host without its port and a trailing dot, lower-cased, looked up in the map; anything unknown goes to
    // the activator, which answers it as the built-in edge would (404 TNM_ERR_UNKNOWN_HOST, 400
    // TNM_ERR_BAD_HOST, management).
    `  use_backend %[req.hdr(host),lower,field(1,:),regsub([.]$,),map(${input.mapFile},${ACTIVATOR_BACKEND})]`,
    `  default_backend ${ACTIVATOR_BACKEND}`,
    '',
    `backend ${ACTIVATOR_BACKEND}`,
    `  server tenement ${addr(input.activator)}`,
  ];
  for (const [service, servers] of input.services) {
    out.push('', `backend ${serviceBackend(service)}`, `  balance ${HAPROXY_BALANCE[input.balance?.get(service) ?? 'weighted']}`);
    // Here another instance can take a request one closed with no answer (dying, before the kernel noticed):
    // retried, unless it is not idempotent (RFC 9110 §9.2.2). Only here: an L7 retry copies each request into a
    // buffer first (about a fifth more of HAProxy's CPU per request), which an instance's own host, with no other
    // server to retry on, does not pay.
    out.push('  retry-on conn-failure empty-response', '  http-request disable-l7-retry if !METH_GET !METH_OPTIONS');
    // No server with weight left (all 0, or none yet): the activator answers as the built-in proxy would.
    // Named with a '_', which no instance id has (ids are DNS labels): an instance called `activator` is data.
    out.push(`  server ${BACKUP_SERVER} ${addr(input.activator)} backup`);
    // A server only ever points at its instance, so its counters count only what HAProxy carried there directly
    // (the activator's share is the built-in proxy's, on its `request` hook); not running, it is `disabled`.
    const line = (server: ServerEntry): string => `  server ${server.id} ${addr(server.target ?? input.activator)}${server.target ? '' : ' disabled'}`;
    for (const server of servers) out.push(`${line(server)} weight ${server.weight}`);
    for (const server of servers) {
      out.push('', `backend ${instanceBackend(service, server.id)}`, line(server), `  server ${BACKUP_SERVER} ${addr(input.activator)} backup`);
    }
  }
  return `${out.join('\n')}\n`;
}
