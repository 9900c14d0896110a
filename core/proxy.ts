import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorMessage } from './errors.ts';
import { clientResponseHeaders, upstreamRequestHeaders, type ForwardedInfo } from './headers.ts';
import { sendError, sendSocketError } from './http-errors.ts';
import { Instance } from './instance.ts';
import type { KernelHooks } from './hooks.ts';
import type { RouteTarget } from './types.ts';
import { connectUpstream, unixPath } from './upstream-address.ts';
import { responseFramingProblem } from './dataplane/http1.ts';
import { RequestContext, awaitRunChange, decideAfterFailure, editUpstreamHeaders, pickCandidate, reportRequest, runGone, upstreamFailure } from './dataplane/policy.ts';
import { serveInProcess } from './proxy-in-process.ts';

type InstanceTarget = Extract<RouteTarget, { kind: 'instances' }>;
type Outcome = 'done' | 'next-candidate' | 'wait-instance';

/** What the entry knew of a request before routing it: the host name it asked for and when its head was read. */
export interface Received {
  hostname: string;
  receivedAt: number;
}

function requestContext(req: IncomingMessage, bodyless: boolean, target: InstanceTarget, received: Received): RequestContext {
  const remote = req.socket.remoteAddress ?? '';
  return new RequestContext(req.method ?? 'GET', bodyless, target.candidates, req.url ?? '/', received.hostname, req.rawHeaders, remote, received.receivedAt);
}

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

/** llhttp refused what the upstream sent: it answered, badly. */
const isParseError = (error: NodeJS.ErrnoException): boolean => error.code?.startsWith('HPE_') === true;

/**
 * The node:http data plane: forwards a routed request to an instance and streams both bodies, counting
 * in-flight requests (for hibernation and drains). Which instance, wake, failover, resend, the answer to a
 * failure (502 refused or broken, 503 cannot wake, 504 too slow) and reporting follow the proxy policy
 * (dataplane/policy.ts), as on the fast path.
 */
