// plugins/otel/options.ts: when tracing is on and where it exports, from settings.otel and the OTEL_* variables.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { instanceEnv, parseHeaderList, resolveTracing } from '../../plugins/otel/options.ts';

test('off unless configured, and OTEL_SDK_DISABLED=true wins over everything', () => {
  assert.equal(resolveTracing(undefined, {}), null);
  assert.equal(resolveTracing(undefined, { OTEL_SERVICE_NAME: 'x', OTEL_TRACES_SAMPLER: 'always_on' }), null, 'no endpoint: off');
  assert.equal(resolveTracing({ endpoint: 'http://127.0.0.1:4318' }, { OTEL_SDK_DISABLED: 'true' }), null);
  assert.equal(resolveTracing(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'TRUE' }), null);
  assert.notEqual(resolveTracing({}, {}), null, '`otel: {}` turns it on, to the default collector');
  assert.equal(resolveTracing({}, {})?.tracesUrl, 'http://localhost:4318/v1/traces');
  assert.equal(resolveTracing({}, {})?.shutdownMs, 5_000, 'shutdown waits 5 s for the last export unless told');
  assert.equal(resolveTracing({ shutdownTimeout: 250 }, {})?.shutdownMs, 250);
});

test('endpoints: the config, then the traces variable (as it is), then the base variable (+ /v1/traces)', () => {
  const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318/', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:9999/custom' };
  assert.equal(resolveTracing({ endpoint: 'http://cfg:4318/' }, env)?.tracesUrl, 'http://cfg:4318/v1/traces');
  assert.equal(resolveTracing({ endpoint: 'http://cfg:4318/' }, env)?.baseUrl, 'http://cfg:4318');
  assert.equal(resolveTracing(undefined, env)?.tracesUrl, 'http://traces:9999/custom');
  assert.equal(resolveTracing(undefined, env)?.baseUrl, 'http://base:4318');
  assert.equal(resolveTracing(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318' })?.tracesUrl, 'http://base:4318/v1/traces');
  const tracesOnly = resolveTracing(undefined, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:9999/custom' })!;
  assert.equal(tracesOnly.baseUrl, null);
  assert.equal(instanceEnv(tracesOnly, 's', 'i', {}).OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, 'http://traces:9999/custom');
});

test('headers, sampler and service name: the config over the variables; malformed members skipped', () => {
  assert.deepEqual({ ...parseHeaderList('a=1,b=x%20y,=bad,novalue,c%=%zz,d= 2 ') }, { a: '1', b: 'x y', d: '2' });
  const env = {
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
    OTEL_EXPORTER_OTLP_HEADERS: 'a=env,b=env',
    OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'b=traces',
    OTEL_TRACES_SAMPLER: 'traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.25',
    OTEL_SERVICE_NAME: 'edge',
  };
  const fromEnv = resolveTracing(undefined, env)!;
  assert.deepEqual({ ...fromEnv.headers }, { a: 'env', b: 'traces' });
  assert.equal(fromEnv.sampler, 'traceidratio');
  assert.equal(fromEnv.ratio, 0.25);
  assert.equal(fromEnv.serviceName, 'edge');
  const configured = resolveTracing({ headers: { b: 'cfg' }, sampler: 0.1, serviceName: 'mine' }, env)!;
  assert.deepEqual({ ...configured.headers }, { a: 'env', b: 'cfg' });
  assert.equal(configured.sampler, 'parentbased_traceidratio');
  assert.equal(configured.ratio, 0.1);
  assert.equal(configured.serviceName, 'mine');
  assert.equal(resolveTracing({}, { OTEL_TRACES_SAMPLER: 'nonsense' })?.sampler, 'parentbased_always_on', 'an unknown sampler: the default');
  assert.equal(resolveTracing({}, { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '7' })?.ratio, 1, 'a ratio out of range: 1');
});

test("an instance's environment: collector, service name and resource attributes; never the export headers", () => {
  const options = resolveTracing({ endpoint: 'http://c:4318', headers: { authorization: 'secret' } }, {})!;
  const env = instanceEnv(options, 'notes', 'a,b=c', { KEEP: '1' });
  assert.equal(env.KEEP, '1');
  assert.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://c:4318');
  assert.equal(env.OTEL_SERVICE_NAME, 'notes');
  assert.equal(env.OTEL_RESOURCE_ATTRIBUTES, 'tenement.service=notes,tenement.instance=a%2Cb%3Dc', 'values are percent-encoded');
  assert.ok(!Object.values(env).some((value) => value.includes('secret')), 'the export headers stay out of the environment');
  const own = instanceEnv(options, 'notes', 'alice', { OTEL_SERVICE_NAME: 'custom', OTEL_RESOURCE_ATTRIBUTES: 'team=x' });
  assert.equal(own.OTEL_SERVICE_NAME, 'custom', "the service's own setting is kept");
  assert.equal(own.OTEL_RESOURCE_ATTRIBUTES, 'team=x,tenement.service=notes,tenement.instance=alice', "Tenement's attributes come last, so they win");
});

test('settings.otel in the config: accepted when well formed, refused with the field named otherwise', async () => {
  const { configSchema } = await import('../../core/config/schema.ts');
  const ok = configSchema.parse({ settings: { otel: { endpoint: 'http://127.0.0.1:4318', sampler: { name: 'traceidratio', ratio: 0.5 }, headers: { 'x-key': 'v' } } } });
  assert.equal(ok.settings.otel?.endpoint, 'http://127.0.0.1:4318');
  for (const otel of [{ endpoint: 'ftp://x' }, { protocol: 'grpc' }, { sampler: 2 }, { sampler: 'sometimes' }, { headers: { 'bad header': 'v' } }, { unknown: 1 }]) {
    const result = configSchema.safeParse({ settings: { otel } });
    assert.equal(result.success, false, JSON.stringify(otel));
    assert.ok(result.error!.issues.every((issue) => issue.path[0] === 'settings' && issue.path[1] === 'otel'), JSON.stringify(result.error!.issues));
  }
});

test('protocol: http/protobuf unless the config or OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL says http/json; grpc and garbage ignored', () => {
  const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
  assert.equal(resolveTracing({}, {})?.protocol, 'http/protobuf');
  assert.equal(resolveTracing(undefined, { ...on, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })?.protocol, 'http/json');
  assert.equal(resolveTracing(undefined, { ...on, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' })?.protocol, 'http/protobuf');
  assert.equal(resolveTracing({ protocol: 'http/json' }, { ...on, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' })?.protocol, 'http/json', 'the config wins');
  for (const ignored of ['grpc', 'HTTP/JSONX', '', '__proto__']) {
    assert.equal(resolveTracing(undefined, { ...on, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: ignored })?.protocol, 'http/protobuf', ignored);
  }
  assert.equal(resolveTracing(undefined, { ...on, OTEL_EXPORTER_OTLP_PROTOCOL: ' HTTP/JSON ' })?.protocol, 'http/json', 'trimmed, any case');
});
