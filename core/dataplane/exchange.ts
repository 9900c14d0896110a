import { ErrorCodes, errorMessage } from '../errors.ts';
import { clientResponseHeaders } from '../headers.ts';
import { httpError, toHttpError, type HttpError } from '../http-errors.ts';
import { Instance } from '../instance.ts';
import type { RouteTarget } from '../types.ts';
import { serializeHead, type RequestHead, type ResponseHead } from './http1.ts';
import type { UpstreamConnection, UpstreamOwner } from './upstream-pool.ts';
import type { ClientConnection } from './client-connection.ts';
import { DirectExchange } from './direct-exchange.ts';
import { ReceivedHead, forwardedResponseHead, receivedRequestHead, tappedRequestHead, writeResponseStart } from './forwarded-head.ts';
import { RequestBodyFraming } from './request-body.ts';
import { ResponseBodyFraming } from './response-body.ts';
import { ResponseHeadReader } from './response-head-reader.ts';
import { own } from './read-buffer.ts';
import { RequestContext, awaitRunChange, decideAfterFailure, pickCandidate, reportRequest, runGone, upstreamFailure } from './policy.ts';

type InstanceTarget = Extract<RouteTarget, { kind: 'instances' }>;

/**
 * One request/response exchange on the fast path: the request head is rewritten, bodies are forwarded as raw
 * bytes, and message boundaries are tracked (Content-Length, chunked, or until close) so both connections
 * can be kept alive and reused. Which instance, wake, failover, resend and reporting follow the proxy policy
 * (policy.ts), as on the node:http path; the exchange is the request's policy context itself.
 */
export class Exchange extends RequestContext implements UpstreamOwner {
  private upstream: UpstreamConnection | null = null;
  private headBytes: Buffer | null = null;
  private received: Buffer | ReceivedHead | null = null;
  private readonly body: RequestBodyFraming;
  private readonly headReader = new ResponseHeadReader();
  private response: ResponseHead | null = null;
  private responseBody: ResponseBodyFraming | null = null;
  private gotResponseBytes = false;
  private upstreamReusable = true;
  /** Decided when the response head is sent: Connection: close went out with it. */
  private closeClient = false;
  private timer: NodeJS.Timeout | null = null;
  private timedOut = false;
  /** The run of the instance this attempt was sent to (policy.ts runGone). */
  private run: Instance['handle'] = null;
  /** The current candidate counts this request in flight. */
  private started = false;
  private finished = false;
  constructor(
    private readonly client: ClientConnection,
    private readonly head: RequestHead,
    target: InstanceTarget,
    hostname: string,
    receivedAt: number,
    /** The buffer the head was parsed from (valid during this call only: it may be the shared read buffer). */
    headSource: Buffer,
    /** In a proxy worker: the request's head as received, to hand the request back if its route went stale. */
    private readonly rawHead: Buffer | null = null,
  ) {
    super(head.method, !head.chunked && head.contentLength <= 0, target.candidates, head.target, hostname, head.raw, client.socket.remoteAddress ?? '', receivedAt);
    this.body = new RequestBodyFraming(head);
    // Kept lines copied while their bytes are there; upstreamHeaders taps add lines to them or edit a head per instance (useInstance).
    this.received = receivedRequestHead(client.context.hooks, head, this.remoteAddress, headSource);
  }

  /** The whole response has been seen (false before its head). */
  private get responseComplete(): boolean {
    return this.responseBody?.done ?? false;
  }

  /** The client has sent the whole request body (the next bytes are the next request's). */
  private get requestDone(): boolean {
    return this.body.done;
  }

  /**
   * Phase 1 (policy.ts) from candidate `from` on. A running candidate is used at once; a wake answers later.
   * Abandoned already (the client's FIN came with an unfinished request): nothing is started.
   */
  begin(from: number): void {
    if (this.finished) return;
    try {
      const picked = pickCandidate(this, this.client.context.hooks, this.client.socket, from);
      if (picked instanceof Instance) return this.useInstance(picked);
      picked.then(
        (result) => this.woken(result),
        (error: unknown) => this.fail(toHttpError(error)),
      );
    } catch (error) {
      this.fail(toHttpError(error));
    }
  }

  private woken(result: Instance | HttpError | null): void {
    if (this.client.closed || this.finished || result === null) return this.report();
    if (result instanceof Instance) return this.useInstance(result);
    this.fail(result);
  }

  private report(): void {
    reportRequest(this.client.context.hooks, this);
  }

  private useInstance(instance: Instance): void {
    const inProcess = instance.handle!.inProcess;
    if (inProcess) {
      // Served in this process: no connection to make. This exchange ends here without a word; the direct one
      // owns the client connection from now on and reports the request (this context).
      this.finished = true;
      const direct = new DirectExchange(this.client, this.head, instance, inProcess, this);
      this.client.replaceExchange(this, direct);
      return direct.start();
    }
    this.started = true;
    this.run = instance.handle;
    instance.requestStarted();
    const hooks = this.client.context.hooks;
    const received = this.received;
    this.headBytes = received === null || received instanceof ReceivedHead ? tappedRequestHead(hooks, this, instance, this.head, this.remoteAddress, received) : received;
    this.timer = setTimeout(() => this.onTimeout(), instance.config.requestTimeout);
    this.connect(false);
  }

