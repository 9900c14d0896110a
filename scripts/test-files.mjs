// The test files for `npm test`, the slowest first. The runner works through them two at a time, so a long file
// started last would run on alone at the end: started first, the short ones fill the other slot beside it (about a
// minute less per run in CI). A file not named here keeps its sorted place after these.
//
// TENEMENT_TEST_SET=node-sensitive narrows the list to the files whose subject changes most with Node's version:
// every unit and security test (the framing suite meets Node's own HTTP parser and sockets), and the end-to-end
// tests of what Node 24 runs differently: proxy workers (`reusePort` exists only there), the proxy itself, the CLI
// bundles (the module loader), and the wasm tier on V8 and through koffi. CI runs the full list on Node 20 and this
// one on Node 24: running the full list twice put CI at 2,141 s on a slow night, and even the wider set this
// replaced (103 files, the package test among them) left it at 1,729 s, too near its 30 minutes.
import { readdirSync } from 'node:fs';
import path from 'node:path';

const SLOWEST_FIRST = [
  'test/security/soak.test.ts',
  'test/e2e/package.test.ts',
  'test/e2e/wasm-wasmtime.test.ts',
  'test/e2e/webhooks-serve-delivery.test.ts',
  'test/e2e/webhooks-serve-alerts.test.ts',
  'test/e2e/webhooks-rules.test.ts',
  'test/e2e/webhooks-storage-rule.test.ts',
  'test/e2e/webhooks-outbox.test.ts',
  'test/e2e/wasm-component-in-thread.test.ts',
  'test/e2e/wasm-component-tier.test.ts',
  'test/e2e/wasm-component-pool.test.ts',
  'test/e2e/wasm-component-build.test.ts',
  'test/security/names-cli.test.ts',
  'test/security/names-api.test.ts',
  'test/security/names-services.test.ts',
  'test/security/names-hosts.test.ts',
  'test/security/names-config.test.ts',
  'test/e2e/otel-instance-spans.test.ts',
  'test/e2e/otel-export.test.ts',
  'test/e2e/otel-requests.test.ts',
  'test/e2e/microvm.test.ts',
  'test/security/smuggling-fuzz.test.ts',
  'test/e2e/dashboard-browser-views.test.ts',
  'test/e2e/dashboard-browser-1000-instances.test.ts',
  'test/e2e/nats-watchdog.test.ts',
  'test/security/wasm-fair-share.test.ts',
  'test/security/wasm-resources.test.ts',
  'test/e2e/autoscale.test.ts',
  'test/e2e/edge-haproxy-wake.test.ts',
  'test/e2e/edge-haproxy-setup.test.ts',
  'test/e2e/edge-haproxy-routing.test.ts',
];

/** End-to-end files in the node-sensitive set, by name (test/unit and test/security are in it whole). */
const NODE_SENSITIVE_E2E = [/^cli-bundle\./, /^dataplane\./, /^proxy/, /^routing\./, /^wasm-(tier|wasmtime|inline|inline-preparer|dispatch|component-(build|in-thread|pool|tier|lean))\./, /^websocket\./];

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
