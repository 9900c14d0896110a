// A config's own plugins given as paths, the way a user writes them in their own folder: `'./my-plugin.ts'` and
// `['./my-plugin.ts', { options }]` load in `ten serve` as in `ten config`, and a plugin that is wrong is named by
// its name and file (or its place in the config's `plugins`), never by a position among the built-in plugins.
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { freePort, waitFor } from '../helpers.ts';
import { startServe, tempDir, ten } from '../ten-cli.ts';

const PLUGIN = `import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
export default {
  name: 'my-plugin',
  version: '1.0.0',
  kernel: '^1',
  setup(ctx: { config: unknown; paths: { configDir: string } }) {
    writeFileSync(join(ctx.paths.configDir, 'seen.json'), JSON.stringify(ctx.config ?? null));
  },
};
`;

function writeConfig(dir: string, port: number, plugins: string): void {
  writeFileSync(
    path.join(dir, 'tenement.config.ts'),
    `export default {\n  settings: { port: ${port}, listen: '127.0.0.1', dataDir: './data' },\n  services: { web: { command: 'node app.js' } },\n  plugins: ${plugins},\n};\n`,
  );
}

test("plugins: [['./my-plugin.ts', { options }]] loads in ten serve with its options, as in ten config", { timeout: 300_000 }, async (t) => {
  const dir = tempDir('tenement-config-plugins-');
  writeFileSync(path.join(dir, 'my-plugin.ts'), PLUGIN);
  const port = await freePort();
  writeConfig(dir, port, `[['./my-plugin.ts', { greeting: 'hi' }]]`);

  const config = await ten(['config'], dir);
  assert.equal(config.code, 0, config.stderr);
  assert.equal((JSON.parse(config.stdout) as { plugins: number }).plugins, 1);

  const home = path.join(dir, 'home');
  const server = await startServe(path.join(dir, 'tenement.config.ts'), `http://127.0.0.1:${port}`, path.join(dir, 'data'), { HOME: home, XDG_CONFIG_HOME: path.join(home, '.config') });
  // Before the folder is removed: after-hooks run in the order they were added, and the server writes into it.
  t.after(() => server.stop().finally(() => rmSync(dir, { recursive: true, force: true })));
  await waitFor(() => server.log().includes('"my-plugin"'), 'my-plugin to be among the loaded plugins', 30_000);
  assert.deepEqual(JSON.parse(readFileSync(path.join(dir, 'seen.json'), 'utf8')), { greeting: 'hi' });
});

test('a wrong plugin is named by its name and file, or its place in the config, not by its index among the built-in ones', { timeout: 300_000 }, async (t) => {
  const dir = tempDir('tenement-config-plugins-bad-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  writeFileSync(path.join(dir, 'no-version.ts'), `export default { name: 'bad', kernel: '^1', setup() {} };\n`);
  writeFileSync(path.join(dir, 'nameless.ts'), `export default { version: '1.0.0', kernel: '^1', setup() {} };\n`);

  writeConfig(dir, port, `['./no-version.ts']`);
  const noVersion = await ten(['serve'], dir);
  assert.equal(noVersion.code, 1);
  assert.match(noVersion.stderr, /TNM_ERR_PLUGIN_MANIFEST: plugin 'bad' \(\.\/no-version\.ts\) has an invalid manifest: version: /);

  writeConfig(dir, port, `[['./nameless.ts', {}]]`);
  const nameless = await ten(['serve'], dir);
  assert.equal(nameless.code, 1);
  assert.match(nameless.stderr, /TNM_ERR_CONFIG_INVALID: .*\n  - plugins\.0: expected a plugin .*, got '\.\/nameless\.ts', whose default export has no name\n/);
  assert.doesNotMatch(nameless.stderr, /#\d+/, 'no position among the built-in plugins');

  // An object in the config itself: its place in the config's own list.
  writeConfig(dir, port, `[{ version: '1.0.0' }]`);
  const inline = await ten(['config'], dir);
  assert.equal(inline.code, 1);
  assert.match(inline.stderr, /plugins\.0: expected a plugin \(definePlugin\(\{ name, version, kernel, setup \}\)\), got an object without a name/);
});
