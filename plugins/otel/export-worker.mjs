/**
 * The OTLP export, off the main thread (plugins/otel/worker-exporter.ts): batches of compact span records come
 * in, are rebuilt as the ReadableSpan shape the OTLP/HTTP exporter reads, then that exporter (the SDK's own, so
 * the OTLP JSON, OTEL_EXPORTER_OTLP_* handling, retries and timeouts are the SDK's) encodes and POSTs them.
 * Plain JavaScript so it loads in a worker with or without tsx.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';

const { url, headers, timeoutMillis } = workerData;
const exporter = new OTLPTraceExporter({ url, headers, timeoutMillis });
// One resource and scope object for every span (the serializer groups spans by their identity), sent with the
// first batch (and again only if they change).
let resource = resourceFromAttributes({});
let instrumentationScope = { name: 'tenement' };

const traceState = (serialized) => (serialized === undefined ? undefined : { serialize: () => serialized });

function rebuild(r) {
  const context = { traceId: r[0], spanId: r[1], traceFlags: r[4], traceState: traceState(r[5]) };
  return {
    name: r[6],
    kind: r[7],
    spanContext: () => context,
    parentSpanContext: r[2] === undefined ? undefined : { traceId: r[0], spanId: r[2], traceFlags: r[4], isRemote: r[3] },
    startTime: [r[8], r[9]],
    endTime: [r[10], r[11]],
    status: r[13] === undefined ? { code: r[12] } : { code: r[12], message: r[13] },
    attributes: r[14],
    links: r[15].map((link) => ({ ...link, context: { ...link.context, traceState: traceState(link.context.traceState) } })),
    events: r[16],
    duration: [0, 0],
    ended: true,
    resource,
    instrumentationScope,
    droppedAttributesCount: r[17],
    droppedEventsCount: r[18],
    droppedLinksCount: r[19],
  };
}

parentPort.on('message', (message) => {
  if (message.type === 'export') {
    if (message.resource !== undefined) resource = resourceFromAttributes(message.resource);
    if (message.scope !== undefined) instrumentationScope = message.scope;
    const spans = message.records.map(rebuild);
    exporter.export(spans, (result) => parentPort.postMessage({ type: 'done', id: message.id, ok: result.code === 0 }));
  } else if (message.type === 'shutdown') {
    exporter.shutdown().then(
      () => parentPort.postMessage({ type: 'closed' }),
      () => parentPort.postMessage({ type: 'closed' }),
    );
  }
});
