// The README promises `hibernated` in the log when an idle tenant sleeps: both ends of scale-to-zero, `hibernated`
// and `woken`, are logged at info (the level `ten serve` runs at), with the instance and the reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { bootKernel } from '../../core/boot.ts';
import { echoService, request, servePlugins, waitFor } from '../helpers.ts';

test('hibernated and woken are logged at info with the instance', { timeout: 180_000 }, async (t) => {
  const lines: Array<{ level: number; msg: string; instance?: string; reason?: string; plugin?: string }> = [];
  const logger = pino({ level: 'info', base: undefined }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
  const kernel = await bootKernel({ plugins: servePlugins, config: { services: { web: echoService({ idleTimeout: '300ms' }) } }, logger });
  t.after(() => kernel.close());
  await kernel.spawnInstance('web', 'alice');

  const at = (msg: string) => lines.find((line) => line.msg === msg && line.instance === 'web:alice');
  await waitFor(() => at('hibernated') !== undefined, 'hibernated to be logged', 60_000);
  assert.equal(at('hibernated')!.level, 30, 'info');
  assert.match(at('hibernated')!.reason ?? '', /^idle for \d+ms$/);
  assert.equal(at('hibernated')!.plugin, 'hibernate');

  assert.equal((await request(kernel, 'alice.web.localhost', '/pid')).status, 200);
  await waitFor(() => at('woken') !== undefined, 'woken to be logged', 60_000);
  assert.equal(at('woken')!.level, 30, 'info');
  assert.match(at('woken')!.reason ?? '', /^ready in \d+ms$/);
});
