/**
 * Getting wasmtime's C API: the pinned release ships it as one shared library inside the official `wasmtime`
 * wheel on PyPI (no Node package or Debian package has it). `fetchWasmtime` downloads that wheel with
 * `pip download`, checks its sha256 against the pin and extracts the library into a cache folder;
 * `wasmtimeStatus` says whether the engine is usable here, and why not. docs/wasm.md.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/** The one wasmtime release the bindings are written against (struct layouts change between releases). */
export const WASMTIME_VERSION = '49.0.0';
const WHEEL = `wasmtime-${WASMTIME_VERSION}-py3-none-manylinux1_x86_64.whl`;
/** sha256 of the wheel above, as published on PyPI. */
export const WHEEL_SHA256 = '94f0288f9e1c33924995a72bb769f4c4e2885002391589dd6992cdaa35d1990a';
const MEMBER = 'wasmtime/linux-x86_64/_libwasmtime.so';
const LIBRARY = 'libwasmtime.so';

/** Where the library lives: `$TENEMENT_WASMTIME_DIR`, else `~/.cache/tenement/wasmtime-49.0.0`. */
export function wasmtimeDir(): string {
  const chosen = process.env.TENEMENT_WASMTIME_DIR;
  if (chosen) return path.resolve(chosen);
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'tenement', `wasmtime-${WASMTIME_VERSION}`);
}

export const wasmtimeLibraryPath = (): string => path.join(wasmtimeDir(), LIBRARY);

export type WasmtimeStatus = { usable: true; version: string; library: string } | { usable: false; version: string; library: string; reason: string };

/** Whether the engine can run here: x86-64 Linux (the wheel's platform) and the library fetched. */
export function wasmtimeStatus(): WasmtimeStatus {
  const library = wasmtimeLibraryPath();
  const base = { version: WASMTIME_VERSION, library };
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return { usable: false, ...base, reason: `wasmtime ${WASMTIME_VERSION} is fetched for linux x64 only (this is ${process.platform} ${process.arch})` };
  }
  if (!existsSync(library)) {
    return { usable: false, ...base, reason: `the wasmtime library is not at ${library}: run \`ten doctor --fix wasmtime\` or \`npm run fetch:wasmtime\`` };
  }
  return { usable: true, ...base };
}

const run = promisify(execFile);

/**
 * Downloads the pinned wheel (pip, from whatever index pip is configured with), checks it, and extracts the
 * library. Idempotent: a library already there is kept. Returns the library's path; throws with what failed.
 */
export async function fetchWasmtime(log: (line: string) => void = () => undefined): Promise<string> {
  const library = wasmtimeLibraryPath();
  if (existsSync(library)) {
    log(`wasmtime ${WASMTIME_VERSION} already at ${library}`);
    return library;
  }
  const dir = wasmtimeDir();
  mkdirSync(dir, { recursive: true });
  const scratch = mkdtempSync(path.join(dir, '.fetch-'));
  try {
    log(`pip download --no-deps wasmtime==${WASMTIME_VERSION}`);
    try {
      await run('python3', ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--platform', 'manylinux1_x86_64', '--dest', scratch, `wasmtime==${WASMTIME_VERSION}`], { timeout: 300_000, maxBuffer: 16 * 1024 * 1024 });
    } catch (error) {
      const detail = (error as { stderr?: string }).stderr?.trim().split('\n').slice(-3).join(' ') || (error as Error).message;
      throw new Error(`pip download failed (python3-pip is needed): ${detail}`);
    }
    const wheel = path.join(scratch, WHEEL);
    if (!existsSync(wheel)) throw new Error(`pip downloaded ${readdirSync(scratch).join(', ') || 'nothing'}, not ${WHEEL}`);
    const digest = createHash('sha256').update(readFileSync(wheel)).digest('hex');
    if (digest !== WHEEL_SHA256) throw new Error(`${WHEEL} has sha256 ${digest}, expected ${WHEEL_SHA256}: refusing it`);
    const extracted = path.join(scratch, LIBRARY);
    // A wheel is a zip; python3's zipfile is there wherever pip is.
    const script = 'import sys,zipfile,shutil\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst: shutil.copyfileobj(src, dst)';
    await run('python3', ['-c', script, wheel, MEMBER, extracted], { timeout: 120_000 });
    if (statSync(extracted).size < 1_000_000) throw new Error(`${MEMBER} in the wheel is too small to be the library`);
    // Renamed into place: a concurrent reader never sees half a library.
    renameSync(extracted, library);
    log(`wasmtime ${WASMTIME_VERSION} extracted to ${library}`);
    return library;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
