/**
 * The pool's hop to its workers without a piscina task per call. Each worker runs one resident `serve` task
 * (serve-loop.ts) for its life, so piscina schedules nothing else there and keeps doing what it does well: starting
 * the workers, terminating one (a call's deadline aborts the resident task) and starting its replacement. A call
 * goes to an idle worker through a SharedArrayBuffer of that worker: the task as JSON and the body as bytes, woken
 * by Atomics.notify, answered the same way (main thread: Atomics.waitAsync). piscina's task message and
 * bookkeeping cost ~30-45 µs of main-thread CPU and ~100 µs of wall time per call, the buffer ~10 µs and ~30 µs
 * (bench/wasm-hop.ts). Handler calls of components travel the same way (JSON and the bodies as bytes). What does
 * not fit, or is not JSON (compiled code on a miss, a plugin's call), goes on the worker's MessagePort with the same
 * wake-up, read with receiveMessageOnPort on both sides.
 */
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import { CHANNEL_BYTES, HEAD, READY, REQUEST, RESPONSE, Signal, decodeResult, encodeTask, sharedOf, waitAsync, type ServeTask } from './channel-wire.ts';
import type { WorkerResult, WorkerTask } from './protocol.ts';

/** What a call's deadline looks like to the channels: piscina's abort-signal shape (deadline.ts). */
export interface CallSignal {
  readonly aborted: boolean;
  once(event: 'abort', listener: () => void): void;
  off(event: 'abort', listener: () => void): void;
}

/** Calls and answers by the way they went, over the process's pools (tests check which way a call takes). */
export const hopCounts = { requestsInBuffer: 0, requestsOnPort: 0, answersInBuffer: 0, answersOnPort: 0 };

class AbortedError extends Error {
  constructor() {
    super('The task has been aborted');
    this.name = 'AbortError';
  }
}

class Channel {
  readonly cells: Int32Array;
  readonly bytes: Uint8Array;
  readonly port: MessagePort;
  /** Aborting it makes piscina terminate this worker. */
  readonly stop = new Signal();
  dead = false;
  /** Whether the worker has had the wasmtime engine's shared state (its SharedArrayBuffer travels once). */
  sharedSent = false;
  private current: { resolve: (result: WorkerResult) => void; reject: (error: unknown) => void } | null = null;

  constructor(
    piscina: Piscina,
    private readonly onGone: (channel: Channel) => void,
    onReady: (channel: Channel) => void,
  ) {
    const buffer = new SharedArrayBuffer(HEAD + CHANNEL_BYTES);
    this.cells = new Int32Array(buffer, 0, HEAD / 4);
    this.bytes = new Uint8Array(buffer, HEAD);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const task: ServeTask = { op: 'serve', buffer, port: port2 };
    piscina.run(task, { signal: this.stop, transferList: [port2] } as never).then(
      () => this.gone(new Error('the worker stopped serving')),
      (error: unknown) => this.gone(error),
    );
    // Idle only once its worker serves: a call must not wait for a replacement worker to start while another is free.
    const ready = waitAsync(this.cells, READY, 0);
    const done = (): void => {
      if (!this.dead) onReady(this);
    };
    if (ready.async) void (ready.value as Promise<unknown>).then(done);
    else done();
  }

  /** Sends one task; settles with the worker's result, or rejects when the worker dies first. */
  call(task: WorkerTask): Promise<WorkerResult> {
    return new Promise<WorkerResult>((resolve, reject) => {
      this.current = { resolve, reject };
      const shared = sharedOf(task);
      const wire = shared && !this.sharedSent ? null : encodeTask(task, this.bytes);
      Atomics.store(this.cells, RESPONSE, 0);
      if (wire) {
        hopCounts.requestsInBuffer++;
        this.cells[2] = wire.json;
        this.cells[3] = wire.body;
        Atomics.store(this.cells, REQUEST, 1);
      } else {
        hopCounts.requestsOnPort++;
        if (shared) this.sharedSent = true;
        this.port.postMessage(task);
        Atomics.store(this.cells, REQUEST, 3);
      }
      Atomics.notify(this.cells, REQUEST);
      this.await();
    });
  }

  private await(): void {
    const wait = waitAsync(this.cells, RESPONSE, 0);
    if (wait.async) void (wait.value as Promise<unknown>).then(() => this.answered());
    else this.answered();
  }

