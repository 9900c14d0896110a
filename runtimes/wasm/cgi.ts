/**
 * The CGI/1.1 convention (RFC 3875) for WASI preview 1 modules: the request goes in as environment variables
 * and stdin, the response comes back on stdout as header lines, a blank line, then the body.
 */
import type { WasmHttpRequest } from '../../core/wasm/component/types.ts';

export interface CgiServer {
  /** Host name the request was sent to (from the Host header, without the port). */
  serverName: string;
  serverPort: number;
  remoteAddr: string;
}

/**
 * The guest's whole environment: the service's own `env`, then the CGI variables. Header names become
 * HTTP_* (except Content-Type and Content-Length, which have their own variables, and Proxy, which would let a
 * client set HTTP_PROXY for the guest: "httpoxy").
 */
export function cgiEnv(request: WasmHttpRequest, server: CgiServer, base: Record<string, string>): Record<string, string> {
  // One literal, then the rest added: spreading `base` into a literal this size puts the object on V8's slow
  // path (measured ~20 µs per request on the main thread, against ~2 µs like this).
  const env: Record<string, string> = {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_SOFTWARE: 'tenement',
    SERVER_NAME: server.serverName,
    SERVER_PORT: String(server.serverPort),
    REMOTE_ADDR: server.remoteAddr,
    REQUEST_METHOD: request.method,
    SCRIPT_NAME: '',
    PATH_INFO: request.path,
    QUERY_STRING: request.query,
    REQUEST_URI: request.query ? `${request.path}?${request.query}` : request.path,
    CONTENT_LENGTH: String(request.body.length),
  };
  // The service's env, under the CGI variables. Defined, not assigned: a name like `__proto__` stays a variable.
  for (const name of Object.keys(base)) {
    if (!Object.hasOwn(env, name)) Object.defineProperty(env, name, { value: base[name], enumerable: true, writable: true, configurable: true });
  }
  for (const [name, value] of request.headers) {
    const lower = name.toLowerCase();
    if (lower === 'content-type') env.CONTENT_TYPE = value;
    else if (lower === 'content-length' || lower === 'proxy') continue;
    else {
      const key = headerVariable(lower);
      env[key] = Object.hasOwn(env, key) ? `${env[key]}, ${value}` : value;
    }
  }
  return env;
}

/** `x-custom` -> `HTTP_X_CUSTOM`, remembered for the names seen most (clients choose them: the cache is capped). */
const headerVariables = new Map<string, string>();
function headerVariable(lower: string): string {
  let key = headerVariables.get(lower);
  if (key === undefined) {
    key = `HTTP_${lower.toUpperCase().replace(/-/g, '_')}`;
    if (headerVariables.size < 256) headerVariables.set(lower, key);
  }
  return key;
}

export interface CgiResponse {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Parses what the guest wrote to stdout; throws with what is wrong when it is not a CGI response. */
export function parseCgiResponse(stdout: Uint8Array): CgiResponse {
  const end = headerEnd(stdout);
  if (end === null) {
    throw new Error(
      stdout.length === 0 ? 'the guest wrote nothing to stdout' : 'the guest wrote no header block (header lines, then a blank line) to stdout',
    );
  }
  const text = Buffer.from(stdout.buffer, stdout.byteOffset, end.headers).toString('latin1');
  let status: number | null = null;
  let location = false;
  const headers: [string, string][] = [];
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`malformed header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (!HEADER_NAME.test(name) || !HEADER_VALUE.test(value)) throw new Error(`invalid header ${JSON.stringify(line.slice(0, 80))}`);
    if (name.toLowerCase() === 'status') {
      const code = Number.parseInt(value, 10);
      if (!(code >= 100 && code <= 999)) throw new Error(`invalid Status header ${JSON.stringify(value)}`);
      status = code;
      continue;
    }
    if (name.toLowerCase() === 'location') location = true;
    headers.push([name, value]);
  }
  return { status: status ?? (location ? 302 : 200), headers, body: stdout.subarray(end.body) };
}

/** Where the header block ends: the first empty line, with CRLF or LF line ends. */
function headerEnd(bytes: Uint8Array): { headers: number; body: number } | null {
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0x0a) continue;
    if (bytes[i + 1] === 0x0a) return { headers: i, body: i + 2 };
    if (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a) return { headers: i, body: i + 3 };
  }
  return null;
}
