/**
 * The compiled package's code made smaller in memory (issue 17: `ten serve` idle RSS). V8 keeps every loaded
 * module's whole source text for as long as the process runs (functions are compiled lazily from it, and
 * Function.prototype.toString returns it), so the doc comments and indentation of dist/ and zod's 95 modules were
 * some 2 MB of an idle server's heap (bench/footprint.ts, bench/README.md "## Footprint").
 *
 * - Every file tsc emitted: comments and whitespace out, syntax shortened (esbuild's transform, file by file:
 *   names are kept, so stack traces still name functions and classes, and `import.meta.url` still points where
 *   the code finds its files). Non-ASCII characters are escaped, so V8 keeps each source as one byte per character.
 * - zod as one minified module, dist/vendor/zod.js, with English messages only: `import { z } from 'zod'` loads
 *   zod's 95 files (850 KB, several held as two-byte strings) and all of its 60 locales, of which the server uses
 *   none. The compiled files import it instead of 'zod'. The SDK (sdk/) keeps the real 'zod', which users write
 *   their plugins' schemas with (zod's schemas work across copies: its instanceof checks read traits).
 * - prom-client through dist/vendor/prom-client.js, which takes the classes the code imports from its lib/ files:
 *   its index.js also loads the Pushgateway (https, tls, zlib), the cluster aggregator and Summary, which the
 *   server never uses (-2 MB RSS in a bare node with http, crypto, zlib and pino loaded: 54.4 -> 52.4 MB). A name
 *   the code imports that the file does not give stops the build. Its collectDefaultMetrics comes from edited
 *   copies that take @opentelemetry/api (44 modules, for exemplars the server does not turn on) on first use.
 *
 * TENEMENT_BUILD_SHRINK=0 leaves dist/ as tsc wrote it (to read it).
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** Node versions the package supports (package.json engines): nothing they run is lowered. */
const TARGET = 'node20';

/**
 * @param {{ root: string; dist: string; emitted: string[] }} options emitted: the .js/.mjs/.cjs files tsc wrote.
 * @returns {Promise<{ before: number; after: number; zod: number }>} bytes of the emitted code before and after, and of zod's bundle.
 */
