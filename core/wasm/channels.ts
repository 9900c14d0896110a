/**
 * Where the pool's calls go (the hop itself, and why two slots per worker: channel.ts). A call takes an idle worker
 * if there is one (the warmest), else waits in the second slot of the busy worker whose call started last, if it
 * may (`mayWaitInSlot`: in the buffer, either engine), else waits here (bounded). A call waiting behind one that has
 * run for STALE_MS moves to a free worker (checked on every answer, and by a timer while calls wait behind others), so a
 * runaway never holds up a call queued behind it; at its deadline a call not started yet is taken back without
 * touching the worker; and the calls a dead worker never started go to the others.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Piscina } from 'piscina';
import { mayWaitInSlot } from './channel-wire.ts';
import { Call, Channel, NotStartedError, hopCounts, type CallSignal, type ChannelOwner } from './channel.ts';
import type { WorkerResult, WorkerTask } from './protocol.ts';

export { NotStartedError, hopCounts, type CallSignal } from './channel.ts';

/** How long a call may run before the call waiting behind it moves to a free worker (the pool's `staleMs`). */
export const STALE_MS = 2;

/** Filled by `run` with the call, for `takeBack`. */
export interface CallTicket {
  call?: Call;
}

/** One channel per worker thread, replaced with it; calls wait (bounded) while no slot takes them. */
export class Channels implements ChannelOwner {
  /** Channels with no call, the warmest last. */
  private readonly idle: Channel[] = [];
  private readonly all = new Set<Channel>();
  private readonly waiters: Call[] = [];
  private closed = false;
  private staleCheck: NodeJS.Timeout | null = null;

