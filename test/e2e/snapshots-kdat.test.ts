// CRIU's kernel probe cache (plugins/snapshots/criu-wrapper.ts): the wrapper makes `criu.kdat` once per boot for
// root and for unprivileged (dump) runs, so CRIU loads it instead of probing the kernel on each dump and restore,
// also where /run is not a tmpfs; a cache of another boot is never used; CRIU's own failed save off a tmpfs does
// not delete it. A wrapper of its own in a temp folder (its cache there), the fetched CRIU's binaries.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { criuDir, criuStatus, wrapperFor } from '../../plugins/snapshots/criu.ts';

const status = await criuStatus();
const CAPS = '+checkpoint_restore,+sys_ptrace,+dac_override,+sys_admin,+net_admin';
const bootId = (): string => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

test('the wrapper gives CRIU its kernel probe cache, per boot, root and unprivileged', { skip: status.usable ? false : `CRIU not usable: ${status.reason}` }, (t) => {
  // criuStatus ran `criu check` as root through the fetched wrapper: that made its caches, and ten doctor says so.
  assert.ok(status.usable);
  assert.match(status.probeCache, /made for this boot/);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'criu-kdat-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  const wrapper = path.join(dir, 'criu');
  writeFileSync(wrapper, wrapperFor(dir, criuDir()), { mode: 0o755 });
  const log = path.join(dir, 'check.log');
  // `criu check` runs CRIU's kerndat like any dump or restore; -v4 logs whether it loaded the cache.
  const check = (asUid: number | null): string => {
    rmSync(log, { force: true });
    const args = ['check', '-v4', '-o', log];
    const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
    if (asUid === null) execFileSync(wrapper, args, { env, stdio: 'ignore', timeout: 60_000 });
    else execFileSync('setpriv', [`--reuid=${asUid}`, `--regid=${asUid}`, '--clear-groups', `--inh-caps=${CAPS}`, `--ambient-caps=${CAPS}`, wrapper, ...args, '--unprivileged'], { env, stdio: 'ignore', timeout: 60_000 });
    return readFileSync(log, 'utf8');
  };
  const kdat = path.join(dir, 'kdat');

  // The first root run makes both caches; from then on CRIU loads them.
  check(null);
  assert.equal(readFileSync(path.join(kdat, 'boot'), 'utf8').trim(), bootId());
  assert.match(check(null), /Loaded kdat cache from \/run\/criu\.kdat/);
  assert.match(check(54321), new RegExp(`Loaded kdat cache from ${kdat}/criu\\.kdat`));
  // That run re-probed and tried to save (off a tmpfs CRIU then deletes the cache): it is still there and used.
  assert.ok(statSync(path.join(kdat, 'criu.kdat')).size > 0);
  assert.match(check(54321), /Loaded kdat cache from/);
  assert.match(check(null), /Loaded kdat cache from \/run\/criu\.kdat/);
  assert.ok(statSync('/run/criu.kdat').size > 0);

  // A cache made for another boot (another kernel, perhaps): an unprivileged run, which cannot make a new one,
  // probes instead of loading it; the next root run makes this boot's.
  writeFileSync(path.join(kdat, 'boot'), '00000000-0000-0000-0000-000000000000\n');
  assert.match(check(54321), /XDG_RUNTIME_DIR not set/);
  assert.doesNotMatch(check(54321), /Loaded kdat cache/);
  check(null);
  assert.equal(readFileSync(path.join(kdat, 'boot'), 'utf8').trim(), bootId());
  assert.match(check(54321), /Loaded kdat cache from/);
  assert.ok(!existsSync(path.join(kdat, 'failed')), 'making the cache never failed');
});

test('a wrapper that cannot make the cache says so once per boot, and CRIU runs as before', { skip: status.usable ? false : `CRIU not usable: ${status.reason}` }, (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'criu-kdat-failed-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  const wrapper = path.join(dir, 'criu');
  writeFileSync(wrapper, wrapperFor(dir, criuDir()), { mode: 0o755 });
  // An unshare that fails (as in a container without mount rights), counting its calls.
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'unshare'), `#!/bin/sh
echo x >> '${dir}/unshare-calls'
exit 1
`, { mode: 0o755 });
  const env = { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin` };
  const log = path.join(dir, 'check.log');
  for (let run = 0; run < 2; run++) {
    rmSync(log, { force: true });
    execFileSync(wrapper, ['check', '-v4', '-o', log], { env, stdio: 'ignore', timeout: 60_000 });
    assert.match(readFileSync(log, 'utf8'), /Looks good|Version: /, 'CRIU ran');
  }
  assert.equal(readFileSync(path.join(dir, 'kdat', 'failed'), 'utf8').trim(), bootId());
  assert.equal(readFileSync(path.join(dir, 'unshare-calls'), 'utf8'), 'x\n', 'tried once this boot, not on every run');
  assert.ok(!existsSync(path.join(dir, 'kdat', 'boot')), 'no cache claimed for this boot');
});
