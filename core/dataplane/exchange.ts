import { ErrorCodes, errorMessage } from '../errors.ts';
import { clientResponseHeaders, upstreamRequestHeaders } from '../headers.ts';
import { toHttpError, type HttpError } from '../http-errors.ts';
import type { Instance } from '../instance.ts';
import { instanceOf } from '../plugin-context.ts';
import type { RouteTarget } from '../types.ts';
import { wakeForRequest } from '../wake.ts';
import { ChunkedScanner } from './chunked.ts';
import { MAX_HEAD_BYTES, bodilessResponse, parseResponseHead, serializeHead, type RequestHead, type ResponseHead } from './http1.ts';
import type { UpstreamConnection, UpstreamOwner } from './upstream-pool.ts';
import type { ClientConnection } from './client-connection.ts';
import { DirectExchange } from './direct-exchange.ts';
import { RequestBodyFraming } from './request-body.ts';

const CRLFCRLF = Buffer.from('\r\n\r\n');
/** Methods a proxy may send twice (RFC 9110 9.2.1). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
type InstanceTarget = Extract<RouteTarget, { kind: 'instances' }>;

/**
 * One request/response exchange on the fast path: the request head is rewritten, bodies are forwarded as raw
 * bytes, and message boundaries are tracked (Content-Length, chunked, or until close) so both connections
 * can be kept alive and reused. Failures before the response map to 502/503/504 like the node:http path.
 */
export class Exchange implements UpstreamOwner {
  private instance!: Instance;
  private upstream: UpstreamConnection | null = null;
  private headBytes!: Buffer;
  private readonly bodyless: boolean;
  private readonly body: RequestBodyFraming;

  private responseBuffer: Buffer | null = null;
  private response: ResponseHead | null = null;
  private responseLeft = 0;
  private responseScanner: ChunkedScanner | null = null;
  private responseUntilClose = false;
  private responseComplete = false;
  private gotResponseBytes = false;
  private upstreamReusable = true;
  /** Decided when the response head is sent: Connection: close went out with it. */
  private closeClient = false;

  private timer: NodeJS.Timeout | null = null;
  private timedOut = false;
  private retried = false;
  private started = false;
  private finished = false;

  constructor(
    private readonly client: ClientConnection,
    private readonly head: RequestHead,
    private readonly target: InstanceTarget,
  ) {
    this.bodyless = !head.chunked && head.contentLength <= 0;
    this.body = new RequestBodyFraming(head);
  }

  /** The client has sent the whole request body (the next bytes are the next request's). */
  private get requestDone(): boolean {
    return this.body.done;
  }

  async begin(): Promise<void> {
    const { candidates } = this.target;
    for (let i = 0; i < candidates.length; i++) {
      // Abandoned already (the client's FIN came with an unfinished request): nothing is started.
      if (this.finished) return;
      const instance = instanceOf(candidates[i]!);
      const last = i === candidates.length - 1;
      this.instance = instance;
      if (instance.state !== 'running' || !instance.handle) {
        const waitStarted = performance.now();
        try {
          await wakeForRequest(this.client.context.hooks, instance, this.client.socket);
        } catch (error) {
          if (!last) continue;
          this.wakeMs = performance.now() - waitStarted;
          return this.fail(toHttpError(error));
        }
        this.wakeMs = performance.now() - waitStarted;
        if (this.client.closed || this.finished) return this.report();
      }
      this.useInstance(instance, i);
      return;
    }
  }

  private candidateIndex = 0;
  private readonly createdAt = performance.now();
  private wakeMs = 0;
  /** Status sent to the client, for the `request` hook. */
  private status = 0;
  private reported = false;

  /** Tells `request` hook listeners (metrics) how this exchange ended; once. */
  private report(): void {
    if (this.reported || !this.instance) return;
    this.reported = true;
    const hook = this.client.context.hooks.request;
    if (hook.taps.length === 0) return;
    hook.call({
      instance: this.instance,
      method: this.head.method,
      status: this.status,
      durationMs: performance.now() - this.createdAt,
      wakeMs: this.wakeMs,
    });
  }

