import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import path from 'node:path';
import { unpinnedWhile } from '../../core/process/affinity.ts';
import { processTree } from '../../core/process/tree.ts';
import { SYSTEM_PATH, findProgram } from '../../core/process/tenant-launch.ts';
import { ociSpec } from './oci-spec.ts';
import { globalFlags, runsc, type SandboxPaths } from './runsc.ts';
import { alive, killAll, waitGone } from './sandbox-tree.ts';

/**
 * A booted, empty gVisor sandbox: an attached `runsc run` whose root container is an idle shell, waiting for
 * exactly one instance to be started in it as a second container (`runsc run` with the sandbox-id
 * annotation). That skips runsc's sandbox boot (its re-execs, the sentry's kernel set-up: about half of a cold
 * start) on the start path. A warm sandbox serves one instance run and is destroyed with it: never reused,
 * never shared between tenants.
 */
export interface WarmSandbox {
  /** The root container's id (the sandbox id the instance's container joins). */
  id: string;
  bundle: string;
  /** The attached `runsc run`: its gofer, the sentry and the sentry's stubs are below it. */
  leader: number;
  /** The sentry's host pid. */
  pid: number;
  /** Extra runsc flags the sandbox was booted with: the instance's container must be started with the same. */
  flags: readonly string[];
  /**
   * The idle root container's stdin and stdout (FIFOs in the bundle: gVisor takes pipes as stdio, not the
   * socket pairs Node makes): it reads the instance's host name from one and answers on the other.
   */
  control: { input: Socket; output: Socket } | null;
  /** Resolves when the leader has exited (and runsc has deleted the sandbox's state). */
  exited: Promise<void>;
  gone: boolean;
  /** Lets the leader keep the event loop alive again (while it is being destroyed: that must finish). */
  hold(): void;
}

export interface WarmPoolOptions {
  runsc: string;
  paths: SandboxPaths;
  /** Tenement's data directory: hidden in the idle container too, as in an instance's. */
  dataRoot: string;
  /** Idle sandboxes kept per flag set (0: no pool, every start boots its own sandbox). */
  size: number;
  /** Called when a boot fails (the pool then stays empty until the next take). */
  onError(error: string): void;
}

/** After a take, the refill waits this long: a boot right away would compete with the starting app for the CPU. */
const REFILL_DELAY_MS = 400;
const BOOT_TIMEOUT_MS = 20_000;
const NAME_TIMEOUT_MS = 2_000;
/** What the idle container says once it runs, and once it has set the host name. */
const READY = 'ready';
const NAMED = 'named';
const SHELL = '/bin/sh';

const keyOf = (flags: readonly string[]): string => flags.join(' ');

/**
 * Idle sandboxes ready to take an instance, one small set per runsc flag set (`--host-uds=create` for
 * instances on a Unix socket is a sandbox-wide flag). The memory this keeps is per server (about 50 MB RSS per
 * idle sandbox, shared runsc text counted in each process), not per instance: a hibernated instance keeps
 * nothing.
 */
export class WarmPool {
  private readonly idle = new Map<string, WarmSandbox[]>();
  private readonly booting = new Map<string, number>();
  /** Boots in flight: close() waits for them, so none finishes after the server is gone. */
  private readonly inFlight = new Set<Promise<void>>();
  private closed = false;
  private readonly sleep = findProgram('sleep', SYSTEM_PATH, '/');
  private readonly hostname = findProgram('hostname', SYSTEM_PATH, '/');
  private readonly mkfifo = findProgram('mkfifo', SYSTEM_PATH, '/');

  constructor(private readonly options: WarmPoolOptions) {}

  /** Starts filling the pool for a flag set (at setup, for the kinds of sandbox instances the config has). */
  prewarm(flags: readonly string[]): void {
    if (this.usable()) this.fill(flags);
  }

  /**
   * An idle sandbox booted with `flags`, removed from the pool (the caller owns it now and must destroy it);
   * null when there is none. A refill starts shortly after.
   */
  take(flags: readonly string[]): WarmSandbox | null {
    if (!this.usable() || this.closed) return null;
    const list = this.idle.get(keyOf(flags)) ?? [];
    let taken: WarmSandbox | null = null;
    while (list.length > 0 && !taken) {
      const candidate = list.shift()!;
      // A sentry that died while idle (killed by hand, OOM) is of no use.
      if (!candidate.gone && alive(candidate.pid)) taken = candidate;
      else void destroyWarm(this.options.runsc, this.options.paths, candidate);
    }
    setTimeout(() => this.fill(flags), taken ? REFILL_DELAY_MS : 0).unref();
    return taken;
  }

