// The microVM spec disk is a shell script the guest init sources: values must come back exactly as given.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { SPEC_MAGIC } from '../../runtimes/microvm/init-script.ts';
import { writeSpecDisk } from '../../runtimes/microvm/spec-disk.ts';

test('the spec disk round-trips awkward values through sh, and skips env names sh cannot export', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-spec-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const disk = path.join(dir, 'spec.raw');
  const tricky = `it's "quoted" $HOME \`id\` ; rm -rf / \\ \n new line`;
  writeSpecDisk(disk, {
    uid: 1234,
    gid: 1235,
    port: 31000,
    cwd: "/srv/app's dir",
    dataDir: '/data/a b',
    hostname: 'a-notes',
    network: 'host',
    setpriv: '/usr/bin/setpriv',
    command: 'node',
    args: ['server.js', tricky, ''],
    env: { SECRET: tricky, 'BAD-NAME': 'x', PORT: '31000' },
  });
  const raw = readFileSync(disk);
  assert.equal(raw.length % 512, 0, 'a whole number of sectors');
  assert.ok(raw.toString('latin1').startsWith(SPEC_MAGIC));
  // What the guest init does: strip the padding, source it, then use the values.
  const script = `tr -d '\\000' < "$1" > "$1.sh"; . "$1.sh"; printf '%s\\n---\\n' "$TNM_UID" "$TNM_CWD" "$TNM_DATA" "$SECRET" "$#" "$2" "$3"; env | grep -c '^BAD' || true`;
  const result = spawnSync('/bin/sh', ['-c', script, 'sh', disk], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  const [uid, cwd, data, secret, count, arg2, arg3, bad] = result.stdout.split('\n---\n');
  assert.equal(uid, '1234');
  assert.equal(cwd, "/srv/app's dir");
  assert.equal(data, '/data/a b');
  assert.equal(secret, tricky);
  assert.equal(count, '4', 'node, server.js, the tricky argument and an empty one');
  assert.equal(arg2, 'server.js');
  assert.equal(arg3, tricky);
  assert.equal(bad?.trim(), '0', 'an env name sh cannot export is left out');
});
