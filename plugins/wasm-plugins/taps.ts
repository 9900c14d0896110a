import { autoCreate, autoCreates } from '../../core/auto-create.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { InstanceEvent, InstanceState, InstanceView, RequestInfo, RouteTarget } from '../../core/types.ts';
import { readAuthAnswer, readRouteAnswer } from './answers.ts';
import { eventRecord, requestRecord, type RequestRecord } from './records.ts';
import type { CallResult, PluginRunner } from './runner.ts';

/** Before every other `route` tap (the router's included): denials must come before routing. */
const AUTH_STAGE = -200;
const ROUTE_STAGE = -100;
/** Events waiting for one plugin's `on-event`; past it new ones are dropped (and counted). */
const EVENT_BACKLOG = 256;

/** What routing to an instance needs of the context: services, instances, and auto-creation within bounds. */
type RouteContext = Pick<PluginContext, 'services' | 'instances' | 'lifecycle'>;

/**
 * Tenant traffic passes the `route` hook, so `auth` is a route tap that answers a `reject` target on deny and
 * passes (undefined) otherwise. Only hosts under the domain are tenant traffic: the management API keeps its
 * own auth and is never subject to a plugin. A plugin is only called for the hooks its config lists.
 */
export function tapTenantTraffic(ctx: RouteContext & Pick<PluginContext, 'settings' | 'hooks'>, runners: readonly PluginRunner[]): void {
  const suffix = `.${ctx.settings.domain}`;
  // One record per request, however many plugins look at it.
  const records = new WeakMap<RequestInfo, RequestRecord>();
  const recordOf = (request: RequestInfo): RequestRecord => {
    let record = records.get(request);
    if (!record) {
      record = requestRecord(request);
      records.set(request, record);
    }
    return record;
  };

  const rejected = new RecentRejects();
  for (const runner of runners.filter((r) => r.declares('auth'))) {
    ctx.hooks.route.tap(async (request) => {
      if (!request.hostname.endsWith(suffix)) return undefined;
      const again = rejected.take(runner, request);
      if (again) return again;
      const target = authorize(runner, await runner.call('auth', [recordOf(request)]));
      if (target) rejected.remember(runner, request, target);
      return target;
    }, { stage: AUTH_STAGE });
  }
  for (const runner of runners.filter((r) => r.declares('route'))) {
    ctx.hooks.route.tap(async (request) => {
      if (!request.hostname.endsWith(suffix)) return undefined;
      const result = await runner.call('route', [recordOf(request)]);
      if (!result.ok) return undefined;
      return routeTo(ctx, runner, result.value, request.remoteAddress);
    }, { stage: ROUTE_STAGE });
  }
}

/** How long a rejection waits for the same request to be routed again. */
const REJECT_MEMORY_MS = 2_000;

/**
 * The fast data plane hands a request it will not proxy (a rejection) to the HTTP server, which runs the `route`
 * hook again: the plugin's answer is remembered for that second pass instead of asking it twice. Entries are
 * taken once; the lookup costs nothing while none is waiting.
 */
class RecentRejects {
  private readonly byKey = new Map<string, { target: RouteTarget; at: number }>();

  private key(runner: PluginRunner, request: RequestInfo): string {
    return `${runner.name}\0${request.remoteAddress}\0${request.method}\0${request.hostname}\0${request.url}\0${JSON.stringify(request.headers)}`;
  }

  take(runner: PluginRunner, request: RequestInfo): RouteTarget | undefined {
    if (this.byKey.size === 0) return undefined;
    const key = this.key(runner, request);
    const entry = this.byKey.get(key);
    if (!entry) return undefined;
    this.byKey.delete(key);
    return performance.now() - entry.at < REJECT_MEMORY_MS ? entry.target : undefined;
  }

  remember(runner: PluginRunner, request: RequestInfo, target: RouteTarget): void {
    const now = performance.now();
    if (this.byKey.size >= 1024) {
      for (const [key, entry] of this.byKey) if (now - entry.at >= REJECT_MEMORY_MS) this.byKey.delete(key);
      if (this.byKey.size >= 1024) this.byKey.clear();
    }
    this.byKey.set(this.key(runner, request), { target, at: now });
  }
}