  private connect(fresh: boolean): void {
    const address = this.instance!.handle!.address;
    const pool = this.client.context.pool;
    this.upstream = fresh ? pool.connect(address, this) : pool.acquire(address, this);
    if (this.upstream.connected) this.onUpstreamConnect();
  }

  onUpstreamConnect(): void {
    const socket = this.upstream!.socket;
    // A request without a body: its head in one plain write (no cork, no writev).
    if (this.requestDone) {
      socket.write(this.headBytes!);
      return this.checkClientEnd();
    }
    // Head and the body bytes already here leave in one write (writev): a syscall per request is most of
    // the proxy's cost on loopback.
    socket.cork();
    socket.write(this.headBytes!);
    if (!this.requestDone) {
      const pending = this.client.takeBuffer();
      if (pending) this.forwardRequestBytes(pending);
    }
    socket.uncork();
    if (!this.requestDone && !this.finished) this.client.resumeReading();
    this.checkClientEnd();
  }

  /** The client sent FIN (see ClientConnection.probe). */
  onClientEnd(): void {
    this.checkClientEnd();
  }

  /**
   * After the client's FIN: a request it never finished is abandoned at once (upstream aborted, in-flight
   * dropped); a complete one may be a half-close, which keeps its answer, so the client is probed instead.
   * Body bytes still stashed before the upstream connected are measured first (onUpstreamConnect calls again).
   */
  private checkClientEnd(): void {
    if (!this.client.clientEnded || this.finished) return;
    if (!this.requestDone) {
      if (this.upstream?.connected || !this.client.hasStash) this.abort();
      return;
    }
    if (!this.response) this.client.probe(() => !this.finished && !this.response);
  }

  /** Body bytes from the client while this exchange owns the connection. */
  onClientData(chunk: Buffer): void {
    if (this.requestDone || !this.upstream?.connected) {
      // The next pipelined request, or body bytes that arrived before the upstream connected.
      this.client.stash(chunk);
      return;
    }
    this.forwardRequestBytes(chunk);
  }

  private forwardRequestBytes(bytes: Buffer): void {
    const cut = this.body.measure(bytes);
    if (this.body.error) return this.fail(httpError(ErrorCodes.BAD_REQUEST_FRAMING, `malformed chunked body: ${this.body.error}`));
    if (cut < bytes.length) this.client.stash(bytes.subarray(cut));
    const socket = this.upstream!.socket;
    // A write may keep its bytes (an asynchronous write): none may stay in the shared read buffer.
    const flushed = socket.write(own(cut === bytes.length ? bytes : bytes.subarray(0, cut)));
    if (this.requestDone) {
      if (this.responseComplete) this.finish();
    } else if (!flushed) {
      this.client.socket.pause();
      socket.once('drain', () => {
        if (!this.requestDone && !this.finished) this.client.resumeReading();
      });
    }
  }

  onUpstreamData(chunk: Buffer): void {
    if (this.finished) return;
    this.gotResponseBytes = true;
    let body = chunk;
    while (!this.response) {
      const head = this.headReader.read(body);
      if (head === null) return;
      if (typeof head === 'string') return this.badUpstream(head);
      body = this.headReader.rest;
      if (head.status < 200) {
        if (head.status === 101) return this.badUpstream('unexpected protocol switch');
        // Interim responses (100, 103) go through; the final response follows.
        this.client.socket.write(serializeHead(`HTTP/1.1 ${head.status} ${head.reason}`, clientResponseHeaders(head.raw)));
        if (body.length === 0) return;
        continue;
      }
      this.startResponse(head);
      if (this.responseComplete) {
        this.client.socket.write(forwardedResponseHead(head, this.closeClient, undefined, this.headReader.source));
        if (body.length > 0) this.upstreamReusable = false;
        return this.onResponseComplete();
      }
      // The head leaves with the body bytes of this chunk (forwardResponseBytes), in one write.
      return this.forwardResponseBytes(body, head);
    }
    if (body.length > 0) this.forwardResponseBytes(body, null);
  }

