// A quick `ten` command loads only what it uses: the modules each one imports, recorded by a module load hook in
// a real `ten` child process. How long that takes is bench/cli.ts's business; this guards the lazy imports that
// keep it short (a heavy module back at the top of a command file fails here).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Command, Help } from 'commander';
import { COMMANDS } from '../../cli/command-table.ts';
import { ROOT } from '../helpers.ts';
import { MODULE_MARK, TRACE_MODULES_ARGS, loadedModuleLines } from '../module-trace.ts';

const TEN = path.join(ROOT, 'bin', 'ten.mjs');

/**
 * What a quick command must not load: the config schema and zod, the plugin loader and semver, the kernel, plugins,
 * runtimes, and the libraries only the server uses (HTTP framework, SQLite, logger, metrics, WASM, worker pools,
 * tracing; esbuild not: tsx runs the sources through it). Sources (.ts) or the compiled package (.js), whichever bin/ten.mjs runs.
 */
const HEAVY = [
  /\/node_modules\/(zod|semver|fastify|better-sqlite3|pino|prom-client|piscina|koffi|@bytecodealliance|@opentelemetry)\//,
  /\/core\/config\/(schema|loader)\.[jt]s$/,
  /\/core\/(plugin|kernel|store)\.[jt]s$/,
  /\/plugins\//,
  /\/runtimes\//,
];

/** Runs `ten args`; its exit code and the repository-relative paths of the files it loaded. */
function loadedBy(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; loaded: string[] }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('TENEMENT_')) env[key] = value;
  Object.assign(env, options.env);
  return new Promise((resolve) => {
    execFile(process.execPath, [...TRACE_MODULES_ARGS, TEN, ...args], { cwd: options.cwd ?? ROOT, env, timeout: 30_000 }, (error, stdout, stderr) => {
      const loaded = loadedModuleLines(stderr).map((line) => path.relative(ROOT, new URL(line.slice(MODULE_MARK.length).replace(/\?.*$/, '')).pathname));
      resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, loaded });
    });
  });
}

function assertLight(loaded: string[], what: string): void {
  const heavy = loaded.filter((file) => HEAVY.some((pattern) => pattern.test(`/${file}`)));
  assert.deepEqual(heavy, [], `${what} loaded modules it does not use`);
}

test('ten --help, ten --version and each command --help load neither the config schema, zod, the kernel nor any plugin', { timeout: 60_000 }, async () => {
  for (const args of [['--help'], ['--version'], ['ps', '--help'], ['config', '--help'], ['doctor', '--help'], ['microvm', 'prepare', '--help'], ['plugin', 'add', '--help']]) {
    const { code, stdout, loaded } = await loadedBy(args);
    assert.equal(code, 0, `ten ${args.join(' ')}`);
    assert.ok(stdout.length > 0, `ten ${args.join(' ')} printed nothing`);
    // The hook saw the CLI itself: an empty list would pass the check below for the wrong reason.
    assert.ok(loaded.some((file) => /^(dist\/)?cli\/main\.[jt]s$/.test(file)), `the load hook recorded ${loaded.join(', ') || 'nothing'}`);
    assertLight(loaded, `ten ${args.join(' ')}`);
  }
});

