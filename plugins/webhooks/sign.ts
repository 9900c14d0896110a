/**
 * `Tenement-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, as Stripe signs its
 * webhooks: the timestamp is inside the signed string, so a receiver that refuses old timestamps refuses replays.
 * docs/observability.md#alert-webhooks has the receiver's side (the same check the e2e test makes on every alert it receives).
 */
import { createHmac } from 'node:crypto';

export const SIGNATURE_HEADER = 'tenement-signature';

export function sign(secret: string, body: string, timestamp: number): string {
  const t = Math.floor(timestamp);
  const v1 = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
  return `t=${t},v1=${v1}`;
}