  /**
   * Gives a taken sandbox the instance's host name. The UTS namespace is the sandbox's, shared by its
   * containers (a second container's `hostname` is ignored), so the idle root container sets it, as root with
   * CAP_SYS_ADMIN inside gVisor, before the instance's container starts. False when that failed.
   */
  async name(warm: WarmSandbox, hostname: string): Promise<boolean> {
    const control = warm.control;
    if (!control || !/^[a-z0-9-]{1,63}$/.test(hostname)) return false;
    const answer = await readLine(control.output, NAME_TIMEOUT_MS, () => control.input.write(`${hostname}\n`));
    return answer === NAMED;
  }

  /** Destroys every idle sandbox (the server is closing). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.inFlight);
    const all = [...this.idle.values()].flat();
    this.idle.clear();
    await Promise.all(all.map((warm) => destroyWarm(this.options.runsc, this.options.paths, warm)));
  }

  /** The idle container runs `sh`, `hostname` and `sleep`, and `mkfifo` makes its pipes: without them, every start boots. */
  private usable(): boolean {
    return this.options.size > 0 && this.sleep !== null && this.hostname !== null && this.mkfifo !== null;
  }

  private fill(flags: readonly string[]): void {
    const key = keyOf(flags);
    while (!this.closed && (this.idle.get(key)?.length ?? 0) + (this.booting.get(key) ?? 0) < this.options.size) this.bootOne(flags);
  }

  private bootOne(flags: readonly string[]): void {
    const key = keyOf(flags);
    this.booting.set(key, (this.booting.get(key) ?? 0) + 1);
    const run: Promise<void> = this.boot(flags)
      .then(async (warm) => {
        if (this.closed) return destroyWarm(this.options.runsc, this.options.paths, warm);
        const list = this.idle.get(key) ?? [];
        list.push(warm);
        this.idle.set(key, list);
      })
      .catch((error: unknown) => this.options.onError(error instanceof Error ? error.message : String(error)))
      .finally(() => {
        this.booting.set(key, (this.booting.get(key) ?? 1) - 1);
        this.inFlight.delete(run);
      });
    this.inFlight.add(run);
  }

  private async boot(flags: readonly string[]): Promise<WarmSandbox> {
    const { runsc: binary, paths } = this.options;
    const id = `warm-${randomBytes(4).toString('hex')}`;
    const bundle = path.join(paths.bundles, id);
    await mkdir(bundle, { recursive: true, mode: 0o700 });
    const spec = ociSpec({
      program: SHELL,
      // Nothing of the name is interpolated: the shell reads it as data (and name() only sends [a-z0-9-]).
      args: ['-c', `echo ${READY} && read -r name && ${this.hostname!} "$name" && echo ${NAMED} && exec ${this.sleep!} infinity`],
      cwd: '/',
      env: { PATH: SYSTEM_PATH },
      dataRoot: this.options.dataRoot,
      // Its own (empty) bundle folder: the idle container needs no file, and sees none of Tenement's.
      dataDir: bundle,
      hostname: 'warm',
      // Root inside gVisor, with the one capability sethostname needs, for the one `hostname` it runs.
      user: process.getuid?.() === 0 ? { uid: 0, gid: 0 } : { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
      role: { kind: 'sandbox' },
    });
    spec.process.capabilities = { bounding: ['CAP_SYS_ADMIN'], effective: ['CAP_SYS_ADMIN'], permitted: ['CAP_SYS_ADMIN'], inheritable: [], ambient: [] };
    await writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec), { mode: 0o600 });

