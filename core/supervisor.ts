import { statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { backoffDelay } from './backoff.ts';
import { ErrorCodes, TenementError, errorFields, errorMessage } from './errors.ts';
import { statesOtherThan } from './lifecycle.ts';
import type { Instance } from './instance.ts';
import type { Kernel } from './kernel.ts';
import type { ExitInfo, UpstreamAddress } from './types.ts';
import { pinSocket, type SocketPin } from './socket-pin.ts';
import { waitReady } from './readiness.ts';
import { buildSpawnSpec } from './spawn-spec.ts';
import { instanceSocketPath } from './socket-path.ts';

function describeExit(exit: ExitInfo): string {
  return exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

/**
 * Starts, stops and restarts instances, and applies the restart policy. It is the only writer of instance
 * state (through the registry), so every transition is checked and emitted in one place.
 */
export class Supervisor {
  private readonly pendingStarts = new Map<Instance, Promise<void>>();
  private readonly restartTimers = new Map<Instance, NodeJS.Timeout>();
  private closing = false;
  /** Instances being removed: never started again, whatever request is still waiting for them. */
  private readonly removed = new WeakSet<Instance>();
  /** Pinned Unix sockets of instances with `listen: 'socket'` (see pinSocket). */
  private readonly pins = new Map<Instance, SocketPin>();
  /** Failures (a failed start, a crash, failed health checks) per instance, each counted by afterFailure. */
  private readonly failureCounts = new WeakMap<Instance, number>();

  constructor(private readonly kernel: Kernel) {}

  /**
   * Brings an instance up and resolves once it is ready (or its start failed, in which case the restart policy
   * has already been applied). Concurrent calls share one spawn.
   */
  start(instance: Instance, reason = 'start'): Promise<void> {
    const pending = this.pendingStarts.get(instance);
    if (pending) return pending;
    if (instance.state === 'running' || instance.state === 'stopping') return Promise.resolve();
    // Shutting down, or removing it: a start now (a wake for a request still waiting) would outlive its owner.
    if (this.closing || this.removed.has(instance)) return Promise.resolve();
    this.cancelRestartTimer(instance);
    const waking = instance.state === 'hibernated' || (instance.state === 'stopped' && reason === 'wake');
    if (waking) instance.waking = true;
    // The transition happens synchronously so a caller that starts and then waits sees the new state at once.
    this.kernel.instances.transition(instance, waking ? 'waking' : 'starting', waking ? 'waking' : 'starting', reason);
    const run = this.launch(instance).finally(() => this.pendingStarts.delete(instance));
    this.pendingStarts.set(instance, run);
    return run;
  }

  private async launch(instance: Instance): Promise<void> {
    const epoch = ++instance.epoch;
    const config = instance.config;
    const startedAt = Date.now();
    let port: number | null = null;
    let exited: ExitInfo | null = null;
    let exitNotify: (() => void) | null = null;
    try {
      port = await this.kernel.ports.allocate({ probe: this.kernel.tierTraits(instance.tier).probesPort });
      const dataDir = this.kernel.instanceDir(instance.service, instance.id);
      // Made at the first start: later wakes pay a stat here, not a round trip through libuv's thread pool.
      if (!statSync(dataDir, { throwIfNoEntry: false })?.isDirectory()) await mkdir(dataDir, { recursive: true });
      // A socket left by the previous run would make the app's bind fail with EADDRINUSE (rm never follows links).
      if (config.listen === 'socket') await rm(instanceSocketPath(dataDir), { force: true });
      const spec = await this.kernel.hooks.beforeSpawn.promise(
        buildSpawnSpec(this.kernel, instance, port, dataDir, (exit) => {
          exited = exit;
          exitNotify?.();
          this.onExit(instance, epoch, exit);
        }),
      );
      const hook = this.kernel.hooks.spawn.get(spec.tier);
      if (!hook || hook.taps.length === 0) {
        throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `no runtime plugin provides the '${spec.tier}' tier`);
      }
      const spawned = await hook.promise(spec);
      if (!spawned) throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `the '${spec.tier}' runtime did not start ${instance.key}`);
      if (spawned.keepsOwnPort && spawned.address.port !== port) {
        // A restored image (plugins/snapshots) listens where it was saved: the port handed out is not used.
        this.kernel.ports.release(port);
        port = spawned.address.port;
      }
      let handle = spawned;
      try {
        handle = this.kernel.hooks.afterSpawn.taps.length === 0 ? spawned : await this.kernel.hooks.afterSpawn.promise(spawned, spec);
      } catch (error) {
        // A wrapper that failed leaves a process nobody holds: stop it before the failure takes its course.
        await spawned.stop({ graceMs: 0 }).catch(() => undefined);
        throw error;
      }
      if (epoch !== instance.epoch) {
        // Stopped while the runtime was starting it.
        await handle.stop({ graceMs: config.stopTimeout });
        this.kernel.ports.release(port);
        return;
      }
      instance.handle = handle;
      instance.startedAt = startedAt;
      // An in-process instance (the wasm tier) has no process to find after a crash: its row is written once it answers.
      if (!handle.inProcess) this.kernel.store.saveProcess(instance.service, instance.id, handle.pid, handle.pgid);
      const fallback = this.kernel.tierOf(instance.service).fallbackReason;
      const tier = fallback ? `tier ${instance.tier}, a fallback (${fallback})` : `tier ${instance.tier}`;
      const { host, port: boundPort, socketPath } = handle.address;
      const where = socketPath ? `socket ${socketPath}` : `port ${boundPort}${host === '127.0.0.1' ? '' : ` of ${host}`}`;
      this.kernel.emit(instance, 'spawned', `pid ${handle.pid ?? '-'} on ${where} (${tier})`);

      // From the end of a one-time preparation (a first compile) when the runtime reports one, never before the start.
      const deadline = Math.max(startedAt, Math.min(handle.preparedAt ?? startedAt, Date.now())) + config.startupTimeout;
      const exitedEarly = new Promise<void>((resolve) => {
        exitNotify = resolve;
        if (exited) resolve();
      });
      const ready = await waitReady(this.kernel, instance, epoch, deadline, exitedEarly, () => exited !== null);
      if (epoch !== instance.epoch) return;
      if (!ready) {
        const why = exited ? describeExit(exited) : `not ready within ${config.startupTimeout}ms`;
        throw new TenementError(
          exited ? ErrorCodes.SPAWN_FAILED : ErrorCodes.STARTUP_TIMEOUT,
          `${instance.key} ${exited ? 'exited during start-up' : 'did not become ready'}: ${why}`,
        );
      }
      if ((await handle.ownsAddress?.()) === false) {
        throw new TenementError(
          ErrorCodes.SPAWN_FAILED,
          handle.address.socketPath
            ? `${instance.key}: socket ${handle.address.socketPath} answers, but not from the instance's own processes; starting again`
            : `${instance.key}: port ${handle.address.port} answers, but not from the instance's own processes (another program took it); starting again on another port`,
        );
      }
      if (handle.address.socketPath) this.pinSocket(instance, handle.address, dataDir);
      if (epoch !== instance.epoch) return;
      instance.readyAt = Date.now();
      instance.health = 'healthy';
      instance.consecutiveHealthFailures = 0;
      instance.lastError = null;
      instance.lastActivity = Date.now();
      // A wake that needed a restart on the way is still a wake: the event says the instance is back.
      this.kernel.instances.transition(instance, 'running', instance.waking ? 'woken' : 'ready', `ready in ${instance.readyAt - startedAt}ms`);
      instance.waking = false;
      if (handle.inProcess) this.persistRunningLater(instance, epoch);
      else this.kernel.store.saveInstance(instance.service, instance.id, 'running', instance.weight);
    } catch (error) {
      if (epoch !== instance.epoch) {
        // stop() owns the handle from here; only a port nobody holds yet is ours to give back.
        if (!instance.handle) this.kernel.ports.release(port);
        return;
      }
      instance.lastError = errorMessage(error);
      this.kernel.log.warn({ instance: instance.key, ...errorFields(error) }, 'start failed');
      const handle = instance.handle;
      instance.handle = null;
      if (handle) await handle.stop({ graceMs: 0 }).catch(() => undefined);
      this.kernel.ports.release(port);
      this.kernel.store.saveProcess(instance.service, instance.id, null, null);
      this.afterFailure(instance, instance.lastError, exited);
    }
  }

  /**
   * An in-process instance's run is written to the store after the requests waiting for its wake were handed to
   * it (setImmediate runs once their microtasks have dispatched them): two SQLite writes (~0.15 ms) were in the
   * path of a cold request that takes about as long in all. A stop, hibernation or restart since then (a new
   * epoch) wrote its own state: nothing is written over it. Lost only if the server dies within that turn, when
   * the instance comes back as it was saved before (hibernated: woken by its next request).
   */
  private persistRunningLater(instance: Instance, epoch: number): void {
    setImmediate(() => {
      if (epoch !== instance.epoch || instance.state !== 'running' || !instance.handle) return;
      try {
        this.kernel.store.saveProcess(instance.service, instance.id, instance.handle.pid, instance.handle.pgid);
        this.kernel.store.saveInstance(instance.service, instance.id, 'running', instance.weight);
      } catch (error) {
        // The store closed in that turn (the server stopping): the shutdown keeps desired states as they were.
        this.kernel.log.debug({ instance: instance.key, err: errorMessage(error) }, 'running state not saved');
      }
    });
  }

  /**
   * From readiness on, the proxy connects to the socket it just checked, not to whatever the path names later.
   * The previous run's pin closes only now: a request that still held that run's address has long ended, and
   * the fd number cannot come back as another instance's pin while someone may use it.
   */
  private pinSocket(instance: Instance, address: UpstreamAddress, dataDir: string): void {
    const pin = pinSocket(address.socketPath!, dataDir);
    this.pins.get(instance)?.close();
    this.pins.set(instance, pin);
    address.pinnedPath = pin.path;
  }

  private unpinSocket(instance: Instance): void {
    this.pins.get(instance)?.close();
    this.pins.delete(instance);
  }

  private onExit(instance: Instance, epoch: number, exit: ExitInfo): void {
    instance.lastExit = exit;
    if (epoch !== instance.epoch) return;
    this.kernel.log.info({ instance: instance.key, ...exit }, 'instance process ended');
    // During start-up, launch() sees the exit and applies the policy itself.
    if (instance.state !== 'running') return;
    const port = instance.port;
    instance.handle = null;
    instance.epoch += 1;
    this.kernel.ports.release(port);
    this.kernel.store.saveProcess(instance.service, instance.id, null, null);
    this.afterFailure(instance, describeExit(exit), exit);
  }

  /**
   * How many times the instance has failed so far: a request waiting for it to wake gives up when this rises,
   * but not when a deliberate stop (an API restart or stop) takes it down on the way.
   */
  failures(instance: Instance): number {
    return this.failureCounts.get(instance) ?? 0;
  }

  /** Whether the instance is being (or was) removed: no start will be made for it again. */
  isRemoved(instance: Instance): boolean {
    return this.removed.has(instance);
  }

  /** The restart policy, with jittered exponential backoff and the maxRestarts-in-window rule. */
  private afterFailure(instance: Instance, reason: string, exit: ExitInfo | null): void {
    this.failureCounts.set(instance, this.failures(instance) + 1);
    if (this.closing) return;
    const config = instance.config;
    const cleanExit = exit !== null && exit.code === 0 && exit.signal === null;
    if (config.restart === 'never' || (config.restart === 'on-failure' && cleanExit)) {
      instance.waking = false;
      this.kernel.instances.transition(instance, cleanExit ? 'stopped' : 'failed', cleanExit ? 'stopped' : 'failed', reason);
      // A clean exit is the app's own decision: a later run of Tenement leaves it stopped (a request wakes it).
      if (cleanExit) this.kernel.store.saveInstance(instance.service, instance.id, 'stopped', instance.weight);
      return;
    }
    const now = Date.now();
    instance.restartTimes = instance.restartTimes.filter((t) => now - t < config.restartWindow);
    if (instance.restartTimes.length >= config.maxRestarts) {
      instance.waking = false;
      this.kernel.instances.transition(
        instance,
        'failed',
        'failed',
        `${reason}; gave up after ${instance.restartTimes.length} restarts within ${config.restartWindow}ms`,
      );
      return;
    }
    if (instance.readyAt !== null && now - instance.readyAt >= config.backoff.resetAfter) instance.backoffAttempt = 0;
    const delay = backoffDelay(instance.backoffAttempt, config.backoff.base, config.backoff.max);
    instance.backoffAttempt += 1;
    instance.restartTimes.push(now);
    instance.restarts += 1;
    instance.health = 'unknown';
    this.kernel.instances.transition(instance, 'restarting', 'restarting', `${reason}; restarting in ${delay}ms`);
    const timer = setTimeout(() => {
      this.restartTimers.delete(instance);
      if (instance.state === 'restarting') void this.start(instance, 'restart');
    }, delay);
    this.restartTimers.set(instance, timer);
  }

  private cancelRestartTimer(instance: Instance): void {
    const timer = this.restartTimers.get(instance);
    if (timer) clearTimeout(timer);
    this.restartTimers.delete(instance);
  }

  /**
   * Stops an instance's process: drain in-flight requests (bounded), then the runtime's graceful stop
   * (SIGTERM to the group, SIGKILL after stopTimeout). `to` is the state it ends in.
   */
  async stop(
    instance: Instance,
    options: { to: 'stopped' | 'hibernated'; reason: string; drain?: boolean; remove?: boolean },
  ): Promise<void> {
    if (options.remove) this.removed.add(instance);
    this.cancelRestartTimer(instance);
    const pending = this.pendingStarts.get(instance);
    instance.epoch += 1;
    if (pending) await pending.catch(() => undefined);
    if (instance.state === 'stopping') {
      // Another stop (a hibernation, an unhealthy restart) is already ending this process: let it finish and go
      // on from where it left the instance, rather than fail on stopping -> stopping and return too early.
      await instance.waitForState(statesOtherThan('stopping'), instance.config.stopTimeout + 10_000).catch(() => undefined);
      this.cancelRestartTimer(instance);
      // A request waiting on that stop may have woken the instance the moment it ended: end that start too.
      instance.epoch += 1;
      await this.pendingStarts.get(instance)?.catch(() => undefined);
    }
    const handle = instance.handle;
    if (instance.state === options.to) return;
    if (handle) {
      this.kernel.instances.transition(instance, 'stopping', 'stopping', options.reason);
      if (options.drain !== false) await instance.drain(instance.config.drainTimeout);
      await handle.stop({ graceMs: instance.config.stopTimeout, hibernating: options.to === 'hibernated' }).catch((error: unknown) => {
        this.kernel.log.warn({ instance: instance.key, err: errorMessage(error) }, 'stop failed');
      });
      instance.handle = null;
      this.kernel.ports.release(handle.address.port);
      this.kernel.store.saveProcess(instance.service, instance.id, null, null);
    }
    // keepData: false makes the data live as long as the instance: hibernation and restarts keep it (they are
    // meant to be invisible), removal deletes it.
    if (options.remove) this.unpinSocket(instance);
    if (!instance.config.keepData && options.remove) {
      await rm(this.kernel.instanceDir(instance.service, instance.id), { recursive: true, force: true });
    }
    instance.waking = false;
    if (instance.state !== options.to) {
      this.kernel.instances.transition(instance, options.to, options.to === 'hibernated' ? 'hibernated' : 'stopped', options.reason);
    }
    instance.health = 'unknown';
  }

  /** A manual restart: forgets earlier failures (so it also revives a `failed` instance) and starts afresh. */
  async restart(instance: Instance, reason = 'manual restart'): Promise<void> {
    instance.restartTimes = [];
    instance.backoffAttempt = 0;
    if (instance.handle || instance.state === 'restarting') await this.stop(instance, { to: 'stopped', reason });
    await this.start(instance, reason);
  }

  /** Health checks failed `failures` times in a row: restart under the policy, as for a crash. */
  async unhealthy(instance: Instance, detail: string): Promise<void> {
    if (instance.state !== 'running' || !instance.handle) return;
    instance.health = 'unhealthy';
    this.kernel.emit(instance, 'unhealthy', detail);
    const handle = instance.handle;
    instance.epoch += 1;
    this.kernel.instances.transition(instance, 'stopping', 'stopping', `unhealthy: ${detail}`);
    await handle.stop({ graceMs: instance.config.stopTimeout }).catch(() => undefined);
    instance.handle = null;
    this.kernel.ports.release(handle.address.port);
    this.kernel.store.saveProcess(instance.service, instance.id, null, null);
    this.afterFailure(instance, `unhealthy: ${detail}`, null);
  }

  /** Stops everything for shutdown without touching desired state, so the next start brings it all back. */
  async shutdown(instances: Instance[]): Promise<void> {
    this.closing = true;
    for (const timer of this.restartTimers.values()) clearTimeout(timer);
    this.restartTimers.clear();
    await Promise.all(
      instances
        .filter((i) => i.handle || this.pendingStarts.has(i))
        .map((i) => this.stop(i, { to: 'stopped', reason: 'shutdown' }).catch(() => undefined)),
    );
    for (const instance of [...this.pins.keys()]) this.unpinSocket(instance);
  }
}
