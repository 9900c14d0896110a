/**
 * The one way a node signs a call to another node's API (relay.ts: on behalf of a caller; peer.ts: a move's internal
 * calls): `<from>.<unix ms>.<nonce>.<who>.<HMAC-SHA256>` over all of them plus the method, the node called, the
 * target and the sha256 of the body, keyed by the fleet secret. `who` is the caller a relayed call acts for
 * (base64url JSON), empty for a node's own call. A client without the secret can neither make one nor move one to
 * another node, target or body; each header is accepted once (ReplayGuard) within MAX_SKEW_MS of its time.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { decodeToken, encodeToken } from './keys.ts';

const MAX_SKEW_MS = 60_000;
const MAX_HEADER = 1024;
/** Headers remembered against replay; past it the oldest are forgotten (they expire within 2 × MAX_SKEW_MS anyway). */
const MAX_SEEN = 10_000;

export interface CallFields {
  method: string;
  /** The node called. */
  to: string;
  target: string;
  /** The body as sent ('' for none). */
  body: string;
}

function mac(secret: string, from: string, at: string, nonce: string, who: string, fields: CallFields): Buffer {
  const digest = createHash('sha256').update(fields.body).digest('hex');
  return createHmac('sha256', secret).update(['fleet-call', from, at, nonce, who, fields.method.toUpperCase(), fields.to, fields.target, digest].join('\n')).digest();
}

export function signNodeCall(secret: string, from: string, who: string, fields: CallFields, now = Date.now()): string {
  const at = String(now);
  const nonce = randomBytes(9).toString('base64url');
  return `${encodeToken(from)}.${at}.${nonce}.${who}.${mac(secret, from, at, nonce, who, fields).toString('base64url')}`;
}

/** The calling node and `who` when the header is genuine for these fields, else null. */
export function verifyNodeCall(secret: string, header: string, fields: CallFields, now = Date.now()): { from: string; who: string } | null {
  if (header.length > MAX_HEADER) return null;
  const parts = header.split('.');
  if (parts.length !== 5) return null;
  const [encoded, at, nonce, who, signature] = parts as [string, string, string, string, string];
  const from = decodeToken(encoded);
  if (from === null || !/^\d{1,15}$/.test(at) || Math.abs(now - Number(at)) > MAX_SKEW_MS || !/^[A-Za-z0-9_-]{1,32}$/.test(nonce) || !/^[A-Za-z0-9_-]*$/.test(who)) return null;
  const given = Buffer.from(signature, 'base64url');
  const expected = mac(secret, from, at, nonce, who, fields);
  return given.length === expected.length && timingSafeEqual(given, expected) ? { from, who } : null;
}

/** Each genuine header is taken once: a replay within its time window is refused. Bounded. */
export class ReplayGuard {
  private readonly seen = new Map<string, number>();

  /** False when `header` was accepted before. */
  accept(header: string, now = Date.now()): boolean {
    if ((this.seen.get(header) ?? 0) > now) return false;
    if (this.seen.size >= MAX_SEEN) {
      for (const [key, until] of this.seen) if (until <= now || this.seen.size >= MAX_SEEN) this.seen.delete(key);
    }
    this.seen.set(header, now + 2 * MAX_SKEW_MS);
    return true;
  }
}
