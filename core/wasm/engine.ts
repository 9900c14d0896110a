/**
 * The engine seam. `Engine` is what the tier and the pool ask of an engine (can it run here, compile a module
 * into what the workers run, make the pool's task for one call with its deadline enforcement); `engineNamed`
 * finds one by the name a config gives. V8 (`v8Engine`, below, with what depends on V8: compiling with a
 * memory cap, instantiating, telling a trap from an out-of-memory from a host error by what V8 throws) and
 * wasmtime (`wasmtimeModules`, wasmtime/host.ts) implement it.
 */
import v8 from 'node:v8';
import { WASM_PAGE_BYTES, capMemory, hasStartFunction } from './cap-memory.ts';
import { importOwnMemory } from './memory-import.ts';
import type { CompiledModule } from './pool.ts';
import type { WasiTask } from './protocol.ts';
import type { WasmFailureKind } from './types.ts';
import { wasmtimeModules } from './wasmtime/host.ts';

export type BinaryKind = 'module' | 'component';

/**
 * The engines a wasm service can run on: 'v8' (Node's own, this module) or 'wasmtime' (wasmtime/: WASI preview 1
 * modules through its C API, in the same pool workers). Chosen per service (`wasm.engine`) or for the pool.
 */
export type EngineName = 'v8' | 'wasmtime';
export const ENGINES: readonly EngineName[] = ['v8', 'wasmtime'];

export type EngineAvailability = { usable: true } | { usable: false; reason: string };

/** A WASI call as the pool hands it to an engine: everything but the engine's own fields. */
export type WasiTaskBase = Omit<WasiTask, 'module' | 'wasmtime'>;

export interface CompileOptions {
  /** Fuel metering (wasmtime): the code counts what it runs, and a call traps once its budget is spent. */
  fuel?: boolean;
}

/** One call, as an engine prepared it for the pool. */
export interface EngineCall {
  task: WasiTask;
  /** The task again with the compiled code attached, for a worker that lacks it. */
  withCode: () => WasiTask;
  /** How long after the deadline the worker is terminated: 0 when the engine cannot interrupt a guest itself. */
  backstopMs: number;
  /** Called once the call is over, however it ended. */
  done: () => void;
}

export interface Engine {
  readonly name: EngineName;
  /** Whether it can run here, and why not (a coded reason: the tier logs it and falls back to V8). */
  availability(): EngineAvailability;
  /** Compiles a core module into what the pool's workers run, its memories capped at `capPages`. Coded errors. */
  compileModule(bytes: Uint8Array, hash: string, capPages: number, cacheDir: string, options?: CompileOptions): CompiledModule;
  /** Prepares one WASI call of code it compiled; a message when it cannot run it (the call fails with it). */
  wasiCall(compiled: CompiledModule, task: WasiTaskBase, deadlineMs: number): EngineCall | { error: string };
  /** A pool worker that ran this engine's calls was terminated: release what only it could have. */
  workerGone(threadId: number): void;
}

/** Default per-function memory cap: 128 MiB. */
export const DEFAULT_MEMORY_PAGES = 2048;
/** Process-wide cap on any wasm memory, a backstop under the per-module caps: 1 GiB, raised for bigger caps. */
const BACKSTOP_MIN_PAGES = 16_384;

let enabled = false;
let backstopPages = 0;

/** A module whose one global is initialised by `i32.const 1; i32.const 2; i32.add`: an extended constant expression. */
const EXTENDED_CONST_PROBE = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 6, 9, 1, 0x7f, 0, 0x41, 1, 0x41, 2, 0x6a, 0x0b]);

/**
 * V8 flags the runtime needs, set before the first compile (they are process-wide; pool workers inherit them).
 * QuickJS components use extended constant expressions, behind a flag in Node 20 (and refused in NODE_OPTIONS);
 * newer Nodes (24, 26) have them on and no longer know the flag (setting it prints "unrecognized flag"), so it is
 * set only where the probe fails.
 */
export function enableWasmFeatures(): void {
  if (enabled) return;
  enabled = true;
  if (!WebAssembly.validate(EXTENDED_CONST_PROBE)) v8.setFlagsFromString('--experimental-wasm-extended-const');
  raiseMemoryBackstop(BACKSTOP_MIN_PAGES);
}

/** Makes sure no cap below `pages` is enforced process-wide (`--wasm-max-mem-pages`, read at each grow). */
export function raiseMemoryBackstop(pages: number): void {
  if (pages <= backstopPages) return;
  backstopPages = pages;
  v8.setFlagsFromString(`--wasm-max-mem-pages=${pages}`);
}

