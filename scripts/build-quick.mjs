/**
 * The compiled package's quick commands from one file (issue 17: `ten ps` and `ten --help` within 1.3x `node -e ''`).
 * dist/cli/main.js, as tsc wrote it, is replaced by an esbuild bundle of itself with the modules a quick command
 * runs (`ten --help`, `--version`, a plain `ten ps`: cli/quick.ts) inlined, so `ten ps` resolves and loads one
 * file of ours and core/errors.js instead of sixteen (bench/cli.ts: docs/install.md "Start-up").
 *
 * Everything else stays a separate file imported from the bundle as before: every command module commander
 * loads, the config loader and zod, `ten serve`. The bundle sits where main.js was, so a relative import it keeps
 * points at the same file. Two rules keep two copies of a module from disagreeing:
 * - core/errors.ts stays out (TenementError is checked with instanceof everywhere); cli/client.ts's CliError, in
 *   the bundle and in the command modules, is recognised across copies by a brand (Symbol.for).
 * - a module inlined from another folder must not use import.meta (it would see the bundle's URL): the build fails.
 * A module listed here that the bundle no longer reaches fails the build too, so the list stays what runs.
 *
 * The same commands are bundled a second time as CommonJS, dist/cli/quick.cjs (cli/quick-entry.ts, run by
 * bin/ten.cjs, the package's bin): Node 20 starting an ES module costs ~11 ms of CPU more than a CommonJS file.
 * That bundle holds core/errors.ts too (a CommonJS file cannot load an ES module synchronously); the entry
 * recognises a TenementError of the ES module copy by asking that copy (cli/quick-entry.ts). Whatever it cannot
 * carry into CommonJS (import.meta left over, a warning) fails the build.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** dist/-relative: what `ten --help`, `ten --version` and a plain `ten ps` run (test/e2e/cli-startup.test.ts). */
export const QUICK_MODULES = [
  'cli/main.js',
  'cli/quick.js',
  'cli/command-table.js',
  'cli/version.js',
  'core/version.js',
  'cli/commands/ps-run.js',
  'cli/commands/labels.js',
  'cli/client.js',
  'cli/plain-http.js',
  'core/http-answer.js',
  'cli/server-endpoint.js',
  'cli/context-file.js',
  'cli/output.js',
  'core/api/socket-path.js',
  'core/config/names.js',
  'core/config/find.js',
  'core/log-time.js',
];

/** The modules dist/cli/quick.cjs inlines: the quick ones (not main.js) and its entry, core/errors.js included. */
export const QUICK_CJS_MODULES = [...QUICK_MODULES.filter((file) => file !== 'cli/main.js'), 'cli/quick-entry.js', 'core/errors.js'];

/**
 * What a bundle inlines is `modules`; every other relative import stays a separate file, its specifier rewritten
 * from dist/cli/, where both bundles sit.
 */
function onlyThese(inline, cliDir) {
  return {
    name: 'quick-modules-only',
    setup(build) {
      build.onResolve({ filter: /^\.\.?\// }, (args) => {
        const file = path.resolve(args.resolveDir, args.path);
        if (inline.has(file)) return { path: file };
        let specifier = path.relative(cliDir, file).split(path.sep).join('/');
        if (!specifier.startsWith('.')) specifier = `./${specifier}`;
        return { path: specifier, external: true };
      });
    },
  };
}

/** The build fails when a listed module is no longer reached, or one moved out of its folder reads import.meta. */
function checkInlined(result, { root, dist, cliDir, inline, list }) {
  const inlined = Object.keys(result.metafile.inputs).map((input) => path.resolve(root, input));
  const missing = [...inline].filter((file) => !inlined.includes(file));
  if (missing.length > 0) throw new Error(`build-quick: the bundle no longer reaches ${missing.map((file) => path.relative(dist, file)).join(', ')} (update ${list})`);
  const moved = inlined.filter((file) => path.dirname(file) !== cliDir && /\bimport\.meta\b/.test(readFileSync(file, 'utf8')));
  if (moved.length > 0) throw new Error(`build-quick: ${moved.map((file) => path.relative(dist, file)).join(', ')} use import.meta, which would see the bundle's URL`);
  return inlined.length;
}

const COMMON = {
  bundle: true,
  write: false,
  platform: 'node',
  target: 'node20',
  // commander and the rest of node_modules resolve from dist/cli/ as they did from main.js.
  packages: 'external',
  charset: 'ascii',
  legalComments: 'none',
  minifyWhitespace: true,
  minifySyntax: true,
  metafile: true,
  logLevel: 'silent',
};

/**
 * @param {{ root: string; dist: string }} options
 * @returns {Promise<{ modules: number; bytes: number; cjsModules: number; cjsBytes: number }>} how many modules
 *   each bundle (dist/cli/main.js, dist/cli/quick.cjs) inlines and its size.
 */
export async function bundleQuick({ root, dist }) {
  const esbuild = createRequire(path.join(root, 'package.json'))('esbuild');
  const cliDir = path.join(dist, 'cli');
  const entry = path.join(cliDir, 'main.js');
  const inline = new Set(QUICK_MODULES.map((file) => path.join(dist, file)));
  const result = await esbuild.build({
    ...COMMON,
    absWorkingDir: root,
    entryPoints: [entry],
    outfile: entry,
    allowOverwrite: true,
    format: 'esm',
    plugins: [onlyThese(inline, cliDir)],
  });
  const modules = checkInlined(result, { root, dist, cliDir, inline, list: 'QUICK_MODULES' });
  const [output] = result.outputFiles;

  // The same commands as CommonJS, for bin/ten.cjs (cli/quick-entry.ts). Its import() of what it leaves out (the
  // config loader) stays an import() of the ES module file; import.meta.url (cli/version.ts, which reads
  // package.json upwards of its file) is the bundle's own URL, in dist/cli/ like the file it was.
  const cjsEntry = path.join(cliDir, 'quick-entry.js');
  const cjsOut = path.join(cliDir, 'quick.cjs');
  const cjsInline = new Set(QUICK_CJS_MODULES.map((file) => path.join(dist, file)));
  const cjs = await esbuild.build({
    ...COMMON,
    absWorkingDir: root,
    entryPoints: [cjsEntry],
    outfile: cjsOut,
    format: 'cjs',
    define: { 'import.meta.url': '__tenementBundleUrl' },
    // "use strict" first: esbuild's own directive comes after the banner, where it would no longer count.
    banner: { js: '"use strict";const __tenementBundleUrl=require("node:url").pathToFileURL(__filename).href;' },
    plugins: [onlyThese(cjsInline, cliDir)],
  });
  const cjsModules = checkInlined(cjs, { root, dist, cliDir, inline: cjsInline, list: 'QUICK_CJS_MODULES' });
  const [cjsOutput] = cjs.outputFiles;
  const text = cjsOutput.text;
  // Whatever esbuild could not carry into CommonJS (import.meta, a top-level await) must not ship half-working.
  if (/\bimport\.meta\b/.test(text)) throw new Error('build-quick: dist/cli/quick.cjs still reads import.meta');
  if (cjs.warnings.length > 0) throw new Error(`build-quick: esbuild warned on dist/cli/quick.cjs: ${cjs.warnings.map((w) => w.text).join('; ')}`);
  if (!/\bimport\(/.test(text)) throw new Error('build-quick: dist/cli/quick.cjs no longer imports the ES modules it leaves out (were they inlined?)');

  writeFileSync(entry, output.contents);
  writeFileSync(cjsOut, cjsOutput.contents);
  return { modules, bytes: output.contents.length, cjsModules, cjsBytes: cjsOutput.contents.length };
}
