/**
 * Per-function metrics of the wasm tier, on the kernel's prom-client registry. Label conventions follow
 * plugins/metrics: `service` for service-wide families, `instance` (`service:id`) for per-tenant ones, so a
 * tenant token's /api/metrics shows its own invocation counts.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { WasmPool } from '../../core/wasm/pool.ts';
import type { WasmCallTiming, WasmFailureKind } from '../../core/wasm/types.ts';

const DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export type InvocationOutcome = 'ok' | WasmFailureKind;

export class WasmMetrics {
  private invocations: Counter<'service' | 'instance' | 'outcome'> | null = null;
  private duration: Histogram<'service'> | null = null;
  private queueWait: Histogram<'service'> | null = null;
  private instantiations: Counter<'service'> | null = null;
  private loopback: Counter<'service' | 'instance'> | null = null;
  private fuel: Counter<'service' | 'instance'> | null = null;
  private inline: Counter<'service' | 'placement'> | null = null;

  constructor(
    private readonly pool: () => WasmPool | null,
    private readonly services: () => string[],
  ) {}

  register(registry: Registry): void {
    this.invocations = new Counter({
      name: 'tenement_wasm_invocations_total',
      help: 'Requests served by wasm functions, by outcome (ok, trap, timeout, exit, out-of-memory, output-too-large, overloaded, error).',
      labelNames: ['service', 'instance', 'outcome'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'tenement_wasm_duration_seconds',
      help: 'Time a wasm function ran in its pool worker (or on the main thread) per request, instantiation included (queue wait excluded).',
      labelNames: ['service'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    });
    this.queueWait = new Histogram({
      name: 'tenement_wasm_queue_wait_seconds',
      help: 'Time a wasm request waited for a pool worker.',
      labelNames: ['service'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    });
    this.instantiations = new Counter({
      name: 'tenement_wasm_instantiations_total',
      help: 'Wasm instances created (every request of a WASI CGI module or of a `fresh` function; first requests otherwise).',
      labelNames: ['service'],
      registers: [registry],
    });
    this.loopback = new Counter({
      name: 'tenement_wasm_loopback_requests_total',
      help: "Requests that reached a wasm instance through its own loopback HTTP server (tools, or a proxy that does not call it in-process) rather than directly from the kernel's proxy.",
      labelNames: ['service', 'instance'],
      registers: [registry],
    });
    this.fuel = new Counter({
      name: 'tenement_wasm_fuel_consumed_total',
      help: 'Fuel used by metered wasm functions (`wasm.fuel`, wasmtime): about one unit per wasm instruction run.',
      labelNames: ['service', 'instance'],
      registers: [registry],
    });
    this.inline = new Counter({
      name: 'tenement_wasm_main_thread_calls_total',
      help: 'wasmtime calls tried on the main thread (docs/wasm.md): ran there, or moved to a pool worker (the guest reached for a file, a sleep or a socket, or ran past its budget).',
      labelNames: ['service', 'placement'],
      registers: [registry],
    });
    const pool = this.pool;
    const services = this.services;
    new Gauge({
      name: 'tenement_wasm_live_instances',
      help: 'Wasm instances kept in pool workers for reuse, by service.',
      labelNames: ['service'],
      registers: [registry],
      collect() {
        this.reset();
        const current = pool();
        for (const service of services()) {
          this.set({ service }, current ? current.liveInstances((key) => key.startsWith(instanceKeyPrefix(service))) : 0);
        }
      },
    });
    new Gauge({
      name: 'tenement_wasm_pool_queue',
      help: 'Wasm calls (functions and plugins) waiting for a pool worker now.',
      registers: [registry],
      collect() {
        this.set(pool()?.queueSize ?? 0);
      },
    });
  }

  countLoopback(service: string, instance: string): void {
    this.loopback?.inc({ service, instance });
  }

  observe(service: string, instance: string, outcome: InvocationOutcome, timing: WasmCallTiming | undefined): void {
    this.invocations?.inc({ service, instance, outcome });
    if (!timing) return;
    this.duration?.observe({ service }, timing.runMs / 1000);
    this.queueWait?.observe({ service }, timing.queueMs / 1000);
    if (timing.instantiated) this.instantiations?.inc({ service });
    if (timing.fuelUsed !== undefined) this.fuel?.inc({ service, instance }, timing.fuelUsed);
    if (timing.inline !== undefined) this.inline?.inc({ service, placement: timing.inline });
  }
}

/** Pool instance keys of the tier: `fn/service:id` (plugins use their own prefix). */
export const instanceKeyPrefix = (service: string): string => `fn/${service}:`;
export const instanceKeyOf = (service: string, id: string): string => `${instanceKeyPrefix(service)}${id}`;
