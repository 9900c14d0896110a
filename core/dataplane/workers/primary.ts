import { fork, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { errorMessage } from '../../errors.ts';
import type { KernelHooks } from '../../hooks.ts';
import type { Instance } from '../../instance.ts';
import type { Logger } from '../../logger.ts';
import { unpinnedWhile } from '../../process/affinity.ts';
import type { PinMode } from '../cpu-pin.ts';
import type { DataPlane } from '../index.ts';
import { RequestContext } from '../policy.ts';
import { onRoutingChange } from '../route-cache.ts';
import { proxyWorkerEntry } from './entry.ts';
import { reusePortSupported, type ListenFailed, type ListenMessage } from './listen.ts';
import type { FromWorker, MirroredRoute, ToWorker } from './protocol.ts';
import { mirrored, workersCanRoute } from './mirror.ts';
import { forEachRecord } from './records.ts';
import { SPILL_SAMPLE_MS, SpillPolicy, eluMeter, idleCoresMeter } from './spill.ts';

export interface WorkerKernel {
  hooks: KernelHooks;
  log: Logger;
  instanceByKey(key: string): Instance | undefined;
}

interface Worker {
  child: ChildProcess;
  /** Per instance key, the requests this worker said are in flight (given back if it dies). */
  inFlight: Map<string, number>;
  /** Client connections it held when it last answered a sync or reported its load. */
  connections: number;
  /** Accepting from the listening socket (under 'spill', parked workers are not). */
  accepting: boolean;
  /** Its event-loop utilization as it last reported it (under 'spill'). */
  elu: number;
}

/** settings.proxy.accept: every process accepts from the start, or workers only when the accepting ones are saturated (spill.ts). */
export type AcceptMode = 'spread' | 'spill';

/** Replacements allowed in RESPAWN_WINDOW_MS; past that a crashing worker stays down (the kernel's process serves). */
const MAX_RESPAWNS = 10;
const RESPAWN_WINDOW_MS = 60_000;
const CLOSE_GRACE_MS = 5_000;
/**
 * How long a spill's share of busy connections may take to move at their request boundaries (boundary-moves.ts):
 * a busy connection finishes a response within milliseconds; one that does not in this long is not what the
 * share was for, and the loads may have changed by then (two load samples).
 */
const MOVE_WITHIN_MS = 2 * SPILL_SAMPLE_MS;

/**
 * The kernel's side of the proxy workers (settings.proxy.workers > 1): forks them, gives them the listening
 * socket, answers their route questions (the `route` hook, as for a request here), tells them when routes
 * change, takes back the connections they hand over, and folds their in-flight counts, activity and finished
 * requests into the kernel's instances and `request` hook. A worker that dies is replaced (bounded), its
 * in-flight counts given back; the kernel's process keeps serving throughout.
 */
export class ProxyWorkers {
  private readonly workers = new Set<Worker>();
  private readonly respawns: number[] = [];
  private closing = false;
  private invalidatePending = false;
  private readonly unsubscribe: () => void;
  private readonly entry = proxyWorkerEntry();
  /** Each process binds a socket of its own with SO_REUSEPORT (Node >= 22.12), not the kernel's shared one (listen.ts). */
  readonly reusePort: boolean;
  private spillTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly kernel: WorkerKernel,
    private readonly listener: net.Server,
    private readonly count: number,
    /** Serves a connection a worker handed back, `bytes` first. */
    private readonly adopt: (socket: net.Socket, bytes: Buffer) => void,
    private readonly accept: AcceptMode = 'spread',
    /** The kernel's own data plane: under 'spill', some of its idle connections move to a worker it spills to. */
    private readonly local: Pick<DataPlane, 'takeIdle' | 'connectionCount' | 'moveAtBoundary' | 'cancelMoves'> | null = null,
    /** settings.proxy.pin: each worker pins its own busy event loop (cpu-pin.ts). */
    private readonly pin: PinMode = 'off',
  ) {
    // Parking needs one shared accept queue: a closed SO_REUSEPORT socket would drop the connections queued on it.
    this.reusePort = accept === 'spread' && reusePortSupported();
    this.unsubscribe = onRoutingChange(() => {
      // One message for a burst of changes (a deploy moves many instances in one turn).
      if (this.invalidatePending || this.workers.size === 0) return;
      this.invalidatePending = true;
      queueMicrotask(() => {
        this.invalidatePending = false;
        this.broadcast({ t: 'invalidate' });
      });
    });
  }

  /** Requests workers served (reported), and connections they handed back. */
  requests = 0;
  handedBack = 0;

  /** Client connections the workers held when they last answered `synced()`. */
  get connections(): number {
    let total = 0;
    for (const worker of this.workers) total += worker.connections;
    return total;
  }

  /** Process ids of the running workers. */
  get pids(): number[] {
    return [...this.workers].flatMap((w) => (w.child.pid === undefined ? [] : [w.child.pid]));
  }

  /** Forks the workers (count - 1: the kernel's process is one of them); resolves when each accepts. */
  async start(): Promise<void> {
    const started: Array<Promise<void>> = [];
    for (let i = 1; i < this.count; i++) started.push(this.spawn());
    await Promise.all(started);
    if (this.accept === 'spill' && this.count > 1) this.watchLoad();
  }

  /** Workers accepting now (under 'spread', all of them). */
  get accepting(): number {
    let count = 0;
    for (const worker of this.workers) if (worker.accepting) count++;
    return count;
  }

  /** Under 'spill': samples the accepting processes' loads and the host's idle CPU, and spills or parks a worker. */
  private watchLoad(): void {
    const policy = new SpillPolicy();
    const ownElu = eluMeter();
    const idleCores = idleCoresMeter();
    this.spillTimer = setInterval(() => {
      const elus = [ownElu()];
      let parked: Worker | undefined;
      let last: Worker | undefined;
      for (const worker of this.workers) {
        if (worker.accepting) {
          elus.push(worker.elu);
          last = worker;
        } else parked ??= worker;
      }
      const decision = policy.sample(elus, idleCores(), parked ? 1 : 0, last ? 1 : 0);
      if (decision === 'spill' && parked) this.listenIn(parked);
      else if (decision === 'park' && last) this.park(last);
    }, SPILL_SAMPLE_MS);
    this.spillTimer.unref();
  }

  /**
   * Under 'spill', by hand from now on (the load no longer decides): one more worker accepts, or the last one to
   * accept is parked. Whether a worker changed. For tests, and an operator pinning the split.
   */
  steer(action: 'spill' | 'park'): boolean {
    if (this.accept !== 'spill') return false;
    if (this.spillTimer) clearInterval(this.spillTimer);
    this.spillTimer = null;
    let parked: Worker | undefined;
    let last: Worker | undefined;
    for (const worker of this.workers) {
      if (worker.accepting) last = worker;
      else parked ??= worker;
    }
    if (action === 'spill' && parked) this.listenIn(parked);
    else if (action === 'park' && last) this.park(last);
    else return false;
    return true;
  }

  private park(worker: Worker): void {
    worker.accepting = false;
    this.local?.cancelMoves();
    this.sendTo(worker, { t: 'park' });
  }

  /** The worker accepts from the kernel's listening socket (its copy of the handle; the accept queue stays one). */
  private listenIn(worker: Worker): void {
    worker.accepting = true;
    // Idle until it reports: one more worker only once this one is saturated too.
    worker.elu = 0;
    if (!worker.child.connected) return;
    worker.child.send({ t: 'listen' } satisfies ListenMessage, this.listener);
    // Connections opened in one burst all landed here: the new process gets its share of them, or it would only
    // see connections opened from now on. The idle ones move now, the busy ones as they finish a response.
    if (!this.local) return;
    // Measured against every connection, the parked workers' too: a worker spilled to again may still hold those
    // it was given last time (parking keeps them), and a front proxy's pool would drift onto it spill after spill.
    const local = this.local.connectionCount;
    let total = local;
    for (const other of this.workers) total += other.connections;
    const fair = Math.floor(total / (this.accepting + 1));
    const share = Math.max(0, Math.min(fair - worker.connections, local - fair));
    const child = worker.child;
    const moveTo = (socket: net.Socket): void => {
      // Once sent, the socket here has no handle left; a send that failed (the worker died) closes it.
      if (child.connected) child.send({ t: 'connection' } satisfies ToWorker, socket, { keepOpen: false }, () => socket.destroy());
      else socket.destroy();
    };
    const idle = this.local.takeIdle(share);
    for (const socket of idle) moveTo(socket);
    this.local.moveAtBoundary(share - idle.length, moveTo, MOVE_WITHIN_MS);
  }

  private spawn(): Promise<void> {
    // Forked with the kernel's whole CPU mask, not its pin: a worker finds a CPU of its own.
    const child = unpinnedWhile(() =>
      fork(this.entry.file, [], {
        execArgv: this.entry.execArgv,
        serialization: 'advanced',
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        env: { ...process.env, TENEMENT_PROXY_WORKER: '1', TENEMENT_PROXY_PIN: this.pin },
      }),
    );
    const spill = this.accept === 'spill';
    const worker: Worker = { child, inFlight: new Map(), connections: 0, accepting: !spill, elu: 0 };
    this.workers.add(worker);
    const ready = new Promise<void>((resolve) => {
      const done = (): void => resolve();
      child.once('exit', done);
      child.on('message', (message: FromWorker | ListenFailed, handle: unknown) => {
        if (message.t === 'ready') return done();
        if (message.t === 'listen-failed') {
          this.kernel.log.warn({ reason: String(message.reason) }, 'proxy worker: its own SO_REUSEPORT socket failed; it shares the listening socket');
          return void child.send({ t: 'listen' } satisfies ListenMessage, this.listener);
        }
        this.onMessage(worker, message, handle);
      });
    });
    child.once('exit', (code, signal) => this.onExit(worker, code, signal));
    child.on('error', (error) => this.kernel.log.warn({ err: errorMessage(error) }, 'proxy worker: IPC failed'));
    const routable = workersCanRoute(this.kernel.hooks);
    if (!routable) this.kernel.log.warn('proxy workers: a route tap other than the router, or a tap on upstream heads (tracing), is loaded: workers hand every request to the kernel process');
    this.sendTo(worker, { t: 'config', routable, reportRequests: this.kernel.hooks.request.taps.length > 0, spill });
    const bound = this.listener.address();
    if (spill) child.send({ t: 'listen', park: true } satisfies ListenMessage);
    else if (this.reusePort && bound !== null && typeof bound === 'object') {
      child.send({ t: 'listen', own: { port: bound.port, host: bound.address } } satisfies ListenMessage);
    } else child.send({ t: 'listen' } satisfies ListenMessage, this.listener);
    return ready;
  }

  private onExit(worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(worker);
    // Busy connections still wanted by it stay here (a later spill asks again).
    if (worker.accepting) this.local?.cancelMoves();
    this.settleSync(worker);
    // Its requests are over, whichever way they ended.
    for (const [key, count] of worker.inFlight) this.applyInFlight(key, -count);
    worker.inFlight.clear();
    if (this.closing) return;
    this.kernel.log.warn({ pid: worker.child.pid, code, signal }, 'proxy worker exited; starting another');
    const now = Date.now();
    while (this.respawns.length > 0 && now - this.respawns[0]! > RESPAWN_WINDOW_MS) this.respawns.shift();
    if (this.respawns.length >= MAX_RESPAWNS) {
      this.kernel.log.error({ respawns: this.respawns.length }, 'proxy workers keep dying: not replaced; the kernel process serves alone');
      return;
    }
    this.respawns.push(now);
    void this.spawn();
  }

  private readonly syncs = new Map<number, { left: Set<Worker>; done: () => void }>();
  private nextSync = 1;

  /**
   * Resolves once every worker has applied the routing changes made so far (each answers a `sync` sent after
   * them; a worker that exits counts as done). Changes reach workers in one IPC message anyway; this is for
   * a caller that must know, such as a test asserting that no request takes the previous route.
   */
  synced(timeoutMs = 5_000): Promise<void> {
    if (this.workers.size === 0) return Promise.resolve();
    const id = this.nextSync++;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => done(), timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.syncs.delete(id);
        resolve();
      };
      this.syncs.set(id, { left: new Set(this.workers), done });
      this.broadcast({ t: 'sync', id });
    });
  }

  private settleSync(worker: Worker, id?: number): void {
    for (const [syncId, sync] of this.syncs) {
      if (id !== undefined && syncId !== id) continue;
      sync.left.delete(worker);
      if (sync.left.size === 0) sync.done();
    }
  }

  private onMessage(worker: Worker, message: FromWorker, handle: unknown): void {
    switch (message.t) {
      case 'synced':
        worker.connections = Number(message.connections) || 0;
        return this.settleSync(worker, message.id);
      case 'load':
        // A parked worker's utilization is not the accepting processes' (listenIn starts it at 0 anyway).
        if (worker.accepting) worker.elu = Number(message.elu) || 0;
        worker.connections = Number(message.connections) || 0;
        return;
      case 'route':
        return this.answerRoute(worker, message.id, message.hostname, message.remoteAddress);
      case 'connection':
        this.handedBack++;
        if (handle instanceof net.Socket) this.adopt(handle, Buffer.from(message.bytes.buffer, message.bytes.byteOffset, message.bytes.byteLength));
        return;
      case 'activity':
        for (const [key, delta, active] of message.entries) {
          if (typeof key !== 'string' || !Number.isInteger(delta)) continue;
          const held = (worker.inFlight.get(key) ?? 0) + delta;
          if (held > 0) worker.inFlight.set(key, held);
          else worker.inFlight.delete(key);
          this.applyInFlight(key, delta);
          if (active) {
            const instance = this.kernel.instanceByKey(key);
            if (instance) instance.lastActivity = Date.now();
          }
        }
        return;
      case 'requests':
        if (Number.isInteger(message.served)) this.requests += message.served;
        return this.report(message.strings, message.numbers);
    }
  }

  private answerRoute(worker: Worker, id: number, hostname: string, remoteAddress: string): void {
    const hooks = this.kernel.hooks;
    const reply = (route: MirroredRoute | null): void => this.sendTo(worker, { t: 'route', id, route });
    if (typeof hostname !== 'string' || !workersCanRoute(hooks)) return reply(null);
    const headers = Object.create(null) as Record<string, string>;
    headers.host = hostname;
    hooks.route.promise({ hostname, method: 'GET', url: '/', headers, remoteAddress: String(remoteAddress), upgrade: false }).then(
      (target) => reply(mirrored(target)),
      () => reply(null),
    );
  }

  private applyInFlight(key: string, delta: number): void {
    const instance = this.kernel.instanceByKey(key);
    if (!instance) return;
    for (let i = 0; i < delta; i++) instance.requestStarted();
    // Never below zero: an instance replaced under the same key does not owe the old one's finishes.
    for (let i = 0; i > delta && instance.inFlight > 0; i--) instance.requestFinished();
  }

  private report(strings: unknown, numbers: unknown): void {
    const hook = this.kernel.hooks.request;
    if (hook.taps.length === 0) return;
    forEachRecord(strings, numbers, ({ key, method, status, durationMs, wakeMs, target, hostname, remoteAddress }) => {
      const instance = this.kernel.instanceByKey(key);
      if (!instance) return;
      const ctx = new RequestContext(method, true, [instance], target, hostname, [], remoteAddress, performance.now() - durationMs);
      ctx.instance = instance;
      ctx.status = status;
      ctx.wakeMs = wakeMs;
      ctx.reported = true;
      hook.call({ instance, method, status, durationMs, wakeMs, exchange: ctx });
    });
  }

  private sendTo(worker: Worker, message: ToWorker): void {
    if (worker.child.connected) worker.child.send(message, (error) => error && undefined);
  }

  private broadcast(message: ToWorker): void {
    for (const worker of this.workers) this.sendTo(worker, message);
  }

  /** Workers stop accepting and finish their connections; those still there after a grace period are killed. */
  async close(): Promise<void> {
    this.closing = true;
    this.local?.cancelMoves();
    if (this.spillTimer) clearInterval(this.spillTimer);
    this.unsubscribe();
    const exits = [...this.workers].map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker.child.exitCode !== null || worker.child.signalCode !== null) return resolve();
          worker.child.once('exit', () => resolve());
          this.sendTo(worker, { t: 'close' });
          setTimeout(() => worker.child.kill('SIGKILL'), CLOSE_GRACE_MS).unref();
        }),
    );
    await Promise.all(exits);
  }

  terminate(): void {
    this.closing = true;
    this.local?.cancelMoves();
    if (this.spillTimer) clearInterval(this.spillTimer);
    this.unsubscribe();
    for (const worker of this.workers) worker.child.kill('SIGKILL');
  }
}
