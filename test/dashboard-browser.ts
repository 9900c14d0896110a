// Helpers for the dashboard's real-browser tests: Debian's chromium driven by playwright-core, a console that
// counts errors, and sign-in through the page as a user does it.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';
import { ROOT } from './helpers.ts';

export const CHROMIUM = '/usr/bin/chromium';
export const ARTIFACTS = path.join(ROOT, 'test', 'artifacts');
export const DIST_INDEX = path.join(ROOT, 'plugins', 'dashboard', 'dist', 'index.html');

/** Why the browser tests cannot run here, or null when they can. */
export function browserSkipReason(): string | null {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)`;
  if (!existsSync(DIST_INDEX)) return 'the dashboard is not built: npm ci or npm run build:dashboard writes plugins/dashboard/dist';
  return null;
}

export function launchChromium(): Promise<Browser> {
  // Without the background-networking switches chromium reaches for the network at start (component updates,
  // sync, QUIC probes), which a closed CI network answers with refusals and delays.
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 60_000,
  });
}

export interface ConsoleProblem {
  page: string;
  text: string;
}

/**
 * Every console error and uncaught exception of the pages of `context`, except the ones `expected` allows
 * (e.g. the browser's own "Failed to load resource: 401" line for a sign-in the test means to be refused).
 */
export function watchConsole(context: BrowserContext): { problems: ConsoleProblem[]; expect(pattern: RegExp): void } {
  const problems: ConsoleProblem[] = [];
  const allowed: RegExp[] = [];
  const watch = (page: Page): void => {
    page.on('console', (message: ConsoleMessage) => {
      if (message.type() !== 'error' && message.type() !== 'warning') return;
      const where = message.location().url;
      const text = `${message.type()}: ${message.text()}${where ? ` (${where})` : ''}`;
      if (message.type() === 'warning' && !/Content Security Policy|Refused/i.test(text)) return;
      const index = allowed.findIndex((pattern) => pattern.test(text));
      if (index >= 0) allowed.splice(index, 1);
      else problems.push({ page: page.url(), text });
    });
    page.on('pageerror', (error) => problems.push({ page: page.url(), text: `pageerror: ${error.stack ?? error.message}` }));
  };
  context.pages().forEach(watch);
  context.on('page', watch);
  return { problems, expect: (pattern) => allowed.push(pattern) };
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `dashboard-${name}.png`), fullPage: false });
}

/** Opens the dashboard and signs in through the form; resolves once the instances view is up. */
export async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/#/instances`);
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('identity').waitFor({ timeout: 30_000 });
}

/**
 * The state text of the row of `key`, or null when the row is not in the DOM. Read in one evaluation: a count
 * then a textContent raced a row removed in between (textContent then waited 30 s for a row that was gone).
 */
export async function rowState(page: Page, key: string): Promise<string | null> {
  const cells = page.locator(`tr[data-key="${key}"] [data-col="state"]`);
  return cells.evaluateAll((found) => (found.length === 0 ? null : (found[0]!.textContent ?? '').trim()));
}

/** Visible row keys of the instances table, in order. */
export async function rowKeys(page: Page): Promise<string[]> {
  return page.locator('tbody tr[data-key]').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-key') ?? ''));
}

export function assertNoConsoleProblems(problems: ConsoleProblem[]): void {
  assert.deepEqual(problems, [], `console errors:\n${problems.map((p) => `${p.page}: ${p.text}`).join('\n')}`);
}

/**
 * Controls on the page without an accessible name (no label, aria-label, aria-labelledby or text): what a screen
 * reader or a keyboard user would meet as "button" or "edit text" with nothing more. Also any control taken out of
 * the tab order. A string, not a function: tsx's compiled functions call helpers the page lacks.
 */
export async function unlabelledControls(page: Page): Promise<string[]> {
  return page.evaluate<string[]>(`(() => {
    const bad = [];
    for (const el of document.querySelectorAll('button, input, select, textarea, a[href], [tabindex]')) {
      if (el.closest('[hidden], [aria-hidden="true"]') || el.type === 'hidden') continue;
      const name = (el.getAttribute('aria-label') ?? '').trim()
        || (el.getAttribute('aria-labelledby') ? 'labelledby' : '')
        || (el.labels && el.labels.length > 0 ? 'label' : '')
        || (el.tagName === 'INPUT' ? '' : (el.textContent ?? '').trim())
        || (el.getAttribute('title') ?? '').trim();
      if (!name) bad.push(el.outerHTML.slice(0, 120));
      if (el.getAttribute('tabindex') === '-1' && el.tagName !== 'DIALOG') bad.push('not focusable: ' + el.outerHTML.slice(0, 120));
    }
    return bad;
  })()`);
}
