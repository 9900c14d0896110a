/**
 * Node-to-node management calls: a node acts on another node's instances through that node's own API, on behalf
 * of the caller it authenticated (the dashboard's session, a token). The call carries no credential of the
 * caller: `X-Tenement-Fleet-Api`, a node call signed as signed-call.ts does (the caller's identity as its `who`,
 * bound to the node called, the method and the target; the body is not covered: the `auth` tap that checks it runs
 * before a body is read). The receiving node's `auth` tap turns a genuine header into that
 * identity (so the owner scopes tenants and audits the call as it would its own); a header that does not check
 * out is refused, and each header is taken once (a replay of a captured call within its minute is refused).
 */
import { DNS_LABEL } from '../../core/config/schema.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { Identity } from '../../core/types.ts';
import { ReplayGuard, signNodeCall, verifyNodeCall } from './signed-call.ts';

export const API_HEADER = 'x-tenement-fleet-api';
const CALL_TIMEOUT_MS = 15_000;
/** A node's answer larger than this is not read (a list of 10,000 instance views is about 5 MB). */
const MAX_ANSWER_BYTES = 32 * 1024 * 1024;

function identityOf(value: unknown): Identity | null {
  if (typeof value !== 'object' || value === null) return null;
  const { kind, tenant, name } = value as Record<string, unknown>;
  if (typeof name !== 'string' || name.length > 256) return null;
  if (kind === 'admin') return { kind, name };
  if (kind === 'tenant' && typeof tenant === 'string' && DNS_LABEL.test(tenant)) return { kind, tenant, name };
  return null;
}

/** The header for a call to node `to` on behalf of `identity`. */
export function signApiCall(secret: string, node: string, to: string, identity: Identity, method: string, target: string, now = Date.now()): string {
  const who = Buffer.from(JSON.stringify(identity.kind === 'admin' ? { kind: 'admin', name: identity.name } : { kind: 'tenant', tenant: identity.tenant, name: identity.name })).toString('base64url');
  return signNodeCall(secret, node, who, { method, to, target, body: '' }, now);
}

/** The caller's identity and the sending node when the header is genuine for a call to `self`, else null. */
export function verifyApiCall(secret: string, self: string, header: string, method: string, target: string, now = Date.now()): { node: string; identity: Identity } | null {
  const checked = verifyNodeCall(secret, header, { method, to: self, target, body: '' }, now);
  if (checked === null || checked.who === '') return null;
  let identity: Identity | null = null;
  try {
    identity = identityOf(JSON.parse(Buffer.from(checked.who, 'base64url').toString('utf8')) as unknown);
  } catch {
    identity = null;
  }
  return identity === null ? null : { node: checked.from, identity };
}

/** The `auth` tap: a genuine relayed call is its caller (named as relayed); a forged or replayed one is a 403. */
export function relayAuth(ctx: Pick<PluginContext, 'hooks'>, secret: string, self: string): void {
  const seen = new ReplayGuard();
  ctx.hooks.auth.tap(({ headers, method, url }) => {
    const given = headers[API_HEADER];
    if (given === undefined) return undefined;
    const now = Date.now();
    const header = typeof given === 'string' ? given : '';
    const checked = header !== '' && headers.authorization === undefined ? verifyApiCall(secret, self, header, method, url, now) : null;
    if (checked === null) throw new TenementError(ErrorCodes.FLEET_FORGED, `the ${API_HEADER} header is not signed with the fleet secret for this call`);
    if (!seen.accept(header, now)) throw new TenementError(ErrorCodes.FLEET_FORGED, `this ${API_HEADER} header was already used`);
    const { identity, node } = checked;
    const name = `${identity.name} (via ${node})`;
    return identity.kind === 'admin' ? { kind: 'admin', name } : { kind: 'tenant', tenant: identity.tenant, name };
  });
}

/** The body as text, refused past `maxBytes` even when the sender announced no length (a chunked answer). */
async function readBounded(reply: Response, maxBytes: number): Promise<string> {
  if (!reply.body) return '';
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of reply.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    // Leaving the loop by a throw cancels the stream.
    if (total > maxBytes) throw new Error(`answer of more than ${maxBytes} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface NodeAnswer {
  status: number;
  body: unknown;
}

/** One API call to node `to` at `advertise` on behalf of `identity`; rejects when the node cannot be reached. */
export async function callNode(
  to: string,
  advertise: string,
  secret: string,
  self: string,
  identity: Identity,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  target: string,
  body?: unknown,
  maxBytes = MAX_ANSWER_BYTES,
): Promise<NodeAnswer> {
  const headers: Record<string, string> = { accept: 'application/json', [API_HEADER]: signApiCall(secret, self, to, identity, method, target) };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const reply = await fetch(new URL(target, advertise), {
    method,
    headers,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    redirect: 'manual',
    signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
  });
  const length = Number(reply.headers.get('content-length') ?? 0);
  if (length > maxBytes) {
    await reply.body?.cancel();
    throw new Error(`answer of ${length} bytes (at most ${maxBytes} are read)`);
  }
  const text = await readBounded(reply, maxBytes);
  let parsed: unknown = null;
  try {
    parsed = text === '' ? null : (JSON.parse(text) as unknown);
  } catch {
    parsed = { error: { code: ErrorCodes.UPSTREAM_ERROR, message: `node answered ${reply.status} without JSON` } };
  }
  return { status: reply.status, body: parsed };
}
