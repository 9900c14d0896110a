/**
 * Main thread: a component file -> a ComponentArtifact workers can run. Transpiled once per content hash (jco's
 * glue JS + core modules, kept on disk under `${cacheDir}/${hash}/` and reused across restarts), then each core
 * module compiled once per process with its memories capped. Never compiled per request or per worker: the
 * artifact's `WebAssembly.Module`s structured-clone to workers as handles to the same compiled code.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCodes, TenementError } from '../../errors.ts';
import { binaryKind, compileModule, enableWasmFeatures } from '../engine.ts';
import { HANDLER_WORLD } from './http.ts';
import { withLeanPaths } from './lean-glue.ts';
import type { ComponentArtifact, PrepareComponentOptions } from './types.ts';

/** What the transpile step leaves on disk next to the glue, so a later run needs no transpiler at all. */
interface Manifest {
  /** Bumped when the on-disk layout or the glue rewriting changes: older artifacts are transpiled again. */
  version: typeof MANIFEST_VERSION;
  imports: string[];
  exports: string[];
  world: string;
  js: string;
  cores: string[];
}

const MANIFEST = 'manifest.json';
const MANIFEST_VERSION = 5;
const GLUE = 'component.js';
/** In-memory artifacts by hash and cap: the compiled modules are the expensive part. */
const prepared = new Map<string, Promise<ComponentArtifact>>();

/**
 * The glue wraps exports in `WebAssembly.promising` (JSPI) inside try/catch, falling back to the plain function.
 * Node 20 has no JSPI, so every instantiation threw and caught four TypeErrors, ~6 ms of a ~15 ms
 * instantiation. Same semantics without the throws: use the plain function when JSPI is missing.
 */
function withoutJspiProbes(text: string): string {
  if (!text.includes('WebAssembly.promising(')) return text;
  const shim =
    "const __tenementPromising = typeof WebAssembly.promising === 'function' ? WebAssembly.promising : (fn) => fn;\n";
  return shim + text.replaceAll('WebAssembly.promising(', '__tenementPromising(');
}

/**
 * The glue's `_debugLog`, called several times per guest call and per host import, reads
 * `process.env.JCO_DEBUG` every time (a slow C++ getter): about a third of a warm call. Read it once at load.
 */
const DEBUG_LOG_CHECK = 'if (!globalThis?.process?.env?.JCO_DEBUG) { return; }';
function withDebugFlagReadOnce(text: string): string {
  if (!text.includes(DEBUG_LOG_CHECK)) return text;
  const shim = 'const __tenementJcoDebug = Boolean(globalThis?.process?.env?.JCO_DEBUG);\n';
  return shim + text.replaceAll(DEBUG_LOG_CHECK, 'if (!__tenementJcoDebug) { return; }');
}

/**
 * Even with the flag read once, each of the ~130 `_debugLog(...)` statements builds its arguments (object
 * literals, spread arrays) before `_debugLog` returns, several per guest call and per host import. Guarded, the
 * arguments are only built when debugging. Every call site is a statement of its own line.
 */
