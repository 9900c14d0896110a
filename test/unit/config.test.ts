import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findConfigFile, loadConfig, resolveConfig } from '../../core/config/loader.ts';
import { parseDuration, parseSize } from '../../core/config/units.ts';
import { interpolate } from '../../core/config/interpolate.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { ROOT } from '../helpers.ts';

const source = { path: '/srv/app/tenement.config.ts', dir: '/srv/app' };

function configError(raw: unknown): TenementError {
  try {
    resolveConfig(raw, source);
  } catch (error) {
    assert.ok(error instanceof TenementError);
    return error;
  }
  assert.fail('expected the config to be rejected');
}

test('durations and sizes accept human units', () => {
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('1.5h'), 5_400_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration(1200), 1200);
  assert.equal(parseDuration('5 minutes'), undefined);
  assert.equal(parseDuration(-1), undefined);
  assert.equal(parseSize('256MB'), 256_000_000);
  assert.equal(parseSize('1GiB'), 1024 ** 3);
  assert.equal(parseSize('512k'), 512 * 1024);
  assert.equal(parseSize(4096), 4096);
  assert.equal(parseSize('12 parsecs'), undefined);
});

test('defaults fill a minimal config and durations become milliseconds', () => {
  const config = resolveConfig({ services: { notes: { command: 'node app.js', idleTimeout: '2m' } } }, source);
  const notes = config.services.notes!;
  assert.equal(notes.idleTimeout, 120_000);
  assert.equal(notes.isolation, 'process');
  assert.equal(notes.restart, 'always');
  assert.equal(notes.keepData, true);
  assert.equal(notes.autoCreate, false);
  assert.equal(notes.cwd, '/srv/app');
  assert.deepEqual(notes.backoff, { base: 500, max: 30_000, resetAfter: 60_000 });
  assert.equal(config.settings.domain, 'localhost');
  assert.equal(config.settings.port, 8080);
  assert.equal(config.settings.dataDir, '/srv/app/tenement-data');
  assert.equal(config.settings.logBuffer, 1_000_000);
});

test('idleTimeout false or 0 switches hibernation off', () => {
  const config = resolveConfig({ services: { a: { command: 'x', idleTimeout: false }, b: { command: 'x', idleTimeout: 0 } } }, source);
  assert.equal(config.services.a!.idleTimeout, 0);
  assert.equal(config.services.b!.idleTimeout, 0);
});

test('every bad field is reported with its path and what was expected', () => {
  const error = configError({
    settings: { port: 'eighty', healthInterval: 'often' },
    services: {
      notes: { command: 'node app.js', idleTimeout: '5 minutes', restart: 'sometimes', unknownKey: 1 },
      Bad_Name: { command: 'x' },
    },
    instances: { ghost: ['a'], notes: ['Not Valid'] },
  });
  assert.equal(error.code, ErrorCodes.CONFIG_INVALID);
  const message = error.message;
  assert.match(message, /settings\.port: .*number/);
  assert.match(message, /settings\.healthInterval: expected a duration/);
  assert.match(message, /services\.notes\.idleTimeout: expected a duration like '500ms', '30s', '5m'.*"5 minutes"/);
  assert.match(message, /services\.notes\.restart: .*always.*on-failure.*never/);
  assert.match(message, /services\.notes: Unrecognized key.*unknownKey/);
  assert.match(message, /services\.Bad_Name: expected a DNS label/);
  assert.match(message, /instances\.ghost: unknown service 'ghost'/);
  assert.match(message, /instances\.notes\.0: expected a DNS label/);
});

test('unknown top-level keys are errors', () => {
  assert.match(configError({ servces: {} }).message, /Unrecognized key.*servces/);
});

test('unknown placeholders and shell operators in commands are caught at load', () => {
  const error = configError({
    services: {
      a: { command: 'node app.js --port {prot}', env: { URL: 'http://{host}' } },
      b: { command: 'node app.js | tee log' },
    },
  });
  assert.match(error.message, /services\.a\.command: unknown placeholder \{prot\}/);
  assert.match(error.message, /services\.a\.env\.URL: unknown placeholder \{host\}/);
  assert.match(error.message, /services\.b\.command: .*shell feature '\|'/);
});

