/**
 * The start command, rewritten so the process joins its cgroups before it becomes the app (or the launcher,
 * like bwrap, that runs the app): a tiny `sh` writes
 * its own pid into each cgroup.procs file, then execs the real program in place (same pid, so the runtime's
 * handle, process group and exit status are the app's). Every process the app starts inherits the cgroups.
 *
 * Nothing is interpolated into the script: the number of files, the files, the program and its arguments are
 * positional parameters, so no path or argument can change what the shell runs.
 */
const SCRIPT =
  'n=$1; shift; ' +
  'while [ "$n" -gt 0 ]; do ' +
  'echo $$ > "$1" || { echo "tenement: cannot join cgroup $1" >&2; exit 125; }; ' +
  'shift; n=$((n - 1)); ' +
  'done; ' +
  'exec "$@"';

export const SHELL = '/bin/sh';

export function wrapCommand(procsFiles: readonly string[], command: string, args: readonly string[]): { command: string; args: string[] } {
  // $0 names the wrapper in `ps` and in the shell's own error messages.
  return { command: SHELL, args: ['-c', SCRIPT, 'tenement-cgroup', String(procsFiles.length), ...procsFiles, command, ...args] };
}
