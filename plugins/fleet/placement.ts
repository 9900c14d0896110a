/**
 * Placement: which node an instance lives on. A new instance's node is chosen by the placement policy (a hook:
 * the default spreads a service's instances, then picks the least loaded node, among live active nodes carrying
 * the service's labels and below their capacity) and claimed with `kv.create`, which exactly one node wins
 * (10071 for the others, who read the winner). A move is a compare-and-swap on the placement's revision, so of
 * nodes failing the same placement over at once one wins and the rest read its answer. A write that timed out
 * may have been stored: it is read back before anything is tried again.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { KV } from 'nats';
import { AsyncSeriesBailHook } from 'tapable';
import { ErrorCodes, TenementError, errorMessage } from '../../core/errors.ts';
import { WRONG_LAST_SEQUENCE, apiErrorCode } from './connection.ts';
import { instanceKey, placementKey } from './keys.ts';
import { encodeRecord, parsePlacement, type NodeState, type Placement, type PlacementRecord } from './records.ts';
import type { FleetState } from './state.ts';

/** A node the policy may choose, with what it carries now. */
export interface CandidateNode {
  id: string;
  labels: Readonly<Record<string, string>>;
  capacity: number | null;
  /** Instances placed on it, fleet-wide. */
  load: number;
  /** Instances of this service placed on it. */
  serviceLoad: number;
  state: NodeState;
}

export interface PlaceRequest {
  service: string;
  id: string;
  /** The node asking (the one that saw the request). */
  self: string;
  /** Where it was before (a move), or null for a new instance. */
  from: string | null;
  /** Live, active nodes that carry the service's labels and have room: the default policy picks among these. */
  candidates: readonly CandidateNode[];
}

/** A placement policy: a node id from `candidates`, or undefined to let the next policy (finally the default) choose. */
export type PlacementPolicy = (request: PlaceRequest) => string | undefined | Promise<string | undefined>;

function tieBreak(node: string, service: string, id: string): number {
  return createHash('sha1').update(`${node}\0${service}\0${id}`).digest().readUInt32BE(0);
}

/** Spread the service first, then least loaded (relative to capacity), then a hash of the instance and node. */
export function defaultPolicy(request: PlaceRequest): string | undefined {
  let best: CandidateNode | undefined;
  let bestScore: [number, number, number] = [Infinity, Infinity, Infinity];
  for (const node of request.candidates) {
    const fill = node.capacity === null ? node.load : node.load / node.capacity;
    const score: [number, number, number] = [node.serviceLoad, fill, tieBreak(node.id, request.service, request.id)];
    if (score[0] < bestScore[0] || (score[0] === bestScore[0] && (score[1] < bestScore[1] || (score[1] === bestScore[1] && score[2] < bestScore[2])))) {
      best = node;
      bestScore = score;
    }
  }
  return best?.id;
}

const MAX_ATTEMPTS = 5;
/** Failed writes (timeouts, no leader) before a decision gives up with TNM_ERR_FLEET_UNAVAILABLE. */
const MAX_FAILURES = 2;

/** Tells this node's write from another's identical one when a timed-out write is read back. */
const nonce = (): string => randomBytes(6).toString('base64url');

export class Placer {
  /** The placement policy: taps answer a node id or pass; the default policy is the last tap. */
  readonly place = new AsyncSeriesBailHook<[PlaceRequest], string | undefined>(['request']);
  private readonly pending = new Map<string, Promise<Placement>>();
  /** Decisions made (claims and moves written by this node), for the bench and the API. */
  decisions = 0;
  /** Of those, claims of new instances. */
  claims = 0;
  /** Nodes (and `node\0service`) chosen by decisions of this node not yet written. */
  private readonly reserved = new Map<string, number>();
  private queue: Promise<unknown> = Promise.resolve();
  /** Since when this node has seen its own heartbeats without a gap (null: not now). */
  private liveSince: number | null = null;

  constructor(
    private readonly kv: KV,
    private readonly state: FleetState,
    readonly self: string,
    private readonly labelsOf: (service: string) => Readonly<Record<string, string>>,
  ) {
    this.place.tap({ name: 'default', stage: 1000 }, defaultPolicy);
  }

