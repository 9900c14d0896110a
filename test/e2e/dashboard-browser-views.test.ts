// The dashboard in a real browser (Debian's chromium through playwright-core) against a real `ten serve` child
// with real echo instances: sign-in, the live instances table, actions, the instance page's logs and charts, the
// other views, tenant scoping, and no console error anywhere. Screenshots go to test/artifacts/. The tests share
// one server and run in order: later ones see what earlier ones changed (web:carol stopped, for one).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import {
  assertNoConsoleProblems,
  browserSkipReason,
  launchChromium,
  rowKeys,
  rowState,
  screenshot,
  signIn,
  watchConsole,
  type ConsoleProblem,
  unlabelledControls,
} from '../dashboard-browser.ts';
import { ECHO_APP, ROOT, request, waitFor } from '../helpers.ts';
import { adminToken, freePort, projectDir, startServe, type ServeChild } from '../security/serve-child.ts';
import { buildCGuests, wasmFunction } from '../wasm-guests.ts';
import { WAIT, api, writeConfig } from './dashboard-browser-serve.ts';

const skip = browserSkipReason() ?? false;
const TEN = path.join(ROOT, 'bin', 'ten.mjs');

/** `ten <args>` in `cwd`, as a user runs it: none of the test runner's TENEMENT_ variables reach it. */
function ten(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('TENEMENT_') && key !== 'NODE_TEST_CONTEXT') env[key] = value;
  return new Promise((resolve) => {
    execFile(process.execPath, [TEN, ...args], { cwd, env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('dashboard in a real browser', { skip, timeout: 600_000 }, () => {
  let server: ServeChild;
  let browser: Browser;
  let admin = '';
  let aliceToken = '';
  const contexts: BrowserContext[] = [];
  const problems: ConsoleProblem[] = [];
  /** Why the WASM function check cannot run here (no clang with wasi-libc), or false. */
  let wasmSkip: string | false = false;

  async function newPage(options: { width?: number; height?: number } = {}): Promise<{ page: Page; expect(pattern: RegExp): void }> {
    const context = await browser.newContext({ viewport: { width: options.width ?? 1360, height: options.height ?? 860 } });
    contexts.push(context);
    const watch = watchConsole(context);
    // Shared, so the last test can assert on every page's console at once.
    watch.problems.push = (...items: ConsoleProblem[]): number => problems.push(...items);
    return { page: await context.newPage(), expect: watch.expect };
  }

  before(async () => {
    const dir = projectDir('tenement-dashboard-');
    const port = await freePort();
    const guests = buildCGuests(dir);
    wasmSkip = guests.skip;
    const config = await writeConfig(dir, port, {
      web: { command: `node ${ECHO_APP}`, health: '/health', idleTimeout: false },
      ...(guests.skip ? {} : { fn: wasmFunction(guests.handler) }),
    });
    server = await startServe(dir, config, port, { TENEMENT_LOG_LEVEL: 'warn' });
    admin = adminToken(server.dataDir);
    for (const id of ['alice', 'bob', 'carol']) await api(server, admin, 'POST', `/api/instances/web/${id}`);
    aliceToken = (await api<{ token: string }>(server, admin, 'POST', '/api/tokens', { name: 'alice-ui', tenant: 'alice' })).token;
    browser = await launchChromium();
  });

  after(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await server?.stop();
  });

  test('the first load is one script and one stylesheet, no inline script, under 300 KB gzipped as served', async () => {
    const get = (url: string): Promise<{ status: number; headers: Record<string, unknown>; bytes: number; body: string }> =>
      request(server.url, '127.0.0.1', url, { headers: { 'accept-encoding': 'gzip', accept: 'text/html,*/*' } }).then((r) => ({
        status: r.status,
        headers: r.headers,
        // The body arrives decoded as text: the bytes on the wire are the Content-Length.
        bytes: Number(r.headers['content-length'] ?? Number.NaN),
        body: r.body,
      }));
    const page = await request(server.url, '127.0.0.1', '/', { headers: { accept: 'text/html' } });
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
    const scripts = [...page.body.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    assert.equal(scripts.length, 1, page.body);
    assert.match(scripts[0]![1]!, /src="\/assets\/[^"]+\.js"/);
    assert.equal(scripts[0]![2]!.trim(), '', 'no inline script');
    assert.doesNotMatch(page.body, /\son[a-z]+=/i, 'no inline event handler');
    const assets = [...page.body.matchAll(/(?:src|href)="(\/[^"]+)"/g)].map((m) => m[1]!);
    let total = (await get('/')).bytes;
    const lines: string[] = [];
    for (const asset of assets) {
      const answer = await get(asset);
      assert.equal(answer.status, 200, asset);
      assert.ok(Number.isInteger(answer.bytes), `${asset} has a Content-Length`);
      total += answer.bytes;
      lines.push(`${asset} ${(answer.bytes / 1024).toFixed(1)} KB${answer.headers['content-encoding'] === 'gzip' ? ' gzipped' : ''}`);
    }
    console.log(`dashboard figure: first load ${(total / 1024).toFixed(1)} KB as served with gzip (goal < 300 KB): ${lines.join(', ')}`);
    assert.ok(total < 300 * 1024, `first load ${total} bytes`);
  });

  test('a bad token is refused with a message, and nothing is stored in the page', async () => {
    const { page, expect } = await newPage();
    expect(/Failed to load resource: the server responded with a status of 401.*\/api\/session/);
    await page.goto(`${server.url}/`);
    // By keyboard: type the token and press Enter.
    await page.getByLabel('Token').fill('tnm_not_a_real_token_0000000000000000');
    await page.getByLabel('Token').press('Enter');
    const message = page.getByTestId('signin-error');
    await message.waitFor({ timeout: WAIT });
    assert.match((await message.textContent()) ?? '', /Sign-in refused: .*(invalid|expired|revoked)/i);
    assert.equal(await page.getByTestId('identity').count(), 0);
    assert.equal(await page.getByLabel('Token').inputValue(), '', 'the refused token is cleared from the form');
    await screenshot(page, 'signin-refused');
    assert.deepEqual(await unlabelledControls(page), [], 'every control of the sign-in form has a name');
  });

  test('admin signs in: the token is exchanged for an HttpOnly cookie and never kept by the page', async () => {
    const { page } = await newPage();
    await signIn(page, server.url, admin);
    await waitFor(async () => (await rowKeys(page)).length === 3, 'three rows', WAIT);
    assert.deepEqual(await rowKeys(page), ['web:alice', 'web:bob', 'web:carol']);
    for (const key of ['web:alice', 'web:bob', 'web:carol']) assert.equal(await rowState(page, key), 'running');
    const cookies = await page.context().cookies();
    const session = cookies.find((cookie) => cookie.name.includes('session'));
    assert.ok(session, `a session cookie: ${JSON.stringify(cookies)}`);
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    const stored = await page.evaluate<string>('JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, url: location.href, cookie: document.cookie })');
    assert.ok(!stored.includes(admin), `the token is nowhere the page can read: ${stored}`);
    await screenshot(page, 'instances');
    assert.deepEqual(await unlabelledControls(page), [], 'every control of the instances view has a name');
  });

  test('an instance stopped from the CLI leaves the table live, without a reload', async () => {
    const { page } = await newPage();
    await signIn(page, server.url, admin);
    await waitFor(async () => (await rowState(page, 'web:carol')) === 'running', 'web:carol running', WAIT);
    await page.evaluate("window.marker = 'same page'");
    const stopped = await ten(['stop', 'web:carol'], server.dir);
    assert.equal(stopped.code, 0, stopped.stderr);
    await waitFor(async () => (await rowState(page, 'web:carol')) === null, 'the web:carol row to go', WAIT);
    assert.equal(await page.evaluate<string | undefined>('window.marker'), 'same page', 'no reload happened');
    assert.deepEqual(await rowKeys(page), ['web:alice', 'web:bob']);
  });

  test('restart from the UI asks first, then the instance comes back running with a new process', async () => {
    const { page } = await newPage();
    await signIn(page, server.url, admin);
    await waitFor(async () => (await rowState(page, 'web:bob')) === 'running', 'web:bob running', WAIT);
    const before = await api<{ pid: number }>(server, admin, 'GET', '/api/instances/web/bob');

    await page.getByRole('button', { name: 'Restart web:bob' }).click();
    const dialog = page.getByTestId('dialog');
    await dialog.getByRole('heading', { name: 'Restart web:bob?' }).waitFor({ timeout: WAIT });
    await screenshot(page, 'confirm-restart');
    // The dialog has the focus; Escape cancels it, and nothing happens.
    assert.equal(await page.evaluate<boolean>("document.activeElement?.closest('dialog') !== null"), true, 'focus is in the dialog');
    await page.keyboard.press('Escape');
    await page.getByRole('heading', { name: 'Restart web:bob?' }).waitFor({ state: 'hidden', timeout: WAIT });
    assert.equal((await api<{ pid: number }>(server, admin, 'GET', '/api/instances/web/bob')).pid, before.pid);

    // The button is reachable by keyboard too: focus it and press Enter.
    await page.getByRole('button', { name: 'Restart web:bob' }).focus();
    await page.keyboard.press('Enter');
    await dialog.getByRole('button', { name: 'Restart', exact: true }).click();
    await waitFor(
      async () => (await api<{ pid: number; state: string }>(server, admin, 'GET', '/api/instances/web/bob')).pid !== before.pid,
      'a new process for web:bob',
      WAIT,
    );
    await waitFor(async () => (await rowState(page, 'web:bob')) === 'running', 'web:bob running again in the table', WAIT);
    await page.getByTestId('notices').getByText('restarted: web:bob').waitFor({ timeout: WAIT });
  });

  test('the instance page tails and searches the logs and draws the last hour', async () => {
    // A hostile tenant's output is shown as text, never as markup.
    const hostile = '<img src=x onerror="window.__xss=1">';
    for (const line of ['needle in the haystack', hostile, 'plain hay']) {
      assert.equal((await request(server.url, 'alice.web.localhost', `/log?line=${encodeURIComponent(line)}`)).status, 200);
    }
    for (let i = 0; i < 20; i++) await request(server.url, 'alice.web.localhost', '/');
    const { page } = await newPage();
    await signIn(page, server.url, admin);
    await page.getByRole('link', { name: 'alice' }).click();
    await page.getByRole('heading', { name: 'web:alice' }).waitFor({ timeout: WAIT });
    const logs = page.getByTestId('logs');
    await waitFor(async () => ((await logs.textContent()) ?? '').includes('plain hay'), 'the tail to show the logged lines', WAIT);

    assert.ok(((await logs.textContent()) ?? '').includes(hostile), 'the markup is shown literally');
    assert.equal(await logs.locator('img').count(), 0);
    assert.equal(await page.evaluate<unknown>('window.__xss'), undefined);

    await page.getByTestId('log-search').fill('needle');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await waitFor(async () => /stored lines matching/.test((await page.getByTestId('log-mode').textContent()) ?? ''), 'the search answer', WAIT);
    const found = (await logs.textContent()) ?? '';
    assert.match(found, /needle in the haystack/);
    assert.doesNotMatch(found, /plain hay/);

    // Three uPlot charts, each a canvas with a drawn size.
    const canvases = page.getByTestId('charts').locator('canvas');
    await waitFor(async () => (await canvases.count()) === 3, 'three chart canvases', WAIT);
    for (const box of await canvases.evaluateAll((all) => all.map((c) => [Number(c.getAttribute('width')), Number(c.getAttribute('height'))]))) {
      assert.ok(box[0]! > 100 && box[1]! > 50, `a drawn chart: ${JSON.stringify(box)}`);
    }
    await screenshot(page, 'instance-page');
    assert.deepEqual(await unlabelledControls(page), [], 'every control of the instance page has a name');
  });

  test('the other views open without errors: audit, tokens (secret shown once, revoke), plugins, functions, deploy', async () => {
    const { page } = await newPage();
    await signIn(page, server.url, admin);

    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByTestId('audit-table').getByText('web:bob').first().waitFor({ timeout: WAIT });
    await screenshot(page, 'audit');
    assert.deepEqual(await unlabelledControls(page), [], 'every control of the audit view has a name');

    // A token name with markup (an admin typo or a hostile script's) is shown as text.
    const markup = '<img src=x onerror="window.__xss=2">';
    await api(server, admin, 'POST', '/api/tokens', { name: markup });
    await page.getByRole('link', { name: 'Tokens' }).click();
    await page.getByTestId('tokens-table').getByText('alice-ui').waitFor({ timeout: WAIT });
    assert.ok(((await page.getByTestId('tokens-table').textContent()) ?? '').includes(markup));
    assert.equal(await page.getByTestId('tokens-table').locator('img').count(), 0);
    assert.equal(await page.evaluate<unknown>('window.__xss'), undefined);
    await page.getByLabel('Name').fill('ci-bot');
    await page.getByRole('button', { name: 'Create' }).click();
    const secret = page.getByTestId('token-secret');
    await secret.waitFor({ timeout: WAIT });
    const value = await secret.getByLabel('Secret').inputValue();
    assert.match(value, /^tnm_/);
    await screenshot(page, 'tokens');
    assert.deepEqual(await unlabelledControls(page), [], 'every control of the tokens view has a name');
    await secret.getByRole('button', { name: 'Done' }).click();
    assert.equal(await page.getByTestId('token-secret').count(), 0, 'the secret is gone once dismissed');
    assert.ok(!((await page.content()).includes(value)), 'and nowhere in the page');
    await page.getByRole('button', { name: 'Revoke ci-bot' }).click();
    await page.getByTestId('dialog').getByRole('button', { name: 'Revoke' }).click();
    await waitFor(async () => ((await page.locator('tr[data-token="ci-bot"]').textContent()) ?? '').includes('revoked'), 'ci-bot revoked', WAIT);
    const refused = await request(server.url, '127.0.0.1', '/api/instances', { headers: { authorization: `Bearer ${value}` } });
    assert.equal(refused.status, 401);

    await page.getByRole('link', { name: 'Plugins' }).click();
    await page.getByTestId('plugins-table').getByText('instances-api').waitFor({ timeout: WAIT });
    await screenshot(page, 'plugins');
    assert.deepEqual(await unlabelledControls(page), [], 'every control of the plugins view has a name');

    await page.getByRole('link', { name: 'Functions' }).click();
    await page.getByTestId('functions-table').waitFor({ timeout: WAIT });

    await page.getByRole('link', { name: 'Deploy' }).click();
    await page.getByRole('heading', { name: 'Route swap' }).waitFor({ timeout: WAIT });
    await screenshot(page, 'deploy');
    assert.deepEqual(await unlabelledControls(page), [], 'every control of the deploy view has a name');
  });

  test('deploy a version and swap the route to it from the UI', async () => {
    const { page } = await newPage();
    await signIn(page, server.url, admin);
    await page.getByRole('link', { name: 'Deploy' }).click();
    await page.getByLabel('Service').first().fill('web');
    await page.getByLabel('Version').fill('v2');
    await page.getByLabel('Weight (optional, 0–100)').fill('0');
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    await page.getByTestId('notices').getByText('deployed web:v2').waitFor({ timeout: 60_000 });
    const v2 = await api<{ state: string; weight: number }>(server, admin, 'GET', '/api/instances/web/v2');
    assert.deepEqual([v2.state, v2.weight], ['running', 0]);

    await page.locator('#swap-service').selectOption('web');
    await page.locator('#swap-from').selectOption('bob');
    await page.locator('#swap-to').selectOption('v2');
    await page.getByRole('button', { name: 'Swap traffic' }).click();
    await page.getByTestId('dialog').getByRole('button', { name: 'Swap' }).click();
    await page.getByTestId('notices').getByText('web: traffic moved from bob to v2').waitFor({ timeout: WAIT });
    assert.equal((await api<{ weight: number }>(server, admin, 'GET', '/api/instances/web/bob')).weight, 0);
    assert.equal((await api<{ weight: number }>(server, admin, 'GET', '/api/instances/web/v2')).weight, 100);

    // Back as it was for the tests after this one.
    await api(server, admin, 'PUT', '/api/instances/web/bob/weight', { weight: 100 });
    await api(server, admin, 'DELETE', '/api/instances/web/v2');
  });

  test('a tenant signs in and sees only its own instance, and no admin views', async () => {
    const { page } = await newPage();
    await signIn(page, server.url, aliceToken);
    assert.match((await page.getByTestId('identity').textContent()) ?? '', /tenant alice/);
    await waitFor(async () => (await rowKeys(page)).length > 0, 'a row', WAIT);
    // Give any stray event time to arrive: the table must still hold only alice's row.
    await page.waitForTimeout(500);
    assert.deepEqual(await rowKeys(page), ['web:alice']);
    for (const name of ['Tokens', 'Deploy', 'Plugins']) assert.equal(await page.getByRole('link', { name }).count(), 0, name);
    await screenshot(page, 'tenant');

    // A link to another tenant's instance: a notice, and no request the API would refuse (no console error).
    await page.goto(`${server.url}/#/instances/web/bob`);
    await page.getByText('No instance web:bob').waitFor({ timeout: WAIT });
    assert.equal(await page.getByTestId('logs').count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Restart web:bob' }).count(), 0);
  });

  test('weight, hibernate and wake from the UI', async () => {
    const { page } = await newPage();
    await signIn(page, server.url, admin);
    await waitFor(async () => (await rowState(page, 'web:alice')) === 'running', 'web:alice running', WAIT);
    const weightCell = page.locator('tr[data-key="web:alice"] [data-col="weight"]');

    await page.getByRole('button', { name: 'Set the weight of web:alice' }).click();
    const dialog = page.getByTestId('dialog');
    await dialog.getByLabel('Weight').fill('40');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await waitFor(async () => (await weightCell.textContent())?.trim() === '40', 'weight 40 in the row', WAIT);
    assert.equal((await api<{ weight: number }>(server, admin, 'GET', '/api/instances/web/alice')).weight, 40);

    await page.getByRole('button', { name: 'Hibernate web:alice' }).click();
    await dialog.getByRole('button', { name: 'Hibernate', exact: true }).click();
    await waitFor(async () => (await rowState(page, 'web:alice')) === 'hibernated', 'web:alice hibernated', WAIT);

    await page.getByRole('button', { name: 'Wake web:alice' }).click();
    await waitFor(async () => (await rowState(page, 'web:alice')) === 'running', 'web:alice running again', WAIT);
    await api(server, admin, 'PUT', '/api/instances/web/alice/weight', { weight: 100 });
  });

  test('a session whose token is revoked goes back to sign-in, saying why', async () => {
    const { page, expect } = await newPage();
    const made = await api<{ id: string; token: string }>(server, admin, 'POST', '/api/tokens', { name: 'short-lived' });
    await signIn(page, server.url, made.token);
    await waitFor(async () => (await rowKeys(page)).length > 0, 'rows', WAIT);
    await api(server, admin, 'DELETE', `/api/tokens/${made.id}`);
    // The next call the page makes is refused (chromium logs that 401), and the page signs out.
    expect(/status of 401.*\/api\/audit/);
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByText('Your session ended').waitFor({ timeout: WAIT });
    assert.ok(await page.getByLabel('Token').isVisible());
    await page.context().close();
  });

  test('at phone width the instances view fits the screen and keeps its controls', async () => {
    const { page } = await newPage({ width: 390, height: 844 });
    await signIn(page, server.url, admin);
    await waitFor(async () => (await rowKeys(page)).length === 2, 'two rows', WAIT);
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
    assert.ok(overflow <= 1, `the page does not scroll sideways (the table scrolls in its own box): ${overflow}px`);
    for (const name of ['Instances', 'Audit', 'Tokens']) assert.ok(await page.getByRole('link', { name }).isVisible(), `${name} link in view`);
    assert.ok(await page.getByTestId('filter').isVisible());
    const restart = page.getByRole('button', { name: 'Restart web:alice' });
    await restart.scrollIntoViewIfNeeded();
    assert.ok(await restart.isVisible(), 'the row actions are reachable by scrolling the table');
    await screenshot(page, 'phone');

    await page.getByRole('link', { name: 'alice' }).click();
    await page.getByTestId('charts').locator('canvas').first().waitFor({ timeout: WAIT });
    const pageOverflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
    assert.ok(pageOverflow <= 1, `the instance page does not scroll sideways either: ${pageOverflow}px`);
    await screenshot(page, 'phone-instance');
  });

  test('the functions view counts the invocations of a WASM function', async (t) => {
    if (wasmSkip) return t.skip(wasmSkip);
    for (let i = 0; i < 3; i++) assert.equal((await request(server.url, 'alice.fn.localhost', `/?n=${i}`)).status, 200);
    const { page } = await newPage();
    await signIn(page, server.url, admin);
    await page.getByRole('link', { name: 'Functions' }).click();
    const row = page.getByTestId('functions-table').locator('tr', { hasText: 'fn:alice' });
    await row.waitFor({ timeout: WAIT });
    const cells = await row.locator('td').allTextContents();
    assert.equal(cells[0], 'fn:alice');
    assert.ok(Number(cells[1]) >= 3, `invocations: ${cells.join(' | ')}`);
    await screenshot(page, 'functions');
    await api(server, admin, 'DELETE', '/api/instances/fn/alice');
  });

  test('no console errors on any page', () => {
    assertNoConsoleProblems(problems);
  });
});
