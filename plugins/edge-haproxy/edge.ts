/**
 * Keeps a running HAProxy in step with the kernel (docs/edge.md). Instance events and a steady tick compare what
 * each server should be (the instance's address while it runs, else in maintenance so that the backend's backup
 * server, the activator, takes its traffic; its weight) with what was
 * last programmed, and send only the differences over the runtime API: no reload for a state or weight change.
 * A new or removed instance or service changes the backends, which the runtime API of HAProxy 2.6 cannot add
 * (`add server` only adds servers to backends that exist), so the config and map are written again and HAProxy
 * reloaded (managed mode; debounced); until then the new host goes to the activator, which serves it.
 * The same tick reads the servers' session counters and reports activity, so hibernation sees edge traffic.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { InstanceView } from '../../core/instance.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { HaproxyProcess } from './process.ts';
import { BACKUP_SERVER, errorFiles, instanceBackend, serviceBackend, type Address, type ServerEntry } from './render.ts';
import { checkAnswer, type RuntimeApi, type ServerStat } from './runtime-api.ts';

interface Programmed {
  target: string;
  weight: number;
}

const key = (a: Address): string => `${a.host}:${a.port}`;

/**
 * Whether HAProxy's worker holds something else for an instance's server than what was last sent. A worker that
 * read the config file (a reload, a restart) starts from the weights and states of the file's last write, which
 * runtime changes since then did not touch: seen in CI as a restarting instance back at weight 100 after
 * `set server weight 90`. The pid check catches most such workers; this catches the rest, from the stats every
 * sync reads anyway. (Weights are 0-100 in Tenement and in HAProxy: none is rounded, so no drift is permanent.)
 */
function drifted(stat: ServerStat, had: Programmed): boolean {
  if ((had.target === 'maint') !== stat.maint) return true;
  if (had.target === 'maint') return false;
  if (stat.addr !== had.target) return true;
  // Only a server in service shows its weight: one in maintenance keeps reporting the weight it had when it went
  // there, whatever `set server weight` it is sent meanwhile (which HAProxy takes and applies once it is ready).
  // Compared in maintenance, a worker started with the file's weight 100 drifted for ever (seen in CI).
  return stat.backend.startsWith('s.') && stat.weight !== had.weight;
}
const ZERO_RESPONSES: readonly number[] = [0, 0, 0, 0, 0, 0];
const RETIRED_KEPT = 4;
/** The least time between a reload and another asked for because the worker still lacks a server. */
const RELOAD_RETRY_MS = 2_000;

export interface EdgeFiles {
  configFile: string;
  mapFile: string;
  /** Where HAProxy's error files go (render.ts errorFiles()). */
  errorDir: string;
}

export class HaproxyEdge {
  private programmed = new Map<string, Programmed>();
  /** Session totals per instance key, last read: a rise (or a session open now) is activity. */
  private totals = new Map<string, number>();
  /** Per server (`backend/server`), its responses by class at the last read. */
  private responses = new Map<string, number[]>();
  private membership = '';
  private syncing: Promise<void> | null = null;
  private again = false;
  private reloadTimer: NodeJS.Timeout | null = null;
  private reloadedAt = 0;
  private closed = false;
  /** HAProxy's worker pid the last full sync was made for: a new one (restart, reload) is programmed afresh. */
  private workerPid = 0;
  /** The workers this sync moved on from, newest first (bounded: pids are reused, and old workers exit). */
  private retired: number[] = [];

  constructor(
    private readonly ctx: PluginContext,
    private readonly api: RuntimeApi,
    private readonly render: ((services: ReadonlyMap<string, readonly ServerEntry[]>) => { config: string; map: string }) | null,
    private readonly files: EdgeFiles | null,
    private readonly haproxy: HaproxyProcess | null,
  ) {}

  /** The instance's address while it runs on TCP; null otherwise (its servers go to maintenance: the activator serves). */
  target(view: InstanceView): Address | null {
    const address = view.state === 'running' ? view.handle?.address : undefined;
    if (!address || address.socketPath || address.pinnedPath || !address.host || !address.port) return null;
    return { host: address.host, port: address.port };
  }

