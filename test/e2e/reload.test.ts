// `ten serve` reloads its config on SIGHUP without dropping a request: a real `ten serve` child, a load loop on an
// unchanged tenant through the signal, an added service that answers, a removed one that 404s (its process gone),
// a changed one whose running instance is not restarted, and an invalid config that keeps the old one, logged
// with the field that is wrong.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ECHO_APP, freePort, request, waitFor } from '../helpers.ts';
import { instancePids, startServe, tempDir, ten, type ServeProcess } from '../ten-cli.ts';

const echo = (extra: Record<string, unknown> = {}) => ({ command: `node ${ECHO_APP}`, health: '/health', idleTimeout: false, ...extra });

describe('SIGHUP reloads the config of a running ten serve', { timeout: 300_000 }, () => {
  let dir = '';
  let dataDir = '';
  let configFile = '';
  let url = '';
  let port = 0;
  let server: ServeProcess | null = null;

  const writeConfig = (services: Record<string, unknown>, instances: Record<string, string[]>): void => {
    writeFileSync(configFile, JSON.stringify({ settings: { port, listen: '127.0.0.1', dataDir }, services, instances }));
  };
  const get = (host: string, urlPath = '/pid') => request(url, host, urlPath, { timeoutMs: 20_000 });
  /** Waits until the server logged `message` `count` times (JSON lines on stderr). */
  const logged = (message: string, count: number) =>
    waitFor(() => server!.log().split('\n').filter((line) => line.includes(`"msg":"${message}`)).length >= count, `'${message}' logged ${count} time(s)`, 60_000);

  before(async () => {
    dir = tempDir('tenement-reload-');
    dataDir = path.join(dir, 'data');
    configFile = path.join(dir, 'tenement.config.json');
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    writeConfig({ web: echo(), gone: echo(), tweaked: echo({ env: { GREETING: 'hello' } }) }, { web: ['alice'], gone: ['bob'], tweaked: ['dave'] });
    const home = path.join(dir, 'home');
    server = await startServe(configFile, url, dataDir, { HOME: home, XDG_CONFIG_HOME: path.join(home, '.config') });
    for (const host of ['alice.web.localhost', 'bob.gone.localhost', 'dave.tweaked.localhost']) {
      await waitFor(async () => (await get(host).catch(() => ({ status: 0 }))).status === 200, `${host} to answer`, 60_000);
    }
  });

  after(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('added, removed and changed services are applied while an unchanged tenant serves every request', async () => {
    const alicePid = (await get('alice.web.localhost')).body;
    const davePid = (await get('dave.tweaked.localhost')).body;
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    // Four clients, one request after another each, from before the signal until the reload is done.
    const loop = async (): Promise<void> => {
      while (!stop) {
        try {
          const reply = await get('alice.web.localhost', '/echo');
          if (reply.status === 200) ok += 1;
          else failures.push(`${reply.status} ${reply.body.slice(0, 200)}`);
        } catch (error) {
          failures.push(String(error));
        }
      }
    };
    const clients = [loop(), loop(), loop(), loop()];
    await waitFor(() => ok >= 20, 'the load loop to be going', 30_000);

    writeConfig(
      { web: echo(), fresh: echo(), tweaked: echo({ env: { GREETING: 'bonjour' }, requestTimeout: '20s' }) },
      { web: ['alice'], fresh: ['carol'], tweaked: ['dave'] },
    );
    server!.child.kill('SIGHUP');
    await logged('config reloaded', 1);
    await waitFor(async () => (await get('carol.fresh.localhost').catch(() => ({ status: 0 }))).status === 200, 'the added service to answer', 60_000);
    const before = ok;
    await waitFor(() => ok >= before + 20, 'more requests after the reload', 30_000);
    stop = true;
    await Promise.all(clients);
    assert.deepEqual(failures, [], `requests to the unchanged tenant failed during the reload (${ok} answered)`);

    const removed = await get('bob.gone.localhost', '/');
    assert.equal(removed.status, 404, removed.body);
    assert.match(removed.body, /TNM_ERR_UNKNOWN_SERVICE/);
    await waitFor(() => instancePids(path.join(dataDir, 'instances', 'gone')).length === 0, "the removed service's process to be gone", 30_000);
    assert.equal((await get('alice.web.localhost')).body, alicePid, 'the unchanged instance was not restarted');
    assert.equal((await get('dave.tweaked.localhost')).body, davePid, 'a changed instance is not restarted: its new env waits for its next start');

    const line = server!.log().split('\n').find((l) => l.includes('"msg":"config reloaded"'))!;
    const entry = JSON.parse(line) as { added: string[]; removed: string[]; changed: string[] };
    assert.deepEqual(entry.added, ['fresh']);
    assert.deepEqual(entry.removed, ['gone']);
    assert.deepEqual(entry.changed, ['tweaked (env, requestTimeout)']);
    assert.ok(server!.log().includes('"fields":["env"]'), 'env is named as applying at the next start');
  });

  test('an invalid config keeps the running one and logs the field; a settings change is kept for a restart', async () => {
    writeConfig({ web: echo({ idleTimeout: '5 minutes' }), fresh: echo() }, { web: ['alice'], fresh: ['carol'] });
    server!.child.kill('SIGHUP');
    await logged('config reload failed', 1);
    const failure = server!.log().split('\n').find((l) => l.includes('"msg":"config reload failed'))!;
    assert.match(failure, /services\.web\.idleTimeout: expected a duration/);
    assert.match(failure, /TNM_ERR_CONFIG_INVALID/);
    for (const host of ['alice.web.localhost', 'carol.fresh.localhost', 'dave.tweaked.localhost']) {
      assert.equal((await get(host)).status, 200, `${host} still served after the invalid reload`);
    }

    // A setting (the port) cannot move without a restart: the rest is applied, the setting named and kept.
    writeFileSync(
      configFile,
      JSON.stringify({ settings: { port: port + 1, listen: '127.0.0.1', dataDir }, services: { web: echo(), fresh: echo() }, instances: { web: ['alice'], fresh: ['carol'] } }),
    );
    server!.child.kill('SIGHUP');
    await logged('these changes need a restart', 1);
    assert.match(server!.log(), /"fields":\["settings\.port"\]/);
    assert.equal((await get('alice.web.localhost')).status, 200, 'still on the old port');
    assert.equal((await get('dave.tweaked.localhost', '/')).status, 404, 'the services part of that reload was applied');
  });

  test('ten reload (POST /api/reload) applies the file and answers what changed; an invalid file is a coded error naming the field', async () => {
    writeFileSync(
      configFile,
      JSON.stringify({ settings: { port, listen: '127.0.0.1', dataDir }, services: { web: echo(), fresh: echo(), extra: echo() }, instances: { web: ['alice'], fresh: ['carol'], extra: ['erin'] } }),
    );
    const reloaded = await ten(['reload'], dir);
    assert.equal(reloaded.code, 0, reloaded.stderr);
    assert.match(reloaded.stdout, /^reloaded .*tenement\.config\.json\n  added: +extra\n  removed: +-\n/);
    await waitFor(async () => (await get('erin.extra.localhost').catch(() => ({ status: 0 }))).status === 200, 'the service added by ten reload to answer', 60_000);

    writeFileSync(configFile, JSON.stringify({ settings: { port, listen: '127.0.0.1', dataDir }, services: { web: echo({ restart: 'sometimes' }) } }));
    const refused = await ten(['reload'], dir);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^ten: TNM_ERR_CONFIG_INVALID: invalid config .* - services\.web\.restart: /);
    assert.equal((await get('erin.extra.localhost')).status, 200, 'nothing changed');
  });
});
