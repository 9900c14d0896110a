import type { ServerResponse } from 'node:http';
import { canAccess } from '../../core/api/identity.ts';
import { viewOf } from '../../core/api/instance-view.ts';
import type { InstanceView } from '../../core/instance.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { Identity, InstanceEvent } from '../../core/types.ts';

/** Unsent bytes a client may have on top of its snapshot before it is dropped (EventSource reconnects). */
export const MAX_BUFFERED_BYTES = 1 << 20;
export const KEEP_ALIVE_MS = 15_000;
/** How often weights and health (which raise no lifecycle event) are compared, while someone listens. */
const DIFF_EVERY_MS = 1_000;

export interface StatsEntry {
  key: string;
  id: string;
  memoryBytes: number | null;
  cpuSeconds: number | null;
  cpu: number | null;
  rps: number;
}

interface Subscriber {
  res: ServerResponse;
  identity: Identity;
  /** Snapshot size on top of MAX_BUFFERED_BYTES: the first answer may be large at 1,000 instances. */
  allowance: number;
  /** Whether the credential still works (a revoked token's stream is closed). */
  stillValid: () => Promise<boolean>;
  close: () => void;
}

type Change = { view: InstanceView } | { removed: { key: string; service: string; id: string } };

const frame = (event: string, data: unknown): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

/**
 * `GET /api/events`: instance changes as Server-Sent Events, each client scoped to what its identity may see.
 * Changes are coalesced per instance and sent in order: a burst of transitions costs one view per instance.
 */
export class EventHub {
  private readonly subscribers = new Set<Subscriber>();
  /**
   * Streams whose snapshot is being built: changes queued meanwhile are queued again once it is sent, so a change
   * made while the snapshot was read is never lost behind it (nor an older frame sent after a newer snapshot).
   */
  private readonly opening = new Set<Map<string, Change>>();
  private readonly pending = new Map<string, Change>();
  private flushing = false;
  /** `state|health|weight` last sent per instance, to notice what raises no lifecycle event. */
  private readonly sent = new Map<string, string>();
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;
  private readonly unsubscribeTokens: () => void;

  constructor(
    private readonly ctx: Pick<PluginContext, 'instances' | 'faults' | 'tokens'>,
    private readonly maxStreams: number,
  ) {
    ctx.instances.watch((event) => this.onEvent(event));
    // A token revoked here closes its streams now, not at the next periodic check (which still catches the rest:
    // an expired token, a revocation replicated from another server).
    this.unsubscribeTokens = ctx.tokens.subscribe((record) => {
      if (record.revokedAt !== null) void this.recheck();
    });
    const diff = setInterval(() => this.diff(), DIFF_EVERY_MS);
    const recheck = setInterval(() => void this.recheck(), KEEP_ALIVE_MS);
    diff.unref();
    recheck.unref();
    this.timers.push(diff, recheck);
  }

  get size(): number {
    return this.subscribers.size;
  }

  get full(): boolean {
    return this.subscribers.size + this.opening.size >= this.maxStreams;
  }

  private get listened(): boolean {
    return this.subscribers.size > 0 || this.opening.size > 0;
  }

