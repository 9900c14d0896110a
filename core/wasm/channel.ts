/**
 * One pool worker's end of the hop (channels.ts places the calls): its shared buffer with two slots, its port, and
 * the calls sent to it in the order it takes them.
 *
 * The pool's hop to its workers without a piscina task per call. Each worker runs one resident `serve` task
 * (serve-loop.ts) for its life, so piscina schedules nothing else there and keeps doing what it does well: starting
 * the workers, terminating one (a call's deadline aborts the resident task) and starting its replacement. A call
 * goes to a worker through a SharedArrayBuffer of that worker: the task as JSON and the body as bytes, woken by
 * Atomics.notify, answered the same way (main thread: Atomics.waitAsync). piscina's task message and bookkeeping
 * cost ~30-45 µs of main-thread CPU and ~100 µs of wall time per call, the buffer ~10 µs and ~30 µs
 * (bench/wasm-hop.ts). What does not fit, or is not JSON (compiled code on a miss, a plugin's call), goes on the
 * worker's MessagePort with the same wake-up, read with receiveMessageOnPort on both sides.
 *
 * A worker's buffer has two slots: while one call runs, the next may wait in the other (pipelining), so the worker
 * goes from one to the next without sleeping and the main thread's notify wakes no one. A call in a slot that the
 * worker has not taken can be withdrawn (whoever compare-exchanges its request cell first has it); when the worker
 * dies, what it answered is still settled and what it never took is handed back to be placed elsewhere.
 */
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import {
  READY,
  REQUEST,
  REQUEST_BODY,
  REQUEST_JSON,
  RESPONSE,
  RESULT_BODY,
  RESULT_JSON,
  SLOTS,
  Signal,
  channelBuffer,
  decodeResult,
  encodeTask,
  sharedOf,
  slotCell,
  slotsOf,
  waitAsync,
  type ServeTask,
} from './channel-wire.ts';
import type { WorkerResult, WorkerTask } from './protocol.ts';

/** What a call's deadline looks like to the channels: piscina's abort-signal shape (deadline.ts). */
export interface CallSignal {
  readonly aborted: boolean;
  once(event: 'abort', listener: () => void): void;
  off(event: 'abort', listener: () => void): void;
}

/** Calls and answers by the way they went, over the process's pools (tests check which way a call takes). */
export const hopCounts = { requestsInBuffer: 0, requestsOnPort: 0, answersInBuffer: 0, answersOnPort: 0, queuedBehind: 0, moved: 0, withdrawn: 0, requeued: 0 };

export class AbortedError extends Error {
  constructor() {
    super('The task has been aborted');
    this.name = 'AbortError';
  }
}

/** The call ended without ever starting: its deadline passed while it waited (for a worker, or in a slot). */
export class NotStartedError extends Error {
  constructor() {
    super('the deadline passed before a worker started the call');
    this.name = 'NotStartedError';
  }
}

/** Who places calls on the channels: told when a channel can take calls, and when its worker is gone. */
export interface ChannelOwner {
  freed(channel: Channel, fresh: boolean): void;
  lost(channel: Channel, unstarted: Call[]): void;
}

/** One call on its way: where it is now (a channel's slot, or waiting for one) and how it ends. */
export class Call {
  channel: Channel | null = null;
  slot = 0;
  onPort = false;
  constructor(
    readonly task: WorkerTask,
    readonly signal: CallSignal,
    readonly resolve: (result: WorkerResult) => void,
    readonly reject: (error: unknown) => void,
    readonly onAbort: () => void,
  ) {}
}

export class Channel {
  readonly cells: Int32Array;
  private readonly bytes: Uint8Array[];
  readonly port: MessagePort;
  /** Aborting it makes piscina terminate this worker. */
  readonly stop = new Signal();
  dead = false;
  ready = false;
  /** Whether the worker has had the wasmtime engine's shared state (its SharedArrayBuffer travels once). */
  sharedSent = false;
  /** Calls sent and not answered, in the order the worker takes them (at most SLOTS). */
  readonly calls: Call[] = [];
  /** When the first of `calls` became the one running (or about to), performance.now(). */
  frontSince = 0;
  private nextSlot = 0;
  private awaiting = false;

