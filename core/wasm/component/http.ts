/**
 * The HTTP handler world's call: a request record in, a response record out, checked before it reaches a
 * socket (a guest's bad status or a header with a newline is a 500, never a malformed response).
 */
import type { ComponentInstance, WasmHttpRequest, WasmHttpResponse } from './types.ts';

/** The world `ten build` targets by default (sdk/wit/handler.wit). */
export const HANDLER_WORLD = 'tenement:http/handler';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\r\n\0]/;

function invalid(what: string): never {
  throw new Error(`handler returned an invalid response: ${what}`);
}

export function checkResponse(value: unknown): WasmHttpResponse {
  if (!value || typeof value !== 'object') invalid('not a record');
  const { status, headers, body } = value as Partial<WasmHttpResponse>;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) invalid(`status ${String(status)}`);
  if (!Array.isArray(headers)) invalid('headers is not a list');
  for (const header of headers) {
    if (!Array.isArray(header) || header.length !== 2) invalid('a header is not a (name, value) pair');
    const [name, val] = header as unknown[];
    if (typeof name !== 'string' || !TOKEN.test(name)) invalid(`header name ${JSON.stringify(name)}`);
    if (typeof val !== 'string' || BAD_VALUE.test(val)) invalid(`value of header ${name}`);
  }
  if (!(body instanceof Uint8Array)) invalid('body is not bytes');
  return { status, headers: headers as [string, string][], body };
}

/** Calls the handler world's `handle` export; throws on a trap or a malformed response. */
export function handleHttp(instance: ComponentInstance, request: WasmHttpRequest): WasmHttpResponse {
  return checkResponse(instance.call('handle', [request]));
}
