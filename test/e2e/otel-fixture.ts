// What the tracing tests share: the tenant app that joins the trace (test/fixtures/otel-app.mjs) and what it
// answers, a kernel with the otel plugin exporting to a receiver, span kinds and lookups, and a traceparent's shape.
// Importing this clears the environment's OTEL_* variables.
import assert from 'node:assert/strict';
import path from 'node:path';
import { createTestKernel } from '../../core/test-kernel.ts';
import type { ConfigInput } from '../../core/config/schema.ts';
import otel from '../../plugins/otel/index.ts';
import type { OtelSettings } from '../../plugins/otel/schema.ts';
import { FIXTURES, servePlugins } from '../helpers.ts';
import type { OtlpReceiver, ReceivedSpan } from '../otlp-receiver.ts';

export const APP = path.join(FIXTURES, 'otel-app.mjs');
/** The one instance the tests send to: alice of the app service. */
export const HOST = 'alice.app.localhost';
/** OTLP span kinds. */
export const SERVER = 2;
export const CLIENT = 3;
export const INTERNAL = 1;

// Whatever the environment running the tests says, tracing here is on or off by the config alone.
for (const name of Object.keys(process.env)) if (name.startsWith('OTEL_')) delete process.env[name];

/** What the otel app answers: the trace headers and OTEL_* variables it got, and all the headers as sent. */
export interface AppReply {
  traceparent: string | null;
  tracestate: string | null;
  rawHeaders: string[];
  env: Record<string, string>;
}

function config(otelSettings: OtelSettings | undefined): ConfigInput {
  return {
    settings: otelSettings === undefined ? {} : { otel: otelSettings },
    services: { app: { command: process.execPath, args: [APP], health: '/health', idleTimeout: false } },
  };
}

/** A kernel running the app, tracing to `receiver` (with `extra` otel settings), or not tracing when it is null. */
export async function tracedKernel(receiver: OtlpReceiver | null, extra: object = {}) {
  return createTestKernel({
    plugins: [...servePlugins, otel],
    config: config(receiver === null ? undefined : { endpoint: receiver.url, ...extra }),
  });
}

export const byName = (spans: readonly ReceivedSpan[], name: string, kind?: number): ReceivedSpan[] =>
  spans.filter((s) => s.name === name && (kind === undefined || s.kind === kind));

/** The one span of `spans` that `pick` selects (asserted to be exactly one). */
export function one(spans: readonly ReceivedSpan[], what: string, pick: (s: ReceivedSpan) => boolean): ReceivedSpan {
  const found = spans.filter(pick);
  assert.equal(found.length, 1, `exactly one ${what} span, got ${found.length}: ${JSON.stringify(spans.map((s) => [s.name, s.kind, s.spanId, s.parentSpanId]))}`);
  return found[0]!;
}

/** A sampled W3C traceparent: its trace id and parent span id. */
export const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;
