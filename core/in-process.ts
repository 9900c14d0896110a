/**
 * What both proxy paths (the fast data plane and node:http) share when an instance is served in-process
 * (`RunningHandle.inProcess`): the error answers, the call itself with its failures mapped, and the response
 * headers made safe to write as they are.
 */
import { ErrorCodes, errorMessage } from './errors.ts';
import { clientResponseHeaders } from './headers.ts';
import { httpError, type HttpError } from './http-errors.ts';
import type { Instance } from './instance.ts';
import type { InProcessHandler, InProcessRequest, InProcessResponse } from './types.ts';

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** The same answer the function's own loopback server gives a body over its limit. */
export function bodyTooLarge(): InProcessResponse {
  return { status: 413, headers: [['content-type', 'text/plain']], body: Buffer.from('request body too large\n') };
}

export function requestTimedOut(instance: Instance): HttpError {
  return httpError(ErrorCodes.UPSTREAM_TIMEOUT, `${instance.key} did not answer within ${instance.config.requestTimeout}ms`);
}

/** Calls the instance; a rejection (it stopped under the request) is a 502 like a connection it closed. */
export async function callInProcess(instance: Instance, handler: InProcessHandler, request: InProcessRequest): Promise<InProcessResponse | HttpError> {
  try {
    return await handler.serve(request);
  } catch (error) {
    return httpError(ErrorCodes.UPSTREAM_ERROR, `${instance.key}: ${errorMessage(error)}`);
  }
}

export function isHttpError(value: InProcessResponse | HttpError): value is HttpError {
  return 'code' in value;
}

/** No body, whatever the headers say (and so no Content-Length of ours either). */
export const bodilessStatus = (status: number): boolean => status === 204 || status === 304;

export interface ClientAnswer {
  status: number;
  /** Flat name/value pairs: the guest's, hop-by-hop and framing removed, Content-Length ours. */
  headers: string[];
  body: Uint8Array;
}

/**
 * The response as it goes to the client. The bytes are written raw, so what node:http's writeHead would
 * refuse (a made-up status, CR or LF in a header: response splitting) becomes a 500, as on the loopback server.
 */
export function clientAnswer(response: InProcessResponse): ClientAnswer {
  const { status } = response;
  const invalid = (why: string): ClientAnswer => ({
    status: 500,
    headers: ['content-type', 'text/plain', 'content-length', String(Buffer.byteLength(why) + 1)],
    body: Buffer.from(`${why}\n`),
  });
  if (!Number.isInteger(status) || status < 200 || status > 999) return invalid(`function returned an invalid response: status ${status}`);
  const flat: string[] = [];
  for (const [name, value] of response.headers) {
    if (!HEADER_NAME.test(name) || !HEADER_VALUE.test(value)) return invalid(`function returned an invalid response: header ${JSON.stringify(name)}`);
    const lower = name.toLowerCase();
    // The body is whole: its length is ours to state, and chunking it again would be wrong.
    if (lower === 'content-length' || lower === 'transfer-encoding') continue;
    flat.push(name, value);
  }
  const headers = clientResponseHeaders(flat);
  if (!bodilessStatus(status)) headers.push('Content-Length', String(response.body.length));
  return { status, headers, body: bodilessStatus(status) ? new Uint8Array() : response.body };
}
