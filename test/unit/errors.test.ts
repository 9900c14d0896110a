// Coded errors (issue 9): each code answers one status defined with it, and a coded error thrown in a plugin's
// tap keeps its code and gains the plugin and the hook (Rollup's pluginCode), in what it throws, logs and answers.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { pino, type Logger } from 'pino';
import { ErrorCodes, TenementError, errorTable, isErrorCode, isTenementError, pluginError, statusOf, type ErrorCode } from '../../core/errors.ts';
import { HookTimings, createHooks } from '../../core/hooks.ts';
import { toHttpError } from '../../core/http-errors.ts';
import type { PluginEntry } from '../../core/plugin.ts';
import { bootKernel, type BootedKernel } from '../../core/boot.ts';
import type { RequestInfo, SpawnSpec } from '../../core/types.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import router from '../../plugins/router/index.ts';
import processRuntime from '../../runtimes/process/index.ts';
import { definePlugin } from '../../sdk/index.ts';
import { ROOT, apiCall, echoService, request, waitFor } from '../helpers.ts';

const TIMEOUT = 60_000;

/** A thrown value as a TenementError (the assertion fails otherwise). */
async function caught(run: () => Promise<unknown>): Promise<TenementError> {
  try {
    await run();
  } catch (error) {
    assert.ok(isTenementError(error), `a TenementError, got ${String(error)}`);
    return error;
  }
  assert.fail('it did not throw');
}

/** A logger whose JSON lines land in `lines`. */
function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

async function kernelWith(t: TestContext, plugins: PluginEntry[], logger?: Logger): Promise<BootedKernel> {
  const kernel = await bootKernel({ plugins, config: { services: { echo: echoService() } }, tempPrefix: 'tenement-test-', ...(logger ? { logger } : {}) });
  t.after(() => kernel.close());
  return kernel;
}

test('every code has one HTTP status in the table, and a TenementError answers with it unless told otherwise', () => {
  const table = errorTable();
  const codes = Object.values(ErrorCodes);
  assert.ok(codes.length > 40);
  assert.equal(table.size, codes.length);
  for (const [name, code] of Object.entries(ErrorCodes)) {
    assert.equal(code, `TNM_ERR_${name}`);
    const spec = table.get(code);
    assert.ok(spec, `${code} is in the table`);
    assert.ok(Number.isInteger(spec.status) && spec.status >= 400 && spec.status <= 599, `${code}: ${spec.status}`);
    assert.equal(new TenementError(code, 'x').status, spec.status, code);
    assert.equal(toHttpError(new TenementError(code, 'x')).status, spec.status, code);
    // A retryable answer is a server-side or rate condition, never a client's mistake.
    if (spec.retryable) assert.ok(spec.status === 429 || spec.status >= 500, `${code} is retryable with ${spec.status}`);
  }
  // A few that clients and tests rely on.
  const expected: Array<[ErrorCode, number]> = [
    [ErrorCodes.BAD_HOST, 400],
    [ErrorCodes.BAD_NAME, 400],
    [ErrorCodes.BAD_REQUEST, 400],
    [ErrorCodes.UNAUTHORIZED, 401],
    [ErrorCodes.FORBIDDEN, 403],
    [ErrorCodes.UNKNOWN_INSTANCE, 404],
    [ErrorCodes.CONFLICT, 409],
    [ErrorCodes.RATE_LIMITED, 429],
    [ErrorCodes.HOOK_FAILED, 500],
    [ErrorCodes.UPSTREAM_ERROR, 502],
    [ErrorCodes.TIER_UNAVAILABLE, 503],
    [ErrorCodes.WAKE_FAILED, 503],
    [ErrorCodes.UPSTREAM_TIMEOUT, 504],
  ];
  for (const [code, status] of expected) assert.equal(statusOf(code), status, code);
  // Only an answer chosen at run time (a sandboxed plugin's deny) overrides it.
  assert.equal(new TenementError(ErrorCodes.PLUGIN_DENIED, 'no', { status: 401 }).status, 401);
});