  constructor(
    private readonly piscina: Piscina,
    threads: number,
    private readonly maxWaiting: number,
    private readonly staleMs = STALE_MS,
  ) {
    for (let i = 0; i < threads; i++) this.open();
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Resolves once no worker is still starting (its code may be loading), or after `limitMs`. A worker terminated
   * inside require(esm) aborts the whole process on Node 24 (an assertion in ModuleWrap::CreateRequiredModuleFacade,
   * seen in CI when a test closed a server whose workers had not started yet): after close(), a starting worker
   * loads, sees the close, ends its loop, and only then may the pool end it.
   */
  async started(limitMs: number): Promise<void> {
    const starting = (): boolean => [...this.all].some((channel) => !channel.ready && !channel.dead);
    for (const until = Date.now() + limitMs; starting() && Date.now() < until; ) await sleep(10);
  }

  /** Workers whose serve loop runs (a replacement is not counted until it serves). */
  get ready(): number {
    let count = 0;
    for (const channel of this.all) if (channel.ready && !channel.dead) count++;
    return count;
  }

  /**
   * piscina.run's contract for the pool: the worker's result, or a rejection: NotStartedError when `signal` fired
   * before any worker started the call, AbortError when it fired while one ran it (that worker is terminated).
   */
  run(task: WorkerTask, signal: CallSignal, ticket?: CallTicket): Promise<WorkerResult> {
    if (signal.aborted) return Promise.reject(new NotStartedError());
    return new Promise<WorkerResult>((resolve, reject) => {
      const call: Call = new Call(task, signal, resolve, reject, () => this.abort(call));
      if (ticket) ticket.call = call;
      signal.once('abort', call.onAbort);
      this.place(call);
    });
  }

  /**
   * Takes back the call of `ticket` if no worker has started it (it is waiting here, or in a slot); its promise
   * then rejects with NotStartedError. False when a worker has it, or it is over.
   */
  takeBack(ticket: CallTicket): boolean {
    const call = ticket.call;
    if (!call) return false;
    if (!this.unqueue(call)) return false;
    call.signal.off('abort', call.onAbort);
    call.reject(new NotStartedError());
    return true;
  }

  close(): void {
    this.closed = true;
    if (this.staleCheck) clearTimeout(this.staleCheck);
    for (const channel of this.all) channel.close();
    for (const call of this.waiters.splice(0)) {
      call.signal.off('abort', call.onAbort);
      call.reject(new Error('the wasm pool is closed'));
    }
  }

  /** A channel's worker is serving (`fresh`) or has answered a call: it takes what waits. */
  freed(channel: Channel, fresh: boolean): void {
    if (this.closed || channel.dead) return;
    if (channel.calls.length === 0) {
      const next = this.waiters.shift() ?? this.takeStale(channel);
      if (!next) {
        // A fresh worker goes behind the idle ones that have served (calls take the last): their code and kept
        // instances are warm, and a cold one would pay the instantiation inside a call's deadline.
        if (fresh) this.idle.unshift(channel);
        else this.idle.push(channel);
        return;
      }
      channel.send(next);
    }
    this.fillSecondSlot(channel);
  }

  /** A worker died: its channel goes (piscina starts a replacement), and the calls it never started go elsewhere. */
  lost(channel: Channel, unstarted: Call[]): void {
    this.all.delete(channel);
    const at = this.idle.indexOf(channel);
    if (at !== -1) this.idle.splice(at, 1);
    if (!this.closed) this.open();
    hopCounts.requeued += unstarted.length;
    for (const call of unstarted.reverse()) {
      if (this.closed) call.reject(new Error('the wasm pool is closed'));
      else this.waiters.unshift(call);
    }
    this.drainToIdle();
  }

  private place(call: Call): void {
    const idle = this.idle.pop();
    if (idle) {
      idle.send(call);
      return;
    }
    // Only when nothing waits here: a call that may not wait in a slot (a plugin's, one on the port) is never
    // passed by those that may, which would keep every worker busy and it waiting out its deadline.
    if (this.waiters.length === 0 && mayWaitInSlot(call.task)) {
      const behind = this.freshestWithRoom();
      if (behind && behind.send(call)) {
        this.armStaleCheck();
        return;
      }
    }
    if (this.closed) call.reject(new Error('the wasm pool is closed'));
    else if (this.waiters.length >= this.maxWaiting) call.reject(new Error('Task queue is at limit'));
    else this.waiters.push(call);
  }

  /** The deadline fired: a call not started yet is taken back, one running ends with its worker. */
  private abort(call: Call): void {
    if (this.unqueue(call)) call.reject(new NotStartedError());
    else if (call.channel) call.channel.stop.abort();
  }

  /** Removes a call no worker has started from where it waits; false when a worker has it (or it is over). */
  private unqueue(call: Call): boolean {
    const channel = call.channel;
    if (channel === null) {
      const at = this.waiters.indexOf(call);
      if (at === -1) return false;
      this.waiters.splice(at, 1);
      return true;
    }
    if (!channel.withdraw(call)) return false;
    hopCounts.withdrawn++;
    if (channel.calls.length === 0) this.freed(channel, false);
    return true;
  }

  /** The first waiting call, behind `channel`'s one call, if it may wait in a slot (the others keep their turn). */
  private fillSecondSlot(channel: Channel): void {
    const call = this.waiters[0];
    if (channel.calls.length !== 1 || call === undefined || !mayWaitInSlot(call.task)) return;
    this.waiters.shift();
    if (channel.send(call)) this.armStaleCheck();
    else this.waiters.unshift(call);
  }

  /** The busy channel whose running call started last, with its second slot free and that call not stale. */
  private freshestWithRoom(): Channel | null {
    const now = performance.now();
    let best: Channel | null = null;
    for (const channel of this.all) {
      if (channel.dead || !channel.ready || channel.calls.length !== 1) continue;
      if (now - channel.frontSince >= this.staleMs) continue;
      if (best === null || channel.frontSince > best.frontSince) best = channel;
    }
    return best;
  }

  /** A call waiting behind one that has run for `staleMs` or more, taken back for `into` (null: none). */
  private takeStale(into: Channel): Call | null {
    const now = performance.now();
    for (const channel of this.all) {
      if (channel === into || channel.calls.length < 2 || now - channel.frontSince < this.staleMs) continue;
      const waiting = channel.calls[channel.calls.length - 1]!;
      if (channel.withdraw(waiting)) {
        hopCounts.moved++;
        return waiting;
      }
    }
    return null;
  }

  /** While calls wait behind others, a timer looks every `staleMs` for one stuck behind a long call. */
  private armStaleCheck(): void {
    if (this.staleCheck !== null || this.closed) return;
    this.staleCheck = setTimeout(() => {
      this.staleCheck = null;
      if (![...this.all].some((channel) => channel.calls.length > 1)) return;
      this.rebalance();
      this.armStaleCheck();
    }, this.staleMs);
    this.staleCheck.unref();
  }

  /** Calls stuck behind stale ones go to idle workers, or behind a fresh call elsewhere. */
  private rebalance(): void {
    for (;;) {
      const idle = this.idle[this.idle.length - 1];
      const into = idle ?? this.freshestWithRoom();
      if (!into) return;
      const call = this.takeStale(into);
      if (!call) return;
      if (idle) this.idle.pop();
      if (!into.send(call)) {
        // It may not wait behind `into`'s call (a wasmtime call on a replacement worker that has not had the
        // engine's state yet, which goes on the port): it waits here, first.
        this.waiters.unshift(call);
        return;
      }
    }
  }

  private drainToIdle(): void {
    while (this.waiters.length > 0 && this.idle.length > 0) this.freed(this.idle.pop()!, false);
  }

  private open(): void {
    this.all.add(new Channel(this.piscina, this));
  }
}
