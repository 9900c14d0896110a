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
  'cli/server-endpoint.js',
  'cli/context-file.js',
  'cli/output.js',
  'core/api/socket-path.js',
  'core/config/names.js',
  'core/config/find.js',
  'core/log-time.js',
];

/**
 * @param {{ root: string; dist: string }} options
 * @returns {Promise<{ modules: number; bytes: number }>} how many modules the bundle inlines and its size.
 */
export async function bundleQuick({ root, dist }) {
  const esbuild = createRequire(path.join(root, 'package.json'))('esbuild');
  const cliDir = path.join(dist, 'cli');
  const entry = path.join(cliDir, 'main.js');
  const inline = new Set(QUICK_MODULES.map((file) => path.join(dist, file)));
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: [entry],
    outfile: entry,
    bundle: true,
    write: false,
    allowOverwrite: true,
    format: 'esm',
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
    plugins: [
      {
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
      },
    ],
  });
  const inlined = Object.keys(result.metafile.inputs).map((input) => path.resolve(root, input));
  const missing = [...inline].filter((file) => !inlined.includes(file));
  if (missing.length > 0) throw new Error(`build-quick: the bundle no longer reaches ${missing.map((file) => path.relative(dist, file)).join(', ')} (update QUICK_MODULES)`);
  const moved = inlined.filter((file) => path.dirname(file) !== cliDir && /\bimport\.meta\b/.test(readFileSync(file, 'utf8')));
  if (moved.length > 0) throw new Error(`build-quick: ${moved.map((file) => path.relative(dist, file)).join(', ')} use import.meta, which would see the bundle's URL`);
  const [output] = result.outputFiles;
  writeFileSync(entry, output.contents);
  return { modules: inlined.length, bytes: output.contents.length };
}
