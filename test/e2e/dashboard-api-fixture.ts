// What the dashboard API tests share: a kernel with the dashboard on a stand-in build (its folders removed once the
// file's tests are done), the admin's and tenants' tokens, sign-in and the session it makes, and a reader of the
// Server-Sent Events stream at /api/events.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { ConfigInput } from '../../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import type { PluginEntry } from '../../core/plugin.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import dashboard from '../../plugins/dashboard/index.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import wasmPlugins from '../../plugins/wasm-plugins/index.ts';
import { apiCall, servePlugins, waitFor, type Reply } from '../helpers.ts';

export type Json = Record<string, any>;
export const parse = (reply: Reply): Json => JSON.parse(reply.body) as Json;
export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

export const INDEX_HTML = '<!doctype html><html><head><script type="module" src="/assets/app-3f2a9c.js"></script></head><body></body></html>\n';
export const APP_JS = `export const app = ${JSON.stringify('x'.repeat(4000))};\n`;

// Build folders are removed once the file's tests are done: by then every test's own after-hooks have closed the
// kernels serving them (a removal hook added before a kernel's close would run first, and one that throws skips
// the close).
export const builds: string[] = [];
test.after(() => {
  for (const dir of builds) rmSync(dir, { recursive: true, force: true });
});

/** A stand-in for `npm run build:dashboard`'s output: what the server does with it is under test, not the UI. */
export function fakeBuild(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tnm-dash-dist-'));
  builds.push(dir);
  mkdirSync(path.join(dir, 'assets'));
  writeFileSync(path.join(dir, 'index.html'), INDEX_HTML);
  writeFileSync(path.join(dir, 'assets', 'app-3f2a9c.js'), APP_JS);
  writeFileSync(path.join(dir, 'assets', 'app-3f2a9c.css'), 'body{margin:0}');
  writeFileSync(path.join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  return dir;
}

/** A kernel with the dashboard (on a fresh stand-in build unless `options` says otherwise), closed after test `t`. */
export async function dashKernel(t: TestContext, config: ConfigInput, options: Record<string, unknown> = {}): Promise<TestKernel> {
  const plugins: PluginEntry[] = [...servePlugins, authBearer, instancesApi, wasmPlugins, [dashboard, { distDir: fakeBuild(), ...options }]];
  const kernel = await createTestKernel({ plugins, config: { ...config, settings: { healthInterval: '1h', ...config.settings } } });
  t.after(() => kernel.close());
  return kernel;
}

export const adminToken = (kernel: TestKernel): string => readFileSync(path.join(kernel.config.settings.dataDir, 'admin.token'), 'utf8').trim();

/** A new token scoped to `tenant`, made through the API by the admin. */
export async function tenantToken(kernel: TestKernel, tenant: string): Promise<{ id: string; token: string }> {
  const reply = await apiCall(kernel, 'POST', '/api/tokens', bearer(adminToken(kernel)), { name: `${tenant}-token`, tenant });
  assert.equal(reply.status, 201, reply.body);
  return parse(reply) as { id: string; token: string };
}

export interface Signed {
  cookie: string;
  csrf: string;
  setCookie: string;
  body: Json;
}

/** POST /api/session with `token`, as a browser signs in: the session cookie and its CSRF token. */
export async function signIn(kernel: TestKernel, token: string, headers: Record<string, string> = {}, from?: string): Promise<Signed> {
  const reply = await apiCall(kernel, 'POST', '/api/session', headers, { token }, from);
  assert.equal(reply.status, 200, reply.body);
  const setCookie = String(reply.headers['set-cookie']?.[0] ?? '');
  const cookie = setCookie.split(';', 1)[0]!;
  const body = parse(reply);
  return { cookie, csrf: body.csrf as string, setCookie, body };
}

/** What GET /api/session says of a cookie: signed in (its identity's kind), or null (200 with identity null). */
export async function whoIs(kernel: TestKernel, cookie: string): Promise<string | null> {
  const reply = await apiCall(kernel, 'GET', '/api/session', { cookie });
  assert.equal(reply.status, 200, reply.body);
  const body = parse(reply);
  if (body.identity === null) assert.deepEqual(body, { identity: null, csrf: null, expiresAt: null });
  return body.identity === null ? null : (body.identity.kind as string);
}

/** Waits until every instance of `keys` runs. */
export async function running(kernel: TestKernel, ...keys: string[]): Promise<void> {
  await waitFor(() => keys.every((key) => kernel.instances.getByKey(key)?.state === 'running'), `${keys.join(', ')} running`, 20_000);
}

/** A Server-Sent Events reader: the events so far, and a wait for one that matches. */
export interface EventStream {
  status: number;
  events: Array<{ event: string; data: Json }>;
  next(match: (e: { event: string; data: Json }) => boolean, what: string, timeoutMs?: number): Promise<{ event: string; data: Json }>;
  closed: Promise<void>;
  close(): void;
}

export function openEvents(kernel: TestKernel, headers: Record<string, string>): Promise<EventStream> {
  const base = new URL(kernel.url);
  return new Promise((resolve, reject) => {
    const req = http.get({ host: base.hostname, port: base.port, path: '/api/events', headers: { host: 'localhost', ...headers }, agent: false }, (res) => {
      const events: Array<{ event: string; data: Json }> = [];
      let buffer = '';
      let seen = 0;
      let closedResolve: () => void = () => undefined;
      const closed = new Promise<void>((r) => (closedResolve = r));
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data !== '') events.push({ event, data: JSON.parse(data) as Json });
        }
      });
      res.on('close', () => closedResolve());
      res.on('error', () => closedResolve());
      resolve({
        status: res.statusCode ?? 0,
        events,
        closed,
        close: () => req.destroy(),
        async next(match, what, timeoutMs = 20_000) {
          let found: { event: string; data: Json } | undefined;
          await waitFor(
            () => {
              for (; seen < events.length; seen++) {
                if (match(events[seen]!)) {
                  found = events[seen];
                  seen += 1;
                  return true;
                }
              }
              return false;
            },
            what,
            timeoutMs,
          );
          return found!;
        },
      });
    });
    req.on('error', reject);
  });
}
