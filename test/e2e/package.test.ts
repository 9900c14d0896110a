// The package as a user gets it, step by step as README's "Host your own app" says, in folders outside the repo:
// `npm pack`, `npm install` the tarball in an app folder, `npx ten init`, a function built with `npx ten build`,
// `ten serve`, two tenants and the function answering through the proxy, `ten ps` from another folder (the global
// install) finding the server. The repo is packed once for the whole file.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, request, ROOT, waitFor } from '../helpers.ts';
import { cleanEnv, instancePids, tempDir, type Result } from '../ten-cli.ts';

const NPM_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund'];
/** What a clean clone does not have (installed, built or written at run time), left out of the copy that is packed. */
const NOT_IN_A_CLONE = new Set(['.git', 'node_modules', 'dist', 'tenement-data', '.bench-tmp', path.join('test', 'artifacts'), path.join('plugins', 'dashboard', 'dist')]);

function run(program: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Result> {
  return new Promise((resolve) => {
    execFile(program, args, { cwd, env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Resolves with the exit code once `child` has exited (at once if it already has). */
function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

function ok(result: Result, what: string): Result {
  assert.equal(result.code, 0, `${what} failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`.slice(-6000));
  return result;
}

/** The tenant app of the README: one copy per tenant, greeting it by name. */
const SERVER_JS = `import { createServer } from 'node:http';

const tenant = process.env.TENEMENT_INSTANCE;
createServer((req, res) => res.end(\`Hello, \${tenant}!\\n\`)).listen(Number(process.env.PORT), process.env.HOST);
`;

/** The function of the README, a WebAssembly component built by `ten build`. */
const HELLO_TS = `import { queryParams, type Request, type Response } from 'tenement/sdk/wasm';

export function handle(req: Request): Response {
  return { status: 200, body: \`Hello from a function, \${queryParams(req).get('name') ?? 'world'}!\\n\` };
}
`;

describe('the package, as README "Host your own app" says, outside the repo', { timeout: 900_000 }, () => {
  let work = '';
  let tarball = '';
  let app = '';
  let elsewhere = '';
  let globalTen = '';
  let env: NodeJS.ProcessEnv = {};
  let serve: ChildProcess | null = null;
  let serveLog = '';

  before(async () => {
    work = tempDir('tenement-package-');
    app = path.join(work, 'notes');
    elsewhere = path.join(work, 'elsewhere');
    mkdirSync(app, { mode: 0o755 });
    mkdirSync(elsewhere, { mode: 0o755 });
    // A user's environment, with the context file (where `ten serve` records itself) in this test's folder.
    // (No npm_* variables either: `npm test` sets them for its scripts, a user's shell does not.)
    env = Object.fromEntries(
      Object.entries(cleanEnv({ XDG_CONFIG_HOME: path.join(work, 'config'), TENEMENT_LOG_LEVEL: 'warn' })).filter(([key]) => !/^(npm_|INIT_CWD$)/i.test(key)),
    );

    // Packed from a copy of the checkout (its node_modules linked): `npm pack` builds (prepack: dist/ and the
    // dashboard), and the checkout's own dashboard assets must not be rebuilt under tests running alongside.
    const checkout = path.join(work, 'checkout');
    cpSync(ROOT, checkout, { recursive: true, filter: (file) => !NOT_IN_A_CLONE.has(path.relative(ROOT, file)) });
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(checkout, 'node_modules'));
    ok(await run('npm', ['pack', '--pack-destination', work], checkout, env, 600_000), 'npm pack');
    const packed = readdirSync(work).filter((name) => /^tenement-.*\.tgz$/.test(name));
    assert.equal(packed.length, 1, `one tarball, got ${packed.join(', ')}`);
    tarball = path.join(work, packed[0]!);

    // better-sqlite3 installs a prebuilt binary (prebuild-install downloads one from GitHub), else compiles for a
    // minute. Neither GitHub nor nodejs.org is reachable here, so prebuild-install gets the repo's own binary (built
    // for this Node) as a local prebuild, through its rc file found from the install's cwd upwards.
    const sqlite = path.join(ROOT, 'node_modules', 'better-sqlite3');
    const { version } = JSON.parse(readFileSync(path.join(sqlite, 'package.json'), 'utf8')) as { version: string };
    const prebuilds = path.join(work, 'prebuilds');
    mkdirSync(prebuilds);
    const prebuild = path.join(prebuilds, `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`);
    ok(await run('tar', ['-czf', prebuild, 'build/Release/better_sqlite3.node'], sqlite, env, 60_000), 'tar of the better-sqlite3 binary');
    writeFileSync(path.join(work, '.prebuild-installrc'), `local-prebuilds=${prebuilds}\n`);
    const jcoVersion = (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', '@bytecodealliance', 'jco', 'package.json'), 'utf8')) as { version: string }).version;

    // The app: a package.json and its server.
    writeFileSync(path.join(app, 'package.json'), `${JSON.stringify({ name: 'notes', version: '1.0.0', private: true, type: 'module', main: 'server.js' }, null, 2)}\n`);
    writeFileSync(path.join(app, 'server.js'), SERVER_JS);
    const installed = await run('npm', ['install', ...NPM_FLAGS, tarball], app, env, 600_000);
    ok(installed, 'npm install <tarball>');
    // Every dependency the package pulls in supports the Node it runs on (light-my-request is pinned for that:
    // 6.7+ brings cookie@2, which declares node >= 22).
    assert.doesNotMatch(`${installed.stdout}\n${installed.stderr}`, /EBADENGINE/);
    // What `ten build` needs (a dev dependency of the app, as README says).
    ok(await run('npm', ['install', '--save-dev', ...NPM_FLAGS, `@bytecodealliance/jco@${jcoVersion}`], app, env, 600_000), 'npm install jco');

    const prefix = path.join(work, 'global');
    ok(await run('npm', ['install', '-g', '--prefix', prefix, ...NPM_FLAGS, tarball], elsewhere, env, 600_000), 'npm install -g');
    globalTen = path.join(prefix, 'bin', 'ten');
  });

  after(async () => {
    if (serve && serve.exitCode === null && serve.signalCode === null) {
      const exited = exitOf(serve);
      serve.kill('SIGTERM');
      const timer = setTimeout(() => serve!.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
    if (app) for (const pid of instancePids(path.join(app, 'tenement-data'))) process.kill(pid, 'SIGKILL');
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('the tarball ships compiled JavaScript, declarations and run-time assets, and no TypeScript sources', async () => {
    const listing = ok(await run('tar', ['-tzf', tarball], work, env, 60_000), 'tar -t').stdout.split('\n').filter(Boolean);
    for (const file of [
      'package/bin/ten.mjs',
      'package/dist/cli/main.js',
      'package/dist/sdk/index.js',
      'package/dist/sdk/index.d.ts',
      'package/dist/sdk/wasm.d.ts',
      'package/dist/sdk/runtime.d.ts',
      'package/dist/sdk/wit/handler.wit',
      'package/dist/core/wasm/worker.js',
      'package/dist/core/wasm/component/guest/prelude.js',
      'package/dist/core/wasm/component/preopen-root.mjs',
      'package/dist/runtimes/process/index.js',
    ]) {
      assert.ok(listing.includes(file), `${file} is in the package`);
    }
    const sources = listing.filter((file) => /\.(c|m)?ts$/.test(file) && !/\.d\.(c|m)?ts$/.test(file));
    assert.deepEqual(sources, [], 'no TypeScript to transpile at run time');
    assert.deepEqual(listing.filter((file) => /^package\/(test|bench|examples|node_modules)\//.test(file)), []);
  });

  test('the global install: ten --version runs from any folder, on the compiled package', async () => {
    const result = ok(await run(globalTen, ['--version'], elsewhere, env, 60_000), 'ten --version');
    // The package's version (what was installed), then the kernel's (what plugins' `kernel` ranges are matched against).
    const { version } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const { KERNEL_VERSION } = await import('../../core/version.ts');
    assert.equal(result.stdout, `ten ${version} (kernel ${KERNEL_VERSION})\n`);
    const installed = path.join(path.dirname(path.dirname(globalTen)), 'lib', 'node_modules', 'tenement');
    assert.ok(existsSync(path.join(installed, 'dist', 'cli', 'main.js')));
    assert.ok(!existsSync(path.join(installed, 'cli')), 'no sources next to the bin: it runs dist/');
  });

  test('npx ten init writes a config importing tenement/sdk, whose types resolve and catch a wrong field', async () => {
    const init = ok(await run('npx', ['ten', 'init'], app, env, 120_000), 'npx ten init');
    assert.match(init.stdout, /created tenement\.config\.ts: service notes runs `node server\.js`/);
    const config = readFileSync(path.join(app, 'tenement.config.ts'), 'utf8');
    assert.match(config, /^import \{ defineConfig \} from 'tenement\/sdk';$/m);
    ok(await run('npx', ['ten', 'config'], app, env, 120_000), 'npx ten config');

    // The types, as the user's editor or tsc sees them: strict, and without skipLibCheck, so every declaration the
    // package ships is checked too, with the types the install brought (the declarations name better-sqlite3's, so
    // @types/better-sqlite3 is a dependency of the package; as a dev dependency this failed with TS7016). Only the
    // app's own node_modules: no type roots from the repo.
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const check = (file: string) =>
      run(process.execPath, [tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', file], app, env, 180_000);
    ok(await check('tenement.config.ts'), 'tsc tenement.config.ts (no skipLibCheck)');
    writeFileSync(path.join(app, 'wrong.config.ts'), config.replace('port: 8080', "port: 'eighty'"));
    const wrong = await check('wrong.config.ts');
    rmSync(path.join(app, 'wrong.config.ts'));
    assert.notEqual(wrong.code, 0, 'a string port is a type error');
    assert.match(wrong.stdout, /wrong\.config\.ts\(\d+,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/);
  });

  test('npx ten build makes a function from hello.ts importing tenement/sdk/wasm', async () => {
    writeFileSync(path.join(app, 'hello.ts'), HELLO_TS);
    const built = ok(await run('npx', ['ten', 'build', 'hello.ts'], app, env, 300_000), 'npx ten build hello.ts');
    assert.match(built.stdout, /hello\.wasm/);
    assert.ok(readFileSync(path.join(app, 'hello.wasm')).subarray(0, 4).equals(Buffer.from('\0asm')));
  });

  test('ten serve: two tenants and the function answer through the proxy; ten ps from another folder finds it', async () => {
    // README's step: the function is one more service in tenement.config.ts.
    const configFile = path.join(app, 'tenement.config.ts');
    const config = readFileSync(configFile, 'utf8');
    const withFunction = config.replace('  services: {\n', "  services: {\n    hello: { isolation: 'wasm', module: './hello.wasm', autoCreate: true },\n");
    assert.notEqual(withFunction, config, 'the generated config has a services block to add to');
    writeFileSync(configFile, withFunction);

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    // node_modules/.bin/ten is what `npx ten` runs; started directly so SIGTERM reaches ten serve itself.
    serve = spawn(path.join(app, 'node_modules', '.bin', 'ten'), ['serve', '--port', String(port), '--listen', '127.0.0.1'], {
      cwd: app,
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    serve.stderr!.on('data', (chunk: Buffer) => {
      serveLog = (serveLog + chunk.toString('utf8')).slice(-100_000);
    });
    // What /health last answered (or why it did not), for the message if it never answers 200.
    let lastHealth = 'no answer yet';
    await waitFor(
      async () => {
        if (serve!.exitCode !== null) throw new Error(`ten serve exited ${serve!.exitCode}: ${serveLog}`);
        return request(url, '127.0.0.1', '/health', { timeoutMs: 2000 }).then(
          (reply) => ((lastHealth = `${reply.status} ${reply.body.slice(0, 300)}`), reply.status === 200),
          (error: unknown) => ((lastHealth = String(error)), false),
        );
      },
      'ten serve to answer /health',
      120_000,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}; /health last: ${lastHealth}; ten serve's stderr:\n${serveLog.slice(-5000)}`);
    });

    for (const tenant of ['alice', 'bob']) {
      const reply = await request(url, `${tenant}.notes.localhost`, '/', { timeoutMs: 60_000 });
      assert.equal(reply.status, 200, `${tenant}: ${reply.body}\n${serveLog}`);
      assert.equal(reply.body, `Hello, ${tenant}!\n`);
    }
    const fn = await request(url, 'alice.hello.localhost', '/?name=Ada', { timeoutMs: 60_000 });
    assert.equal(fn.status, 200, `${fn.body}\n${serveLog}`);
    assert.equal(fn.body, 'Hello from a function, Ada!\n');

    // From a folder with no config, the global `ten` reaches the server `ten serve` recorded as the current context.
    const ps = ok(await run(globalTen, ['ps'], elsewhere, env, 60_000), 'ten ps from elsewhere');
    assert.match(ps.stdout, /^notes:alice +running/m);
    assert.match(ps.stdout, /^notes:bob +running/m);

    const exited = exitOf(serve);
    serve.kill('SIGTERM');
    assert.equal(await exited, 0, `ten serve exits 0 on SIGTERM:\n${serveLog}`);
    await waitFor(() => instancePids(path.join(app, 'tenement-data')).length === 0, 'the tenants of ten serve to be gone', 30_000);
  });
});
