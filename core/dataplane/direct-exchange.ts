import { STATUS_CODES } from 'node:http';
import { ErrorCodes } from '../errors.ts';
import { upstreamRequestHeaders } from '../headers.ts';
import { httpError, type HttpError } from '../http-errors.ts';
import { bodyTooLarge, callInProcess, clientAnswer, isHttpError, requestTimedOut, type ClientAnswer } from '../in-process.ts';
import type { Instance } from '../instance.ts';
import type { InProcessHandler } from '../types.ts';
import { JOIN_BODY_BYTES, serializeHead, type RequestHead } from './http1.ts';
import type { ClientConnection } from './client-connection.ts';
import { RequestBodyFraming } from './request-body.ts';
import { own } from './read-buffer.ts';
import { editUpstreamHeaders, reportRequest, type RequestContext } from './policy.ts';

const EMPTY = new Uint8Array(0);

/**
 * One exchange with an instance served in this process (`RunningHandle.inProcess`, the wasm tier): the body
 * is read whole off the client connection (Content-Length or chunked, bounded by the handler's maxBody), the
 * handler is called, and its answer is framed with a Content-Length. No upstream connection, no second parse.
 * In-flight counting, the request timeout and the `request` hook behave as for a proxied Exchange, which
 * hands its connection to this one once it has picked (and woken) the instance.
 */
export class DirectExchange {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private readonly body: RequestBodyFraming;
  /** Over maxBody: answered 413 before the body ended, so the connection cannot carry another request. */
  private refused = false;
  private timer: NodeJS.Timeout | null = null;
  private finished = false;

  constructor(
    private readonly client: ClientConnection,
    private readonly head: RequestHead,
    private readonly instance: Instance,
    private readonly handler: InProcessHandler,
    /** The request's policy context (the Exchange that chose and woke the instance): reported through it. */
    private readonly ctx: RequestContext,
  ) {
    this.body = new RequestBodyFraming(head, (data) => this.take(data));
  }

  /** The whole body is here (and was accepted): the next bytes are the next request's. */
  private get requestDone(): boolean {
    return this.body.done && !this.refused;
  }

  start(): void {
    this.instance.requestStarted();
    this.timer = setTimeout(() => this.fail(requestTimedOut(this.instance)), this.instance.config.requestTimeout);
    // A declared length over the limit is refused before a byte of it is read.
    if (this.body.declaredLeft > this.handler.maxBody) return this.answer(clientAnswer(bodyTooLarge()));
    const pending = this.client.takeBuffer();
    if (pending && !this.requestDone) this.consume(pending);
    else if (pending) this.client.stash(pending);
    if (this.requestDone) void this.call();
    else this.client.resumeReading();
    if (this.client.clientEnded) this.onClientEnd();
  }

  /** The client sent FIN: a body it never finished is abandoned; a complete request is answered (a half-close). */
  onClientEnd(): void {
    if (!this.finished && !this.body.done) this.abort();
  }

  /** Body bytes (or, once the body is complete, the next pipelined request) from the client. */
  onClientData(chunk: Buffer): void {
    if (this.requestDone || this.finished) return this.client.stash(chunk);
    this.consume(chunk);
    if (this.requestDone && !this.finished) void this.call();
  }

  private consume(bytes: Buffer): void {
    const cut = this.body.measure(bytes);
    if (this.body.error) return this.fail(httpError(ErrorCodes.BAD_REQUEST_FRAMING, `malformed chunked body: ${this.body.error}`));
    if (cut < bytes.length) this.client.stash(bytes.subarray(cut));
    // Over the limit (a chunked body has no length up front): answered now, the rest of it never read.
    if (this.size > this.handler.maxBody) {
      this.refused = true;
      this.answer(clientAnswer(bodyTooLarge()));
    }
  }

  private take(data: Buffer): void {
    this.size += data.length;
    if (this.size <= this.handler.maxBody) this.chunks.push(own(data));
  }

  private async call(): Promise<void> {
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const remoteAddress = this.client.socket.remoteAddress ?? '';
    const headers = upstreamRequestHeaders(this.head.raw, { remoteAddress, proto: 'http', host: this.head.host });
    editUpstreamHeaders(this.client.context.hooks, this.ctx, this.instance, headers);
    const result = await callInProcess(this.instance, this.handler, { method: this.head.method, target: this.head.target, headers, body, remoteAddress });
    if (this.finished) return;
    if (isHttpError(result)) return this.fail(result);
    this.answer(clientAnswer(result));
  }

  private answer(answer: ClientAnswer): void {
    if (this.finished) return;
    this.ctx.status = answer.status;
    // An answer before the whole body arrived (413) leaves the connection mid-message: it cannot carry more.
    const close = this.head.close || !this.requestDone;
    if (close) answer.headers.push('Connection', 'close');
    const socket = this.client.socket;
    const firstLine = `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? 'Unknown'}`;
    const body = this.head.method === 'HEAD' ? EMPTY : answer.body;
    // A small body leaves in the head's buffer (one copy, one plain write: cheaper than Node's corked writev);
    // a larger one after it in one writev.
    if (body.length <= JOIN_BODY_BYTES) socket.write(serializeHead(firstLine, answer.headers, body));
    else {
      socket.cork();
      socket.write(serializeHead(firstLine, answer.headers));
      socket.write(body);
      socket.uncork();
    }
    this.release();
    this.client.exchangeDone(!close);
  }

  /** Answers with an error and closes the client connection (its state mid-exchange is unknown). */
  private fail(error: HttpError): void {
    if (this.finished) return;
    this.ctx.status = error.status;
    this.release();
    this.client.failExchange(error);
  }

  /** The client went away. */
  abort(): void {
    if (this.finished) return;
    this.release();
    this.client.socket.destroy();
  }

  /** Ends this exchange's claims (timer, in-flight count) and tells `request` hook listeners how it ended. */
  private release(): void {
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.instance.requestFinished();
    reportRequest(this.client.context.hooks, this.ctx);
  }
}