  constructor(
    piscina: Piscina,
    private readonly owner: ChannelOwner,
  ) {
    const buffer = channelBuffer();
    const { cells, bytes } = slotsOf(buffer);
    this.cells = cells;
    this.bytes = bytes;
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
      if (this.dead) return;
      this.ready = true;
      owner.freed(this, true);
    };
    if (ready.async) void (ready.value as Promise<unknown>).then(done);
    else done();
  }

  /**
   * Sends `call` to the worker: first in line when the channel is idle, else to wait in the other slot (only a call
   * that may, in the buffer). False when it cannot wait there (it does not fit): nothing was sent.
   */
  send(call: Call): boolean {
    const { task } = call;
    const slot = this.nextSlot;
    const waits = this.calls.length > 0;
    const shared = sharedOf(task);
    const wire = shared && !this.sharedSent ? null : encodeTask(task, this.bytes[slot]!);
    if (waits && !wire) return false;
    Atomics.store(this.cells, slotCell(slot, RESPONSE), 0);
    if (wire) {
      hopCounts.requestsInBuffer++;
      this.cells[slotCell(slot, REQUEST_JSON)] = wire.json;
      this.cells[slotCell(slot, REQUEST_BODY)] = wire.body;
      Atomics.store(this.cells, slotCell(slot, REQUEST), 1);
    } else {
      hopCounts.requestsOnPort++;
      if (shared) this.sharedSent = true;
      this.port.postMessage(task);
      Atomics.store(this.cells, slotCell(slot, REQUEST), 3);
    }
    Atomics.notify(this.cells, slotCell(slot, REQUEST));
    if (waits) hopCounts.queuedBehind++;
    else this.frontSince = performance.now();
    call.channel = this;
    call.slot = slot;
    call.onPort = !wire;
    this.nextSlot = (slot + 1) % SLOTS;
    this.calls.push(call);
    this.await();
    return true;
  }

  /** Takes back a call the worker has not started (only one in the buffer: a port message cannot be unsent). */
  withdraw(call: Call): boolean {
    if (this.dead || call.onPort || call !== this.calls[this.calls.length - 1]) return false;
    if (Atomics.compareExchange(this.cells, slotCell(call.slot, REQUEST), 1, 0) !== 1) return false;
    this.calls.pop();
    this.nextSlot = call.slot;
    call.channel = null;
    return true;
  }

  private await(): void {
    if (this.awaiting || this.calls.length === 0) return;
    const wait = waitAsync(this.cells, slotCell(this.calls[0]!.slot, RESPONSE), 0);
    this.awaiting = true;
    const answered = (): void => {
      this.awaiting = false;
      this.answered();
    };
    // Never at once: send() calls this, and an answer settled inside it would place the next call mid-send.
    if (wait.async) void (wait.value as Promise<unknown>).then(answered);
    else queueMicrotask(answered);
  }

  /** Settles the answered calls in order, then waits for the next answer. */
  private answered(): void {
    while (!this.dead && this.calls.length > 0) {
      const call = this.calls[0]!;
      if (Atomics.load(this.cells, slotCell(call.slot, RESPONSE)) === 0) break;
      this.calls.shift();
      this.frontSince = performance.now();
      this.settle(call);
      this.owner.freed(this, false);
    }
    if (!this.dead) this.await();
  }

  private settle(call: Call): void {
    const flag = Atomics.load(this.cells, slotCell(call.slot, RESPONSE));
    call.channel = null;
    call.signal.off('abort', call.onAbort);
    if (flag === 1) {
      hopCounts.answersInBuffer++;
      call.resolve(decodeResult(this.bytes[call.slot]!, this.cells[slotCell(call.slot, RESULT_JSON)]!, this.cells[slotCell(call.slot, RESULT_BODY)]!));
      return;
    }
    hopCounts.answersOnPort++;
    const message = receiveMessageOnPort(this.port)?.message as WorkerResult | { thrown: string } | undefined;
    if (!message) call.reject(new Error('the worker answered on its port but no message was there'));
    else if ('thrown' in message) call.reject(new Error(message.thrown));
    else call.resolve(message);
  }

  /** Asks the serve loop to end (close()): in each empty slot, so the loop sees it wherever it waits. */
  close(): void {
    for (let slot = 0; slot < SLOTS; slot++) {
      Atomics.compareExchange(this.cells, slotCell(slot, REQUEST), 0, 2);
      Atomics.notify(this.cells, slotCell(slot, REQUEST));
    }
  }

  private gone(error: unknown): void {
    if (this.dead) return;
    this.dead = true;
    // What was answered before the worker went is still good; a call it never took goes to another worker.
    const calls = this.calls.splice(0);
    const requeue: Call[] = [];
    for (const call of calls) {
      if (Atomics.load(this.cells, slotCell(call.slot, RESPONSE)) !== 0) {
        this.settle(call);
      } else if (!call.onPort && Atomics.load(this.cells, slotCell(call.slot, REQUEST)) === 1) {
        call.channel = null;
        requeue.push(call);
      } else {
        call.channel = null;
        call.signal.off('abort', call.onAbort);
        call.reject(this.stop.aborted ? new AbortedError() : error);
      }
    }
    this.port.close();
    // Pending waits on a dead worker's cells end (each finds the channel dead and does nothing).
    Atomics.notify(this.cells, READY);
    for (let slot = 0; slot < SLOTS; slot++) Atomics.notify(this.cells, slotCell(slot, RESPONSE));
    this.owner.lost(this, requeue);
  }
}