test('an unknown tier is named in the error', () => {
  assert.match(configError({ services: { a: { command: 'x', isolation: 'docker' } } }).message, /services\.a\.isolation: .*process.*namespace/);
});

test('placeholders interpolate', () => {
  const out = interpolate('{service}:{id} on {port} in {instance_dir} under {data_dir} {other}', {
    service: 'notes',
    id: 'alice',
    port: '30001',
    instance_dir: '/d/instances/notes/alice',
    data_dir: '/d',
  });
  assert.equal(out, 'notes:alice on 30001 in /d/instances/notes/alice under /d {other}');
});

test('config files are found by --config, TENEMENT_CONFIG, or walking up from the cwd', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const nested = path.join(dir, 'a', 'b');
  mkdirSync(nested, { recursive: true });
  const sdk = path.join(ROOT, 'sdk', 'index.ts');
  writeFileSync(
    path.join(dir, 'tenement.config.ts'),
    `import { defineConfig } from ${JSON.stringify(sdk)};\nexport default defineConfig({ settings: { port: 9090 }, services: { web: { command: 'node app.js', idleTimeout: '1m' } } });\n`,
  );
  writeFileSync(path.join(dir, 'other.json'), JSON.stringify({ settings: { port: 9091 } }));
  writeFileSync(path.join(dir, 'esm.mjs'), 'export default { settings: { port: 9092 } };\n');

  assert.equal(findConfigFile(undefined, nested, {}), path.join(dir, 'tenement.config.ts'));
  assert.equal(findConfigFile(undefined, nested, { TENEMENT_CONFIG: path.join(dir, 'other.json') }), path.join(dir, 'other.json'));
  assert.equal(findConfigFile('../../esm.mjs', nested, {}), path.join(dir, 'esm.mjs'));
  assert.throws(() => findConfigFile('missing.ts', dir, {}), /does not exist/);
  assert.throws(() => findConfigFile(undefined, os.tmpdir() + '/', {}), (e: TenementError) => e.code === ErrorCodes.CONFIG_NOT_FOUND);

  const ts = await loadConfig({ cwd: nested });
  assert.equal(ts.settings.port, 9090);
  assert.equal(ts.services.web!.idleTimeout, 60_000);
  assert.equal(ts.source.dir, dir);
  assert.equal((await loadConfig({ file: path.join(dir, 'other.json') })).settings.port, 9091);
  assert.equal((await loadConfig({ file: path.join(dir, 'esm.mjs') })).settings.port, 9092);
  const overridden = await loadConfig({ file: path.join(dir, 'other.json'), overrides: { port: 7000, domain: 'Example.COM' } });
  assert.equal(overridden.settings.port, 7000);
  assert.equal(overridden.settings.domain, 'example.com');
});

test('a config module without a default export is a clear error', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'tenement.config.mjs');
  writeFileSync(file, 'export const config = {};\n');
  await assert.rejects(loadConfig({ file }), /no default export/);
});

test('settings.proxy.pin: busy by default, off on request, anything else named in the error', () => {
  const services = { notes: { command: 'node app.js' } };
  assert.equal(resolveConfig({ services }, source).settings.proxy.pin, 'busy');
  assert.equal(resolveConfig({ settings: { proxy: { pin: 'off' } }, services }, source).settings.proxy.pin, 'off');
  assert.equal(resolveConfig({ settings: { proxy: { workers: 2 } }, services }, source).settings.proxy.pin, 'busy', 'the default also when proxy is given without pin');
  for (const pin of ['always', true, 0, '__proto__']) {
    const error = configError({ settings: { proxy: { pin } }, services });
    assert.match(error.message, /settings\.proxy\.pin/);
    assert.match(error.message, /busy.*off|'busy' \| 'off'/);
  }
});
