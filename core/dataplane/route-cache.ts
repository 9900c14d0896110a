import type { KernelHooks } from '../hooks.ts';
import type { RequestInfo, RouteTarget } from '../types.ts';

/**
 * Bumped on every change that can change where a host routes (an instance event: created, state, removed; a
 * weight change; a reload): a cached route of an older generation is not used. One number, read per request.
 */
export const routing = { generation: 0 };

const listeners = new Set<() => void>();

export function bumpRouting(): void {
  routing.generation++;
  for (const listener of listeners) listener();
}

/** Calls `listener` after every bump (the proxy workers' mirrors follow); returns the unsubscribe. */
export function onRoutingChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

type InstanceTarget = Extract<RouteTarget, { kind: 'instances' }>;
export type RouteResult = RouteTarget | undefined | Promise<RouteTarget | undefined>;
/** Routes one request: `info` is made only when the `route` hook has to run. */
export type Router = (hostname: string, info: () => RequestInfo) => RouteResult;

/** Hosts whose route is remembered; past it the cache starts over (a flood of names costs a miss each, no memory). */
const MAX_CACHED_HOSTS = 4096;

/**
 * The `route` hook with its answers for `{id}.{service}` hosts remembered until the routing generation moves.
 * Only while the built-in router is the hook's one tap: its answer for a direct host depends on the host alone
 * (a weighted one is drawn per request, a plugin's route tap may read anything of the request, so neither is
 * cached). A hit costs a Map lookup instead of the hook's promise chain and a microtask.
 */
export function cachingRouter(hooks: KernelHooks): Router {
  const cache = new Map<string, { generation: number; target: InstanceTarget }>();
  return (hostname, info) => {
    const taps = hooks.route.taps;
    const cacheable = taps.length === 1 && taps[0]!.name === 'router';
    if (!cacheable) return hooks.route.promise(info());
    const hit = cache.get(hostname);
    if (hit !== undefined && hit.generation === routing.generation) return hit.target;
    const generation = routing.generation;
    return hooks.route.promise(info()).then((target) => {
      if (target?.kind === 'instances' && target.mode === 'direct' && generation === routing.generation) {
        if (cache.size >= MAX_CACHED_HOSTS) cache.clear();
        cache.set(hostname, { generation, target });
      }
      return target;
    });
  };
}
