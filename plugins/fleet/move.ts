/**
 * Moving an instance to another node with its data (docs/fleet.md#moving-an-instance-with-its-data): `ten move`,
 * the API's move route, and drain. The owner (source) holds new requests for the instance, waits for those in
 * flight, then stops it, saving its process with CRIU when a plugin can (`ctx.migration.checkpoint`, pre-dumped
 * while it still ran), else stopping it; packs DATA_DIR (and the images) into a root-only archive and announces
 * it to the target with a signed call; the target pulls it (signed), checks its size and CRC-32 and unpacks it;
 * the placement moves by compare-and-swap; the target puts the data in place, hands the images to the restore
 * and starts the instance; then the held requests go on, to the target. Any failure before the switch puts the
 * instance back as it was on the source (started again there, its data untouched).
 *
 * This file is the source's side; holding requests is move-hold.ts, the target's side move-receive.ts, the routes
 * move-routes.ts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, TenementError, errorFields, errorMessage } from '../../core/errors.ts';
import type { Checkpointer } from '../../core/hooks.ts';
import type { InstanceView } from '../../core/instance.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { RouteTarget } from '../../core/types.ts';
import type { Packed } from './archive.ts';
import { instanceKey } from './keys.ts';
import { MoveHolds } from './move-hold.ts';
import { MoveReceiver } from './move-receive.ts';
import { ACTIVE, CALL_MS, type MoveResult } from './move-result.ts';
import { registerMoveRoutes, type Outgoing } from './move-routes.ts';
import { callNode, type Peer } from './peer.ts';
import type { Placer } from './placement.ts';
import type { Placement } from './records.ts';
import type { FleetState } from './state.ts';
import { dataBytes, isLink, storageMount } from './storage-data.ts';

export type { MoveResult } from './move-result.ts';

/** How long in-flight requests may take to finish before the move stops the instance anyway. */
const DRAIN_MS = 10_000;

export interface MoverOptions {
  self: string;
  secret: string;
  state: FleetState;
  placer: Placer;
  maxBytes: number;
  /** Whether the local instance is only a stand-in forwarding to another node. */
  isStub(service: string, id: string): boolean;
}

export class Mover {
  private readonly holds = new MoveHolds();
  private readonly moving = new Map<string, Promise<MoveResult>>();
  private readonly outgoing = new Map<string, Outgoing>();
  private readonly receiver: MoveReceiver;
  private readonly root: string;
  /** Moves done by this node (as source), for the API and the bench. */
  readonly results: MoveResult[] = [];

  constructor(
    private readonly ctx: PluginContext,
    private readonly options: MoverOptions,
  ) {
    this.root = path.join(ctx.paths.dataDir, '.fleet-moves');
    rmSync(this.root, { recursive: true, force: true });
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    chmodSync(this.root, 0o700);
    this.receiver = new MoveReceiver(ctx, { self: options.self, state: options.state, maxBytes: options.maxBytes, holds: this.holds, root: this.root, peer: (node) => this.peer(node) });
  }

  /** See MoveHolds.hold: synchronous (no promise) when no move is under way. */
  hold(service: string, id: string): Promise<RouteTarget | undefined> | undefined {
    return this.holds.hold(service, id);
  }

  movedTo(service: string, id: string): string | undefined {
    return this.holds.movedTo(service, id);
  }

  private peer(node: string): Peer {
    const record = this.options.state.node(node);
    if (!record || !this.options.state.isLive(node)) throw new TenementError(ErrorCodes.FLEET_UNAVAILABLE, `fleet node ${node} is not live`, { retryAfter: 1 });
    return { node, advertise: record.advertise, domain: this.ctx.settings.domain, secret: this.options.secret, self: this.options.self };
  }

  /** Checks a move's target before anything stops: a known, live node that takes instances, not this one. */
  checkTarget(to: string): void {
    const { state, self } = this.options;
    const node = state.node(to);
    if (!node) throw new TenementError(ErrorCodes.NOT_FOUND, `unknown fleet node '${to}'`);
    if (to === self) throw new TenementError(ErrorCodes.CONFLICT, `the instance is already on ${to}`);
    if (!state.isLive(to)) throw new TenementError(ErrorCodes.FLEET_NO_NODE, `fleet node '${to}' is not live`, { retryAfter: 1 });
    if (node.state === 'draining') throw new TenementError(ErrorCodes.FLEET_NO_NODE, `fleet node '${to}' is draining`, { retryAfter: 1 });
  }

