import { parse } from 'shell-quote';
import { ErrorCodes, TenementError } from './errors.ts';

/**
 * Splits a command line the way a POSIX shell would for words and quotes ("uv run 'my app.py'"), without
 * running a shell. Operators (|, &&, >, ...) and globs are refused: they would silently not do what they say.
 */
export function splitCommand(command: string): [string, string[]] {
  const words: string[] = [];
  for (const token of parse(command, (name) => `$${name}`)) {
    if (typeof token === 'string') {
      words.push(token);
      continue;
    }
    const what = 'op' in token ? token.op : 'comment' in token ? '#' : 'pattern';
    throw new TenementError(
      ErrorCodes.CONFIG_INVALID,
      `command "${command}" uses the shell feature '${what}', which is not run through a shell: ` +
        `use command: 'sh' with args: ['-c', '...'] if you need one`,
    );
  }
  const [program, ...args] = words;
  if (!program) throw new TenementError(ErrorCodes.CONFIG_INVALID, 'command is empty');
  return [program, args];
}

/** Commands split before; cleared when full (a config has a handful, placeholders make one per instance). */
const splits = new Map<string, readonly [string, readonly string[]]>();
const MAX_SPLITS = 4096;

/**
 * `splitCommand` remembered: every start and wake splits its command (placeholders filled in) again, and the
 * parse would be on the wake's path. The words are a fresh copy each time (a beforeSpawn tap may rewrite them);
 * a command that fails to split is not kept.
 */
export function splitCommandMemo(command: string): [string, string[]] {
  let split = splits.get(command);
  if (!split) {
    split = splitCommand(command);
    if (splits.size >= MAX_SPLITS) splits.clear();
    splits.set(command, split);
  }
  return [split[0], [...split[1]]];
}