    const toSandbox = path.join(bundle, 'name.in');
    const fromSandbox = path.join(bundle, 'name.out');
    const errors = path.join(bundle, 'runsc.err');
    await new Promise<void>((resolve, reject) =>
      execFile(this.mkfifo!, ['-m', '600', toSandbox, fromSandbox], { env: { PATH: SYSTEM_PATH } }, (error) => (error ? reject(error) : resolve())),
    );
    // O_RDWR: opening a FIFO that way never blocks. The sandbox's ends and ours are separate open files.
    const stdio = [openSync(toSandbox, constants.O_RDWR), openSync(fromSandbox, constants.O_RDWR), openSync(errors, 'w', 0o600)];
    const input = new Socket({ fd: openSync(toSandbox, constants.O_RDWR), readable: false, writable: true });
    const output = new Socket({ fd: openSync(fromSandbox, constants.O_RDWR), readable: true, writable: false });
    input.on('error', () => undefined);
    output.on('error', () => undefined);
    // Attached, like an instance's runsc: it reaps the gofer and the sentry, and deletes the state itself when
    // the sentry dies (a detached sandbox's `runsc delete` takes over a second).
    let child: ChildProcess;
    try {
      child = unpinnedWhile(() => spawn(binary, [...globalFlags(paths.state), ...flags, 'run', '--bundle', bundle, id], { env: { PATH: SYSTEM_PATH }, stdio, detached: true }));
    } catch (error) {
      // A system error Node throws (ENOMEM) must not leave our FIFO ends open.
      input.destroy();
      output.destroy();
      throw error;
    } finally {
      for (const fd of stdio) closeSync(fd);
    }
    const warm: WarmSandbox = { id, bundle, flags, leader: child.pid ?? 0, pid: 0, control: { input, output }, gone: false, exited: Promise.resolve(), hold: () => child.ref() };
    warm.exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    }).then(() => {
      warm.gone = true;
    });
    // An idle sandbox must not keep the server's event loop alive.
    child.unref();
    input.unref();
    output.unref();

    const ready = await Promise.race([readLine(output, BOOT_TIMEOUT_MS), warm.exited.then(() => null)]);
    const pid = ready === READY ? await sentryPid(paths.state, id) : null;
    if (pid === null) {
      await destroyWarm(binary, paths, warm);
      let detail = '';
      try {
        detail = readFileSync(errors, 'utf8').trim().split('\n').pop() ?? '';
      } catch {
        // No output.
      }
      throw new Error(`runtime-sandbox: could not boot a warm sandbox: ${detail || (ready === null ? 'runsc exited' : 'no answer')}`);
    }
    warm.pid = pid;
    return warm;
  }
}

/** The next line `output` gives (after `send`, if any), or null at the timeout or when it closes. */
function readLine(output: Socket, timeoutMs: number, send?: () => void): Promise<string | null> {
  return new Promise((resolve) => {
    let text = '';
    const done = (line: string | null): void => {
      clearTimeout(timer);
      output.off('data', onData);
      output.off('close', onClose);
      output.pause();
      resolve(line);
    };
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      const end = text.indexOf('\n');
      if (end >= 0) done(text.slice(0, end));
    };
    const onClose = (): void => done(null);
    const timer = setTimeout(() => done(null), timeoutMs);
    output.on('data', onData);
    output.once('close', onClose);
    output.resume();
    send?.();
  });
}

/** The sentry's pid, from runsc's state file of the sandbox's root container; null when absent. */
async function sentryPid(state: string, id: string): Promise<number | null> {
  try {
    const meta = JSON.parse(await readFile(path.join(state, `${id}_sandbox:${id}.state`), 'utf8')) as { sandbox?: { pid?: number } };
    const pid = meta.sandbox?.pid;
    return typeof pid === 'number' && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** The host processes of a warm sandbox: its `runsc run`, the gofer, the sentry and the sentry's stubs. */
export function warmProcesses(warm: WarmSandbox): number[] {
  return warm.leader > 0 ? processTree(warm.leader) : [];
}

/**
 * Ends a warm sandbox and everything in it (its idle container, and the instance's container if one was
 * started in it). Killing the sentry is enough: its `runsc run` then exits and deletes the state. If that does
 * not happen in time, every process is killed and the state deleted by hand.
 */
export async function destroyWarm(binary: string, paths: SandboxPaths, warm: WarmSandbox): Promise<void> {
  warm.control?.input.destroy();
  warm.control?.output.destroy();
  const tree = warmProcesses(warm);
  warm.hold();
  if (!warm.gone) {
    killAll(warm.pid > 0 ? [warm.pid] : tree);
    let timer: NodeJS.Timeout | undefined;
    const exited = await Promise.race([warm.exited.then(() => true), new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), 3_000)))]);
    clearTimeout(timer);
    if (!exited) {
      killAll(tree);
      await runsc(binary, paths.state, ['delete', '-force', warm.id]);
    }
  }
  await waitGone(tree, Date.now() + 2_000);
  await rm(warm.bundle, { recursive: true, force: true });
}
