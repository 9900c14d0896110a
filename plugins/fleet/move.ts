/**
 * Moving an instance to another node with its data (docs/fleet.md#moving-an-instance-with-its-data): `ten move`,
 * the API's move route, and drain. The owner (source) holds new requests for the instance, waits for those in
 * flight, then stops it, saving its process with CRIU when a plugin can (`ctx.migration.checkpoint`, pre-dumped
 * while it still ran), else stopping it; packs DATA_DIR (and the images) into a root-only archive and announces
 * it to the target with a signed call; the target pulls it (signed), checks its size and sha256 and unpacks it;
 * the placement moves by compare-and-swap; the target puts the data in place, hands the images to the restore
 * and starts the instance; then the held requests go on, to the target. Any failure before the switch puts the
 * instance back as it was on the source (started again there, its data untouched).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ErrorCodes, TenementError, errorFields, errorMessage } from '../../core/errors.ts';
import type { Checkpointer } from '../../core/hooks.ts';
import type { InstanceView } from '../../core/instance.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { RouteTarget } from '../../core/types.ts';
import { packStream, type PackSource, type Packed } from './archive.ts';
import { instanceKey } from './keys.ts';
import { CallVerifier, NODE_HEADER, callNode, pullArchive, type Peer } from './peer.ts';
import type { Placer } from './placement.ts';
import type { Placement } from './records.ts';
import type { FleetState } from './state.ts';
import { copyIntoImage, dataBytes, isLink, storageMount, storageRoom } from './storage-data.ts';

/** How long a request waits for a move of its instance before a retryable 503. */
const HOLD_MS = 30_000;
/** How long in-flight requests may take to finish before the move stops the instance anyway. */
const DRAIN_MS = 10_000;
/** Node-to-node calls of a move; the commit includes the target's start (or restore). */
const CALL_MS = 120_000;
/** A node forwards requests for an instance it moved away for this long (senders that had not seen the move). */
const MOVED_MS = 60_000;
const MAX_MOVED = 10_000;
/** A received archive whose commit never came (its source died mid-move) is deleted after this long. */
const INCOMING_MS = 10 * 60_000;
const ACTIVE: ReadonlySet<string> = new Set(['running', 'starting', 'waking']);
const NAME = z.string().min(1).max(256);

export interface MoveResult {
  service: string;
  id: string;
  from: string;
  to: string;
  /** live: the process was saved and restored (CRIU); cold: its data copied (and it stopped and started if it ran); placement: nothing of it here, only the placement moved. */
  mode: 'live' | 'cold' | 'placement';
  /** Why not live, when not. */
  reason: string | null;
  /** From holding new requests to the target serving: what a client waited at most. */
  pauseMs: number;
  bytes: number;
  /** Where the pause went, in ms: waiting for requests in flight, stopping (the final dump), carrying the data (packed, sent and unpacked as one stream), the placement's CAS, the target's start or restore. */
  phases: { idle: number; stop: number; transfer: number; switch: number; start: number };
}

