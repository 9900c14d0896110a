/**
 * The header that marks a request one node forwarded to another: `<node>.<unix ms>.<HMAC-SHA256>` over the node,
 * the time, the method, the host name and the target, keyed by the fleet secret. A client cannot make one (no
 * secret), and a node that receives one never forwards the request again (the loop guard). A signature is good for
 * MAX_SKEW_MS either way, so clocks must agree to within that.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { decodeToken, encodeToken } from './keys.ts';

export const FORWARDED_HEADER = 'x-tenement-fleet-forwarded';
const MAX_SKEW_MS = 60_000;
const MAX_HEADER = 512;

export interface SignedFields {
  method: string;
  hostname: string;
  target: string;
}

function mac(secret: string, node: string, at: string, fields: SignedFields): Buffer {
  return createHmac('sha256', secret).update(`${node}\n${at}\n${fields.method}\n${fields.hostname}\n${fields.target}`).digest();
}

export function signForward(secret: string, node: string, fields: SignedFields, now = Date.now()): string {
  const at = String(now);
  return `${encodeToken(node)}.${at}.${mac(secret, node, at, fields).toString('base64url')}`;
}

/** The forwarding node's id when the header is genuine, else null. */
export function verifyForward(secret: string, header: string, fields: SignedFields, now = Date.now()): string | null {
  if (header.length > MAX_HEADER) return null;
  const parts = header.split('.');
  if (parts.length !== 3) return null;
  const node = decodeToken(parts[0]!);
  const at = parts[1]!;
  if (node === null || !/^\d{1,15}$/.test(at) || Math.abs(now - Number(at)) > MAX_SKEW_MS) return null;
  const given = Buffer.from(parts[2]!, 'base64url');
  const expected = mac(secret, node, at, fields);
  return given.length === expected.length && timingSafeEqual(given, expected) ? node : null;
}
