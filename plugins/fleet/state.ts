/**
 * The fleet as this node sees it: every node's last heartbeat and every placement, kept current by KV watches.
 * The read model the rest of the fleet code uses (placement, routing, failover, the API). Liveness is judged
 * here from each heartbeat's `at` (nats-server 2.9 sends no event when a key's TTL expires), so the clocks of
 * the nodes must agree to well within expiryMs.
 */
import type { KV, KvEntry, QueuedIterator } from 'nats';
import { encodeToken, instanceKey, parsePlacementKey } from './keys.ts';
import { parseNode, parsePlacement, type NodeRecord, type Placement } from './records.ts';

export interface NodeView extends NodeRecord {
  live: boolean;
}

export type PlacementListener = (placement: Placement, previous: Placement | undefined) => void;
/** A placement deleted (its instance was removed on its node). */
export type RemovalListener = (placement: Placement) => void;

export class FleetState {
  private readonly nodeRecords = new Map<string, NodeRecord>();
  private readonly placementRecords = new Map<string, Placement>();
  /** Placements per node, and per node and service (`node\0service`), for the placement policy. */
  private readonly load = new Map<string, number>();
  private readonly serviceLoad = new Map<string, number>();
  private readonly watches: Array<QueuedIterator<KvEntry>> = [];
  private readonly startedAt = Date.now();

  constructor(
    readonly expiryMs: number,
    private readonly onPlacement: PlacementListener,
    private readonly onRemoved: RemovalListener = () => undefined,
  ) {}

  /** Starts both watches; resolves once each has delivered the bucket's current values. */
  async start(nodes: KV, placements: KV): Promise<void> {
    await Promise.all([this.watch(nodes, (entry) => this.applyNode(entry)), this.watch(placements, (entry) => this.applyPlacementEntry(entry))]);
  }

  private async watch(kv: KV, apply: (entry: KvEntry) => void): Promise<void> {
    let initialized!: () => void;
    const ready = new Promise<void>((resolve) => (initialized = resolve));
    const iterator = await kv.watch({ initializedFn: () => initialized() });
    this.watches.push(iterator);
    void (async () => {
      for await (const entry of iterator) apply(entry);
    })().catch(() => undefined);
    await ready;
  }

  stop(): void {
    for (const watch of this.watches) watch.stop();
    this.watches.length = 0;
  }

  private applyNode(entry: KvEntry): void {
    if (entry.operation !== 'PUT') {
      for (const id of [...this.nodeRecords.keys()]) if (entry.key === nodeKeyOf(id)) this.nodeRecords.delete(id);
      return;
    }
    const record = parseNode(entry);
    if (record && entry.key === nodeKeyOf(record.id)) this.nodeRecords.set(record.id, record);
  }

  private applyPlacementEntry(entry: KvEntry): void {
    const names = parsePlacementKey(entry.key);
    if (!names) return;
    const key = instanceKey(names.service, names.id);
    if (entry.operation !== 'PUT') {
      const previous = this.placementRecords.get(key);
      if (previous && previous.revision < entry.revision) this.removePlacement(key, previous);
      return;
    }
    const placement = parsePlacement(entry);
    // A value whose names disagree with its key is not trusted to say anything.
    if (!placement || placement.service !== names.service || placement.id !== names.id) return;
    this.applyPlacement(placement);
  }

  /** A placement read or written by this node (a watch delivers it too: the higher revision wins). */
  applyPlacement(placement: Placement): void {
    const key = instanceKey(placement.service, placement.id);
    const previous = this.placementRecords.get(key);
    if (previous && previous.revision >= placement.revision) return;
    if (previous) this.count(previous, -1);
    this.placementRecords.set(key, placement);
    this.count(placement, +1);
    if (!previous || previous.node !== placement.node) this.onPlacement(placement, previous);
  }

  private removePlacement(key: string, previous: Placement): void {
    this.placementRecords.delete(key);
    this.count(previous, -1);
    this.onRemoved(previous);
  }

  private count(placement: Placement, delta: number): void {
    bump(this.load, placement.node, delta);
    bump(this.serviceLoad, `${placement.node}\0${placement.service}`, delta);
  }

  placement(service: string, id: string): Placement | undefined {
    return this.placementRecords.get(instanceKey(service, id));
  }

  placements(): IterableIterator<Placement> {
    return this.placementRecords.values();
  }

  get placementCount(): number {
    return this.placementRecords.size;
  }

  node(id: string): NodeRecord | undefined {
    return this.nodeRecords.get(id);
  }

  /** Heard from within expiryMs, and reachable (it has an address). */
  isLive(id: string, now = Date.now()): boolean {
    const record = this.nodeRecords.get(id);
    return record !== undefined && record.advertise !== '' && now - record.at <= this.expiryMs;
  }

  /** Known dead: its heartbeat expired, or it never sent one since this node has watched for longer than expiryMs. */
  isDead(id: string, now = Date.now()): boolean {
    const record = this.nodeRecords.get(id);
    if (record === undefined) return now - this.startedAt > this.expiryMs;
    return now - record.at > this.expiryMs;
  }

  nodes(now = Date.now()): NodeView[] {
    return [...this.nodeRecords.values()].map((record) => ({ ...record, live: this.isLive(record.id, now) }));
  }

  loadOf(node: string): number {
    return this.load.get(node) ?? 0;
  }

  serviceLoadOf(node: string, service: string): number {
    return this.serviceLoad.get(`${node}\0${service}`) ?? 0;
  }
}

function bump(map: Map<string, number>, key: string, delta: number): void {
  const next = (map.get(key) ?? 0) + delta;
  if (next <= 0) map.delete(key);
  else map.set(key, next);
}

/** `tenement_nodes` key of a node. */
export function nodeKeyOf(id: string): string {
  return encodeToken(id);
}
