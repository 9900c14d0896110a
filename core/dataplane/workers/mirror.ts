/**
 * What the kernel tells proxy workers of its routes: whether they may route on their own at all, and a route as
 * a worker can use it (instances with their addresses, the balancing rule), or null when only the kernel's
 * process can serve it.
 */
import type { KernelHooks } from '../../hooks.ts';
import type { RouteTarget } from '../../types.ts';
import type { MirroredRoute } from './protocol.ts';

/** Whether workers can route on their own: the router alone decides (on the host), and no tap edits upstream heads. */
export function workersCanRoute(hooks: KernelHooks): boolean {
  const taps = hooks.route.taps;
  return taps.length === 1 && taps[0]!.name === 'router' && hooks.upstreamHeaders.taps.length === 0;
}

export function mirrored(target: RouteTarget | undefined): MirroredRoute | null {
  if (target?.kind !== 'instances') return null;
  const candidates: MirroredRoute['candidates'] = [];
  for (const view of target.candidates) {
    const handle = view.state === 'running' ? view.handle : null;
    // An in-process (wasm) instance lives in the kernel's process: only it can call it.
    if (handle?.inProcess) return null;
    candidates.push({
      key: view.key,
      service: view.service,
      id: view.id,
      weight: view.weight,
      address: handle ? handle.address : null,
      requestTimeout: view.config.requestTimeout,
    });
  }
  // The router's rule for the service (every candidate of a weighted host has the service's config).
  const lb = target.candidates[0]?.config.lb ?? 'weighted';
  return { mode: target.mode, service: target.service, lb, candidates };
}
