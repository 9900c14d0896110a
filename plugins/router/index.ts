import { isIP } from 'node:net';
import { serviceConfig } from '../../core/config/lookup.ts';
import { definePlugin } from '../../sdk/index.ts';
import { autoCreate, autoCreates } from './auto-create.ts';
import { parseTenantHost } from './parse-host.ts';
import { weightedOrder } from './weighted.ts';
import type { RouteTarget } from '../../core/types.ts';

/**
 * Host routing: `{id}.{service}.{domain}` goes to one instance, `{service}.{domain}` is spread over the
 * service's instances by weight, the bare domain (or an IP address) is the management surface.
 */
export default definePlugin({
  name: 'router',
  version: '1.0.0',
  kernel: '^1',
  setup(kernel) {
    const domain = kernel.config.settings.domain;
    kernel.hooks.route.tapPromise('router', async (request): Promise<RouteTarget> => {
      const { hostname } = request;
      if (hostname === domain) return { kind: 'management' };
      // Only a host outside the domain can be an IP address; tenant hosts skip the check.
      const parsed = parseTenantHost(hostname, domain);
      if ('status' in parsed && isIP(hostname.replace(/^\[|\]$/g, '')) !== 0) return { kind: 'management' };
      if ('status' in parsed) return { kind: 'reject', ...parsed };
      const service = serviceConfig(kernel.config, parsed.service);
      if (!service) {
        return { kind: 'reject', status: 404, code: 'TNM_ERR_UNKNOWN_SERVICE', message: `unknown service '${parsed.service}'` };
      }
      if (parsed.id !== null) {
        let instance = kernel.instances.get(parsed.service, parsed.id);
        if (!instance && autoCreates(service)) {
          const created = autoCreate(kernel, parsed.service, service, parsed.id, request.remoteAddress);
          if ('kind' in created) return created;
          instance = created;
        }
        if (!instance) {
          return {
            kind: 'reject',
            status: 404,
            code: 'TNM_ERR_UNKNOWN_INSTANCE',
            message: `unknown instance '${parsed.service}:${parsed.id}'`,
          };
        }
        return { kind: 'instances', mode: 'direct', service: parsed.service, candidates: [instance] };
      }
      const candidates = weightedOrder(kernel.instances.ofService(parsed.service));
      if (candidates.length === 0) {
        return {
          kind: 'reject',
          status: 503,
          code: 'TNM_ERR_NO_HEALTHY_INSTANCE',
          message: `service '${parsed.service}' has no instance that can take traffic (weight above 0 and not failed)`,
        };
      }
      return { kind: 'instances', mode: 'weighted', service: parsed.service, candidates };
    });
  },
});
