/**
 * A fleet node at work (loaded by the fleet plugin's setup only when `settings.fleet` is set, so a server outside
 * a fleet never loads the NATS client): routing through stand-ins, spawning, heartbeats, failover, the API.
 */
import os from 'node:os';
import type { FleetSettings } from './schema.ts';
import { FIRST_PARTY_TIERS } from '../../core/config/first-party.ts';
import { autoCreate, autoCreates } from '../../core/auto-create.ts';
import { weightedOrder } from '../../core/dataplane/balance.ts';
import { ErrorCodes, TenementError, errorFields, statusOf } from '../../core/errors.ts';
import type { InstanceView } from '../../core/instance.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { RequestInfo, RouteTarget, RunningHandle, SpawnSpec } from '../../core/types.ts';
import { openFleet } from './connection.ts';
import { FORWARDED_HEADER, signForward, verifyForward } from './forward-auth.ts';
import { instanceKey, placementKey as placementKeyOf } from './keys.ts';
import { Heartbeat, addressOf, advertiseOf, fleetSecret } from './node.ts';
import { Mover } from './move.ts';
import { Placer, type PlacementPolicy } from './placement.ts';
import type { Placement } from './records.ts';
import { registerFleetInstanceRoutes } from './fleet-instances.ts';
import { redirectLocation, settledForRedirect } from './redirect.ts';
import { API_HEADER, relayAuth } from './relay.ts';
import { registerFleetRoutes } from './routes.ts';
import { running, type FleetNode, type Stub } from './registry.ts';
import { FleetState } from './state.ts';

/** Moves and failovers one tick may start: the rest wait for the next tick. */
const MAX_MOVES_PER_TICK = 256;
/** Moves written at once (each a CAS round trip). */
const MOVES_IN_FLIGHT = 16;
const ACTIVE: ReadonlySet<string> = new Set(['running', 'starting', 'waking']);

function reject(code: (typeof ErrorCodes)[keyof typeof ErrorCodes], message: string, retryAfter?: number): RouteTarget {
  return { kind: 'reject', status: statusOf(code), code, message, ...(retryAfter !== undefined ? { retryAfter } : {}) };
}

/** `{id}.{service}.{domain}` → names, else null (the router answers everything else as it always does). */
function tenantOf(hostname: string, domain: string): { service: string; id: string } | null {
  if (!hostname.endsWith(`.${domain}`)) return null;
  const labels = hostname.slice(0, -domain.length - 1).split('.');
  return labels.length === 2 && labels[0] !== '' && labels[1] !== '' ? { id: labels[0]!, service: labels[1]! } : null;
}

/** A publicUrl whose host is not a `{id}.{service}` host of this server's domain would send clients where nothing routes them. */
function checkPublicUrl(publicUrl: string | undefined, domain: string): void {
  if (publicUrl === undefined) return;
  const host = new URL(publicUrl.replaceAll('{id}', 'i').replaceAll('{service}', 's')).hostname;
  if (host !== `i.s.${domain}` || !publicUrl.includes('{id}.{service}.')) {
    throw new TenementError(ErrorCodes.CONFIG_INVALID, `settings.fleet.publicUrl: expected the host {id}.{service}.${domain} (this server's domain), got '${publicUrl}'`);
  }
}