  private startResponse(head: ResponseHead): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.response = head;
    this.status = head.status;
    this.responseBody = new ResponseBodyFraming(this.head.method, head);
    this.closeClient = this.head.close || this.responseBody.untilClose || !this.requestDone;
  }

  /** `head`: the response head not sent yet, to send before these bytes (in the same buffer when they are few). */
  private forwardResponseBytes(bytes: Buffer, head: ResponseHead | null): void {
    const socket = this.client.socket;
    const framing = this.responseBody!;
    const cut = framing.measure(bytes);
    if (framing.error) {
      // As before the head was held back: the client gets the head, then the connection breaks.
      if (head) socket.write(forwardedResponseHead(head, this.closeClient));
      return this.badUpstream(framing.error);
    }
    // Bytes past the end of the response answer nothing we asked: this connection is not reused.
    if (cut < bytes.length) this.upstreamReusable = false;
    const forwarded = cut === bytes.length ? bytes : bytes.subarray(0, cut);
    const flushed = head === null ? socket.write(own(forwarded)) : writeResponseStart(socket, head, this.closeClient, forwarded, this.headReader.source);
    if (this.responseComplete) return this.onResponseComplete();
    if (!flushed) {
      const upstream = this.upstream!.socket;
      upstream.pause();
      this.client.socket.once('drain', () => upstream.resume());
    }
  }

  private onResponseComplete(): void {
    // An early answer (say, 413) before the client finished sending: neither connection can carry more.
    if (!this.requestDone) this.upstreamReusable = false;
    this.finish();
  }

  onUpstreamEnd(): void {
    if (this.finished) return;
    if (this.responseBody?.closed()) {
      this.upstreamReusable = false;
      return this.finish();
    }
    this.onUpstreamGone(null);
  }

  onUpstreamError(error: NodeJS.ErrnoException): void {
    if (!this.finished) this.onUpstreamGone(error);
  }

  onUpstreamClose(): void {
    if (!this.finished) this.onUpstreamGone(null);
  }

  /** Phase 3 (policy.ts): the upstream failed or closed before the exchange finished. */
  private onUpstreamGone(error: NodeJS.ErrnoException | null): void {
    const upstream = this.upstream;
    this.upstream = null;
    if (upstream) {
      // Its close still to come is not this exchange's business any more (it may be on another connection by then).
      upstream.owner = null;
      upstream.socket.destroy();
    }
    const connected = upstream === null || upstream.connected;
    const decision = decideAfterFailure({
      attempt: this.attempt,
      candidates: this.candidates.length,
      connected,
      answered: this.gotResponseBytes,
      timedOut: this.timedOut,
      bodyless: this.bodyless,
      // Body bytes wait in the client connection's stash until the upstream connects.
      bodySent: connected && !this.bodyless,
      method: this.method,
      reused: upstream !== null && upstream.reused,
      retried: this.retried,
      instanceGone: runGone(this.instance!, this.run),
      rewoken: this.rewoken,
    });
    if (decision === 'resend-fresh') {
      this.retried = true;
      return this.connect(true);
    }
    if (decision === 'next-candidate') {
      // The request is not over: only this attempt's claims end.
      this.endAttempt();
      this.retried = false;
      return this.begin(this.attempt + 1);
    }
    if (this.gotResponseBytes) return this.abort();
    // A worker's route gone stale (the instance stopped or moved since it was mirrored): nothing reached an
    // instance, so the kernel's process, whose routes are never stale, takes the request as it came.
    if (this.rawHead !== null && this.bodyless && !connected && !this.timedOut) {
      this.finished = true;
      this.upstreamReusable = false;
      this.endAttempt();
      if (this.client.handBack(this.rawHead)) return;
      this.finished = false;
    }
    const detail = error ? errorMessage(error) : 'connection closed before a response';
    const failure = upstreamFailure(this.instance!, this.timedOut, error?.code, detail);
    if (decision === 'wait-instance') return this.awaitNextRun(failure);
    this.fail(failure);
  }

  /** 'wait-instance' (policy.ts): this attempt's claims end (a drain waiting on them goes on), then the next run. */
  private awaitNextRun(failure: HttpError): void {
    const instance = this.instance!;
    this.endAttempt();
    this.retried = false;
    this.rewoken = true;
    void awaitRunChange(instance, this.run, this.client.socket).then((changed) => {
      if (this.client.closed || this.finished) return this.report();
      if (changed) this.begin(this.attempt);
      else this.fail(failure);
    });
  }

  private onTimeout(): void {
    this.timer = null;
    this.timedOut = true;
    this.upstream?.socket.destroy();
  }

  private badUpstream(why: string): void {
    this.upstreamReusable = false;
    if (this.response) return this.abort();
    this.fail(upstreamFailure(this.instance!, false, undefined, why));
  }

  /** Answers with an error and closes the client connection (its state mid-exchange is unknown). */
  private fail(error: HttpError): void {
    if (this.finished) return;
    this.status = error.status;
    this.upstreamReusable = false;
    this.release();
    this.client.failExchange(error);
  }

  /** The client went away, or the stream broke after the response started: drop both sides. */
  abort(): void {
    if (this.finished) return;
    this.upstreamReusable = false;
    this.release();
    this.client.socket.destroy();
  }

  private finish(): void {
    if (this.finished) return;
    this.release();
    this.client.exchangeDone(!this.closeClient);
  }

  /** Ends this exchange's claims and reports the request. */
  private release(): void {
    if (this.finished) return;
    this.finished = true;
    this.endAttempt();
    this.report();
  }

  /** Ends the current attempt's claims: timer, in-flight count, upstream connection (back to the pool if clean). */
  private endAttempt(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.started) {
      this.started = false;
      this.instance!.requestFinished();
    }
    const upstream = this.upstream;
    this.upstream = null;
    if (!upstream) return;
    const clean = this.upstreamReusable && this.responseComplete && this.requestDone && !this.response?.close;
    if (clean) this.client.context.pool.release(upstream);
    else {
      upstream.owner = null;
      upstream.socket.destroy();
    }
  }
}
