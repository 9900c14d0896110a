/**
 * A real OTLP/HTTP trace receiver on loopback, for tests and the tracing benchmark: it decodes what exporters
 * POST to /v1/traces, as OTLP protobuf (`application/x-protobuf`, test/otlp-proto.ts) or OTLP JSON
 * (`application/json`, what @opentelemetry/exporter-trace-otlp-http sends); anything else is answered 415 and
 * counted. It keeps the spans, flattened.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { countOtlpProto, decodeOtlpProto } from './otlp-proto.ts';

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client. */
  kind: number;
  attributes: Record<string, string | number | boolean>;
  resource: Record<string, string | number | boolean>;
  status: { code: number; message: string };
  events: string[];
  startNs: bigint;
  endNs: bigint;
}

export interface OtlpReceiver {
  /** Base URL, as OTEL_EXPORTER_OTLP_ENDPOINT: the exporters POST to `${url}/v1/traces`. */
  url: string;
  spans: ReceivedSpan[];
  /** POSTs received, and how many were not OTLP (or did not decode). */
  posts: number;
  rejected: number;
  /** Exports decoded, by encoding. */
  protobufPosts: number;
  jsonPosts: number;
  close(): Promise<void>;
}

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
type KeyValue = { key: string; value?: AnyValue };

function attributes(list: readonly KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = Object.create(null) as Record<string, string | number | boolean>;
  for (const { key, value } of list ?? []) {
    if (!value) continue;
    if (value.stringValue !== undefined) out[key] = value.stringValue;
    else if (value.intValue !== undefined) out[key] = Number(value.intValue);
    else if (value.boolValue !== undefined) out[key] = value.boolValue;
    else if (value.doubleValue !== undefined) out[key] = value.doubleValue;
  }
  return out;
}

interface OtlpJson {
  resourceSpans?: Array<{
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: Array<{
      spans?: Array<{
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        name: string;
        kind?: number;
        attributes?: KeyValue[];
        status?: { code?: number; message?: string };
        events?: Array<{ name: string }>;
        startTimeUnixNano: string | number;
        endTimeUnixNano: string | number;
      }>;
    }>;
  }>;
}

/** Decodes one ExportTraceServiceRequest in OTLP JSON (ids are hex strings there). */
export function decodeOtlpJson(body: string): ReceivedSpan[] {
  const request = JSON.parse(body) as OtlpJson;
  const out: ReceivedSpan[] = [];
  for (const resourceSpans of request.resourceSpans ?? []) {
    const resource = attributes(resourceSpans.resource?.attributes);
    for (const scope of resourceSpans.scopeSpans ?? []) {
      for (const span of scope.spans ?? []) {
        out.push({
          traceId: span.traceId,
          spanId: span.spanId,
          parentSpanId: span.parentSpanId ?? '',
          name: span.name,
          kind: span.kind ?? 0,
          attributes: attributes(span.attributes),
          resource,
          status: { code: span.status?.code ?? 0, message: span.status?.message ?? '' },
          events: (span.events ?? []).map((e) => e.name),
          startNs: BigInt(span.startTimeUnixNano),
          endNs: BigInt(span.endTimeUnixNano),
        });
      }
    }
  }
  return out;
}

/**
 * `answer`: 'ok' answers every export 200 at once; 'never' reads the body and never answers (a collector that
 * hangs); `keep: false` decodes and counts without keeping the spans (the benchmark's long runs); with
 * `decode: 'walk'` too, a protobuf body is decoded without building the spans (countOtlpProto: every field
 * read and checked, as a collector's decoder does, nothing allocated per field).
 */
export async function startOtlpReceiver(options: { answer?: 'ok' | 'never'; keep?: boolean; decode?: 'spans' | 'walk' } = {}): Promise<OtlpReceiver & { count: number }> {
  const answer = options.answer ?? 'ok';
  const keep = options.keep ?? true;
  const walk = !keep && options.decode === 'walk';
  const hanging = new Set<http.ServerResponse>();
  const receiver = {
    url: '',
    spans: [] as ReceivedSpan[],
    count: 0,
    posts: 0,
    rejected: 0,
    protobufPosts: 0,
    jsonPosts: 0,
    close: async (): Promise<void> => {},
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      receiver.posts += 1;
      const type = req.headers['content-type'] ?? '';
      const protobuf = /^application\/x-protobuf\b/.test(type);
      if (req.method !== 'POST' || req.url !== '/v1/traces' || (!protobuf && !/^application\/json\b/.test(type))) {
        receiver.rejected += 1;
        res.statusCode = 415;
        return res.end();
      }
      let spans: ReceivedSpan[] = [];
      let count: number;
      try {
        if (protobuf && walk) count = countOtlpProto(Buffer.concat(chunks));
        else {
          spans = protobuf ? decodeOtlpProto(Buffer.concat(chunks)) : decodeOtlpJson(Buffer.concat(chunks).toString('utf8'));
          count = spans.length;
        }
      } catch {
        receiver.rejected += 1;
        res.statusCode = 400;
        return res.end();
      }
      receiver.count += count;
      if (protobuf) receiver.protobufPosts += 1;
      else receiver.jsonPosts += 1;
      if (keep) receiver.spans.push(...spans);
      if (answer === 'never') {
        hanging.add(res);
        return;
      }
      // An empty ExportTraceServiceResponse, in the request's encoding.
      res.setHeader('content-type', protobuf ? 'application/x-protobuf' : 'application/json');
      res.end(protobuf ? '' : '{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  receiver.close = () =>
    new Promise<void>((resolve) => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}
