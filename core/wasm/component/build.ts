/**
 * TS/JS source -> WebAssembly component with `jco componentize` (QuickJS backend), run as a child process:
 * a build takes ~3 s and ~520 MB, and jco's wasm tools need a preload (preopen-root.mjs) we must not put in the
 * host process. Builds are serialised within a process and cached by the hash of everything that goes in.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, cp, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, TenementError } from '../../errors.ts';
import { unpinnedWhile } from '../../process/affinity.ts';
import type { BuildComponentOptions, BuildComponentResult } from './types.ts';

const here = dirname(fileURLToPath(import.meta.url));
/** Tenement's HTTP handler world, the default target. */
export const HANDLER_WIT = resolve(here, '../../../sdk/wit/handler.wit');
export const HANDLER_WORLD_NAME = 'handler';
const PRELUDE = join(here, 'guest/prelude.js');
const ENTRY_TEMPLATE = join(here, 'guest/entry.template.js');
const PRELOAD = join(here, 'preopen-root.mjs');
/** The SDK a handler imports from outside its own directory (`sdk/wasm.ts`): part of every build's hash. */
const SDK_SOURCES = [resolve(here, `../../../sdk/wasm${extname(fileURLToPath(import.meta.url))}`), resolve(here, '../../../sdk/wit/handler.d.ts')];
const JCO_FLAGS = ['--backend', 'quickjs', '--backend-qjs-disable-async', '--backend-qjs-stub-wasi'];
const SOURCE_EXTENSIONS = new Set(['.ts', '.mts', '.js', '.mjs', '.json']);
const MAX_HASHED_FILES = 5000;
const BUILD_TIMEOUT_MS = 180_000;
const MAX_CACHED_BUILDS = 64;

/** Where jco is installed; a clear error naming the package when it is not. */
function resolveJco(): { bin: string; version: string } {
  const require = createRequire(import.meta.url);
  try {
    // jco exports no package.json: its main is dist/api.js, so the package root is two levels up.
    const pkgPath = join(dirname(dirname(require.resolve('@bytecodealliance/jco'))), 'package.json');
    const pkg = require(pkgPath) as {
      version: string;
      bin: Record<string, string> | string;
    };
    const binRel = typeof pkg.bin === 'string' ? pkg.bin : (pkg.bin.jco ?? Object.values(pkg.bin)[0]);
    if (!binRel) throw new Error('no bin');
    return { bin: join(dirname(pkgPath), binRel), version: pkg.version };
  } catch {
    throw new TenementError(
      ErrorCodes.TIER_UNAVAILABLE,
      'building components needs jco, which is not installed: run `npm install --save-dev @bytecodealliance/jco@1.35`',
    );
  }
}

/** Source files that can end up in the bundle: the entry's directory tree, without node_modules and output. */
async function sourceFiles(dir: string, out: string[] = []): Promise<string[]> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (out.length >= MAX_HASHED_FILES) break;
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await sourceFiles(path, out);
    else if (entry.isFile() && SOURCE_EXTENSIONS.has(extname(entry.name))) out.push(path);
  }
  return out;
}

/**
 * Hash of the inputs: every source file in the entry's directory tree, the SDK, the WIT, the guest glue and
 * jco's version. A handler importing other files outside its directory should be built with a fresh cache
 * (TENEMENT_BUILD_CACHE) after changing them.
 */
async function buildKey(source: string, wit: string, world: string, jcoVersion: string): Promise<string> {
  const hash = createHash('sha256');
  hash.update(`jco ${jcoVersion}\0${JCO_FLAGS.join(' ')}\0${world}\0${source}\0`);
  const witFiles = (await stat(wit)).isDirectory() ? await witFilesIn(wit) : [wit];
  const files = [...new Set([...(await sourceFiles(dirname(source))), ...witFiles, ...SDK_SOURCES, PRELUDE, ENTRY_TEMPLATE])].sort();
  for (const file of files) {
    hash.update(`${file}\0`);
    hash.update(await readFile(file));
  }
  return hash.digest('hex');
}

async function witFilesIn(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.wit')) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

function cacheRoot(): string {
  const base = process.env.TENEMENT_BUILD_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'tenement');
  return join(base, 'components');
}

/** Keeps the newest builds only: each is ~1.7 MB and every edit of a source makes a new one. */
async function pruneCache(dir: string): Promise<void> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  const builds = await Promise.all(
    entries
      .filter((name) => name.endsWith('.wasm'))
      .map(async (name) => ({ path: join(dir, name), at: (await stat(join(dir, name)).catch(() => null))?.mtimeMs ?? 0 })),
  );
  builds.sort((a, b) => b.at - a.at);
  for (const old of builds.slice(MAX_CACHED_BUILDS)) await rm(old.path, { force: true });
}

/** One build at a time in this process: each jco build peaks at ~520 MB. */
let queue: Promise<unknown> = Promise.resolve();
function serialised<T>(work: () => Promise<T>): Promise<T> {
  const run = queue.then(work, work);
  queue = run.catch(() => undefined);
  return run;
}

