// Names are data (issue 18, item 6) on the command line: `ten` arguments made of prototype member names, against a
// running server, give one coded line or a correct answer, and leave no ghost instance.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT, echoService, waitFor } from '../helpers.ts';
import { NAMES, adminToken, assertNoGhost, assertServing, namesKernel } from './names-fixture.ts';

const TEN = path.join(ROOT, 'bin', 'ten.mjs');

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function ten(args: string[], server: string, token: string): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('TENEMENT_')) env[key] = value;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [TEN, ...args],
      { cwd: os.tmpdir(), timeout: 60_000, env: { ...env, TENEMENT_SERVER: server, TENEMENT_TOKEN: token, NO_COLOR: '1' } },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

test('CLI arguments made of prototype names: one coded line or a correct answer, against a running server', { timeout: 300_000 }, async (t) => {
  const kernel = await namesKernel(t, { services: { web: echoService() }, instances: { web: ['alice'] } });
  await waitFor(() => kernel.instances.get('web', 'alice')?.state === 'running', 'web:alice running', 30_000);
  const token = adminToken(kernel);
  const commands: string[][] = [];
  for (const name of NAMES) {
    commands.push(
      ['ps', '--service', name],
      ['ps', name],
      ['spawn', `${name}:x`],
      ['restart', `${name}:x`],
      ['restart', `web:${name}`],
      ['stop', `${name}:${name}`],
      ['health', `web:${name}`],
      ['weight', `${name}:alice`, '5'],
      ['hibernate', `web:${name}`],
      ['logs', name],
      ['logs', `web:${name}`],
      ['token', 'revoke', name],
      ['route', name, '--from', 'alice', '--to', name],
      ['snapshot', 'restore', 'web:alice', name],
      ['snapshot', 'list', `web:${name}`],
    );
  }
  // Four CLI processes at a time (each spends most of its time starting node): none of these commands changes
  // an instance (they name services and instances that do not exist), so one's checks cannot see another's
  // work half done, and a ghost any of them made stays for every later check to see.
  let next = 0;
  const runner = async (): Promise<void> => {
    while (next < commands.length) {
      const args = commands[next++]!;
      const result = await ten(args, kernel.url, token);
      const what = `ten ${args.join(' ')}`;
      assert.ok(result.code === 0 || result.code === 1, `${what}: exit ${result.code} ${result.stderr}`);
      if (result.code === 1) {
        assert.match(result.stderr, /^(ten: |error: )[^\n]+\n/, `${what}: one line: ${JSON.stringify(result.stderr)}`);
        assert.doesNotMatch(result.stderr, /TNM_ERR_HOOK_FAILED|Cannot read properties|TypeError/, what);
      }
      await assertServing(kernel, what);
      assertNoGhost(kernel, what);
    }
  };
  await Promise.all(Array.from({ length: 4 }, runner));
  // The reported crash, through the CLI: no service named constructor here, so a coded 404 and nothing created.
  const unknown = await ten(['spawn', 'constructor:bob'], kernel.url, token);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^ten: TNM_ERR_UNKNOWN_SERVICE/);
  // An instance named constructor is an ordinary one.
  const spawned = await ten(['spawn', 'web:constructor'], kernel.url, token);
  assert.equal(spawned.code, 0, spawned.stderr);
  const ps = await ten(['ps', '--service', 'web', '--json'], kernel.url, token);
  assert.ok((JSON.parse(ps.stdout) as { instances: Array<{ key: string }> }).instances.some((i) => i.key === 'web:constructor'), ps.stdout);
  const restarted = await ten(['restart', 'web:constructor'], kernel.url, token);
  assert.equal(restarted.code, 0, restarted.stderr);
  const missing = await ten(['restart', 'web:valueof'], kernel.url, token);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^ten: TNM_ERR_UNKNOWN_INSTANCE/);
  assertNoGhost(kernel, 'the end');
});