  private useInstance(instance: Instance, index: number): void {
    this.instance = instance;
    this.candidateIndex = index;
    const inProcess = instance.handle!.inProcess;
    if (inProcess) {
      // Served in this process: no connection to make. This exchange ends here without a word; the direct one
      // owns the client connection from now on and reports the request.
      this.finished = true;
      this.reported = true;
      const direct = new DirectExchange(this.client, this.head, instance, inProcess, this.createdAt, this.wakeMs);
      this.client.replaceExchange(this, direct);
      return direct.start();
    }
    this.started = true;
    instance.requestStarted();
    this.headBytes = forwardedRequestHead(this.head, this.client.socket.remoteAddress ?? '');
    this.timer = setTimeout(() => this.onTimeout(), instance.config.requestTimeout);
    this.connect(false);
  }

  private connect(fresh: boolean): void {
    const address = this.instance.handle!.address;
    const pool = this.client.context.pool;
    this.upstream = fresh ? pool.connect(address, this) : pool.acquire(address, this);
    if (this.upstream.connected) this.onUpstreamConnect();
  }

  onUpstreamConnect(): void {
    const socket = this.upstream!.socket;
    // Head and the body bytes already here leave in one write (writev): a syscall per request is most of
    // the proxy's cost on loopback.
    socket.cork();
    socket.write(this.headBytes);
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
    if (this.body.error) return this.fail({ status: 400, code: ErrorCodes.BAD_REQUEST_FRAMING, message: `malformed chunked body: ${this.body.error}` });
    if (cut < bytes.length) this.client.stash(bytes.subarray(cut));
    const socket = this.upstream!.socket;
    const flushed = socket.write(cut === bytes.length ? bytes : bytes.subarray(0, cut));
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
    const socket = this.client.socket;
    // The response head and the body bytes in this chunk leave in one write.
    socket.cork();
    this.handleResponseBytes(chunk);
    socket.uncork();
  }

  private handleResponseBytes(chunk: Buffer): void {
    this.gotResponseBytes = true;
    let body = chunk;
    while (!this.response) {
      const buffer = this.responseBuffer ? Buffer.concat([this.responseBuffer, body]) : body;
      const end = buffer.indexOf(CRLFCRLF);
      if (end === -1) {
        if (buffer.length > MAX_HEAD_BYTES) return this.badUpstream('response head too large');
        this.responseBuffer = buffer;
        return;
      }
      this.responseBuffer = null;
      const head = parseResponseHead(buffer, end);
      if (typeof head === 'string') return this.badUpstream(head);
      body = buffer.subarray(end + 4);
      if (head.status < 200) {
        if (head.status === 101) return this.badUpstream('unexpected protocol switch');
        // Interim responses (100, 103) go through; the final response follows.
        this.client.socket.write(serializeHead(`HTTP/1.1 ${head.status} ${head.reason}`, clientResponseHeaders(head.raw)));
        if (body.length === 0) return;
        continue;
      }
      this.startResponse(head);
      if (this.responseComplete) {
        if (body.length > 0) this.upstreamReusable = false;
        return this.onResponseComplete();
      }
    }
    if (body.length > 0) this.forwardResponseBytes(body);
  }

