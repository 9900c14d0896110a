// A sandboxed auth plugin: tenant requests without an `x-country` header (as a CDN or geo-IP proxy in front
// would set it) are denied with 403; requests from countries on the block list get 451.
// It runs as a WebAssembly component in Tenement's wasm pool: no file system, no environment, no network.
import type { AuthDecision, PluginRequest } from '../../plugins/wasm-plugins/guest-types.ts';

const BLOCKED = new Set(['aq']);

export function auth(request: PluginRequest): AuthDecision {
  const country = request.headers.find(([name]) => name === 'x-country')?.[1]?.trim().toLowerCase();
  if (!country) return { tag: 'deny', val: { status: 403, message: 'x-country header required' } };
  if (BLOCKED.has(country)) {
    // Reaches the server log: this plugin is granted `log`.
    console.log(`blocked ${request.method} ${request.host}${request.path} from ${country}`);
    return { tag: 'deny', val: { status: 451, message: `not available in ${country}` } };
  }
  return { tag: 'allow' };
}
