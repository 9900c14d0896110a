import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { backoffDelay } from '../../core/backoff.ts';
import { splitCommand, splitCommandMemo } from '../../core/command.ts';
import { clientResponseHeaders, upstreamRequestHeaders } from '../../core/headers.ts';
import { Instance } from '../../core/instance.ts';
import { LineSplitter, LogBuffer } from '../../core/log-buffer.ts';
import { MIGRATIONS, Store } from '../../core/store.ts';
import { hostnameOf } from '../../core/server.ts';
import { resolveConfig } from '../../core/config/loader.ts';
import { parseTenantHost } from '../../plugins/router/parse-host.ts';
import { weightedOrder } from '../../plugins/router/weighted.ts';

test('backoff grows exponentially with equal jitter, capped', () => {
  const low = () => 0;
  const high = () => 0.999999;
  assert.equal(backoffDelay(0, 100, 10_000, low), 50);
  assert.equal(backoffDelay(0, 100, 10_000, high), 100);
  assert.equal(backoffDelay(3, 100, 10_000, low), 400);
  assert.equal(backoffDelay(3, 100, 10_000, high), 800);
  assert.equal(backoffDelay(20, 100, 10_000, high), 10_000);
  for (let attempt = 1; attempt < 8; attempt++) {
    assert.ok(backoffDelay(attempt, 100, 100_000, low) >= backoffDelay(attempt - 1, 100, 100_000, high), 'each delay is at least the previous ceiling');
  }
});

test('commands are split like a shell would, without running one', () => {
  assert.deepEqual(splitCommand(`uv run python "my app.py" --name='a b'`), ['uv', ['run', 'python', 'my app.py', '--name=a b']]);
  assert.deepEqual(splitCommand('node app.js $PORT'), ['node', ['app.js', '$PORT']]);
  assert.throws(() => splitCommand('a && b'), /shell feature '&&'/);
  assert.throws(() => splitCommand('cat > out'), /shell feature '>'/);
});

test('a remembered split hands out its own words each time, and a refused command stays refused', () => {
  const first = splitCommandMemo('node app.js --port 1');
  first[1].push('--changed-by-a-tap');
  assert.deepEqual(splitCommandMemo('node app.js --port 1'), ['node', ['app.js', '--port', '1']]);
  for (let i = 0; i < 2; i++) assert.throws(() => splitCommandMemo('a | b'), /shell feature '\|'/);
  assert.deepEqual(splitCommandMemo('__proto__ constructor'), ['__proto__', ['constructor']]);
});

