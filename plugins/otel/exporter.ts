/**
 * The OTLP/HTTP span exporter, configured exactly as the SDK's OTLP trace exporters configure theirs
 * (`@opentelemetry/otlp-exporter-base`: OTEL_EXPORTER_OTLP_* handling such as headers, compression, certificates
 * and timeout), with the body put together from a batch's spans, already written in the export encoding
 * (batch.ts): the protobuf of otlp-proto.ts (`application/x-protobuf`, the default) or the JSON of otlp-json.ts.
 * A plain `http://` collector without compression gets plain-transport.ts (one kept-alive connection, the SDK's
 * retry policy); HTTPS or gzip the SDK's own node:http transport.
 */
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPExporterBase, createOtlpNetworkExportDelegate } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate, createOtlpHttpExporterMetrics } from '@opentelemetry/otlp-exporter-base/node-http';
import type { BatchExporter, EncodedBatch } from './batch.ts';
import { Bytes } from './bytes.ts';
import { PlainHttpTransport, plainEndpoint, retrying } from './plain-transport.ts';
import type { SpanEncoding, TraceResponse } from './encoding.ts';

/** A body buffer bigger than this (a batch of unusually large spans) is not kept for the next export. */
const MAX_SPARE = 4 * 1024 * 1024;

const spanCount = { name: 'span' as const, countItems: (batch: EncodedBatch): number => batch.spans };

export function otlpExporter(options: { url: string; headers: Record<string, string>; timeoutMillis: number; encoding: SpanEncoding }): BatchExporter {
  const encoding = options.encoding;
  /** The buffer of the last body a collector accepted, written into again by the next export. */
  let spare: Bytes | undefined;
  /** The buffer of the body the current export call wrote (the delegate serializes synchronously, or not at all). */
  let written: Bytes | undefined;
  const serializer = {
    serializeRequest(batch: EncodedBatch): Uint8Array {
      const out = spare ?? new Bytes(batch.body.length + 1024);
      spare = undefined;
      out.length = 0;
      encoding.request(batch.resource, batch.scope, batch.body.view(), out);
      written = out;
      return out.view();
    },
    deserializeResponse: (data: Uint8Array): TraceResponse => encoding.decodeResponse(data),
  };
  const config = convertLegacyHttpOptions({ url: options.url, headers: options.headers, timeoutMillis: options.timeoutMillis }, 'TRACES', 'v1/traces', {
    'Content-Type': encoding.contentType,
  });
  const plain = plainEndpoint(config.url, config.compression);
  const delegate =
    plain === null
      ? createOtlpHttpExportDelegate(config, serializer, 'otlp_http_span_exporter', spanCount, undefined)
      : createOtlpNetworkExportDelegate(
          config,
          serializer,
          createOtlpHttpExporterMetrics('otlp_http_span_exporter', spanCount, config.url, undefined),
          retrying(new PlainHttpTransport(plain, config.headers, config.userAgent)),
        );
  const base = new OTLPExporterBase<EncodedBatch>(delegate);
  return {
    encoding,
    export(batch: EncodedBatch, done: (result: ExportResult) => void): void {
      written = undefined;
      let body: Bytes | undefined;
      base.export(batch, (result) => {
        // Only after a 2xx: the collector has read the whole body. (After a timeout or an early answer the
        // request may still be writing from it.)
        if (body !== undefined && body.buffer.length <= MAX_SPARE && result.code === ExportResultCode.SUCCESS) spare = body;
        done(result);
      });
      body = written;
      written = undefined;
    },
    shutdown: () => base.shutdown(),
  };
}
