// The archive a fleet move carries (plugins/fleet/archive.ts): a folder round-trips (files, modes, links kept as
// links, sockets left out), the size bound holds, and a hostile archive (written by hand, as a node that had the
// fleet secret could) never writes outside the destination: no absolute or `..` path, no write through a link,
// no file before its folder, no name twice.
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Digest, pack, unpack, unpackFrom } from '../../plugins/fleet/archive.ts';

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tnm-archive-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** An archive of the given entries, as a hostile sender would write it. */
function handMade(file: string, entries: Array<{ header: Record<string, unknown>; body?: string }>): void {
  const parts: Buffer[] = [];
  for (const { header, body } of entries) {
    const json = Buffer.from(JSON.stringify(header));
    const length = Buffer.alloc(4);
    length.writeUInt32BE(json.length);
    parts.push(length, json, Buffer.from(body ?? ''));
  }
  writeFileSync(file, Buffer.concat(parts));
}

test('a folder round-trips: files, modes, nested folders, links kept as links', async (t) => {
  const dir = scratch(t);
  const data = path.join(dir, 'data');
  mkdirSync(path.join(data, 'a', 'b'), { recursive: true });
  writeFileSync(path.join(data, 'top.txt'), 'top', { mode: 0o640 });
  writeFileSync(path.join(data, 'a', 'b', 'deep.bin'), Buffer.alloc(3 << 20, 7));
  symlinkSync('/etc/passwd', path.join(data, 'link'));
  const packed = await pack([{ top: 'data', dir: data }, { top: 'images', dir: path.join(dir, 'missing') }], path.join(dir, 'archive'), 10 << 20);
  assert.equal(statSync(path.join(dir, 'archive')).size, packed.bytes);
  assert.equal(statSync(path.join(dir, 'archive')).mode & 0o777, 0o600);
  const out = path.join(dir, 'out');
  await unpack(path.join(dir, 'archive'), out, ['data', 'images']);
  assert.equal(readFileSync(path.join(out, 'data', 'top.txt'), 'utf8'), 'top');
  assert.equal(statSync(path.join(out, 'data', 'top.txt')).mode & 0o777, 0o640);
  assert.deepEqual(readFileSync(path.join(out, 'data', 'a', 'b', 'deep.bin')), Buffer.alloc(3 << 20, 7));
  assert.ok(lstatSync(path.join(out, 'data', 'link')).isSymbolicLink());
  assert.equal(readlinkSync(path.join(out, 'data', 'link')), '/etc/passwd');
  assert.equal(existsSync(path.join(out, 'images')), false);
});

test('over the size bound: a coded 413, and nothing half-written is used', async (t) => {
  const dir = scratch(t);
  const data = path.join(dir, 'data');
  mkdirSync(data);
  writeFileSync(path.join(data, 'big'), Buffer.alloc(64 << 10));
  await assert.rejects(pack([{ top: 'data', dir: data }], path.join(dir, 'archive'), 32 << 10), (error: Error & { code?: string }) => error.code === 'TNM_ERR_BODY_TOO_LARGE');
});