test('request headers: hop-by-hop stripped, X-Forwarded-* added, everything else untouched', () => {
  const raw = [
    'Host', 'a.notes.localhost:8080',
    'Authorization', 'Bearer secret',
    'Connection', 'keep-alive, X-Private',
    'X-Private', 'drop me',
    'Keep-Alive', 'timeout=5',
    'Proxy-Authorization', 'Basic x',
    'TE', 'trailers',
    'Upgrade', 'h2c',
    'X-Forwarded-For', '10.0.0.1',
    'Set-Thing', 'one',
    'Set-Thing', 'two',
  ];
  const out = upstreamRequestHeaders(raw, { remoteAddress: '127.0.0.1', proto: 'http', host: 'a.notes.localhost:8080' });
  assert.deepEqual(out, [
    'Host', 'a.notes.localhost:8080',
    'Authorization', 'Bearer secret',
    'Set-Thing', 'one',
    'Set-Thing', 'two',
    'X-Forwarded-For', '10.0.0.1, 127.0.0.1',
    'X-Forwarded-Proto', 'http',
    'X-Forwarded-Host', 'a.notes.localhost:8080',
  ]);
  const outer = upstreamRequestHeaders(['X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'notes.example.com'], {
    remoteAddress: '127.0.0.1', proto: 'http', host: 'x',
  });
  assert.deepEqual(outer, ['X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'notes.example.com', 'X-Forwarded-For', '127.0.0.1']);
  const upgrade = upstreamRequestHeaders(['Connection', 'Upgrade', 'Upgrade', 'websocket'], { remoteAddress: '::1', proto: 'http', host: undefined }, true);
  assert.deepEqual(upgrade, ['Connection', 'Upgrade', 'Upgrade', 'websocket', 'X-Forwarded-For', '::1', 'X-Forwarded-Proto', 'http']);
});

test('response headers: hop-by-hop stripped, the rest in order', () => {
  assert.deepEqual(
    clientResponseHeaders(['Content-Type', 'text/plain', 'Transfer-Encoding', 'chunked', 'Connection', 'close', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2']),
    ['Content-Type', 'text/plain', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'],
  );
});

test('host names: port, case and trailing dot ignored', () => {
  assert.equal(hostnameOf('Alice.Notes.LOCALHOST:8080'), 'alice.notes.localhost');
  assert.equal(hostnameOf('alice.notes.example.com.'), 'alice.notes.example.com');
  assert.equal(hostnameOf('[::1]:8080'), '[::1]');
  assert.equal(hostnameOf(''), null);
  assert.equal(hostnameOf(undefined), null);
});

test('tenant hosts parse into service and id, and bad ones into 4xx', () => {
  assert.deepEqual(parseTenantHost('alice.notes.example.com', 'example.com'), { service: 'notes', id: 'alice' });
  assert.deepEqual(parseTenantHost('notes.example.com', 'example.com'), { service: 'notes', id: null });
  assert.equal((parseTenantHost('a.b.notes.example.com', 'example.com') as { status: number }).status, 400);
  assert.equal((parseTenantHost('a_b.notes.example.com', 'example.com') as { code: string }).code, 'TNM_ERR_BAD_NAME');
  assert.equal((parseTenantHost('-a.notes.example.com', 'example.com') as { status: number }).status, 400);
  assert.equal((parseTenantHost('notes.other.org', 'example.com') as { status: number }).status, 404);
  assert.equal((parseTenantHost('xexample.com', 'example.com') as { status: number }).status, 404);
});

test('weighted order: running first by weight, weight 0 and failed never', () => {
  const config = resolveConfig({ services: { s: { command: 'x' } } }, { path: null, dir: '/' }).services.s!;
  const make = (id: string, weight: number, state: Instance['state'], running = state === 'running'): Instance => {
    const instance = new Instance('s', id, config, 1000);
    instance.weight = weight;
    instance.setState(state);
    if (running) instance.handle = { pid: 1, pgid: 1, address: { host: '127.0.0.1', port: 1 }, stop: async () => ({ code: 0, signal: null }), stats: async () => ({ pid: 1, memoryBytes: 0, cpuSeconds: 0 }) };
    return instance;
  };
  const heavy = make('heavy', 90, 'running');
  const light = make('light', 10, 'running');
  const zero = make('zero', 0, 'running');
  const failed = make('failed', 100, 'failed');
  const sleeping = make('sleeping', 100, 'hibernated');
  let heavyFirst = 0;
  for (let i = 0; i < 2000; i++) {
    const order = weightedOrder([light, zero, failed, sleeping, heavy]);
    assert.equal(order.length, 3);
    assert.ok(!order.includes(zero) && !order.includes(failed));
    assert.equal(order[2], sleeping, 'an instance that must wake comes after running ones');
    if (order[0] === heavy) heavyFirst++;
  }
  assert.ok(heavyFirst > 1600 && heavyFirst < 1990, `heavy first ${heavyFirst}/2000 (expected about 90%)`);
});

test('log buffer keeps the newest lines within its byte budget', () => {
  const buffer = new LogBuffer(10_000);
  for (let i = 0; i < 500; i++) buffer.push({ at: i, stream: i % 2 ? 'stderr' : 'stdout', line: `line ${i}` });
  // Each entry is charged its characters plus the heap overhead of an entry, so ~56 short lines fit.
  assert.ok(buffer.size < 100 && buffer.size > 10, `kept ${buffer.size}`);
  assert.ok(buffer.bytesUsed <= 10_000);
  const last = buffer.query({ limit: 3 });
  assert.deepEqual(last.map((l) => l.line), ['line 497', 'line 498', 'line 499']);
  assert.ok(buffer.query({ stream: 'stderr' }).every((l) => l.stream === 'stderr'));
  assert.deepEqual(buffer.query({ search: 'line 498' }).map((l) => l.at), [498]);
  buffer.trimTo(1_000);
  assert.ok(buffer.size >= 1 && buffer.size <= 6, `kept ${buffer.size} after trim`);
  assert.equal(buffer.query({ limit: 1 })[0]!.line, 'line 499');
});

test('line splitter handles partial lines, CRLF and endless lines', () => {
  const lines: string[] = [];
  const splitter = new LineSplitter((line) => lines.push(line), 8);
  splitter.write('hel');
  splitter.write('lo\r\nwor');
  splitter.write('ld\nabcdefghijkl');
  splitter.end();
  assert.deepEqual(lines, ['hello', 'world', 'abcdefgh', 'ijkl']);
});

test('the store migrates a fresh database to the latest version and keeps desired state', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'tenement.db');
  const store = new Store(file);
  assert.equal(store.schemaVersion, MIGRATIONS.at(-1)!.version);
  assert.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
  store.saveInstance('notes', 'alice', 'running', 100);
  store.saveInstance('notes', 'bob', 'hibernated', 0);
  store.saveProcess('notes', 'alice', 1234, 1234);
  store.saveInstance('notes', 'alice', 'running', 40);
  store.close();
  const reopened = new Store(file);
  assert.deepEqual(reopened.listInstances(), [
    { service: 'notes', id: 'alice', desired: 'running', weight: 40, pid: 1234, pgid: 1234 },
    { service: 'notes', id: 'bob', desired: 'hibernated', weight: 0, pid: null, pgid: null },
  ]);
  reopened.removeInstance('notes', 'bob');
  assert.equal(reopened.listInstances().length, 1);
  reopened.close();
  const raw = new Database(file);
  assert.throws(() => raw.prepare(`INSERT INTO instances VALUES ('a', 'b', 'dancing', 1, NULL, NULL, 0)`).run(), /CHECK constraint/);
  raw.close();
});
