// The compiled package's quick bundle (scripts/build-quick.mjs): dist/cli/main.js replaced by one file holding the
// quick commands' modules. Built here on a small dist/ of cli/ and core/ (each source transpiled on its own, as
// tsc emits them), then run as real `ten` processes: `ten ps` loads nothing of ours but the bundle and
// core/errors.js, and an error reaches the one-line report with its code from the bundle's copy of cli/client.ts
// (the quick `ten ps`) and from the command modules' copy (commander's `ten spawn`) alike. The package's bin,
// bin/ten.cjs, runs the same quick commands from the CommonJS bundle dist/cli/quick.cjs and loads no ES module of
// ours for them; its errors keep their codes whichever copy of core/errors made them.
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
const CJS_MARK = 'TEN_CJS_LOADED ';

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
  // The config loader (an ES module the quick path imports for a config zod must read) needs the plugins' schemas.
  compileTree('plugins');
  compileTree('runtimes');
  copyFileSync(path.join(ROOT, 'package.json'), path.join(work, 'package.json'));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(work, 'node_modules'));
  const { bundleQuick } = (await import(pathToFileURL(path.join(ROOT, 'scripts', 'build-quick.mjs')).href)) as {
    bundleQuick(options: { root: string; dist: string }): Promise<{ modules: number; bytes: number; cjsModules: number; cjsBytes: number }>;
  };
  const built = await bundleQuick({ root: work, dist });
  assert.ok(built.modules >= 10, `the bundle inlines ${built.modules} modules`);
  assert.ok(built.cjsModules >= 10, `the CommonJS bundle inlines ${built.cjsModules} modules`);
  // The package's bin beside that dist/, with no cli/main.ts next to it: an installed package.
  mkdirSync(path.join(work, 'bin'));
  copyFileSync(path.join(ROOT, 'bin', 'ten.cjs'), path.join(work, 'bin', 'ten.cjs'));
  // What CommonJS loaded (require.cache), written at exit: the ES module trace does not see require().
  writeFileSync(path.join(work, 'cjs-trace.cjs'), `process.on('exit', () => process.stderr.write(${JSON.stringify(CJS_MARK)} + JSON.stringify(Object.keys(require.cache)) + '\\n'));\n`);
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

interface TenRun {
  code: number;
  stdout: string;
  stderr: string;
  /** dist/-relative files of ours loaded as ES modules. */
  loaded: string[];
  /** work-relative files of ours loaded by require(). */
  required: string[];
}

/** `node dist/cli/main.js args` in a folder of its own; exit code, output and the files of ours it loaded. */
function ten(args: string[], script = path.join(dist, 'cli', 'main.js')): Promise<TenRun> {
  const cwd = mkdtempSync(path.join(work, 'cwd-'));
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: cwd, XDG_CONFIG_HOME: path.join(cwd, 'xdg'), NO_COLOR: '1' };
  const traceArgs = [...TRACE_MODULES_ARGS, '--require', path.join(work, 'cjs-trace.cjs')];
  return new Promise((resolve) => {
    execFile(process.execPath, [...traceArgs, script, ...args], { cwd, env, timeout: 30_000 }, (error, stdout, stderr) => {
      const loaded = loadedModuleLines(stderr)
        .map((line) => new URL(line.slice(MODULE_MARK.length)).pathname)
        .filter((file) => file.startsWith(dist))
        .map((file) => path.relative(dist, file));
      const cjsLine = stderr.split('\n').find((line) => line.startsWith(CJS_MARK));
      const required = (cjsLine ? (JSON.parse(cjsLine.slice(CJS_MARK.length)) as string[]) : [])
        .filter((file) => file.startsWith(work + path.sep) && !file.endsWith('cjs-trace.cjs'))
        .map((file) => path.relative(work, file));
      const code = error ? Number((error as { code?: unknown }).code ?? 1) : 0;
      const rest = stderr.split('\n').filter((line) => !line.startsWith(MODULE_MARK) && !line.startsWith(CJS_MARK));
      resolve({ code, stdout, stderr: rest.join('\n'), loaded, required });
    });
  });
}

/** The package's bin, bin/ten.cjs, as an installed `ten` runs it. */
const tenBin = (args: string[]): Promise<TenRun> => ten(args, path.join(work, 'bin', 'ten.cjs'));

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

