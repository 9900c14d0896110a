// The test files for `npm test`, the slowest first. The runner works through them two at a time, so a long file
// started last would run on alone at the end: started first, the short ones fill the other slot beside it (about a
// minute less per run in CI). A file not named here keeps its sorted place after these.
import { readdirSync } from 'node:fs';
import path from 'node:path';

const SLOWEST_FIRST = [
  'test/security/soak.test.ts',
  'test/e2e/package.test.ts',
  'test/e2e/wasm-wasmtime.test.ts',
  'test/e2e/webhooks.test.ts',
  'test/e2e/wasm-component.test.ts',
  'test/security/names.test.ts',
  'test/e2e/otel.test.ts',
  'test/e2e/microvm.test.ts',
  'test/security/smuggling-fuzz.test.ts',
  'test/e2e/dashboard-browser.test.ts',
  'test/e2e/nats-watchdog.test.ts',
  'test/security/wasm-fair-share.test.ts',
  'test/security/wasm-resources.test.ts',
  'test/e2e/autoscale.test.ts',
  'test/e2e/edge-haproxy.test.ts',
];

function find(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : find(file);
    return entry.name.endsWith('.test.ts') ? [file] : [];
  });
}

const all = find('test').sort();
const present = new Set(all);
const first = SLOWEST_FIRST.filter((file) => present.has(file));
const chosen = new Set(first);
process.stdout.write([...first, ...all.filter((file) => !chosen.has(file))].join('\n') + '\n');