test('hostile archives never write outside the destination', async (t) => {
  const dir = scratch(t);
  const cases: Array<[string, Array<{ header: Record<string, unknown>; body?: string }>, RegExp]> = [
    ['absolute', [{ header: { p: '/tmp/evil', t: 'f', m: 0o644, s: 1 }, body: 'x' }], /not allowed/],
    ['dot-dot', [{ header: { p: 'data', t: 'd', m: 0o755, s: 0 } }, { header: { p: 'data/../../evil', t: 'f', m: 0o644, s: 1 }, body: 'x' }], /not allowed/],
    ['unknown top', [{ header: { p: 'etc', t: 'd', m: 0o755, s: 0 } }], /not allowed/],
    ['__proto__ top', [{ header: { p: '__proto__', t: 'd', m: 0o755, s: 0 } }], /not allowed/],
    ['file before its folder', [{ header: { p: 'data/x/y', t: 'f', m: 0o644, s: 1 }, body: 'x' }], /folder is not in the archive/],
    [
      'write through a link',
      [
        { header: { p: 'data', t: 'd', m: 0o755, s: 0 } },
        { header: { p: 'data/escape', t: 'l', m: 0o777, s: 0, l: dir } },
        { header: { p: 'data/escape/owned', t: 'f', m: 0o644, s: 1 }, body: 'x' },
      ],
      /folder is not in the archive/,
    ],
    [
      'a name twice (a link then a file)',
      [
        { header: { p: 'data', t: 'd', m: 0o755, s: 0 } },
        { header: { p: 'data/f', t: 'l', m: 0o777, s: 0, l: path.join(dir, 'victim') } },
        { header: { p: 'data/f', t: 'f', m: 0o644, s: 1 }, body: 'x' },
      ],
      /EEXIST|ELOOP/,
    ],
    ['truncated', [{ header: { p: 'data', t: 'd', m: 0o755, s: 0 } }, { header: { p: 'data/f', t: 'f', m: 0o644, s: 100 }, body: 'short' }], /ends inside/],
    ['set-id bits', [{ header: { p: 'data', t: 'd', m: 0o755, s: 0 } }, { header: { p: 'data/suid', t: 'f', m: 0o4755, s: 1 }, body: 'x' }], /^$/],
  ];
  for (const [name, entries, error] of cases) {
    const file = path.join(dir, `${name}.archive`);
    handMade(file, entries);
    const out = path.join(dir, `out-${cases.findIndex((c) => c[0] === name)}`);
    if (error.source === '^$') {
      await unpack(file, out, ['data']);
      assert.equal(statSync(path.join(out, 'data', 'suid')).mode & 0o7777, 0o755, 'set-id bits are dropped');
      continue;
    }
    await assert.rejects(unpack(file, out, ['data']), error, name);
  }
  assert.equal(existsSync('/tmp/evil'), false);
  assert.equal(existsSync(path.join(dir, 'owned')), false, 'nothing written through the link');
  assert.equal(existsSync(path.join(dir, 'victim')), false, 'nothing written at the link target');
  assert.equal(Object.getPrototypeOf({}), Object.prototype);
});

test('an archive split anywhere unpacks the same: records and file bytes straddling the chunks it arrives in', async (t) => {
  const dir = scratch(t);
  const pattern = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31) & 255));
  // Small files split a byte at a time (every head and length straddles chunks), a file over the MiB the target
  // writes at once split as a socket splits it.
  const cases: Array<{ files: Record<string, Buffer>; sizes: number[] }> = [
    { files: { 'sub/medium.bin': pattern(5000), empty: Buffer.alloc(0), small: Buffer.from('small') }, sizes: [1, 3, 4, 5, 7] },
    { files: { 'sub/big.bin': pattern((1 << 20) + 4099), small: Buffer.from('small') }, sizes: [64 << 10, (1 << 20) + 7] },
  ];
  for (const [n, { files, sizes }] of cases.entries()) {
    const data = path.join(dir, `data-${n}`);
    mkdirSync(path.join(data, 'sub'), { recursive: true });
    for (const [name, content] of Object.entries(files)) writeFileSync(path.join(data, name), content);
    const file = path.join(dir, `archive-${n}`);
    const packed = await pack([{ top: 'data', dir: data }], file, 10 << 20);
    const bytes = readFileSync(file);
    // The size and checksum both nodes compare: the same whatever the chunks.
    const whole = new Digest();
    whole.update(bytes);
    assert.deepEqual(whole.result(), packed);
    for (const size of sizes) {
      const out = path.join(dir, `out-${n}-${size}`);
      const chunks = function* (): Generator<Buffer> {
        for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
      };
      await unpackFrom(chunks(), out, ['data']);
      for (const [name, content] of Object.entries(files)) assert.deepEqual(readFileSync(path.join(out, 'data', name)), content, `${name} split every ${size} bytes`);
    }
    // Cut inside a length, inside a header, inside a file: refused.
    for (const cut of [2, 10, bytes.length - 3]) {
      await assert.rejects(unpackFrom([bytes.subarray(0, cut)], path.join(dir, `cut-${n}-${cut}`), ['data']), /ends inside/, `cut at ${cut}`);
    }
  }
});
