/**
 * Cleanup order as a lint. Node 20 runs after-hooks in the order they were added and the first one that throws
 * skips the rest: a hook that only removes a folder, added before the hook that stops what writes into it (a
 * kernel, `ten serve`, a child, a server), can fail with ENOTEMPTY and leave that writer running, which kept a test
 * file's process alive until CI's 90-minute limit. Within one test body (a test/describe callback, a helper that
 * registers hooks on its caller's `t`, or the file itself) every `after(` / `x.after(` hook is classified, in the
 * order the hooks are added (hooks added inside a `before(` callback come after the body's own), and a removal-only
 * hook added before a stop hook is an offence, printed as file:line. Helpers that add hooks on the caller's `t`
 * (a same-file function, or one imported from a test/ module that is not a test file) count at their call.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { sourceFiles } from '../source-files.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

type Kind = 'rm' | 'stop' | 'other';
interface Hook {
  kind: Kind;
  line: number;
  /** Added inside a `before(` callback: runs after the hooks the enclosing body adds itself. */
  late: boolean;
  pos: number;
}

const REMOVE = new Set(['rm', 'rmSync', 'rmdir', 'rmdirSync', 'unlink', 'unlinkSync']);
const STOP = new Set(['close', 'stop', 'kill', 'terminate', 'destroy', 'dispose', 'shutdown', 'abort', 'closeAllConnections']);
const BEFORE_CALLS = new Set(['before', 'beforeEach']);

/** The name a call is made by: `f(` -> f, `a.b.f(` -> f. */
function calleeName(call: ts.CallExpression): string | null {
  const callee = call.expression;
  if (ts.isIdentifier(callee)) return callee.text;
  if (ts.isPropertyAccessExpression(callee)) return callee.name.text;
  return null;
}

const isFunction = (node: ts.Node): node is ts.ArrowFunction | ts.FunctionExpression | ts.FunctionDeclaration =>
  ts.isArrowFunction(node) || ts.isFunctionExpression(node) || ts.isFunctionDeclaration(node);

/** `after(fn)` or `<anything>.after(fn)`: a hook registration. */
function isHookCall(node: ts.Node): node is ts.CallExpression {
  return ts.isCallExpression(node) && calleeName(node) === 'after' && node.arguments.length >= 1;
}

/** Functions a file declares by name (`function f` or `const f = (...) =>`), bodies to classify or expand. */
function namedFunctions(file: ts.SourceFile): Map<string, ts.Node> {
  const found = new Map<string, ts.Node>();
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionDeclaration(node) && node.name) found.set(node.name.text, node);
    else if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer && isFunction(node.initializer)) {
      found.set(node.name.text, node.initializer);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

/** What a hook's callback does: removes a path and stops nothing ('rm'), stops something ('stop'), or neither. */
function classify(callback: ts.Node, locals: Map<string, ts.Node>, depth = 0): Kind {
  let removes = false;
  let stops = false;
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node)) {
      const name = calleeName(node);
      if (name !== null && REMOVE.has(name)) removes = true;
      else if (name !== null && (STOP.has(name) || /^(stop|close|kill)[A-Z]/.test(name))) stops = true;
      else if (name !== null && ts.isIdentifier(node.expression) && depth < 3) {
        const local = locals.get(name);
        if (local !== undefined && local !== callback) {
          const kind = classify(local, locals, depth + 1);
          if (kind === 'rm') removes = true;
          if (kind === 'stop') stops = true;
        }
      }
    }
    ts.forEachChild(node, visit);
  };
  if (ts.isIdentifier(callback)) {
    const local = locals.get(callback.text);
    return local !== undefined && depth < 3 ? classify(local, locals, depth + 1) : 'other';
  }
  visit(callback);
  return stops ? 'stop' : removes ? 'rm' : 'other';
}