test('a coded error thrown in a route, spawn or beforeSpawn tap keeps its code, status and message and names the plugin and hook', async () => {
  const hooks = createHooks(new HookTimings());
  const spec = { tier: 'process' } as SpawnSpec;
  // Sync throws (tap) and async rejections (tapPromise) both.
  hooks.route.tap('gatekeeper', () => {
    throw new TenementError(ErrorCodes.FORBIDDEN, 'not from here');
  });
  hooks.spawn.for('process').tapPromise('runtime-x', async () => {
    throw new TenementError(ErrorCodes.NO_PORT, 'no port left', { retryAfter: 7 });
  });
  hooks.beforeSpawn.tapPromise('limits', async () => {
    throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, 'cannot enforce limits here');
  });

  const routed = await caught(() => hooks.route.promise({ hostname: 'a.b.localhost' } as RequestInfo));
  assert.deepEqual(
    { code: routed.code, status: routed.status, message: routed.message, plugin: routed.plugin, hook: routed.hook },
    { code: ErrorCodes.FORBIDDEN, status: 403, message: 'not from here', plugin: 'gatekeeper', hook: 'route' },
  );
  const spawned = await caught(() => hooks.spawn.for('process').promise(spec));
  assert.deepEqual(
    { code: spawned.code, status: spawned.status, retryAfter: spawned.retryAfter, plugin: spawned.plugin, hook: spawned.hook },
    { code: ErrorCodes.NO_PORT, status: 503, retryAfter: 7, plugin: 'runtime-x', hook: 'spawn:process' },
  );
  const prepared = await caught(() => hooks.beforeSpawn.promise(spec));
  assert.deepEqual([prepared.code, prepared.plugin, prepared.hook], [ErrorCodes.TIER_UNAVAILABLE, 'limits', 'beforeSpawn']);
  // The stack still points at the throw, not at the interceptor.
  assert.match(prepared.stack ?? '', /errors\.test\.ts/);
  // What a client is answered carries the origin too (the management API shows it; the edge does not send it).
  assert.deepEqual(
    { ...toHttpError(routed) },
    { status: 403, code: ErrorCodes.FORBIDDEN, message: 'not from here', plugin: 'gatekeeper', hook: 'route' },
  );
});

test('an uncoded failure in a tap is HOOK_FAILED naming both; an error that already names its origin keeps it', async () => {
  const hooks = createHooks(new HookTimings());
  hooks.route.tap('buggy', () => {
    throw new Error('undefined is not a function');
  });
  const buggy = await caught(() => hooks.route.promise({ hostname: 'x' } as RequestInfo));
  assert.deepEqual([buggy.code, buggy.status, buggy.plugin, buggy.hook], [ErrorCodes.HOOK_FAILED, 500, 'buggy', 'route']);
  assert.match(buggy.message, /plugin 'buggy' failed in hook 'route': undefined is not a function/);

  // A tap that calls into another hook lets its failure through unchanged: the deepest origin is the true one.
  const inner = pluginError(new TenementError(ErrorCodes.WAKE_FAILED, 'could not wake'), 'hibernate', 'wake');
  const nested = createHooks(new HookTimings());
  nested.route.tapPromise('router', async () => {
    throw inner;
  });
  const outer = await caught(() => nested.route.promise({ hostname: 'x' } as RequestInfo));
  assert.equal(outer, inner);
  assert.deepEqual([outer.plugin, outer.hook], ['hibernate', 'wake']);
});

test('through a real kernel: a coded error in a route tap answers its own status and code; in an auth tap the API names the plugin and hook', { timeout: TIMEOUT }, async (t) => {
  const gate = definePlugin({
    name: 'gate',
    version: '1.0.0',
    kernel: '^1',
    enforce: 'pre',
    setup(ctx) {
      ctx.hooks.route.tap((info) => {
        if (info.hostname.startsWith('blocked.')) throw new TenementError(ErrorCodes.RATE_LIMITED, 'slow down', { retryAfter: 9 });
        return undefined;
      });
      ctx.hooks.auth.tap(async () => {
        throw new TenementError(ErrorCodes.FORBIDDEN, 'tokens are disabled here');
      });
    },
  });
  const kernel = await kernelWith(t, [processRuntime, router, gate]);
  const edge = await request(kernel, 'blocked.echo.localhost', '/');
  assert.equal(edge.status, 429, edge.body);
  assert.equal(edge.headers['retry-after'], '9');
  // The edge answers the code and message only: plugin names are for operators.
  assert.deepEqual(JSON.parse(edge.body), { error: { code: ErrorCodes.RATE_LIMITED, message: 'slow down' } });

  const api = await apiCall(kernel, 'GET', '/api/audit', { authorization: 'Bearer tnm_whatever' });
  assert.equal(api.status, 403, api.body);
  assert.deepEqual(JSON.parse(api.body), {
    error: { code: ErrorCodes.FORBIDDEN, message: 'tokens are disabled here', plugin: 'gate', hook: 'auth' },
  });
});