  private answered(): void {
    const current = this.current;
    if (!current || this.dead) return;
    const flag = Atomics.load(this.cells, RESPONSE);
    if (flag === 0) return this.await();
    this.current = null;
    if (flag === 1) {
      hopCounts.answersInBuffer++;
      current.resolve(decodeResult(this.bytes, this.cells[4]!, this.cells[5]!));
    } else {
      hopCounts.answersOnPort++;
      const message = receiveMessageOnPort(this.port)?.message as WorkerResult | { thrown: string } | undefined;
      if (!message) current.reject(new Error('the worker answered on its port but no message was there'));
      else if ('thrown' in message) current.reject(new Error(message.thrown));
      else current.resolve(message);
    }
  }

  /** Asks the serve loop to end (close()). */
  close(): void {
    Atomics.store(this.cells, REQUEST, 2);
    Atomics.notify(this.cells, REQUEST);
  }

  private gone(error: unknown): void {
    if (this.dead) return;
    this.dead = true;
    this.port.close();
    // Pending waits on a dead worker's cells end (each finds the channel dead and does nothing).
    Atomics.notify(this.cells, READY);
    Atomics.notify(this.cells, RESPONSE);
    const current = this.current;
    this.current = null;
    current?.reject(this.stop.aborted ? new AbortedError() : error);
    this.onGone(this);
  }
}

/** One channel per worker thread, replaced with it; calls wait (bounded) while none is idle. */
export class Channels {
  private readonly idle: Channel[] = [];
  private readonly all = new Set<Channel>();
  private readonly waiters: { take: (channel: Channel) => void; signal: CallSignal; expire: () => void }[] = [];
  private closed = false;

  constructor(
    private readonly piscina: Piscina,
    threads: number,
    private readonly maxWaiting: number,
  ) {
    for (let i = 0; i < threads; i++) this.open();
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** piscina.run's contract for the pool: the worker's result, or a rejection (AbortError when `signal` fired). */
  async run(task: WorkerTask, signal: CallSignal): Promise<WorkerResult> {
    if (signal.aborted) throw new AbortedError();
    const channel = this.idle.pop() ?? (await this.wait(signal));
    if (signal.aborted) {
      this.release(channel);
      throw new AbortedError();
    }
    const abort = (): void => channel.stop.abort();
    signal.once('abort', abort);
    try {
      return await channel.call(task);
    } finally {
      signal.off('abort', abort);
      if (!channel.dead) this.release(channel);
    }
  }

  close(): void {
    this.closed = true;
    for (const channel of this.all) channel.close();
    for (const waiter of this.waiters.splice(0)) waiter.expire();
  }

  private wait(signal: CallSignal): Promise<Channel> {
    if (this.closed) return Promise.reject(new Error('the wasm pool is closed'));
    if (this.waiters.length >= this.maxWaiting) return Promise.reject(new Error('Task queue is at limit'));
    return new Promise<Channel>((resolve, reject) => {
      const expire = (): void => {
        const at = this.waiters.indexOf(waiter);
        if (at !== -1) this.waiters.splice(at, 1);
        reject(this.closed ? new Error('the wasm pool is closed') : new AbortedError());
      };
      const waiter = {
        signal,
        expire,
        take: (channel: Channel) => {
          signal.off('abort', expire);
          resolve(channel);
        },
      };
      signal.once('abort', expire);
      this.waiters.push(waiter);
    });
  }

  private release(channel: Channel): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter.take(channel);
    else this.idle.push(channel);
  }

  private open(): void {
    const channel = new Channel(
      this.piscina,
      (gone) => {
        this.all.delete(gone);
        const at = this.idle.indexOf(gone);
        if (at !== -1) this.idle.splice(at, 1);
        // piscina has started (or is starting) a replacement worker: its resident task lands there.
        if (!this.closed) this.open();
      },
      (ready) => {
        if (this.closed) return;
        // A fresh worker goes behind the idle ones that have served (calls take the last): their code and kept
        // instances are warm, and a cold one would pay the instantiation inside a call's deadline.
        const waiter = this.waiters.shift();
        if (waiter) waiter.take(ready);
        else this.idle.unshift(ready);
      },
    );
    this.all.add(channel);
  }
}
