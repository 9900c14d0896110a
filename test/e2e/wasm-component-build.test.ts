// TypeScript handlers as WebAssembly components, their build: `jco componentize` (QuickJS) makes a component of the
// handler world, prepared once per hash; `ten build` does it from the command line; and the tenant-data imports'
// host side. Builds are cached by source hash (~/.cache/tenement/components), so only a first run pays ~5 s per
// component.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { prepareComponent, type ComponentArtifact } from '../../core/wasm/component/index.ts';
import { MAX_FILE_BYTES, tenantDataImports } from '../../core/wasm/component/tenant-data.ts';
import { ROOT } from '../helpers.ts';
import { HELLO, HELLO_DIR, buildComponents, encoder, jcoMissing, work } from './wasm-component-fixture.ts';

const skip = jcoMissing();

describe('wasm components (TypeScript handlers)', { skip, timeout: 300_000 }, () => {
  const cacheDir = path.join(work, 'artifacts');
  let hello: ComponentArtifact;

  before(async () => {
    await buildComponents();
    hello = await prepareComponent(HELLO, { cacheDir, memoryPages: 1024 });
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  test('builds a TS handler into a component of the handler world, transpiled once per hash', async () => {
    assert.equal(hello.world, 'tenement:http/handler');
    assert.deepEqual(hello.exports, ['handle']);
    assert.ok(existsSync(new URL(hello.jsPath)), 'the transpiled glue is on disk');
    assert.ok(Object.keys(hello.modules).length > 0);
    assert.ok(Object.values(hello.modules).every((m) => m instanceof WebAssembly.Module));
    // Same bytes, same artifact dir, no second transpile.
    const again = await prepareComponent(HELLO, { cacheDir, memoryPages: 1024 });
    assert.equal(again.jsPath, hello.jsPath);
    assert.equal(again.hash, hello.hash);
    // The artifact crosses to workers by structured clone.
    const cloned = structuredClone(hello);
    assert.equal(cloned.jsPath, hello.jsPath);
    assert.ok(Object.values(cloned.modules).every((m) => m instanceof WebAssembly.Module));
  });

  test('`ten build` writes the component and says so; a missing source is a one-line error', () => {
    const out = path.join(work, 'cli', 'hello.wasm');
    const printed = execFileSync(process.execPath, [path.join(ROOT, 'bin', 'ten.mjs'), 'build', path.join(HELLO_DIR, 'hello.ts'), '-o', out], { encoding: 'utf8' });
    assert.match(printed, /^built .*hello\.wasm \(1\.\d MB\) in /);
    const bytes = readFileSync(out);
    assert.deepEqual([...bytes.subarray(0, 8)], [0, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00], 'a component (layer 1)');

    const missing = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'ten.mjs'), 'build', path.join(work, 'nope.ts')], { encoding: 'utf8' });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /TNM_ERR_CONFIG_INVALID: source: .*nope\.ts does not exist/);
  });

  test('tenant-data host side: atomic writes, names, remove, size cap', () => {
    const dir = path.join(work, 'host-side');
    const data = tenantDataImports(dir);
    assert.deepEqual(data.names(), { tag: 'ok', val: [] }, 'a missing dir is empty, not an error');
    assert.deepEqual(data.write('a.txt', encoder.encode('one')), { tag: 'ok', val: undefined });
    assert.deepEqual(data.write('b-2_x.json', encoder.encode('{}')), { tag: 'ok', val: undefined });
    writeFileSync(path.join(dir, '.dotfile'), 'not listed');
    assert.deepEqual(data.names(), { tag: 'ok', val: ['a.txt', 'b-2_x.json'] });
    assert.deepEqual(data.read('missing'), { tag: 'ok', val: undefined });
    assert.deepEqual(data.remove('a.txt'), { tag: 'ok', val: true });
    assert.deepEqual(data.remove('a.txt'), { tag: 'ok', val: false });
    const big = data.write('big', new Uint8Array(MAX_FILE_BYTES + 1));
    assert.equal(big.tag, 'err');
    assert.ok(!existsSync(path.join(dir, 'big')));
    assert.deepEqual(readdirSync(dir).sort(), ['.dotfile', 'b-2_x.json'], 'no temporary files left behind');
  });
});
