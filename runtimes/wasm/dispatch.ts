/**
 * One wasm instance's request handler, whoever parsed the request: the kernel's proxy calls it directly
 * (`RunningHandle.inProcess`), the instance's loopback server (function-server.ts) after parsing. Dispatches to
 * the shared pool (CGI for WASI modules, handleHttp for components) and answers with the guest's response, or
 * with 500 (trap, exit, out of memory), 503 (queue full) or 504 (deadline) and a log line.
 */
import { ErrorCodes } from '../../core/errors.ts';
import type { InProcessRequest, InProcessResponse, SpawnSpec } from '../../core/types.ts';
import type { WasmHttpRequest } from '../../core/wasm/component/types.ts';
import type { LoadedCode } from '../../core/wasm/module-cache.ts';
import type { WasmPool } from '../../core/wasm/pool.ts';
import { MAX_OUTPUT_BYTES, type WasmCallOutcome, type WasmFailureKind } from '../../core/wasm/types.ts';
import { cgiEnv, parseCgiResponse } from './cgi.ts';
import { GuestMetrics } from './guest-metrics.ts';
import type { WasmMetrics } from './metrics.ts';
import { instanceKeyOf } from './metrics.ts';

/** Where the guest sees its tenant's DATA_DIR. */
export const GUEST_DATA_DIR = '/data';

export interface FunctionSettings {
  timeoutMs: number;
  fresh: boolean;
  maxQueue: number;
  maxBody: number;
  /** Fuel budget of one request (`wasm.fuel`; code compiled with metering, wasmtime). */
  fuel?: number;
}

const STATUS_BY_KIND: Record<WasmFailureKind, number> = {
  trap: 500,
  exit: 500,
  'out-of-memory': 500,
  // The guest answered, but more than a response may hold: a bad upstream answer, never a cut 200.
  'output-too-large': 502,
  error: 500,
  overloaded: 503,
  timeout: 504,
};

export class FunctionDispatcher {
  readonly instanceKey: string;
  private readonly instanceLabel: string;
  private readonly baseEnv: Record<string, string>;
  /** Requests handed to the pool and not answered yet (the loopback server's and the proxy's together). */
  inFlight = 0;
  /** What the guest published through the metrics import during this run. */
  readonly guestMetrics = new GuestMetrics();
  private stopped = false;
  private onIdle: (() => void) | null = null;

  constructor(
    private readonly spec: SpawnSpec,
    private readonly code: LoadedCode,
    private readonly pool: WasmPool,
    readonly settings: FunctionSettings,
    private readonly metrics: WasmMetrics,
  ) {
    this.instanceKey = instanceKeyOf(spec.service, spec.id);
    this.instanceLabel = `${spec.service}:${spec.id}`;
    // The guest's environment: the service's own env, with DATA_DIR where the guest sees it. No host variables
    // (PATH, HOME, secrets) and no host paths.
    const userEnv: Record<string, string> = {};
    for (const name of Object.keys(spec.config.env)) if (Object.hasOwn(spec.env, name) && spec.env[name] !== undefined) userEnv[name] = spec.env[name]!;
    this.baseEnv = { ...userEnv, DATA_DIR: GUEST_DATA_DIR, TENEMENT_SERVICE: spec.service, TENEMENT_INSTANCE: spec.id };
  }

  /** Answers one request; rejects once the instance stopped (its pool instances are gone, none is made again). */
  async serve(request: InProcessRequest): Promise<InProcessResponse> {
    if (this.stopped) throw new Error('the instance stopped');
    const { method, target } = request;
    const q = target.indexOf('?');
    const path = q === -1 ? target : target.slice(0, q);
    if (this.inFlight >= this.settings.maxQueue) {
      this.metrics.observe(this.spec.service, this.instanceLabel, 'overloaded', undefined);
      return this.fail('overloaded', `${this.inFlight} requests of this instance already in the pool`, method, path);
    }
    const headers: [string, string][] = [];
    for (let i = 0; i < request.headers.length; i += 2) headers.push([request.headers[i]!, request.headers[i + 1]!]);
    const call: WasmHttpRequest = { method, path, query: q === -1 ? '' : target.slice(q + 1), headers, body: request.body };
    this.inFlight++;
    try {
      return await this.dispatch(call, request.remoteAddress);
    } catch (error) {
      return this.fail('error', (error as Error).message, method, path);
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.onIdle?.();
    }
  }