test('through a real kernel: a coded error in a beforeSpawn tap is logged with its code, plugin and hook', { timeout: TIMEOUT }, async (t) => {
  const { logger, lines } = capturingLogger();
  const refuse = definePlugin({
    name: 'refuse',
    version: '1.0.0',
    kernel: '^1',
    setup(ctx) {
      ctx.hooks.beforeSpawn.tap(() => {
        throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, 'this host cannot enforce the limits');
      });
    },
  });
  const kernel = await kernelWith(t, [processRuntime, router, refuse], logger);
  const instance = await kernel.spawnInstance('echo', 'alice');
  assert.notEqual(instance.state, 'running');
  assert.match(instance.lastError ?? '', /cannot enforce the limits/);
  await waitFor(() => lines.some((line) => line.msg === 'start failed'), 'the start failure to be logged');
  const line = lines.find((l) => l.msg === 'start failed')!;
  assert.deepEqual(
    { code: line.code, plugin: line.plugin, hook: line.hook, instance: line.instance },
    { code: ErrorCodes.TIER_UNAVAILABLE, plugin: 'refuse', hook: 'beforeSpawn', instance: 'echo:alice' },
  );
});

test('a bad weight is a BAD_REQUEST (400), not a BAD_NAME', { timeout: TIMEOUT }, async (t) => {
  const kernel = await kernelWith(t, [processRuntime, router]);
  const instance = kernel.createInstance('echo', 'alice');
  for (const weight of [101, -1, 1.5, Number.NaN]) {
    const error = await caught(async () => kernel.setWeight(instance, weight));
    assert.deepEqual([error.code, error.status], [ErrorCodes.BAD_REQUEST, 400], String(weight));
  }
  assert.equal(instance.weight, 100);
});

test('a failing onClose is logged with its plugin; stateChange observers are called in order and not waited for', { timeout: TIMEOUT }, async (t) => {
  const { logger, lines } = capturingLogger();
  const seen: string[] = [];
  let release: () => void = () => undefined;
  const closer = definePlugin({
    name: 'closer',
    version: '1.0.0',
    kernel: '^1',
    setup(ctx) {
      ctx.onClose(() => {
        throw new Error('could not flush');
      });
      ctx.onClose(async () => {
        throw new TenementError(ErrorCodes.STORE, 'database is locked');
      });
      // An async observer that never settles must hold nothing up; one that rejects is contained.
      ctx.hooks.stateChange.tap(async (event) => {
        seen.push(`slow:${event.type}`);
        await new Promise<void>((resolve) => {
          release = resolve;
        });
      });
      ctx.hooks.stateChange.tap(async (event) => {
        seen.push(`failing:${event.type}`);
        throw new Error('observer broke');
      });
      ctx.hooks.stateChange.tap((event) => {
        seen.push(`sync:${event.type}`);
      });
    },
  });
  const kernel = await bootKernel({ plugins: [processRuntime, router, closer], config: { services: { echo: echoService() } }, tempPrefix: 'tenement-test-', logger });
  // Declared as what it is: an observer hook with nothing to await.
  assert.equal(kernel.hooks.stateChange.constructor.name, 'SyncHook');
  assert.throws(() => (kernel.hooks.stateChange as unknown as { tapPromise(name: string, fn: () => Promise<void>): void }).tapPromise('x', async () => undefined), /not supported/);
  const instance = kernel.createInstance('echo', 'alice');
  // Delivered synchronously, every tap in turn, before createInstance returned.
  assert.deepEqual(seen, ['slow:created', 'failing:created', 'sync:created']);
  kernel.emit(instance, 'unhealthy', 'test');
  assert.deepEqual(seen.slice(3), ['slow:unhealthy', 'failing:unhealthy', 'sync:unhealthy']);
  release();
  await kernel.close();
  const closeLines = lines.filter((l) => l.msg === 'plugin close failed');
  // Last registered closes first; an uncoded failure is HOOK_FAILED, a coded one keeps its code.
  assert.deepEqual(
    closeLines.map((l) => [l.plugin, l.hook, l.code]),
    [
      ['closer', 'onClose', ErrorCodes.STORE],
      ['closer', 'onClose', ErrorCodes.HOOK_FAILED],
    ],
    JSON.stringify(lines),
  );
  assert.match(String(closeLines[0]!.err), /database is locked/);
  assert.match(String(closeLines[1]!.err), /plugin 'closer' failed in hook 'onClose': could not flush/);
});

/** Every .ts file under `dir` (relative to the repository root). */
function sources(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => path.join(dir, file));
}