function authorize(runner: PluginRunner, result: CallResult): RouteTarget | undefined {
  const answer = result.ok ? readAuthAnswer(result.value) : null;
  if (result.ok && answer === null) runner.failed('auth', 'invalid', `not an auth decision: ${preview(result.value)}`);
  if (answer === null) {
    if (!runner.config.failClosed) return undefined;
    return {
      kind: 'reject',
      status: 503,
      code: 'TNM_ERR_PLUGIN_UNAVAILABLE',
      message: `auth plugin '${runner.name}' could not decide (${result.ok ? 'invalid answer' : result.outcome})`,
    };
  }
  runner.count('auth', answer.kind);
  if (answer.kind !== 'deny') return undefined;
  return { kind: 'reject', status: answer.status, code: 'TNM_ERR_PLUGIN_DENIED', message: answer.message || `denied by plugin '${runner.name}'` };
}

function routeTo(ctx: RouteContext, runner: PluginRunner, value: unknown, address: string): RouteTarget | undefined {
  const answer = readRouteAnswer(value);
  if (answer === undefined) {
    runner.failed('route', 'invalid', `not a route target: ${preview(value)}`);
    return undefined;
  }
  if (answer === null) {
    runner.count('route', 'no-answer');
    return undefined;
  }
  const service = ctx.services.get(answer.service);
  if (!service) {
    runner.failed('route', 'invalid', `routes to unknown service '${answer.service}'`);
    return undefined;
  }
  if (answer.instance !== null) {
    let instance = ctx.instances.get(answer.service, answer.instance);
    if (!instance && autoCreates(service)) {
      // Within the service's autoCreate bounds, as for the router's own hosts: a refusal is the client's answer.
      const created = autoCreate(ctx, answer.service, service, answer.instance, address);
      if ('kind' in created) return created;
      instance = created;
    }
    if (!instance) {
      runner.failed('route', 'invalid', `routes to unknown instance '${answer.service}:${answer.instance}'`);
      return undefined;
    }
    runner.count('route', 'routed');
    return { kind: 'instances', mode: 'direct', service: answer.service, candidates: [instance] };
  }
  const candidates = trafficCandidates(ctx.instances.ofService(answer.service));
  if (candidates.length === 0) {
    runner.failed('route', 'invalid', `routes to service '${answer.service}', which has no instance that can take traffic`);
    return undefined;
  }
  runner.count('route', 'routed');
  return { kind: 'instances', mode: 'weighted', service: answer.service, candidates };
}

const WAKEABLE: ReadonlySet<InstanceState> = new Set(['created', 'starting', 'waking', 'restarting', 'hibernated', 'stopped']);

/** Running instances first, then wakeable ones, each drawn by weight (the router's rule, plugins not sharing code). */
function trafficCandidates(instances: readonly InstanceView[]): InstanceView[] {
  const keyed = instances
    .filter((i) => i.weight > 0 && ((i.state === 'running' && i.handle) || WAKEABLE.has(i.state)))
    .map((i) => [(i.state === 'running' ? 1 : 0) + Math.random() ** (1 / i.weight), i] as const);
  return keyed.sort((a, b) => b[0] - a[0]).map(([, i]) => i);
}

/**
 * Every lifecycle event goes to each `on-event` plugin in order, one call at a time per plugin, without ever
 * holding up the lifecycle: the tap queues the call and returns.
 */
export function tapEvents(hooks: PluginContext['hooks'], runners: readonly PluginRunner[]): void {
  for (const runner of runners.filter((r) => r.declares('on-event'))) {
    let tail: Promise<unknown> = Promise.resolve();
    let pending = 0;
    hooks.stateChange.tap((event: InstanceEvent) => {
      if (pending >= EVENT_BACKLOG) {
        runner.failed('on-event', 'dropped', `${EVENT_BACKLOG} events already waiting`);
        return;
      }
      pending += 1;
      const record = eventRecord(event);
      tail = tail.then(async () => {
        const result = await runner.call('on-event', [record]);
        pending -= 1;
        if (result.ok) runner.count('on-event', 'ok');
      });
    });
  }
}

function preview(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}