interface Incoming {
  from: string;
  staging: string;
  images: boolean;
  at: number;
  /** Lets the requests and wakes held here go on. */
  release: () => void;
}

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
  private readonly gates = new Map<string, Promise<void>>();
  private readonly moving = new Map<string, Promise<MoveResult>>();
  private readonly moved = new Map<string, { to: string; until: number }>();
  private readonly outgoing = new Map<string, { sources: PackSource[]; to: string; sent: Promise<Packed> | null }>();
  private readonly incoming = new Map<string, Incoming>();
  private readonly verifier: CallVerifier;
  private readonly root: string;
  /** Moves done by this node (as source), for the API and the bench. */
  readonly results: MoveResult[] = [];

  constructor(
    private readonly ctx: PluginContext,
    private readonly options: MoverOptions,
  ) {
    this.verifier = new CallVerifier(options.secret, options.self);
    this.root = path.join(ctx.paths.dataDir, '.fleet-moves');
    rmSync(this.root, { recursive: true, force: true });
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    chmodSync(this.root, 0o700);
  }

  /**
   * Waits while the instance is being moved (its pause); undefined to go on, or a retryable 503 past HOLD_MS.
   * Synchronous (no promise) when no move is under way: the request path pays nothing.
   */
  hold(service: string, id: string): Promise<RouteTarget | undefined> | undefined {
    const gate = this.gates.get(instanceKey(service, id));
    if (!gate) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<RouteTarget>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({ kind: 'reject', status: 503, code: ErrorCodes.FLEET_UNAVAILABLE, message: `${service}:${id} is being moved to another node: try again`, retryAfter: 1 }),
        HOLD_MS,
      );
    });
    return Promise.race([gate.then(() => undefined), late]).finally(() => clearTimeout(timer));
  }

  /** The node this node moved the instance to within MOVED_MS, if any: requests sent here late go on there. */
  movedTo(service: string, id: string): string | undefined {
    const key = instanceKey(service, id);
    const entry = this.moved.get(key);
    if (!entry) return undefined;
    if (entry.until < Date.now()) {
      this.moved.delete(key);
      return undefined;
    }
    return entry.to;
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
      this.gates.set(key, new Promise<void>((resolve) => (release = resolve)));
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
        await this.ctx.lifecycle.hibernate(local, `fleet: moving to ${to} (${why})`);
        if (outcome) {
          const result = await outcome;
          if (result.ok) live = true;
          else reason = result.reason;
        }
        lap('stop');
      }
      const sources = [{ top: 'data', dir: image ?? here }, ...(live ? [{ top: 'images', dir: images }] : [])];
      token = randomBytes(24).toString('base64url');
      const outgoing = { sources, to, sent: null as Promise<Packed> | null };
      this.outgoing.set(token, outgoing);
      const received = await callNode<Packed>(peer, '/api/fleet/internal/receive', { service, id, token, images: live }, CALL_MS);
      // What the target unpacked is what was packed here, byte for byte.
      const packed = outgoing.sent ? await outgoing.sent : null;
      if (!packed || packed.bytes !== received.bytes || packed.sha256 !== received.sha256) {
        throw new TenementError(ErrorCodes.FLEET_UNAVAILABLE, `${to} received ${received.bytes} bytes (sha256 ${received.sha256}), ${packed ? `${packed.bytes} were sent (${packed.sha256})` : 'none were sent'}`);
      }
      lap('transfer');
      const moved = await this.options.placer.moveTo(placement, to);
      lap('switch');
      switched = true;
      this.remember(key, to);
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
        // Never moved: it serves here again, from its data here (the process saved for the move is gone).
        if (stopped && local) await this.ctx.lifecycle.start(local, 'fleet: the move failed').catch(() => undefined);
      }
      this.ctx.log.warn({ instance: `${service}:${id}`, to, switched, ...errorFields(error) }, 'fleet: move failed');
      throw error;
    } finally {
      if (token) this.outgoing.delete(token);
      this.gates.delete(key);
      release();
      rmSync(work, { recursive: true, force: true });
    }
  }

  private remember(key: string, to: string): void {
    this.moved.delete(key);
    this.moved.set(key, { to, until: Date.now() + MOVED_MS });
    for (const [old] of this.moved) {
      if (this.moved.size <= MAX_MOVED) break;
      this.moved.delete(old);
    }
  }

  /** The target's side: pulls the announced archive, checks it, unpacks it beside the instance's data. */
  async receive(from: string, body: { service: string; id: string; token: string; images: boolean }): Promise<Packed> {
    const { service, id } = body;
    if (!this.ctx.services.get(service)) throw new TenementError(ErrorCodes.NOT_FOUND, `unknown service '${service}'`);
    checkId(id);
    const key = instanceKey(service, id);
    this.drop(key);
    for (const [other, entry] of this.incoming) if (Date.now() - entry.at > INCOMING_MS) this.drop(other);
    if (this.gates.has(key)) throw new TenementError(ErrorCodes.CONFLICT, `${service}:${id} is being moved by this node`);
    // Held here too until the commit: this node may see the new placement (its watch) before the data is in place,
    // and a request must not start the instance on an empty DATA_DIR meanwhile.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    this.gates.set(key, gate);
    const open = (): void => {
      if (this.gates.get(key) === gate) this.gates.delete(key);
      release();
    };
    const staging = mkdtempSync(path.join(this.root, 'in-'));
    try {
      const received = await pullArchive(this.peer(from), `/api/fleet/internal/archive/${body.token}`, path.join(staging, 'x'), ['data', 'images'], this.options.maxBytes, CALL_MS);
      this.incoming.set(key, { from, staging, images: body.images, at: Date.now(), release: open });
      return received;
    } catch (error) {
      open();
      rmSync(staging, { recursive: true, force: true });
      throw error;
    }
  }

  /** The target's side, after the switch: the data in place, the images to the restore, the instance started. */
  async commit(from: string, body: { service: string; id: string; placement: unknown; start: boolean }): Promise<{ restored: boolean }> {
    const { service, id } = body;
    const key = instanceKey(service, id);
    const entry = this.incoming.get(key);
    if (!entry || entry.from !== from) throw new TenementError(ErrorCodes.CONFLICT, `no move of ${service}:${id} from ${from} was received here`);
    this.incoming.delete(key);
    try {
      const extracted = path.join(entry.staging, 'x');
      const dataDir = this.ctx.paths.instanceDir(service, id);
      // What this node ran for the instance (a stand-in forwarding to the old node) goes first.
      const local = this.ctx.instances.get(service, id);
      if (local && ACTIVE.has(local.state)) await this.ctx.lifecycle.hibernate(local, `fleet: moved here from ${from}`);
      const data = path.join(extracted, 'data');
      if (!existsSync(data)) mkdirSync(data, { mode: 0o700 });
      // limits.storage, image mounted here: the data goes inside it (within its quota). If it does not fit after
      // all, it is kept as a plain DATA_DIR, which the storage plugin moves into the image at the start (or
      // refuses to start, saying why): the data is never dropped.
      const image = storageMount(dataDir);
      const intoImage = image !== null && (await copyIntoImage(data, image).then(
        () => true,
        (error: unknown) => {
          this.ctx.log.warn({ instance: `${service}:${id}`, ...errorFields(error) }, 'fleet move: the data did not go into the storage image here; kept as a plain DATA_DIR');
          return false;
        },
      ));
      if (!intoImage) {
        rmSync(dataDir, { recursive: true, force: true });
        mkdirSync(path.dirname(dataDir), { recursive: true });
        renameSync(data, dataDir);
      }
      let pid: number | null = null;
      let handed = false;
      const images = path.join(extracted, 'images');
      if (entry.images && existsSync(images)) {
        pid = imagePid(images);
        handed = await this.ctx.migration.restore({ service, id, dir: images });
      }
      const placement = parsePlacementBody(body.placement, service, id, this.options.self);
      this.options.state.applyPlacement(placement);
      // Data and images in place, placed here: requests and wakes may go on (the start below and a wake share one spawn).
      entry.release();
      const instance = this.ctx.instances.get(service, id) ?? this.ctx.lifecycle.create(service, id);
      // It ran there: it runs here (restored, or started cold). Otherwise its next request wakes it.
      if (body.start) await this.ctx.lifecycle.start(instance, `fleet: moved here from ${from}`);
      return { restored: handed && pid !== null && instance.handle?.pid === pid };
    } finally {
      entry.release();
      rmSync(entry.staging, { recursive: true, force: true });
    }
  }

  abort(from: string, service: string, id: string): void {
    const entry = this.incoming.get(instanceKey(service, id));
    if (entry && entry.from === from) this.drop(instanceKey(service, id));
  }

  private drop(key: string): void {
    const entry = this.incoming.get(key);
    if (!entry) return;
    this.incoming.delete(key);
    entry.release();
    rmSync(entry.staging, { recursive: true, force: true });
  }

  /** The signed node-to-node routes, and the admin's move route. */
  registerRoutes(forward: (service: string, id: string) => string | undefined): void {
    const { ctx } = this;
    const verify = (request: { headers: Record<string, unknown>; method: string; url: string; body?: unknown }): string =>
      this.verifier.verify(request.headers[NODE_HEADER], request.method, request.url, request.body === undefined ? '' : JSON.stringify(request.body));
    const names = { service: NAME, id: NAME };

    ctx.api.route({
      method: 'POST',
      url: '/api/fleet/instances/:service/:id/move',
      summary: 'Move an instance to another node with its data (live with CRIU where it can, else stopped, copied and started)',
      tags: ['fleet'],
      access: 'admin',
      params: z.strictObject(names),
      body: z.strictObject({ to: z.string().min(1).max(128) }),
      handler: async ({ params, body, audit }) => {
        audit.target = `instance:${params.service}:${params.id}`;
        audit.instanceId = params.id;
        audit.detail = `move to ${body.to}`;
        if (!ctx.services.get(params.service)) throw new TenementError(ErrorCodes.NOT_FOUND, `unknown service '${params.service}'`);
        const owner = forward(params.service, params.id);
        if (owner === undefined) throw new TenementError(ErrorCodes.NOT_FOUND, `${params.service}:${params.id} has no placement in the fleet`);
        if (owner === this.options.self) return this.move(params.service, params.id, body.to, 'ten move');
        // Asked of another node than the owner: the owner moves it.
        if (!this.options.state.node(body.to)) throw new TenementError(ErrorCodes.NOT_FOUND, `unknown fleet node '${body.to}'`);
        return callNode<MoveResult>(this.peer(owner), '/api/fleet/internal/move', { service: params.service, id: params.id, to: body.to }, CALL_MS);
      },
    });

    const internal = <B>(url: string, summary: string, body: z.ZodType<B>, run: (from: string, body: B) => Promise<unknown>): void => {
      ctx.api.route({
        method: 'POST',
        url,
        summary,
        tags: ['fleet'],
        // No token: the node signature (fleet secret) is checked instead.
        access: 'public',
        body,
        handler: async ({ request, body: parsed }) => run(verify(request as never), parsed),
      });
    };
    internal('/api/fleet/internal/move', 'Fleet-internal: move an instance this node owns (signed by a node)', z.strictObject({ ...names, to: z.string().min(1).max(128) }), (_from, body) =>
      this.move(body.service, body.id, body.to, 'ten move'),
    );
    internal('/api/fleet/internal/prepare', "Fleet-internal: where a moving instance's DATA_DIR would be on this node (signed)", z.strictObject(names), async (_from, body) => {
      if (!ctx.services.get(body.service)) throw new TenementError(ErrorCodes.NOT_FOUND, `unknown service '${body.service}'`);
      checkId(body.id);
      const dataDir = ctx.paths.instanceDir(body.service, body.id);
      return { dataDir, room: await storageRoom(dataDir, ctx.services.get(body.service)?.limits?.storage) };
    });
    internal(
      '/api/fleet/internal/receive',
      "Fleet-internal: pull a moving instance's archive (signed by its node)",
      z.strictObject({ ...names, token: z.string().regex(/^[A-Za-z0-9_-]{32}$/), images: z.boolean() }),
      (from, body) => this.receive(from, body),
    );
    internal('/api/fleet/internal/commit', 'Fleet-internal: start a moved instance here (signed by its former node)', z.strictObject({ ...names, placement: z.unknown(), start: z.boolean() }), (from, body) => this.commit(from, body));
    internal('/api/fleet/internal/abort', 'Fleet-internal: forget a move that was given up (signed by its node)', z.strictObject(names), async (from, body) => {
      this.abort(from, body.service, body.id);
      return { aborted: true };
    });

    ctx.api.route({
      method: 'GET',
      url: '/api/fleet/internal/archive/:token',
      summary: "Fleet-internal: a moving instance's archive, for the node it moves to (signed)",
      tags: ['fleet'],
      access: 'public',
      params: z.strictObject({ token: z.string().regex(/^[A-Za-z0-9_-]{32}$/) }),
      handler: ({ request, params, reply }) => {
        const from = verify(request as never);
        const entry = this.outgoing.get(params.token);
        // Once: the archive is packed as it is sent, and only what one pull received is compared.
        if (!entry || entry.to !== from || entry.sent) throw new TenementError(ErrorCodes.NOT_FOUND, 'no such archive for this node');
        const { stream, done } = packStream(entry.sources, this.options.maxBytes);
        entry.sent = done;
        reply.header('content-type', 'application/octet-stream');
        return reply.send(stream);
      },
    });
  }
}

