// The logs plugin: instance output persisted to SQLite with a full-text index, queried through GET /api/logs,
// streamed live through GET /api/logs/stream (Server-Sent Events), scoped per tenant, and kept within budgets.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { ConfigInput } from '../../core/config/schema.ts';
import type { Kernel } from '../../core/kernel.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import logs, { type LogsOptions } from '../../plugins/logs/index.ts';
import { ADMIN, staticAuth, tenant } from '../fixtures/static-auth.ts';
import { echoService, request, servePlugins, sleep, waitFor } from '../helpers.ts';

interface Line {
  at: number;
  service: string;
  id: string;
  stream: 'stdout' | 'stderr';
  line: string;
}

async function boot(options: LogsOptions = {}, settings: ConfigInput['settings'] = {}): Promise<TestKernel> {
  return createTestKernel({
    plugins: [...servePlugins, staticAuth, [logs, options]],
    config: { settings: { logBuffer: '2KB', ...settings }, services: { echo: echoService(), other: echoService() } },
  });
}

/** GET on the management host; the JSON body parsed. */
interface Body {
  lines: Line[];
  error: { code: string; message: string };
}

async function api(kernel: Kernel, urlPath: string, headers: Record<string, string> = ADMIN): Promise<{ status: number; body: Body }> {
  const reply = await request(kernel, 'localhost', urlPath, { headers });
  return { status: reply.status, body: JSON.parse(reply.body) as Body };
}

async function lines(kernel: Kernel, query: string, headers: Record<string, string> = ADMIN): Promise<Line[]> {
  const reply = await api(kernel, `/api/logs?${query}`, headers);
  assert.equal(reply.status, 200, `GET /api/logs?${query}: ${JSON.stringify(reply.body)}`);
  return reply.body.lines;
}

/** Makes the instance print `line` on stdout and `err:line` on stderr. */
async function say(kernel: Kernel, id: string, line: string, service = 'echo'): Promise<void> {
  const reply = await request(kernel, `${id}.${service}.localhost`, `/log?line=${encodeURIComponent(line)}`);
  assert.equal(reply.status, 200);
}

/** Waits until a query returns `count` lines. */
async function expectLines(kernel: Kernel, query: string, count: number, headers: Record<string, string> = ADMIN): Promise<Line[]> {
  let last: Line[] = [];
  await waitFor(async () => (last = await lines(kernel, query, headers)).length === count, `${count} lines for ${query} (have ${last.length})`);
  return last;
}

interface Stream {
  status: number;
  headers: IncomingHttpHeaders;
  events: Line[];
  /** Raw text received, comments included. */
  raw: () => string;
  ended: Promise<void>;
  close(): void;
}

/** A Server-Sent Events client: collects `data:` events as parsed JSON. */
function openStream(kernel: Kernel, query: string, headers: Record<string, string>): Promise<Stream> {
  const base = new URL(kernel.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: base.hostname, port: base.port, path: `/api/logs/stream?${query}`, headers: { host: 'localhost', ...headers }, agent: false });
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      let pending = '';
      const events: Line[] = [];
      const ended = new Promise<void>((done) => {
        res.on('end', () => done());
        res.on('close', () => done());
        res.on('error', () => done());
      });
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        pending += chunk;
        for (let end = pending.indexOf('\n\n'); end !== -1; end = pending.indexOf('\n\n')) {
          const block = pending.slice(0, end);
          pending = pending.slice(end + 2);
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (data && !block.includes('event: ')) events.push(JSON.parse(data.slice(6)) as Line);
        }
      });
      resolve({ status: res.statusCode ?? 0, headers: res.headers, events, raw: () => text, ended, close: () => req.destroy() });
    });
    req.end();
  });
}

async function streamClients(kernel: Kernel): Promise<number> {
  const metric = kernel.metricsRegistry.getSingleMetric('tenement_logs_stream_clients');
  assert.ok(metric, 'the plugin registers tenement_logs_stream_clients');
  return (await metric.get()).values[0]?.value ?? -1;
}

test('lines persist beyond the in-memory buffer and come back oldest first', { timeout: 90_000 }, async (t) => {
  const kernel = await boot();
  t.after(() => kernel.close());
  const alice = await kernel.spawnInstance('echo', 'alice');
  for (let i = 0; i < 150; i++) await say(kernel, 'alice', `persist-${i}-${'p'.repeat(40)}`);
  const stored = await expectLines(kernel, 'id=alice&search=persist&limit=10000', 300);
  assert.ok(alice.logs.size < 60, `the 2KB memory buffer holds only a few lines (${alice.logs.size})`);
  const stdout = stored.filter((l) => l.stream === 'stdout');
  assert.deepEqual(
    stdout.map((l) => l.line),
    Array.from({ length: 150 }, (_, i) => `persist-${i}-${'p'.repeat(40)}`),
  );
  const first = stored[0]!;
  assert.deepEqual(Object.keys(first).sort(), ['at', 'id', 'line', 'service', 'stream']);
  assert.equal(first.service, 'echo');
  assert.equal(first.id, 'alice');
  assert.ok(stored.every((l, i) => i === 0 || l.at >= stored[i - 1]!.at), 'oldest first');
  assert.equal(stored.filter((l) => l.stream === 'stderr' && l.line.startsWith('err:persist-')).length, 150);
});

