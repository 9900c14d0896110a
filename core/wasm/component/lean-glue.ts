/**
 * Main thread, at transpile time: opens two lean paths through jco's generated glue (the calls themselves are in
 * lean-calls.ts, in the worker). jco-transpile 0.15 wraps every export call and every host import in the
 * component model's task machinery (a task per export call; a subtask and a host task per import, each entered,
 * resolved and exited), which a synchronous handler never needs: about half of a warm `handle()` call of
 * examples/wasm-hello on V8 (38 -> 25 µs in one process, the same QuickJS guest). The glue is left whole; what is
 * added is
 *   - `__tenementHandle` on the instance's exports: the handler world's core `handle` export, the guest's memory,
 *     its realloc and the post-return, so `handle` can be called with the canonical ABI written out for that one
 *     signature;
 *   - before the core instances are made, each host import of Tenement's own world that lean-calls.ts knows
 *     (log `write`, runtime `now`, `utf8-encode`, `utf8-decode`, `random-bytes`) swapped for its lean call when
 *     the host offers one (jco's trampoline stays otherwise).
 * Each piece is found by patterns of the pinned jco version's output and checked; whatever is not found as
 * expected is left as jco made it (correct, slower), and `leanPaths` says what was opened.
 */

/** The imports key the worker's lean calls come in under (a space: no component import can be named so). */
export const LEAN_IMPORTS_KEY = 'tenement lean';
export const LEAN_HANDLE_EXPORT = '__tenementHandle';

/** The functions of Tenement's world with a lean call, as jco names them in `fnName` (interface without version). */
export const LEAN_FUNCTIONS: ReadonlySet<string> = new Set([
  'tenement:http/log#write',
  'tenement:http/runtime#now',
  'tenement:http/runtime#utf8Encode',
  'tenement:http/runtime#utf8Decode',
  'tenement:http/runtime#randomBytes',
]);

export interface LeanPaths {
  handle: boolean;
  imports: string[];
}

