/**
 * Plugins contribute the config they own (issue 9): tiers registered by runtimes, fields added to services and
 * settings by zod fragments, validated before any plugin is set up; an unknown field names the first-party
 * plugin that would accept it when that plugin is not loaded; a plugin's options schema types `ctx.config`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { resolveConfig } from '../../core/config/loader.ts';
import { FIRST_PARTY } from '../../core/config/first-party.ts';
import { TenementError } from '../../core/errors.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import { defineConfig, definePlugin } from '../../sdk/index.ts';

const source = { path: null, dir: '/tmp' };
const processOnly = [{ name: 'runtime-process', tiers: [{ name: 'process' }] }];

function configError(raw: unknown, plugins: readonly unknown[]): TenementError {
  try {
    resolveConfig(raw, source, {}, plugins);
  } catch (error) {
    assert.ok(error instanceof TenementError, String(error));
    return error;
  }
  assert.fail('expected the config to be refused');
}

const firejail = definePlugin({
  name: 'runtime-firejail',
  version: '1.0.0',
  kernel: '^1',
  tiers: [{ name: 'firejail', traits: { cgroups: 'limits' } }],
  serviceFields: { jail: z.strictObject({ profile: z.string().default('default') }).optional() },
  settingsFields: { firejail: z.strictObject({ binary: z.string().default('firejail') }).default({ binary: 'firejail' }) },
  setup() {},
});

test('isolation accepts exactly the tiers of the loaded runtimes, and an unknown one fails naming the field', () => {
  const service = { command: 'true', isolation: 'firejail' };
  const error = configError({ services: { web: service } }, processOnly);
  assert.equal(error.code, 'TNM_ERR_CONFIG_INVALID');
  assert.match(error.message, /services\.web\.isolation: unknown tier 'firejail': expected one of process/);
  const fallback = configError({ services: { web: { command: 'true', fallback: ['process', 'jail2'] } } }, processOnly);
  assert.match(fallback.message, /services\.web\.fallback\.1: unknown tier 'jail2'/);

  const config = resolveConfig({ services: { web: service } }, source, {}, [...processOnly, firejail]);
  assert.equal(config.services.web!.isolation, 'firejail');
  // The config's own `plugins` count as loaded: step one finds them before the services are checked.
  const own = resolveConfig({ plugins: [firejail], services: { web: service } }, source, {}, processOnly);
  assert.equal(own.services.web!.isolation, 'firejail');
});

test('a first-party tier whose runtime is not loaded is named with its plugin', () => {
  const error = configError({ services: { web: { command: 'true', isolation: 'sandbox' } } }, processOnly);
  assert.match(error.message, /services\.web\.isolation: unknown tier 'sandbox'.*registered by the plugin 'runtime-sandbox', which is not loaded/);
});

test('plugin fields of services and settings: accepted with defaults when loaded, unknown (naming the owner) when not', () => {
  const raw = { settings: { firejail: { binary: '/usr/bin/firejail' } }, services: { web: { command: 'true', isolation: 'firejail', jail: {} } } };
  const config = resolveConfig(raw, source, {}, [...processOnly, firejail]) as unknown as {
    settings: { firejail: { binary: string } };
    services: { web: { jail: { profile: string } } };
  };
  assert.equal(config.settings.firejail.binary, '/usr/bin/firejail');
  assert.equal(config.services.web.jail.profile, 'default');
  // Bad values of a fragment field are reported with their path like core's.
  const bad = configError({ ...raw, services: { web: { command: 'true', isolation: 'firejail', jail: { profile: 3 } } } }, [...processOnly, firejail]);
  assert.match(bad.message, /services\.web\.jail\.profile: /);

  const missing = configError({ services: { web: { command: 'true', jail: {} } } }, processOnly);
  assert.match(missing.message, /services\.web: Unrecognized key: "jail"/);

  const network = configError({ settings: { network: { nat: true } }, services: { web: { command: 'true', network: 'private', egress: ['10.0.0.1'] } } }, processOnly);
  assert.match(network.message, /services\.web: Unrecognized keys: "network", "egress" \('network' is accepted by the plugin 'network', which is not loaded; 'egress' is accepted by the plugin 'network'/);
  assert.match(network.message, /settings: Unrecognized key: "network" \('network' is accepted by the plugin 'network', which is not loaded\)/);
  const storage = configError({ services: { web: { command: 'true', limits: { memory: '64MB', storage: '64MB' } } } }, processOnly);
  assert.match(storage.message, /services\.web\.limits: Unrecognized key: "storage" \('storage' is accepted by the plugin 'storage', which is not loaded\)/);
  const wasm = configError({ services: { web: { command: 'true', wasm: { timeout: '1s' } } } }, processOnly);
  assert.match(wasm.message, /'wasm' is accepted by the plugin 'runtime-wasm', which is not loaded/);
});

test('the first-party plugins together accept what the config always accepted (limits merged from cgroups and storage)', () => {
  const config = resolveConfig(
    { services: { web: { command: 'true', network: 'private', egress: ['10.0.0.0/8'], limits: { memory: '64MB', storage: '32MiB' } } } },
    source,
    {},
    FIRST_PARTY,
  );
  const web = config.services.web!;
  assert.equal(web.network, 'private');
  assert.deepEqual(web.egress, ['10.0.0.0/8']);
  assert.equal(web.limits?.storage, 32 * 1024 * 1024);
  assert.equal(web.limits?.storageWarn, 0.9);
  assert.equal(config.settings.network.range, '10.231.0.0/16');
});

test('two plugins declaring the same field or tier are refused at registration', () => {
  const twin = definePlugin({ name: 'twin', version: '1.0.0', kernel: '^1', serviceFields: { jail: z.string() }, setup() {} });
  assert.throws(() => resolveConfig({}, source, {}, [firejail, twin]), /TNM_ERR_PLUGIN_MANIFEST|declares the config field services\.<name>\.jail, which 'runtime-firejail' already declares/);
  const other = definePlugin({ name: 'other-jail', version: '1.0.0', kernel: '^1', tiers: [{ name: 'firejail' }], setup() {} });
  assert.throws(() => resolveConfig({}, source, {}, [firejail, other]), /registers the tier 'firejail', which 'runtime-firejail' already provides/);
  const notZod = { name: 'loose', version: '1.0.0', kernel: '^1', serviceFields: { x: 'string' }, setup() {} };
  assert.throws(() => resolveConfig({}, source, {}, [notZod]), /plugin 'loose' has an invalid manifest: serviceFields\.x: expected a zod schema/);
});

test("a plugin's options schema: ctx.config is the parsed options, and bad options stop start-up naming the field", async (t) => {
  let seen: unknown;
  const withOptions = definePlugin<{ greeting: string; times: number }>({
    name: 'greeter',
    version: '1.0.0',
    kernel: '^1',
    options: z.strictObject({ greeting: z.string().default('hi'), times: z.number().int().min(1).default(1) }) as z.ZodType<{ greeting: string; times: number }>,
    setup(ctx) {
      seen = ctx.config;
    },
  });
  const kernel = await createTestKernel({ plugins: [withOptions], config: { pluginOptions: { greeter: { times: 2 } } } });
  t.after(() => kernel.close());
  assert.deepEqual(seen, { greeting: 'hi', times: 2 });
  await assert.rejects(
    createTestKernel({ plugins: [withOptions], config: { pluginOptions: { greeter: { times: 0 } } } }),
    (error: Error) => /plugin 'greeter' failed in setup: greeter options: times: /.test(error.message),
  );
});

test('defineConfig types the first-party fields and refuses unknown ones (checked by tsc: each line below must be an error)', () => {
  const ok = defineConfig({ settings: { network: { nat: false } }, services: { web: { command: 'true', network: 'private', limits: { storage: '64MiB' } } } });
  assert.equal(ok.services?.web?.network, 'private');
  // @ts-expect-error a misspelt service field
  defineConfig({ services: { web: { command: 'true', idleTimout: '1m' } } });
  // @ts-expect-error a misspelt top-level key
  defineConfig({ servces: {} });
  // @ts-expect-error a value outside a first-party fragment's enum
  defineConfig({ services: { web: { command: 'true', network: 'privat' } } });
});