test('filters: service, id, stream, time range, full-text search and limit', { timeout: 90_000 }, async (t) => {
  const kernel = await boot();
  t.after(() => kernel.close());
  await Promise.all([kernel.spawnInstance('echo', 'alice'), kernel.spawnInstance('echo', 'bob'), kernel.spawnInstance('other', 'alice')]);
  await say(kernel, 'alice', 'early morning coffee');
  await say(kernel, 'bob', 'bob says connection refused: db-1:5432');
  await say(kernel, 'alice', 'alice on the other service', 'other');
  await expectLines(kernel, '', 6);
  await sleep(20);
  const middle = Date.now();
  await sleep(20);
  for (let i = 0; i < 5; i++) await say(kernel, 'alice', `late line ${i}`);
  await expectLines(kernel, '', 16);

  const byService = await lines(kernel, 'service=other');
  assert.deepEqual(byService.map((l) => l.line), ['alice on the other service', 'err:alice on the other service']);
  const byId = await lines(kernel, 'id=bob');
  assert.deepEqual(byId.map((l) => `${l.service}:${l.id}`), ['echo:bob', 'echo:bob']);
  assert.equal((await lines(kernel, 'id=alice')).length, 14, 'id alone spans services');
  assert.equal((await lines(kernel, 'id=alice&service=echo')).length, 12);
  const stderr = await lines(kernel, 'id=alice&service=echo&stream=stderr');
  assert.equal(stderr.length, 6);
  assert.ok(stderr.every((l) => l.stream === 'stderr' && l.line.startsWith('err:')));

  // Time: epoch ms, ISO, and durations meaning "ago".
  assert.equal((await lines(kernel, `since=${middle}`)).length, 10);
  assert.equal((await lines(kernel, `until=${middle}`)).length, 6);
  assert.equal((await lines(kernel, `since=${encodeURIComponent(new Date(middle).toISOString())}&stream=stdout`)).length, 5);
  assert.equal((await lines(kernel, `since=${middle - 60_000}&until=${middle}&id=bob`)).length, 2);
  assert.equal((await lines(kernel, 'since=1h')).length, 16);
  assert.equal((await lines(kernel, 'until=1h')).length, 0);

  // Search is full text over whole words, matched as a phrase, case-insensitive.
  assert.deepEqual((await lines(kernel, 'search=coffee&stream=stdout')).map((l) => l.line), ['early morning coffee']);
  assert.equal((await lines(kernel, 'search=COFFEE')).length, 2);
  assert.equal((await lines(kernel, 'search=morning%20coffee')).length, 2);
  assert.equal((await lines(kernel, 'search=coffee%20morning')).length, 0, 'a phrase, not a bag of words');
  assert.equal((await lines(kernel, 'search=coff')).length, 0, 'whole words, not substrings');
  assert.equal((await lines(kernel, `search=${encodeURIComponent('connection refused: db-1:5432')}`)).length, 2);
  assert.equal((await lines(kernel, 'search=late&id=alice&since=1m&limit=3')).length, 3);
  for (const nasty of ['a-b:c', '"unbalanced', 'NEAR(x', '*', 'AND OR NOT', '-', "'; DROP TABLE log_lines; --", '\u0000x', 'line:', '^late']) {
    const reply = await api(kernel, `/api/logs?search=${encodeURIComponent(nasty)}`);
    assert.equal(reply.status, 200, `search ${JSON.stringify(nasty)}: ${JSON.stringify(reply.body)}`);
  }
  assert.equal((await lines(kernel, `search=${encodeURIComponent('line:')}`)).length, 10, 'punctuation is ignored');

  // limit: the newest N, oldest first.
  const newest = await lines(kernel, 'stream=stdout&limit=3');
  assert.deepEqual(newest.map((l) => l.line), ['late line 2', 'late line 3', 'late line 4']);

  for (const bad of ['limit=0', 'limit=10001', 'since=someday', 'stream=stdin', 'id=Bad_Id', 'color=red']) {
    const reply = await api(kernel, `/api/logs?${bad}`);
    assert.equal(reply.status, 400, bad);
    assert.equal(reply.body.error.code, 'TNM_ERR_BAD_REQUEST');
  }
});

