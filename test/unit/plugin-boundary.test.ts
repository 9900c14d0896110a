/**
 * The plugin boundary as a lint: plugins and runtimes (and the examples written as outside authors would) get a
 * PluginContext and nothing else of the kernel. A file under plugins/**, runtimes/** or examples/** fails this
 * test when it imports the kernel's internals or test code, when a plugin imports another plugin's folder, when
 * it names the `Kernel` type, writes an instance's state (`.setState(`), uses a kernel hook other than through
 * `ctx.hooks.<hook>.tap` (tapPromise, promise, call...), reaches the supervisor, or narrows a view back to an
 * Instance (`instanceOf(`, core's own). And the layering under it: core imports nothing above it (first-party
 * schema fragments aside), and no production code imports a test helper. Each offence is printed as file:line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sourceFiles } from '../source-files.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCANNED = ['plugins', 'runtimes', 'examples'];
/** Kernel internals: a plugin reaches them only through its context. */
const INTERNALS = ['core/kernel.ts', 'core/supervisor.ts', 'core/registry.ts', 'core/kernel-access.ts', 'core/test-kernel.ts', 'core/boot.ts'];

export interface Offence {
  file: string;
  line: number;
  what: string;
}


/** `plugins/x` or `runtimes/y` (or `examples/z`) for a repo-relative path; null outside those. */
function ownerOf(relative: string): string | null {
  const [top, folder] = relative.split('/');
  return top !== undefined && folder !== undefined && SCANNED.includes(top) && !folder.includes('.') ? `${top}/${folder}` : null;
}

