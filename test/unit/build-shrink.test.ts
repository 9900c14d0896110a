/**
 * The package build's shrink step (scripts/build-shrink.mjs): compiled files lose their comments and import the
 * bundled zod, the SDK keeps the real one, and the bundled zod validates as zod does (the package test runs the
 * whole built server on it).
 */
import { deepStrictEqual, match, ok, strictEqual } from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

interface Shrink {
  shrink(options: { root: string; dist: string; emitted: string[] }): Promise<{ before: number; after: number; zod: number }>;
}

test('compiled files shrink and import the bundled zod; the SDK keeps zod; the bundle validates like zod', async (t) => {
  const dist = mkdtempSync(path.join(os.tmpdir(), 'tenement-shrink-'));
  t.after(() => rmSync(dist, { recursive: true, force: true }));
  const core = path.join(dist, 'core', 'config');
  const sdk = path.join(dist, 'sdk');
  mkdirSync(core, { recursive: true });
  mkdirSync(sdk, { recursive: true });
  const schemaFile = path.join(core, 'schema.js');
  const sdkFile = path.join(sdk, 'runtime.js');
  writeFileSync(
    schemaFile,
    [
      "import { z } from 'zod';",
      '/** A doc comment V8 would keep in the source string: gone after the shrink. */',
      "export const schema = z.strictObject({ port: z.number().int(), name: z.string().min(1) });",
      "export const note = 'caf\u00e9';",
      '',
    ].join('\n'),
  );
  writeFileSync(sdkFile, "export { z } from 'zod';\n");

  const { shrink } = (await import(pathToFileURL(path.join(ROOT, 'scripts', 'build-shrink.mjs')).href)) as Shrink;
  const result = await shrink({ root: ROOT, dist, emitted: [schemaFile, sdkFile] });
  ok(result.after < result.before, `${result.after} < ${result.before}`);
  ok(result.zod > 10_000 && result.zod < 400_000, `zod bundle of ${result.zod} bytes`);

  const compiled = readFileSync(schemaFile, 'utf8');
  match(compiled, /from\s*"\.\.\/\.\.\/vendor\/zod\.js"/);
  ok(!compiled.includes("'zod'") && !compiled.includes('"zod"'), compiled);
  ok(!compiled.includes('doc comment'), compiled);
  // ASCII only: V8 keeps a one-byte string for the source.
  ok(/^[\x00-\x7f]*$/.test(compiled), compiled);
  match(readFileSync(sdkFile, 'utf8'), /from\s*["']zod["']/);
  ok(readFileSync(path.join(dist, 'vendor', 'zod.LICENSE'), 'utf8').includes('MIT'));

  const { schema, note } = (await import(pathToFileURL(schemaFile).href)) as {
    schema: { safeParse(value: unknown): { success: boolean; error?: Error & { issues: Array<{ code: string; path: unknown[] }> } } };
    note: string;
  };
  strictEqual(note, 'caf\u00e9');
  strictEqual(schema.safeParse({ port: 8080, name: 'a' }).success, true);
  const refused = schema.safeParse({ port: 1.5, name: '', ['__proto__']: 1, extra: true });
  strictEqual(refused.success, false);
  strictEqual(refused.error?.name, 'ZodError');
  deepStrictEqual(refused.error?.issues.map((issue) => issue.code).sort(), ['invalid_type', 'too_small', 'unrecognized_keys']);
  // English messages (the only locale kept).
  match(refused.error?.message ?? '', /Invalid input: expected int, received number|expected int/);
});

test("compiled files take prom-client's classes from its lib/ files, not its index (no https, tls or cluster aggregator); an unknown name stops the build", async (t) => {
  const top = mkdtempSync(path.join(os.tmpdir(), 'tenement-shrink-prom-'));
  t.after(() => rmSync(top, { recursive: true, force: true }));
  // An installed package's layout: prom-client found from dist/vendor upwards.
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(top, 'node_modules'));
  const dist = path.join(top, 'dist');
  mkdirSync(path.join(dist, 'plugins', 'x'), { recursive: true });
  const file = path.join(dist, 'plugins', 'x', 'metrics.js');
  writeFileSync(
    file,
    "import { Counter, Registry as R, collectDefaultMetrics } from 'prom-client';\nexport const made = () => { const r = new R(); new Counter({ name: 'x_total', help: 'x', registers: [r] }).inc(2); collectDefaultMetrics({ register: r }); return r.metrics(); };\nexport { Counter, R };\n",
  );
  const { shrink } = (await import(pathToFileURL(path.join(ROOT, 'scripts', 'build-shrink.mjs')).href)) as Shrink;
  await shrink({ root: ROOT, dist, emitted: [file] });
  const compiled = readFileSync(file, 'utf8');
  match(compiled, /from"\.\.\/\.\.\/vendor\/prom-client\.js"/);
  ok(!/["']prom-client["']/.test(compiled), compiled);

  // Run in a child: which built-in modules the vendored entry loads, and that its classes are prom-client's own.
  const script = `
    const before = new Set(process.moduleLoadList);
    const m = await import(${JSON.stringify(pathToFileURL(file).href)});
    const loaded = process.moduleLoadList.filter((x) => !before.has(x)).map((x) => x.replace('NativeModule ', ''));
    const text = await m.made();
    // Before prom-client's index is loaded below, which loads it.
    const otel = Object.keys((await import('node:module')).createRequire(import.meta.url).cache).some((file) => file.includes('@opentelemetry'));
    const real = (await import('node:module')).createRequire(${JSON.stringify(path.join(ROOT, 'package.json'))})('prom-client');
    process.stdout.write(JSON.stringify({ text, otel, same: m.Counter === real.Counter && m.R === real.Registry, tls: loaded.includes('tls') || loaded.includes('https') }));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  const seen = JSON.parse(out) as { text: string; same: boolean; tls: boolean; otel: boolean };
  match(seen.text, /x_total 2/);
  // The default metrics, their CPU counter included, without @opentelemetry/api (taken only for exemplars).
  match(seen.text, /process_cpu_user_seconds_total \d/);
  match(seen.text, /nodejs_heap_size_used_bytes \d/);
  strictEqual(seen.otel, false, '@opentelemetry/api loaded by the default metrics');
  strictEqual(seen.same, true);
  strictEqual(seen.tls, false, 'https/tls loaded through the vendored prom-client');

  const bad = path.join(dist, 'plugins', 'x', 'push.js');
  writeFileSync(bad, "import { Pushgateway } from 'prom-client';\nexport { Pushgateway };\n");
  await shrink({ root: ROOT, dist, emitted: [bad] }).then(
    () => ok(false, 'the build went on with an import the vendored prom-client lacks'),
    (error: unknown) => match(String(error), /Pushgateway.*PROM_CLIENT_PARTS/),
  );
});