  /**
   * The instance's placement: the current one while its node lives, else a new claim (a new instance) or a move
   * (its node is dead, or draining). Concurrent calls for one instance share one decision.
   */
  ensure(service: string, id: string): Promise<Placement> {
    const current = this.state.placement(service, id);
    // A live draining node moves its own instances, with their data (move.ts): only a dead node's are taken here.
    if (current && (!this.mustMove(current) || !this.state.isDead(current.node))) return Promise.resolve(current);
    const key = instanceKey(service, id);
    const pending = this.pending.get(key);
    if (pending) return pending;
    const moved = current
      ? // A move that cannot be written (no stream leader: an election, an outage) keeps the placement it has:
        // its node only looked dead because heartbeats could not be written either, and if it is really gone the
        // request fails there as it would here.
        this.move(current).catch((error: unknown) => {
          if (error instanceof TenementError && error.code === ErrorCodes.FLEET_UNAVAILABLE) return current;
          throw error;
        })
      : this.claim(service, id);
    const run = moved.finally(() => this.pending.delete(key));
    this.pending.set(key, run);
    return run;
  }

  /**
   * Its node is dead, or is draining (its instances leave it). Never while this node does not see its own
   * heartbeats come back: then its view of the others is stale (a NATS partition, a reconnect still catching up)
   * and every node would look dead.
   */
  mustMove(placement: Placement): boolean {
    if (!this.viewSettled()) return false;
    if (this.state.isDead(placement.node)) return true;
    return this.state.node(placement.node)?.state === 'draining';
  }

  /**
   * Whether this node's view of the others can be trusted to fail them over: it has seen its own heartbeats
   * come back without a gap for expiryMs (after an outage of its own, or its start, the others' heartbeats need
   * that long to come back too). Called every tick, and before every move.
   */
  viewSettled(now = Date.now()): boolean {
    if (!this.state.isLive(this.self, now)) {
      this.liveSince = null;
      return false;
    }
    this.liveSince ??= now;
    return now - this.liveSince >= this.state.expiryMs;
  }

  /** Moves a placement off its node (failover, drain); the one move a CAS lets through wins. */
  moveAway(placement: Placement): Promise<Placement> {
    const key = instanceKey(placement.service, placement.id);
    const pending = this.pending.get(key);
    if (pending) return pending;
    const run = this.move(placement).finally(() => this.pending.delete(key));
    this.pending.set(key, run);
    return run;
  }

  /** A node for the instance other than `from`, as a move off `from` would choose it (nothing is written). */
  async pick(service: string, id: string, from: string): Promise<string> {
    const { node, release } = await this.choose(service, id, from);
    release();
    return node;
  }

  /**
   * Moves the placement to `node` with one compare-and-swap on the revision read: a move of the instance's data
   * (move.ts) must not win over a placement that changed meanwhile. Throws TNM_ERR_CONFLICT when it did.
   */
  async moveTo(current: Placement, node: string): Promise<Placement> {
    const record: PlacementRecord = { node, at: Date.now(), generation: current.generation + 1, service: current.service, id: current.id, by: this.self, nonce: nonce() };
    try {
      const revision = await this.kv.update(placementKey(current.service, current.id), encodeRecord(record), current.revision);
      this.decisions++;
      const placement = { ...record, revision };
      this.state.applyPlacement(placement);
      return placement;
    } catch (error) {
      // A timeout may have stored it: what is stored is the answer.
      const stored = await this.read(current.service, current.id).catch(() => null);
      if (stored && stored.nonce === record.nonce) {
        this.decisions++;
        return stored;
      }
      if (apiErrorCode(error) === WRONG_LAST_SEQUENCE || stored) {
        throw new TenementError(ErrorCodes.CONFLICT, `fleet: the placement of ${current.service}:${current.id} changed during the move (now ${stored?.node ?? 'none'})`);
      }
      throw unavailable(current.service, current.id, error);
    }
  }

