/**
 * Header rewriting for the proxy, on Node's flat rawHeaders arrays so names keep their case and repeated
 * headers keep their order. Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection and are dropped.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Names Connection can never make hop-by-hop: the message's framing and its Host were decided on them, and the
 * forwarded head must say exactly what is forwarded (dropping Content-Length while forwarding the body is
 * request smuggling). Transfer-Encoding is hop-by-hop anyway and re-added by the proxy when the body is chunked.
 */
const NEVER_LISTED = new Set(['close', 'keep-alive', 'host', 'content-length', 'transfer-encoding']);

/** Names listed in the Connection header are hop-by-hop for this message too. */
function connectionListed(raw: readonly string[]): Set<string> | null {
  let listed: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection') {
      for (const token of raw[i + 1]!.split(',')) {
        const name = token.trim().toLowerCase();
        if (name && !NEVER_LISTED.has(name)) (listed ??= new Set()).add(name);
      }
    }
  }
  return listed;
}

export interface ForwardedInfo {
  remoteAddress: string;
  proto: string;
  host: string | undefined;
}

/**
 * Request headers for the upstream: hop-by-hop removed (unless `keepUpgrade` for a WebSocket handshake),
 * X-Forwarded-For appended to, X-Forwarded-Proto and -Host set when an outer proxy has not set them.
 * Everything else, Authorization and Host included, passes untouched.
 */
export function upstreamRequestHeaders(raw: readonly string[], forwarded: ForwardedInfo, keepUpgrade = false): string[] {
  const listed = connectionListed(raw);
  const out: string[] = [];
  let forwardedFor: string | null = null;
  let hasProto = false;
  let hasHost = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed?.has(lower)) {
      if (keepUpgrade && (lower === 'upgrade' || lower === 'connection')) out.push(name, raw[i + 1]!);
      continue;
    }
    if (lower === 'x-forwarded-for') {
      forwardedFor = forwardedFor === null ? raw[i + 1]! : `${forwardedFor}, ${raw[i + 1]}`;
      continue;
    }
    if (lower === 'x-forwarded-proto') hasProto = true;
    else if (lower === 'x-forwarded-host') hasHost = true;
    out.push(name, raw[i + 1]!);
  }
  out.push('X-Forwarded-For', forwardedFor === null ? forwarded.remoteAddress : `${forwardedFor}, ${forwarded.remoteAddress}`);
  if (!hasProto) out.push('X-Forwarded-Proto', forwarded.proto);
  if (!hasHost && forwarded.host !== undefined) out.push('X-Forwarded-Host', forwarded.host);
  return out;
}

/** Response headers for the client: hop-by-hop removed, the rest untouched. */
export function clientResponseHeaders(raw: readonly string[]): string[] {
  const listed = connectionListed(raw);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed?.has(lower)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}