export class Proxy {
  /** Upstream connections are kept alive; idle ones are closed before a typical server's own 5 s timeout. */
  private readonly agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256, timeout: 4_000, scheduling: 'lifo' });

  constructor(private readonly hooks: KernelHooks) {}

  close(): void {
    this.agent.destroy();
  }

  async forward(req: IncomingMessage, res: ServerResponse, target: InstanceTarget, received: Received): Promise<void> {
    const ctx = requestContext(req, !hasBody(req), target, received);
    res.once('close', () => {
      ctx.status = res.headersSent ? res.statusCode : 0;
      reportRequest(this.hooks, ctx);
    });
    probeOnEnd(req, res);
    for (let from = 0; ; ) {
      const picked = await pickCandidate(ctx, this.hooks, res, from);
      if (picked === null || res.destroyed) return;
      if (!(picked instanceof Instance)) return sendError(res, picked);
      // An instance in this process (the wasm tier) takes the request directly: no connection to make.
      const inProcess = picked.handle!.inProcess;
      if (inProcess) return serveInProcess(picked, inProcess, req, res, (headers) => editUpstreamHeaders(this.hooks, ctx, picked, headers));
      const outcome = await this.attempt(ctx, picked, req, res);
      if (outcome === 'done') return;
      from = outcome === 'wait-instance' ? ctx.attempt : ctx.attempt + 1;
    }
  }

  private attempt(ctx: RequestContext, instance: Instance, req: IncomingMessage, res: ServerResponse): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      const run = instance.handle;
      const address = run!.address;
      const socketPath = unixPath(address);
      let finished = false;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        instance.requestFinished();
      };
      instance.requestStarted();
      res.once('close', finish);
      ctx.retried = false;

      const headers = upstreamRequestHeaders(req.rawHeaders, forwardedInfo(req));
      // A body of unknown length goes on chunked. Said explicitly: Node frames it by itself only for some methods
      // and would send a DELETE's or GET's body raw, for the app to read as another request.
      if (req.headers['transfer-encoding'] !== undefined) headers.push('Transfer-Encoding', 'chunked');
      editUpstreamHeaders(this.hooks, ctx, instance, headers);
      const send = (): void => {
        const upstream = http.request({
          ...(socketPath ? { socketPath } : { host: address.host, port: address.port }),
          method: req.method,
          path: req.url,
          headers,
          agent: this.agent,
          setHost: false,
        });
        let timedOut = false;
        /** Body bytes went to this upstream: the request cannot go elsewhere any more. */
        let bodySent = false;
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
            sendError(res, upstreamFailure(instance, false, undefined, problem));
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
          const decision = decideAfterFailure({
            attempt: ctx.attempt,
            candidates: ctx.candidates.length,
            connected: error.syscall !== 'connect',
            answered: res.headersSent || isParseError(error),
            timedOut,
            bodyless: ctx.bodyless,
            bodySent,
            method: ctx.method,
            reused: upstream.reusedSocket,
            retried: ctx.retried,
            instanceGone: runGone(instance, run),
            rewoken: ctx.rewoken,
          });
          if (decision === 'resend-fresh') {
            ctx.retried = true;
            return send();
          }
          finish();
          if (decision === 'next-candidate') return resolve(decision);
          const failure = upstreamFailure(instance, timedOut, error.code, errorMessage(error));
          if (decision === 'wait-instance') {
            // This attempt's claim has ended (a drain waiting on it goes on): the next run, or the failure.
            ctx.rewoken = true;
            return void awaitRunChange(instance, run, res).then((changed) => {
              if (changed) return resolve('wait-instance');
              if (!res.destroyed) sendError(res, failure);
              resolve('done');
            });
          }
          if (res.headersSent) res.destroy();
          else sendError(res, failure);
          resolve('done');
        });
        res.once('close', () => {
          if (!res.writableFinished) upstream.destroy();
        });
        if (ctx.bodyless) return void upstream.end();
        // The body is read off the client only once the instance accepted the connection: until then it can
        // still go to another candidate (as on the fast path, which holds it in the connection's stash).
        upstream.once('socket', (socket) => {
          const pipe = (): void => {
            if (upstream.destroyed) return;
            bodySent = true;
            req.pipe(upstream);
          };
          if (socket.connecting) socket.once('connect', pipe);
          else pipe();
        });
      };
      send();
    });
  }

  /** WebSocket (and any other) upgrades: the handshake goes through, then bytes flow both ways untouched. */
  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, target: InstanceTarget, received: Received): Promise<void> {
    socket.on('error', () => socket.destroy());
    // Upgrades are not reported through the `request` hook (a connection, not a request): the context picks,
    // and decides what a refused connection means.
    const ctx = requestContext(req, true, target, received);
    ctx.upgrade = true;
    await this.tunnel(ctx, req, socket, head, 0);
  }

  private async tunnel(ctx: RequestContext, req: IncomingMessage, socket: Duplex, head: Buffer, from: number): Promise<void> {
    const chosen = await pickCandidate(ctx, this.hooks, socket, from);
    if (chosen === null || socket.destroyed) return;
    if (!(chosen instanceof Instance)) return sendSocketError(socket, chosen);
    const run = chosen.handle;
    const upstream = connectUpstream(run!.address);
    let connected = false;
    let finished = false;
    chosen.requestStarted();
    const release = (): void => {
      finished = true;
      chosen.requestFinished();
      upstream.destroy();
      socket.removeListener('close', finish);
    };
    const finish = (): void => {
      if (finished) return;
      release();
      // Before the upstream answered, an error response may still be flushing: let end() close the socket.
      if (connected) socket.destroy();
    };
    upstream.once('connect', () => {
      connected = true;
      const headers = upstreamRequestHeaders(req.rawHeaders, forwardedInfo(req), true);
      // Plugins edit an upgrade's head as they do a request's (fleet signs what a stand-in forwards, otel adds
      // traceparent): an upgrade that skipped them would reach another node unsigned.
      editUpstreamHeaders(this.hooks, ctx, chosen, headers);
      let text = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
      for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
      upstream.write(`${text}\r\n`);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.once('error', (error: NodeJS.ErrnoException) => {
      if (finished) return;
      if (!connected) {
        const decision = decideAfterFailure({
          attempt: ctx.attempt,
          candidates: ctx.candidates.length,
          connected: false,
          answered: false,
          timedOut: false,
          bodyless: true,
          bodySent: false,
          method: ctx.method,
          reused: false,
          retried: false,
          instanceGone: runGone(chosen, run),
          rewoken: ctx.rewoken,
        });
        if (decision === 'next-candidate') {
          release();
          return void this.tunnel(ctx, req, socket, head, ctx.attempt + 1).catch(() => socket.destroy());
        }
        const failure = upstreamFailure(chosen, false, error.code, errorMessage(error));
        if (decision === 'wait-instance') {
          release();
          ctx.rewoken = true;
          return void awaitRunChange(chosen, run, socket)
            .then((changed) => (changed ? this.tunnel(ctx, req, socket, head, ctx.attempt) : sendSocketError(socket, failure)))
            .catch(() => socket.destroy());
        }
        sendSocketError(socket, failure);
      }
      finish();
    });
    upstream.once('close', finish);
    socket.once('close', finish);
  }
}
