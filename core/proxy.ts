import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCodes, errorMessage } from './errors.ts';
import { clientResponseHeaders, upstreamRequestHeaders, type ForwardedInfo } from './headers.ts';
import { sendError, sendSocketError, toHttpError, type HttpError } from './http-errors.ts';
import type { Instance } from './instance.ts';
import { instanceOf } from './plugin-context.ts';
import type { KernelHooks } from './hooks.ts';
import type { RouteTarget } from './types.ts';
import { wakeForRequest } from './wake.ts';
import { connectUpstream, unixPath } from './upstream-address.ts';
import { responseFramingProblem } from './dataplane/http1.ts';
import { serveInProcess } from './proxy-in-process.ts';

type InstanceTarget = Extract<RouteTarget, { kind: 'instances' }>;
type Outcome = 'done' | 'refused';
/** Methods a proxy may send twice (RFC 9110 9.2.1). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function forwardedInfo(req: IncomingMessage): ForwardedInfo {
  return {
    remoteAddress: req.socket.remoteAddress ?? '',
    proto: (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
    host: req.headers.host,
  };
}

/** See ClientConnection.probe: how long after the first interim response a second one tells a closed client apart. */
const PROBE_GAP_MS = 50;

/**
 * The client sent FIN while its request waits for an answer: it may have half-closed (still reading) or closed.
 * An interim 100 is written, and again a little later: a closed client's kernel resets the connection on the
 * first, the second fails, and the response closes (which aborts the upstream request). HTTP/1.1 clients only.
 */
function probeOnEnd(req: IncomingMessage, res: ServerResponse): void {
  if (req.httpVersionMinor < 1 && req.httpVersionMajor === 1) return;
  const socket = req.socket;
  let timer: NodeJS.Timeout | null = null;
  const probe = (): void => {
    if (res.headersSent || res.destroyed) return;
    res.writeContinue();
    timer = setTimeout(() => {
      timer = null;
      if (!res.headersSent && !res.destroyed) res.writeContinue();
    }, PROBE_GAP_MS);
  };
  if (socket.readableEnded) return probe();
  socket.once('end', probe);
  res.once('close', () => {
    socket.removeListener('end', probe);
    if (timer) clearTimeout(timer);
  });
}

const upstreamError = (code: string | undefined, instance: Instance, detail: string): HttpError =>
  code === 'ECONNREFUSED'
    ? { status: 502, code: ErrorCodes.UPSTREAM_REFUSED, message: `${instance.key} refused the connection` }
    : { status: 502, code: ErrorCodes.UPSTREAM_ERROR, message: `${instance.key}: ${detail}` };

/**
 * The data plane: forwards a routed request to an instance and streams both bodies. It wakes instances that
 * are not running through the `wake` hook, counts in-flight requests (for hibernation and drains), and maps
 * every failure to a status: 502 refused or broken, 503 cannot wake, 504 too slow.
 */
