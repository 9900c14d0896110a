/**
 * Runs HAProxy in master-worker mode in the foreground (`-W -db`), restarts it when it exits (backoff: 0.5 s
 * doubling to 30 s, reset after a minute up), reloads it with SIGUSR2 (the master stays, a new worker takes the
 * listeners: no connection refused), and stops it when the server stops (SIGTERM, SIGKILL after 5 s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type { Logger } from '../../core/logger.ts';
import { unpinnedWhile } from '../../core/process/affinity.ts';

export class HaproxyProcess {
  private child: ChildProcess | null = null;
  private closed = false;
  private delay = 500;
  private restartTimer: NodeJS.Timeout | null = null;
  /** Called each time a (new) HAProxy master was spawned, so the caller programs it once its socket answers. */
  onSpawn: () => void = () => {};

  constructor(
    private readonly binary: string,
    private readonly configFile: string,
    private readonly pidFile: string,
    private readonly log: Pick<Logger, 'info' | 'warn' | 'error'>,
  ) {}

  /**
   * A master left by a previous run that died without stopping it (kill -9, a crash) still holds the public
   * port: it is stopped when its pid file names a live haproxy started with this config file.
   */
  killLeftover(): void {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(this.pidFile, 'utf8').trim().split('\n')[0]);
    } catch {
      return;
    }
    if (!Number.isInteger(pid) || pid <= 1) return;
    let cmdline = '';
    try {
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      return;
    }
    if (!cmdline.includes('haproxy') || !cmdline.includes(this.configFile)) return;
    this.log.warn({ pid }, 'stopping the haproxy a previous run left');
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  start(): void {
    if (this.closed) return;
    const startedAt = Date.now();
    const child = unpinnedWhile(() => spawn(this.binary, ['-W', '-db', '-f', this.configFile, '-p', this.pidFile], { stdio: ['ignore', 'ignore', 'pipe'] }));
    this.child = child;
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      stderr = (stderr + text).slice(-4096);
    });
    child.on('error', (error) => this.log.error({ err: String(error) }, 'haproxy could not be started'));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      if (this.closed) return;
      if (Date.now() - startedAt > 60_000) this.delay = 500;
      this.log.warn({ code, signal, stderr: stderr.trim().slice(-1000), retryInMs: this.delay }, 'haproxy exited; restarting it');
      this.restartTimer = setTimeout(() => this.start(), this.delay);
      this.restartTimer.unref();
      this.delay = Math.min(30_000, this.delay * 2);
    });
    this.log.info({ pid: child.pid, config: this.configFile }, 'haproxy started');
    this.onSpawn();
  }

  /** A soft reload: the master re-reads the config and starts a new worker; old connections finish on the old one. */
  reload(): void {
    this.child?.kill('SIGUSR2');
  }

  async stop(): Promise<void> {
    this.closed = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}
