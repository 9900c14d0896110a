// core/config/server-settings.ts reads where a config's server is without zod (what `ten ps` does next to a
// config); for a valid config it must be exactly what the full loader resolves, and an invalid one still gives
// its best reading.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../core/config/loader.ts';
import { readServerSettingsExact, type ServerSettings } from '../../core/config/server-settings.ts';
import { ROOT } from '../helpers.ts';

function endpoint(settings: ServerSettings): ServerSettings {
  return { port: settings.port, listen: settings.listen, dataDir: settings.dataDir, api: { tcp: settings.api.tcp, socket: settings.api.socket } };
}

async function assertAgrees(file: string): Promise<void> {
  const full = await loadConfig({ file });
  const quick = await readServerSettingsExact(file);
  assert.ok(quick, `${file}: the quick reading found nothing`);
  assert.equal(quick.exact, true, `${file}: the quick reading is unsure`);
  assert.deepEqual(quick.settings, endpoint(full.settings), file);
}

test("the quick reading is the loader's on every example's config", { timeout: 120_000 }, async () => {
  const examples = path.join(ROOT, 'examples');
  const files = readdirSync(examples, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .flatMap((entry) => readdirSync(path.join(examples, entry.name)).filter((name) => /^tenement\.config\.(ts|mts|js|mjs|json)$/.test(name)).map((name) => path.join(examples, entry.name, name)));
  assert.ok(files.length >= 3, `found only ${files.join(', ')}`);
  for (const file of files) await assertAgrees(file);
});

test("the quick reading is the loader's on valid configs that set every endpoint field, and reads invalid ones", async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tenement-server-settings-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, config: unknown): string => {
    const file = path.join(dir, name);
    writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config));
    return file;
  };
  const valid: unknown[] = [
    { services: {} },
    { settings: {}, services: {} },
    { settings: { port: 0, listen: '::1', dataDir: 'state/here', api: { tcp: false, socket: 'mgmt.sock' } }, services: {} },
    { settings: { port: 65535, listen: '0.0.0.0', dataDir: '/var/lib/tenement', api: { socket: false } }, services: {} },
    { settings: { port: 9000, api: { tcp: true } }, services: {} },
  ];
  for (const [i, config] of valid.entries()) await assertAgrees(write(`valid-${i}.json`, config));
  await assertAgrees(write('valid.mjs', "export default { settings: { port: 7001, dataDir: './d', api: { socket: 'x.sock' } }, services: {} };"));

  // Invalid: the loader refuses them; the quick reading keeps the fields it can use and defaults the rest.
  const bad = write('bad.json', { settings: { port: '8080', listen: '', dataDir: 7, api: { tcp: 'no', socket: '' }, __proto__: { port: 1 } }, services: { BAD: {} } });
  await assert.rejects(loadConfig({ file: bad }), /invalid config/);
  const read = await readServerSettingsExact(bad);
  assert.deepEqual(read, { exact: true, settings: { port: 8080, listen: '127.0.0.1', dataDir: path.join(dir, 'tenement-data'), api: { tcp: true, socket: true } } });
  assert.equal(await readServerSettingsExact(write('broken.json', '{ not json')), null);

  // Settings zod would read through a prototype: the quick reading says it is unsure (the client then loads fully).
  const classy = write('classy.mjs', 'class S { get port() { return 7002; } } export default { settings: new S(), services: {} };');
  assert.equal((await readServerSettingsExact(classy))?.exact, false);
});