export async function shrink({ root, dist, emitted }) {
  const esbuild = createRequire(path.join(root, 'package.json'))('esbuild');
  let before = 0;
  let after = 0;
  const zodFile = path.join(dist, 'vendor', 'zod.js');
  const zod = await bundleZod(esbuild, root, zodFile);
  const sdk = path.join(dist, 'sdk') + path.sep;
  const promFile = path.join(dist, 'vendor', 'prom-client.js');
  writePromClient(root, promFile);
  for (const file of emitted) {
    const source = readFileSync(file, 'utf8');
    before += source.length;
    let code = esbuild.transformSync(source, {
      loader: 'js',
      target: TARGET,
      charset: 'ascii',
      legalComments: 'none',
      minifyWhitespace: true,
      minifySyntax: true,
      sourcefile: path.relative(dist, file),
    }).code;
    if (!file.startsWith(sdk)) {
      let specifier = path.relative(path.dirname(file), zodFile).split(path.sep).join('/');
      if (!specifier.startsWith('.')) specifier = `./${specifier}`;
      code = code.replace(/(\bfrom\s*|\bimport\s*\(\s*)(['"])zod\2/g, (_, head) => `${head}"${specifier}"`);
      code = viaPromClient(code, file, promFile);
    }
    after += code.length;
    writeFileSync(file, code);
  }
  return { before, after, zod };
}

/** zod's `z`, tree-shaken and minified into one file, its locales but English left out. Returns its size. */
async function bundleZod(esbuild, root, outfile) {
  const require = createRequire(path.join(root, 'package.json'));
  const zodDir = path.dirname(require.resolve('zod/package.json'));
  const english = path.join(zodDir, 'v4', 'locales', 'en.js');
  const result = await esbuild.build({
    stdin: { contents: "export { z } from 'zod';", resolveDir: root, loader: 'js' },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: TARGET,
    charset: 'ascii',
    legalComments: 'none',
    minify: true,
    write: false,
    logLevel: 'silent',
    plugins: [
      {
        // `z.locales` re-exports every locale; messages are English (zod's default, set from en.js directly).
        name: 'english-only',
        setup(build) {
          build.onResolve({ filter: /[/\\]locales[/\\]index\.js$/ }, () => ({ path: 'locales', namespace: 'english-only' }));
          build.onLoad({ filter: /.*/, namespace: 'english-only' }, () => ({
            contents: `export { default as en } from ${JSON.stringify(english)};`,
            loader: 'js',
            resolveDir: zodDir,
          }));
        },
      },
    ],
  });
  const { version } = JSON.parse(readFileSync(path.join(zodDir, 'package.json'), 'utf8'));
  const text = `// zod ${version} (MIT License: zod.LICENSE), bundled by scripts/build-shrink.mjs\n${result.outputFiles[0].text}`;
  mkdirSync(path.dirname(outfile), { recursive: true });
  writeFileSync(outfile, text);
  copyFileSync(path.join(zodDir, 'LICENSE'), path.join(path.dirname(outfile), 'zod.LICENSE'));
  return text.length;
}

/** What the compiled code may import from prom-client, by the lib/ file that defines it. */
const PROM_CLIENT_PARTS = { Registry: 'registry', Counter: 'counter', Gauge: 'gauge', Histogram: 'histogram', collectDefaultMetrics: 'defaultMetrics' };

function writePromClient(root, outfile) {
  mkdirSync(path.dirname(outfile), { recursive: true });
  const parts = Object.entries(PROM_CLIENT_PARTS).filter(([name]) => name !== 'collectDefaultMetrics');
  const lines = parts.map(([name, lib]) => `export const ${name} = require('prom-client/lib/${lib}');`);
  writeDefaultMetrics(root, path.dirname(outfile));
  writeFileSync(
    outfile,
    `// prom-client's parts the server uses, from its lib/ files (scripts/build-shrink.mjs): not its index, which also loads the Pushgateway (https, tls, zlib) and the cluster aggregator.\n` +
      `import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\n${lines.join('\n')}\n` +
      `export const collectDefaultMetrics = require('./prom-client-defaults.cjs');\n`,
  );
}

/**
 * prom-client's collectDefaultMetrics with its process CPU counter taking @opentelemetry/api on first use: the
 * counter requires it at the top for exemplars, which the server does not turn on, and its 44 modules were
 * ~0.3 MB of an idle server's heap. Copies of lib/defaultMetrics.js and lib/metrics/processCpuTotal.js (Apache-2.0,
 * prom-client.LICENSE) whose other requires point at prom-client's own lib/ files; a prom-client whose files no
 * longer read as expected stops the build.
 */
function writeDefaultMetrics(root, vendor) {
  const promRequire = createRequire(path.join(root, 'package.json'));
  const lib = path.dirname(promRequire.resolve('prom-client/lib/defaultMetrics'));
  const edit = (file, replacements) => {
    let text = readFileSync(path.join(lib, file), 'utf8');
    for (const [from, to] of replacements) {
      if (!text.includes(from)) throw new Error(`prom-client's lib/${file} has no ${JSON.stringify(from)}: update writeDefaultMetrics in scripts/build-shrink.mjs`);
      text = text.split(from).join(to);
    }
    if (/require\('\.{1,2}\//.test(text.replace("require('./prom-client-cpu.cjs')", ''))) throw new Error(`prom-client's lib/${file} has a relative require left: update writeDefaultMetrics in scripts/build-shrink.mjs`);
    return `// prom-client ${promRequire('prom-client/package.json').version} lib/${file}, edited by scripts/build-shrink.mjs (Apache-2.0: prom-client.LICENSE).\n${text}`;
  };
  writeFileSync(
    path.join(vendor, 'prom-client-cpu.cjs'),
    edit('metrics/processCpuTotal.js', [
      [
        "const OtelApi = require('@opentelemetry/api');",
        "let otelApi;\nconst otel = () => (otelApi ??= require('node:module').createRequire(require.resolve('prom-client/lib/counter'))('@opentelemetry/api'));\nconst OtelApi = { get trace() { return otel().trace; }, get context() { return otel().context; } };",
      ],
      ["require('../counter')", "require('prom-client/lib/counter')"],
    ]),
  );
  writeFileSync(
    path.join(vendor, 'prom-client-defaults.cjs'),
    edit('defaultMetrics.js', [
      ["require('./", "require('prom-client/lib/"],
      ["require('prom-client/lib/metrics/processCpuTotal')", "require('./prom-client-cpu.cjs')"],
    ]),
  );
  copyFileSync(path.join(lib, '..', 'LICENSE'), path.join(vendor, 'prom-client.LICENSE'));
}

/** A compiled file's prom-client imports pointed at dist/vendor/prom-client.js; any other form of import stops the build. */
function viaPromClient(code, file, promFile) {
  if (!/(['"])prom-client\1/.test(code)) return code;
  let specifier = path.relative(path.dirname(file), promFile).split(path.sep).join('/');
  if (!specifier.startsWith('.')) specifier = `./${specifier}`;
  const rewritten = code.replace(/\bimport\s*\{([^}]*)\}\s*from\s*(['"])prom-client\2/g, (_, names) => {
    for (const part of names.split(',')) {
      const name = part.trim().split(/\s+as\s+/)[0];
      if (name !== '' && !Object.hasOwn(PROM_CLIENT_PARTS, name)) {
        throw new Error(`${file} imports ${name} from prom-client: add it to PROM_CLIENT_PARTS in scripts/build-shrink.mjs`);
      }
    }
    return `import{${names}}from"${specifier}"`;
  });
  if (/(['"])prom-client\1/.test(rewritten)) throw new Error(`${file} imports prom-client in a form scripts/build-shrink.mjs does not rewrite (named imports only)`);
  return rewritten;
}