  /**
   * Starts a stream on a hijacked response: the snapshot of every instance the identity may see, then changes.
   * Returns the function that ends it (sign-out, revocation).
   */
  async open(res: ServerResponse, identity: Identity, stillValid: () => Promise<boolean>): Promise<() => void> {
    const missed = new Map<string, Change>();
    this.opening.add(missed);
    let snapshot: string;
    try {
      const visible = this.ctx.instances.list().filter((view) => canAccess(identity, view.id));
      visible.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      snapshot = frame('snapshot', { instances: await Promise.all(visible.map((view) => viewOf(this.ctx.instances, view))) });
    } finally {
      this.opening.delete(missed);
    }
    for (const [key, change] of missed) this.queue(key, change);
    const close = (): void => {
      if (!res.writableEnded) res.end();
    };
    if (this.closed || res.destroyed || !res.socket || res.socket.destroyed) {
      res.destroy();
      return close;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
    });
    res.write(snapshot);
    const sub: Subscriber = { res, identity, allowance: Buffer.byteLength(snapshot), stillValid, close };
    const keepAlive = setInterval(() => {
      if (!res.writableEnded) res.write(': keep-alive\n\n');
    }, KEEP_ALIVE_MS);
    keepAlive.unref();
    this.subscribers.add(sub);
    res.on('error', () => undefined);
    res.once('close', () => {
      clearInterval(keepAlive);
      this.subscribers.delete(sub);
    });
    // The server keeps half-open connections, so a client that leaves shows only as the end of what it sends:
    // without this its stream (and its place under maxStreams) would last until a keep-alive write failed.
    res.socket.once('end', close);
    return close;
  }

  /** Every 10 s from the sampler: resource use of running instances, each client its own. */
  publishStats(at: number, entries: readonly StatsEntry[]): void {
    if (this.subscribers.size === 0) return;
    let adminPayload: string | null = null;
    for (const sub of this.subscribers) {
      if (sub.identity.kind === 'admin') {
        adminPayload ??= frame('stats', { at, instances: entries.map(publicStats) });
        this.send(sub, adminPayload);
      } else {
        const tenant = sub.identity.tenant;
        this.send(sub, frame('stats', { at, instances: entries.filter((e) => e.id === tenant).map(publicStats) }));
      }
    }
  }

  close(): void {
    this.closed = true;
    this.unsubscribeTokens();
    for (const timer of this.timers) clearInterval(timer);
    for (const sub of this.subscribers) sub.close();
    this.subscribers.clear();
  }

  private onEvent(event: InstanceEvent): void {
    if (event.type === 'removed') {
      this.sent.delete(event.instance);
      if (!this.listened) return;
      this.queue(event.instance, { removed: { key: event.instance, service: event.service, id: event.id } });
      return;
    }
    if (!this.listened) return;
    const view = this.ctx.instances.getByKey(event.instance);
    if (view) this.queue(view.key, { view });
  }

  private diff(): void {
    if (!this.listened) return;
    for (const view of this.ctx.instances.list()) {
      const print = `${view.state}|${view.health}|${view.weight}`;
      if (this.sent.get(view.key) !== print) this.queue(view.key, { view });
    }
  }

  private queue(key: string, change: Change): void {
    // The latest change of an instance wins: what is sent is read when sent, so nothing newer is lost.
    this.pending.delete(key);
    this.pending.set(key, change);
    for (const missed of this.opening) missed.set(key, change);
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    try {
      while (this.pending.size > 0 && !this.closed) {
        const batch = [...this.pending.values()];
        this.pending.clear();
        const frames = await Promise.all(batch.map((change) => this.render(change)));
        for (const rendered of frames) {
          if (!rendered) continue;
          for (const sub of this.subscribers) if (canAccess(sub.identity, rendered.id)) this.send(sub, rendered.payload);
        }
      }
    } catch (error) {
      this.ctx.faults.record('dashboard:events', error);
    } finally {
      this.flushing = this.pending.size > 0 && !this.closed;
      if (this.flushing) setImmediate(() => void this.flush());
    }
  }

  private async render(change: Change): Promise<{ id: string; payload: string } | null> {
    if ('removed' in change) return { id: change.removed.id, payload: frame('removed', change.removed) };
    const view = change.view;
    // Removed while queued: its `removed` event is on its way.
    if (this.ctx.instances.getByKey(view.key) !== view) return null;
    this.sent.set(view.key, `${view.state}|${view.health}|${view.weight}`);
    return { id: view.id, payload: frame('instance', await viewOf(this.ctx.instances, view)) };
  }

  /** A client that reads too slowly is dropped: its EventSource reconnects and gets a fresh snapshot. */
  private send(sub: Subscriber, payload: string): void {
    const res = sub.res;
    if (res.writableEnded || res.destroyed) return;
    if (res.writableLength > MAX_BUFFERED_BYTES + sub.allowance) {
      res.destroy();
      return;
    }
    res.write(payload);
  }

  private async recheck(): Promise<void> {
    for (const sub of [...this.subscribers]) {
      const valid = await sub.stillValid().catch(() => false);
      if (!valid) sub.close();
    }
  }
}

function publicStats(entry: StatsEntry): Omit<StatsEntry, 'id'> {
  return { key: entry.key, memoryBytes: entry.memoryBytes, cpuSeconds: entry.cpuSeconds, cpu: entry.cpu, rps: entry.rps };
}
