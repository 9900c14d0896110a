#!/usr/bin/env node
/**
 * The published package's build (`npm run build`, run by `prepack`): compiled JavaScript and declarations in
 * dist/, so an installed `ten` transpiles no TypeScript of ours at run time. A checkout runs the sources through
 * tsx and needs no build (bin/ten.mjs).
 *
 * tsc, not esbuild: tsc must run anyway for the declarations, and one tsc pass emits both (measured here: ~8.5 s
 * for JS + .d.ts against ~6 s for .d.ts alone, so esbuild for the JS would save ~2.5 s of a step run once per
 * pack); tsc also rewrites the sources' relative `.ts` imports to `.js` (rewriteRelativeImportExtensions), which
 * esbuild does only when bundling, and a bundle would move the files the code finds next to itself.
 * It writes to stderr only, so `npm pack --json` prints clean JSON.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
/** What the package ships, compiled; test/, bench/ and examples/ stay in the repo. */
const SOURCE_DIRS = ['core', 'cli', 'sdk', 'plugins', 'runtimes'];

/** Every file under dir, skipping dot entries and node_modules (a UI's own dependencies are not shipped). */
function* filesUnder(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* filesUnder(file);
    else if (entry.isFile()) yield file;
  }
}

const compiled = (file) => /\.(c|m)?ts$/.test(file) && !/\.d\.(c|m)?ts$/.test(file);

/**
 * A folder with its own tsconfig.json is a project of its own (a dashboard's browser UI, built by its own tool
 * into its plugin's folder): neither compiled nor shipped here; what its build writes is copied like any asset.
 */
function ownProjects() {
  const found = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const sub = path.join(dir, entry.name);
      if (existsSync(path.join(sub, 'tsconfig.json'))) found.push(sub);
      else walk(sub);
    }
  };
  for (const dir of SOURCE_DIRS) walk(path.join(root, dir));
  return found;
}
const skipped = ownProjects();
const inSkipped = (file) => skipped.some((dir) => file.startsWith(dir + path.sep));

/**
 * Parts built by a tool of their own first (`build:*` scripts, e.g. `build:dashboard`), so their output is current
 * when it is copied below. (`npm pack` runs `prepack` before `prepare`, so this build cannot rely on `prepare`.)
 */
const scripts = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).scripts ?? {};
for (const name of Object.keys(scripts).filter((script) => script.startsWith('build:'))) {
  const npm = process.env.npm_execpath;
  const part = npm
    ? spawnSync(process.execPath, [npm, 'run', '--silent', name], { cwd: root, stdio: ['ignore', 2, 2] })
    : spawnSync('npm', ['run', '--silent', name], { cwd: root, stdio: ['ignore', 2, 2] });
  if (part.status !== 0) {
    console.error(`build: npm run ${name} failed (${part.signal ?? `exit ${part.status}`})`);
    process.exit(1);
  }
}

rmSync(dist, { recursive: true, force: true });
const ts = createRequire(import.meta.url)('typescript');
const configFile = path.join(root, 'tsconfig.build.json');
const read = ts.readConfigFile(configFile, ts.sys.readFile);
if (read.error) fail([read.error]);
const config = ts.parseJsonConfigFileContent(read.config, ts.sys, root, undefined, configFile);
if (config.errors.length > 0) fail(config.errors);
const program = ts.createProgram({ rootNames: config.fileNames.filter((file) => !inSkipped(path.resolve(file))), options: config.options });
const emitted = program.emit();
const diagnostics = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics];
if (diagnostics.length > 0 || emitted.emitSkipped) fail(diagnostics);

