// What a namespace-tier image may make a root restore do (plugins/snapshots/sandbox-plan.ts, sandbox-restore.ts):
// only root-owned system files and /dev/null are opened again and handed to the sandbox, only if they are the
// files the dump saw; a plan's root layout never reaches outside the folder it is built in.
import assert from 'node:assert/strict';
import { chmodSync, closeSync, existsSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { handBackable, openExternal, parsePlan } from '../../plugins/snapshots/sandbox-plan.ts';
import { buildRoot } from '../../plugins/snapshots/sandbox-restore.ts';

const keyOf = (file: string): string => `file[1b:${statSync(file, { bigint: true }).ino.toString(16)}]`;

test('only root-owned files nobody else may write, and /dev/null, are handed back to a restored sandbox', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-sandbox-plan-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.equal(handBackable(statSync(process.execPath, { bigint: true })), process.getuid?.() === 0 || statSync(process.execPath).uid === 0);
  assert.equal(handBackable(statSync('/dev/null', { bigint: true })), true);
  assert.equal(handBackable(statSync('/dev/zero', { bigint: true })), false, 'another device');
  const writable = path.join(dir, 'writable');
  writeFileSync(writable, 'x');
  chmodSync(writable, 0o666);
  assert.equal(handBackable(statSync(writable, { bigint: true })), false, 'a file others may write');
  assert.equal(handBackable(statSync(dir, { bigint: true })), false, 'a folder');
});

test('an external file is opened again only if it is the same file, never through a link', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-sandbox-plan-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  closeSync(openExternal({ key: keyOf('/dev/null'), path: '/dev/null' }));
  assert.throws(() => openExternal({ key: 'file[1b:1]', path: '/dev/null' }), /not the file the dump saw/);
  // A path swapped for a link to a file the tenant must not read (/etc/shadow, here a root-only file).
  const secret = path.join(dir, 'secret');
  writeFileSync(secret, 'secret', { mode: 0o600 });
  const swapped = path.join(dir, 'swapped');
  symlinkSync(secret, swapped);
  assert.throws(() => openExternal({ key: keyOf(secret), path: swapped }), /ELOOP/);
});

test('a plan read from an image is checked: keys, absolute paths, relative root entries without ..', () => {
  const plan = (files: unknown[], root: unknown[]): string => JSON.stringify({ files, root });
  assert.deepEqual(parsePlan(plan([{ key: 'file[1b:2f]', path: '/usr/bin/bwrap' }], [{ path: 'usr', kind: 'dir' }, { path: 'bin', kind: 'link', target: 'usr/bin' }])).root.length, 2);
  for (const [files, root] of [
    [[{ key: 'file[1b:2f]', path: 'usr/bin/bwrap' }], []],
    [[{ key: 'unix[12]', path: '/dev/null' }], []],
    [[], [{ path: '../etc', kind: 'dir' }]],
    [[], [{ path: '/etc', kind: 'dir' }]],
    [[], [{ path: 'a//b', kind: 'dir' }]],
    [[], [{ path: 'tmp', kind: 'fifo' }]],
    [[], [{ path: 'bin', kind: 'link' }]],
    [Array.from({ length: 513 }, () => ({ key: 'file[1:1]', path: '/dev/null' })), []],
  ] as const) {
    assert.throws(() => parsePlan(plan([...files], [...root])), /sandbox\.json/, JSON.stringify(root).slice(0, 80));
  }
  assert.throws(() => parsePlan('[]'), /sandbox\.json/);
});

test("a plan's root layout is built inside its folder only: nothing is made through a link", (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-sandbox-plan-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const outside = path.join(dir, 'outside');
  const root = path.join(dir, 'root');
  buildRoot(root, [{ path: 'usr', kind: 'dir' }, { path: 'bin', kind: 'link', target: 'usr/bin' }, { path: 'etc', kind: 'dir' }, { path: 'etc/resolv.conf', kind: 'file' }]);
  assert.equal(statSync(root).mode & 0o777, 0o755);
  assert.ok(existsSync(path.join(root, 'etc/resolv.conf')));
  assert.throws(() => buildRoot(root, [{ path: 'escape', kind: 'link', target: outside }, { path: 'escape/x', kind: 'dir' }]), /not under a folder/);
  assert.equal(existsSync(outside), false, 'nothing was made outside');
});