/** Waits until no request is in flight, at most `ms` (a long poll does not hold a move forever). */
async function waitIdle(instance: InstanceView, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (instance.inFlight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
}

function checkId(id: string): void {
  if (id === '.' || id === '..' || id.includes('/') || id.includes('\0')) throw new TenementError(ErrorCodes.BAD_REQUEST, `not an instance id: ${JSON.stringify(id)}`);
}

function imagePid(images: string): number | null {
  try {
    const meta = JSON.parse(readFileSync(path.join(images, 'final', 'meta.json'), 'utf8')) as { pid?: unknown };
    return typeof meta.pid === 'number' ? meta.pid : null;
  } catch {
    return null;
  }
}

function parsePlacementBody(value: unknown, service: string, id: string, self: string): Placement {
  const placement = value as Partial<Placement> | null;
  if (
    !placement ||
    placement.service !== service ||
    placement.id !== id ||
    placement.node !== self ||
    typeof placement.revision !== 'number' ||
    typeof placement.generation !== 'number' ||
    typeof placement.at !== 'number'
  ) {
    throw new TenementError(ErrorCodes.BAD_REQUEST, 'the commit names another placement');
  }
  return { node: placement.node, at: placement.at, generation: placement.generation, service, id, revision: placement.revision, ...(typeof placement.by === 'string' ? { by: placement.by } : {}), ...(typeof placement.nonce === 'string' ? { nonce: placement.nonce } : {}) };
}
