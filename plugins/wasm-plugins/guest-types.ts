/**
 * The `plugin` world (sdk/wit/plugin.wit) as JavaScript sees it through jco: what a plugin written in TypeScript
 * receives and returns. Import these with `import type` in a plugin's source; they vanish from the build.
 */

export interface PluginRequest {
  method: string;
  /** Host name without port, lowercased. */
  host: string;
  /** Path and query string as sent. */
  path: string;
  /** Lowercase names; a repeated header appears once per value. */
  headers: Array<[string, string]>;
  remoteAddress: string;
}

export type AuthDecision =
  | { tag: 'allow' }
  | { tag: 'deny'; val: { status: number; message: string } }
  | { tag: 'no-answer' };

/** `undefined` leaves routing to the host name. */
export type RouteTarget = { service: string; instance?: string } | undefined;

export interface PluginInstanceEvent {
  type: string;
  /** `service:id` */
  instance: string;
  service: string;
  id: string;
  from: string;
  to: string;
  reason?: string;
  /** Milliseconds since the Unix epoch (a WIT u64: a number in QuickJS guests, a bigint in others). */
  at: number | bigint;
}

/** The exports of a plugin source; implement the hooks you list in the config, the build fills in the rest. */
export interface PluginHooks {
  auth?(request: PluginRequest): AuthDecision;
  route?(request: PluginRequest): RouteTarget;
  onEvent?(event: PluginInstanceEvent): void;
}