export async function setupFleet(ctx: PluginContext, settings: FleetSettings, policies: readonly PlacementPolicy[]): Promise<void> {
  const self = settings.node ?? `${os.hostname()}-${ctx.settings.port}`;
  checkPublicUrl(settings.publicUrl, ctx.settings.domain);
  const connection = await openFleet(settings, self, ctx.paths.configDir);
  const closers: Array<() => unknown> = [() => connection.nc.close()];
  ctx.onClose(async () => {
    for (const close of closers.reverse()) await Promise.resolve(close()).catch(() => undefined);
  });
  const secret = await fleetSecret(connection.control, settings.secret);
  const stubs = new Map<string, Stub>();

  const serving = (view: InstanceView): string => stubs.get(instanceKey(view.service, view.id))?.node ?? self;

  /**
   * A placement moved: a local copy serving from the wrong node hibernates (woken, placed right, on its next
   * request). A process of its own only once no request is in flight (hibernation does not drain: it is meant for
   * idle instances); the route tap and every heartbeat try again, and the state turns `stopping` synchronously,
   * so a request routed after it waits for the wake instead of reaching a closing process.
   */
  const settle = (placement: Placement): void => {
    const local = ctx.instances.get(placement.service, placement.id);
    if (!local || !ACTIVE.has(local.state) || serving(local) === placement.node) return;
    if (local.inFlight > 0 && !stubs.has(instanceKey(placement.service, placement.id))) return;
    ctx.lifecycle.hibernate(local, `fleet: now placed on ${placement.node}`).catch((error: unknown) => ctx.log.warn({ instance: local.key, ...errorFields(error) }, 'fleet: could not stop a moved instance'));
  };

  // Removed on its node: the stand-ins other nodes keep for it go too (a later request may create it afresh).
  const forget = (placement: Placement): void => {
    const local = ctx.instances.get(placement.service, placement.id);
    if (!local || !stubs.has(instanceKey(placement.service, placement.id))) return;
    ctx.lifecycle.remove(local, `fleet: removed on ${placement.node}`).catch((error: unknown) => ctx.log.warn({ instance: local.key, ...errorFields(error) }, 'fleet: could not remove a stand-in'));
  };
  const state = new FleetState(settings.expiryMs, (placement) => settle(placement), forget);
  closers.push(() => state.stop());
  const labelsOf = (service: string): Readonly<Record<string, string>> => ctx.services.get(service)?.fleet?.labels ?? {};
  const placer = new Placer(connection.placements, state, self, labelsOf);
  for (const policy of settings.place ? [settings.place, ...policies] : policies) placer.place.tapPromise({ name: 'policy', stage: 0 }, async (request) => policy(request));
  await state.start(connection.nodes, connection.placements);
  const mover = new Mover(ctx, { self, secret, state, placer, maxBytes: settings.moveMaxBytes, isStub: (service, id) => stubs.has(instanceKey(service, id)) });

  const heartbeat = new Heartbeat(connection.nodes, connection.control, self, () => {
    let count = 0;
    for (const view of ctx.instances.list({ state: 'running' })) if (!stubs.has(instanceKey(view.service, view.id))) count++;
    return {
      advertise: ctx.serving ? (settings.advertise?.replace(/\/$/, '') ?? advertiseOf(ctx.url)) : '',
      publicUrl: ctx.serving ? (settings.publicUrl ?? '') : '',
      labels: settings.labels,
      capacity: settings.capacity ?? null,
      running: count,
    };
  });

  // --- routing: a request is served here, or by a stand-in that forwards it to the owner ---
  ctx.hooks.route.tap(
    async (request: RequestInfo): Promise<RouteTarget | undefined> => {
      const names = tenantOf(request.hostname, ctx.settings.domain);
      const forwarded = request.headers[FORWARDED_HEADER];
      if (!names) return forwarded === undefined ? undefined : forwardedToService(request, forwarded);
      const config = ctx.services.get(names.service);
      if (!config) return undefined;
      // Being moved to another node: held (not failed) until the target serves it.
      const held = mover.hold(names.service, names.id);
      if (held) {
        const late = await held;
        if (late) return late;
      }
      if (forwarded !== undefined) {
        const from = typeof forwarded === 'string' ? verifyForward(secret, forwarded, { method: request.method, hostname: request.hostname, target: request.url }) : null;
        if (from === null) return reject(ErrorCodes.FLEET_FORGED, `the ${FORWARDED_HEADER} header is not signed with the fleet secret`);
        let placement = state.placement(names.service, names.id);
        if (placement?.node !== self) {
          // The sender may have placed it here a moment ago, and this node's watch not have brought that yet (a
          // new tenant's first request through another node): what NATS stores decides, not the view alone.
          await placer.refresh(names.service, names.id).catch(() => null);
          placement = state.placement(names.service, names.id);
        }
        if (placement?.node !== self) {
          // Just moved away (a drain, a failover): the copy still running here serves what was sent before the
          // sender saw the move, rather than losing it; it stops once idle. Never sent on again.
          const local = ctx.instances.get(names.service, names.id);
          if (local && local.state === 'running' && !stubs.has(instanceKey(names.service, names.id))) return undefined;
          // Moved away by this node with its data (move.ts): sent on to the new owner once, through a stand-in here.
          if (local && placement && mover.movedTo(names.service, names.id) === placement.node) return undefined;
          return reject(ErrorCodes.FLEET_LOOP, `${names.service}:${names.id} is not placed on ${self} (${placement ? `on ${placement.node}` : 'nowhere'}): a forwarded request is not forwarded again`, 1);
        }
        // Placed here by another node: the instance exists fleet-wide, so it exists here too.
        if (!ctx.instances.get(names.service, names.id)) ctx.lifecycle.create(names.service, names.id);
        return undefined;
      }
      let local = ctx.instances.get(names.service, names.id);
      let placement = state.placement(names.service, names.id);
      if (!placement && !local) {
        // An instance nobody created (and no autoCreate) gets no placement: the router answers 404. autoCreate's
        // bounds are applied before anything is claimed, so refused requests write nothing to the fleet.
        if (!autoCreates(config)) return undefined;
        const created = autoCreate(ctx, names.service, config, names.id, request.remoteAddress);
        if ('kind' in created) return created;
        local = created;
      }
      if (!placement || placer.mustMove(placement)) placement = await placer.ensure(names.service, names.id);
      if (settings.routing === 'redirect' && !request.upgrade && placement.node !== self) {
        const redirect = redirectTo(placement, request.url);
        if (redirect) return redirect;
      }
      // Placed (here or elsewhere), so it exists fleet-wide: a node that has not seen it yet registers it.
      if (!local) ctx.lifecycle.create(names.service, names.id);
      // A local stand-in for a moved instance is re-pointed by its wake.
      if (local) settle(placement);
      return undefined;
    },
    { stage: -50 },
  );

  /**
   * Redirect mode: the owner's publicUrl, when it is live, publishes one, and the placement has settled; otherwise
   * undefined and the request is forwarded (upgrades always are: clients do not follow a redirect for them).
   */
  const redirectTo = (placement: Placement, target: string): RouteTarget | undefined => {
    const owner = state.node(placement.node);
    if (!owner || !state.isLive(placement.node) || owner.publicUrl === '' || !settledForRedirect(placement)) return undefined;
    const location = redirectLocation(owner.publicUrl, placement.service, placement.id, target);
    if (location === null) return undefined;
    return { kind: 'redirect', status: 307, location, message: `${placement.service}:${placement.id} is served by ${placement.node}` };
  };

  /**
   * A `{service}.{domain}` request a stand-in in that service's weighted pool forwarded: served by this node's own
   * instances only (never forwarded again).
   */
  const forwardedToService = (request: RequestInfo, forwarded: string | string[]): RouteTarget => {
    const from = typeof forwarded === 'string' ? verifyForward(secret, forwarded, { method: request.method, hostname: request.hostname, target: request.url }) : null;
    const service = request.hostname.endsWith(`.${ctx.settings.domain}`) ? request.hostname.slice(0, -ctx.settings.domain.length - 1) : '';
    if (from === null || service === '' || service.includes('.') || !ctx.services.get(service)) {
      return reject(ErrorCodes.FLEET_FORGED, `the ${FORWARDED_HEADER} header is not signed with the fleet secret, or names no service`);
    }
    const own = ctx.instances.ofService(service).filter((view) => !stubs.has(instanceKey(view.service, view.id)));
    const candidates = weightedOrder(own);
    if (candidates.length === 0) return reject(ErrorCodes.NO_HEALTHY_INSTANCE, `service '${service}' has no instance of its own on ${self} that can take traffic`, 1);
    return { kind: 'instances', mode: 'weighted', service, candidates };
  };

  // --- spawning: before any runtime, an instance placed elsewhere gets a stand-in handle ---
  const spawnTap = async (spec: SpawnSpec): Promise<RunningHandle | undefined> => {
    // A wake during a move of the instance starts nothing here before the move is done.
    await mover.hold(spec.service, spec.id);
    const placement = await placer.ensure(spec.service, spec.id);
    if (placement.node === self) return undefined;
    const owner = state.node(placement.node);
    if (!owner || !state.isLive(placement.node)) {
      throw new TenementError(ErrorCodes.FLEET_UNAVAILABLE, `fleet: ${spec.service}:${spec.id} is placed on ${placement.node}, which is not reachable yet`, { retryAfter: 1 });
    }
    const key = instanceKey(spec.service, spec.id);
    const stub: Stub = { node: placement.node };
    stubs.set(key, stub);
    return {
      pid: null,
      pgid: null,
      address: addressOf(owner.advertise),
      stop: async () => {
        if (stubs.get(key) === stub) stubs.delete(key);
        return { code: 0, signal: null };
      },
      stats: async () => ({ pid: null, memoryBytes: null, cpuSeconds: null }),
    };
  };
  for (const tier of new Set<string>([...FIRST_PARTY_TIERS, ...ctx.tiers.provided()])) ctx.hooks.spawn.for(tier).tap(spawnTap, { stage: -1000 });

  // A stand-in is as healthy as its owner's heartbeat; the owner checks the instance itself.
  const healthTap = (instance: InstanceView) => {
    const stub = stubs.get(instanceKey(instance.service, instance.id));
    if (!stub) return undefined;
    return state.isLive(stub.node) ? { ok: true, detail: `forwarded to ${stub.node}` } : { ok: false, detail: `fleet node ${stub.node} is not live` };
  };
  ctx.hooks.health.for('http').tap(healthTap, { stage: -1000 });
  ctx.hooks.health.for('tcp').tap(healthTap, { stage: -1000 });

  // Sign what a stand-in forwards; what reaches a local instance carries no fleet header at all.
  ctx.hooks.upstreamHeaders.tap(({ exchange, instance, headers }) => {
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      const name = headers[i]!.toLowerCase();
      if (name === FORWARDED_HEADER || name === API_HEADER) headers.splice(i, 2);
    }
    if (!stubs.has(instanceKey(instance.service, instance.id))) return;
    headers.push(FORWARDED_HEADER, signForward(secret, self, { method: exchange.method, hostname: exchange.hostname, target: exchange.target }));
  });

  // A removed instance that lived here frees its placement.
  ctx.instances.watch((event) => {
    if (event.type !== 'removed') return;
    const placement = state.placement(event.service, event.id);
    if (placement?.node !== self) return;
    connection.placements.delete(`${placementKeyOf(event.service, event.id)}`, { previousSeq: placement.revision }).catch(() => undefined);
  });

  // --- heartbeat, failover, reconcile: on separate turns, so a long failover never delays this node's heartbeat ---
  let beating: Promise<void> | null = null;
  const beat = (): Promise<void> =>
    (beating ??= heartbeat
      .beat()
      .catch((error: unknown) => ctx.log.warn(errorFields(error), 'fleet: heartbeat not written'))
      .finally(() => (beating = null)));
  let reconciling: Promise<void> | null = null;
  const reconcile = (): Promise<void> =>
    (reconciling ??= (async () => {
      placer.viewSettled();
      const due: Placement[] = [];
      for (const placement of state.placements()) {
        if (due.length >= MAX_MOVES_PER_TICK) break;
        if (!placer.mustMove(placement)) continue;
        // Dead nodes' placements are failed over by every live node (one CAS wins); a draining node moves its own.
        if (placement.node === self ? heartbeat.state !== 'draining' : state.node(placement.node)?.state === 'draining' && !state.isDead(placement.node)) continue;
        due.push(placement);
      }
      for (let i = 0; i < due.length; i += MOVES_IN_FLIGHT) {
        await Promise.all(
          due.slice(i, i + MOVES_IN_FLIGHT).map((placement) =>
            // Draining: this node's own instances leave with their data (move.ts); a dead node's move by placement only.
            (placement.node === self ? mover.move(placement.service, placement.id, null, 'drain') : placer.moveAway(placement)).catch((error: unknown) => ctx.log.warn({ instance: `${placement.service}:${placement.id}`, ...errorFields(error) }, 'fleet: placement not moved')),
          ),
        );
      }
      for (const placement of state.placements()) settle(placement);
    })().finally(() => (reconciling = null)));
  const tick = async (): Promise<void> => {
    await beat();
    await reconcile();
  };
  await heartbeat.write(Date.now()).catch((error: unknown) => ctx.log.warn(errorFields(error), 'fleet: first heartbeat not written'));
  const timer = setInterval(() => {
    void beat();
    void reconcile();
  }, settings.heartbeatMs);
  timer.unref();
  closers.push(async () => {
    clearInterval(timer);
    await Promise.all([beating, reconciling]);
    // A graceful stop says so at once: the others fail this node's instances over without waiting out expiryMs.
    await heartbeat.write(0).catch(() => undefined);
  });

  registerFleetRoutes(ctx, state, connection.control, self);
  mover.registerRoutes((service, id) => state.placement(service, id)?.node);
  relayAuth(ctx, secret, self);
  registerFleetInstanceRoutes(ctx, state, secret, self);
  closers.push((await (await import('./tokens.ts')).startTokenReplication(ctx, connection.nc, connection.replicas, secret)).stop);
  const node: FleetNode = { self, state, placer, connection, stubs, tick };
  running.set(self, node);
  closers.push(() => running.get(self) === node && running.delete(self));
  ctx.log.info({ node: self, servers: settings.servers, replicas: connection.replicas }, 'fleet: joined');
}

