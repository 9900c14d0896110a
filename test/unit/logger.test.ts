/**
 * core/logger.ts writes pino's lines without pino (whose index loads worker_threads and assert on every server):
 * the same bytes as pino for the calls Tenement makes (pino is the oracle here), levels and child bindings as
 * pino's, and every line on stderr whole and at once, even through a full non-blocking pipe and a process.exit
 * right after.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { makeLogger, type Logger } from '../../core/logger.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function both(level: string): { ours: Logger; theirs: Logger; lines: { ours: string[]; theirs: string[] } } {
  const lines = { ours: [] as string[], theirs: [] as string[] };
  const theirs = pino({ level, base: undefined, timestamp: () => ',"time":"T"' }, { write: (line: string) => void lines.theirs.push(line) });
  const ours = makeLogger(level, (line) => void lines.ours.push(line), () => 'T');
  return { ours, theirs, lines };
}

test("the same lines as pino's for the calls Tenement makes", () => {
  const { ours, theirs, lines } = both('info');
  const failure = Object.assign(new Error('spawn failed', { cause: new Error('EACCES') }), { code: 'TNM_ERR_SPAWN' });
  const cycle: Record<string, unknown> = { name: 'loop' };
  cycle.self = cycle;
  const hostile = JSON.parse('{"__proto__":{"polluted":true},"constructor":1}') as object;
  for (const log of [theirs, ours]) {
    log.info('hello');
    log.info({ a: 1, b: 'x' }, 'with fields');
    log.info({ a: 1 });
    log.warn({ err: failure, instance: 'web:alice' }, 'start failed');
    log.error(new Error('thrown'));
    log.error(new Error('thrown'), 'with a message');
    log.debug('not at info');
    log.trace({ a: 1 }, 'not at info');
    log.info({ skipped: undefined, none: null, list: [1, 'a', { k: true }], text: 'quote " backslash \\ newline \n tab \t ü 😀' }, 'types');
    log.info({ msg: 'a msg field' });
    log.info(hostile, 'hostile keys');
    log.info({ cycle }, 'a cycle');
    log.info({ big: 12n }, 'a bigint');
    log.fatal('fatal');
    const child = log.child({ plugin: 'hibernate' });
    child.info({ instance: 'web:bob' }, 'hibernated');
    child.child({ service: 'web' }).warn('nested');
    child.debug('not at info either');
  }
  assert.equal(lines.ours.length, 14);
  // The error stacks name the line that made them: the same for both (one Error each), the rest byte for byte.
  assert.deepEqual(lines.ours, lines.theirs);
  assert.equal(({}.constructor as unknown as { polluted?: boolean }).polluted, undefined);
});

test('levels: silent writes nothing, a child keeps its parent level, an unknown level is refused', () => {
  const silent = both('silent');
  for (const log of [silent.ours, silent.theirs]) {
    log.fatal('no');
    log.child({ a: 1 }).error('no');
  }
  assert.deepEqual(silent.lines.ours, []);
  const debug = both('debug');
  for (const log of [debug.theirs, debug.ours]) {
    log.debug('yes');
    log.child({ a: 1 }).debug('child yes');
    log.trace('no');
  }
  assert.deepEqual(debug.lines.ours, debug.lines.theirs);
  assert.equal(debug.lines.ours.length, 2);
  assert.equal(debug.ours.level, 'debug');
  assert.throws(() => makeLogger('loud', () => undefined), /unknown log level 'loud'/);
  assert.throws(() => makeLogger('__proto__', () => undefined), /unknown log level/);
});

test('every line reaches stderr whole, through a full non-blocking pipe and a process.exit right after', { timeout: 60_000 }, async () => {
  const LINES = 3000;
  const script = `
    const { createLogger } = await import(${JSON.stringify(pathToFileURL(path.join(ROOT, 'core', 'logger.ts')).href)});
    process.stderr.write(''); // libuv makes the pipe non-blocking
    const log = createLogger('info');
    const pad = 'x'.repeat(1000);
    for (let i = 0; i < ${LINES}; i++) log.info({ i, pad }, 'line');
    process.exit(0);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const chunks: Buffer[] = [];
  // Read slowly at first, so the child meets a full pipe (64 KB against 3 MB of lines).
  child.stderr.pause();
  setTimeout(() => child.stderr.resume(), 300);
  child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  assert.equal(code, 0);
  const lines = Buffer.concat(chunks).toString('utf8').split('\n').filter((line) => line !== '');
  assert.equal(lines.length, LINES);
  lines.forEach((line, i) => assert.equal((JSON.parse(line) as { i: number }).i, i));
});
