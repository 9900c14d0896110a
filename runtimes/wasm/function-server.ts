/**
 * One wasm instance's HTTP face: a node:http server on the instance's loopback port, so the router, proxy,
 * auth, metrics, logs and hibernation treat it like any process instance. Each request is read whole,
 * dispatched to the shared pool and answered with the guest's response, or with 500 (trap, exit, out of
 * memory), 503 (queue full) or 504 (deadline) and a log line.
 */
import { rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExitInfo, RunningHandle, SpawnSpec } from '../../core/types.ts';
import type { WasmHttpRequest } from '../../core/wasm/component/types.ts';
import type { LoadedCode } from '../../core/wasm/module-cache.ts';
import type { WasmPool } from '../../core/wasm/pool.ts';
import type { WasmCallOutcome, WasmFailureKind } from '../../core/wasm/types.ts';
import { cgiEnv, parseCgiResponse } from './cgi.ts';
import type { WasmMetrics } from './metrics.ts';
import { instanceKeyOf } from './metrics.ts';

/** Where the guest sees its tenant's DATA_DIR. */
export const GUEST_DATA_DIR = '/data';

export interface FunctionSettings {
  timeoutMs: number;
  fresh: boolean;
  maxQueue: number;
  maxBody: number;
}

const STATUS_BY_KIND: Record<WasmFailureKind, number> = {
  trap: 500,
  exit: 500,
  'out-of-memory': 500,
  error: 500,
  overloaded: 503,
  timeout: 504,
};

type Answer = { status: number; headers: [string, string][]; body: Uint8Array };