test('ten --help loads no command module: it lists cli/command-table.ts; ten ps --help loads only ps and its helpers', { timeout: 60_000 }, async () => {
  const help = await loadedBy(['--help']);
  assert.equal(help.code, 0);
  for (const name of ['serve', 'ps', 'spawn', 'context']) assert.match(help.stdout, new RegExp(`^  ${name} .*${COMMANDS.get(name)!.description.slice(0, 20).replace(/[{}()]/g, '.')}`, 'm'));
  assert.deepEqual(help.loaded.filter((file) => /cli\/commands\//.test(file)), [], 'ten --help loaded command modules');
  // A help flag before the name is the overview (commander's reading), with every command, not just that one.
  const overview = await loadedBy(['--help', 'ps']);
  assert.equal(overview.code, 0);
  for (const name of COMMANDS.keys()) assert.match(overview.stdout, new RegExp(`^  ${name}\\b`, 'm'), `ten --help ps lists ${name}`);
  const ps = await loadedBy(['ps', '--help']);
  assert.equal(ps.code, 0);
  const commands = ps.loaded.filter((file) => /cli\/commands\//.test(file)).map((file) => path.basename(file).replace(/\.[jt]s$/, ''));
  assert.deepEqual(commands.sort(), ['common', 'labels', 'ps', 'ps-run']);
});

test('each row of cli/command-table.ts matches the command its module registers (term and description)', async () => {
  const help = new Help();
  const seen = new Set<string>();
  for (const [name, entry] of COMMANDS) {
    const program = new Command('ten');
    (await entry.load())(program);
    const command = program.commands.find((c) => c.name() === name);
    assert.ok(command, `${name}: its module registers no command of that name`);
    assert.equal(entry.description, help.subcommandDescription(command), `${name}: description`);
    assert.equal(entry.term, help.subcommandTerm(command), `${name}: term`);
    for (const c of program.commands) seen.add(c.name());
  }
  // A command some module registers but the table does not list would be unreachable.
  assert.deepEqual([...seen].filter((name) => !COMMANDS.has(name)), []);
});

test('ten ps with --server and --token reads no config: it loads no config loader or zod', { timeout: 30_000 }, async () => {
  // Port 1 on loopback: nothing listens, so the request fails fast after the client was built.
  const { code, loaded } = await loadedBy(['ps', '--server', 'http://127.0.0.1:1', '--token', 'none']);
  assert.equal(code, 1);
  assert.ok(loaded.includes(path.join('cli', 'client.ts')));
  assertLight(loaded, 'ten ps --server --token');
});

test('ten ps in a folder with no config loads no config loader or zod (it goes to the current context)', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tenement-startup-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // An empty context folder: nothing to reach, so it fails after looking (and loads nothing heavy to find out).
  const { code, loaded } = await loadedBy(['ps'], { cwd: dir, env: { XDG_CONFIG_HOME: path.join(dir, 'xdg'), HOME: dir } });
  assert.equal(code, 1);
  assert.ok(loaded.some((file) => /cli\/client\.[jt]s$/.test(file)), `the load hook recorded ${loaded.join(', ') || 'nothing'}`);
  assertLight(loaded, 'ten ps (no config)');
});

test('ten ps loads no commander (cli/quick.ts), and next to a config it found reads the endpoint without zod', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tenement-startup-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // Port 1 on loopback: nothing listens, so it fails fast after reading the config and building the client.
  writeFileSync(path.join(dir, 'tenement.config.json'), JSON.stringify({ settings: { port: 1, dataDir: './data' }, services: {} }));
  const { code, loaded } = await loadedBy(['ps', '--service', 'web'], { cwd: dir, env: { XDG_CONFIG_HOME: path.join(dir, 'xdg'), HOME: dir } });
  assert.equal(code, 1);
  assert.ok(loaded.some((file) => /core\/config\/server-settings\.[jt]s$/.test(file)), `the load hook recorded ${loaded.join(', ') || 'nothing'}`);
  assertLight(loaded, 'ten ps (next to a config)');
  assert.deepEqual(loaded.filter((file) => file.includes('node_modules/commander/')), [], 'ten ps loaded commander');
  assert.deepEqual(loaded.filter((file) => /^(dist\/)?cli\/quick\.[jt]s$/.test(file)).length, 1);
});

test('ten ps next to a .ts config whose server recorded its context reaches that socket without importing the config', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tenement-startup-'));
  const xdg = path.join(dir, 'xdg');
  const socket = path.join(dir, 'data', 'api.sock');
  const config = path.join(dir, 'tenement.config.ts');
  mkdirSync(path.join(dir, 'data'));
  // The config would throw if imported: only the recorded context may answer.
  writeFileSync(config, "throw new Error('the config was imported');\n");
  writeFileSync(path.join(dir, 'data', 'admin.token'), 'recorded-token\n');
  // A stand-in server on the recorded socket: it answers the list and says which token it was sent.
  let sentToken = '';
  const server = createServer((req, res) => {
    sentToken = req.headers.authorization ?? '';
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ instances: [] }));
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  mkdirSync(path.join(xdg, 'tenement'), { recursive: true, mode: 0o700 });
  const context = { socket, server: null, tokenFile: path.join(dir, 'data', 'admin.token'), config, dataDir: path.join(dir, 'data'), updatedAt: new Date().toISOString() };
  writeFileSync(path.join(xdg, 'tenement', 'contexts.json'), JSON.stringify({ current: null, contexts: { app: context } }), { mode: 0o600 });
  const { code, stdout, loaded } = await loadedBy(['ps', '--json'], { cwd: dir, env: { XDG_CONFIG_HOME: xdg, HOME: dir } });
  assert.equal(code, 0, stdout);
  assert.deepEqual(JSON.parse(stdout), { instances: [] });
  assert.equal(sentToken, 'Bearer recorded-token');
  assert.deepEqual(loaded.filter((file) => file.endsWith('tenement.config.ts') || file.includes('node_modules/tsx/dist/') && file.includes('esbuild')), [], 'the config was loaded');
  assertLight(loaded, 'ten ps (next to a recorded .ts config)');
});

test('a command that needs the config still loads it: ten config --help does not, ten config does', { timeout: 30_000 }, async () => {
  const { loaded } = await loadedBy(['config', '--config', path.join(ROOT, 'examples', 'quickstart', 'tenement.config.ts')]);
  assert.ok(loaded.includes(path.join('core', 'config', 'loader.ts')), 'ten config ran without the config loader');
});
