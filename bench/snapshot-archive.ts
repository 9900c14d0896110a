/**
 * `npm run bench -- snapshot` (or `node --import tsx bench/snapshot-archive.ts`): named snapshots (plugins/snapshots,
 * docs/snapshots.md) of a Node app holding a 200,000-object table: how long `ten snapshot create` takes and how long
 * the process is frozen, the archive's size against the raw images + DATA_DIR, and the restore. Then the compressors
 * compared on that snapshot's raw tar, in the same run: zstd -1 (what the plugin uses), zstd -3, gzip -1 (the CLI),
 * and node:zlib's gzip level 1 and brotli quality 1. Needs CRIU (npm run fetch:criu), root, zstd; the app runs on a
 * Node without io_uring (Node 20).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { brotliCompressSync, brotliDecompressSync, constants, gunzipSync, gzipSync } from 'node:zlib';
import { bootKernel } from '../core/boot.ts';
import { unpack } from '../plugins/snapshots/archive.ts';
import { criuStatus } from '../plugins/snapshots/criu.ts';
import snapshots from '../plugins/snapshots/index.ts';
import processRuntime from '../runtimes/process/index.ts';
import router from '../plugins/router/index.ts';
import health from '../plugins/health/index.ts';
import hibernate from '../plugins/hibernate/index.ts';
import { staticAuth, ADMIN } from '../test/fixtures/static-auth.ts';
import { fmt, httpGet, isMain, makeTempDir, median, removeTempDir, table } from './lib.ts';

const APP = `import http from 'node:http';
import fs from 'node:fs';
const rows = Array.from({ length: 200000 }, (_, i) => ({ i, name: 'row-' + i, tags: ['a' + (i % 97), 'b' + (i % 89)] }));
fs.writeFileSync(process.env.DATA_DIR + '/db.json', JSON.stringify(rows.slice(0, 20000)));
let count = 0;
http.createServer((req, res) => res.end(req.url === '/health' ? 'ok' : String(++count + rows.length))).listen(Number(process.env.PORT), '127.0.0.1');
`;

const ROUNDS = Number(process.env.SNAPSHOT_ROUNDS ?? 5);

async function api(port: number, method: string, url: string, body?: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`http://127.0.0.1:${port}${url}`, {
    method,
    headers: { ...ADMIN, host: 'localhost', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await response.json()) as Record<string, unknown>;
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

function timed<T>(work: () => T): [T, number] {
  const started = performance.now();
  const result = work();
  return [result, performance.now() - started];
}

export async function runSnapshotArchiveBench(): Promise<string> {
  const status = await criuStatus();
  if (!status.usable) throw new Error(`CRIU is not usable: ${status.reason}`);
  const dir = makeTempDir('bench-snapshot-');
  chmodSync(dir, 0o755);
  writeFileSync(path.join(dir, 'app.mjs'), APP, { mode: 0o644 });
  const node = execFileSync('which', ['-a', 'node'], { encoding: 'utf8' }).split('\n').filter(Boolean).find((candidate) =>
    execFileSync(candidate, ['-e', "process.stdout.write(String(require('fs').readFileSync('/proc/self/maps','utf8').includes('io_uring')))"], { encoding: 'utf8' }) === 'false');
  if (!node) throw new Error('no Node without io_uring on PATH (Node 20): CRIU cannot checkpoint the app');
  const kernel = await bootKernel({
    plugins: [processRuntime, router, health, hibernate, staticAuth, snapshots],
    config: { services: { app: { command: `${node} ${path.join(dir, 'app.mjs')}`, health: '/health', idleTimeout: 0, startupTimeout: '30s', snapshots: { keep: 100 } } } },
  });
  try {
    const port = Number(new URL(kernel.url).port);
    await kernel.spawnInstance('app', 'a');
    const create: number[] = [];
    const frozen: number[] = [];
    const pack: number[] = [];
    const restore: number[] = [];
    const restoreSpawn: number[] = [];
    let last: Record<string, unknown> = {};
    for (let round = 0; round < ROUNDS; round++) {
      if ((await httpGet(port, 'a.app.localhost')).status !== 200) throw new Error('the app did not answer');
      const started = performance.now();
      last = await api(port, 'POST', '/api/instances/app/a/snapshots', { name: `r${round}` });
      create.push(performance.now() - started);
      frozen.push(Number(last.frozenMs));
      pack.push(Number(last.packMs));
      const restoring = performance.now();
      const restored = await api(port, 'POST', `/api/instances/app/a/snapshots/r${round}/restore`);
      if (restored.restored !== true) throw new Error(`restore fell back: ${String(restored.reason)}`);
      restore.push(performance.now() - restoring);
      restoreSpawn.push(Number(restored.restoreMs));
    }
    const rawBytes = Number(last.rawBytes);
    const bytes = Number(last.bytes);
    const lines = [
      `Named snapshots, medians of ${ROUNDS}: app with a 200,000-object table, DATA_DIR ${fmt(Number(last.dataBytes) / 1048576)} MiB`,
      table(
        ['create (API)', 'frozen', 'pack (zstd -1)', 'restore (API)', 'restore (spawn)', 'raw', 'archive', 'ratio'],
        [[`${fmt(median(create), 0)} ms`, `${fmt(median(frozen), 0)} ms`, `${fmt(median(pack), 0)} ms`, `${fmt(median(restore), 0)} ms`, `${fmt(median(restoreSpawn), 0)} ms`, `${fmt(rawBytes / 1048576, 1)} MiB`, `${fmt(bytes / 1048576, 1)} MiB`, `${fmt(rawBytes / bytes, 1)}x`]],
      ),
    ];

    // The compressors on that snapshot's raw tar.
    const work = path.join(dir, 'raw');
    mkdirSync(work);
    await unpack(path.join(kernel.config.settings.dataDir, '.snapshots', '_named', 'app', 'a', `r${ROUNDS - 1}`, 'snapshot.tar.zst'), work);
    const tar = path.join(dir, 'raw.tar');
    execFileSync('tar', ['-C', work, '-cf', tar, 'image', 'data']);
    const raw = readFileSync(tar);
    // The CLIs read and write files, as the plugin's tar does; node:zlib works on the buffer in memory.
    const packed = path.join(dir, 'packed');
    const sh = (command: string): Buffer => {
      execFileSync('sh', ['-c', command]);
      return readFileSync(packed);
    };
    const candidates: Array<[string, (b: Buffer) => Buffer, (b: Buffer) => unknown]> = [
      ['zstd -1 (chosen)', () => sh(`zstd -1 -q -c '${tar}' > '${packed}'`), () => execFileSync('sh', ['-c', `zstd -d -q -c '${packed}' > /dev/null`])],
      ['zstd -3', () => sh(`zstd -3 -q -c '${tar}' > '${packed}'`), () => execFileSync('sh', ['-c', `zstd -d -q -c '${packed}' > /dev/null`])],
      ['gzip -1', () => sh(`gzip -1 -c '${tar}' > '${packed}'`), () => execFileSync('sh', ['-c', `gzip -d -c '${packed}' > /dev/null`])],
      ['node:zlib gzip 1', (b) => gzipSync(b, { level: 1 }), (b) => gunzipSync(b as Buffer)],
      ['node:zlib brotli q1', (b) => brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: 1 } }), (b) => brotliDecompressSync(b as Buffer)],
    ];
    const rows: string[][] = [];
    for (const [name, compress, decompress] of candidates) {
      const packs: number[] = [];
      const unpacks: number[] = [];
      let size = 0;
      for (let i = 0; i < 3; i++) {
        const [packed, packMs] = timed(() => compress(raw));
        const [, unpackMs] = timed(() => decompress(packed));
        packs.push(packMs);
        unpacks.push(unpackMs);
        size = packed.length;
      }
      rows.push([name, `${fmt(size / 1048576, 1)} MiB`, `${fmt(raw.length / size, 1)}x`, `${fmt(median(packs), 0)} ms`, `${fmt(median(unpacks), 0)} ms`]);
    }
    lines.push(`\nCompressors on the same raw tar (${fmt(raw.length / 1048576, 1)} MiB), medians of 3`, table(['compressor', 'size', 'ratio', 'compress', 'decompress'], rows));
    rmSync(work, { recursive: true, force: true });
    return lines.join('\n');
  } finally {
    await kernel.close();
    removeTempDir(dir);
  }
}

if (isMain(import.meta.url)) process.stdout.write(`\n${await runSnapshotArchiveBench()}\n`);
