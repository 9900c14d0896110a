// The compiled package's quick bundle (scripts/build-quick.mjs): dist/cli/main.js replaced by one file holding the
// quick commands' modules. Built here on a small dist/ of cli/ and core/ (each source transpiled on its own, as
// tsc emits them), then run as real `ten` processes: `ten ps` loads nothing of ours but the bundle and
// core/errors.js, and an error reaches the one-line report with its code from the bundle's copy of cli/client.ts
// (the quick `ten ps`) and from the command modules' copy (commander's `ten spawn`) alike.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { transformSync } from 'esbuild';
import { ROOT } from '../helpers.ts';
import { MODULE_MARK, TRACE_MODULES_ARGS, loadedModuleLines } from '../module-trace.ts';

let work = '';
let dist = '';

/** Every .ts source under `dir` (declarations excluded), compiled to dist/ with its relative `.ts` imports as `.js`. */
function compileTree(dir: string): void {
  for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const relative = path.join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== 'node_modules' && !entry.name.startsWith('.')) compileTree(relative);
    if (!entry.isFile() || !entry.name.endsWith('.ts') || entry.name.endsWith('.d.ts')) continue;
    const source = readFileSync(path.join(ROOT, relative), 'utf8');
    const { code } = transformSync(source, { loader: 'ts', format: 'esm', target: 'node20', sourcefile: relative });
    const target = path.join(dist, relative.replace(/\.ts$/, '.js'));
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, code.replace(/((?:from|import)\s*\(?\s*['"])(\.{1,2}\/[^'"]+?)\.ts(['"])/g, '$1$2.js$3'));
  }
}

before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'tenement-cli-bundle-'));
  dist = path.join(work, 'dist');
  compileTree('cli');
  compileTree('core');
  copyFileSync(path.join(ROOT, 'package.json'), path.join(work, 'package.json'));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(work, 'node_modules'));
  const { bundleQuick } = (await import(pathToFileURL(path.join(ROOT, 'scripts', 'build-quick.mjs')).href)) as {
    bundleQuick(options: { root: string; dist: string }): Promise<{ modules: number; bytes: number }>;
  };
  const built = await bundleQuick({ root: work, dist });
  assert.ok(built.modules >= 10, `the bundle inlines ${built.modules} modules`);
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** `node dist/cli/main.js args` in a folder of its own; exit code, output and the files of ours it loaded. */
function ten(args: string[]): Promise<{ code: number; stdout: string; stderr: string; loaded: string[] }> {
  const cwd = mkdtempSync(path.join(work, 'cwd-'));
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: cwd, XDG_CONFIG_HOME: path.join(cwd, 'xdg'), NO_COLOR: '1' };
  return new Promise((resolve) => {
    execFile(process.execPath, [...TRACE_MODULES_ARGS, path.join(dist, 'cli', 'main.js'), ...args], { cwd, env, timeout: 30_000 }, (error, stdout, stderr) => {
      const loaded = loadedModuleLines(stderr)
        .map((line) => new URL(line.slice(MODULE_MARK.length)).pathname)
        .filter((file) => file.startsWith(dist))
        .map((file) => path.relative(dist, file));
      const code = error ? Number((error as { code?: unknown }).code ?? 1) : 0;
      resolve({ code, stdout, stderr: stderr.split('\n').filter((line) => !line.startsWith(MODULE_MARK)).join('\n'), loaded });
    });
  });
}

/** A stand-in management API answering every request with `status` and `body`. */
async function fakeServer(status: number, body: unknown): Promise<{ url: string; close: () => void }> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

test('ten --help and ten --version run from the bundle (and core/errors.js, kept one copy for instanceof)', async () => {
  const help = await ten(['--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: ten \[options\] \[command\]/);
  assert.deepEqual(help.loaded.sort(), [path.join('cli', 'main.js'), path.join('core', 'errors.js')]);
  const version = await ten(['--version']);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^ten \d+\.\d+\.\d+\S* \(kernel /);
});

test('ten ps loads only the bundle and core/errors.js of ours, and prints what the server answered', async (t) => {
  const server = await fakeServer(200, { instances: [{ key: 'notes:alice', state: 'running', health: 'healthy', port: 4100, uptimeSeconds: 5, idleSeconds: 1, memoryBytes: 1024 }] });
  t.after(server.close);
  const ps = await ten(['ps', '--server', server.url, '--token', 't']);
  assert.equal(ps.code, 0, ps.stderr);
  assert.match(ps.stdout, /^notes:alice +running/m);
  assert.deepEqual(ps.loaded.sort(), [path.join('cli', 'main.js'), path.join('core', 'errors.js')]);
});

test("an error keeps its code from the bundle's client (quick ten ps) and from the command modules' client (ten spawn)", async (t) => {
  const server = await fakeServer(401, { error: { code: 'TNM_ERR_UNAUTHORIZED', message: 'invalid token' } });
  t.after(server.close);
  const ps = await ten(['ps', '--server', server.url, '--token', 'bad']);
  assert.equal(ps.code, 1);
  assert.match(ps.stderr, /^ten: TNM_ERR_UNAUTHORIZED: invalid token \(token from --token\)$/m);
  // commander's path: the command module and its cli/client.js are separate files, a second copy of CliError.
  const spawned = await ten(['spawn', 'notes:alice', '--server', server.url, '--token', 'bad']);
  assert.ok(spawned.loaded.includes(path.join('cli', 'client.js')), `spawn loaded ${spawned.loaded.join(', ')}`);
  assert.equal(spawned.code, 1);
  assert.match(spawned.stderr, /^ten: TNM_ERR_UNAUTHORIZED: invalid token \(token from --token\)$/m);
});

test('a server that answers garbage is a one-line error, not a hang or a crash', async (t) => {
  const garbage = createServer((req, res) => res.socket!.end('NOT HTTP AT ALL\r\n\r\n'));
  await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', resolve));
  t.after(() => garbage.close());
  const ps = await ten(['ps', '--server', `http://127.0.0.1:${(garbage.address() as AddressInfo).port}`, '--token', 't']);
  assert.equal(ps.code, 1);
  assert.match(ps.stderr, /^ten: GET \/api\/instances: http:\/\/127\.0\.0\.1:\d+ did not answer in HTTP we can read: not an HTTP\/1\.x status line/m);
});
