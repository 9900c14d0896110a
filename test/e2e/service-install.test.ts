// `ten service install` writes a systemd unit that runs `ten serve` for a config: the real `ten` command, its
// unit checked line by line and, where systemd-analyze exists, by `systemd-analyze verify` (no systemd needs to
// run for that). A path with a space and a `%` is quoted and escaped; a control character is refused.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { renderUnit } from '../../cli/commands/service.ts';
import { TEN, tempDir, ten } from '../ten-cli.ts';

function systemdAnalyze(): string | null {
  try {
    return execFileSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/** `systemd-analyze verify`: it exits 0 on some bad lines too, so anything it prints about the unit fails. */
function verify(analyze: string, unit: string): void {
  const result = spawnSync(analyze, ['verify', unit], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(result.status, 0, result.stderr);
  const about = `${result.stdout}${result.stderr}`.split('\n').filter((line) => line.includes(path.basename(unit)));
  assert.deepEqual(about, [], 'systemd-analyze verify complained about the unit');
}

test('ten service install writes a unit with the absolute node, ten and config, a state dir, reload and a stop timeout above the drain', { timeout: 300_000 }, async (t) => {
  const dir = tempDir('tenement-service-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const appDir = path.join(dir, 'my app%1');
  mkdirSync(appDir);
  writeFileSync(
    path.join(appDir, 'tenement.config.json'),
    JSON.stringify({ services: { web: { command: 'node app.js', drainTimeout: '20s', stopTimeout: '25s' }, api: { command: 'node api.js' } } }),
  );
  const unitFile = path.join(dir, 'tenement.service');

  const result = await ten(['service', 'install', '--output', unitFile], appDir);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /systemctl daemon-reload && systemctl enable --now tenement\n/);
  assert.equal(statSync(unitFile).mode & 0o777, 0o644);
  const unit = readFileSync(unitFile, 'utf8');
  const line = (key: string): string => unit.split('\n').find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1) ?? '';

  const config = path.join(realpathSync(appDir), 'tenement.config.json').replace(/%/g, '%%');
  assert.equal(line('ExecStart'), `${process.execPath} ${realpathSync(TEN)} serve --config "${config}" --data-dir /var/lib/tenement`);
  assert.equal(line('ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.equal(line('Restart'), 'on-failure');
  assert.equal(line('StateDirectory'), 'tenement');
  assert.equal(line('StateDirectoryMode'), '0700');
  assert.equal(line('KillMode'), 'mixed');
  assert.ok(Number(line('LimitNOFILE')) >= 65_536, line('LimitNOFILE'));
  // The longest drain + stop is web's 20 s + 25 s: systemd waits longer than Tenement's own stop.
  assert.ok(Number(line('TimeoutStopSec').replace(/s$/, '')) > 45, line('TimeoutStopSec'));
  assert.equal(line('WantedBy'), 'multi-user.target');

  const again = await ten(['service', 'install', '--output', unitFile], appDir);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^ten: TNM_ERR_CONFLICT: .*tenement\.service already exists; pass --force/);
  assert.equal((await ten(['service', 'install', '--output', unitFile, '--force', '--data-dir', '/srv/tenement'], appDir)).code, 0);
  assert.ok(!readFileSync(unitFile, 'utf8').includes('StateDirectory='), 'a data dir outside /var/lib is no StateDirectory');

  const printed = await ten(['service', 'install', '--print'], appDir);
  assert.equal(printed.code, 0, printed.stderr);
  assert.match(printed.stdout, /^# Written by `ten service install`/);

  const analyze = systemdAnalyze();
  if (!analyze) {
    t.diagnostic('systemd-analyze is not installed (apt-get install systemd): the unit was checked line by line only');
    return;
  }
  writeFileSync(unitFile, printed.stdout);
  verify(analyze, unitFile);
});

test('systemd-analyze verify rejects what the unit check above would miss (the check can fail)', { timeout: 60_000 }, (t) => {
  const analyze = systemdAnalyze();
  if (!analyze) return t.skip('systemd-analyze is not installed (apt-get install systemd)');
  const dir = tempDir('tenement-service-bad-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const unit = path.join(dir, 'bad.service');
  writeFileSync(unit, renderUnit({ node: '/nonexistent/node', ten: TEN, config: '/srv/x/tenement.config.ts', dataDir: '/var/lib/tenement', stopMs: 0 }));
  assert.throws(() => verify(analyze, unit));
});

test('renderUnit refuses a path with a control character (it would end the directive)', () => {
  assert.throws(() => renderUnit({ node: process.execPath, ten: TEN, config: '/srv/a\nExecStartPre=/bin/evil/tenement.config.ts', dataDir: '/var/lib/tenement', stopMs: 0 }), /control character/);
});
