// Finding the server from anywhere: `ten serve` records its endpoint and token file in the user's context file
// ($XDG_CONFIG_HOME/tenement/contexts.json), and `ten ps` run in a folder without a config reaches it. A hostile or
// broken context file is refused with one clear line, never a crash.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ECHO_APP, freePort, waitFor } from '../helpers.ts';
import { startServe, tempDir, ten, type Result, type ServeProcess } from '../ten-cli.ts';

function assertOneLineFailure(result: Result, pattern: RegExp): void {
  assert.equal(result.code, 1, `expected exit 1, got ${result.code}: ${result.stderr}`);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, /^ten: [^\n]+\n$/, `not one line: ${JSON.stringify(result.stderr)}`);
  assert.match(result.stderr, pattern);
}

describe('the context file: ten finds the server from any folder', { timeout: 300_000 }, () => {
  let home = '';
  let env: Record<string, string> = {};
  let contextFile = '';
  let appDir = '';
  let dataDir = '';
  let elsewhere = '';
  let server: ServeProcess | null = null;

  before(async () => {
    home = tempDir('tenement-ctx-home-');
    env = { HOME: home, XDG_CONFIG_HOME: path.join(home, '.config'), TENEMENT_LOG_LEVEL: 'warn' };
    contextFile = path.join(home, '.config', 'tenement', 'contexts.json');
    appDir = path.join(tempDir('tenement-ctx-app-'), 'notes');
    mkdirSync(appDir, { mode: 0o755 });
    dataDir = path.join(appDir, 'data');
    elsewhere = tempDir('tenement-ctx-elsewhere-');
    const port = await freePort();
    const configFile = path.join(appDir, 'tenement.config.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        settings: { port, listen: '127.0.0.1', dataDir },
        services: { web: { command: `node ${ECHO_APP}`, health: '/health', idleTimeout: false } },
        instances: { web: ['alice'] },
      }),
    );
    // Recorded earlier: a server whose data dir was deleted since (dropped), and one that still exists (kept).
    mkdirSync(path.dirname(contextFile), { recursive: true, mode: 0o700 });
    const entry = (dir: string) => ({ socket: path.join(dir, 'api.sock'), server: null, tokenFile: path.join(dir, 'admin.token'), config: null, dataDir: dir, updatedAt: '' });
    writeFileSync(contextFile, JSON.stringify({ current: 'gone', contexts: { gone: entry(path.join(home, 'deleted-project')), kept: entry(elsewhere) } }), { mode: 0o600 });
    server = await startServe(configFile, `http://127.0.0.1:${port}`, dataDir, env);
    await waitFor(() => readFileSync(contextFile, 'utf8').includes('"notes"'), 'the context file to be written', 10_000);
  });

  after(async () => {
    await server?.stop();
    for (const dir of [home, path.dirname(appDir), elsewhere]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('ten serve records itself as the current context, in a 0600 file naming the socket and the token file', () => {
    assert.equal(statSync(contextFile).mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(contextFile)).mode & 0o777, 0o700);
    const file = JSON.parse(readFileSync(contextFile, 'utf8')) as { current: string; contexts: Record<string, { socket: string; tokenFile: string; dataDir: string }> };
    assert.equal(file.current, 'notes', 'named after the config folder');
    assert.equal(file.contexts.notes?.socket, path.join(dataDir, 'api.sock'));
    assert.equal(file.contexts.notes?.tokenFile, path.join(dataDir, 'admin.token'));
    assert.ok(!readFileSync(contextFile, 'utf8').includes('tnm_'), 'the file names the token file, never the token');
  });

  test('ten serve drops the records of servers whose data dir is gone, and keeps the others', async () => {
    const file = JSON.parse(readFileSync(contextFile, 'utf8')) as { current: string; contexts: Record<string, unknown> };
    assert.deepEqual(Object.keys(file.contexts).sort(), ['kept', 'notes']);
  });

  test('ten ps in an unrelated folder, with no flags, lists the instances of the current context', async () => {
    await waitFor(async () => /^web:alice +running/m.test((await ten(['ps'], elsewhere, env)).stdout), 'web:alice running in ten ps from elsewhere', 60_000);
    const list = await ten(['context', 'list'], elsewhere, env);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^\* +notes +unix:\S+api\.sock /m);
  });

  test('a local config wins over the context: ten ps next to another config goes to that server', async () => {
    const other = tempDir('tenement-ctx-other-');
    try {
      const port = await freePort();
      writeFileSync(path.join(other, 'tenement.config.json'), JSON.stringify({ settings: { port }, services: { web: { command: 'node app.js' } } }));
      assertOneLineFailure(await ten(['ps'], other, env), new RegExp(`cannot reach the server at http://127\\.0\\.0\\.1:${port}:`));
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  test('hostile and broken context files: one clear line, never a crash or a borrowed endpoint', async () => {
    const saved = readFileSync(contextFile, 'utf8');
    try {
      // Prototype names are data: `__proto__` fails the name rule and is dropped; `constructor` is a context like any other.
      const entry = JSON.parse(saved).contexts.notes as object;
      writeFileSync(contextFile, `{"current":"__proto__","contexts":{"__proto__":${JSON.stringify(entry)},"constructor":${JSON.stringify(entry)}}}`, { mode: 0o600 });
      const listed = await ten(['context', 'list', '--json'], elsewhere, env);
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual(Object.keys((JSON.parse(listed.stdout) as { contexts: object }).contexts), ['constructor']);
      assert.equal((JSON.parse(listed.stdout) as { current: unknown }).current, null, 'a current naming no valid context is none');
      assertOneLineFailure(await ten(['context', 'use', '__proto__'], elsewhere, env), /TNM_ERR_CONTEXT_FILE: no context named '__proto__'/);
      assertOneLineFailure(await ten(['context', 'use', 'toString'], elsewhere, env), /no context named 'toString'.*known: constructor/);
      assert.equal((await ten(['context', 'use', 'constructor'], elsewhere, env)).code, 0);
      assert.match((await ten(['ps'], elsewhere, env)).stdout, /^web:alice /m, 'the context named constructor works');

      writeFileSync(contextFile, '{"current": "notes", "contexts": {', { mode: 0o600 });
      assertOneLineFailure(await ten(['ps'], elsewhere, env), /TNM_ERR_CONTEXT_FILE: the context file .*contexts\.json is not valid JSON/);
      writeFileSync(contextFile, '[1, 2]', { mode: 0o600 });
      assertOneLineFailure(await ten(['context', 'list'], elsewhere, env), /is not a JSON object/);

      // Writable by others: another user could point ten at a server of theirs and collect the token. Refused.
      writeFileSync(contextFile, saved);
      chmodSync(contextFile, 0o666);
      assertOneLineFailure(await ten(['ps'], elsewhere, env), /TNM_ERR_CONTEXT_FILE: the context file .* is writable by other users \(mode 0666\).*refusing/);
      chmodSync(contextFile, 0o600);
      chmodSync(path.dirname(contextFile), 0o777);
      assertOneLineFailure(await ten(['ps'], elsewhere, env), /the context folder .* is writable by other users/);
      chmodSync(path.dirname(contextFile), 0o700);
      assert.equal((await ten(['ps'], elsewhere, env)).code, 0);
    } finally {
      chmodSync(path.dirname(contextFile), 0o700);
      writeFileSync(contextFile, saved, { mode: 0o600 });
      chmodSync(contextFile, 0o600);
    }
  });

  test('with the server stopped, ten ps fails naming the socket and the URL it tried', async () => {
    await server!.stop();
    const result = await ten(['ps'], elsewhere, env);
    const socket = path.join(dataDir, 'api.sock').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assertOneLineFailure(result, new RegExp(`cannot reach the server at http://127\\.0\\.0\\.1:\\d+: is \`ten serve\` running\\? Tried unix:${socket} \\(no such socket\\), http://127\\.0\\.0\\.1:\\d+ \\(connection refused: nobody listening\\), from the current context 'notes'`));
  });
});