/** Runs jco; resolves with its exit code and output (warnings included). */
function runJco(bin: string, args: string[], cwd: string): Promise<{ ok: boolean; why: string; output: string }> {
  return new Promise((resolvePromise, reject) => {
    // With the server's whole CPU mask, not a busy proxy's pin (core/process/affinity.ts).
    const child = unpinnedWhile(() =>
      spawn(process.execPath, [bin, ...args], {
        cwd,
        // The preload gives jco's own wasm tools (run on preview2-shim, which starts with no preopens) the host
        // file system; it is loaded in this build process only, never where guests run.
        env: { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${PRELOAD}`.trim() },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    // A build that runs away (it can grow to gigabytes on some init errors) is cut off.
    const timer = setTimeout(() => child.kill('SIGKILL'), BUILD_TIMEOUT_MS);
    // Before the streams: a spawn that fails (EMFILE) leaves them null and emits `error` on the next tick.
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ ok: code === 0, why: signal ?? `exit ${code}`, output });
    });
  });
}

/** jco adds `jco:node/*` imports for Node APIs (process, Buffer, node:*): a component the host cannot satisfy. */
function refuseNodeApis(source: string, output: string): void {
  if (!/Jco added generated WIT import/.test(output)) return;
  const apis = [...output.matchAll(/generated WIT import (\S+) to .*? because bundled source (?:uses|imports) ([^.\n]+)/g)];
  const what = apis.map((m) => `${m[2]} (${m[1]})`).join(', ') || 'a Node API';
  throw new TenementError(
    ErrorCodes.CONFIG_INVALID,
    `source: ${source} uses ${what}, which components do not have (no process, Buffer or node:* modules): ` +
      'use the web globals (console, Date, TextEncoder, crypto.getRandomValues) and sdk/wasm.ts instead',
  );
}

/**
 * The handler world gets a generated entry: the prelude (console, Date, Math.random, TextEncoder on host
 * imports), then the user's `handle`. Other worlds (e.g. plugin worlds) are built from the source as it is.
 */
async function entryFor(source: string, handlerWorld: boolean, workDir: string): Promise<string> {
  if (!handlerWorld) return source;
  const template = await readFile(ENTRY_TEMPLATE, 'utf8');
  const entry = template.replace('__PRELUDE__', PRELUDE).replace('__SOURCE__', source);
  // A .ts entry makes jco bundle (rolldown) the handler and whatever it imports into one module.
  const path = join(workDir, 'entry.ts');
  await writeFile(path, `// @ts-nocheck\n${entry}`);
  return path;
}

export async function buildComponent(options: BuildComponentOptions): Promise<BuildComponentResult> {
  const started = performance.now();
  const source = resolve(options.source);
  const out = resolve(options.out);
  const wit = resolve(options.wit ?? HANDLER_WIT);
  const world = options.world ?? HANDLER_WORLD_NAME;
  const handlerWorld = options.wit === undefined || wit === HANDLER_WIT;
  await stat(source).catch(() => {
    throw new TenementError(ErrorCodes.CONFIG_INVALID, `source: ${options.source} does not exist`);
  });
  const jco = resolveJco();
  const key = await buildKey(source, wit, world, jco.version);
  const cached = join(cacheRoot(), `${key}.wasm`);
  await mkdir(dirname(out), { recursive: true });

  const hit = await stat(cached).then(
    (s) => s.size > 0,
    () => false,
  );
  if (!hit) {
    await serialised(async () => {
      if (await stat(cached).then(() => true, () => false)) return; // built while we waited
      const workDir = await mkdtemp(join(tmpdir(), 'ten-build-'));
      try {
        const entry = await entryFor(source, handlerWorld, workDir);
        // Rolldown must leave Tenement's WIT imports alone, as jco does for wasi:*.
        const bundleConfig = join(workDir, 'rolldown.config.mjs');
        await writeFile(bundleConfig, 'export default { external: [/^tenement:/] };\n');
        const built = join(workDir, `${basename(out, '.wasm')}.wasm`);
        // jco edits the WIT it is given when the source uses a Node API (it adds jco:node/* imports): it gets a
        // copy, and such a build fails below instead of producing a component the host cannot satisfy.
        const witCopy = join(workDir, 'wit', (await stat(wit)).isDirectory() ? '' : basename(wit));
        await cp(wit, witCopy, { recursive: true });
        const args = ['componentize', entry, '--wit', witCopy, '--world-name', world, ...JCO_FLAGS, '-o', built];
        args.push('--bundle', '--bundle-config', bundleConfig);
        const run = await runJco(jco.bin, args, dirname(source));
        refuseNodeApis(options.source, run.output);
        if (!run.ok) throw new Error(`jco componentize failed (${run.why}):\n${run.output.trim()}`);
        await mkdir(dirname(cached), { recursive: true });
        const partial = `${cached}.${process.pid}.tmp`;
        await copyFile(built, partial);
        await rename(partial, cached);
        await pruneCache(dirname(cached));
      } finally {
        await rm(workDir, { recursive: true, force: true });
      }
    });
  }
  if (hit) {
    const now = new Date();
    await utimes(cached, now, now).catch(() => undefined); // recently used: pruned last
  }
  const partial = `${out}.${process.pid}.tmp`;
  await copyFile(cached, partial);
  await rename(partial, out);
  const bytes = (await stat(out)).size;
  return { out, bytes, ms: Math.round(performance.now() - started) };
}
