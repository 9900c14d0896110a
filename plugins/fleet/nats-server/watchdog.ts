/**
 * Keeps the nats-servers `ten nats start` runs alive and current: a server that exits unexpectedly is started
 * again (with back-off when it keeps exiting), and a server whose plain `/healthz` stays "not current" is
 * restarted gracefully (the 2.9.10 stuck-replica fix, ./health.ts). Polls every server each round.
 */
import { DEFAULT_POLICY, type HealthVerdict, type ServerWatch, type WatchdogPolicy, classifyHealthz, decide, exitBackoffMs, newWatch } from './health.ts';
import type { NatsServerProcess } from './process.ts';

export type WatchdogEvent =
  | { kind: 'health'; server: string; verdict: HealthVerdict; error: string | null }
  | { kind: 'exited'; server: string; code: number | null; signal: string | null; restartInMs: number }
  | { kind: 'restarting'; server: string; reason: string }
  | { kind: 'started'; server: string; pid: number | null };

export interface WatchdogOptions {
  pollMs?: number;
  policy?: WatchdogPolicy;
  onEvent?: (event: WatchdogEvent) => void;
  /** Clock, for tests of the decision timing (defaults to Date.now). */
  now?: () => number;
}

export interface Watchdog {
  /** One round now (also what the timer runs); resolves when a restart it decided has started the new process. */
  poll(): Promise<void>;
  /** No more polls or restarts; resolves once a restart already under way has started its process (stopping the
   * servers before that would race it: the restart would start a server after the stop). */
  stop(): Promise<void>;
}

/** Exits counted for back-off within this window. */
const EXIT_WINDOW_MS = 60_000;

async function healthz(monitorUrl: string, timeoutMs: number): Promise<{ status: number | null; body: string }> {
  try {
    const reply = await fetch(`${monitorUrl}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: reply.status, body: (await reply.text()).slice(0, 4096) };
  } catch (error) {
    return { status: null, body: (error as Error).message };
  }
}

export function startWatchdog(servers: readonly NatsServerProcess[], options: WatchdogOptions = {}): Watchdog {
  const pollMs = options.pollMs ?? 5_000;
  const policy = options.policy ?? DEFAULT_POLICY;
  const now = options.now ?? Date.now;
  const emit = options.onEvent ?? (() => {});
  const watches = new Map<NatsServerProcess, ServerWatch>(servers.map((s) => [s, newWatch(s.startedAt || now())]));
  const exits = new Map<NatsServerProcess, number[]>(servers.map((s) => [s, []]));
  const pendingStarts = new Map<NatsServerProcess, NodeJS.Timeout>();
  let restarting: Promise<void> | null = null;
  let stopped = false;

  const started = (server: NatsServerProcess): void => {
    watches.set(server, newWatch(server.startedAt));
    emit({ kind: 'started', server: server.name, pid: server.pid });
  };

  const unsubscribe = servers.map((server) =>
    server.onExit(({ code, signal, expected }) => {
      if (expected || stopped) return;
      const times = exits.get(server)!.filter((t) => now() - t < EXIT_WINDOW_MS);
      times.push(now());
      exits.set(server, times.slice(-16));
      const wait = exitBackoffMs(times.length);
      emit({ kind: 'exited', server: server.name, code, signal, restartInMs: wait });
      clearTimeout(pendingStarts.get(server));
      pendingStarts.set(
        server,
        setTimeout(() => {
          pendingStarts.delete(server);
          if (stopped || server.running) return;
          server.start(now());
          started(server);
        }, wait),
      );
    }),
  );

  const poll = async (): Promise<void> => {
    if (stopped) return;
    const timeoutMs = Math.min(3000, Math.max(500, pollMs));
    const answers = await Promise.all(servers.map(async (s) => ({ server: s, ...(await healthz(s.spec.monitorUrl, timeoutMs)) })));
    if (stopped) return;
    const judged = answers.map((a) => ({ server: a.server, ...classifyHealthz(a.status, a.body) }));
    const healthy = judged.filter((j) => j.verdict === 'ok').length;
    const at = now();
    for (const { server, verdict, error } of judged) {
      // A server that is down is the exit handler's; its unreachable /healthz says nothing new.
      if (!server.running) continue;
      const watch = watches.get(server)!;
      if (watch.last !== verdict) emit({ kind: 'health', server: server.name, verdict, error });
      const action = decide(watch, verdict, error, at, healthy - (verdict === 'ok' ? 1 : 0), policy);
      // One health-based restart at a time: two replicas out at once would cost an R3 stream its quorum.
      if (action.kind === 'restart' && restarting === null) {
        emit({ kind: 'restarting', server: server.name, reason: action.reason });
        restarting = server
          .restart(now())
          .then(() => started(server))
          .finally(() => {
            restarting = null;
          });
        await restarting;
      }
    }
  };

  let timer: NodeJS.Timeout | null = null;
  const loop = (): void => {
    timer = setTimeout(() => {
      poll().finally(() => {
        if (!stopped) loop();
      });
    }, pollMs);
  };
  loop();

  return {
    poll,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      for (const t of pendingStarts.values()) clearTimeout(t);
      pendingStarts.clear();
      for (const off of unsubscribe) off();
      await restarting?.catch(() => undefined);
    },
  };
}
