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
  const env: Record<string, string> = { ...base };
  env.GATEWAY_INTERFACE = 'CGI/1.1';
  env.SERVER_PROTOCOL = 'HTTP/1.1';
  env.SERVER_SOFTWARE = 'tenement';
  env.SERVER_NAME = server.serverName;
  env.SERVER_PORT = String(server.serverPort);
  env.REMOTE_ADDR = server.remoteAddr;
  env.REQUEST_METHOD = request.method;
  env.SCRIPT_NAME = '';
  env.PATH_INFO = request.path;
  env.QUERY_STRING = request.query;
  env.REQUEST_URI = request.query ? `${request.path}?${request.query}` : request.path;
  env.CONTENT_LENGTH = String(request.body.length);
  for (const [name, value] of request.headers) {
    const lower = name.toLowerCase();
    if (lower === 'content-type') env.CONTENT_TYPE = value;
    else if (lower === 'content-length' || lower === 'proxy') continue;
    else {
      const key = `HTTP_${lower.toUpperCase().replace(/-/g, '_')}`;
      env[key] = key in env ? `${env[key]}, ${value}` : value;
    }
  }
  return env;
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