  /** Moves an instance this node owns to `to` (chosen by the placement policy when null, as drain does). */
  async move(service: string, id: string, to: string | null, why: string): Promise<MoveResult> {
    const { state, placer, self } = this.options;
    const key = instanceKey(service, id);
    const placement = state.placement(service, id);
    if (!placement) throw new TenementError(ErrorCodes.NOT_FOUND, `${service}:${id} has no placement in the fleet`);
    if (placement.node !== self) throw new TenementError(ErrorCodes.CONFLICT, `${service}:${id} is placed on ${placement.node}, not ${self}`);
    const pending = this.moving.get(key);
    if (pending && to === null) return pending;
    if (pending) throw new TenementError(ErrorCodes.CONFLICT, `${service}:${id} is being moved already`);
    const run = (async () => {
      const target = to ?? (await placer.pick(service, id, self));
      this.checkTarget(target);
      const local = this.ctx.instances.get(service, id);
      const dataDir = this.ctx.paths.instanceDir(service, id);
      if ((!local || this.options.isStub(service, id)) && !existsSync(dataDir)) {
        // Nothing of it here (never run on this node): the placement alone moves.
        const started = Date.now();
        await placer.moveTo(placement, target);
        return { service, id, from: self, to: target, mode: 'placement' as const, reason: 'nothing of the instance on this node', pauseMs: Date.now() - started, bytes: 0, phases: { idle: 0, stop: 0, transfer: 0, switch: Date.now() - started, start: 0 } };
      }
      return this.moveNow(placement, target, why);
    })().finally(() => this.moving.delete(key));
    this.moving.set(key, run);
    return run;
  }

