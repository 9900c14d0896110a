/** wrk, the benches' load generator: one bounded run, and the parser of its `--latency` output. */
import { LOOPBACK } from './base.ts';
import { startChild } from './children.ts';

export interface WrkResult {
  requestsPerSec: number;
  p50Ms: number;
  p75Ms: number;
  p90Ms: number;
  p99Ms: number;
  requests: number;
  non2xx: number;
  socketErrors: number;
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  switch (unit) {
    case 'us':
      return n / 1000;
    case 'ms':
      return n;
    case 's':
      return n * 1000;
    case 'm':
      return n * 60_000;
    default:
      throw new Error(`unknown wrk time unit '${unit}'`);
  }
}

/** Parses `wrk --latency` output. */
export function parseWrk(text: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!rps) throw new Error(`cannot parse wrk output:\n${text}`);
  const percentile = (p: number): number => {
    const match = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text);
    if (!match) throw new Error(`no ${p}% latency in wrk output:\n${text}`);
    return toMs(match[1]!, match[2]!);
  };
  const requests = /(\d+) requests in/.exec(text);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(text);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const socketErrors = socket ? socket.slice(1, 5).reduce((sum, n) => sum + Number(n), 0) : 0;
  return {
    requestsPerSec: Number(rps[1]),
    p50Ms: percentile(50),
    p75Ms: percentile(75),
    p90Ms: percentile(90),
    p99Ms: percentile(99),
    requests: requests ? Number(requests[1]) : 0,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors,
  };
}

export interface WrkOptions {
  binary: string;
  port: number;
  host: string;
  threads: number;
  connections: number;
  seconds: number;
  path?: string;
}

/** One bounded wrk run (killed if it overruns its duration by 15 s). */
export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const args = [
    `-t${options.threads}`,
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    '--latency',
    '--timeout',
    '5s',
    '-H',
    `Host: ${options.host}`,
    `http://${LOOPBACK}:${options.port}${options.path ?? '/'}`,
  ];
  const child = startChild(options.binary, args);
  const timer = setTimeout(() => child.process.kill('SIGKILL'), (options.seconds + 15) * 1000);
  await child.exited;
  clearTimeout(timer);
  if (child.process.exitCode !== 0) throw new Error(`wrk ${args.join(' ')} failed:\n${child.output()}`);
  return parseWrk(child.output());
}