test('the bin (bin/ten.cjs) runs --help, --version and ten ps from the CommonJS bundle: no ES module of ours', async (t) => {
  const help = await tenBin(['--help']);
  assert.equal(help.code, 0, help.stderr);
  // Byte for byte what the ES module path prints.
  assert.equal(help.stdout, (await ten(['--help'])).stdout);
  assert.deepEqual(help.loaded, []);
  assert.deepEqual(help.required.sort(), [path.join('bin', 'ten.cjs'), path.join('dist', 'cli', 'quick.cjs')]);
  const version = await tenBin(['--version']);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout, (await ten(['--version'])).stdout);
  assert.deepEqual(version.loaded, []);
  const server = await fakeServer(200, { instances: [{ key: 'notes:alice', state: 'running', health: 'healthy', port: 4100, uptimeSeconds: 5, idleSeconds: 1, memoryBytes: 1024 }] });
  t.after(server.close);
  const ps = await tenBin(['ps', '--server', server.url, '--token', 't']);
  assert.equal(ps.code, 0, ps.stderr);
  assert.match(ps.stdout, /^notes:alice +running/m);
  assert.deepEqual(ps.loaded, []);
  assert.ok(ps.required.includes(path.join('dist', 'cli', 'quick.cjs')), `ps required ${ps.required.join(', ')}`);
});

test('the bin leaves everything else to the ES module main.js: commands, ps with a flag it does not read, unknown commands', async () => {
  const spawnHelp = await tenBin(['spawn', '--help']);
  assert.equal(spawnHelp.code, 0, spawnHelp.stderr);
  assert.match(spawnHelp.stdout, /^Usage: ten spawn \[options\] <service:id>/);
  assert.ok(spawnHelp.loaded.includes(path.join('cli', 'main.js')), `spawn --help loaded ${spawnHelp.loaded.join(', ')}`);
  assert.ok(!spawnHelp.required.includes(path.join('dist', 'cli', 'quick.cjs')), 'quick.cjs is not even required for a command it does not run');
  // `ten ps` with an unknown flag: the quick door declines, commander reports it (one line, exit 1).
  const bogus = await tenBin(['ps', '--bogus']);
  assert.equal(bogus.code, 1);
  assert.match(bogus.stderr, /^ten: unknown option '--bogus'/m);
  assert.ok(bogus.loaded.includes(path.join('cli', 'main.js')));
  const unknown = await tenBin(['nosuchcommand']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^ten: unknown command 'nosuchcommand'/m);
});

test("the bin's errors keep their codes: CliError and TenementError of the bundle, TenementError of the ES module loader", async (t) => {
  const server = await fakeServer(401, { error: { code: 'TNM_ERR_UNAUTHORIZED', message: 'invalid token' } });
  t.after(server.close);
  const denied = await tenBin(['ps', '--server', server.url, '--token', 'bad']);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /^ten: TNM_ERR_UNAUTHORIZED: invalid token \(token from --token\)$/m);
  assert.deepEqual(denied.loaded, []);
  // core/config/find.ts is inlined: its TenementError is the bundle's copy.
  const missing = await tenBin(['ps', '--config', path.join(work, 'no-such.config.json')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^ten: TNM_ERR_CONFIG_NOT_FOUND: config file .*no-such\.config\.json does not exist$/m);
  assert.deepEqual(missing.loaded, []);
  // A config zod must read: the loader is an ES module with its own core/errors.js, whose error the bin still
  // reports with its code (hostile input: a config that is not one).
  const bad = path.join(work, 'bad.config.json');
  writeFileSync(bad, JSON.stringify({ settings: { port: 'not a port' }, services: 42 }));
  const invalid = await tenBin(['ps', '--config', bad, '--server', server.url]);
  assert.equal(invalid.code, 1);
  assert.match(invalid.stderr, /^ten: TNM_ERR_CONFIG_INVALID: invalid config/m);
  assert.ok(invalid.loaded.includes(path.join('core', 'errors.js')), `the ES module copy of errors ran: ${invalid.loaded.join(', ')}`);
  const garbage = path.join(work, 'garbage.config.json');
  writeFileSync(garbage, '{ not json');
  const unreadable = await tenBin(['ps', '--config', garbage]);
  assert.equal(unreadable.code, 1);
  assert.match(unreadable.stderr, /^ten: TNM_ERR_CONFIG_LOAD: /m);
});