/** The body a hook registration belongs to: a test/describe callback, a named function, or the file. */
function bodyOf(node: ts.Node): { body: ts.Node; late: boolean } {
  let late = false;
  for (let at = node.parent; at !== undefined; at = at.parent) {
    if (ts.isSourceFile(at)) return { body: at, late };
    if (!isFunction(at)) continue;
    if (ts.isFunctionDeclaration(at) || (ts.isVariableDeclaration(at.parent) && at.parent.initializer === at)) return { body: at, late };
    const call = at.parent;
    if (ts.isCallExpression(call) && call.arguments.includes(at as ts.Expression)) {
      const name = calleeName(call);
      if (name !== null && BEFORE_CALLS.has(name)) {
        late = true;
        continue;
      }
      // A callback handed to any other call is a body of its own: a test or describe, or a wrapper that makes
      // tests (wasm-plugins' onBothEngines); a file-level after-hook runs after all of them.
      return { body: at, late };
    }
  }
  return { body: node.getSourceFile(), late };
}

/** Hook kinds a helper adds on its caller's `t`, in order, per exported/declared function name. */
export type Helpers = Map<string, Kind[]>;

/** The hooks each named function of a file adds itself (helpers such as `trackedKernel(t, ...)` or `tempDir(t)`). */
export function helpersOf(relative: string, text: string): Helpers {
  const file = ts.createSourceFile(relative, text, ts.ScriptTarget.Latest, true);
  const locals = namedFunctions(file);
  const helpers: Helpers = new Map();
  for (const [name, fn] of locals) {
    const kinds: Kind[] = [];
    const visit = (node: ts.Node): void => {
      if (isHookCall(node) && bodyOf(node).body === fn) kinds.push(classify(node.arguments[0]!, locals));
      ts.forEachChild(node, visit);
    };
    visit(fn);
    if (kinds.length > 0) helpers.set(name, kinds);
  }
  return helpers;
}

/** Offences of one test file as `file:line ...`; `imported` maps names imported from test helper modules. */
export function cleanupOffences(relative: string, text: string, imported: Helpers = new Map()): string[] {
  const file = ts.createSourceFile(relative, text, ts.ScriptTarget.Latest, true);
  const locals = namedFunctions(file);
  const ownHelpers = helpersOf(relative, text);
  const bodies = new Map<ts.Node, Hook[]>();
  const add = (node: ts.Node, kinds: Kind[]): void => {
    const { body, late } = bodyOf(node);
    const line = file.getLineAndCharacterOfPosition(node.getStart(file)).line + 1;
    const hooks = bodies.get(body) ?? [];
    for (const kind of kinds) hooks.push({ kind, line, late, pos: node.getStart(file) });
    bodies.set(body, hooks);
  };
  const visit = (node: ts.Node): void => {
    if (isHookCall(node)) add(node, [classify(node.arguments[0]!, locals)]);
    else if (ts.isCallExpression(node) && ts.isIdentifier(node.expression)) {
      const kinds = ownHelpers.get(node.expression.text) ?? (locals.has(node.expression.text) ? undefined : imported.get(node.expression.text));
      if (kinds !== undefined) add(node, kinds);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  const offences: string[] = [];
  for (const hooks of bodies.values()) {
    hooks.sort((a, b) => Number(a.late) - Number(b.late) || a.pos - b.pos);
    const firstRm = hooks.find((hook) => hook.kind === 'rm');
    if (firstRm === undefined) continue;
    const stop = hooks.slice(hooks.indexOf(firstRm) + 1).find((hook) => hook.kind === 'stop');
    if (stop !== undefined) {
      offences.push(`${relative}:${firstRm.line} removes a path in an after-hook added before the hook at line ${stop.line} that stops what may write into it`);
    }
  }
  return offences;
}

/** Helpers the test file imports by name from test/ modules that are not test files. */
function importedHelpers(relative: string, text: string, cache: Map<string, Helpers>): Helpers {
  const file = ts.createSourceFile(relative, text, ts.ScriptTarget.Latest, true);
  const out: Helpers = new Map();
  for (const statement of file.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier)) continue;
    const spec = statement.moduleSpecifier.text;
    if (!spec.startsWith('.')) continue;
    const target = path.relative(ROOT, path.resolve(ROOT, path.dirname(relative), spec));
    if (!target.startsWith('test/') || target.endsWith('.test.ts') || !existsSync(path.join(ROOT, target))) continue;
    let helpers = cache.get(target);
    if (helpers === undefined) {
      helpers = helpersOf(target, readFileSync(path.join(ROOT, target), 'utf8'));
      cache.set(target, helpers);
    }
    const names = statement.importClause?.namedBindings;
    if (names === undefined || !ts.isNamedImports(names)) continue;
    for (const element of names.elements) {
      const kinds = helpers.get((element.propertyName ?? element.name).text);
      if (kinds !== undefined) out.set(element.name.text, kinds);
    }
  }
  return out;
}

