/**
 * Redirect mode (docs/fleet.md#redirect-mode): a node answers a request for an instance placed elsewhere with a
 * 307 to the owner's `publicUrl` instead of forwarding it. The Location is made from the owner's heartbeat record
 * (a checked template) and the instance's names alone: nothing the client sends (Host, X-Forwarded-Host, an
 * absolute-form target) picks the origin a client is sent to.
 */
import { DNS_LABEL } from '../../core/config/schema.ts';
import { PUBLIC_URL } from './schema.ts';
import type { Placement } from './records.ts';

/**
 * A placement that moved this recently is forwarded (one signed hop, the loop guard behind it) rather than
 * redirected: while nodes' views of a move disagree, two nodes could send a client back and forth. Past it the
 * views agree (watchers deliver a move in milliseconds), so redirects chase at most one move.
 */
export const REDIRECT_SETTLE_MS = 5_000;

/** The request target's path and query (origin-form kept; an absolute-form target reduced to its path). */
function pathOf(target: string): string | null {
  if (target.length > 8192 || /[\s\u0000-\u001f\u007f]/.test(target)) return null;
  if (target.startsWith('/')) return target;
  try {
    const url = new URL(target);
    return `${url.pathname}${url.search}`;
  } catch {
    return null;
  }
}

/** The Location for `service:id` at a node whose publicUrl is `template`, or null when any part is unfit. */
export function redirectLocation(template: string, service: string, id: string, target: string): string | null {
  if (!PUBLIC_URL.test(template) || !DNS_LABEL.test(service) || !DNS_LABEL.test(id)) return null;
  const path = pathOf(target);
  if (path === null) return null;
  const origin = template.replace(/\/$/, '').replaceAll('{id}', id).replaceAll('{service}', service);
  try {
    const url = new URL(origin);
    if (url.pathname !== '/' || url.username !== '' || url.password !== '') return null;
    return `${url.origin}${path}`;
  } catch {
    return null;
  }
}

/** Whether a placement has been where it is long enough to send a client there (see REDIRECT_SETTLE_MS). */
export function settledForRedirect(placement: Placement, now = Date.now()): boolean {
  return placement.generation <= 1 || now - placement.at >= REDIRECT_SETTLE_MS;
}
