/**
 * The `criu` wrapper script (criu.ts writes it): runs CRIU with its own loader and libraries, and gives it its
 * kernel probe cache.
 *
 * Every CRIU run first probes the kernel (kerndat: dozens of checks, 30-300 ms on a shared host) unless it can load
 * `criu.kdat`: root's at `/run/criu.kdat`, `--unprivileged` runs' at `$XDG_RUNTIME_DIR/criu.kdat` (CRIU 4.2
 * kerndat.c). The load only checks the file's size and two magics (one is the build's timestamp: another CRIU
 * build rejects it), but CRIU only SAVES the cache on a tmpfs, so that it dies with the boot. Where /run is not a
 * tmpfs (many containers) CRIU probed on every dump and every restore: both sides of a live move's pause.
 *
 * Once per boot, as root, the wrapper makes both caches itself: in a private mount namespace whose /run is a fresh
 * tmpfs (the host's /run is never hidden outside that throwaway namespace) it runs `criu check` as root and as an
 * unprivileged uid with the dump's capabilities, and copies the saved files out: root's to `/run/criu.kdat` (only
 * when /run is not a tmpfs; on a tmpfs CRIU keeps it itself), the unprivileged one to `<criu dir>/kdat/`, which it
 * names as `XDG_RUNTIME_DIR` (CRIU reads that variable for nothing else). The boot id it was made for is kept with
 * it: after a reboot (perhaps a new kernel) the wrapper makes them again before CRIU runs, and a run that cannot
 * (not root) gets no unprivileged cache instead of a stale one. If making them fails, it says so once per boot in
 * `kdat/failed` and CRIU probes as before.
 *
 * One more CRIU detail the caches depend on: a run that loaded a cache re-probes a few items and, when they differ
 * (the rseq area's address always does), saves again; off a tmpfs that save creates `criu.kdat.tmp` (O_EXCL),
 * finds no tmpfs and DELETES `criu.kdat`, leaving the `.tmp`. An empty `criu.kdat.tmp` kept next to each cache makes
 * that save a no-op (its O_EXCL open fails: CRIU treats it as a concurrent save), so the cache stays.
 */

/** Capabilities of an unprivileged dump (dump.ts DUMP_CAPS): the unprivileged cache is probed with the same. */
const UNPRIVILEGED_CAPS = '+checkpoint_restore,+sys_ptrace,+dac_override,+sys_admin,+net_admin';

/** Single-quoted for sh (paths here hold no quote; a quote would still be kept literal). */
const q = (text: string): string => `'${text.replaceAll("'", `'\\''`)}'`;

/** The wrapper's text for a CRIU extracted under `dir` (its loader, libraries and binary). */
export function wrapperScript(dir: string, version: string, loader: string, libs: string, binary: string): string {
  const exec = `${q(loader)} --library-path ${q(libs)} ${q(binary)}`;
  return `#!/bin/sh
# criu ${version} from Debian sid, with its own loader and libraries, and its kernel probe cache made once per
# boot (plugins/snapshots/criu-wrapper.ts says why and how).
k=${q(`${dir}/kdat`)}
boot=; made=; failed=
read -r boot </proc/sys/kernel/random/boot_id
[ -r "$k/boot" ] && read -r made <"$k/boot"
if [ -z "$boot" ] || [ "$boot" != "$made" ] || [ ! -s "$k/criu.kdat" ] || { [ -e "$k/run-not-tmpfs" ] && [ ! -s /run/criu.kdat ]; }; then
  [ -r "$k/failed" ] && read -r failed <"$k/failed"
  if [ -n "$boot" ] && [ "$boot" != "$failed" ] && [ "$(id -u)" = 0 ]; then
    (
      umask 077
      set -e
      mkdir -p "$k"
      ext=; [ "$(stat -f -c %T /run)" = tmpfs ] || ext=1
      t=$(mktemp -d "$k/.new.XXXXXX")
      trap 'rm -rf "$t"' EXIT
      unshare -m --propagation private sh -c '
        set -e
        t=$1; shift
        mount -t tmpfs -o size=4m,mode=0755 tenement-criu-kdat /run
        "$@" check >/dev/null 2>&1 || true
        cp /run/criu.kdat "$t/root.kdat"
        mkdir -m 0700 /run/u
        chown 65534:65534 /run/u
        XDG_RUNTIME_DIR=/run/u setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=${UNPRIVILEGED_CAPS} --ambient-caps=${UNPRIVILEGED_CAPS} "$@" check --unprivileged >/dev/null 2>&1 || true
        cp /run/u/criu.kdat "$t/criu.kdat"
      ' sh "$t" ${exec}
      # Each cache replaced by a rename: a CRIU starting meanwhile loads the old one or the new one, never none.
      if [ -n "$ext" ]; then
        cp "$t/root.kdat" "/run/criu.kdat.tenement-$$"
        mv -f "/run/criu.kdat.tenement-$$" /run/criu.kdat
        [ -e /run/criu.kdat.tmp ] || : >/run/criu.kdat.tmp
        : >"$k/run-not-tmpfs"
      else
        rm -f "$k/run-not-tmpfs"
      fi
      mv -f "$t/criu.kdat" "$k/criu.kdat"
      [ -e "$k/criu.kdat.tmp" ] || : >"$k/criu.kdat.tmp"
      echo "$boot" >"$t/boot"
      mv -f "$t/boot" "$k/boot"
    ) </dev/null >/dev/null 2>&1
    # Checked apart: inside an AND-OR list the subshell's set -e would be ignored.
    if [ $? != 0 ]; then
      { mkdir -p "$k" && echo "$boot" >"$k/failed"; } 2>/dev/null
      # A root cache of an earlier boot (perhaps another kernel) must not outlive a failed attempt at this boot's.
      if [ "$boot" != "$made" ] && [ "$(stat -f -c %T /run 2>/dev/null)" != tmpfs ]; then rm -f /run/criu.kdat; fi
    fi
    made=; [ -r "$k/boot" ] && read -r made <"$k/boot"
  fi
fi
if [ -n "$boot" ] && [ "$boot" = "$made" ] && [ -s "$k/criu.kdat" ]; then export XDG_RUNTIME_DIR="$k"; fi
exec ${exec} "$@"
`;
}
