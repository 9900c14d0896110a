/**
 * The worker pool guest code runs in (piscina): one thread per core, kept for the life of the pool. Every call
 * has a wall-clock deadline: past it piscina terminates the worker running it (a wasm loop cannot be
 * interrupted any other way) and starts a replacement, and the other workers' calls are unaffected. A full
 * queue fails calls at once ('overloaded'). Guest failures come back as outcomes, never as exceptions.
 * Calls reach a worker only when a place is free for them: each caller key holds at most its share of the
 * places and waits in its own lane, and free places go to the lanes in turn (fair-share.ts); a place is a worker's
 * thread or the second slot of its buffer, where the next call waits while one runs. A call travels to its worker
 * through that worker's shared buffer (channels.ts), not as a piscina task of its own.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import os from 'node:os';
import { BroadcastChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { SLOTS } from './channel-wire.ts';
import { Channels, NotStartedError, type CallTicket } from './channels.ts';
import { DEADLINE, Deadline, settledBy } from './deadline.ts';
import { FairShare, type Lane } from './fair-share.ts';
import { closeDescriptorsUnder } from './fd-sweep.ts';
import { enableWasmFeatures, engineNamed, type Engine } from './engine.ts';
import { WASMTIME_BACKSTOP_MS } from './wasmtime/host.ts';
import { wasmtimeComponentTask } from './wasmtime/component/task.ts';
import { tryInline } from './wasmtime/inline.ts';
import { dropPreparedFor } from './wasmtime/prepared.ts';
import { InlineGovernor } from './inline-governor.ts';
import { workerEntry, type WorkerEntry } from './worker-bundle.ts';
import { now, type PoolBroadcast, type WasiValue, type WorkerData, type WorkerNotice, type WorkerResult, type WorkerTask } from './protocol.ts';
import type { ComponentArtifact, WasmHttpRequest, WasmHttpResponse } from './component/types.ts';
import type { WasmCallOptions, WasmCallOutcome, WasmFailureKind, WasmPoolOptions } from './types.ts';

/**
 * A core module compiled once on the main thread, with its memory cap written in (see module-cache.ts): for
 * V8 a `WebAssembly.Module` shared with workers, for wasmtime an artifact file workers deserialize.
 */
export type CompiledModule =
  | { engine?: 'v8'; hash: string; module: WebAssembly.Module; capPages: number; ahead?: boolean }
  | { engine: 'wasmtime'; hash: string; artifact: string; adapter: string | null; capPages: number; fuel: boolean; ahead?: boolean };


export interface WasiCallOptions {
  instanceKey: string;
  deadlineMs: number;
  args: string[];
  env: Record<string, string>;
  stdin: Uint8Array;
  dataDir: string | null;
  /** Where the guest sees `dataDir`. */
  preopenAs: string;
  /** Fuel budget of the call, for code compiled with fuel metering (`wasm.fuel`; wasmtime). */
  fuel?: number;
}

export interface ComponentHttpOptions {
  instanceKey: string;
  deadlineMs: number;
  fresh: boolean;
  dataDir: string | null;
  request: WasmHttpRequest;
}

type Outcome<V> =
  | (Extract<WasmCallOutcome, { ok: true }> & { value: V })
  | Extract<WasmCallOutcome, { ok: false }>;

let entry: WorkerEntry | null = null;

/**
 * The most close() waits for running wasmtime calls. Each ends by its deadline plus the backstop anyway (the
 * guest traps at its epoch deadline); this only bounds a shutdown behind a call given a very long deadline.
 */
const CLOSE_DRAIN_MS = 30_000;
/** The most close() waits for workers still loading their code (a worker normally serves within a second). */
const STARTING_DRAIN_MS = 10_000;

