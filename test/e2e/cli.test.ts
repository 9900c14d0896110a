// The `ten` command as a user runs it: real child processes of bin/ten.mjs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ROOT } from '../helpers.ts';

const run = promisify(execFile);
const TEN = path.join(ROOT, 'bin', 'ten.mjs');

async function ten(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [TEN, ...args], { cwd, timeout: 30_000, env: { ...process.env, TENEMENT_CONFIG: '' } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('ten config prints the resolved config, found by walking up from the cwd', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'tenement.config.json'), JSON.stringify({ services: { web: { command: 'node app.js', idleTimeout: '90s' } } }));
  const { code, stdout } = await ten(['config'], dir);
  assert.equal(code, 0);
  const config = JSON.parse(stdout) as { services: { web: { idleTimeout: number; cwd: string } }; settings: { dataDir: string } };
  assert.equal(config.services.web.idleTimeout, 90_000);
  assert.equal(config.services.web.cwd, dir);
  assert.equal(config.settings.dataDir, path.join(dir, 'tenement-data'));
});

test('a bad config fails ten config and ten serve with every field path, exit code 1', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'bad.json');
  writeFileSync(file, JSON.stringify({ settings: { port: 'x' }, services: { web: { command: 'node a.js', restart: 'sometimes', helth: '/h' } } }));
  for (const command of ['config', 'serve']) {
    const { code, stderr, stdout } = await ten([command, '--config', file], dir);
    assert.equal(code, 1, command);
    assert.equal(stdout, '');
    assert.match(stderr, /^ten: TNM_ERR_CONFIG_INVALID: invalid config .*bad\.json:/);
    assert.match(stderr, /settings\.port: .*expected number/);
    assert.match(stderr, /services\.web\.restart: .*"always"\|"on-failure"\|"never"/);
    assert.match(stderr, /services\.web: Unrecognized key: "helth"/);
  }
});

test('a missing config says where it looked and how to fix it', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const { code, stderr } = await ten(['serve'], dir);
  assert.equal(code, 1);
  assert.match(stderr, /TNM_ERR_CONFIG_NOT_FOUND: no tenement\.config\.ts .* found in .* or any parent directory/);
});

test('ten --help and ten serve --help describe the commands with examples', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const help = await ten(['--help'], dir);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /serve/);
  assert.match(help.stdout, /config/);
  const serveHelp = await ten(['serve', '--help'], dir);
  assert.match(serveHelp.stdout, /--port/);
  assert.match(serveHelp.stdout, /Examples:/);
});
