// cli/serve-plugins.ts: which default plugins `ten serve` imports for a config, and the reload that would need one
// it did not import. Configs are resolved by the real schema (core/config/loader.ts), as `ten serve` resolves them.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { defaultPlugins } from '../../cli/default-plugins.ts';
import { CONFIG_PLUGINS, DEFAULT_PLUGINS, checkReloadNeeds, loadDefaultPlugins, neededBy } from '../../cli/serve-plugins.ts';
import { resolveConfig, type ResolvedConfig } from '../../core/config/loader.ts';
import type { ConfigInput } from '../../core/config/schema.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { netNames } from '../../plugins/network/names.ts';

const nameOf = (entry: unknown): string => ((Array.isArray(entry) ? entry[0] : entry) as { name: string }).name;

const resolve = (config: ConfigInput): ResolvedConfig =>
  resolveConfig({ ...config, settings: { dataDir: '/tmp/tenement-serve-plugins-unused', ...config.settings } }, { path: null, dir: '/tmp' }, {}, CONFIG_PLUGINS);

const web = { command: 'node app.mjs' };
const optional = DEFAULT_PLUGINS.filter((plugin) => !plugin.entry).map((plugin) => plugin.name);
const chosen = (config: ConfigInput): string[] => DEFAULT_PLUGINS.filter((plugin) => !plugin.entry && neededBy(plugin, resolve(config)) !== null).map((p) => p.name);

test("the table is cli/default-plugins.ts's list, in its order, and each loader imports the plugin it names", async () => {
  assert.deepEqual(DEFAULT_PLUGINS.map((plugin) => plugin.name), defaultPlugins.map(nameOf));
  const loaded = await Promise.all(DEFAULT_PLUGINS.map(async (plugin) => nameOf(plugin.entry ?? (await plugin.load!()))));
  assert.deepEqual(loaded, defaultPlugins.map(nameOf));
  assert.ok(optional.length >= 9, `only ${optional.join(', ')} load on demand`);
});

test('a config without their sections loads none of the on-demand plugins', async () => {
  const config = resolve({ services: { web, api: { ...web, fallback: ['process'] } }, settings: { autoscale: { maxReplicas: 4 } } });
  assert.deepEqual(chosen({ services: { web } }), []);
  const { names } = await loadDefaultPlugins(config);
  assert.deepEqual(names, DEFAULT_PLUGINS.filter((plugin) => plugin.entry).map((plugin) => plugin.name));
});

test('each section loads its plugin, and only it', () => {
  const cases: [ConfigInput, string[]][] = [
    [{ services: { fn: { isolation: 'wasm', module: './fn.wasm' } } }, ['runtime-wasm']],
    [{ services: { web: { ...web, isolation: 'namespace', fallback: ['sandbox', 'process'] } } }, ['runtime-namespace', 'runtime-sandbox']],
    [{ services: { web: { ...web, fallback: ['microvm'] } } }, ['runtime-microvm']],
    [{ services: { web: { ...web, network: 'private' } } }, ['network']],
    [{ services: { web: { ...web, scale: { target: 10 } } } }, ['autoscale']],
    [{ services: { web }, settings: { fleet: { servers: ['nats://127.0.0.1:4222'] } } }, ['fleet']],
    [{ services: { web }, settings: { otel: { endpoint: 'http://127.0.0.1:4318' } } }, ['otel']],
    [{ services: { web }, settings: { edge: { kind: 'haproxy', listen: '127.0.0.1:8081' } } }, ['edge-haproxy']],
    // Options for a plugin load it (setup would refuse options for a plugin that is not there).
    [{ services: { web }, pluginOptions: { 'runtime-wasm': { threads: 1 } } }, ['runtime-wasm']],
  ];
  for (const [config, expected] of cases) assert.deepEqual(chosen(config), expected, JSON.stringify(config));
});

test("tracing turned on by the environment alone loads otel, as the plugin itself decides", () => {
  const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = 'http://127.0.0.1:4318';
  try {
    assert.deepEqual(chosen({ services: { web } }), ['otel']);
  } finally {
    if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
  }
});

test("a config plugin's dependency on an on-demand default plugin loads it", () => {
  const own = { name: 'mine', version: '1.0.0', kernel: '^1', dependencies: ['fleet', '__proto__'], setup() {} };
  assert.deepEqual(chosen({ services: { web }, plugins: [own] }), ['fleet']);
});

test('a reload whose services need a plugin not loaded at start is refused, naming it; settings wait for a restart as before', () => {
  const current = resolve({ services: { web } });
  const loaded = DEFAULT_PLUGINS.filter((plugin) => plugin.entry).map((plugin) => plugin.name);
  const scaled = resolve({ services: { web, api: { ...web, scale: { target: 5 } } } });
  assert.throws(
    () => checkReloadNeeds(loaded, current, scaled),
    (error: unknown) => {
      assert.ok(error instanceof TenementError);
      assert.equal(error.code, ErrorCodes.CONFIG_INVALID);
      assert.match(error.message, /'autoscale' \(for services\.api\.scale\).*restart ten serve/);
      return true;
    },
  );
  assert.throws(() => checkReloadNeeds(loaded, current, resolve({ services: { fn: { isolation: 'wasm', module: './fn.wasm' } } })), /'runtime-wasm' \(for services\.fn\.isolation\)/);
  // Loaded at start: accepted.
  checkReloadNeeds([...loaded, 'autoscale'], current, scaled);
  // settings.fleet in the new file: kept until a restart (Kernel.reload's needsRestart), not a reason to refuse.
  checkReloadNeeds(loaded, current, resolve({ services: { web }, settings: { fleet: { servers: ['nats://127.0.0.1:4222'] } } }));
  checkReloadNeeds(loaded, current, resolve({ services: { web, other: web } }));
});

test('namespaces a crashed run on this data directory left load the network plugin, which removes them', (t) => {
  const ip = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'].find((candidate) => existsSync(candidate));
  if (process.getuid?.() !== 0 || !ip) {
    t.skip('needs root and iproute2 (ip) to make a network namespace');
    return;
  }
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tenement-leftover-'));
  const leftover = `${netNames(dataDir).netnsPrefix}zz`;
  const config = resolve({ services: { web }, settings: { dataDir } });
  const network = DEFAULT_PLUGINS.find((plugin) => plugin.name === 'network')!;
  assert.equal(neededBy(network, config), null, 'no namespace of this data directory yet');
  execFileSync(ip, ['netns', 'add', leftover]);
  try {
    assert.equal(neededBy(network, config), 'namespaces left by a previous run');
    // Another data directory's namespaces are not this server's to remove.
    assert.equal(neededBy(network, resolve({ services: { web }, settings: { dataDir: `${dataDir}-other` } })), null);
  } finally {
    execFileSync(ip, ['netns', 'del', leftover]);
    rmSync(dataDir, { recursive: true, force: true });
  }
});
