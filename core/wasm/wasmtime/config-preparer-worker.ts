/**
 * The config preparer's thread (config-preparer.ts): makes WASI configs with their stdout and stderr captures
 * attached into the empty slots (config-slots.ts), and frees the main thread's spent stores. Both are plain heap
 * objects and descriptors, not tied to a thread; doing them here takes most of the work after each answer off
 * the main thread, where the next request would otherwise wait for it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { FileCapture, loadLibc } from './captures.ts';
import { ERR_FD, ERR_THEIRS, EMPTY, FIELDS, OUT_FD, OUT_THEIRS, READY, SLOTS, WASI, eachFreed, slotsOf, type PreparerData, type PreparerMessage } from './config-slots.ts';
import { loadWasmtime, type Ptr } from './ffi.ts';

const data = workerData as PreparerData;
const w = loadWasmtime(data.library);
const libc = loadLibc();
const { states, queued, rows } = slotsOf(data.slots);

/** A capture of the config's stdout or stderr, attached; null when that cannot be done here (the main thread then makes its own). */
function capture(wasi: Ptr, which: 'stdout' | 'stderr'): FileCapture | null {
  const cap = which === 'stdout' ? data.stdoutCap : data.stderrCap;
  const file = FileCapture.create(libc, `${data.namePrefix}${which}-r`, cap);
  const setFile = which === 'stdout' ? w.wasi_config_set_stdout_file : w.wasi_config_set_stderr_file;
  if (file && file.attach((path) => setFile(wasi, path) as boolean)) return file;
  file?.close();
  return null;
}

function fill(): void {
  for (let slot = 0; slot < SLOTS; slot++) {
    if (Atomics.load(states, slot) !== EMPTY) continue;
    const wasi = w.wasi_config_new() as Ptr;
    const out = capture(wasi, 'stdout');
    const err = out && capture(wasi, 'stderr');
    if (!out || !err) {
      // Deleting the config closes wasmtime's descriptors of what was attached.
      w.wasi_config_delete(wasi);
      out?.close();
      return;
    }
    const row = slot * FIELDS;
    rows[row + WASI] = wasi;
    rows[row + OUT_FD] = BigInt(out.fd);
    rows[row + OUT_THEIRS] = BigInt(out.wasmtimeFd);
    rows[row + ERR_FD] = BigInt(err.fd);
    rows[row + ERR_THEIRS] = BigInt(err.wasmtimeFd);
    Atomics.store(states, slot, READY);
  }
}

function free(values: readonly bigint[]): void {
  eachFreed(values, (store, wasi, outFd, errFd) => {
    if (wasi !== null) w.wasi_config_delete(wasi);
    w.wasmtime_store_delete(store);
    for (const fd of [outFd, errFd]) if (fd >= 0) libc.close(fd);
    Atomics.sub(queued, 0, 1);
  });
}

parentPort?.on('message', (message: PreparerMessage) => {
  free(message.free);
  fill();
});
fill();
