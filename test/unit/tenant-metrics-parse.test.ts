// The tenant metrics parser on its own: what a strict, bounded reader of the Prometheus text format must accept,
// reject whole, and drop sample by sample.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_LIMITS, ExpositionError, parseExposition, parseExpositionAsync, parseValue, type ParseLimits } from '../../plugins/tenant-metrics/parse.ts';

const parse = (text: string, limits: Partial<ParseLimits> = {}) => parseExposition(Buffer.from(text), { ...DEFAULT_LIMITS, ...limits });
const rejects = (text: string, pattern: RegExp) => assert.throws(() => parse(text), (error: unknown) => error instanceof ExpositionError && pattern.test(error.message));

test('a well-formed exposition: families, types, HELP escapes, labels sorted, timestamps left out', () => {
  const result = parse(
    [
      '# HELP reqs_total Requests \\\\ served\\nsecond line',
      '# TYPE reqs_total counter',
      'reqs_total{path="/a",method="get"} 3 1700000000000',
      'reqs_total { method = "post" , path = "/b" , } 4',
      '# TYPE lat histogram',
      'lat_bucket{le="0.5"} 1',
      'lat_bucket{le="+Inf"} 2',
      'lat_sum 0.7',
      'lat_count 2',
      '# TYPE size summary',
      'size{quantile="0.9"} 10',
      'size_sum 20',
      'size_count 2',
      'loose 1',
      '# just a comment',
      '   ',
      'odd{v="a\\"b\\\\c\\nd"} NaN',
    ].join('\n'),
  );
  assert.deepEqual(
    result.families.map((f) => [f.name, f.type, f.samples.length]),
    [
      ['reqs_total', 'counter', 2],
      ['lat', 'histogram', 4],
      ['size', 'summary', 3],
      ['loose', 'untyped', 1],
      ['odd', 'untyped', 1],
    ],
  );
  assert.equal(result.families[0]!.help, 'Requests \\ served\nsecond line');
  assert.deepEqual(result.families[0]!.samples[0]!.labels, [['method', 'get'], ['path', '/a']]);
  assert.deepEqual(result.families[4]!.samples[0]!.labels, [['v', 'a"b\\c\nd']]);
  assert.ok(Number.isNaN(result.families[4]!.samples[0]!.value));
  assert.equal(result.series, 11);
  assert.deepEqual(result.dropped, { limit: 0, duplicate: 0, invalid: 0 });
});

test('values read as Go reads them: decimals, exponents, Inf and NaN in any case; no hex, no words', () => {
  assert.equal(parseValue('1.5e3'), 1500);
  assert.equal(parseValue('-.5'), -0.5);
  assert.equal(parseValue('+Inf'), Infinity);
  assert.equal(parseValue('-inf'), -Infinity);
  assert.ok(Number.isNaN(parseValue('nan')!));
  for (const bad of ['0x10', '1_000', 'one', '', '1e', '--1', 'Infinite']) assert.equal(parseValue(bad), undefined, bad);
});

test('a syntax error anywhere rejects the whole body, naming the line', () => {
  rejects('ok 1\nfoo{a="1" 2', /line 2: .*(',' or '}'|unterminated)/);
  rejects('foo{a="1"}', /float value/);
  rejects('foo 1 notatime', /timestamp/);
  rejects('foo 1 1 extra', /after the sample/);
  rejects('1foo 1', /invalid metric name/);
  rejects('foo{1a="x"} 1', /invalid label name/);
  rejects('foo{a="x",a="y"} 1', /repeated/);
  rejects('foo{a="\\t"} 1', /invalid escape/);
  rejects('foo{a="x} 1', /unterminated/);
  rejects('# TYPE foo bogus\nfoo 1', /unknown metric type/);
  rejects('# TYPE foo gauge\n# TYPE foo gauge\nfoo 1', /second TYPE/);
  rejects('# HELP foo a\n# HELP foo b\nfoo 1', /second HELP/);
  rejects('foo 1\n# TYPE foo gauge', /after its samples/);
  rejects('# TYPE h histogram\nh_bucket 1', /le label/);
  rejects('# TYPE h histogram\nh 1', /without _bucket/);
  rejects('# TYPE s summary\ns 1', /quantile label/);
  rejects(`foo{a="${'x'.repeat(DEFAULT_LIMITS.maxLineLength)}"} 1`, /longer than/);
  rejects(`${'m'.repeat(DEFAULT_LIMITS.maxNameLength + 1)} 1`, /longer than/);
  assert.throws(() => parseExposition(Buffer.from([0x66, 0x20, 0x31, 0x0a, 0xff, 0xfe])), /not valid UTF-8/);
});

test("service and instance become exported_*; reserved __ labels, clashes and over-long labels drop the sample", () => {
  const result = parse(
    [
      'm{service="other",instance="other:victim"} 1',
      'm{__proto__="x"} 2',
      'm{__name__="y"} 3',
      'm{service="x",exported_service="y"} 4',
      'm{constructor="c",prototype="p"} 5',
      `m{big="${'v'.repeat(DEFAULT_LIMITS.maxLabelValueLength + 1)}"} 6`,
      `m{${Array.from({ length: DEFAULT_LIMITS.maxLabels + 1 }, (_, i) => `l${i}="v"`).join(',')}} 7`,
    ].join('\n'),
  );
  const samples = result.families[0]!.samples;
  assert.deepEqual(
    samples.map((s) => [s.labels, s.value]),
    [
      [[['exported_instance', 'other:victim'], ['exported_service', 'other']], 1],
      [[['constructor', 'c'], ['prototype', 'p']], 5],
    ],
  );
  assert.deepEqual(result.dropped, { limit: 0, duplicate: 0, invalid: 5 });
  assert.equal(Object.getPrototypeOf({}), Object.prototype, 'nothing was polluted');
});

test('series are capped (the rest still checked, dropped and counted); repeats are dropped', async () => {
  const lines = ['# TYPE g gauge'];
  for (let i = 0; i < 10_000; i++) lines.push(`g{i="${i}"} ${i}`);
  lines.push('g{i="1"} 5');
  const capped = parse(lines.join('\n'), { maxSeries: 100 });
  assert.equal(capped.series, 100);
  assert.equal(capped.dropped.limit, 9_901);
  const all = await parseExpositionAsync(Buffer.from(lines.join('\n')), { ...DEFAULT_LIMITS, maxSeries: 20_000 });
  assert.equal(all.series, 10_000);
  assert.equal(all.dropped.duplicate, 1);
  // The cap does not stop syntax checking: a bad line after it still rejects the body.
  assert.throws(() => parse(`${lines.join('\n')}\nbroken{`, { maxSeries: 100 }), ExpositionError);
});

test('families with nothing kept are left out; an empty body is an empty exposition', () => {
  assert.deepEqual(parse('').families, []);
  assert.deepEqual(parse('# HELP lonely no samples\n# TYPE lonely gauge\n').families, []);
});