export class WasmPool {
  readonly threads: number;
  /** Threads one caller key (a tenant, a plugin) may hold while others wait, and always after a timeout. */
  readonly maxThreadsPerKey: number;
  private readonly piscina: Piscina<WorkerTask, WorkerResult>;
  /** The hop to the workers: piscina runs one resident task per worker, calls go through their buffers. */
  private readonly channels: Channels;
  private readonly share: FairShare;
  private readonly maxQueue: number;
  /** /dev/null for WASI guests' stdio, one for every worker: a worker terminated at a deadline closes nothing. */
  private readonly devNull: number;
  private readonly channel: BroadcastChannel;
  private readonly generations = new Map<string, number>();
  /** Instances kept per worker thread, by key. */
  private readonly live = new Map<number, Map<string, number>>();
  private closed = false;
  /** wasmtime calls dispatched and not yet settled: close() lets them end before it ends the workers. */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Engines whose calls went through this pool (told when a worker is terminated). */
  private readonly enginesUsed = new Set<Engine>();
  /** Which wasmtime calls may run on the main thread (wasmtime/inline.ts); null: none (`inline: false`). */
  private readonly inline: InlineGovernor | null;

  constructor(options: WasmPoolOptions = {}) {
    enableWasmFeatures();
    this.threads = Math.max(1, options.threads ?? os.availableParallelism());
    this.maxThreadsPerKey = Math.min(this.threads, options.maxThreadsPerKey ?? defaultShare(this.threads));
    // A place for each worker's second slot too (channels.ts): the next call waits there while one runs.
    this.share = new FairShare(this.threads * SLOTS, this.maxThreadsPerKey);
    this.maxQueue = options.maxQueue ?? 1024;
    this.inline = options.inline === false ? null : new InlineGovernor();
    const channelName = `tenement-wasm-${randomUUID()}`;
    this.channel = new BroadcastChannel(channelName);
    this.channel.unref();
    this.devNull = openSync('/dev/null', 'r+');
    const workerData: WorkerData = { channel: channelName, maxInstances: options.maxInstancesPerWorker ?? 2000, devNull: this.devNull };
    entry ??= workerEntry();
    this.piscina = new Piscina<WorkerTask, WorkerResult>({
      filename: entry.filename,
      minThreads: this.threads,
      maxThreads: this.threads,
      // The default (0) would end idle workers and pay the start-up again on the next burst.
      idleTimeout: Infinity,
      // Calls wait in the fair share's lanes; piscina queues only while a terminated worker is being replaced.
      maxQueue: this.maxQueue,
      // Idle workers then wait on their event loop (not in Atomics.wait), so they see drop broadcasts at once.
      atomics: 'disabled',
      concurrentTasksPerWorker: 1,
      execArgv: entry.execArgv,
      workerData,
      resourceLimits: { maxOldGenerationSizeMb: options.maxOldGenerationSizeMb ?? 256 },
    });
    this.piscina.on('message', (notice: WorkerNotice) => {
      if (notice?.type === 'dropped') this.live.get(notice.threadId)?.delete(notice.key);
    });
    this.piscina.on('workerDestroy', (worker: { id: number }) => {
      this.live.delete(worker.id);
      for (const engine of this.enginesUsed) engine.workerGone(worker.id);
    });
    // A worker that dies outside a task (it should not) must not take the host down with an unhandled 'error'.
    this.piscina.on('error', () => undefined);
    this.channels = new Channels(this.piscina, this.threads, this.maxQueue, options.staleMs);
  }

  /** Calls an export of a component instance kept for `instanceKey` (or a fresh one). */
  callComponent(artifact: ComponentArtifact, options: WasmCallOptions): Promise<WasmCallOutcome> {
    const wasmtime = wasmtimeComponentTask(artifact, options.deadlineMs);
    if (wasmtime && 'reason' in wasmtime) return Promise.resolve(failure('error', wasmtime.reason));
    const task = {
      op: 'call' as const,
      ...this.taskBase(componentKey(artifact), options.instanceKey),
      fresh: options.fresh ?? false,
      dataDir: options.dataDir ?? null,
      exportName: options.exportName,
      args: options.args,
      ...(wasmtime ? { wasmtime: wasmtime.task } : {}),
    };
    // On wasmtime the guest traps at its deadline (epoch) and the pool's own deadline is the backstop.
    if (wasmtime) return this.dispatch(task, () => task, options.deadlineMs, WASMTIME_BACKSTOP_MS, wasmtime.release);
    return this.dispatch(task, () => ({ ...task, artifact }), options.deadlineMs);
  }