test('tenants see their own lines only; another tenant is a 404; no token is a 401', { timeout: 90_000 }, async (t) => {
  const kernel = await boot();
  t.after(() => kernel.close());
  await Promise.all([kernel.spawnInstance('echo', 'alice'), kernel.spawnInstance('echo', 'bob'), kernel.spawnInstance('other', 'alice')]);
  await say(kernel, 'alice', 'alice secret');
  await say(kernel, 'alice', 'alice elsewhere', 'other');
  await say(kernel, 'bob', 'bob secret');
  await expectLines(kernel, '', 6);

  const own = await lines(kernel, '', tenant('alice'));
  assert.equal(own.length, 4);
  assert.ok(own.every((l) => l.id === 'alice'));
  assert.equal((await lines(kernel, 'search=secret', tenant('alice'))).length, 2);
  assert.equal((await lines(kernel, 'id=alice&service=other', tenant('alice'))).length, 2);
  assert.equal((await lines(kernel, 'service=echo', tenant('bob'))).length, 2);
  for (const query of ['id=bob', 'id=bob&service=echo', 'id=nobody']) {
    const reply = await api(kernel, `/api/logs?${query}`, tenant('alice'));
    assert.equal(reply.status, 404, query);
    assert.equal(reply.body.error.code, 'TNM_ERR_UNKNOWN_INSTANCE');
  }
  const stream = await api(kernel, '/api/logs/stream?id=bob', tenant('alice'));
  assert.equal(stream.status, 404);

  for (const urlPath of ['/api/logs', '/api/logs/stream']) {
    const reply = await api(kernel, urlPath, {});
    assert.equal(reply.status, 401);
    assert.equal(reply.body.error.code, 'TNM_ERR_UNAUTHORIZED');
  }
});

test('live streams: lines as they are captured, filtered and tenant-scoped; disconnect and shutdown clean up', { timeout: 90_000 }, async (t) => {
  const kernel = await boot({ keepAlive: '200ms' });
  t.after(() => kernel.close());
  await Promise.all([kernel.spawnInstance('echo', 'alice'), kernel.spawnInstance('echo', 'bob')]);
  await say(kernel, 'alice', 'before the streams');
  await expectLines(kernel, 'search=before', 2);

  const all = await openStream(kernel, '', ADMIN);
  assert.equal(all.status, 200);
  assert.match(String(all.headers['content-type']), /^text\/event-stream/);
  const mine = await openStream(kernel, '', tenant('alice'));
  const errors = await openStream(kernel, 'stream=stderr&search=BOB', ADMIN);
  const replay = await openStream(kernel, 'since=1h&id=alice&stream=stdout', ADMIN);
  await waitFor(async () => (await streamClients(kernel)) === 4, 'four stream clients');
  assert.deepEqual(replay.events.map((e) => e.line), ['before the streams'], 'since= replays stored lines first');

  await say(kernel, 'alice', 'live from alice');
  await say(kernel, 'bob', 'live from bob');
  await waitFor(() => all.events.length === 4, 'the admin stream to get both instances');
  assert.deepEqual(all.events.map((e) => `${e.id}/${e.stream}/${e.line}`), [
    'alice/stdout/live from alice',
    'alice/stderr/err:live from alice',
    'bob/stdout/live from bob',
    'bob/stderr/err:live from bob',
  ]);
  // Every stream gets a line in the same synchronous pass, so by now alice's stream has seen bob's line if it ever will.
  assert.deepEqual(mine.events.map((e) => e.line), ['live from alice', 'err:live from alice']);
  assert.deepEqual(errors.events.map((e) => e.line), ['err:live from bob']);
  assert.deepEqual(replay.events.map((e) => e.line), ['before the streams', 'live from alice']);
  assert.equal(typeof all.events[0]!.at, 'number');
  await waitFor(() => all.raw().includes(': keep-alive\n\n'), 'a keep-alive comment');

  mine.close();
  errors.close();
  await waitFor(async () => (await streamClients(kernel)) === 2, 'closed streams to be forgotten');
  await say(kernel, 'alice', 'after a disconnect');
  await waitFor(() => all.events.length === 6, 'the remaining stream to keep going');

  // Shutdown ends the streams that are still open (and the kernel's close is not held up by them).
  await kernel.close();
  await all.ended;
  await replay.ended;
});