  /** No new requests from now on; resolves when those in the pool are answered, or after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    if (this.inFlight === 0) return;
    await Promise.race([new Promise<void>((resolve) => (this.onIdle = resolve)), new Promise((resolve) => setTimeout(resolve, graceMs).unref())]);
  }

  private fail(kind: WasmFailureKind, message: string, method: string, path: string): InProcessResponse {
    this.spec.onLog('stderr', `[wasm] ${method} ${path}: ${kind}: ${message}`);
    if (kind === 'output-too-large') {
      const error = { code: ErrorCodes.WASM_OUTPUT_TOO_LARGE, message: `the function's response is larger than ${MAX_OUTPUT_BYTES} bytes` };
      return { status: 502, headers: [['content-type', 'application/json']], body: Buffer.from(JSON.stringify({ error })) };
    }
    const text = kind === 'overloaded' ? 'function overloaded, try again' : kind === 'timeout' ? 'function timed out' : `function failed (${kind})`;
    return { status: STATUS_BY_KIND[kind], headers: [['content-type', 'text/plain; charset=utf-8']], body: Buffer.from(`${text}\n`) };
  }

  private async dispatch(request: WasmHttpRequest, remoteAddr: string): Promise<InProcessResponse> {
    const { spec, code, settings, metrics, instanceLabel } = this;
    let outcome: WasmCallOutcome;
    if (code.kind === 'module') {
      const hostHeader = request.headers.find(([name]) => name.toLowerCase() === 'host')?.[1] ?? '';
      const env = cgiEnv(request, { serverName: hostHeader.replace(/:\d+$/, ''), serverPort: spec.port, remoteAddr }, this.baseEnv);
      outcome = await this.pool.runWasi(code.compiled, {
        instanceKey: this.instanceKey,
        deadlineMs: settings.timeoutMs,
        args: [spec.service],
        env,
        stdin: request.body,
        dataDir: spec.dataDir,
        preopenAs: GUEST_DATA_DIR,
        ...(settings.fuel !== undefined && { fuel: settings.fuel }),
      });
    } else {
      outcome = await this.pool.serveComponent(code.artifact, {
        instanceKey: this.instanceKey,
        deadlineMs: settings.timeoutMs,
        fresh: settings.fresh,
        dataDir: spec.dataDir,
        request,
      });
    }
    for (const entry of outcome.logs) spec.onLog(entry.stream, entry.line);
    if (outcome.metrics) this.guestMetrics.apply(outcome.metrics);
    if (!outcome.ok) {
      metrics.observe(spec.service, instanceLabel, outcome.kind, outcome.timing);
      return this.fail(outcome.kind, outcome.message, request.method, request.path);
    }
    if (code.kind === 'module') {
      const { exitCode, stdout } = outcome.value as { exitCode: number; stdout: Uint8Array };
      // A non-zero exit is a failed request even when headers were written: the guest said it failed.
      if (exitCode !== 0) {
        metrics.observe(spec.service, instanceLabel, 'exit', outcome.timing);
        return this.fail('exit', `the guest exited with code ${exitCode}`, request.method, request.path);
      }
      try {
        const answer = parseCgiResponse(stdout);
        metrics.observe(spec.service, instanceLabel, 'ok', outcome.timing);
        return answer;
      } catch (error) {
        metrics.observe(spec.service, instanceLabel, 'error', outcome.timing);
        return this.fail('error', `bad CGI response: ${(error as Error).message}`, request.method, request.path);
      }
    }
    metrics.observe(spec.service, instanceLabel, 'ok', outcome.timing);
    return outcome.value as InProcessResponse;
  }
}