/** The code of a file with comments blanked (kept line for line), so prose may name the kernel. */
function withoutComments(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, (comment) => comment.replace(/[^\n]/g, ' '))
    .replace(/(^|[^:'"`\\])\/\/[^\n]*/g, (_match, before: string) => before);
}

const lineAt = (text: string, index: number): number => text.slice(0, index).split('\n').length;

/** Every module specifier a file names: static imports and re-exports, import(), require(). */
function specifiers(code: string): Array<{ spec: string; index: number }> {
  const patterns = [
    /\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  const found: Array<{ spec: string; index: number }> = [];
  for (const pattern of patterns) {
    for (const match of code.matchAll(pattern)) found.push({ spec: match[1]!, index: match.index! + match[0].indexOf(match[1]!) });
  }
  return found;
}

/** The offences of one file, given its repo-relative path and text. */
export function offencesOf(relative: string, text: string): Offence[] {
  const offences: Offence[] = [];
  const code = withoutComments(text);
  const owner = ownerOf(relative);
  const isExample = relative.startsWith('examples/');
  // A config file loads plugins by importing them; an example's own trusted plugin (setup) may not.
  const isPluginCode = !isExample || (/\bsetup\s*[(:]/.test(code) && !/(^|\/)tenement\.config\.[a-z]+$/.test(relative));
  for (const { spec, index } of specifiers(code)) {
    if (!spec.startsWith('.') && !spec.startsWith('/')) continue;
    const target = path.relative(ROOT, path.resolve(ROOT, path.dirname(relative), spec)).split(path.sep).join('/');
    const line = lineAt(code, index);
    if (INTERNALS.includes(target)) offences.push({ file: relative, line, what: `imports ${target} (kernel internals: use the PluginContext)` });
    else if (target === 'test' || target.startsWith('test/')) offences.push({ file: relative, line, what: `imports ${target} (test code)` });
    else if (isPluginCode && (target.startsWith('plugins/') || target.startsWith('runtimes/'))) {
      const other = ownerOf(target);
      if (other !== null && other !== owner) offences.push({ file: relative, line, what: `imports ${target} (another plugin's folder, ${other})` });
    }
  }
  for (const match of code.matchAll(/\bKernel\b/g)) {
    offences.push({ file: relative, line: lineAt(code, match.index!), what: 'names the Kernel type' });
  }
  for (const match of code.matchAll(/\.setState\s*\(/g)) {
    offences.push({ file: relative, line: lineAt(code, match.index!), what: "calls .setState( (an instance's state is the registry's)" });
  }
  for (const match of code.matchAll(/\bhooks\.\w+(?:\.for\([^)]*\))?\.(tapPromise|tapAsync|promise|callAsync|call|intercept)\s*\(/g)) {
    offences.push({ file: relative, line: lineAt(code, match.index!), what: `calls hooks.*.${match[1]}( on a kernel hook (plugins tap with ctx.hooks.<hook>.tap)` });
  }
  for (const match of code.matchAll(/\.supervisor\b/g)) {
    offences.push({ file: relative, line: lineAt(code, match.index!), what: 'reaches the supervisor (use ctx.lifecycle)' });
  }
  for (const match of code.matchAll(/\binstanceOf\s*\(/g)) {
    offences.push({ file: relative, line: lineAt(code, match.index!), what: 'calls instanceOf( (views are narrowed by core only)' });
  }
  return offences;
}

test('the boundary lint finds each kind of offence, at its line, and ignores comments', () => {
  const text = [
    "import { Kernel } from '../../core/kernel.ts';", // 1: internals + Kernel
    "import type { Supervisor } from '../../core/supervisor.ts';", // 2
    "import { helper } from '../router/weighted.ts';", // 3: another plugin
    "import { spawnIt } from '../../runtimes/process/spawn.ts';", // 4: a runtime
    "import { fixture } from '../../test/helpers.ts';", // 5
    "import { own } from './own.ts';", // 6: fine
    "import { errors } from '../../core/errors.ts';", // 7: fine
    '// The Kernel is not handed out; kernel.setState( would be wrong', // 8: a comment, fine
    'export function f(ctx: { x: Kernel }) {', // 9
    '  view.setState("running");', // 10
    "  const k = await import('../../core/registry.ts');", // 11
    '  return instanceOf(view);', // 12
    "  kernel.hooks.spawn.for('process').tapPromise('x', spawn); kernel.hooks.describe.promise(v, {});", // 13: two
    '  void kernel.supervisor.start(view);', // 14
    "  const url = 'http://example.com'; const t: TestKernel = null as never; const h: KernelHooks = null as never;", // 15: fine
    '  ctx.hooks.route.tap(route); ctx.hooks.spawn.for(tier).tap(spawn); ctx.lifecycle.start(view);', // 16: fine
    '}',
  ].join('\n');
  const found = offencesOf('plugins/cgroups/index.ts', text).map((o) => `${o.line}:${o.what.split(' ')[0]}`).sort();
  assert.deepEqual(
    found,
    ['1:imports', '1:names', '10:calls', '11:imports', '12:calls', '13:calls', '13:calls', '14:reaches', '2:imports', '3:imports', '4:imports', '5:imports', '9:names'].sort(),
  );
  // A plugin's own folder and a config file loading plugins are fine; an example plugin importing one is not.
  assert.deepEqual(offencesOf('plugins/router/index.ts', "import { w } from './weighted.ts';\nimport { x } from '../router/parse-host.ts';"), []);
  assert.deepEqual(offencesOf('examples/demo/tenement.config.ts', "import router from '../../plugins/router/index.ts';\nexport default { setup: 1 };"), []);
  assert.equal(offencesOf('examples/demo/my-plugin.ts', "import { w } from '../../plugins/router/weighted.ts';\nexport default { setup(ctx) {} };").length, 1);
  assert.equal(offencesOf('examples/demo/my-plugin.ts', "import { k } from '../../core/test-kernel.ts';").length, 1);
});

/**
 * Pure zod fragments of first-party plugins: the first-party registry reads them to name the plugin that would
 * accept a field, and schema.ts composes them into the config's static type (what defineConfig checks).
 */
const SCHEMA_FRAGMENT = /^(plugins|runtimes)\/[^/]+\/schema\.ts$/;
const FIRST_PARTY_REGISTRY = 'core/config/first-party.ts';
const FRAGMENT_READERS: ReadonlySet<string> = new Set([FIRST_PARTY_REGISTRY, 'core/config/schema.ts']);

/** Layering: core imports nothing above it; production code (core, cli, sdk) imports no test helper. */
export function layeringOffencesOf(relative: string, text: string): Offence[] {
  const offences: Offence[] = [];
  const code = withoutComments(text);
  const inCore = relative.startsWith('core/');
  for (const { spec, index } of specifiers(code)) {
    if (!spec.startsWith('.')) continue;
    const target = path.relative(ROOT, path.resolve(ROOT, path.dirname(relative), spec)).split(path.sep).join('/');
    const top = target.split('/')[0]!;
    const line = lineAt(code, index);
    if (target === 'core/test-kernel.ts' || top === 'test') {
      offences.push({ file: relative, line, what: `imports ${target} (production code never imports test helpers)` });
    } else if (inCore && ['plugins', 'runtimes', 'cli', 'sdk', 'examples'].includes(top)) {
      if (FRAGMENT_READERS.has(relative) && SCHEMA_FRAGMENT.test(target)) continue;
      offences.push({ file: relative, line, what: `imports ${target} (core imports nothing above it)` });
    }
  }
  return offences;
}

test('the layering lint: core importing a plugin, the CLI or the SDK, production code importing test helpers', () => {
  assert.deepEqual(layeringOffencesOf('core/server.ts', "import router from '../plugins/router/index.ts';\nimport { x } from './errors.ts';").map((o) => o.line), [1]);
  assert.deepEqual(layeringOffencesOf('core/config/loader.ts', "import { f } from '../../plugins/storage/schema.ts';").length, 1);
  assert.deepEqual(layeringOffencesOf(FIRST_PARTY_REGISTRY, "import { f } from '../../plugins/storage/schema.ts';"), []);
  assert.deepEqual(layeringOffencesOf(FIRST_PARTY_REGISTRY, "import s from '../../plugins/storage/index.ts';").length, 1);
  assert.deepEqual(layeringOffencesOf('cli/tier-check.ts', "import { createTestKernel } from '../core/test-kernel.ts';").length, 1);
  assert.deepEqual(layeringOffencesOf('cli/serve.ts', "import router from '../plugins/router/index.ts';"), []);
});

test('core imports nothing above it, and core, cli and sdk import no test helper', () => {
  const offences: Offence[] = [];
  for (const top of ['core', 'cli', 'sdk']) {
    for (const file of sourceFiles(path.join(ROOT, top))) {
      const relative = path.relative(ROOT, file).split(path.sep).join('/');
      if (relative === 'core/test-kernel.ts') continue;
      offences.push(...layeringOffencesOf(relative, readFileSync(file, 'utf8')));
    }
  }
  const report = offences.map((o) => `${o.file}:${o.line}: ${o.what}`);
  assert.deepEqual(report, [], `${offences.length} layering offence(s):\n${report.join('\n')}`);
});

test('plugins, runtimes and examples use only the PluginContext: no kernel internals, no other plugin, no Kernel', () => {
  const offences: Offence[] = [];
  for (const top of SCANNED) {
    for (const file of sourceFiles(path.join(ROOT, top))) {
      const relative = path.relative(ROOT, file).split(path.sep).join('/');
      offences.push(...offencesOf(relative, readFileSync(file, 'utf8')));
    }
  }
  const report = offences.map((o) => `${o.file}:${o.line}: ${o.what}`);
  assert.deepEqual(report, [], `${offences.length} boundary offence(s):\n${report.join('\n')}`);
});