  private desired(): Map<string, ServerEntry[]> {
    const services = new Map<string, ServerEntry[]>();
    for (const name of this.ctx.services.names()) services.set(name, []);
    for (const view of this.ctx.instances.list()) {
      const list = services.get(view.service);
      if (list) list.push({ id: view.id, weight: view.weight, target: this.target(view) });
    }
    return services;
  }

  /** Writes the config and map (managed mode). Returns whether the set of backends changed since the last write. */
  writeFiles(): boolean {
    if (!this.render || !this.files) return false;
    const services = this.desired();
    if (this.membershipOf(services) === this.membership) return false;
    this.write(services);
    return true;
  }

  /** The backends and their servers: what a reload must change. A service's lb is in its backend's config too. */
  private membershipOf(services: Map<string, ServerEntry[]>): string {
    return [...services].map(([s, list]) => `${s}/${this.ctx.services.get(s)?.lb ?? ''}=${list.map((e) => e.id).join(',')}`).join(';');
  }

  /** Renders and writes the files (each whole, then renamed: a reload never reads half a file). */
  private write(services: Map<string, ServerEntry[]>): void {
    if (!this.render || !this.files) return;
    this.membership = this.membershipOf(services);
    const { config, map } = this.render(services);
    const errorDir = this.files.errorDir;
    fs.mkdirSync(errorDir, { recursive: true, mode: 0o700 });
    const errors = [...errorFiles()].map(([name, text]) => [path.join(errorDir, name), text] as const);
    // Written whole then renamed: a reload never reads half a file. The config last: it names the others.
    for (const [file, text] of [...errors, [this.files.mapFile, map], [this.files.configFile, config]] as const) {
      fs.writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
      fs.renameSync(`${file}.tmp`, file);
    }
  }

