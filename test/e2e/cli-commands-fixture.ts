// `ten` child processes for the client command tests. Unlike test/ten-cli.ts's, these record their context in a
// folder of the test file's own (XDG_CONFIG_HOME, removed when the file's tests are done) and give up on a call
// after a minute.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { TEN, type Result } from '../ten-cli.ts';

const CALL_TIMEOUT_MS = 60_000;

/**
 * Where `ten serve` records its context (contexts.json) in these tests: a folder of their own, so a run of one test
 * file alone (without npm test's XDG_CONFIG_HOME) never points the user's current context at a deleted temp server.
 */
const CONFIG_HOME = mkdtempSync(path.join(os.tmpdir(), 'tenement-cli-config-'));
after(() => rmSync(CONFIG_HOME, { recursive: true, force: true }));

/** The environment of a user without any TENEMENT_* variables set (the test runner's own must not leak in). */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('TENEMENT_') && key !== 'NO_COLOR') env[key] = value;
  }
  return { ...env, XDG_CONFIG_HOME: CONFIG_HOME, ...extra };
}

/** `ten <args>` in `cwd`, with `env` added to the clean environment. */
export function ten(args: string[], cwd: string, env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [TEN, ...args], { cwd, timeout: CALL_TIMEOUT_MS, env: cleanEnv(env) }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Asserts a failure: exit code 1, nothing on stdout, exactly one `ten: ...` line on stderr. */
export function assertOneLineFailure(result: Result, pattern: RegExp): void {
  assert.equal(result.code, 1, `expected exit 1, got ${result.code}: ${result.stderr}`);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, /^ten: [^\n]+\n$/, `not one line: ${JSON.stringify(result.stderr)}`);
  assert.match(result.stderr, pattern);
}
