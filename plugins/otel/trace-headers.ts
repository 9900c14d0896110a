/**
 * The W3C trace-context lines (level 1) Tenement writes into the head an instance gets: the client's
 * `traceparent`/`tracestate` removed, Tenement's own added, so the tenant's spans join the request's trace.
 */
import type { SpanContext } from '@opentelemetry/api';

/** The header names tracing owns (lowercase): the upstreamHeaders tap declares it adds only these. */
export const TRACE_CONTEXT_HEADERS: readonly string[] = ['traceparent', 'tracestate'];

const TRACE_HEADERS: ReadonlySet<string> = new Set(TRACE_CONTEXT_HEADERS);

const FLAGS = ['00', '01'];

/**
 * Appends `traceparent` (and `tracestate`) for `span` (W3C trace-context level 1), as the SDK's propagator
 * would, without the two contexts its inject makes per call.
 */
export function injectTraceContext(context: SpanContext, headers: string[]): void {
  headers.push('traceparent', `00-${context.traceId}-${context.spanId}-${FLAGS[context.traceFlags & 1]}`);
  const state = context.traceState?.serialize();
  if (state) headers.push('tracestate', state);
}

/** Removes the client's trace headers (the instance gets Tenement's, which continue the same trace). */
export function dropTraceHeaders(headers: string[]): void {
  let write = 0;
  for (let read = 0; read < headers.length; read += 2) {
    const name = headers[read]!;
    if ((name.length === 11 || name.length === 10) && TRACE_HEADERS.has(name.toLowerCase())) continue;
    headers[write] = name;
    headers[write + 1] = headers[read + 1]!;
    write += 2;
  }
  // Only when something was dropped: setting an array's length is a call into the runtime even when it is the same
  // (the add-only path hands over an empty list: about 0.08 µs a request for nothing).
  if (write !== headers.length) headers.length = write;
}
