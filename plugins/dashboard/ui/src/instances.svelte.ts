// The live instance list, from the SSE stream /api/events (docs/dashboard.md): a `snapshot` of every instance on
// each (re)connect, then `instance` (a changed view), `removed` and `stats` (memory, CPU, request rate every 10 s).
// Views are kept in a Map by key; the table reads `rows`, a fresh array after each change (cheap even at thousands
// of rows: the table renders only the visible ones).
import { api, messageOf } from './api.ts';
import type { FleetInstanceRow, InstanceView } from './types.ts';

/** Fleet mode: how often the fleet-wide list is read again (each read asks every owning node). */
const FLEET_POLL_MS = 2_000;

/** A placed instance its owner does not know yet (or whose node did not answer): a row with what is known. */
function placedView(row: FleetInstanceRow): InstanceView {
  return {
    key: row.key,
    service: row.service,
    id: row.id,
    state: 'placed',
    tier: '-',
    health: 'unknown',
    weight: 0,
    pid: null,
    port: null,
    inFlight: 0,
    restarts: 0,
    startedAt: null,
    readyAt: null,
    lastActivity: null,
    stateSince: null,
    lastError: null,
    uptimeSeconds: null,
    idleSeconds: null,
    memoryBytes: null,
    cpuSeconds: null,
  };
}

export interface Row extends InstanceView {
  /** Date.now() when this view arrived: uptime and idle time count on from it between updates. */
  receivedAt: number;
  /** Cores used over the last 10 s, from `stats`; null until one came (or when not running). */
  cpuCores: number | null;
  /** Requests per second over the last 10 s, from `stats`. */
  rps: number | null;
}

interface Stats {
  key: string;
  memoryBytes?: number | null;
  cpuSeconds?: number | null;
  cpu?: number | null;
  rps?: number | null;
}

function isView(value: unknown): value is InstanceView {
  const v = value as Partial<InstanceView> | null;
  return typeof v === 'object' && v !== null && typeof v.key === 'string' && typeof v.service === 'string' && typeof v.state === 'string';
}

function parse(data: string): unknown {
  try {
    return JSON.parse(data) as unknown;
  } catch {
    return null;
  }
}

class LiveInstances {
  rows = $state.raw<Row[]>([]);
  loaded = $state(false);
  live = $state(false);
  error = $state<string | null>(null);
  /** Listing the whole fleet (the session says the server is in one): rows carry their node. */
  fleet = $state(false);
  /** Fleet mode: the node this page talks to (an instance placed elsewhere is read through it from its owner). */
  self = $state<string | null>(null);
  private readonly byKey = new Map<string, Row>();
  private source: EventSource | null = null;
  private fleetTimer: ReturnType<typeof setTimeout> | null = null;
  private fleetRun = 0;

  /** Called when the live stream gave up (set by the session, which then checks whether it still holds). */
  onClosed: () => void = () => {};

  get(key: string): Row | undefined {
    return this.byKey.get(key);
  }

  /**
   * Fleet mode reads `GET /api/fleet/instances` every FLEET_POLL_MS (each instance as its owner reports it, with
   * its node); this server's event stream still tells whether the page is live, but its views are only this
   * node's (another node's instances are forwarding stand-ins here), so they are not listed.
   */
  private async pollFleet(run: number): Promise<void> {
    try {
      const answer = await api<{ self?: string; instances: FleetInstanceRow[] }>('GET', '/api/fleet/instances');
      if (run !== this.fleetRun) return;
      this.self = typeof answer.self === 'string' ? answer.self : null;
      const now = Date.now();
      const previous = new Map(this.byKey);
      this.byKey.clear();
      for (const row of answer.instances) {
        const view = row.instance && isView(row.instance) ? row.instance : placedView(row);
        this.byKey.set(row.key, this.row({ ...view, node: row.node }, now, previous.get(row.key)));
      }
      this.loaded = true;
      this.error = null;
      this.publish();
    } catch (failure) {
      if (run === this.fleetRun) this.error = `The fleet's instances could not be read: ${messageOf(failure)}`;
    }
    if (run === this.fleetRun) this.fleetTimer = setTimeout(() => void this.pollFleet(run), FLEET_POLL_MS);
  }

