// The dashboard's static files (plugins/dashboard, docs/dashboard.md) over real HTTP: caching, ETags, gzip and
// security headers, no way out of the build folder, and what is served without a build or with the dashboard off.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import type { PluginEntry } from '../../core/plugin.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import dashboard from '../../plugins/dashboard/index.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import { apiCall, echoService, request, servePlugins, waitFor } from '../helpers.ts';
import { APP_JS, INDEX_HTML, adminToken, bearer, builds, dashKernel, type Json } from './dashboard-api-fixture.ts';

test('static files: index without caching, hashed assets immutable, ETag and 304, gzip, security headers', { timeout: 60_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() } });
  const index = await request(kernel, 'localhost', '/');
  assert.equal(index.status, 200);
  assert.equal(index.body, INDEX_HTML);
  assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(index.headers['cache-control'], 'no-cache');
  assert.match(String(index.headers['content-security-policy']), /default-src 'self'.*frame-ancestors 'none'/);
  assert.doesNotMatch(String(index.headers['content-security-policy']), /script-src[^;]*unsafe-inline/);
  assert.equal(index.headers['x-frame-options'], 'DENY');
  assert.equal(index.headers['x-content-type-options'], 'nosniff');
  assert.equal(index.headers['referrer-policy'], 'no-referrer');
  const etag = String(index.headers.etag);
  assert.equal((await request(kernel, 'localhost', '/', { headers: { 'if-none-match': etag } })).status, 304);
  assert.equal((await request(kernel, 'localhost', '/index.html')).body, INDEX_HTML);

  const js = await request(kernel, 'localhost', '/assets/app-3f2a9c.js');
  assert.equal(js.status, 200);
  assert.equal(js.body, APP_JS);
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
  const revalidated = await request(kernel, 'localhost', '/assets/app-3f2a9c.js', { headers: { 'if-none-match': String(js.headers.etag) } });
  assert.equal(revalidated.status, 304);
  assert.equal(revalidated.body, '');
  assert.equal((await request(kernel, 'localhost', '/assets/app-3f2a9c.css')).headers['content-type'], 'text/css; charset=utf-8');
  assert.equal((await request(kernel, 'localhost', '/favicon.svg')).headers['content-type'], 'image/svg+xml');

  // gzip when asked: a raw read, since node's client does not decode.
  const zipped = await rawGet(kernel, '/assets/app-3f2a9c.js', 'Accept-Encoding: gzip, br\r\n');
  assert.match(zipped.head, /content-encoding: gzip/i);
  assert.match(zipped.head, /vary: Accept-Encoding/i);
  assert.equal(gunzipSync(zipped.body).toString(), APP_JS);
  assert.ok(zipped.body.length < APP_JS.length / 10);
});

test('no path reaches a file outside the build: traversal and encoded variants are 404s', { timeout: 60_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() } });
  const attempts = [
    '/assets/../../etc/passwd',
    '/assets/..%2f..%2fetc%2fpasswd',
    '/assets/%2e%2e/%2e%2e/etc/passwd',
    '/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    '/assets/..%5c..%5cetc%5cpasswd',
    '/assets/%252e%252e%252fetc%252fpasswd',
    '/..%2fpackage.json',
    '/%2e%2e/package.json',
    '/assets//etc/passwd',
    '/assets/%00',
    '/assets/app-3f2a9c.js%00.html',
    '/index.html/..',
    '/package.json',
    '/__proto__',
    '/constructor',
    '/assets/__proto__',
  ];
  for (const url of attempts) {
    const reply = await rawGet(kernel, url);
    assert.ok(/^HTTP\/1\.1 (404|400)/.test(reply.head), `${url}: ${reply.head.split('\r\n', 1)[0]}`);
    assert.ok(!reply.body.toString().includes('root:'), url);
  }
  assert.equal((await request(kernel, 'localhost', '/assets/app-3f2a9c.js')).status, 200, 'still serving');
});

test('without a build, GET / says how to build it (503) and the API works; `dashboard: false` leaves it all out', { timeout: 60_000 }, async (t) => {
  const empty = mkdtempSync(path.join(os.tmpdir(), 'tnm-dash-empty-'));
  builds.push(empty);
  const kernel = await dashKernel(t, { services: { echo: echoService() } }, { distDir: empty });
  const page = await request(kernel, 'localhost', '/', { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
  assert.equal(page.status, 503);
  assert.match(page.body, /npm run build:dashboard/);
  assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  const script = await request(kernel, 'localhost', '/');
  assert.equal(script.status, 404);
  assert.match((JSON.parse(script.body) as Json).error.message, /npm run build:dashboard/);
  assert.equal((await request(kernel, 'localhost', '/assets/app.js')).status, 404);
  assert.equal((await apiCall(kernel, 'GET', '/api/instances', bearer(adminToken(kernel)))).status, 200);
  // Built while the server runs: picked up without a restart.
  writeFileSync(path.join(empty, 'index.html'), INDEX_HTML);
  await waitFor(async () => (await request(kernel, 'localhost', '/')).status === 200, 'the new build served', 20_000);
  assert.equal((await request(kernel, 'localhost', '/')).body, INDEX_HTML);

  const plugins: PluginEntry[] = [...servePlugins, authBearer, instancesApi, [dashboard, false]];
  const off = await createTestKernel({ plugins, config: { services: { echo: echoService() } } });
  t.after(() => off.close());
  const root = await request(off, 'localhost', '/');
  assert.equal(root.status, 404);
  assert.equal((JSON.parse(root.body) as Json).error.code, 'TNM_ERR_NOT_FOUND');
  assert.equal((await apiCall(off, 'POST', '/api/session', {}, { token: 'x' })).status, 404);
});

/** GET over a raw socket: the path exactly as written, the body bytes exactly as sent. */
function rawGet(kernel: TestKernel, url: string, extraHeaders = ''): Promise<{ head: string; body: Buffer }> {
  const base = new URL(kernel.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(base.port), base.hostname);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      resolve({ head: all.subarray(0, split).toString('latin1'), body: all.subarray(split + 4) });
    });
    socket.on('error', reject);
    socket.setTimeout(20_000, () => socket.destroy(new Error(`raw GET ${url} timed out`)));
    socket.write(`GET ${url} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${extraHeaders}\r\n`);
  });
}