  /** Serves one HTTP request with a component that targets Tenement's handler world. */
  serveComponent(artifact: ComponentArtifact, options: ComponentHttpOptions): Promise<Outcome<WasmHttpResponse>> {
    const wasmtime = wasmtimeComponentTask(artifact, options.deadlineMs);
    if (wasmtime && 'reason' in wasmtime) return Promise.resolve(failure('error', wasmtime.reason)) as Promise<Outcome<WasmHttpResponse>>;
    const task = {
      op: 'http' as const,
      ...this.taskBase(componentKey(artifact), options.instanceKey),
      fresh: options.fresh,
      dataDir: options.dataDir,
      request: options.request,
      ...(wasmtime ? { wasmtime: wasmtime.task } : {}),
    };
    const sent = wasmtime ? this.dispatch(task, () => task, options.deadlineMs, WASMTIME_BACKSTOP_MS, wasmtime.release) : this.dispatch(task, () => ({ ...task, artifact }), options.deadlineMs);
    return sent as Promise<Outcome<WasmHttpResponse>>;
  }

  /** Runs a WASI preview 1 command once on a fresh instance (a command's `_start` runs once), on the engine that compiled it. */
  runWasi(compiled: CompiledModule, options: WasiCallOptions): Promise<Outcome<WasiValue>> {
    const submittedAt = now();
    const inline = this.inline && !this.closed ? tryInline(this.inline, compiled, options, submittedAt) : null;
    if (inline && 'outcome' in inline) return Promise.resolve(inline.outcome) as Promise<Outcome<WasiValue>>;
    const engine = engineNamed(compiled.engine);
    const { args, env, stdin, dataDir, preopenAs, fuel } = options;
    const base = { op: 'wasi' as const, ...this.taskBase(compiled.hash, options.instanceKey, submittedAt), capPages: compiled.capPages };
    const call = engine.wasiCall(compiled, { ...base, args, env, stdin, dataDir, preopenAs, ...(fuel !== undefined && { fuel }) }, options.deadlineMs);
    if ('error' in call) return Promise.resolve(failure('error', call.error)) as Promise<Outcome<WasiValue>>;
    this.enginesUsed.add(engine);
    const ran = this.dispatch(call.task, call.withCode, options.deadlineMs, call.backstopMs, call.done) as Promise<Outcome<WasiValue>>;
    return inline ? ran.then((outcome) => ({ ...outcome, timing: outcome.timing && { ...outcome.timing, inline: 'moved' } })) : ran;
  }

  /**
   * Forgets every instance kept for `instanceKey` (a hibernated or stopped tenant): no later call reuses one,
   * and workers free them as soon as they are idle. What was made ahead after its last call goes too, unless the
   * tenant only hibernates (`keepPrepared`, protocol.ts).
   */
  dropInstances(instanceKey: string, { keepPrepared = false } = {}): void {
    const generation = (this.generations.get(instanceKey) ?? 0) + 1;
    this.generations.set(instanceKey, generation);
    // What the main thread made ahead after this key's last inline call (wasmtime/inline.ts).
    if (this.inline && !keepPrepared) dropPreparedFor(instanceKey);
    if (!this.closed) this.channel.postMessage({ drop: instanceKey, generation, keepPrepared } satisfies PoolBroadcast);
  }

  /** Instances kept in workers now, for one key or (without one) all. */
  liveInstances(filter?: (key: string) => boolean): number {
    let total = 0;
    for (const byKey of this.live.values()) {
      for (const [key, count] of byKey) if (!filter || filter(key)) total += count;
    }
    return total;
  }

  /** Calls waiting for a thread (a call holding one whose worker is being replaced counts as running, as it did under piscina). */
  get queueSize(): number {
    return this.share.waiting;
  }

  /** Workers serving calls now (one being started or replaced is not). */
  get readyWorkers(): number {
    return this.channels.ready;
  }

  /** Calls given a place in a worker now: running, or waiting in a worker's second slot (channels.ts). */
  get running(): number {
    return this.share.running;
  }