export class Proxy {
  /** Upstream connections are kept alive; idle ones are closed before a typical server's own 5 s timeout. */
  private readonly agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256, timeout: 4_000, scheduling: 'lifo' });

  constructor(private readonly hooks: KernelHooks) {}

  close(): void {
    this.agent.destroy();
  }

  async forward(req: IncomingMessage, res: ServerResponse, target: InstanceTarget): Promise<void> {
    const { candidates } = target;
    const bodyless = !hasBody(req);
    const startedAt = performance.now();
    let wakeMs = 0;
    let current: Instance | null = null;
    res.once('close', () => {
      if (!current || this.hooks.request.taps.length === 0) return;
      const status = res.headersSent ? res.statusCode : 0;
      this.hooks.request.call({ instance: current, method: req.method ?? 'GET', status, durationMs: performance.now() - startedAt, wakeMs });
    });
    probeOnEnd(req, res);
    for (let i = 0; i < candidates.length; i++) {
      const instance = instanceOf(candidates[i]!);
      const last = i === candidates.length - 1;
      current = instance;
      if (instance.state !== 'running' || !instance.handle) {
        const waitStarted = performance.now();
        try {
          await wakeForRequest(this.hooks, instance, res);
        } catch (error) {
          if (!last) continue;
          wakeMs = performance.now() - waitStarted;
          return sendError(res, toHttpError(error));
        }
        wakeMs = performance.now() - waitStarted;
        if (res.destroyed) return;
      }
      // An instance in this process (the wasm tier) takes the request directly: no connection to make.
      const inProcess = instance.handle!.inProcess;
      if (inProcess) return serveInProcess(instance, inProcess, req, res);
      const outcome = await this.attempt(instance, req, res, bodyless, bodyless && !last);
      if (outcome === 'done') return;
    }
  }

  private attempt(instance: Instance, req: IncomingMessage, res: ServerResponse, bodyless: boolean, mayFallBack: boolean): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      const address = instance.handle!.address;
      const socketPath = unixPath(address);
      let finished = false;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        instance.requestFinished();
      };
      instance.requestStarted();
      res.once('close', finish);

      const headers = upstreamRequestHeaders(req.rawHeaders, forwardedInfo(req));
      // A body of unknown length goes on chunked. Said explicitly: Node frames it by itself only for some methods
      // and would send a DELETE's or GET's body raw, for the app to read as another request.
      if (req.headers['transfer-encoding'] !== undefined) headers.push('Transfer-Encoding', 'chunked');
      const send = (retried: boolean): void => {
        const upstream = http.request({
          ...(socketPath ? { socketPath } : { host: address.host, port: address.port }),
          method: req.method,
          path: req.url,
          headers,
          agent: this.agent,
          setHost: false,
        });
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          upstream.destroy();
        }, instance.config.requestTimeout);

        upstream.once('response', (response) => {
          clearTimeout(timer);
          const problem = responseFramingProblem(response.rawHeaders);
          if (problem !== null) {
            // Framed one way by node and another by whoever listed the header: answered by neither.
            upstream.destroy();
            response.destroy();
            res.shouldKeepAlive = false;
            sendError(res, upstreamError(undefined, instance, problem));
            finish();
            return resolve('done');
          }
          res.writeHead(response.statusCode ?? 502, response.statusMessage, clientResponseHeaders(response.rawHeaders));
          response.pipe(res);
          response.once('error', () => res.destroy());
          resolve('done');
        });
        upstream.once('error', (error: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          if (timedOut) {
            sendError(res, {
              status: 504,
              code: ErrorCodes.UPSTREAM_TIMEOUT,
              message: `${instance.key} did not answer within ${instance.config.requestTimeout}ms`,
            });
          } else if (res.headersSent) {
            res.destroy();
          } else if (error.syscall === 'connect' && mayFallBack) {
            // The instance never accepted the connection (refused, or reset while dying): try the next one.
            finish();
            return resolve('refused');
          } else if (bodyless && !retried && upstream.reusedSocket && error.code === 'ECONNRESET') {
            // A kept-alive connection the instance closed just as we reused it: safe to send again once.
            return send(true);
          } else if (mayFallBack && error.code === 'ECONNRESET' && SAFE_METHODS.has(req.method ?? '')) {
            // The instance died holding a safe request it never answered: the next candidate may take it.
            finish();
            return resolve('refused');
          } else {
            sendError(res, upstreamError(error.code, instance, errorMessage(error)));
          }
          finish();
          resolve('done');
        });
        res.once('close', () => {
          if (!res.writableFinished) upstream.destroy();
        });
        if (bodyless) upstream.end();
        else req.pipe(upstream);
      };
      send(false);
    });
  }

  /** WebSocket (and any other) upgrades: the handshake goes through, then bytes flow both ways untouched. */
  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, target: InstanceTarget): Promise<void> {
    socket.on('error', () => socket.destroy());
    let instance: Instance | undefined;
    for (const view of target.candidates) {
      const candidate = instanceOf(view);
      try {
        if (candidate.state !== 'running' || !candidate.handle) await wakeForRequest(this.hooks, candidate, socket);
        instance = candidate;
        break;
      } catch (error) {
        if (candidate === target.candidates[target.candidates.length - 1]) return sendSocketError(socket, toHttpError(error));
      }
    }
    if (!instance?.handle || socket.destroyed) return;
    const chosen = instance;
    const upstream = connectUpstream(chosen.handle!.address);
    let connected = false;
    let finished = false;
    chosen.requestStarted();
    const finish = (): void => {
      if (finished) return;
      finished = true;
      chosen.requestFinished();
      upstream.destroy();
      // Before the upstream answered, an error response may still be flushing: let end() close the socket.
      if (connected) socket.destroy();
    };
    upstream.once('connect', () => {
      connected = true;
      const headers = upstreamRequestHeaders(req.rawHeaders, forwardedInfo(req), true);
      let text = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
      for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
      upstream.write(`${text}\r\n`);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.once('error', (error: NodeJS.ErrnoException) => {
      if (!connected) sendSocketError(socket, upstreamError(error.code, chosen, errorMessage(error)));
      finish();
    });
    upstream.once('close', finish);
    socket.once('close', finish);
  }
}