const DEBUG_LOG_STATEMENT = /^(\s*)_debugLog\(/gm;
function withDebugArgumentsSkipped(text: string): string {
  if (!text.includes('__tenementJcoDebug')) return text;
  return text.replace(DEBUG_LOG_STATEMENT, '$1if (__tenementJcoDebug) _debugLog(');
}

/** Rewrites of jco's generated glue that keep its behaviour and remove per-call costs (measured). */
function tuneGlue(glue: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(glue);
  return new TextEncoder().encode(withLeanPaths(withDebugArgumentsSkipped(withDebugFlagReadOnce(withoutJspiProbes(text)))).text);
}

async function transpile(bytes: Uint8Array, dir: string): Promise<Manifest> {
  let transpileBytes: typeof import('@bytecodealliance/jco-transpile').transpileBytes;
  try {
    ({ transpileBytes } = await import('@bytecodealliance/jco-transpile'));
  } catch {
    throw new TenementError(
      ErrorCodes.TIER_UNAVAILABLE,
      'running components needs @bytecodealliance/jco-transpile, which is not installed: run `npm install @bytecodealliance/jco-transpile@0.15`',
    );
  }
  const result = await transpileBytes(bytes, {
    name: 'component',
    // Instantiation mode: the glue imports nothing and takes our host imports and precompiled modules as arguments.
    instantiation: { tag: 'async' },
    emitTypescriptDeclarations: false,
  });
  const exports = result.exports.map(([name]) => name).filter((name) => name !== 'init');
  const manifest: Manifest = {
    version: MANIFEST_VERSION,
    imports: result.imports,
    exports,
    world: exports.includes('handle') ? HANDLER_WORLD : (result.imports[0]?.replace(/\/.*$/, '') ?? 'unknown'),
    js: GLUE,
    cores: Object.keys(result.files).filter((file) => file.endsWith('.wasm')).sort(),
  };
  const glue = result.files[GLUE];
  if (!glue) throw new Error(`jco-transpile produced no ${GLUE}`);
  result.files[GLUE] = tuneGlue(glue);
  // Written to a sibling and renamed into place: a crash mid-write leaves no half artifact under the hash.
  const partial = `${dir}.${process.pid}.${Date.now()}.partial`;
  await mkdir(partial, { recursive: true });
  try {
    for (const [file, content] of Object.entries(result.files)) {
      if (file.includes('/') || file.includes('..') || !(file.endsWith('.wasm') || file === GLUE)) continue;
      await writeFile(join(partial, file), content);
    }
    await writeFile(join(partial, MANIFEST), JSON.stringify(manifest, null, 2));
    await rename(partial, dir).catch(async (error: NodeJS.ErrnoException) => {
      // Another process finished the same hash first: theirs is as good as ours.
      if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
      await rm(partial, { recursive: true, force: true });
    });
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error;
  }
  return manifest;
}

/**
 * Compiles one core module of a component with its memories capped. Adapter modules import the memory of the
 * component's main module instead of defining one; that memory is capped where it is defined (the glue never
 * hands a host memory in), so they compile as they are.
 */
function compileCore(bytes: Uint8Array, pages: number): WebAssembly.Module {
  try {
    return compileModule(bytes, pages);
  } catch (error) {
    if (!/imports its memory/.test((error as Error).message)) throw error;
    enableWasmFeatures();
    return new WebAssembly.Module(bytes);
  }
}

async function readManifest(dir: string): Promise<Manifest | null> {
  try {
    const manifest = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as Manifest;
    if (manifest.version !== MANIFEST_VERSION) return null;
    const present = new Set(await readdir(dir));
    return manifest.cores.every((file) => present.has(file)) && present.has(manifest.js) ? manifest : null;
  } catch {
    return null;
  }
}

async function load(wasmPath: string, hash: string, bytes: Uint8Array, opts: PrepareComponentOptions): Promise<ComponentArtifact> {
  const dir = join(opts.cacheDir, hash);
  // 0700: a tenant of the process tier must not list or read other services' compiled code in the data dir.
  await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
  let manifest = await readManifest(dir);
  if (!manifest) {
    await rm(dir, { recursive: true, force: true });
    manifest = await transpile(bytes, dir);
  }
  const modules: Record<string, WebAssembly.Module> = {};
  for (const file of manifest.cores) {
    try {
      modules[file] = compileCore(await readFile(join(dir, file)), opts.memoryPages);
    } catch (error) {
      throw new TenementError(
        ErrorCodes.CONFIG_INVALID,
        `module: ${wasmPath}: core module ${file} does not compile: ${(error as Error).message}`,
      );
    }
  }
  return {
    hash,
    jsPath: pathToFileURL(join(dir, manifest.js)).href,
    modules,
    world: manifest.world,
    exports: manifest.exports,
    imports: manifest.imports,
    memoryPages: opts.memoryPages,
  };
}

export async function prepareComponent(wasmPath: string, opts: PrepareComponentOptions): Promise<ComponentArtifact> {
  if (!Number.isInteger(opts.memoryPages) || opts.memoryPages < 1 || opts.memoryPages > 65_536) {
    throw new TenementError(ErrorCodes.CONFIG_INVALID, `memoryPages: expected 1 to 65536 pages, got ${opts.memoryPages}`);
  }
  let bytes: Uint8Array;
  try {
    bytes = await readFile(wasmPath);
  } catch (error) {
    throw new TenementError(ErrorCodes.CONFIG_INVALID, `module: cannot read ${wasmPath}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
  let kind: string;
  try {
    kind = binaryKind(bytes);
  } catch (error) {
    throw new TenementError(ErrorCodes.CONFIG_INVALID, `module: ${wasmPath}: ${(error as Error).message}`);
  }
  if (kind !== 'component') {
    throw new TenementError(ErrorCodes.CONFIG_INVALID, `module: ${wasmPath} is a core module, not a component`);
  }
  const hash = createHash('sha256').update(bytes).digest('hex');
  const key = `${hash}:${opts.memoryPages}:${opts.cacheDir}`;
  let artifact = prepared.get(key);
  if (!artifact) {
    artifact = load(wasmPath, hash, bytes, opts);
    artifact.catch(() => prepared.delete(key));
    prepared.set(key, artifact);
  }
  return artifact;
}

/** Test and benchmark helper: forget the in-memory artifacts (the on-disk ones stay). */
export function forgetPreparedComponents(): void {
  prepared.clear();
}
