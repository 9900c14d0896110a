/**
 * Stand-ins for the WASI preview 1 imports a guest run on the main thread must not reach (inline.ts): every call
 * that touches the file system (each goes through `path_open` or a `path_*` call on the preopened DATA_DIR
 * first), sleeps (`poll_oneoff`), syncs, or uses a socket. wasmtime runs those on its own threads and waits for
 * them, where no epoch can interrupt the wait, and they change what the tenant keeps. A stand-in records its name
 * and traps, so the guest stops before any of them took effect: nothing it did is visible outside its store
 * (stdout and stderr are only captured), and the pool can run the same request again from the start.
 *
 * What stays real on the main thread: args, env, clocks, random, stdin (bytes in memory), stdout and stderr
 * (sealed memfds), `fd_fdstat_get`, `fd_prestat_*` (libc's start-up), `fd_close`, `fd_seek`, `proc_exit`: none
 * waits on anything but memory. Since no call reaches a file, the preopen a guest sees there is an empty directory
 * of ours under the tenant's DATA_DIR name (inline.ts); `fd_filestat_get`, the one call that would tell the two
 * apart, is a stand-in too.
 */
import { VALKIND_I32, VALKIND_I64, type Ptr, type Wasmtime } from './ffi.ts';
import { koffi } from './koffi-lazy.ts';
import { errorText } from './host.ts';

const WASI = 'wasi_snapshot_preview1';
const I = VALKIND_I32;
const L = VALKIND_I64;

/** Name and parameter kinds (every one returns an errno, i32), as wasi_snapshot_preview1 declares them. */
export const STAND_IN_IMPORTS: ReadonlyArray<readonly [string, readonly number[]]> = [
  ['path_open', [I, I, I, I, I, L, L, I, I]],
  ['path_create_directory', [I, I, I]],
  ['path_filestat_get', [I, I, I, I, I]],
  ['path_filestat_set_times', [I, I, I, I, L, L, I]],
  ['path_link', [I, I, I, I, I, I, I]],
  ['path_readlink', [I, I, I, I, I, I]],
  ['path_remove_directory', [I, I, I]],
  ['path_rename', [I, I, I, I, I, I]],
  ['path_symlink', [I, I, I, I, I]],
  ['path_unlink_file', [I, I, I]],
  ['fd_readdir', [I, I, I, L, I]],
  ['fd_pread', [I, I, I, L, I]],
  ['fd_pwrite', [I, I, I, L, I]],
  ['fd_sync', [I]],
  ['fd_datasync', [I]],
  ['fd_allocate', [I, L, L]],
  ['fd_advise', [I, L, L, I]],
  ['fd_filestat_get', [I, I]],
  ['fd_filestat_set_size', [I, L]],
  ['fd_filestat_set_times', [I, L, L, I]],
  ['poll_oneoff', [I, I, I, I]],
  ['sock_accept', [I, I, I]],
  ['sock_recv', [I, I, I, I, I, I]],
  ['sock_send', [I, I, I, I, I]],
  ['sock_shutdown', [I, I]],
];

const MESSAGE = Buffer.from('tenement: this call runs in the pool, not on the main thread');
/** The stand-in the running guest called, if any (one guest runs on the main thread at a time). */
let called: string | null = null;
let callback: unknown = null;

/** Which stand-in the last guest called (then forgotten), or null when it called none. */
export function takeStandInCall(): string | null {
  const name = called;
  called = null;
  return name;
}

/** Defines every stand-in in `linker`, over the real WASI functions (the linker must allow shadowing). */
export function defineStandIns(w: Wasmtime, linker: Ptr): void {
  // Registered once per process and never unregistered: each linker's functions point at it.
  callback ??= koffi.register((env: Ptr) => {
    called = STAND_IN_IMPORTS[Number(env)]?.[0] ?? 'a stand-in';
    return w.wasmtime_trap_new(MESSAGE, MESSAGE.length) as Ptr;
  }, koffi.pointer(w.HostCallback));
  STAND_IN_IMPORTS.forEach(([name, params], index) => {
    const type = functype(w, params);
    const error = w.wasmtime_linker_define_func(linker, WASI, WASI.length, name, name.length, type, callback, BigInt(index), 0n) as Ptr;
    w.wasm_functype_delete(type);
    if (error) throw new Error(`wasmtime_linker_define_func ${name}: ${errorText(w, error)}`);
  });
}

/** A `(params) -> i32` function type. */
function functype(w: Wasmtime, params: readonly number[]): Ptr {
  const vec = (kinds: readonly number[]): Buffer => {
    const types = Buffer.alloc(8 * Math.max(1, kinds.length));
    kinds.forEach((kind, i) => types.writeBigUInt64LE(w.wasm_valtype_new(kind) as Ptr, 8 * i));
    const out = Buffer.alloc(16);
    w.wasm_valtype_vec_new(out, kinds.length, types); // takes the valtypes
    return out;
  };
  return w.wasm_functype_new(vec(params), vec([VALKIND_I32])) as Ptr; // takes both vectors
}
