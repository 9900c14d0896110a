/**
 * V8's optimizing compilers held back while `ten serve` starts. Start-up loads some 400 modules, and the module
 * loader's own functions (URL and path handling, the CommonJS export lexer) get hot enough for TurboFan: about 30
 * optimized functions never used again, whose compilation pages in TurboFan's part of the node binary and leaves
 * its zone memory in malloc. Held back, an idle server holds about 9 MB less (bench/footprint.ts); released once the
 * server listens, so what runs hot from then on (the proxy) is optimized as usual (bench/proxy.ts).
 *
 * The flags V8 reads each time it decides to tier a function up, measured on Node 20 (V8 11) and 24 (V8 13):
 * - `--turbofan` off then on again: a function that got hot while it was off is optimized once hot again.
 * - Maglev (on by default from V8 12, Node 22) is held too: a function Maglev compiled while TurboFan was off stays
 *   at Maglev for good (measured on Node 24). On V8 11 it is off by default and left alone.
 * - Not `--max-opt`: on Node 20, lowered then raised at run time, nothing is ever optimized again.
 * - `--optimize-for-size` while starting: V8 collects start-up's garbage (module sources read, config objects
 *   parsed, the loader's scratch) more eagerly and keeps the old generation close to what is live, so the heap
 *   the server idles with is smaller: about 3 MB less RSS idle, 7 MB with 10,000 hibernated instances
 *   (bench/footprint.ts, Node 20), at no cost in start-up time: what it saves is the module loading's. An isolate
 *   made while it is on keeps a 1-4 MB young generation for good (Node 20 and 24), so it is released
 *   (releaseSizeHold) once the modules are loaded, before the config is read (tsx's loader thread for a .ts config)
 *   and the kernel starts (plugins' setup may make the wasm pool's worker threads). On
 *   V8 11 (Node 20) setting it also sets its implication `--max-semi-space-size=1` for good, which every isolate
 *   made afterwards would start with: the release puts it back to 0, V8's "computed from the heap size" default.
 *   V8 13 (Node 24) applies no implication at run time, and 0 there would not be its default: left alone
 *   (test/unit/startup-tiering.test.ts checks a worker's young generation after the release on each).
 * Left alone when the user passed any of these flags (node options or NODE_OPTIONS), and on architectures where
 * Maglev's presence is not known (x64 and arm64 have it).
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const OWN_FLAGS = /--(no-)?(turbofan|opt|maglev|max-opt|jitless|lite-mode|optimize-for-size|max-semi-space-size|stress-flush-code|flush-baseline-code|flush-bytecode)\b/;

function flags(): { hold: string[]; release: string[]; releaseSize: string[] } | null {
  if (process.arch !== 'x64' && process.arch !== 'arm64') return null;
  if ([...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((arg) => OWN_FLAGS.test(arg))) return null;
  const v8Major = Number(process.versions.v8.split('.')[0]);
  const size = { hold: ['--optimize-for-size'], release: v8Major < 12 ? ['--no-optimize-for-size', '--max-semi-space-size=0'] : ['--no-optimize-for-size'] };
  const compilers = v8Major >= 12 ? { hold: ['--no-turbofan', '--no-maglev'], release: ['--turbofan', '--maglev'] } : { hold: ['--no-turbofan'], release: ['--turbofan'] };
  return { hold: [...compilers.hold, ...size.hold], release: compilers.release, releaseSize: size.release };
}

let held: string[] | null = null;
let sizeHeld: string[] | null = null;

/** Interpreter and Sparkplug only, and `--optimize-for-size`, until releaseSizeHold() and releaseOptimizers(). */
export function holdOptimizers(): void {
  const chosen = flags();
  if (!chosen || held) return;
  for (const flag of chosen.hold) setFlagsFromString(flag);
  held = chosen.release;
  sizeHeld = chosen.releaseSize;
}

/** V8's memory defaults again, before anything may make a worker thread (a no-op when nothing is held). */
export function releaseSizeHold(): void {
  if (!sizeHeld) return;
  for (const flag of sizeHeld) setFlagsFromString(flag);
  sizeHeld = null;
}

/** V8's defaults again (a no-op when nothing was held). */
export function releaseOptimizers(): void {
  releaseSizeHold();
  if (!held) return;
  for (const flag of held) setFlagsFromString(flag);
  held = null;
}

/**
 * One full GC once the server has started, with `--optimize-for-size` on for it: V8 then compacts the old
 * generation and gives back the pages start-up's garbage held, the state its memory reducer reaches on its own
 * only 8-17 s after start-up (a "Mark-Compact (reduce)" in --trace-gc; lowering its start delay does not bring it
 * sooner). Without it an idle server holds 2-3 MB more for those seconds, and a server that gets a request before
 * then may never reach it (bench/footprint.ts measures at 3 s). A plain forced GC without the flag frees less: the
 * committed heap stays as large (measured, Node 20).
 *
 * `gc` is taken from a fresh context made while `--expose-gc` is on, and the flag is turned off again at once: the
 * server's own context (the config, plugins, tenants' in-process code) never sees a `gc`, and contexts and workers
 * made later get none. Left alone, like the holds, when the user passed V8 flags of these kinds, or `--expose-gc`.
 * Returns the committed heap before and after, bytes (null when skipped).
 */
export function compactHeap(): { before: number; after: number } | null {
  const chosen = flags();
  if (!chosen || held || sizeHeld) return null;
  if ([...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((arg) => /--(no-)?expose[-_]gc\b/.test(arg))) return null;
  setFlagsFromString('--expose-gc');
  let gc: () => void;
  try {
    gc = runInNewContext('gc') as () => void;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
  const before = getHeapStatistics().total_heap_size;
  // Start-up's code is flushed too: the bytecode (and baseline code) of functions not running now, most of them run
  // once at start-up (module bodies, the config schema's building, plugins' setup), is dropped and compiled again
  // from the source V8 keeps if a function runs again (the proxy's on its first requests), as V8 itself does for
  // functions idle over several GCs (--bytecode-old-age). Two GCs: the first ages, the second flushes (measured:
  // -1.1 to -1.5 MB idle; three GCs no better).
  setFlagsFromString('--optimize-for-size');
  setFlagsFromString('--stress-flush-code');
  setFlagsFromString('--flush-baseline-code');
  try {
    gc();
    gc();
  } finally {
    setFlagsFromString('--no-stress-flush-code');
    setFlagsFromString('--no-flush-baseline-code');
    for (const flag of chosen.releaseSize) setFlagsFromString(flag);
  }
  return { before, after: getHeapStatistics().total_heap_size };
}
