/**
 * Inside a pool worker: turn a prepared artifact into a live instance. The transpiled glue is imported once per
 * worker; its core modules come precompiled in the artifact (never compiled here). The guest gets exactly the
 * host imports below: log lines, time and randomness, its tenant's files; nothing of WASI, env or network.
 */
import { randomBytes } from 'node:crypto';
import { enableWasmFeatures } from '../engine.ts';
import { guestMetricsImports } from './guest-metrics.ts';
import { leanHandle, leanImportMaker, type LeanHandleCore } from './lean-calls.ts';
import { LEAN_HANDLE_EXPORT, LEAN_IMPORTS_KEY } from './lean-glue.ts';
import { tenantDataImports } from './tenant-data.ts';
import type { ComponentArtifact, ComponentInstance, GuestHost, GuestStream } from './types.ts';

type ImportFunctions = Record<string, (...args: never[]) => unknown>;
type InstantiateFn = (
  getCoreModule: (path: string) => WebAssembly.Module,
  imports: Record<string, ImportFunctions>,
) => Promise<Record<string, unknown>>;

/** A guest line longer than this is cut: one log line must not hold megabytes. */
const MAX_LOG_LINE = 16 * 1024;
const MAX_RANDOM_BYTES = 65_536;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const glue = new Map<string, Promise<InstantiateFn>>();
/** `TENEMENT_WASM_LEAN_GLUE=0`: every call through jco's own lowering (for A/B measurements). */
const LEAN = process.env.TENEMENT_WASM_LEAN_GLUE !== '0';

function loadGlue(jsPath: string): Promise<InstantiateFn> {
  let loading = glue.get(jsPath);
  if (!loading) {
    loading = import(jsPath).then((mod: { instantiate?: unknown }) => {
      if (typeof mod.instantiate !== 'function') {
        throw new Error(`${jsPath} is not jco glue in instantiation mode (no instantiate export)`);
      }
      return mod.instantiate as InstantiateFn;
    });
    loading.catch(() => glue.delete(jsPath));
    glue.set(jsPath, loading);
  }
  return loading;
}

/** The interface name without its version: jco keys imports as the component names them, with or without one. */
const unversioned = (name: string): string => name.replace(/@[^/]*$/, '');

function builtinImports(host: GuestHost): Record<string, ImportFunctions> {
  const log = (stream: GuestStream, line: string) => {
    host.log(stream === 'stderr' ? 'stderr' : 'stdout', line.length > MAX_LOG_LINE ? `${line.slice(0, MAX_LOG_LINE)}…` : line);
  };
  return {
    'tenement:http/log': { write: (to: string, line: string) => log(to as GuestStream, line) },
    'tenement:http/runtime': {
      now: () => Date.now(),
      randomBytes: (len: number) => new Uint8Array(randomBytes(Math.min(Math.max(0, len >>> 0), MAX_RANDOM_BYTES))),
      utf8Encode: (text: string) => encoder.encode(text),
      utf8Decode: (bytes: Uint8Array) => decoder.decode(bytes),
    },
    'tenement:http/tenant-data': tenantDataImports(host.dataDir) as unknown as ImportFunctions,
    // Components built before this import existed do not ask for it, and are instantiated as before.
    'tenement:http/metrics': guestMetricsImports(() => host.metrics?.() ?? []) as unknown as ImportFunctions,
    // Types-only interface: nothing to provide, but jco still asks for the key.
    'tenement:http/types': {},
  };
}

/** `lean`: calls past jco's task machinery where the glue allows (lean-glue.ts); false: jco's own path (tests compare the two). */
export async function instantiateComponent(artifact: ComponentArtifact, host: GuestHost, options: { lean?: boolean } = {}): Promise<ComponentInstance> {
  const leanWanted = options.lean ?? LEAN;
  enableWasmFeatures();
  const instantiate = await loadGlue(artifact.jsPath);
  const provided = new Map<string, ImportFunctions>();
  for (const [name, fns] of Object.entries(builtinImports(host))) provided.set(name, fns);
  for (const [name, fns] of Object.entries(host.imports ?? {})) provided.set(unversioned(name), fns);

  const imports: Record<string, ImportFunctions> = {};
  for (const name of artifact.imports) {
    const fns = provided.get(unversioned(name));
    if (!fns) {
      throw new Error(`the component imports ${name}, which Tenement does not provide (only ${[...provided.keys()].join(', ')})`);
    }
    imports[name] = fns;
  }
  if (leanWanted) (imports as Record<string, unknown>)[LEAN_IMPORTS_KEY] = { make: leanImportMaker(provided) };
  const root = await instantiate((path) => {
    const module = artifact.modules[path];
    if (!module) throw new Error(`core module ${path} missing from artifact ${artifact.hash.slice(0, 12)}`);
    return module;
  }, imports);

  const lean = leanWanted && root[LEAN_HANDLE_EXPORT] ? leanHandle(root[LEAN_HANDLE_EXPORT] as LeanHandleCore) : null;
  let poisoned = false;
  return {
    get poisoned() {
      return poisoned;
    },
    lean: lean !== null,
    call(exportName, args) {
      if (poisoned) throw new Error('component instance is poisoned by an earlier trap: instantiate a fresh one');
      const fn = exportName === 'handle' && lean ? lean : root[exportName];
      if (typeof fn !== 'function') throw new Error(`the component has no export ${JSON.stringify(exportName)}`);
      try {
        return (fn as (...a: unknown[]) => unknown)(...args);
      } catch (error) {
        // jco refuses to re-enter a trapped component; a guest-level error may have left its state half-written.
        poisoned = true;
        throw error;
      }
    },
  };
}
