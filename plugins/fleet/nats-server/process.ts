/** One nats-server child process run from a config file: start, graceful stop, restart, exit notices. */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { unpinnedWhile } from '../../../core/process/affinity.ts';

export interface NatsServerSpec {
  name: string;
  binary: string;
  configFile: string;
  /** stdout and stderr go here (appended). */
  logFile: string;
  /** nats://host:port clients use. */
  url: string;
  /** http://127.0.0.1:port (/healthz, /jsz, /varz). */
  monitorUrl: string;
}

export type ExitListener = (info: { code: number | null; signal: NodeJS.Signals | null; expected: boolean }) => void;

/** SIGTERM lets the server flush its store and leave the cluster cleanly; SIGKILL only after this. */
const STOP_GRACE_MS = 10_000;

export class NatsServerProcess {
  private child: ChildProcess | null = null;
  /** Set while we stop it ourselves, so its exit is not reported as a crash. */
  private stopping = false;
  private readonly exitListeners = new Set<ExitListener>();
  startedAt = 0;

  constructor(readonly spec: NatsServerSpec) {}

  get name(): string {
    return this.spec.name;
  }

  get pid(): number | null {
    return this.running ? (this.child?.pid ?? null) : null;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  onExit(listener: ExitListener): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  start(now = Date.now()): void {
    if (this.running) return;
    const fd = openSync(this.spec.logFile, 'a', 0o600);
    let child: ChildProcess;
    try {
      child = unpinnedWhile(() => spawn(this.spec.binary, ['-c', this.spec.configFile], { stdio: ['ignore', fd, fd] }));
    } finally {
      closeSync(fd);
    }
    this.child = child;
    this.startedAt = now;
    this.stopping = false;
    // A spawn failure (ENOENT, EACCES) arrives as 'error' without 'exit': reported the same way.
    let reported = false;
    const report = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (reported) return;
      reported = true;
      const expected = this.stopping;
      for (const listener of this.exitListeners) listener({ code, signal, expected });
    };
    child.once('exit', (code, signal) => report(code, signal));
    child.once('error', () => report(null, null));
  }

  /** SIGTERM, SIGKILL after the grace; resolves once the process is gone. */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.stopping = true;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Graceful stop (if running), then start with the same config and store. */
  async restart(now?: number): Promise<void> {
    await this.stop();
    this.start(now ?? Date.now());
  }

  /** The last `bytes` of its log, for error messages. */
  logTail(bytes = 4000): string {
    try {
      const size = statSync(this.spec.logFile).size;
      const text = readFileSync(this.spec.logFile, 'utf8');
      return size > bytes ? text.slice(-bytes) : text;
    } catch {
      return '';
    }
  }
}