  /**
   * Chooses and reserves a node. Decisions are made one at a time (each takes microseconds), each seeing the
   * reservations of those before it, so a burst of new instances spreads instead of all landing on one node.
   */
  private choose(service: string, id: string, from: string | null): Promise<{ node: string; release: () => void }> {
    const run = this.queue.then(async () => {
      const node = await this.chooseNow(service, id, from);
      return { node, release: this.reserve(node, service) };
    });
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async chooseNow(service: string, id: string, from: string | null): Promise<string> {
    const wanted = this.labelsOf(service);
    const candidates: CandidateNode[] = [];
    for (const node of this.state.nodes()) {
      if (!node.live || node.state !== 'active' || node.id === from) continue;
      if (!Object.entries(wanted).every(([k, v]) => Object.hasOwn(node.labels, k) && node.labels[k] === v)) continue;
      // Decisions of this node still being written count already: a burst of new instances spreads too.
      const load = this.state.loadOf(node.id) + (this.reserved.get(node.id) ?? 0);
      if (node.capacity !== null && load >= node.capacity) continue;
      const serviceLoad = this.state.serviceLoadOf(node.id, service) + (this.reserved.get(`${node.id}\0${service}`) ?? 0);
      candidates.push({ id: node.id, labels: node.labels, capacity: node.capacity, load, serviceLoad, state: node.state });
    }
    const chosen = await this.place.promise({ service, id, self: this.self, from, candidates });
    // A policy may name any live active node (its own constraints), never a dead or unknown one.
    if (chosen !== undefined && this.state.isLive(chosen) && this.state.node(chosen)?.state === 'active') return chosen;
    throw new TenementError(
      ErrorCodes.FLEET_NO_NODE,
      `fleet: no live, active node ${Object.keys(wanted).length > 0 ? `with labels ${JSON.stringify(wanted)} ` : ''}has room for ${service}:${id}`,
      { retryAfter: 1 },
    );
  }

  private reserve(node: string, service: string): () => void {
    const keys = [node, `${node}\0${service}`];
    for (const key of keys) this.reserved.set(key, (this.reserved.get(key) ?? 0) + 1);
    return () => {
      for (const key of keys) {
        const left = (this.reserved.get(key) ?? 1) - 1;
        if (left <= 0) this.reserved.delete(key);
        else this.reserved.set(key, left);
      }
    };
  }

  /**
   * What NATS stores for the instance now, applied to this node's view (the higher revision wins there): for a
   * request forwarded by a node that placed it here a moment ago, before this node's watch brought the placement.
   */
  refresh(service: string, id: string): Promise<Placement | null> {
    return this.read(service, id);
  }

  private async read(service: string, id: string): Promise<Placement | null> {
    const entry = await this.kv.get(placementKey(service, id));
    if (!entry || entry.operation !== 'PUT') return null;
    const placement = parsePlacement(entry);
    if (placement) this.state.applyPlacement(placement);
    return placement;
  }

  private async claim(service: string, id: string): Promise<Placement> {
    const key = placementKey(service, id);
    let failures = 0;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const { node, release } = await this.choose(service, id, null);
      const record: PlacementRecord = { node, at: Date.now(), generation: 1, service, id, by: this.self, nonce: nonce() };
      try {
        const revision = await this.kv.create(key, encodeRecord(record)).finally(release);
        this.decisions++;
        this.claims++;
        const placement = { ...record, revision };
        this.state.applyPlacement(placement);
        return placement;
      } catch (error) {
        // Lost the race (10071), or a timeout that may have stored ours: what is stored now is the answer.
        const stored = await this.read(service, id).catch(() => null);
        if (stored) {
          if (stored.nonce === record.nonce) {
            this.decisions++;
            this.claims++;
          }
          return stored;
        }
        // NATS unreachable (not a lost race): a request should not wait out five timeouts.
        if (apiErrorCode(error) !== WRONG_LAST_SEQUENCE && ++failures >= MAX_FAILURES) throw unavailable(service, id, error);
      }
    }
    throw unavailable(service, id, null);
  }

  private async move(current: Placement): Promise<Placement> {
    let from = current;
    const { service, id } = current;
    const key = placementKey(service, id);
    let failures = 0;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const { node, release } = await this.choose(service, id, from.node);
      const record: PlacementRecord = { node, at: Date.now(), generation: from.generation + 1, service, id, by: this.self, nonce: nonce() };
      try {
        const revision = await this.kv.update(key, encodeRecord(record), from.revision).finally(release);
        this.decisions++;
        const placement = { ...record, revision };
        this.state.applyPlacement(placement);
        return placement;
      } catch (error) {
        const stored = await this.read(service, id).catch(() => null);
        if (stored === null) {
          if (apiErrorCode(error) === WRONG_LAST_SEQUENCE) return this.claim(service, id);
          if (++failures >= MAX_FAILURES) throw unavailable(service, id, error);
          continue;
        }
        if (stored.nonce === record.nonce) this.decisions++;
        // Someone else moved it (or ours was stored after all): their answer stands unless its node is gone too.
        if (stored.revision !== from.revision && !this.mustMove(stored)) return stored;
        from = stored;
      }
    }
    throw unavailable(service, id, null);
  }
}

function unavailable(service: string, id: string, error: unknown): TenementError {
  return new TenementError(ErrorCodes.FLEET_UNAVAILABLE, `fleet: could not place ${service}:${id}${error ? `: ${errorMessage(error)}` : ''}`, { retryAfter: 1 });
}
