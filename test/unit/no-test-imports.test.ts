/**
 * Production code never imports test helpers: what `ten` runs (bin/, cli/, core/, sdk/, plugins/, runtimes/)
 * does not import core/test-kernel.ts or anything under test/. Only core/test-kernel.ts itself (the tests'
 * wrapper around core/boot.ts) is exempt. Each offence is printed as file:line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sourceFiles } from '../source-files.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PRODUCTION = ['bin', 'cli', 'core', 'sdk', 'plugins', 'runtimes'];
const TEST_HELPERS = new Set(['core/test-kernel.ts']);


/** Imports of test code in one file (repo-relative path and its text), as `file:line imports target`. */
export function testImportsOf(relative: string, text: string): string[] {
  if (TEST_HELPERS.has(relative)) return [];
  const found: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const match of text.matchAll(pattern)) {
      const spec = match[1]!;
      if (!spec.startsWith('.')) continue;
      const target = path.relative(ROOT, path.resolve(ROOT, path.dirname(relative), spec)).split(path.sep).join('/');
      if (TEST_HELPERS.has(target) || target.startsWith('test/')) {
        const line = text.slice(0, match.index).split('\n').length;
        found.push(`${relative}:${line} imports ${target}`);
      }
    }
  }
  return found;
}

test('production code (bin, cli, core, sdk, plugins, runtimes) imports no test helper', () => {
  const offences = PRODUCTION.flatMap((top) =>
    sourceFiles(path.join(ROOT, top)).flatMap((file) => {
      const relative = path.relative(ROOT, file).split(path.sep).join('/');
      return testImportsOf(relative, readFileSync(file, 'utf8'));
    }),
  );
  assert.deepEqual(offences, [], offences.join('\n'));
});

test('the check sees an import of the test kernel (as ten doctor had one)', () => {
  const old = "import { createTestKernel, type TestKernel } from '../core/test-kernel.ts';\n";
  assert.deepEqual(testImportsOf('cli/tier-check.ts', old), ['cli/tier-check.ts:1 imports core/test-kernel.ts']);
  assert.deepEqual(testImportsOf('core/x.ts', "const m = await import('../test/helpers/server.ts');"), ['core/x.ts:1 imports test/helpers/server.ts']);
  assert.deepEqual(testImportsOf('core/test-kernel.ts', "import { bootKernel } from './boot.ts';"), []);
});