  private async moveNow(placement: Placement, to: string, why: string): Promise<MoveResult> {
    const { service, id } = placement;
    const key = instanceKey(service, id);
    const local = this.ctx.instances.get(service, id);
    const own = local !== undefined && !this.options.isStub(service, id);
    const peer = this.peer(to);
    const work = mkdtempSync(path.join(this.root, 'out-'));
    const images = path.join(work, 'images');
    mkdirSync(images, { mode: 0o700 });
    let checkpointer: Checkpointer | null = null;
    let reason: string | null = own ? null : 'no process of the instance on this node';
    let token: string | null = null;
    let release: () => void = () => undefined;
    let pauseStart = 0;
    let switched = false;
    let stopped = false;
    let hibernating: Promise<void> | null = null;
    let reaped: Promise<void> | null = null;
    try {
      const here = this.ctx.paths.instanceDir(service, id);
      // limits.storage: DATA_DIR links to this node's quota image; what is inside it moves, if it fits the target's.
      const image = isLink(here) ? storageMount(here) : null;
      if (isLink(here) && image === null) throw new TenementError(ErrorCodes.CONFLICT, `${service}:${id}: its DATA_DIR links to a storage image that is not mounted here (start it once, or run ten gc)`);
      // A restored process keeps its environment and working folder: DATA_DIR's path must be the same on both nodes.
      const prepared = (own && local.state === 'running') || image !== null ? await callNode<{ dataDir: string; room?: number | null }>(peer, '/api/fleet/internal/prepare', { service, id }, CALL_MS) : null;
      const there = own && local.state === 'running' ? prepared!.dataDir : null;
      if (image !== null) {
        // Before anything stops: data that would not fit the target's quota is refused, the instance untouched.
        const bytes = await dataBytes(image);
        const room = prepared?.room ?? null;
        if (room !== null && bytes > room) {
          throw new TenementError(ErrorCodes.FLEET_NO_ROOM, `${service}:${id}: its data takes ${bytes} bytes, ${to}'s storage image for it has room for ${room} (limits.storage there)`);
        }
      }
      if (image !== null && there !== null) reason = 'DATA_DIR is a storage image (limits.storage): stopped, copied into the target\'s image and started';
      else if (there !== null && this.ctx.services.get(service)?.fleet?.live === false) reason = `services.${service}.fleet.live is false`;
      else if (there !== null && there !== here) reason = `DATA_DIR is ${here} here and ${there} on ${to}: a restored process would keep the old path (give the nodes the same settings.dataDir for live moves)`;
      else if (own && local.state === 'running') {
        const answer = await this.ctx.migration.checkpoint({ instance: local, dir: images });
        if (typeof answer === 'object') checkpointer = answer;
        else reason = answer ?? 'no plugin saves running processes here (the snapshots plugin is not loaded)';
        if (checkpointer) {
          await checkpointer.preDump().catch((error: unknown) => this.ctx.log.info({ instance: `${service}:${id}`, reason: errorMessage(error) }, 'fleet move: no pre-dump, the final dump copies everything'));
        }
      } else if (own && reason === null) reason = `the instance is ${local.state}: nothing runs to be saved`;

      // The pause: new requests wait at the gate, those in flight finish, then the instance stops.
      pauseStart = Date.now();
      this.holds.gates.set(key, new Promise<void>((resolve) => (release = resolve)));
      let live = false;
      const phases = { idle: 0, stop: 0, transfer: 0, switch: 0, start: 0 };
      let mark = pauseStart;
      const lap = (phase: keyof typeof phases): void => {
        const now = Date.now();
        phases[phase] = now - mark;
        mark = now;
      };
      if (own && ACTIVE.has(local.state)) {
        await waitIdle(local, DRAIN_MS);
        lap('idle');
        const outcome = checkpointer?.arm();
        stopped = true;
        const hibernate = this.ctx.lifecycle.hibernate(local, `fleet: moving to ${to} (${why})`);
        hibernating = hibernate.catch(() => undefined);
        if (outcome) {
          const result = await Promise.race([outcome, hibernate.then(() => outcome)]);
          if (result.ok) live = true;
          else reason = result.reason;
        }
        // Saved, the process was killed by CRIU: the images go while it is reaped (a 25 MB process's teardown took
        // 0-200 ms of the pause on a loaded host), which the switch waits for. Not saved, it stops before its data moves.
        if (live) reaped = hibernate;
        else await hibernate;
        lap('stop');
      }
      const sources = [{ top: 'data', dir: image ?? here }, ...(live ? [{ top: 'images', dir: images }] : [])];
      token = randomBytes(24).toString('base64url');
      const outgoing: Outgoing = { sources, to, sent: null };
      this.outgoing.set(token, outgoing);
      const received = await callNode<Packed>(peer, '/api/fleet/internal/receive', { service, id, token, images: live }, CALL_MS);
      // What the target unpacked is what was packed here, byte for byte.
      const packed = outgoing.sent ? await outgoing.sent : null;
      if (!packed || packed.bytes !== received.bytes || packed.crc32 !== received.crc32) {
        throw new TenementError(ErrorCodes.FLEET_UNAVAILABLE, `${to} received ${received.bytes} bytes (crc32 ${received.crc32}), ${packed ? `${packed.bytes} were sent (${packed.crc32})` : 'none were sent'}`);
      }
      lap('transfer');
      // The old process gone before the new one can start (on one host, the restore needs its pid free).
      await reaped;
      const moved = await this.options.placer.moveTo(placement, to);
      lap('switch');
      switched = true;
      this.holds.remember(key, to);
      const committed = await callNode<{ restored: boolean }>(peer, '/api/fleet/internal/commit', { service, id, placement: moved, start: stopped }, CALL_MS);
      lap('start');
      // The data moved in any case: `placement` is only for a move that found nothing of the instance here.
      const mode = live && committed.restored ? 'live' : 'cold';
      if (live && !committed.restored) reason = `the target could not restore the images (its log says why): started cold`;
      const result: MoveResult = { service, id, from: this.options.self, to, mode, reason: mode === 'live' ? null : reason, pauseMs: Date.now() - pauseStart, bytes: packed.bytes, phases };
      this.results.push(result);
      if (this.results.length > 1000) this.results.shift();
      this.ctx.log.info({ ...result }, 'fleet: instance moved');
      return result;
    } catch (error) {
      checkpointer?.cancel();
      if (!switched) {
        await callNode(peer, '/api/fleet/internal/abort', { service, id }, 10_000).catch(() => undefined);
        // Never moved: it serves here again, from its data here (the process saved for the move is gone), once its stop ended.
        await hibernating;
        if (stopped && local) await this.ctx.lifecycle.start(local, 'fleet: the move failed').catch(() => undefined);
      }
      this.ctx.log.warn({ instance: `${service}:${id}`, to, switched, ...errorFields(error) }, 'fleet: move failed');
      throw error;
    } finally {
      if (token) this.outgoing.delete(token);
      this.holds.gates.delete(key);
      release();
      // Not in this tick: the requests just released run first (the folder is this move's own, made by mkdtemp).
      rm(work, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** The signed node-to-node routes, and the admin's move route. */
  registerRoutes(forward: (service: string, id: string) => string | undefined): void {
    const { self, secret, state, maxBytes } = this.options;
    registerMoveRoutes(
      this.ctx,
      { self, secret, state, maxBytes, outgoing: this.outgoing, receiver: this.receiver, move: (service, id, to, why) => this.move(service, id, to, why), peer: (node) => this.peer(node) },
      forward,
    );
  }
}

/** Waits until no request is in flight, at most `ms` (a long poll does not hold a move forever). */
async function waitIdle(instance: InstanceView, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (instance.inFlight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
}
