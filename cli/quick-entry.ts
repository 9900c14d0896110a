/**
 * The installed `ten`'s CommonJS door (issue 17's start-up): the build bundles this file with the quick commands'
 * modules into dist/cli/quick.cjs (scripts/build-quick.mjs), which bin/ten.cjs requires. Node 20 starting any ES
 * module costs ~11 ms of CPU more than a CommonJS file (docs/install.md "Start-up"), so `ten --help`, `ten
 * --version` and a plain `ten ps` load no ES module of ours. Anything else returns false, and bin/ten.cjs imports
 * the ES module dist/cli/main.js as before (`ten serve` always goes there: cli/startup-tiering.ts runs first).
 *
 * The bundle holds its own copies of core/errors.ts and cli/client.ts. CliError is recognised across copies by
 * its brand (cli/client.ts); a TenementError of the other copy can come only from an ES module the quick path
 * imports (the config loader, for `ten ps` next to a config zod must read), so a failure this copy does not
 * recognise is asked of that copy too, through `foreignErrors` (bin/ten.cjs imports dist/core/errors.js).
 */
import { errorMessage, isTenementError } from '../core/errors.ts';
import { CliError } from './client.ts';
import { runQuick } from './quick.ts';

/** The ES module copy of core/errors.ts (loaded only on a failure this bundle's copy does not recognise). */
export type ForeignErrors = () => Promise<{ isTenementError(error: unknown): error is { code: string; message: string } }>;

/** The first words this door takes; runQuick may still leave them to commander (`ten ps --bogus`). */
const QUICK_FIRST = new Set(['--help', '-h', '--version', '-V', 'ps']);

/** True when `args` name a command this door may run (bin/ten.cjs asks before it requires the bundle). */
export function mayRunQuick(args: readonly string[]): boolean {
  return args.length > 0 && QUICK_FIRST.has(args[0]!);
}

function fail(message: string, code: string | null): never {
  process.stderr.write(`ten: ${code ? `${code}: ` : ''}${message}\n`);
  process.exit(1);
}

/** cli/main.ts's report: one line on stderr, the error's code when it has one, exit code 1. */
async function report(error: unknown, foreignErrors: ForeignErrors): Promise<never> {
  if (error instanceof CliError) fail(error.message, error.code);
  if (isTenementError(error)) fail(errorMessage(error), error.code);
  const other = await foreignErrors().catch(() => null);
  if (other?.isTenementError(error)) fail(error.message, error.code);
  fail(errorMessage(error), null);
}

/**
 * Runs `args` when they are a quick command (true), else false without side effects: the caller then runs
 * dist/cli/main.js, which reads them again.
 */
export async function runQuickEntry(args: readonly string[], foreignErrors: ForeignErrors): Promise<boolean> {
  if (!mayRunQuick(args)) return false;
  // `ten ps | head`: a reader that went away is a normal end, not a crash (as in cli/main.ts).
  const onError = (error: NodeJS.ErrnoException): void => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  };
  process.stdout.on('error', onError);
  let ran: boolean;
  try {
    ran = await runQuick(args);
  } catch (error) {
    return report(error, foreignErrors);
  }
  // main.js installs its own handler when it runs.
  if (!ran) process.stdout.off('error', onError);
  return ran;
}
