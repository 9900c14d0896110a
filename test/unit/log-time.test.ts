/**
 * core/log-time.ts writes what Date#toISOString writes, without a Date: V8's date formatting loads the host's time
 * zone from ICU's data the first time it runs (~1 MB resident for good), and `ten serve` formatted dates only for
 * its log lines and its context file. Checked against toISOString itself, and in a fresh process where every Date
 * formatting method throws: the logger's lines and recordContext still work there.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { isoTime } from '../../core/log-time.ts';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

test('isoTime writes what toISOString writes', () => {
  const edges = [
    0, -1, 1, 951_782_400_000 /* 2000-02-29 */, 951_868_799_999, -2_203_891_200_000 /* 1900-03-01 */, 4_107_456_000_000 /* 2100-02-28 */,
    4_107_542_400_000, 253_402_300_799_999 /* 9999-12-31T23:59:59.999Z */, -62_167_219_200_000 /* 0000-01-01 */, -62_162_035_200_001, Date.now(),
  ];
  for (const ms of edges) assert.equal(isoTime(ms), new Date(ms).toISOString(), `at ${ms}`);
  // Every day of four centuries (leap years, the 100- and 400-year rules), at a varying time of day.
  const start = Date.UTC(1900, 0, 1);
  for (let day = 0; day < 146_097; day++) {
    const ms = start + day * 86_400_000 + ((day * 7_919_311) % 86_400_000);
    assert.equal(isoTime(ms), new Date(ms).toISOString());
  }
});

test('the logger and the context file format no Date', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-log-time-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const url = (file: string): string => pathToFileURL(path.join(ROOT, file)).href;
  const script = `
    for (const name of ['toISOString', 'toJSON', 'toString', 'toUTCString', 'toDateString', 'toTimeString', 'toLocaleString', 'getTimezoneOffset']) {
      Date.prototype[name] = () => { throw new Error('Date#' + name + ' called'); };
    }
    const { createLogger } = await import(${JSON.stringify(url('core/logger.ts'))});
    const { recordContext, contextFilePath } = await import(${JSON.stringify(url('cli/context-file.ts'))});
    const log = createLogger('info');
    log.info({ plugin: 'x' }, 'a line');
    log.child({ instance: 'web:alice' }).warn('another');
    recordContext({ socket: null, server: 'http://127.0.0.1:1', tokenFile: ${JSON.stringify(path.join(dir, 'admin.token'))}, config: null, dataDir: ${JSON.stringify(dir)} });
    process.stdout.write(contextFilePath());
  `;
  const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, XDG_CONFIG_HOME: path.join(dir, 'xdg'), TENEMENT_LOG_LEVEL: 'info' },
    timeout: 60_000,
  });
  const lines = stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { time: string; msg: string; level: number });
  assert.deepEqual(lines.map((line) => [line.level, line.msg]), [[30, 'a line'], [40, 'another']]);
  for (const line of lines) {
    assert.match(line.time, ISO);
    assert.ok(Math.abs(Date.parse(line.time) - Date.now()) < 600_000, `a time near now: ${line.time}`);
  }
  const contexts = JSON.parse(readFileSync(stdout, 'utf8')) as { contexts: Record<string, { updatedAt: string }> };
  const [entry] = Object.values(contexts.contexts);
  assert.match(entry?.updatedAt ?? '', ISO);
});