export async function startFunctionServer(
  spec: SpawnSpec,
  code: LoadedCode,
  pool: WasmPool,
  settings: FunctionSettings,
  metrics: WasmMetrics,
): Promise<RunningHandle> {
  const instanceKey = instanceKeyOf(spec.service, spec.id);
  const instanceLabel = `${spec.service}:${spec.id}`;
  // The guest's environment: the service's own env, with DATA_DIR where the guest sees it. No host variables
  // (PATH, HOME, secrets) and no host paths.
  const userEnv: Record<string, string> = {};
  for (const name of Object.keys(spec.config.env)) if (spec.env[name] !== undefined) userEnv[name] = spec.env[name]!;
  const baseEnv = { ...userEnv, DATA_DIR: GUEST_DATA_DIR, TENEMENT_SERVICE: spec.service, TENEMENT_INSTANCE: spec.id };
  let inFlight = 0;
  let stopped = false;

  const fail = (kind: WasmFailureKind, message: string, method: string, path: string): Answer => {
    spec.onLog('stderr', `[wasm] ${method} ${path}: ${kind}: ${message}`);
    const text = kind === 'overloaded' ? 'function overloaded, try again' : kind === 'timeout' ? 'function timed out' : `function failed (${kind})`;
    return { status: STATUS_BY_KIND[kind], headers: [['content-type', 'text/plain; charset=utf-8']], body: Buffer.from(`${text}\n`) };
  };

  async function dispatch(request: WasmHttpRequest, req: http.IncomingMessage): Promise<Answer> {
    let outcome: WasmCallOutcome;
    if (code.kind === 'module') {
      const host = (req.headers.host ?? '').replace(/:\d+$/, '');
      const env = cgiEnv(request, { serverName: host, serverPort: spec.port, remoteAddr: req.socket.remoteAddress ?? '' }, baseEnv);
      outcome = await pool.runWasi(code.compiled, {
        instanceKey,
        deadlineMs: settings.timeoutMs,
        args: [spec.service],
        env,
        stdin: request.body,
        dataDir: spec.dataDir,
        preopenAs: GUEST_DATA_DIR,
      });
    } else {
      outcome = await pool.serveComponent(code.artifact, {
        instanceKey,
        deadlineMs: settings.timeoutMs,
        fresh: settings.fresh,
        dataDir: spec.dataDir,
        request,
      });
    }
    for (const entry of outcome.logs) spec.onLog(entry.stream, entry.line);
    if (!outcome.ok) {
      metrics.observe(spec.service, instanceLabel, outcome.kind, outcome.timing);
      return fail(outcome.kind, outcome.message, request.method, request.path);
    }
    if (code.kind === 'module') {
      const { exitCode, stdout } = outcome.value as { exitCode: number; stdout: Uint8Array };
      // A non-zero exit is a failed request even when headers were written: the guest said it failed.
      if (exitCode !== 0) {
        metrics.observe(spec.service, instanceLabel, 'exit', outcome.timing);
        return fail('exit', `the guest exited with code ${exitCode}`, request.method, request.path);
      }
      try {
        const answer = parseCgiResponse(stdout);
        metrics.observe(spec.service, instanceLabel, 'ok', outcome.timing);
        return answer;
      } catch (error) {
        metrics.observe(spec.service, instanceLabel, 'error', outcome.timing);
        return fail('error', `bad CGI response: ${(error as Error).message}`, request.method, request.path);
      }
    }
    metrics.observe(spec.service, instanceLabel, 'ok', outcome.timing);
    return outcome.value as Answer;
  }

  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const query = q === -1 ? '' : url.slice(q + 1);
    const method = req.method ?? 'GET';
    if (inFlight >= settings.maxQueue) {
      metrics.observe(spec.service, instanceLabel, 'overloaded', undefined);
      send(res, fail('overloaded', `${inFlight} requests of this instance already in the pool`, method, path));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > settings.maxBody) {
        if (!tooLarge) send(res, { status: 413, headers: [['content-type', 'text/plain']], body: Buffer.from('request body too large\n') }, true);
        tooLarge = true;
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) return;
      const headers: [string, string][] = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      const request: WasmHttpRequest = { method, path, query, headers, body: new Uint8Array(body.buffer, body.byteOffset, body.length) };
      inFlight++;
      dispatch(request, req)
        .then((answer) => send(res, answer))
        .catch((error: unknown) => send(res, fail('error', (error as Error).message, method, path)))
        .finally(() => {
          inFlight--;
          if (stopped && inFlight === 0) idle?.();
        });
    });
  });
  // The guest may take its whole deadline; the server must not give up on the exchange before it does.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 5_000;

  let idle: (() => void) | null = null;
  // `listen: 'socket'` puts the listener on a Unix socket in DATA_DIR, as for process instances (a stale file
  // from an earlier run is removed first).
  if (spec.socketPath) rmSync(spec.socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const listening = () => {
      server.off('error', reject);
      resolve();
    };
    if (spec.socketPath) server.listen(spec.socketPath, listening);
    else server.listen(spec.port, spec.host, listening);
  });
  const port = spec.socketPath ? spec.port : (server.address() as AddressInfo).port;

  return {
    pid: null,
    pgid: null,
    address: spec.socketPath ? { host: spec.host, port, socketPath: spec.socketPath } : { host: spec.host, port },
    async stop({ graceMs }): Promise<ExitInfo> {
      stopped = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (inFlight > 0) {
        await Promise.race([new Promise<void>((resolve) => (idle = resolve)), new Promise((resolve) => setTimeout(resolve, graceMs).unref())]);
      }
      server.closeAllConnections();
      await closed;
      // Hibernation and stops free the tenant's instances in every worker; the next request starts afresh.
      pool.dropInstances(instanceKey);
      const exit: ExitInfo = { code: 0, signal: null };
      spec.onExit(exit);
      return exit;
    },
    async stats() {
      return { pid: null, memoryBytes: null, cpuSeconds: null };
    },
    async ownsAddress() {
      return server.listening;
    },
  };
}

function send(res: http.ServerResponse, answer: Answer, close = false): void {
  if (res.headersSent) return;
  try {
    const headers: string[] = [];
    for (const [name, value] of answer.headers) headers.push(name, value);
    if (close) headers.push('connection', 'close');
    res.writeHead(answer.status, headers);
    res.end(answer.body);
  } catch (error) {
    // A header the guest made up that node refuses: answer 500 rather than leave the client hanging.
    if (!res.headersSent) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`function returned an invalid response: ${(error as Error).message}\n`);
    } else {
      res.destroy();
    }
  }
}