  /** Asks for a sync now (events): at most one runs at a time, and one more follows if asked meanwhile. */
  kick(): void {
    if (this.closed) return;
    if (this.syncing) {
      this.again = true;
      return;
    }
    this.syncing = this.sync()
      .catch((error: unknown) => this.ctx.log.warn({ err: String(error) }, 'haproxy sync failed; retrying on the next tick'))
      .finally(() => {
        this.syncing = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async sync(): Promise<void> {
    if (this.writeFiles()) this.scheduleReload();
    const pid = await this.api.pid();
    // A worker left behind by a reload, still answering for a moment: never programmed or counted again (counted
    // from zero, its totals would be counted twice). The next tick reaches the current one.
    if (this.retired.includes(pid)) return;
    if (pid !== this.workerPid) {
      if (this.workerPid !== 0) this.retired = [this.workerPid, ...this.retired].slice(0, RETIRED_KEPT);
      // A new worker read its servers from the config file: program every one again, whatever was sent before.
      this.programmed.clear();
      this.totals.clear();
      this.responses.clear();
      this.workerPid = pid;
    }
    const commands: string[] = [];
    for (const view of this.ctx.instances.list()) {
      if (!this.ctx.services.get(view.service)) continue;
      const target = this.target(view);
      const want: Programmed = { target: target ? key(target) : 'maint', weight: view.weight };
      const had = this.programmed.get(view.key);
      const servers = [`${serviceBackend(view.service)}/${view.id}`, `${instanceBackend(view.service, view.id)}/${view.id}`];
      if (!had || had.target !== want.target) {
        for (const s of servers) {
          if (target) commands.push(`set server ${s} addr ${target.host} port ${target.port}`, `set server ${s} state ready`);
          else commands.push(`set server ${s} state maint`);
        }
      }
      if (!had || had.weight !== want.weight) commands.push(`set server ${servers[0]} weight ${want.weight}`);
      this.programmed.set(view.key, want);
    }
    if (commands.length > 0) await this.apply(commands);
    await this.readActivity();
  }

  /** Sends commands in batches; a backend the worker does not know yet (a reload pending) is retried later. */
  private async apply(commands: string[]): Promise<void> {
    for (let i = 0; i < commands.length; i += 50) {
      const answer = await this.api.run(commands.slice(i, i + 50));
      try {
        checkAnswer(answer);
      } catch (error) {
        // Forget what this batch claimed, so the next sync (after the reload) sends it again. A server HAProxy's
        // worker does not know while the config names it: a reload was lost (a SIGUSR2 that came while the
        // master was still re-executing itself for the previous one), so ask for one again.
        this.programmed.clear();
        if (/No such (server|backend)/i.test(String(error)) && Date.now() - this.reloadedAt > RELOAD_RETRY_MS) this.scheduleReload();
        throw error;
      }
    }
  }

  /**
   * Whether the worker read now counted from zero (one this process started or reloaded, or any worker after the
   * first): its first read is then counted whole. Only the worker found running in attach mode has counts from
   * before, its first read being the baseline. Without this, requests a new worker carried before the first read
   * (the file already had the instance in service) were never counted.
   */
  private get countsFromZero(): boolean {
    return this.haproxy !== null || this.retired.length > 0;
  }

  /**
   * Counters to activity and traffic. An instance's servers only ever point at it (the activator is a separate
   * backup server), so what they count HAProxy carried straight there: any new session, or one open now, marks
   * the instance as not idle, and the responses they counted since the last read go to the `edgeTraffic` hook.
   */
  private async readActivity(): Promise<void> {
    const { pid, stats } = await this.api.workerStats((b) => b.startsWith('s.') || b.startsWith('i.'));
    // Another worker than the one this sync programmed (a reload in between, or the old worker still answering
    // for a moment after one): its counters are not the ones the baselines came from. The next sync sorts it out.
    if (pid !== this.workerPid) return;
    const sums = new Map<string, { total: number; current: number; byClass: number[]; requests: number; timeMs: number; timed: number }>();
    const seen = new Set<string>();
    for (const stat of stats) {
      if (stat.server === BACKUP_SERVER) continue;
      const service = stat.backend.startsWith('s.') ? stat.backend.slice(2) : stat.backend.slice(2, stat.backend.lastIndexOf('.'));
      const instanceKey = `${service}:${stat.server}`;
      const had = this.programmed.get(instanceKey);
      // Sent again at the next sync (the next tick, within a second).
      if (had && drifted(stat, had)) this.programmed.delete(instanceKey);
      const entry = sums.get(instanceKey) ?? { total: 0, current: 0, byClass: [0, 0, 0, 0, 0, 0], requests: 0, timeMs: 0, timed: 0 };
      entry.total += stat.total;
      entry.current += stat.current;
      sums.set(instanceKey, entry);
      const serverKey = `${stat.backend}/${stat.server}`;
      seen.add(serverKey);
      const before = this.responses.get(serverKey) ?? (this.countsFromZero ? ZERO_RESPONSES : undefined);
      this.responses.set(serverKey, stat.responses);
      if (!before) continue;
      let delta = 0;
      stat.responses.forEach((count, index) => {
        const grew = Math.max(0, count - (before[index] ?? 0));
        entry.byClass[index]! += grew;
        delta += grew;
      });
      entry.requests += delta;
      if (delta > 0 && stat.meanMs !== null) {
        entry.timeMs += stat.meanMs * delta;
        entry.timed += delta;
      }
    }
    for (const serverKey of this.responses.keys()) if (!seen.has(serverKey)) this.responses.delete(serverKey);
    for (const [instanceKey, { total, current, byClass, requests, timeMs, timed }] of sums) {
      const view = this.ctx.instances.getByKey(instanceKey);
      if (!view) continue;
      const before = this.totals.get(instanceKey) ?? (this.countsFromZero ? 0 : undefined);
      this.totals.set(instanceKey, total);
      if (requests > 0) this.ctx.lifecycle.touch(view, { edge: 'haproxy', requests, byClass, meanMs: timed > 0 ? timeMs / timed : null });
      else if (current > 0 || (before !== undefined && total > before)) this.ctx.lifecycle.touch(view);
    }
  }

  private scheduleReload(): void {
    if (!this.haproxy || this.reloadTimer) return;
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = null;
      this.ctx.log.info('instances or services changed: reloading haproxy');
      // The new worker starts from the file's states: written again now, an instance that began running since the
      // membership changed starts in service instead of sending its traffic to the activator until the next sync.
      try {
        this.write(this.desired());
      } catch (error) {
        this.ctx.log.warn({ err: String(error) }, 'haproxy config could not be written before the reload');
      }
      this.reloadedAt = Date.now();
      this.haproxy?.reload();
    }, 200);
    this.reloadTimer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.reloadTimer) clearTimeout(this.reloadTimer);
  }
}