  start(fleet = false): void {
    this.stop();
    this.fleet = fleet;
    if (fleet) void this.pollFleet(this.fleetRun);
    const source = new EventSource('/api/events');
    this.source = source;
    source.addEventListener('open', () => {
      if (this.source === source) {
        this.live = true;
        this.error = null;
      }
    });
    source.addEventListener('error', () => {
      if (this.source !== source) return;
      this.live = source.readyState === EventSource.OPEN;
      if (source.readyState !== EventSource.CLOSED) return;
      // EventSource gives up only when an answer is not a stream (a 401 once the session ended, a 429): say
      // so, and let the session check whether it still holds.
      this.error = 'The live stream closed; reload the page to reconnect.';
      this.onClosed();
    });
    source.addEventListener('snapshot', (event) => {
      if (this.fleet) return;
      const body = parse(event.data) as { instances?: unknown } | null;
      if (!body || !Array.isArray(body.instances)) return;
      const now = Date.now();
      const previous = new Map(this.byKey);
      this.byKey.clear();
      for (const view of body.instances) {
        if (isView(view)) this.byKey.set(view.key, this.row(view, now, previous.get(view.key)));
      }
      this.loaded = true;
      this.publish();
    });
    source.addEventListener('instance', (event) => {
      if (this.fleet) return;
      const view = parse(event.data);
      if (isView(view)) this.apply(view);
    });
    source.addEventListener('removed', (event) => {
      if (this.fleet) return;
      const body = parse(event.data) as { key?: unknown } | null;
      if (typeof body?.key === 'string') this.remove(body.key);
    });
    source.addEventListener('stats', (event) => {
      if (this.fleet) return;
      const body = parse(event.data) as { instances?: unknown } | null;
      if (!body || !Array.isArray(body.instances)) return;
      let changed = false;
      for (const stats of body.instances as Stats[]) {
        const row = typeof stats?.key === 'string' ? this.byKey.get(stats.key) : undefined;
        if (!row) continue;
        this.byKey.set(row.key, {
          ...row,
          memoryBytes: stats.memoryBytes ?? row.memoryBytes,
          cpuSeconds: stats.cpuSeconds ?? row.cpuSeconds,
          cpuCores: stats.cpu ?? null,
          rps: stats.rps ?? null,
        });
        changed = true;
      }
      if (changed) this.publish();
    });
  }

  stop(): void {
    this.fleetRun++;
    if (this.fleetTimer) clearTimeout(this.fleetTimer);
    this.fleetTimer = null;
    this.fleet = false;
    this.source?.close();
    this.source = null;
    this.live = false;
    this.byKey.clear();
    this.rows = [];
    this.loaded = false;
  }

  /** An answer to an action is the freshest view there is: apply it at once instead of waiting for the event. */
  apply(view: InstanceView): void {
    const previous = this.byKey.get(view.key);
    // An owner's answer does not name its node: the row keeps the one it was listed with.
    this.byKey.set(view.key, this.row({ ...view, node: view.node ?? previous?.node ?? null }, Date.now(), previous));
    this.publish();
  }

  remove(key: string): void {
    if (this.byKey.delete(key)) this.publish();
  }

  private row(view: InstanceView, now: number, previous: Row | undefined): Row {
    const running = view.state === 'running';
    return {
      ...view,
      receivedAt: now,
      cpuCores: running ? (previous?.cpuCores ?? null) : null,
      rps: running ? (previous?.rps ?? null) : null,
    };
  }

  private scheduled = false;

  /**
   * Changes are published once per frame: a burst of events (a snapshot's worth of `instance` events, a restart
   * of every instance) costs one re-sort and one redraw per frame instead of one per event.
   */
  private publish(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      this.rows = Array.from(this.byKey.values());
    };
    // A hidden tab gets no animation frames: publish on a timer there, so it is current when shown again.
    if (document.hidden) setTimeout(run, 250);
    else requestAnimationFrame(run);
  }
}

export const instances = new LiveInstances();

/** Uptime and idle time as of `now`: the server's figure when the view arrived, counted on since. */
export const uptimeAt = (row: Row, now: number): number | null =>
  row.uptimeSeconds === null ? null : row.uptimeSeconds + Math.max(0, (now - row.receivedAt) / 1000);
export const idleAt = (row: Row, now: number): number | null =>
  row.idleSeconds === null ? null : row.idleSeconds + Math.max(0, (now - row.receivedAt) / 1000);

/** A clock for those figures, ticking once a second while a view uses it. */
class Clock {
  now = $state(Date.now());
  private users = 0;
  private timer: ReturnType<typeof setInterval> | null = null;

  use(): () => void {
    if (this.users++ === 0) this.timer = setInterval(() => (this.now = Date.now()), 1000);
    return () => {
      if (--this.users === 0 && this.timer) clearInterval(this.timer);
    };
  }
}

export const clock = new Clock();
