/**
 * A proxy worker: a process of its own accepting from the kernel's listening socket (sent over IPC), running
 * the same fast data plane with routes mirrored from the kernel (asked per host, dropped on every routing
 * change). It serves requests to running instances; anything else (management, errors Tenement answers, wakes,
 * upgrades, a route that went stale) goes back to the kernel's process with the bytes read so far. In-flight
 * counts, activity and finished requests are reported in batches. Started by primary.ts, never by hand.
 */
import net from 'node:net';
import type { ServiceConfig } from '../../config/schema.ts';
import { HookTimings, createHooks } from '../../hooks.ts';
import { Instance } from '../../instance.ts';
import { createLogger } from '../../logger.ts';
import { hostnameOf } from '../../node-entry.ts';
import type { RouteTarget, RunningHandle } from '../../types.ts';
import { balance, type LbMode } from '../balance.ts';
import { createDataPlane } from '../index.ts';
import type { RouteResult } from '../route-cache.ts';
import { UpstreamPool } from '../upstream-pool.ts';
import type { FromWorker, MirroredInstance, MirroredRoute, ToWorker } from './protocol.ts';
import { RecordBatch } from './records.ts';
import { listenOwn, type ListenFailed, type ListenMessage } from './listen.ts';
import { SPILL_SAMPLE_MS, eluMeter } from './spill.ts';
import { startCpuPinning } from '../cpu-pin.ts';

type InstanceTarget = Extract<RouteTarget, { kind: 'instances' }>;
/** How long activity and finished requests wait to be reported together. */
const REPORT_MS = 50;
const MAX_RECORDS = 8192;
const MAX_HOSTS = 4096;
const MAX_INSTANCES = 16_384;

const send = (message: FromWorker, handle?: net.Socket): void => {
  if (!process.connected) return;
  // Once sent (a handle waits its turn behind one in flight), the socket object here has no handle left: destroyed,
  // it emits close, so the data plane forgets the connection.
  if (handle) process.send!(message, handle, { keepOpen: false }, () => handle.destroy());
  else process.send!(message);
};

const log = createLogger();
const hooks = createHooks(new HookTimings());
if (process.env.TENEMENT_PROXY_PIN === 'busy') startCpuPinning({ log });
const touched = new Set<MirrorInstance>();
const records = new RecordBatch(MAX_RECORDS);
let dropped = 0;
let served = 0;
let reportRequests = false;
let reportTimer: NodeJS.Timeout | null = null;

function scheduleReport(): void {
  reportTimer ??= setTimeout(report, REPORT_MS);
}

function report(): void {
  reportTimer = null;
  if (touched.size > 0) {
    const entries: Array<[string, number, boolean]> = [];
    for (const instance of touched) {
      entries.push([instance.key, instance.inFlight - instance.reported, true]);
      instance.reported = instance.inFlight;
    }
    touched.clear();
    send({ t: 'activity', entries });
  }
  if (served > 0) {
    send({ t: 'requests', served, ...records.take(), dropped });
    served = 0;
    dropped = 0;
  }
}

/** An instance as mirrored here: counts its requests like the kernel's, and says so in the next report. */
class MirrorInstance extends Instance {
  /** In-flight count the kernel was last told. */
  reported = 0;

  override requestStarted(): void {
    super.requestStarted();
    touched.add(this);
    scheduleReport();
  }

  override requestFinished(): void {
    super.requestFinished();
    touched.add(this);
    scheduleReport();
  }
}

const instances = new Map<string, MirrorInstance>();

function mirror(view: MirroredInstance): MirrorInstance | null {
  let instance = instances.get(view.key);
  if (!instance) {
    if (instances.size >= MAX_INSTANCES) {
      for (const [key, idle] of instances) if (idle.inFlight === 0 && !touched.has(idle)) instances.delete(key);
    }
    const config = { requestTimeout: view.requestTimeout, isolation: 'process', weight: view.weight } as unknown as ServiceConfig;
    instance = new MirrorInstance(view.service, view.id, config, 0);
    instances.set(view.key, instance);
  }
  instance.weight = view.weight;
  instance.config.requestTimeout = view.requestTimeout;
  if (!view.address) return null;
  instance.handle = { address: view.address, pid: null, pgid: null } as unknown as RunningHandle;
  if (instance.state !== 'running') instance.setState('running');
  return instance;
}

/** A host's mirrored route: a ready target (direct), instances to balance per request, or null (hand back). */
type Entry = { target: InstanceTarget; weighted: null } | { target: null; weighted: { service: string; lb: LbMode; instances: MirrorInstance[] } } | null;

const routes = new Map<string, Entry>();
const asking = new Map<string, Promise<Entry>>();
const waiting = new Map<number, (route: MirroredRoute | null) => void>();
let nextId = 1;
let routable = false;

function entryOf(route: MirroredRoute | null): Entry {
  if (!route) return null;
  const running: MirrorInstance[] = [];
  for (const view of route.candidates) {
    const instance = mirror(view);
    if (instance) running.push(instance);
  }
  if (running.length === 0) return null;
  if (route.mode === 'direct') return { target: { kind: 'instances', mode: 'direct', service: route.service, candidates: running }, weighted: null };
  return { target: null, weighted: { service: route.service, lb: route.lb, instances: running } };
}

