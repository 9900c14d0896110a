/**
 * The package build's shrink step (scripts/build-shrink.mjs): compiled files lose their comments and import the
 * bundled zod, the SDK keeps the real one, and the bundled zod validates as zod does (the package test runs the
 * whole built server on it).
 */
import { deepStrictEqual, match, ok, strictEqual } from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
