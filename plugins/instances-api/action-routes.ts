import { requireWeight } from '../../core/api/identity.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { AuditNote } from '../../core/api/router.ts';
import type { InstanceView } from '../../core/instance.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { Identity } from '../../core/types.ts';
import { isUp, startFailure } from './start.ts';
import { instanceParams, weightBody, type InstanceParams } from './schemas.ts';
import { findInstance, viewOf } from './view.ts';

const TAGS = ['instances'];

/** Audited like every mutating call, naming the instance (so its tenant finds the entry in its audit log). */
function target(ctx: PluginContext, identity: Identity | null, params: InstanceParams, audit: AuditNote): InstanceView {
  audit.target = `${params.service}:${params.id}`;
  audit.instanceId = params.id;
  return findInstance(ctx.instances, identity, params.service, params.id);
}

/** Restart, hibernate, weight and a live health check of one instance. */
export function actionRoutes(ctx: PluginContext): void {
  ctx.api.route({
    method: 'POST',
    url: '/api/instances/:service/:id/restart',
    summary: 'Restart an instance (also revives a failed one); answers once it is running again',
    tags: TAGS,
    access: 'token',
    params: instanceParams,
    handler: async ({ identity, params, reply, audit }) => {
      const instance = target(ctx, identity, params, audit);
      await ctx.lifecycle.restart(instance, 'restarted through the API');
      if (!isUp(instance)) return startFailure(ctx.instances, instance, reply, audit);
      return viewOf(ctx.instances, instance);
    },
  });

  ctx.api.route({
    method: 'POST',
    url: '/api/instances/:service/:id/hibernate',
    summary: 'Hibernate a running instance now (its next request wakes it)',
    description: 'Does not wait for in-flight requests, like an idle hibernation. A hibernated instance answers as is; any other state is 409.',
    tags: TAGS,
    access: 'token',
    params: instanceParams,
    handler: async ({ identity, params, audit }) => {
      const instance = target(ctx, identity, params, audit);
      if (instance.state !== 'running' && instance.state !== 'hibernated') {
        throw new TenementError(ErrorCodes.CONFLICT, `${instance.key} is ${instance.state}; only a running instance can be hibernated`, {
        });
      }
      await ctx.lifecycle.hibernate(instance, 'hibernated through the API');
      return viewOf(ctx.instances, instance);
    },
  });

  ctx.api.route({
    method: 'PUT',
    url: '/api/instances/:service/:id/weight',
    summary: "Set an instance's share of {service}.{domain} traffic (0 to 100; 0 gets none); persisted",
    description: "A tenant token may set its own instance's weight only where the service grants tenants.maxWeight, up to it (else 403).",
    tags: TAGS,
    access: 'token',
    params: instanceParams,
    body: weightBody,
    handler: ({ identity, params, body, audit }) => {
      const instance = target(ctx, identity, params, audit);
      audit.detail = `weight ${instance.weight} -> ${body.weight}`;
      requireWeight(identity, instance.service, instance.config.tenants, body.weight);
      ctx.lifecycle.setWeight(instance, body.weight);
      return viewOf(ctx.instances, instance);
    },
  });

  ctx.api.route({
    method: 'GET',
    url: '/api/instances/:service/:id/health',
    summary: "Run the service's health check once, now",
    description: 'Read-only: it changes neither the instance health, its failure count nor its restarts.',
    tags: TAGS,
    access: 'token',
    params: instanceParams,
    handler: async ({ identity, params }) => {
      const instance = findInstance(ctx.instances, identity, params.service, params.id);
      if (!isUp(instance)) return { ok: false, detail: 'not running', latencyMs: null, state: instance.state, health: instance.health };
      const started = performance.now();
      // ctx.checkHealth only probes; counting failures and restarting is the health monitor's job alone.
      const result = await ctx.checkHealth(instance);
      const latencyMs = result.latencyMs ?? performance.now() - started;
      return {
        ok: result.ok,
        detail: result.detail ?? null,
        latencyMs: Math.round(latencyMs * 100) / 100,
        state: instance.state,
        health: instance.health,
      };
    },
  });
}
