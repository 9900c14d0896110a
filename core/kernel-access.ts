import { ownValue } from './config/lookup.ts';
import type { ServiceConfig } from './config/schema.ts';
import { ErrorCodes, TenementError } from './errors.ts';
import type { InstanceFacts } from './hooks.ts';
import type { Kernel } from './kernel.ts';
import { instanceOf, type KernelAccess } from './plugin-context.ts';
import { TokenSync } from './token-sync.ts';

/**
 * The parts of every PluginContext that carry no plugin name: read-only instance views, lifecycle capabilities
 * over the supervisor, service configs by own key, and tier declarations. Made once per kernel.
 */
export function kernelAccess(kernel: Kernel): KernelAccess {
  // Read on each call: a reload (core/config-reload.ts) replaces the service table.
  const services = (): Readonly<Record<string, ServiceConfig>> => kernel.config.services;
  return {
    services: {
      get: (name) => ownValue(services(), name),
      names: () => Object.keys(services()),
      entries: () => Object.entries(services()),
    },
    instances: {
      get: (service, id) => kernel.instances.get(service, id),
      getByKey: (key) => kernel.instances.getByKey(key),
      list: (filter) => kernel.instances.list(filter),
      ofService: (service) => kernel.instances.ofService(service),
      get size() {
        return kernel.instances.size;
      },
      watch: (listener) => kernel.watchEvents(listener),
      async describe(view) {
        const facts: InstanceFacts = {};
        await kernel.hooks.describe.promise(view, facts).catch((error: unknown) => kernel.log.warn({ err: error }, 'describe hook failed'));
        return facts;
      },
    },
    lifecycle: {
      create: (service, id, options) => kernel.createInstance(service, id, options),
      start: (view, reason) => kernel.supervisor.start(instanceOf(view), reason),
      spawn: (service, id) => kernel.spawnInstance(service, id),
      restart: (view, reason) => kernel.supervisor.restart(instanceOf(view), reason),
      hibernate: (view, reason) => kernel.hibernate(instanceOf(view), reason),
      remove: (view, reason) => kernel.removeInstance(instanceOf(view), reason),
      setWeight: (view, weight) => kernel.setWeight(instanceOf(view), weight),
      markHealthy(view) {
        const instance = instanceOf(view);
        instance.consecutiveHealthFailures = 0;
        instance.health = 'healthy';
      },
      markCheckFailed(view) {
        const instance = instanceOf(view);
        instance.consecutiveHealthFailures += 1;
        instance.failedHealthChecks += 1;
        return instance.consecutiveHealthFailures;
      },
      markUnhealthy: (view, detail) => kernel.supervisor.unhealthy(instanceOf(view), detail),
      isRemoved: (view) => kernel.supervisor.isRemoved(instanceOf(view)),
      failures: (view) => kernel.supervisor.failures(instanceOf(view)),
      emit(view, type, reason) {
        if (type === 'created' || type === 'removed') {
          throw new TenementError(ErrorCodes.INVALID_STATE, `'${type}' is the registry's own event: create or remove the instance instead`);
        }
        kernel.emit(instanceOf(view), type, reason);
      },
      touch(view, traffic) {
        instanceOf(view).lastActivity = Date.now();
        if (traffic && traffic.requests > 0) kernel.hooks.edgeTraffic.call({ ...traffic, instance: view });
      },
    },
    tiers: {
      declare: (tier, traits) => kernel.declareTier(tier, traits),
      traits: (tier) => kernel.tierTraits(tier),
      provided: () => kernel.providedTiers(),
      of: (service) => kernel.tierOf(service),
    },
    tenantUids: {
      release: (service, id) => kernel.uids.release(service, id),
    },
    tokens: new TokenSync(),
    proxy: {
      // The server exists before any plugin is set up (Kernel.start).
      accept: (socket, route) => kernel.server.accept(socket, route),
      route: (info) => kernel.server.route(info),
    },
  };
}
