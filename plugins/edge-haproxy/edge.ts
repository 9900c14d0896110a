/**
 * Keeps a running HAProxy in step with the kernel (docs/edge.md). Instance events and a steady tick compare what
 * each server should be (the instance's address while it runs, else the activator's; its weight) with what was
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
import { errorFiles, instanceBackend, serviceBackend, type Address, type ServerEntry } from './render.ts';
import { checkAnswer, type RuntimeApi } from './runtime-api.ts';

interface Programmed {
  target: string;
  weight: number;
}

const key = (a: Address): string => `${a.host}:${a.port}`;

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
  private membership = '';
  private syncing: Promise<void> | null = null;
  private again = false;
  private reloadTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** HAProxy's worker pid the last full sync was made for: a new one (restart, reload) is programmed afresh. */
  private workerPid = 0;

  constructor(
    private readonly ctx: PluginContext,
    private readonly api: RuntimeApi,
    private readonly activator: Address,
    private readonly render: ((services: ReadonlyMap<string, readonly ServerEntry[]>) => { config: string; map: string }) | null,
    private readonly files: EdgeFiles | null,
    private readonly haproxy: HaproxyProcess | null,
  ) {}

  /** Where the instance's traffic goes now: itself while it runs on TCP, the activator otherwise (it wakes it). */
  target(view: InstanceView): Address {
    const address = view.state === 'running' ? view.handle?.address : undefined;
    if (!address || address.socketPath || address.pinnedPath || !address.host || !address.port) return this.activator;
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
    const membership = [...services].map(([s, list]) => `${s}=${list.map((e) => e.id).join(',')}`).join(';');
    if (membership === this.membership) return false;
    this.membership = membership;
    const { config, map } = this.render(services);
    const errorDir = this.files.errorDir;
    fs.mkdirSync(errorDir, { recursive: true, mode: 0o700 });
    const errors = [...errorFiles()].map(([name, text]) => [path.join(errorDir, name), text] as const);
    // Written whole then renamed: a reload never reads half a file. The config last: it names the others.
    for (const [file, text] of [...errors, [this.files.mapFile, map], [this.files.configFile, config]] as const) {
      fs.writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
      fs.renameSync(`${file}.tmp`, file);
    }
    return true;
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
    if (pid !== this.workerPid) {
      // A new worker read its servers from the config file: program every one again, whatever was sent before.
      this.programmed.clear();
      this.totals.clear();
      this.workerPid = pid;
    }
    const commands: string[] = [];
    for (const view of this.ctx.instances.list()) {
      if (!this.ctx.services.get(view.service)) continue;
      const target = this.target(view);
      const want: Programmed = { target: key(target), weight: view.weight };
      const had = this.programmed.get(view.key);
      const servers = [`${serviceBackend(view.service)}/${view.id}`, `${instanceBackend(view.service, view.id)}/${view.id}`];
      if (!had || had.target !== want.target) {
        for (const s of servers) commands.push(`set server ${s} addr ${target.host} port ${target.port}`, `set server ${s} state ready`);
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
        // Forget what this batch claimed, so the next sync (after the reload) sends it again.
        this.programmed.clear();
        throw error;
      }
    }
  }

  /** Session counters to activity: any new session, or one open now, marks the instance as not idle. */
  private async readActivity(): Promise<void> {
    const stats = await this.api.serverStats((b) => b.startsWith('s.') || b.startsWith('i.'));
    const sums = new Map<string, { total: number; current: number }>();
    for (const stat of stats) {
      const service = stat.backend.startsWith('s.') ? stat.backend.slice(2) : stat.backend.slice(2, stat.backend.lastIndexOf('.'));
      const entry = sums.get(`${service}:${stat.server}`) ?? { total: 0, current: 0 };
      entry.total += stat.total;
      entry.current += stat.current;
      sums.set(`${service}:${stat.server}`, entry);
    }
    for (const [instanceKey, { total, current }] of sums) {
      const view = this.ctx.instances.getByKey(instanceKey);
      if (!view) continue;
      const before = this.totals.get(instanceKey);
      this.totals.set(instanceKey, total);
      if (current > 0 || (before !== undefined && total > before)) this.ctx.lifecycle.touch(view);
    }
  }

  private scheduleReload(): void {
    if (!this.haproxy || this.reloadTimer) return;
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = null;
      this.ctx.log.info('instances or services changed: reloading haproxy');
      this.haproxy?.reload();
    }, 200);
    this.reloadTimer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.reloadTimer) clearTimeout(this.reloadTimer);
  }
}