  /**
   * Refuses new calls, lets running wasmtime calls end (each guest stops at its own deadline), then ends the
   * workers. Terminating a worker inside a wasmtime call is not safe: V8's termination
   * can land in one of our host functions, koffi then hands wasmtime an undefined return value as its error
   * pointer, and wasmtime frees it (`free(): invalid pointer`, the whole process aborts: seen when a server
   * stopped while a wasm plugin was still handling its `on-event` calls).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.channel.close();
    if (this.inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_DRAIN_MS)));
      await Promise.race([Promise.allSettled([...this.inFlight]), limit]);
      clearTimeout(timer);
    }
    this.channels.close();
    // Never while a worker still loads its code: on Node 24 that aborts the process (channels.ts, `started`).
    await this.channels.started(STARTING_DRAIN_MS);
    await this.piscina.destroy();
    closeSync(this.devNull);
  }

  private taskBase(hash: string, instanceKey: string, submittedAt = now()) {
    return { hash, instanceKey, generation: this.generations.get(instanceKey) ?? 0, submittedAt };
  }

  /**
   * `backstopMs`: the worker enforces the deadline itself (wasmtime); it is terminated only this much later.
   * `done`: called once no worker runs the call any more (for wasmtime, after the answer when it came at the deadline).
   */
  private dispatch(task: WorkerTask, withCode: () => WorkerTask, deadlineMs: number, backstopMs = 0, done: () => void = () => undefined): Promise<WasmCallOutcome> {
    if (this.closed) {
      done();
      return Promise.resolve(failure('error', 'the wasm pool is closed'));
    }
    // Settles when no worker runs the call any more, which for wasmtime may be after its answer (at the deadline).
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    let over = false;
    const end = (): void => {
      if (over) return;
      over = true;
      done();
      finish();
    };
    const call = this.run(task, withCode, deadlineMs, backstopMs, end);
    call.catch(end);
    // Only wasmtime calls (a backstop) are waited for at close: terminating a worker in a V8 call is safe.
    if (backstopMs > 0) {
      this.inFlight.add(finished);
      void finished.then(() => this.inFlight.delete(finished));
    }
    return call;
  }

  private async run(task: WorkerTask, withCode: () => WorkerTask, deadlineMs: number, backstopMs: number, done: () => void): Promise<WasmCallOutcome> {
    const submittedAt = now();
    let lane = this.share.enter(task.instanceKey);
    if (lane === null && this.share.waiting >= this.maxQueue) {
      done();
      return failure('overloaded', `the wasm pool queue is full (${this.share.waiting} waiting)`);
    }
    const deadline = new Deadline(deadlineMs + backstopMs);
    if (lane === null) {
      // Waiting for a thread ends at the deadline itself, backstop or not.
      const waitDeadline = backstopMs > 0 ? new Deadline(deadlineMs) : deadline;
      lane = await this.share.wait(task.instanceKey, waitDeadline);
      if (waitDeadline !== deadline) waitDeadline.clear();
      if (lane === null) {
        deadline.clear();
        done();
        return this.waitedOut(deadlineMs);
      }
    }
    let handedOver = false;
    const ticket: CallTicket | undefined = backstopMs > 0 ? {} : undefined; // for takeBack at the early answer
    try {
      const running = this.channels.run(task, deadline, ticket);
      if (backstopMs > 0) {
        // The guest traps at its deadline by epoch, but only once its thread gets a core again (tens of ms on a
        // loaded host): the request is answered at the deadline from here, and the lane is held until the
        // worker is free (the worker lives on, as before; only the guest's own log lines of this call are lost,
        // as on V8 where the worker is terminated).
        const early = await settledBy(running, deadlineMs - (now() - task.submittedAt));
        if (early === DEADLINE) {
          if (this.channels.takeBack(ticket!)) return this.waitedOut(deadlineMs);
          handedOver = true;
          this.share.strike(task.instanceKey);
          this.releaseWhenDone(running, task, lane, deadline, done);
          return failure('timeout', `deadline of ${deadlineMs}ms passed: the guest is interrupted (wasmtime epoch), its worker lives on`);
        }
      }
      let result = await running;
      // The worker that took it lacks the code: send it again with the code (another worker may take it).
      if (result.miss) result = await this.channels.run({ ...withCode(), submittedAt: now() }, deadline);
      if (result.miss) return failure('error', 'worker did not take the code it was sent');
      this.track(result.threadId, task.instanceKey, result.live, result.evicted);
      const timing = { queueMs: result.queueMs, runMs: result.runMs, instantiated: result.instantiated, ...(result.fuelUsed !== undefined && { fuelUsed: result.fuelUsed }) };
      const metrics = result.metrics && result.metrics.length > 0 ? { metrics: result.metrics } : {};
      // A guest interrupted at its deadline (wasmtime) costs its key the same share as a replaced worker.
      if (!result.ok && result.kind === 'timeout') this.share.strike(task.instanceKey);
      if (!result.ok) return { ok: false, kind: result.kind, message: result.message, logs: result.logs, ...metrics, timing };
      return { ok: true, value: result.value, logs: result.logs, ...metrics, timing };
    } catch (error) {
      // Its deadline passed before a worker started it: no worker is touched, no strike (as in a lane).
      if (error instanceof NotStartedError) return this.waitedOut(deadlineMs);
      const elapsed = now() - submittedAt;
      if (deadline.aborted) this.share.strike(task.instanceKey);
      if (deadline.aborted && task.dataDir !== null) {
        // Its worker is terminated with the request's descriptors open: a WASI guest's (uvwasi closes them only
        // on fd_close), or a component's file import cut between its open and its close (no finally runs).
        const dataDir = task.dataDir;
        this.share.hold(lane, () => closeDescriptorsUnder(dataDir));
      }
      if (deadline.aborted) return failure('timeout', `deadline of ${deadlineMs}ms passed (after ${Math.round(elapsed)}ms; a worker running it is replaced)`);
      const message = error instanceof Error ? error.message : String(error);
      if (/queue is at limit/i.test(message)) return failure('overloaded', `the wasm pool queue is full (${this.channels.waiting} waiting)`);
      const code = (error as { code?: string }).code;
      if (code === 'ERR_WORKER_OUT_OF_MEMORY') return failure('out-of-memory', `a worker ran out of JS heap: ${message}`);
      return failure('error', message);
    } finally {
      if (!handedOver) {
        deadline.clear();
        this.share.leave(lane);
        done();
      }
    }
  }

