// Tracing end to end, the trace of a request: a real kernel with the otel plugin exports over OTLP/HTTP to a real
// receiver on loopback; a tenant app (test/fixtures/otel-app.mjs) joins the trace with its own span, from the
// traceparent it gets. Off unless configured; a client's traceparent continued; the node:http path the same.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import { request } from '../helpers.ts';
import { startOtlpReceiver } from '../otlp-receiver.ts';
import { CLIENT, HOST, INTERNAL, SERVER, TRACEPARENT, byName, one, tracedKernel, type AppReply } from './otel-fixture.ts';

describe('tracing (plugins/otel)', { timeout: 120_000 }, () => {
  test('off unless configured: nothing exported, no traceparent added, the SDK never loaded', async (t) => {
    const receiver = await startOtlpReceiver();
    t.after(() => receiver.close());
    const kernel = await tracedKernel(null);
    try {
      await kernel.spawnInstance('app', 'alice');
      const plain = JSON.parse((await request(kernel, HOST, '/plain')).body) as AppReply;
      assert.equal(plain.traceparent, null, 'no traceparent injected when tracing is off');
      assert.deepEqual(Object.keys(plain.env), [], 'the instance gets no OTEL_* variables');
      const theirs = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
      const passed = JSON.parse((await request(kernel, HOST, '/passed', { headers: { traceparent: theirs } })).body) as AppReply;
      assert.equal(passed.traceparent, theirs, "the client's own traceparent passes untouched");
      assert.equal(kernel.hooks.upstreamHeaders.taps.length, 0, 'no upstreamHeaders tap: the proxy path is untouched');
      assert.equal(kernel.hooks.request.taps.filter((tap) => tap.name === 'otel').length, 0);
    } finally {
      await kernel.close();
    }
    assert.equal(receiver.posts, 0, 'nothing exported');
    // prom-client loads @opentelemetry/api itself (for exemplars): the SDK, exporter and propagator must not load.
    const loaded = Object.keys(createRequire(import.meta.url).cache).filter((file) => file.includes('@opentelemetry') && !file.includes('@opentelemetry/api/'));
    assert.deepEqual(loaded, [], 'no OpenTelemetry SDK module was loaded');
  });
  test('a request that wakes a hibernated instance: request -> wake -> spawn, request -> upstream -> the app\'s own span', async (t) => {
    const receiver = await startOtlpReceiver();
    t.after(() => receiver.close());
    const kernel = await tracedKernel(receiver);
    let reply: AppReply;
    try {
      const instance = await kernel.spawnInstance('app', 'alice');
      await kernel.hibernate(instance);
      assert.equal(instance.state, 'hibernated');
      const answer = await request(kernel, HOST, '/notes?x=1', { headers: { 'user-agent': 'otel-test' } });
      assert.equal(answer.status, 200);
      reply = JSON.parse(answer.body) as AppReply;
      assert.equal(instance.state, 'running');
    } finally {
      await kernel.close();
    }
    // The app posted its span before answering; Tenement's were flushed when the kernel closed.
    const spans = receiver.spans;
    assert.equal(receiver.rejected, 0);
    assert.ok(receiver.protobufPosts >= 1, "Tenement's spans arrive as OTLP protobuf, the default (the app posts its own as JSON)");
    const server = one(spans, 'request (SERVER)', (s) => s.kind === SERVER && s.name === 'GET');
    assert.equal(server.parentSpanId, '', 'no traceparent from the client: a new trace');
    assert.equal(server.attributes['http.request.method'], 'GET');
    assert.equal(server.attributes['url.path'], '/notes');
    assert.equal(server.attributes['url.query'], 'x=1');
    assert.equal(server.attributes['server.address'], HOST);
    assert.equal(server.attributes['http.response.status_code'], 200);
    assert.equal(server.attributes['user_agent.original'], 'otel-test');
    assert.equal(server.attributes['tenement.service'], 'app');
    assert.equal(server.attributes['tenement.instance'], 'alice');
    assert.equal(server.resource['service.name'], 'tenement');

    const trace = spans.filter((s) => s.traceId === server.traceId);
    const wake = one(trace, 'wake', (s) => s.name === 'tenement.wake');
    assert.equal(wake.parentSpanId, server.spanId, 'the wake wait is a child of the request');
    assert.equal(wake.kind, INTERNAL);
    assert.equal(wake.attributes['tenement.instance.state'], 'hibernated');
    const spawn = one(trace, 'spawn', (s) => s.name === 'tenement.spawn');
    assert.equal(spawn.parentSpanId, wake.spanId, 'the start it caused is a child of the wake wait');
    assert.equal(spawn.attributes['tenement.tier'], 'process');
    assert.equal(typeof spawn.attributes['process.pid'], 'number');
    assert.ok(Number(spawn.attributes['tenement.readiness.checks']) >= 1, 'readiness polls are counted on the spawn span');
    assert.equal(spawn.status.code, 0, 'the start succeeded');
    const upstream = one(trace, 'upstream (CLIENT)', (s) => s.kind === CLIENT);
    assert.equal(upstream.parentSpanId, server.spanId, 'the upstream request is a child of the request');
    assert.equal(upstream.attributes['server.address'], '127.0.0.1');
    assert.equal(typeof upstream.attributes['server.port'], 'number');
    assert.equal(upstream.attributes['http.response.status_code'], 200);
    assert.ok(wake.endNs <= upstream.startNs, 'the upstream request starts once the wait is over');
    assert.ok(server.startNs <= wake.startNs && upstream.endNs <= server.endNs, 'children within the request');

    // The instance got the upstream span's context, and its own span joined the trace under it.
    const sent = TRACEPARENT.exec(reply.traceparent ?? '');
    assert.ok(sent, `a sampled W3C traceparent reached the app: ${reply.traceparent}`);
    assert.equal(sent[1], server.traceId);
    assert.equal(sent[2], upstream.spanId);
    const app = one(spans, "the app's own", (s) => s.name === 'app /notes?x=1');
    assert.equal(app.traceId, server.traceId);
    assert.equal(app.parentSpanId, upstream.spanId);
    assert.equal(app.resource['service.name'], 'app');
    assert.equal(app.resource['tenement.service'], 'app');
    assert.equal(app.resource['tenement.instance'], 'alice');
    assert.equal(reply.env.OTEL_EXPORTER_OTLP_ENDPOINT, receiver.url);
    assert.equal(reply.env.OTEL_SERVICE_NAME, 'app');
    assert.equal(reply.env.OTEL_RESOURCE_ATTRIBUTES, 'tenement.service=app,tenement.instance=alice');
    assert.equal(reply.env.OTEL_EXPORTER_OTLP_HEADERS, undefined, "the collector's credentials stay Tenement's");
  });

  test("a client's traceparent continues its trace, with its tracestate; a malformed one or a huge tracestate starts afresh", async (t) => {
    const receiver = await startOtlpReceiver();
    t.after(() => receiver.close());
    // JSON export (the default is protobuf, asserted on the wake test): the same spans, attributes and cuts.
    const kernel = await tracedKernel(receiver, { headers: { authorization: 'Bearer collector-secret' }, protocol: 'http/json' });
    const theirs = { trace: '4bf92f3577b34da6a3ce929d0e0e4736', span: '00f067aa0ba902b7' };
    let continued: AppReply;
    const malformed: AppReply[] = [];
    let huge: AppReply;
    const bad = [
      `00-${theirs.trace}-${theirs.span}`, // flags missing
      `00-${theirs.trace.toUpperCase()}-${theirs.span}-01`, // upper case
      `00-${'0'.repeat(32)}-${theirs.span}-01`, // all-zero trace id
      `ff-${theirs.trace}-${theirs.span}-01`, // version ff
      `00-${theirs.trace}-${theirs.span}-01-extra`, // version 00 with more
      `00-${theirs.trace}-${theirs.span}-01, 00-${theirs.trace}-${theirs.span}-01`, // sent twice
      'x'.repeat(4000),
    ];
    try {
      await kernel.spawnInstance('app', 'alice');
      continued = JSON.parse(
        (await request(kernel, HOST, '/continued', { headers: { traceparent: `00-${theirs.trace}-${theirs.span}-01`, tracestate: 'vendor=abc,other=1' } })).body,
      ) as AppReply;
      for (const traceparent of bad) {
        const answer = await request(kernel, HOST, '/malformed', { headers: { traceparent, tracestate: 'vendor=abc' } });
        assert.equal(answer.status, 200, `a malformed traceparent is not an error: ${traceparent.slice(0, 80)}`);
        malformed.push(JSON.parse(answer.body) as AppReply);
      }
      const long = await request(kernel, HOST, `/long/${'p'.repeat(3000)}?${'q'.repeat(3000)}`, { headers: { 'user-agent': 'u'.repeat(3000) } });
      assert.equal(long.status, 200);
      const members = Array.from({ length: 40 }, (_, i) => `k${i}=v${i}`).join(',');
      huge = JSON.parse(
        (await request(kernel, HOST, '/huge', { headers: { traceparent: `00-${theirs.trace}-${theirs.span}-01`, tracestate: members } })).body,
      ) as AppReply;
    } finally {
      await kernel.close();
    }
    assert.equal(receiver.protobufPosts, 0, "protocol 'http/json': every export is OTLP JSON");
    assert.equal(receiver.rejected, 0);
    const servers = byName(receiver.spans, 'GET', SERVER);
    const continuedSpan = one(servers, 'continued request', (s) => s.attributes['url.path'] === '/continued');
    assert.equal(continuedSpan.traceId, theirs.trace, "the client's trace goes on");
    assert.equal(continuedSpan.parentSpanId, theirs.span, "the request span is a child of the client's span");
    const sent = TRACEPARENT.exec(continued.traceparent ?? '');
    assert.ok(sent, `the app got a traceparent: ${continued.traceparent}`);
    assert.equal(sent[1], theirs.trace);
    assert.notEqual(sent[2], theirs.span, "the app's parent is Tenement's upstream span, not the client's");
    assert.equal(continued.tracestate, 'vendor=abc,other=1', 'tracestate is propagated');
    const traceHeaders = continued.rawHeaders.filter((_, i, all) => i % 2 === 0 && /^trace(parent|state)$/i.test(all[i]!));
    assert.equal(traceHeaders.length, 2, 'one traceparent and one tracestate: the client\'s were replaced, not repeated');

    for (const [i, reply] of malformed.entries()) {
      const fresh = TRACEPARENT.exec(reply.traceparent ?? '');
      assert.ok(fresh, `a new traceparent for malformed #${i}: ${reply.traceparent}`);
      assert.notEqual(fresh[1], theirs.trace, `malformed #${i} starts a new trace`);
      assert.equal(reply.tracestate, null, 'no tracestate without a valid traceparent');
    }
    for (const span of receiver.spans.filter((s) => s.kind === SERVER && s.attributes['url.path'] === '/malformed')) {
      assert.equal(span.parentSpanId, '', 'a malformed traceparent: the request span is a root');
    }
    const long = one(servers, 'long request', (s) => String(s.attributes['url.path']).startsWith('/long/'));
    for (const name of ['url.path', 'url.query', 'user_agent.original']) {
      assert.equal(String(long.attributes[name]).length, 1024, `${name} is cut to 1 KB, whatever the client sent`);
    }
    const hugeSent = TRACEPARENT.exec(huge.traceparent ?? '');
    assert.equal(hugeSent?.[1], theirs.trace, 'a huge tracestate does not break the trace');
    assert.equal(huge.tracestate, null, 'a tracestate of more than 32 members is dropped whole');
  });
  test('the node:http path (TENEMENT_FAST_PROXY=0) traces and propagates the same way', async (t) => {
    const receiver = await startOtlpReceiver();
    t.after(() => receiver.close());
    const previous = process.env.TENEMENT_FAST_PROXY;
    process.env.TENEMENT_FAST_PROXY = '0';
    let kernel;
    try {
      kernel = await tracedKernel(receiver);
    } finally {
      if (previous === undefined) delete process.env.TENEMENT_FAST_PROXY;
      else process.env.TENEMENT_FAST_PROXY = previous;
    }
    let reply: AppReply;
    try {
      await kernel.spawnInstance('app', 'alice');
      const answer = await request(kernel, HOST, '/slow-path', { headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' } });
      reply = JSON.parse(answer.body) as AppReply;
    } finally {
      await kernel.close();
    }
    const server = one(receiver.spans, 'request (SERVER)', (s) => s.kind === SERVER && s.name === 'GET');
    assert.equal(server.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    const upstream = one(receiver.spans, 'upstream (CLIENT)', (s) => s.kind === CLIENT);
    assert.equal(upstream.parentSpanId, server.spanId);
    assert.equal(reply.traceparent, `00-${server.traceId}-${upstream.spanId}-01`);
    const app = one(receiver.spans, "the app's own", (s) => s.name === 'app /slow-path');
    assert.equal(app.parentSpanId, upstream.spanId);
  });
});
