/** Tracing's own cost in isolation (bench/otel.ts): the otel plugin's hook calls for one request in a loop, CPU per request. */
import type { InstanceView, ProxyExchange } from '../core/types.ts';
import { batchOptions } from '../plugins/otel/batch.ts';
import { resolveTracing } from '../plugins/otel/options.ts';
import { startTracing } from '../plugins/otel/tracing.ts';
import { median, sleep } from './lib.ts';
import { HOST, type OtelIsolated } from './otel-report.ts';
import { childReceiver } from './otel-receiver.ts';
import { mainThreadCpuMicros, threadsCpuMicros } from './schedstat.ts';

/**
 * The otel plugin's calls for one proxied request, as the proxy makes them (upstreamHeaders with the head about
 * to be sent, then request), `count` times; every 256 requests the loop lets the event loop run and, when
 * `pace`, waits (at most 0.5 s) until the export queue is back under two batches, as a server does between
 * requests, so the export keeps up instead of dropping. Main-thread CPU per request, µs.
 */
/** Spans each tracing made so far (what its counters will have settled once the queue is empty). */
const PACE_SPANS = 2 * batchOptions().batchSize;
const spansMade = new Map<ReturnType<typeof startTracing>, number>();

export async function tracedLoop(tracing: ReturnType<typeof startTracing> | null, count: number, pace: boolean): Promise<number> {
  return (await tracedLoopCpu(tracing, count, pace)).main;
}

/** tracedLoop's CPU per request, of the main thread and of all this process's threads. */
export async function tracedLoopCpu(tracing: ReturnType<typeof startTracing> | null, count: number, pace: boolean): Promise<{ main: number; all: number }> {
  const instance = {
    service: 'hello',
    id: 'bench',
    key: 'hello:bench',
    state: 'running',
    tier: 'process',
    handle: { address: { host: '127.0.0.1', port: 40000 }, inProcess: false },
  } as unknown as InstanceView;
  const heads: Record<string, string> = { host: HOST, 'user-agent': 'wrk' };
  const header = (name: string): string | undefined => heads[name];
  const before = mainThreadCpuMicros(process.pid);
  const allBefore = threadsCpuMicros(process.pid);
  for (let i = 0; i < count; i++) {
    const receivedAt = performance.now();
    const exchange = {
      method: 'GET',
      target: '/',
      hostname: HOST,
      remoteAddress: '127.0.0.1',
      upgrade: false,
      receivedAt,
      startedAt: receivedAt,
      wakeMs: 0,
      header,
    } as unknown as ProxyExchange;
    const headers = ['host', HOST, 'user-agent', 'wrk', 'x-forwarded-for', '127.0.0.1'];
    if (tracing !== null) {
      tracing.spans.upstream({ exchange, instance, headers });
      tracing.spans.request({ exchange, instance, method: 'GET', status: 200, durationMs: 0.1, wakeMs: 0 });
      spansMade.set(tracing, (spansMade.get(tracing) ?? 0) + 2);
    }
    if ((i & 255) === 255) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (pace && tracing !== null) {
        const c = tracing.counters;
        const until = Date.now() + 500;
        while (spansMade.get(tracing)! - c.exported - c.failed - c.dropped > PACE_SPANS && Date.now() < until) await sleep(1);
      }
    }
  }
  return { main: (mainThreadCpuMicros(process.pid) - before) / count, all: (threadsCpuMicros(process.pid) - allBefore) / count };
}

export async function runOtelIsolated(options: { rounds?: number; requests?: number } = {}): Promise<OtelIsolated> {
  const rounds = options.rounds ?? 7;
  const requests = options.requests ?? 20_000;
  const receiver = await childReceiver('ok');
  const hanging = await childReceiver('never');
  const onError = (): void => {};
  const exporting = startTracing(resolveTracing({ endpoint: receiver.url, sampler: 'always_on' }, {})!, '0.0.0', onError);
  const toHanging = startTracing(resolveTracing({ endpoint: hanging.url, sampler: 'always_on' }, {})!, '0.0.0', onError);
  try {
    const exported: number[] = [];
    const exportedAll: number[] = [];
    const dropped: number[] = [];
    let tracedRequests = 0;
    await tracedLoop(exporting, 2_000, true);
    await tracedLoop(toHanging, 2_000, false);
    const before = await receiver.count();
    for (let r = 0; r < rounds; r++) {
      const base = await tracedLoopCpu(null, requests, false);
      const traced = await tracedLoopCpu(exporting, requests, true);
      exported.push(traced.main - base.main);
      exportedAll.push(traced.all - base.all);
      tracedRequests += requests;
      dropped.push((await tracedLoop(toHanging, requests, false)) - base.main);
    }
    await exporting.shutdown();
    const received = (await receiver.count()) - before;
    return {
      requestsPerRound: requests,
      rounds,
      exportedUs: median(exported),
      exportedRange: [Math.min(...exported), Math.max(...exported)],
      exportedAllThreadsUs: median(exportedAll),
      hangingUs: median(dropped),
      hangingRange: [Math.min(...dropped), Math.max(...dropped)],
      spansPerRequest: received / tracedRequests,
    };
  } finally {
    await Promise.race([Promise.all([exporting.shutdown(), toHanging.shutdown()]), sleep(6_000)]);
    receiver.close();
    hanging.close();
  }
}
