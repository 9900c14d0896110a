/**
 * One wasm instance's HTTP face: a node:http server on the instance's loopback port, so the instance has an
 * address like any process instance (tools reach it directly; a proxy that cannot call in-process falls back
 * to it). The kernel's proxy normally skips it and calls the handle's `inProcess` handler (dispatch.ts), which
 * this server calls too once it has read a request whole.
 */
import { rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { bodyTooLarge } from '../../core/in-process.ts';
import type { ExitInfo, InProcessResponse, RunningHandle, SpawnSpec } from '../../core/types.ts';
import type { LoadedCode } from '../../core/wasm/module-cache.ts';
import type { WasmPool } from '../../core/wasm/pool.ts';
import { FunctionDispatcher, type FunctionSettings } from './dispatch.ts';
import type { WasmMetrics } from './metrics.ts';

export { GUEST_DATA_DIR, type FunctionSettings } from './dispatch.ts';

export async function startFunctionServer(
  spec: SpawnSpec,
  code: LoadedCode,
  pool: WasmPool,
  settings: FunctionSettings,
  metrics: WasmMetrics,
): Promise<RunningHandle> {
  const dispatcher = new FunctionDispatcher(spec, code, pool, settings, metrics);
  const instanceLabel = `${spec.service}:${spec.id}`;

  const server = http.createServer((req, res) => {
    // Counted so the direct path can be told from this one (tools, or a proxy without in-process calls).
    metrics.countLoopback(spec.service, instanceLabel);
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > settings.maxBody) {
        if (!tooLarge) send(res, bodyTooLarge(), true);
        tooLarge = true;
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) return;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      dispatcher
        .serve({ method: req.method ?? 'GET', target: req.url ?? '/', headers: req.rawHeaders, body, remoteAddress: req.socket.remoteAddress ?? '' })
        .then((answer) => send(res, answer))
        .catch((error: unknown) => send(res, { status: 503, headers: [['content-type', 'text/plain']], body: Buffer.from(`${(error as Error).message}\n`) }, true));
    });
  });
  // The guest may take its whole deadline; the server must not give up on the exchange before it does.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 5_000;

  // `listen: 'socket'` puts the listener on a Unix socket in DATA_DIR, as for process instances (a stale file
  // from an earlier run is removed first).
  if (spec.socketPath) rmSync(spec.socketPath, { force: true });
  // Not awaited: the kernel's proxy calls the instance in-process, so a wake need not wait for its loopback face
  // (a lookup of the host and the 'listening' event: two turns of the loop). The port was handed out without a
  // probe (TierTraits.probesPort); if another program holds it, the instance ends as a crash would, and the
  // supervisor starts it again on another port. A health check over HTTP polls until the listener answers, as for a process.
  let listenFailed = false;
  const listened = new Promise<void>((resolve) => {
    const failed = (error: Error) => {
      listenFailed = true;
      resolve();
      spec.onLog('stderr', `[wasm] cannot listen on ${spec.socketPath ?? `port ${spec.port}`}: ${error.message}`);
      void dispatcher.stop(0).then(() => {
        pool.dropInstances(dispatcher.instanceKey);
        spec.onExit({ code: 1, signal: null });
      });
    };
    server.once('error', failed);
    const listening = () => {
      server.off('error', failed);
      resolve();
    };
    const listen = () => (spec.socketPath ? server.listen(spec.socketPath, listening) : server.listen(spec.port, spec.host, listening));
    // A port handed out is bound after this turn of the loop (the wake's waiting request is answered in it: the
    // listen's socket, bind and lookup are off its path). A socket is bound at once: the supervisor pins its file
    // once the instance is ready. A caller asking for any port waits for it below.
    if (spec.socketPath || spec.port === 0) listen();
    else setImmediate(listen);
  });
  // The instance's port is the one handed out (listen binds exactly it); a caller asking for any port (0) waits.
  if (!spec.socketPath && spec.port === 0) await listened;
  const port = spec.socketPath || spec.port !== 0 ? spec.port : (server.address() as AddressInfo).port;

  return {
    pid: null,
    pgid: null,
    address: spec.socketPath ? { host: spec.host, port, socketPath: spec.socketPath } : { host: spec.host, port },
    async stop({ graceMs, hibernating = false }): Promise<ExitInfo> {
      // A listen still under way would bind after a close: it settles first.
      await listened;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await dispatcher.stop(graceMs);
      server.closeAllConnections();
      await closed;
      // Hibernation and stops free the tenant's instances in every worker; the next request starts afresh (in the
      // module's store made ahead, which a hibernation keeps).
      pool.dropInstances(dispatcher.instanceKey, { keepPrepared: hibernating });
      const exit: ExitInfo = { code: 0, signal: null };
      spec.onExit(exit);
      return exit;
    },
    async stats() {
      return { pid: null, memoryBytes: null, cpuSeconds: null };
    },
    async ownsAddress() {
      // Listening, or about to: the address is this instance's unless its bind failed.
      return !listenFailed;
    },
    inProcess: { maxBody: settings.maxBody, serve: (request) => dispatcher.serve(request), metrics: () => dispatcher.guestMetrics.render() },
  };
}

function send(res: http.ServerResponse, answer: InProcessResponse, close = false): void {
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
