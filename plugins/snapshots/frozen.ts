/**
 * Running something while CRIU holds a process tree frozen: CRIU's `post-dump` action runs after the images are
 * written and before `--leave-running` thaws the tree, and CRIU waits for it. The action script only says "frozen"
 * (a marker file) and waits for "thawed" or "abort"; the step itself runs here, in Tenement (root), because the
 * script runs as CRIU does, which is the tenant's uid for a tenant's dump. An abort, or no answer within a minute,
 * fails the dump: CRIU then thaws the tree without a snapshot.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const WAIT_MS = 60_000;

export interface FrozenStep {
  /** The `--action-script` to give CRIU. */
  readonly script: string;
  /**
   * Waits for the freeze, runs the step, lets CRIU go on; throws when the step failed (the dump then fails).
   * False when CRIU ended before its post-dump action: its own error is the one to report.
   */
  run(dumped: Promise<unknown>): Promise<boolean>;
  /** Removes the script and markers from the image folder. */
  clean(): void;
}

export function frozenStep(dir: string, step: (dir: string) => Promise<void>): FrozenStep {
  const script = path.join(dir, 'frozen.sh');
  const frozen = path.join(dir, 'frozen');
  const thawed = path.join(dir, 'thawed');
  const abort = path.join(dir, 'abort');
  const ticks = Math.ceil(WAIT_MS / 10);
  writeFileSync(
    script,
    `#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] || exit 0\n: > '${frozen}' || exit 1\ni=0\n` +
      `while [ ! -e '${thawed}' ]; do\n  [ -e '${abort}' ] && exit 1\n  i=$((i+1)); [ $i -gt ${ticks} ] && exit 1\n  sleep 0.01\ndone\nexit 0\n`,
    { mode: 0o700 },
  );
  return {
    script,
    async run(dumped) {
      let ended = false;
      const settled = dumped.then(
        () => void (ended = true),
        () => void (ended = true),
      );
      const deadline = Date.now() + WAIT_MS;
      for (let pause = 2; !existsSync(frozen); pause = Math.min(20, pause * 2)) {
        if (ended) return false;
        if (Date.now() >= deadline) {
          writeFileSync(abort, '');
          await settled;
          throw new Error(`criu did not reach post-dump within ${WAIT_MS}ms`);
        }
        await new Promise((done) => setTimeout(done, pause));
      }
      try {
        await step(dir);
      } catch (error) {
        writeFileSync(abort, '');
        await settled;
        throw error;
      }
      writeFileSync(thawed, '');
      return true;
    },
    clean() {
      for (const file of [script, frozen, thawed, abort]) rmSync(file, { force: true });
    },
  };
}
