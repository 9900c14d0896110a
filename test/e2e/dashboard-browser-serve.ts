// `ten serve` with the dashboard, for the real-browser tests: the config, on the test's own copy of the built UI,
// and admin calls to its API. The browser side is in test/dashboard-browser.ts.
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DIST_INDEX } from '../dashboard-browser.ts';
import { request, waitFor } from '../helpers.ts';
import type { ServeChild } from '../security/serve-child.ts';

/** How long a page or the server gets for any one thing the tests wait for. */
export const WAIT = 30_000;

/**
 * The test's own copy of the built UI (`pluginOptions.dashboard.distDir`), so a rebuild of plugins/dashboard/dist
 * while the test runs (`npm run build` elsewhere in the checkout) cannot pull files from under the pages.
 */
async function copyBuild(dir: string): Promise<string> {
  const target = path.join(dir, 'ui-dist');
  await waitFor(
    () => {
      rmSync(target, { recursive: true, force: true });
      try {
        cpSync(path.dirname(DIST_INDEX), target, { recursive: true });
        const html = readFileSync(path.join(target, 'index.html'), 'utf8');
        const assets = [...html.matchAll(/(?:src|href)="\/([^"]+)"/g)].map((m) => m[1]!);
        return assets.length > 0 && assets.every((asset) => existsSync(path.join(target, asset)));
      } catch {
        return false; // caught mid-rebuild: try again
      }
    },
    'a complete copy of plugins/dashboard/dist',
    WAIT,
  );
  return target;
}

/** Writes the project's config: `services` on 127.0.0.1:`port`, data in `dir`/data, the dashboard on a copy of the UI. */
export async function writeConfig(dir: string, port: number, services: Record<string, unknown>): Promise<string> {
  const settings = { port, listen: '127.0.0.1', dataDir: path.join(dir, 'data') };
  const pluginOptions = { dashboard: { distDir: await copyBuild(dir) } };
  const file = path.join(dir, 'tenement.config.json');
  writeFileSync(file, JSON.stringify({ settings, services, pluginOptions }, null, 2));
  return file;
}

/** A call to the server's API with `token` as the bearer: asserts it succeeded and parses the answer. */
export async function api<T>(server: ServeChild, token: string, method: string, url: string, body?: unknown): Promise<T> {
  const reply = await request(server.url, '127.0.0.1', url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    timeoutMs: 60_000,
  });
  assert.ok(reply.status < 300, `${method} ${url}: ${reply.status} ${reply.body}`);
  return JSON.parse(reply.body) as T;
}
