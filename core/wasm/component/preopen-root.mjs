// Preloaded (`node --import`) into the `jco componentize` child process only, never where guests run.
// jco 1.35 runs its wasm tools on @bytecodealliance/preview2-shim 0.26, which starts with no preopens, so every
// build fails with "failed to get path metadata ... (os error 44)". Granting the build tool the host's `/` fixes
// it. npm nests a copy of the shim under jco and another under jco-transpile (both run wasm tools during a
// bundled build), so each copy gets the preopen.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isMainThread } from 'node:worker_threads';

/** A package's root: neither jco nor jco-transpile exports package.json, and both keep their main in dist/. */
const packageRoot = (require, name) => dirname(dirname(require.resolve(name)));

// NODE_OPTIONS reaches every worker thread too, and the shim starts an I/O worker when imported: preloading it
// there again spawns another worker, which preloads it again... (a thread bomb: 400+ threads, 8 GB in minutes).
// Preopens are only read on the main thread, so workers skip this file.
if (!isMainThread) {
  // nothing to do in a worker
} else {
const jcoRoot = packageRoot(createRequire(import.meta.url), '@bytecodealliance/jco');
const fromJco = createRequire(join(jcoRoot, 'package.json'));
const transpileRoot = packageRoot(fromJco, '@bytecodealliance/jco-transpile');
const shims = new Set();
for (const root of [jcoRoot, transpileRoot]) {
  try {
    shims.add(createRequire(join(root, 'package.json')).resolve('@bytecodealliance/preview2-shim/filesystem'));
  } catch {
    // this copy of the tool has no shim of its own
  }
}
for (const shim of shims) {
  const { _setPreopens } = await import(pathToFileURL(shim).href);
  _setPreopens({ '/': '/' });
}
}
