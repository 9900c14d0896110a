#!/usr/bin/env node
// `ten`, the package's bin. The installed package runs its compiled JavaScript (dist/, built by `npm run build`
// before packing), so no TypeScript of ours is transpiled at run time. This file is CommonJS because Node 20
// starting an ES module costs ~11 ms of CPU more than a CommonJS file (docs/install.md "Start-up"): the quick
// commands (`ten --help`, `--version`, a plain `ten ps`) run from dist/cli/quick.cjs, a CommonJS bundle, and load no
// ES module of ours; anything else imports the ES module dist/cli/main.js as before.
// A checkout runs its sources through tsx instead, with no build step, even when an old dist/ is lying around (a
// pack leaves one): cli/main.ts next to this file marks a checkout, since the package ships no sources.
// TENEMENT_DIST=1 runs a checkout's dist/ (to measure it). bin/ten.mjs is the same, for what runs that name.
'use strict';
const { existsSync } = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const nodeModule = require('node:module');

// Node 22.1+ caches the compiled code of what it loads on disk, which most of a quick command's start-up is.
// Node 20 lacks it; a cache that cannot be written is Node's business (it runs uncached).
if (nodeModule.enableCompileCache) nodeModule.enableCompileCache();

const root = path.join(__dirname, '..');
const checkout = existsSync(path.join(root, 'cli', 'main.ts'));
const compiled = path.join(root, 'dist', 'cli', 'main.js');

/** The first words cli/quick-entry.ts may take (its QUICK_FIRST): anything else never loads the bundle. */
const QUICK_FIRST = new Set(['--help', '-h', '--version', '-V', 'ps']);

/** The compiled package: the CommonJS quick door when it takes the command, else the ES module main.js. */
async function runCompiled() {
  const args = process.argv.slice(2);
  const quick = path.join(root, 'dist', 'cli', 'quick.cjs');
  // The bundle is required only for a command it may run (`ten serve` would keep its source in the heap for
  // good); it checks again (mayRunQuick), and a dist/ built before quick.cjs existed runs on the ES module path.
  if (QUICK_FIRST.has(args[0]) && existsSync(quick)) {
    const foreignErrors = () => import(pathToFileURL(path.join(root, 'dist', 'core', 'errors.js')).href);
    if (await require(quick).runQuickEntry(args, foreignErrors)) return;
  }
  await import(pathToFileURL(compiled).href);
}

async function runSources() {
  const { register } = await import('tsx/esm/api');
  register();
  // `tenement/sdk` in a checkout resolves to the sources (the package's `tenement-source` export condition)
  // rather than to a dist/ that may be missing or stale.
  // registerHooks where Node has it: module.register() is deprecated from Node 26 (and warns on stderr).
  const hooks = pathToFileURL(path.join(__dirname, 'source-condition.mjs')).href;
  if (nodeModule.registerHooks) nodeModule.registerHooks({ resolve: (await import(hooks)).resolve });
  else nodeModule.register(hooks);
  await import(pathToFileURL(path.join(root, 'cli', 'main.ts')).href);
}

const run = !checkout || (process.env.TENEMENT_DIST === '1' && existsSync(compiled)) ? runCompiled : runSources;
run().catch((error) => {
  // What cli/main.ts does not report itself (a broken install): Node's own report, and exit code 1.
  process.exitCode = 1;
  console.error(error);
});