/** The request record's ten flat parameters (three strings, the header list and the body: pointer and length each). */
const FLAT_ARGS = 'a0, a1, a2, a3, a4, a5, a6, a7, a8, a9';
const INSTANTIATE_HEAD = 'export function instantiate(getCoreModule, imports, instantiateCore = WebAssembly.instantiate) {\n';
const FIRST_CORE_INSTANCE = /^\s*\(\{ exports: exports0 \} = yield instantiateCore\(/m;
const TRAMPOLINE_NAME = /^\s*_trampoline(\d+)\.fnName = '([^'#@]+)(?:@[^'#]*)?#(\w+)';$/gm;

/** The text of `const _trampolineN = function(...) {` up to its `fnName` line. */
function trampolineBody(text: string, index: string, fnNameAt: number): string | null {
  const start = text.lastIndexOf(`const _trampoline${index} = function(`, fnNameAt);
  return start === -1 ? null : text.slice(start, fnNameAt);
}

function leanImports(text: string, opened: string[]): string[] {
  const swaps: string[] = [];
  for (const match of text.matchAll(TRAMPOLINE_NAME)) {
    const [, index, iface, fn] = match;
    const key = `${iface}#${fn}`;
    if (!LEAN_FUNCTIONS.has(key)) continue;
    const body = trampolineBody(text, index!, match.index);
    if (!body || !new RegExp(`^\\s*let trampoline${index} = _trampoline${index}\\.manuallyAsync \\?`, 'm').test(text)) continue;
    const memories = new Set([...body.matchAll(/\b(memory\d+)\.buffer\b/g)].map((m) => m[1]));
    // Lists are allocated as `reallocN(0, 0, 1, len)`, strings through `_utf8AllocateAndEncode(value, reallocN, memoryN)`.
    const reallocs = new Set([...body.matchAll(/\b(realloc\d+)\(0, 0, 1, |_utf8AllocateAndEncode\(\w+, (realloc\d+), /g)].map((m) => m[1] ?? m[2]));
    if (memories.size > 1 || reallocs.size > 1) continue;
    const [memory] = memories;
    const [realloc] = reallocs;
    // A call that reads or writes the guest's memory must name the one it uses.
    if (fn !== 'now' && !memory) continue;
    if ((fn === 'utf8Encode' || fn === 'utf8Decode' || fn === 'randomBytes') && !realloc) continue;
    swaps.push(
      `  trampoline${index} = __tenementLean(${JSON.stringify(key)}, ${memory ? `() => ${memory}` : 'null'}, ${realloc ? `() => ${realloc}` : 'null'}) ?? trampoline${index};\n`,
    );
    opened.push(key);
  }
  return swaps;
}

/** The handler world's `handle`: the names of its core export, memory, realloc and post-return, when it is the expected one. */
function handleParts(text: string): { core: string; memory: string; realloc: string; postReturn: string; component: string } | null {
  const start = text.indexOf('\n  function handle(arg0) {\n');
  if (start === -1) return null;
  const end = text.indexOf('\n  }\n', start + 1);
  if (end === -1) return null;
  const body = text.slice(start, end);
  // The request record, lowered flat, and the response record read back at the returned pointer.
  if (!/var \{method: \w+, path: \w+, query: \w+, headers: \w+, body: \w+ \} = arg0;/.test(body)) return null;
  for (const offset of ['ret + 4', 'ret + 8', 'ret + 12', 'ret + 16']) if (!body.includes(`getUint32(${offset}, true)`)) return null;
  if (!/status: clampGuest\(dataView\(\w+\)\.getUint16\(ret \+ 0, true\), 0, 65535\),\s*headers: \w+,\s*body: \w+,/.test(body)) return null;
  const core = /fn: \(\) => (exports\d+Handle)\(/.exec(body)?.[1];
  const encode = /_utf8AllocateAndEncode\(\w+, (realloc\d+), (memory\d+)\)/.exec(body);
  const postReturn = /\n\s*(postReturn\d+)\(ret\);/.exec(body)?.[1];
  // jco marks the component trapped (and words a core trap as the Canonical ABI does) before a trap leaves it.
  const component = /getOrCreateAsyncState\((\d+)\)\.throwIfTrapped\(\);/.exec(body)?.[1];
  if (!core || !encode || !postReturn || !component || !body.includes(`getOrCreateAsyncState(${component}).markTrapped(err);`)) return null;
  return { core, realloc: encode[1]!, memory: encode[2]!, postReturn, component };
}

const SYNC_ENTER = /^(\s*)const (trampoline\d+) = _symmetricSyncGuestCallEnter;$/m;
const SYNC_EXIT = /^(\s*)const (trampoline\d+) = _symmetricSyncGuestCallExit;$/m;

/** The glue with lean-aware sync-call trampolines; null when they are wired in a way not recognised (no lean `handle` then). */
function withLeanSyncCalls(text: string): string | null {
  const uses = (text.match(/_symmetricSyncGuestCall(Enter|Exit)\b(?!\()/g) ?? []).length;
  if (uses === 0) return text;
  const enter = SYNC_ENTER.exec(text);
  const exit = SYNC_EXIT.exec(text);
  if (!enter || !exit || uses !== 2 || !text.includes('function getCurrentTask(')) return null;
  return text
    .replace(SYNC_ENTER, `$1const $2 = (caller, calleeIsAsync, callee, syncOnly) => __tenementLeanDepth > 0 || !getCurrentTask(caller) ? (__tenementLeanDepth++, 1) : _symmetricSyncGuestCallEnter(caller, calleeIsAsync, callee, syncOnly);`)
    .replace(SYNC_EXIT, `$1const $2 = () => __tenementLeanDepth > 0 ? void __tenementLeanDepth-- : _symmetricSyncGuestCallExit();`);
}

/** The glue with the lean paths opened where found; `opened` says which. */
export function withLeanPaths(text: string): { text: string; opened: LeanPaths } {
  const opened: LeanPaths = { handle: false, imports: [] };
  if (!text.includes(INSTANTIATE_HEAD)) return { text, opened };
  let out = text.replace(
    INSTANTIATE_HEAD,
    `${INSTANTIATE_HEAD}const __tenementLean = imports[${JSON.stringify(LEAN_IMPORTS_KEY)}]?.make ?? (() => null);\nlet __tenementLeanDepth = 0;\n`,
  );

  const first = FIRST_CORE_INSTANCE.exec(out);
  const swaps = first ? leanImports(out, opened.imports) : [];
  if (first && swaps.length > 0) out = out.slice(0, first.index) + `\n${swaps.join('')}` + out.slice(first.index);

  // Calls between the components of a composition (`enter-sync-call` / `exit-sync-call`, e.g. into the stubbed WASI
  // of a `ten build` guest) enter a task for the callee under the caller's; a lean call has none, so there they
  // go through untracked, as jco did before it had tasks (for sync calls that is all the tracking did).
  const syncCalls = withLeanSyncCalls(out);
  if (syncCalls === null) return { text: out, opened };
  out = syncCalls;

  const parts = handleParts(out);
  const exportsLine = /\n(\s*)return \{ handle, init,\s*\};\n/.exec(out);
  if (parts && exportsLine) {
    const lean =
      `${LEAN_HANDLE_EXPORT}: { call: (${FLAT_ARGS}) => ${parts.core}(${FLAT_ARGS}), memory: () => ${parts.memory}, ` +
      `realloc: (a, b, c, d) => ${parts.realloc}(a, b, c, d), postReturn: (ret) => ${parts.postReturn}(ret), ` +
      `trapped: (err) => getOrCreateAsyncState(${parts.component}).markTrapped(err) }`;
    out = out.slice(0, exportsLine.index) + `\n${exportsLine[1]}return { handle, init, ${lean} };\n` + out.slice(exportsLine.index + exportsLine[0].length);
    opened.handle = true;
  }
  return { text: out, opened };
}