test('no test removes a folder in an after-hook added before the hook that stops what writes into it', () => {
  const cache = new Map<string, Helpers>();
  const files = sourceFiles(path.join(ROOT, 'test')).filter((file) => file.endsWith('.test.ts'));
  assert.ok(files.length > 50, `found only ${files.length} test files`);
  const offences: string[] = [];
  for (const full of files) {
    const relative = path.relative(ROOT, full);
    const text = readFileSync(full, 'utf8');
    offences.push(...cleanupOffences(relative, text, importedHelpers(relative, text, cache)));
  }
  assert.deepEqual(offences, []);
});

test('the guard catches the pattern that hung CI, and passes its fix', () => {
  const hung = [
    "test('x', async (t) => {",
    "  const dir = tempDir('x-');",
    '  t.after(() => rmSync(dir, { recursive: true, force: true }));',
    '  const server = await startServe(config, url, dataDir);',
    '  t.after(() => server.stop());',
    '});',
  ].join('\n');
  assert.deepEqual(cleanupOffences('sample.test.ts', hung), [
    'sample.test.ts:3 removes a path in an after-hook added before the hook at line 5 that stops what may write into it',
  ]);
  const fixed = [
    "test('x', async (t) => {",
    "  const dir = tempDir('x-');",
    '  const server = await startServe(config, url, dataDir);',
    '  t.after(() => server.stop().finally(() => rmSync(dir, { recursive: true, force: true })));',
    '});',
  ].join('\n');
  assert.deepEqual(cleanupOffences('sample.test.ts', fixed), []);
  const moved = [
    "test('x', async (t) => {",
    '  const kernel = await createTestKernel(options);',
    '  t.after(() => kernel.close());',
    '  t.after(async () => { await rm(dir, { recursive: true, force: true }); });',
    '});',
  ].join('\n');
  assert.deepEqual(cleanupOffences('sample.test.ts', moved), []);
});

test('the guard follows helpers that add hooks on the caller and removals at describe level', () => {
  const viaHelpers = [
    'function scratch(t) {',
    "  const dir = mkdtempSync('x-');",
    '  t.after(() => rmSync(dir, { recursive: true, force: true }));',
    '  return dir;',
    '}',
    "test('x', async (t) => {",
    '  const dir = scratch(t);',
    '  await trackedKernel(t, {});',
    '});',
  ].join('\n');
  assert.deepEqual(cleanupOffences('sample.test.ts', viaHelpers, new Map([['trackedKernel', ['stop']]])), [
    'sample.test.ts:7 removes a path in an after-hook added before the hook at line 8 that stops what may write into it',
  ]);
  const describeLevel = [
    "describe('x', () => {",
    '  let kernel;',
    '  before(async () => {',
    '    kernel = await createTestKernel(options);',
    '    after(() => kernel.close());',
    '  });',
    '  after(() => rmSync(dir, { recursive: true, force: true }));',
    '});',
  ].join('\n');
  assert.deepEqual(cleanupOffences('sample.test.ts', describeLevel), [
    'sample.test.ts:7 removes a path in an after-hook added before the hook at line 5 that stops what may write into it',
  ]);
});