/** Pages for a byte limit (service `limits.memory`), at least one. */
export function memoryPagesFor(bytes: number | undefined): number {
  if (bytes === undefined) return DEFAULT_MEMORY_PAGES;
  return Math.max(1, Math.floor(bytes / WASM_PAGE_BYTES));
}

/**
 * A core module or a component, by the preamble: magic `\0asm`, then a 16-bit version and a 16-bit layer
 * (layer 0: core module, version 1; layer 1: component).
 */
export function binaryKind(bytes: Uint8Array): BinaryKind {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new Error('not a WebAssembly binary (it does not start with \\0asm)');
  }
  const layer = bytes[6]! | (bytes[7]! << 8);
  if (layer === 1) return 'component';
  if (layer === 0) return 'module';
  throw new Error(`unknown WebAssembly binary layer ${layer}`);
}

/** Compiles a core module once, with its memories capped at `capPages`; the result is shared with workers. */
export function compileModule(bytes: Uint8Array, capPages: number): WebAssembly.Module {
  enableWasmFeatures();
  raiseMemoryBackstop(capPages);
  return new WebAssembly.Module(capMemory(bytes, capPages));
}

/**
 * Compiles a WASI command for V8: capped as compileModule does, and with its memory imported, so each request
 * runs in a memory lent from the thread's pool instead of a new one (memory-import.ts, memory-pool.ts).
 */
export function compileCommand(bytes: Uint8Array, capPages: number): WebAssembly.Module {
  enableWasmFeatures();
  raiseMemoryBackstop(capPages);
  return new WebAssembly.Module(importOwnMemory(capMemory(bytes, capPages)));
}

/** Writes the cap into a module's memories without compiling it (for on-disk artifacts). */
export { capMemory };

/** Node's own engine: a module compiled here is shared with the workers as a handle, which terminate at deadlines. */
export const v8Engine: Engine = {
  name: 'v8',
  availability: () => ({ usable: true }),
  compileModule: (bytes, hash, capPages) => ({ engine: 'v8', hash, module: compileCommand(bytes, capPages), capPages, ahead: !hasStartFunction(bytes) }),
  wasiCall(compiled, task) {
    if (!('module' in compiled)) return { error: `the module was compiled by ${compiled.engine}, not V8` };
    const ahead = { ...task, ahead: compiled.ahead === true };
    return { task: ahead, withCode: () => ({ ...ahead, module: compiled.module }), backstopMs: 0, done: () => undefined };
  },
  workerGone: () => undefined,
};

const engines = new Map<EngineName, Engine>([
  ['v8', v8Engine],
  ['wasmtime', wasmtimeModules],
]);

/** The engine a config names; V8 for a name it does not know (the config schema admits only ENGINES). */
export function engineNamed(name: EngineName | undefined): Engine {
  return (name !== undefined && engines.get(name)) || v8Engine;
}

export function instantiateModule(module: WebAssembly.Module, imports: WebAssembly.Imports): WebAssembly.Instance {
  return new WebAssembly.Instance(module, imports);
}

const OOM_MESSAGE = /out of memory|could not allocate memory|cannot allocate wasm memory|unable to grow instance memory|maximum memory size exceeded/i;

/**
 * What kind of failure an error from guest code is. `memoryBytes`/`capBytes` (when known) turn a trap of a
 * guest whose memory reached its cap into 'out-of-memory': allocators abort (`unreachable`) when grow fails.
 */
export function classifyGuestError(
  error: unknown,
  memory?: { usedBytes: number; capBytes: number },
): { kind: WasmFailureKind; message: string } {
  const message = error instanceof Error ? error.message : String(error);
  const name = error instanceof Error ? error.constructor.name : typeof error;
  if (OOM_MESSAGE.test(message)) return { kind: 'out-of-memory', message };
  const trapped =
    error instanceof WebAssembly.RuntimeError ||
    (error instanceof RangeError && /call stack/i.test(message)) ||
    /wasm trap|unreachable|cannot enter component instance/i.test(message);
  if (trapped) {
    // Within one MiB of the cap: the guest ran out of room, and its trap is how its allocator said so.
    if (memory && memory.usedBytes >= memory.capBytes - 16 * WASM_PAGE_BYTES) {
      return { kind: 'out-of-memory', message: `${message} (memory at its cap of ${memory.capBytes / 1_048_576} MiB)` };
    }
    return { kind: 'trap', message: name === 'RuntimeError' ? message : `${name}: ${message}` };
  }
  return { kind: 'error', message: name === 'Error' ? message : `${name}: ${message}` };
}