function fail(diagnostics) {
  const host = { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' };
  console.error(ts.formatDiagnostics(diagnostics, host));
  console.error('build: tsc reported errors; dist/ is incomplete');
  process.exit(1);
}

// Whatever the code loads next to itself at run time (WIT files, guest glue, the wasm build's preload, JSON, a
// dashboard's built assets, hand-written declarations): every file tsc does not compile, copied as it is.
let assets = 0;
for (const dir of SOURCE_DIRS) {
  for (const file of filesUnder(path.join(root, dir))) {
    if (compiled(file) || inSkipped(file)) continue;
    const target = path.join(dist, path.relative(root, file));
    mkdirSync(path.dirname(target), { recursive: true });
    copyFileSync(file, target);
    assets++;
  }
}

// tsc keeps the sources' `.ts` specifiers in declarations; a consumer resolves `.js` ones to the .d.ts next to them
// with any moduleResolution and without allowImportingTsExtensions.
let declarations = 0;
const RELATIVE_TS = /((?:from|import)\s*\(?\s*['"])(\.{1,2}\/[^'"]+?)\.(m|c)?ts(['"])/g;
for (const file of filesUnder(dist)) {
  if (!file.endsWith('.d.ts')) continue;
  const text = readFileSync(file, 'utf8');
  const rewritten = text.replace(RELATIVE_TS, (_, head, stem, kind, quote) =>
    stem.endsWith('.d') ? `${head}${stem}.${kind ?? ''}ts${quote}` : `${head}${stem}.${kind ?? ''}js${quote}`,
  );
  if (rewritten !== text) writeFileSync(file, rewritten);
  declarations++;
}
// tsc 5.9 leaves an `import('./x.ts')` inside an object literal's method as it is (rewriteRelativeImportExtensions
// misses it): the compiled package would then import a file it does not ship. Such a specifier fails the build.
const leftovers = [];
for (const file of filesUnder(dist)) {
  if (!/\.(m|c)?js$/.test(file)) continue;
  for (const match of readFileSync(file, 'utf8').matchAll(RELATIVE_TS)) leftovers.push(`${path.relative(root, file)}: ${match[0]}`);
}
if (leftovers.length > 0) {
  console.error(`build: compiled files still import .ts sources (move the import out of the object literal's method):\n  ${leftovers.join('\n  ')}`);
  process.exit(1);
}
// The emitted code shrunk for the memory it holds at run time: comments and whitespace out, zod bundled
// (scripts/build-shrink.mjs, issue 17's idle footprint); then the quick commands bundled into dist/cli/main.js
// and, as CommonJS, dist/cli/quick.cjs.
// TENEMENT_BUILD_SHRINK=0 leaves dist/ as tsc wrote it, to read it.
if (process.env.TENEMENT_BUILD_SHRINK !== '0') {
  const { shrink } = await import('./build-shrink.mjs');
  const js = { '.ts': '.js', '.mts': '.mjs', '.cts': '.cjs' };
  const emittedJs = program
    .getRootFileNames()
    .map((file) => path.resolve(file))
    .filter(compiled)
    .map((file) => path.join(dist, path.relative(root, file)).replace(/\.(m|c)?ts$/, (ext) => js[ext]))
    .filter((file) => existsSync(file));
  const shrunk = await shrink({ root, dist, emitted: emittedJs });
  const kb = (bytes) => `${Math.round(bytes / 1024)} KB`;
  console.error(`build: ${emittedJs.length} compiled files shrunk from ${kb(shrunk.before)} to ${kb(shrunk.after)}; zod bundled into dist/vendor/zod.js (${kb(shrunk.zod)})`);
  // The quick commands' modules in one file, dist/cli/main.js (scripts/build-quick.mjs, issue 17's start-up).
  const { bundleQuick } = await import('./build-quick.mjs');
  const quick = await bundleQuick({ root, dist });
  console.error(`build: dist/cli/main.js bundles the ${quick.modules} modules of the quick commands (${kb(quick.bytes)}), dist/cli/quick.cjs ${quick.cjsModules} as CommonJS for bin/ten.cjs (${kb(quick.cjsBytes)})`);
}
console.error(`build: dist/ has ${declarations} declaration files and ${assets} assets copied from ${SOURCE_DIRS.join(', ')}`);
