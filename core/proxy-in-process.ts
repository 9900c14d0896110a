/**
 * The node:http path's answer for an instance served in this process (`RunningHandle.inProcess`): node has
 * parsed the request and decoded its body, so it is read whole (bounded by the handler's maxBody), handed to
 * the handler and the answer written back; node frames it (keep-alive, HEAD). Used by the fallback proxy
 * (TENEMENT_FAST_PROXY=0) and for what the fast path hands over (HTTP/1.0, Expect).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { upstreamRequestHeaders } from './headers.ts';
import { sendError } from './http-errors.ts';
import { bodyTooLarge, callInProcess, clientAnswer, isHttpError, requestTimedOut, type ClientAnswer } from './in-process.ts';
import type { Instance } from './instance.ts';
import type { InProcessHandler } from './types.ts';

export async function serveInProcess(
  instance: Instance,
  handler: InProcessHandler,
  req: IncomingMessage,
  res: ServerResponse,
  /** The `upstreamHeaders` hook for this request. */
  editHeaders: (headers: string[]) => void,
): Promise<void> {
  instance.requestStarted();
  res.once('close', () => instance.requestFinished());
  const timer = setTimeout(() => sendError(res, requestTimedOut(instance)), instance.config.requestTimeout);
  res.once('close', () => clearTimeout(timer));
  // A declared length over the limit is refused before a byte of it is read.
  if (Number(req.headers['content-length'] ?? 0) > handler.maxBody) return write(res, clientAnswer(bodyTooLarge()), true);
  const body = await readBody(req, res, handler.maxBody);
  if (res.headersSent || res.destroyed) return;
  if (body === null) return write(res, clientAnswer(bodyTooLarge()), true);
  const remoteAddress = req.socket.remoteAddress ?? '';
  const headers = upstreamRequestHeaders(req.rawHeaders, {
    remoteAddress,
    proto: (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
    host: req.headers.host,
  });
  editHeaders(headers);
  const result = await callInProcess(instance, handler, { method: req.method ?? 'GET', target: req.url ?? '/', headers, body, remoteAddress });
  if (res.headersSent || res.destroyed) return;
  if (isHttpError(result)) return sendError(res, result);
  write(res, clientAnswer(result), false);
}

/** The whole body, or null as soon as it passes `limit` (what is left is not read: the connection closes). */
function readBody(req: IncomingMessage, res: ServerResponse, limit: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      req.off('data', onData);
      req.off('end', onEnd);
      req.pause();
      resolve(null);
    };
    const onEnd = (): void => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    req.on('data', onData);
    req.on('end', onEnd);
    // A client gone mid-body: nothing to answer (res closes, which ends the in-flight count).
    req.once('error', () => {
      res.destroy();
      resolve(null);
    });
  });
}

function write(res: ServerResponse, answer: ClientAnswer, close: boolean): void {
  if (close) answer.headers.push('Connection', 'close');
  res.writeHead(answer.status, answer.headers);
  // node writes no body for HEAD (and keeps the Content-Length we set, the length a GET would get).
  res.end(answer.body);
}