/** The text of the object literal or call around `at`, from its opening bracket to the matching close. */
function enclosing(text: string, at: number, open: string, close: string): string {
  let depth = 0;
  let start = at;
  for (; start > 0; start--) {
    if (text[start] === close) depth++;
    else if (text[start] === open && depth-- === 0) break;
  }
  depth = 0;
  let end = start;
  for (; end < text.length; end++) {
    if (text[end] === open) depth++;
    else if (text[end] === close && --depth === 0) break;
  }
  return text.slice(start, end + 1);
}

test('no call site answers a code with a status other than its own (only a sandboxed plugin\'s deny chooses one), nor repeats it in a TenementError', () => {
  const disagreements: string[] = [];
  const repeated: string[] = [];
  const codeOf = (name: string): ErrorCode => `TNM_ERR_${name}` as ErrorCode;
  for (const file of ['core', 'plugins', 'runtimes'].flatMap(sources)) {
    const text = readFileSync(path.join(ROOT, file), 'utf8');
    const check = (code: ErrorCode, around: string, at: number): void => {
      const status = /\bstatus: (\d{3})\b/.exec(around)?.[1];
      if (status === undefined || code === ErrorCodes.PLUGIN_DENIED) return;
      if (Number(status) !== statusOf(code)) {
        disagreements.push(`${file}:${text.slice(0, at).split('\n').length} ${code} with ${status} (table: ${statusOf(code)})`);
      }
    };
    // Answers built by hand: { status, code, message } (HttpError, a route's reject target).
    for (const match of text.matchAll(/code: (?:ErrorCodes\.(\w+)|'TNM_ERR_(\w+)')/g)) {
      check(codeOf(match[1] ?? match[2]!), enclosing(text, match.index, '{', '}'), match.index);
    }
    // Thrown ones: new TenementError(code, message, { status }); the status is the code's unless chosen at run time.
    for (const match of text.matchAll(/new TenementError\(\s*ErrorCodes\.(\w+)/g)) {
      const call = enclosing(text, match.index + match[0].indexOf('(') + 1, '(', ')');
      check(codeOf(match[1]!), call, match.index);
      const status = /\bstatus: (\d{3})\b/.exec(call)?.[1];
      if (status !== undefined && Number(status) === statusOf(codeOf(match[1]!))) {
        repeated.push(`${file}:${text.slice(0, match.index).split('\n').length} ${codeOf(match[1]!)} repeats status ${status}`);
      }
    }
  }
  assert.deepEqual(disagreements, []);
  assert.deepEqual(repeated, [], 'a TenementError takes its status from its code (core/errors.ts): drop the status option');
});

test("README's table of the errors Tenement answers gives each code its own status", () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8').split('\n');
  const start = readme.findIndex((line) => line.startsWith('Errors Tenement answers itself'));
  assert.notEqual(start, -1);
  const after = readme.slice(start);
  const first = after.findIndex((line) => line.startsWith('|'));
  const end = after.findIndex((line, i) => i > first && !line.startsWith('|'));
  let checked = 0;
  for (const row of after.slice(first, end)) {
    const status = /^\| (\d{3})/.exec(row)?.[1];
    if (status === undefined) continue;
    const codes = row.split('|')[2]!.match(/TNM_ERR_\w+/g) ?? [];
    for (const code of codes) {
      assert.ok(isErrorCode(code), `${code} (README) is a code`);
      assert.equal(statusOf(code), Number(status), `${code}: README says ${status}`);
      checked++;
    }
  }
  assert.ok(checked >= 10, `${checked} codes checked`);
});

test("the management API's own refusals (Fastify's) are coded by their status: 415, 413, 400", { timeout: TIMEOUT }, async (t) => {
  const kernel = await kernelWith(t, [processRuntime, router, instancesApi]);
  const xml = await apiCall(kernel, 'POST', '/api/instances/echo/alice', { 'content-type': 'application/xml' });
  assert.equal(xml.status, 415, xml.body);
  assert.equal((JSON.parse(xml.body) as { error: { code: string } }).error.code, ErrorCodes.UNSUPPORTED_MEDIA_TYPE);
  const big = await request(kernel, 'localhost', '/api/instances/echo/alice', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) }),
  });
  assert.equal(big.status, 413, big.body);
  assert.equal((JSON.parse(big.body) as { error: { code: string } }).error.code, ErrorCodes.BODY_TOO_LARGE);
  const broken = await request(kernel, 'localhost', '/api/instances/echo/alice', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"weight":',
  });
  assert.equal(broken.status, 400, broken.body);
  assert.equal((JSON.parse(broken.body) as { error: { code: string } }).error.code, ErrorCodes.BAD_REQUEST);
});