/** A weighted host's candidates for one request: the service's rule, as the router applies it, over this worker's counts. */
function draw(weighted: { service: string; lb: LbMode; instances: readonly MirrorInstance[] }): InstanceTarget {
  return { kind: 'instances', mode: 'weighted', service: weighted.service, candidates: balance(weighted.lb, weighted.service, weighted.instances) };
}

function resolve(entry: Entry): InstanceTarget | undefined {
  if (entry === null) return undefined;
  return entry.target ?? draw(entry.weighted);
}

function route(hostname: string, remoteAddress: string): RouteResult {
  if (!routable) return undefined;
  const entry = routes.get(hostname);
  if (entry !== undefined) return resolve(entry);
  let pending = asking.get(hostname);
  if (!pending) {
    const id = nextId++;
    pending = new Promise<Entry>((settle) => {
      waiting.set(id, (answer) => {
        const entry = entryOf(answer);
        asking.delete(hostname);
        if (routes.size >= MAX_HOSTS) routes.clear();
        routes.set(hostname, entry);
        settle(entry);
      });
    });
    asking.set(hostname, pending);
    send({ t: 'route', id, hostname, remoteAddress });
  }
  return pending.then(resolve);
}

/** The connection goes to the kernel's process, `bytes` to be read first; the socket here is done with. */
function handBack(socket: net.Socket, bytes: Buffer): boolean {
  // Nothing more is read here: what the client sends next waits in the kernel's socket buffer for the new owner.
  (socket as unknown as { _handle?: { readStop?(): number } | null })._handle?.readStop?.();
  send({ t: 'connection', bytes }, socket);
  return true;
}

hooks.request.tap('proxy-worker', (r) => {
  served++;
  scheduleReport();
  if (!reportRequests) return;
  const exchange = r.exchange;
  if (!records.add(r.instance.key, r.method, r.status, r.durationMs, r.wakeMs, exchange.target, exchange.hostname, exchange.remoteAddress)) dropped++;
});

const pool = new UpstreamPool();
const dataPlane = createDataPlane({
  hooks,
  pool,
  log,
  hostnameOf,
  route: (hostname, info) => route(hostname, info().remoteAddress),
  handoff: (socket) => {
    const read = socket.read() as Buffer | null;
    handBack(socket, read ?? Buffer.alloc(0));
  },
  handBack,
});
dataPlane.server.on('error', (error) => log.warn({ err: String(error) }, 'proxy worker: accepting a connection failed'));

/** Under proxy.accept 'spill': whether this worker accepts now, and its load told to the kernel while it does. */
let accepting = false;
let loadTimer: NodeJS.Timeout | null = null;

function reportLoad(): void {
  if (loadTimer) return;
  const elu = eluMeter();
  loadTimer = setInterval(() => {
    const utilization = elu();
    send({ t: 'load', elu: accepting ? utilization : 0, connections: dataPlane.connectionCount });
  }, SPILL_SAMPLE_MS);
  loadTimer.unref();
}

function close(): void {
  dataPlane.server.close();
  dataPlane.closeIdleConnections();
  const check = setInterval(() => {
    dataPlane.closeIdleConnections();
    dataPlane.server.getConnections((_error, count) => {
      if (count > 0) return;
      report();
      process.exit(0);
    });
  }, 100);
  check.unref();
  setTimeout(() => process.exit(0), 10_000).unref();
}

process.on('message', (message: ToWorker | ListenMessage, handle?: unknown) => {
  switch (message.t) {
    case 'listen':
      // A socket of its own on the kernel's address (SO_REUSEPORT), or the kernel's shared handle (listen.ts).
      if (message.park) return send({ t: 'ready' });
      if (message.own) {
        const failed = (reason: string): void => void (process.connected && process.send!({ t: 'listen-failed', reason } satisfies ListenFailed));
        return listenOwn(dataPlane.server, message.own, () => send({ t: 'ready' }), failed);
      }
      accepting = true;
      dataPlane.server.listen(handle as net.Server, () => send({ t: 'ready' }));
      return;
    case 'connection':
      if (handle instanceof net.Socket) dataPlane.server.emit('connection', handle);
      return;
    case 'park':
      // This process's copy of the socket closes; the kernel's keeps the one accept queue. Connections here stay.
      accepting = false;
      if (dataPlane.server.listening) dataPlane.server.close();
      return;
    case 'config':
      routable = message.routable;
      reportRequests = message.reportRequests;
      if (message.spill) reportLoad();
      return;
    case 'invalidate':
      routes.clear();
      return;
    case 'sync':
      routes.clear();
      send({ t: 'synced', id: message.id, connections: dataPlane.connectionCount });
      return;
    case 'route':
      waiting.get(message.id)?.(message.route);
      waiting.delete(message.id);
      return;
    case 'close':
      close();
  }
});
// The kernel's process is gone: nobody is left to report to or to hand connections back to.
process.on('disconnect', () => process.exit(0));
