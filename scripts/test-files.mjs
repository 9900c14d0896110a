// The test files for `npm test`, the slowest first. The runner works through them two at a time, so a long file
// started last would run on alone at the end: started first, the short ones fill the other slot beside it (about a
// minute less per run in CI). A file not named here keeps its sorted place after these.
//
// TENEMENT_TEST_SET=node-sensitive narrows the list to the files whose subject changes with Node's version: every
// unit and security test (the framing suite meets Node's own HTTP parser), and the end-to-end tests of the parts
// that run on Node's parser, sockets, module loader, V8 and native addons (proxy, workers with reusePort, wasm,
// the CLI bundles, the package, the state store). CI runs the full list on Node 20 and this one on Node 24: the
// rest drive an outside tool (QEMU, gVisor, bubblewrap, CRIU, NATS, HAProxy's own process, chromium, cgroups,
// nftables) whose behaviour does not depend on which Node drives it, and running them twice put CI past its
// 30 minutes on a slow night (2,141 s).
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

/** End-to-end files in the node-sensitive set, by name (test/unit and test/security are in it whole). */
const NODE_SENSITIVE_E2E = [
  /^api-core\./, /^auth-bearer\./, /^cli-bundle\./, /^cli-quick\./, /^cli-startup\./, /^config-plugins\./,
  /^dataplane/, /^hibernate\./, /^otel-head\./, /^package\./, /^proxy/, /^recovery\./, /^route-cache\./,
  /^routing\./, /^tapped-headers\./, /^wasm-/, /^websocket\./,
];

function nodeSensitive(file) {
  const [, dir, name] = file.split('/');
  return dir !== 'e2e' || NODE_SENSITIVE_E2E.some((pattern) => pattern.test(name));
}

function find(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : find(file);
    return entry.name.endsWith('.test.ts') ? [file] : [];
  });
}

const set = process.env.TENEMENT_TEST_SET ?? 'all';
if (set !== 'all' && set !== 'node-sensitive') {
  process.stderr.write(`TENEMENT_TEST_SET: expected "all" or "node-sensitive", got ${JSON.stringify(set)}\n`);
  process.exit(2);
}
const all = find('test').sort().filter((file) => set === 'all' || nodeSensitive(file));
const present = new Set(all);
const first = SLOWEST_FIRST.filter((file) => present.has(file));
const chosen = new Set(first);
process.stdout.write([...first, ...all.filter((file) => !chosen.has(file))].join('\n') + '\n');
