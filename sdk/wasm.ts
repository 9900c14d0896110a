/**
 * For TypeScript handlers run with `isolation: 'wasm'` (docs/wasm.md): the request and response types and the
 * tenant's storage. A handler module exports `handle`; `ten build handler.ts` makes the component:
 *
 *   import type { Request, Response } from 'tenement/sdk/wasm';
 *   export function handle(req: Request): Response {
 *     return { status: 200, headers: { 'content-type': 'text/plain' }, body: `hello from ${req.path}\n` };
 *   }
 *
 * Inside the component there is no file system, network or environment; console, Date, Math.random,
 * crypto.getRandomValues, performance.now, TextEncoder and TextDecoder work (on Tenement's host imports).
 * Only import this module's values from handler code: they exist inside a component only.
 */
/// <reference path="./wit/handler.d.ts" />
import * as guestMetrics from 'tenement:http/metrics@0.1.0';
import * as tenantData from 'tenement:http/tenant-data@0.1.0';

/** An HTTP request as the router received it (the record `tenement:http/types.request`). */
export interface Request {
  /** Upper-case method: GET, POST, ... */
  method: string;
  /** Path without the query string, starting with '/'. */
  path: string;
  /** Query string without the leading '?'; '' when there is none. */
  query: string;
  /** Lower-case header names in arrival order; a repeated header appears once per value. */
  headers: [string, string][];
  body: Uint8Array;
}

/**
 * What `handle` returns. Everything is optional: status defaults to 200, headers to none, body to empty;
 * a string body is sent as UTF-8.
 */
export interface Response {
  status?: number;
  headers?: [string, string][] | Record<string, string>;
  body?: string | Uint8Array;
}

export type Handler = (req: Request) => Response;

/** The first value of a request header (names are lower case), or undefined. */
export function header(req: Request, name: string): string | undefined {
  const wanted = name.toLowerCase();
  return req.headers.find(([n]) => n === wanted)?.[1];
}

/** The query string's parameters (QuickJS has no URLSearchParams). */
export function queryParams(req: Request): Map<string, string> {
  const params = new Map<string, string>();
  for (const part of req.query.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const decode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
    params.set(decode(eq < 0 ? part : part.slice(0, eq)), eq < 0 ? '' : decode(part.slice(eq + 1)));
  }
  return params;
}

/**
 * Files in this tenant's DATA_DIR (flat names: letters, digits, '.', '_', '-'). Each tenant sees only its own;
 * what is written survives restarts and hibernation. Methods throw an Error with the host's reason on failure.
 */
export const data = {
  read: (name: string): Uint8Array | null => tenantData.read(name),
  readText: (name: string): string | null => {
    const bytes = tenantData.read(name);
    return bytes === null ? null : new TextDecoder().decode(bytes);
  },
  write: (name: string, bytes: Uint8Array): void => tenantData.write(name, bytes),
  writeText: (name: string, text: string): void => tenantData.write(name, new TextEncoder().encode(text)),
  remove: (name: string): boolean => tenantData.remove(name),
  names: (): string[] => tenantData.names(),
};

type Labels = Record<string, string> | [string, string][];
const pairs = (labels: Labels | undefined): [string, string][] => (labels === undefined ? [] : Array.isArray(labels) ? labels : Object.entries(labels));

/**
 * This function's own metrics, published through a host call (no /metrics route to write): with `metrics` on
 * the service, they appear on Tenement's /metrics as `tenant_<name>{service, instance, ...labels}`
 * (docs/observability.md). A name is a gauge (`set`) or a counter (`inc`) as first used; updates of the other
 * kind are ignored. Values last while the instance runs: after a wake or restart, counters start from zero.
 * Throws an Error with the host's reason on an invalid name or label, or a negative increment.
 *
 *   metrics.inc('orders_total', { plan: 'pro' });
 *   metrics.set('cart_items', 3);
 */
export const metrics = {
  set: (name: string, value: number, labels?: Labels): void => guestMetrics.set(name, pairs(labels), value),
  inc: (name: string, labels?: Labels, delta = 1): void => guestMetrics.add(name, pairs(labels), delta),
};
