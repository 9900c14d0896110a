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
 * Left alone when the user passed any of these flags (node options or NODE_OPTIONS), and on architectures where
 * Maglev's presence is not known (x64 and arm64 have it).
 */
import { setFlagsFromString } from 'node:v8';

const OWN_FLAGS = /--(no-)?(turbofan|opt|maglev|max-opt|jitless|lite-mode)\b/;

function flags(): { hold: string[]; release: string[] } | null {
  if (process.arch !== 'x64' && process.arch !== 'arm64') return null;
  if ([...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((arg) => OWN_FLAGS.test(arg))) return null;
  const maglev = Number(process.versions.v8.split('.')[0]) >= 12;
  return maglev ? { hold: ['--no-turbofan', '--no-maglev'], release: ['--turbofan', '--maglev'] } : { hold: ['--no-turbofan'], release: ['--turbofan'] };
}

let held: string[] | null = null;

/** Interpreter and Sparkplug only, until releaseOptimizers(). */
export function holdOptimizers(): void {
  const chosen = flags();
  if (!chosen || held) return;
  for (const flag of chosen.hold) setFlagsFromString(flag);
  held = chosen.release;
}

/** V8's defaults again (a no-op when nothing was held). */
export function releaseOptimizers(): void {
  if (!held) return;
  for (const flag of held) setFlagsFromString(flag);
  held = null;
}