  /** The answer to a call whose deadline passed before any worker started it. */
  private waitedOut(deadlineMs: number): WasmCallOutcome {
    return failure('timeout', `deadline of ${deadlineMs}ms passed while waiting for a thread (${this.maxThreadsPerKey} of ${this.threads} may run for one instance at once)`);
  }

  /** A call answered at its deadline while its guest still ran: its lane and bookkeeping once the worker is done. */
  private releaseWhenDone(running: Promise<WorkerResult>, task: WorkerTask, lane: Lane, deadline: Deadline, callDone: () => void): void {
    void running.then(
      (result) => {
        if (!result.miss) this.track(result.threadId, task.instanceKey, result.live, result.evicted);
      },
      () => {
        // Terminated at the backstop (a guest blocked in a host call): its descriptors, as in run().
        if (deadline.aborted && task.dataDir !== null) {
          const dataDir = task.dataDir;
          this.share.hold(lane, () => closeDescriptorsUnder(dataDir));
        }
      },
    ).finally(() => {
      deadline.clear();
      this.share.leave(lane);
      // close() waits for this: terminating a worker inside a wasmtime call is not safe (see close()).
      callDone();
    });
  }

  private track(threadId: number, key: string, live: number, evicted: string[]): void {
    let byKey = this.live.get(threadId);
    if (!byKey) this.live.set(threadId, (byKey = new Map()));
    for (const gone of evicted) byKey.delete(gone);
    if (live > 0) byKey.set(key, live);
    else byKey.delete(key);
  }
}

/** With N threads one key may hold N-1 (at least 1) while others wait: a runaway tenant leaves one to them. */
export const defaultShare = (threads: number): number => Math.max(1, threads - 1);

/** Workers key components by hash and cap: one component served with two memory caps is two sets of modules. */
const componentKey = (artifact: ComponentArtifact): string => `${artifact.hash}-p${artifact.memoryPages}`;

function failure(kind: WasmFailureKind, message: string): WasmCallOutcome & { ok: false } {
  return { ok: false, kind, message, logs: [] };
}
