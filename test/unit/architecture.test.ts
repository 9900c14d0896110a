/**
 * docs/architecture.md is the map of the kernel: these tests fail when the code grows a hook, a PluginContext
 * member or a lifecycle transition the map does not show (or the map shows one the code no longer has).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HookTimings, createHooks } from '../../core/hooks.ts';
import { canTransition, statesOtherThan } from '../../core/lifecycle.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import type { InstanceState } from '../../core/types.ts';
import { definePlugin } from '../../sdk/index.ts';

const DOC_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'architecture.md');
const doc = readFileSync(DOC_PATH, 'utf8');

/** The lines of the `## title` section (up to the next `## `). */
function section(title: string): string[] {
  const lines = doc.split('\n');
  const start = lines.findIndex((line) => line.trim() === `## ${title}`);
  assert.notEqual(start, -1, `docs/architecture.md has a '## ${title}' section`);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((line) => line.startsWith('## '));
  return end === -1 ? rest : rest.slice(0, end);
}

const isRow = (line: string | undefined): boolean => line !== undefined && line.trim().startsWith('|');
const isSeparator = (line: string | undefined): boolean => line !== undefined && /^\|[\s|:-]+\|$/.test(line.trim());

/** The cells of every body row of the tables in a section (header and separator rows left out). */
function rows(lines: string[]): string[][] {
  return lines
    .filter((line, i) => isRow(line) && !isSeparator(line) && !isSeparator(lines[i + 1]))
    .map((line) => line.trim().replace(/^\||\|$/g, '').split('|').map((cell) => cell.trim()));
}

/** The backticked name a row's first cell documents, e.g. `` `spawn` `` or `` `ctx.hooks` ``. */
function firstCellName(cells: string[], prefix = ''): string | null {
  const match = new RegExp(`^\`${prefix.replace('.', '\\.')}([A-Za-z]+)`).exec(cells[0] ?? '');
  return match ? match[1]! : null;
}

function compare(kind: string, declared: readonly string[], documented: readonly string[]): void {
  const missing = declared.filter((name) => !documented.includes(name));
  const stale = documented.filter((name) => !declared.includes(name));
  assert.deepEqual(missing, [], `${kind} missing from docs/architecture.md: ${missing.join(', ')}`);
  assert.deepEqual(stale, [], `${kind} documented in docs/architecture.md but gone from the code: ${stale.join(', ')}`);
}

test('every declared kernel hook has a row in the hooks table of docs/architecture.md, and no row names a hook that is gone', () => {
  const declared = Object.keys(createHooks(new HookTimings()));
  assert.ok(declared.length > 0);
  const documented = rows(section('Hooks'))
    .map((cells) => firstCellName(cells))
    .filter((name): name is string => name !== null);
  compare('hooks', declared, documented);
});

test('the hooks table of docs/architecture.md gives each hook its tapable class', () => {
  const hooks = createHooks(new HookTimings()) as unknown as Record<string, { constructor: { name: string }; for?: (key: string) => { constructor: { name: string } } }>;
  const table = new Map(rows(section('Hooks')).map((cells) => [firstCellName(cells), cells[1] ?? '']));
  const wrong: string[] = [];
  for (const [name, hook] of Object.entries(hooks)) {
    const outer = hook.constructor.name;
    const expected = outer === 'HookMap' && hook.for ? `HookMap<${hook.for('x').constructor.name}` : outer;
    const cell = table.get(name) ?? '';
    if (!cell.startsWith(`\`${expected}<`)) wrong.push(`${name}: the code says ${expected}, the map says ${cell || 'nothing'}`);
  }
  assert.deepEqual(wrong, [], wrong.join('\n'));
});

test('every PluginContext member has a row in the plugin context table of docs/architecture.md', async () => {
  let captured: PluginContext | null = null;
  const probe = definePlugin({
    name: 'architecture-probe',
    version: '1.0.0',
    kernel: '^1',
    setup(ctx) {
      captured = ctx;
    },
  });
  const kernel = await createTestKernel({ plugins: [probe] });
  await kernel.close();
  assert.ok(captured, 'the probe plugin was set up');
  // Own keys, getters included: every member the kernel puts on a context.
  const declared = Object.keys(captured as PluginContext);
  assert.ok(declared.includes('hooks') && declared.includes('lifecycle'), declared.join(', '));
  const documented = rows(section('The plugin context'))
    .map((cells) => firstCellName(cells, 'ctx.'))
    .filter((name): name is string => name !== null);
  compare('PluginContext members', declared, documented);
});

test('the transitions table of docs/architecture.md is core/lifecycle.ts, pair for pair', () => {
  const states = [...statesOtherThan('created'), 'created'] as InstanceState[];
  const documented = new Map<string, string[]>();
  for (const cells of rows(section('Lifecycle'))) {
    const from = /^`([a-z]+)`$/.exec(cells[0] ?? '')?.[1];
    if (!from || !states.includes(from as InstanceState)) continue;
    documented.set(from, [...(cells[1] ?? '').matchAll(/`([a-z]+)`/g)].map((m) => m[1]!).sort());
  }
  compare('states', states, [...documented.keys()]);
  for (const from of states) {
    const allowed = states.filter((to) => canTransition(from, to)).sort();
    assert.deepEqual(documented.get(from), allowed, `transitions from '${from}' in docs/architecture.md`);
  }
});