test('retention: over the total budget the oldest lines go and the newest stay; the index stays consistent', { timeout: 90_000 }, async (t) => {
  const kernel = await boot({ maxBytes: '20KB', perInstanceMaxBytes: false, maxAge: false });
  t.after(() => kernel.close());
  await Promise.all([kernel.spawnInstance('echo', 'alice'), kernel.spawnInstance('echo', 'bob')]);
  const filler = 'x'.repeat(300);
  for (let i = 0; i < 40; i++) await say(kernel, i % 2 === 0 ? 'alice' : 'bob', `ret-${i}-${filler}`);
  await waitFor(async () => (await lines(kernel, 'search=ret%2039')).length === 2, 'the newest line');
  const stored = (): { lines: number; bytes: number } =>
    kernel.store.db.prepare('SELECT COUNT(*) AS lines, COALESCE(SUM(bytes), 0) AS bytes FROM log_lines').get() as { lines: number; bytes: number };
  await waitFor(() => stored().bytes <= 20_000, 'stored bytes within 20KB');
  const kept = await lines(kernel, 'limit=10000');
  assert.ok(kept.length > 10 && kept.length < 80, `kept ${kept.length} of 80 lines`);
  assert.equal(kept.at(-1)!.line, `err:ret-39-${filler}`, 'the newest line is kept');
  assert.equal((await lines(kernel, 'search=ret%200')).length, 0, 'the oldest line is gone, from the index too');
  // Whatever is kept is a contiguous run of the newest lines.
  const numbers = kept.filter((l) => l.stream === 'stdout').map((l) => Number(l.line.split('-')[1]));
  assert.deepEqual(numbers, Array.from({ length: numbers.length }, (_, i) => 40 - numbers.length + i));
  const usage = kernel.store.db.prepare('SELECT SUM(lines) AS lines, SUM(bytes) AS bytes FROM log_usage').get();
  assert.deepEqual(usage, stored(), 'the usage table agrees with the lines');
  kernel.store.db.prepare("INSERT INTO log_fts (log_fts, rank) VALUES ('integrity-check', 1)").run();
});

test('retention: an instance over its own budget loses its oldest lines, others keep theirs', { timeout: 90_000 }, async (t) => {
  const kernel = await boot({ maxBytes: '10MB', perInstanceMaxBytes: '8KB' });
  t.after(() => kernel.close());
  await Promise.all([kernel.spawnInstance('echo', 'alice'), kernel.spawnInstance('echo', 'bob')]);
  await say(kernel, 'bob', 'bob is quiet');
  for (let i = 0; i < 30; i++) await say(kernel, 'alice', `chatty-${i}-${'y'.repeat(200)}`);
  await waitFor(async () => (await lines(kernel, 'id=alice&search=chatty%2029')).length === 2, 'the newest line');
  const bytesOf = (id: string): number =>
    (kernel.store.db.prepare('SELECT COALESCE(SUM(bytes), 0) AS b FROM log_lines WHERE instance = ?').get(id) as { b: number }).b;
  await waitFor(() => bytesOf('alice') <= 8_000, "alice's lines within 8KB");
  assert.equal((await lines(kernel, 'id=alice&search=chatty%200')).length, 0);
  assert.equal((await lines(kernel, 'id=bob')).length, 2, "bob's lines are untouched");
});

test('retention: lines older than maxAge are deleted', { timeout: 90_000 }, async (t) => {
  const kernel = await boot({ maxAge: '3s', retentionInterval: '200ms' });
  t.after(() => kernel.close());
  await kernel.spawnInstance('echo', 'alice');
  for (let i = 0; i < 5; i++) await say(kernel, 'alice', `old-${i}`);
  await expectLines(kernel, 'search=old', 10);
  await sleep(3_500);
  await say(kernel, 'alice', 'fresh');
  await expectLines(kernel, 'search=old', 0);
  assert.deepEqual((await lines(kernel, 'stream=stdout')).map((l) => l.line), ['fresh']);
});

test('a restarted kernel on the same data directory still has the stored lines', { timeout: 90_000 }, async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tenement-logs-'));
  // Nothing is written on a timer here (flushInterval 1h): what survives was written by the plugin's close.
  const first = await boot({ flushInterval: '1h' }, { dataDir });
  try {
    await first.spawnInstance('echo', 'alice');
    for (let i = 0; i < 3; i++) await say(first, 'alice', `before-restart-${i}`);
    await waitFor(() => first.instances.get('echo', 'alice')!.logs.query({ search: 'before-restart-2' }).length === 2, 'the last line');
  } finally {
    await first.close();
  }
  const second = await boot({}, { dataDir });
  // One hook, closing before removing: the kernel writes into the folder (after-hooks stop at the first that throws).
  t.after(() => second.close().finally(() => rmSync(dataDir, { recursive: true, force: true })));
  const kept = await lines(second, 'search=before&stream=stdout');
  assert.deepEqual(kept.map((l) => l.line), ['before-restart-0', 'before-restart-1', 'before-restart-2']);
  await say(second, 'alice', 'after-restart');
  await expectLines(second, 'search=restart&stream=stdout', 4);
});
