/**
 * Runs one WASI preview 1 command (a CGI request) inside a pool worker, on node:wasi (uvwasi): the only
 * preview 1 implementation here that can preopen a host directory (@wasmer/wasi has an in-memory fs only).
 * The guest sees its args, the env it is given, its tenant's data dir as its one preopen, and stdio served
 * from memory: stdin from the request body, stdout captured, stderr turned into log lines. Nothing else of the
 * host: no host env, no other files, no sockets (preview 1 only has preopened ones, and none are given).
 */
import { createRequire } from 'node:module';
import { TextDecoder } from 'node:util';
import { classifyGuestError, instantiateModule } from './engine.ts';
import { WASM_PAGE_BYTES } from './cap-memory.ts';
import { MAX_GUEST_FILES } from './files-adapter.ts';
import { MEMORY_IMPORT_MODULE, MEMORY_IMPORT_NAME, memoryShape } from './memory-import.ts';
import { lendMemory, returnMemory } from './memory-pool.ts';
import { MAX_OUTPUT_BYTES, type WasmFailureKind, type WasmLogLine } from './types.ts';

// node:wasi warns once per thread, when it loads, that it is experimental: on every pool worker's stderr. It is
// loaded here, behind a filter for that one warning, rather than by a static import (evaluated before any code).
// Synchronously: a top-level await in a worker's module graph stops tsx from loading it.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const text = typeof warning === 'string' ? warning : warning.message;
  if (/WASI is an experimental feature/.test(text)) return;
  (emitWarning as (...args: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;
const { WASI } = createRequire(import.meta.url)('node:wasi') as typeof import('node:wasi');

const ERRNO_SUCCESS = 0;
const ERRNO_BADF = 8;
const ERRNO_FBIG = 22;
const ERRNO_MFILE = 33;
const ERRNO_NOTSUP = 58;
/** A stderr line longer than this is cut, so one runaway write cannot flood the logs. */
const MAX_LOG_LINE = 16_384;
/**
 * Files one request may hold open at once (files-adapter.ts, the same bound on wasmtime). Each is a descriptor of
 * the whole Tenement process (the fd table is shared by every thread): without a bound one guest could open the
 * same file until every tenant got EMFILE.
 */
export { MAX_GUEST_FILES };

export interface WasiRunInput {
  args: string[];
  env: Record<string, string>;
  stdin: Uint8Array;
  /** Host directory mounted at `preopenAs`; null: the guest has no file system at all. */
  dataDir: string | null;
  preopenAs: string;
  /** The memory cap written into the module, to tell an out-of-memory trap from others. */
  capPages: number;
}

export type WasiRunResult =
  | { ok: true; exitCode: number; stdout: Uint8Array; logs: WasmLogLine[] }
  | { ok: false; kind: WasmFailureKind; message: string; logs: WasmLogLine[] };

type Preview1 = Record<string, (...args: never[]) => number>;

/** node:wasi's preview 1 function names, read once per worker from a WASI with no preopens (it opens nothing). */
let wasiNames: ReadonlySet<string> | null = null;
/** Per module, the preview 1 functions it imports that node:wasi has: only those get a closure per request. */
const importedNames = new WeakMap<WebAssembly.Module, string[]>();

function importNamesOf(module: WebAssembly.Module, stdio: object): string[] {
  let names = importedNames.get(module);
  if (names) return names;
  wasiNames ??= new Set(Object.keys(new WASI({ version: 'preview1', ...stdio }).wasiImport));
  const known = wasiNames;
  // A name node:wasi lacks gets no closure, so linking fails on it as it would with node:wasi's own imports.
  names = WebAssembly.Module.imports(module)
    .filter((entry) => entry.module === 'wasi_snapshot_preview1' && entry.kind === 'function' && known.has(entry.name))
    .map((entry) => entry.name);
  importedNames.set(module, names);
  return names;
}

export class LineSplitter {
  private partial = '';
  /** Made on the first write: most requests write nothing to stderr. */
  private decoder: TextDecoder | null = null;
  constructor(
    private readonly stream: 'stdout' | 'stderr',
    private readonly out: WasmLogLine[],
  ) {}

  push(chunk: Uint8Array): void {
    this.decoder ??= new TextDecoder();
    const text = this.partial + this.decoder.decode(chunk, { stream: true });
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    if (this.partial.length > MAX_LOG_LINE) {
      lines.push(this.partial);
      this.partial = '';
    }
    for (const line of lines) this.out.push({ stream: this.stream, line: line.slice(0, MAX_LOG_LINE) });
  }

  end(): void {
    if (this.partial) this.out.push({ stream: this.stream, line: this.partial.slice(0, MAX_LOG_LINE) });
    this.partial = '';
  }
}

/**
 * `devNull`: the host descriptor of /dev/null that serves the guest's fds 0-2, so a call we do not intercept
 * (fstat, seek) touches nothing of the host's own stdio. The pool opens it once for all its workers (a worker
 * that is terminated at a deadline could not close one of its own).
 */
export function runWasiCommand(module: WebAssembly.Module, input: WasiRunInput, devNull: number): WasiRunResult {
  return prepareWasiCommand(module, devNull).run(input);
}

/** A fresh instance with its imports, made before its request is known (wasi-prepared.ts); runs one request. */
export interface PreparedWasi {
  run(input: WasiRunInput): WasiRunResult;
}

/**
 * Instantiates the module with its imports, which read the request (`input`) only when the guest calls them:
 * the instance can be made ahead of its request, as long as instantiating runs no guest code (no start
 * function). The request's own WASI (argv, env, its DATA_DIR) is made when it runs.
 */
export function prepareWasiCommand(module: WebAssembly.Module, devNull: number): PreparedWasi {
  let input: WasiRunInput = NO_INPUT;
  const logs: WasmLogLine[] = [];
  const stderr = new LineSplitter('stderr', logs);
  const stdoutChunks: Uint8Array[] = [];
  let stdoutBytes = 0;
  let outputTooLarge = false;
  let stdinOffset = 0;
  let memory: WebAssembly.Memory | null = null;
  const stdio = { returnOnExit: true, stdin: devNull, stdout: devNull, stderr: devNull } as const;

  // The request's node:wasi is made only once the instance exists: it opens the preopen (a host descriptor)
  // when constructed, and uvwasi never closes its descriptors, not even when the WASI object is collected;
  // only an fd_close does. So every descriptor it opens is closed in `finally` below, whatever the guest did.
  let wasi: InstanceType<typeof WASI> | null = null;
  let native: Preview1 = {};
  /** Highest guest fd that may be open: the preopen is fd 3, and uvwasi gives each new file the lowest free one. */
  let highestFd = 2;
  let openFiles = 0;
  // Every import is a JS closure: linking node:wasi's native functions directly costs V8 ~2-6 ms per instance
  // (measured: 51 KB module, 2-6 ms direct vs 0.3 ms wrapped, new WASI included). Rest args keep each call's
  // exact argument count, which uvwasi checks.
  const preview1: Record<string, (...args: number[]) => number> = {};
  for (const name of importNamesOf(module, stdio)) preview1[name] = (...args: number[]) => (native[name] as (...a: number[]) => number)(...args);
  const call = (name: string, ...args: number[]): number => (native[name] as (...a: number[]) => number)(...args);
  const view = () => new DataView(memory!.buffer);

  /** Copies the guest's iovecs out (stdout/stderr writes). */
  preview1.fd_write = (fd: number, iovs: number, iovsLen: number, nwritten: number): number => {
    if (fd !== 1 && fd !== 2) return call('fd_write', fd, iovs, iovsLen, nwritten);
    const data = view();
    let total = 0;
    for (let i = 0; i < iovsLen; i++) {
      const ptr = data.getUint32(iovs + i * 8, true);
      const len = data.getUint32(iovs + i * 8 + 4, true);
      if (len === 0) continue;
      const chunk = new Uint8Array(memory!.buffer, ptr, len);
      if (fd === 1) {
        // The response would be cut: the request fails as a whole rather than serve part of it as a 200.
        if (stdoutBytes + len > MAX_OUTPUT_BYTES) {
          outputTooLarge = true;
          return ERRNO_FBIG;
        }
        stdoutChunks.push(chunk.slice());
        stdoutBytes += len;
      } else {
        stderr.push(chunk);
      }
      total += len;
    }
    data.setUint32(nwritten, total, true);
    return ERRNO_SUCCESS;
  };
  /** Serves stdin from the request body. */
  preview1.fd_read = (fd: number, iovs: number, iovsLen: number, nread: number): number => {
    if (fd !== 0) return call('fd_read', fd, iovs, iovsLen, nread);
    const data = view();
    let total = 0;
    for (let i = 0; i < iovsLen && stdinOffset < input.stdin.length; i++) {
      const ptr = data.getUint32(iovs + i * 8, true);
      const len = data.getUint32(iovs + i * 8 + 4, true);
      const n = Math.min(len, input.stdin.length - stdinOffset);
      new Uint8Array(memory!.buffer, ptr, n).set(input.stdin.subarray(stdinOffset, stdinOffset + n));
      stdinOffset += n;
      total += n;
    }
    data.setUint32(nread, total, true);
    return ERRNO_SUCCESS;
  };
  /** Counts the guest's open files (bounded) and remembers the highest fd, for the closing sweep. */
  preview1.path_open = (...args: number[]): number => {
    if (openFiles >= MAX_GUEST_FILES) return ERRNO_MFILE;
    const result = call('path_open', ...args);
    if (result === ERRNO_SUCCESS) {
      openFiles++;
      highestFd = Math.max(highestFd, view().getUint32(args[8]!, true));
    }
    return result;
  };
  // Closing or renumbering over 0-2 would close the shared /dev/null descriptor in the host process.
  preview1.fd_close = (fd: number): number => {
    if (fd <= 2) return ERRNO_SUCCESS;
    const result = call('fd_close', fd);
    if (result === ERRNO_SUCCESS && fd > 3) openFiles--;
    return result;
  };
  // Nor over 3, the preopened DATA_DIR: a file renumbered there would be uncounted (129 open), as on wasmtime.
  preview1.fd_renumber = (from: number, to: number): number => {
    if (from <= 3 || to <= 3) return ERRNO_BADF;
    const result = call('fd_renumber', from, to);
    if (result === ERRNO_SUCCESS && from !== to) openFiles--;
    return result;
  };
  preview1.fd_pwrite = (fd: number, ...rest: number[]): number => (fd <= 2 ? ERRNO_NOTSUP : call('fd_pwrite', fd, ...rest));

  // A module compiled by compileCommand imports its memory: lent from the thread's pool, given back (zeroed)
  // once its one request has run or the instance could not be made.
  const shape = memoryShape(module);
  let lent = shape ? lendMemory(shape) : null;
  // Once only: a memory in the pool twice could be lent to two instances at once.
  const giveBack = (): void => {
    if (lent) returnMemory(shape!, lent);
    lent = null;
  };
  let instance: WebAssembly.Instance;
  try {
    instance = instantiateModule(module, lent ? { wasi_snapshot_preview1: preview1, [MEMORY_IMPORT_MODULE]: { [MEMORY_IMPORT_NAME]: lent } } : { wasi_snapshot_preview1: preview1 });
  } catch (error) {
    giveBack();
    const failure = classifyGuestError(error);
    return { run: () => ({ ok: false, ...failure, logs }) };
  }
  const exported = instance.exports.memory;
  if (!(exported instanceof WebAssembly.Memory) || typeof instance.exports._start !== 'function') {
    giveBack();
    return { run: () => ({ ok: false, kind: 'error', message: 'not a WASI command: it must export memory and _start (build with a main())', logs }) };
  }
  memory = exported;
  return {
    run: (given) => {
      input = given;
      try {
        wasi = new WASI({ version: 'preview1', args: input.args, env: input.env, preopens: input.dataDir === null ? {} : { [input.preopenAs]: input.dataDir }, ...stdio });
        native = wasi.wasiImport as Preview1;
        if (input.dataDir !== null) highestFd = 3;
        const exitCode = wasi.start(instance);
        stderr.end();
        if (outputTooLarge) {
          return { ok: false, kind: 'output-too-large', message: `the guest wrote more than ${MAX_OUTPUT_BYTES} bytes to stdout`, logs };
        }
        return { ok: true, exitCode, stdout: concat(stdoutChunks, stdoutBytes), logs };
      } catch (error) {
        stderr.end();
        const capBytes = input.capPages * WASM_PAGE_BYTES;
        return { ok: false, ...classifyGuestError(error, { usedBytes: memory.buffer.byteLength, capBytes }), logs };
      } finally {
        if (wasi) closeAll(highestFd, call);
        // Nothing of the request is left in the memory once it is back: stdout was copied out as it was written.
        giveBack();
      }
    },
  };
}

/** What a prepared instance's imports see before its request runs (nothing reads it: no guest code runs). */
const NO_INPUT: WasiRunInput = { args: [], env: {}, stdin: new Uint8Array(0), dataDir: null, preopenAs: '/data', capPages: 0 };

/** Closes fds 3..highest (the preopen and whatever the guest left open); the already closed answer EBADF. */
function closeAll(highest: number, call: (name: string, ...args: number[]) => number): void {
  try {
    for (let fd = 3; fd <= highest; fd++) call('fd_close', fd);
  } catch {
    // node:wasi refuses calls until start() has set the memory; start() throws before that only for an
    // instance without exported memory, which is refused above before the WASI is made.
  }
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