  private startResponse(head: ResponseHead): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.response = head;
    this.status = head.status;
    if (bodilessResponse(this.head.method, head.status)) this.responseComplete = true;
    else if (head.chunked) this.responseScanner = new ChunkedScanner();
    else if (head.contentLength >= 0) {
      this.responseLeft = head.contentLength;
      this.responseComplete = head.contentLength === 0;
    } else this.responseUntilClose = true;
    this.closeClient = this.head.close || this.responseUntilClose || !this.requestDone;
    this.client.socket.write(forwardedResponseHead(head, this.closeClient));
  }

  private forwardResponseBytes(bytes: Buffer): void {
    let cut: number;
    if (this.responseScanner) {
      const end = this.responseScanner.scan(bytes);
      if (this.responseScanner.error) return this.badUpstream(this.responseScanner.error);
      cut = end === -1 ? bytes.length : end;
      if (end !== -1) this.responseComplete = true;
    } else if (this.responseUntilClose) {
      cut = bytes.length;
    } else {
      cut = Math.min(this.responseLeft, bytes.length);
      this.responseLeft -= cut;
      if (this.responseLeft === 0) this.responseComplete = true;
    }
    // Bytes past the end of the response answer nothing we asked: this connection is not reused.
    if (cut < bytes.length) this.upstreamReusable = false;
    const flushed = this.client.socket.write(cut === bytes.length ? bytes : bytes.subarray(0, cut));
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
    if (this.response && this.responseUntilClose) {
      this.upstreamReusable = false;
      this.responseComplete = true;
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

  private onUpstreamGone(error: NodeJS.ErrnoException | null): void {
    const upstream = this.upstream;
    this.upstream = null;
    upstream?.socket.destroy();
    if (this.gotResponseBytes) return this.abort();
    if (this.timedOut) {
      return this.fail({
        status: 504,
        code: ErrorCodes.UPSTREAM_TIMEOUT,
        message: `${this.instance.key} did not answer within ${this.instance.config.requestTimeout}ms`,
      });
    }
    if (upstream?.reused && this.bodyless && !this.retried) {
      // A kept-alive connection the instance closed just as we reused it: safe to send again once.
      this.retried = true;
      return this.connect(true);
    }
    // Nothing reached an instance that never accepted the connection (refused, or reset while dying), and the
    // body is still unread: another candidate can take the request, whatever its method.
    // A safe request that got no answer at all (the instance died holding it) may go to another one too.
    const candidates = this.target.candidates;
    const unanswered = upstream !== null && (!upstream.connected || (this.bodyless && SAFE_METHODS.has(this.head.method)));
    if (unanswered && this.candidateIndex < candidates.length - 1) {
      // The request is not over: the next candidate's exchange reports it.
      this.reported = true;
      this.release();
      this.started = false;
      return void this.retryFrom(this.candidateIndex + 1);
    }
    const detail = error ? errorMessage(error) : 'connection closed before a response';
    this.fail(
      error?.code === 'ECONNREFUSED'
        ? { status: 502, code: ErrorCodes.UPSTREAM_REFUSED, message: `${this.instance.key} refused the connection` }
        : { status: 502, code: ErrorCodes.UPSTREAM_ERROR, message: `${this.instance.key}: ${detail}` },
    );
  }

  private async retryFrom(index: number): Promise<void> {
    const rest = this.target.candidates.slice(index);
    const next = new Exchange(this.client, this.head, { ...this.target, candidates: rest });
    this.client.replaceExchange(this, next);
    await next.begin();
  }

  private onTimeout(): void {
    this.timer = null;
    this.timedOut = true;
    this.upstream?.socket.destroy();
  }

  private badUpstream(why: string): void {
    this.upstreamReusable = false;
    if (this.response) return this.abort();
    this.fail({ status: 502, code: ErrorCodes.UPSTREAM_ERROR, message: `${this.instance.key}: ${why}` });
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

  /** Ends this exchange's claims: timer, in-flight count, upstream connection (back to the pool if clean). */
  private release(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.started) this.instance.requestFinished();
    this.report();
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

/**
 * The head sent upstream: framing was decided on the client's head, and the forwarded one says exactly that
 * (Content-Length kept whatever Connection lists; a chunked body, forwarded as it came, with its
 * Transfer-Encoding), then hop-by-hop headers dropped and X-Forwarded-* added.
 */
export function forwardedRequestHead(head: RequestHead, remoteAddress: string): Buffer {
  const headers = upstreamRequestHeaders(head.raw, { remoteAddress, proto: 'http', host: head.host });
  if (head.chunked) headers.push('Transfer-Encoding', 'chunked');
  return serializeHead(`${head.method} ${head.target} HTTP/1.1`, headers);
}

/** The response head sent to the client, framed as the upstream framed it (its body is forwarded untouched). */
export function forwardedResponseHead(head: ResponseHead, close: boolean): Buffer {
  const headers = clientResponseHeaders(head.raw);
  if (head.chunked) headers.push('Transfer-Encoding', transferEncoding(head.raw));
  if (close) headers.push('Connection', 'close');
  return serializeHead(`HTTP/1.1 ${head.status} ${head.reason}`, headers);
}

function transferEncoding(raw: readonly string[]): string {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'transfer-encoding') return raw[i + 1]!;
  return 'chunked';
}
