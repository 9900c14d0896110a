// Alert webhooks (plugins/webhooks) in a test kernel, the outbox: a delivery given up after its attempts and
// counted in the metrics, and the outbox table's bound on its rows.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Store } from '../../core/store.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import webhooksPlugin from '../../plugins/webhooks/index.ts';
import { Outbox } from '../../plugins/webhooks/outbox.ts';
import processRuntime from '../../runtimes/process/index.ts';
import { waitFor } from '../helpers.ts';
import { projectDir } from '../security/serve-child.ts';
import { SECRET, crashApp, receiver } from './webhooks-fixture.ts';

describe('alert webhooks in a test kernel', { timeout: 180_000 }, () => {
  const plugins = [processRuntime, webhooksPlugin];

  test('a delivery is given up after maxAttempts and counted; the metrics show outcomes and the outbox depth', async (t) => {
    const dir = projectDir('tenement-webhooks-giveup-');
    const app = crashApp(dir);
    const hook = await receiver();
    for (let i = 0; i < 5; i++) {
      hook.script.push((_req, res) => {
        res.statusCode = 503;
        res.end('down');
      });
    }
    const kernel = await createTestKernel({
      plugins,
      config: {
        settings: {
          alerts: {
            webhooks: [{ name: 'ops', url: hook.url, secret: SECRET }],
            rules: [{ on: 'failed' }],
            interval: '50ms',
            delivery: { maxAttempts: 2, backoff: { base: '50ms', max: '100ms' } },
          },
        },
        services: { crashy: { command: `node ${app}`, restart: 'never', idleTimeout: false } },
      },
    });
    // One hook, closing before removing: the app writes into the folder (after-hooks stop at the first that throws).
    t.after(() => kernel.close().finally(() => rmSync(dir, { recursive: true, force: true })));
    await kernel.spawnInstance('crashy', 'a').catch(() => undefined);
    const metric = async (name: string): Promise<string> => (await kernel.metricsRegistry.getSingleMetricAsString(name)) ?? '';
    await waitFor(async () => /outcome="failed"} 1/.test(await metric('tenement_alert_deliveries_total')), 'the delivery given up', 30_000);
    assert.equal(hook.received.length, 2);
    assert.match(await metric('tenement_alert_deliveries_total'), /outcome="retried"} 1/);
    assert.match(await metric('tenement_alert_deliveries_total'), /outcome="delivered"} 0/);
    assert.match(await metric('tenement_alert_outbox_depth'), /tenement_alert_outbox_depth 0/);
    assert.match(await metric('tenement_alerts_total'), /rule="failed",kind="firing"} 1/);
  });

  test('the outbox is bounded: finished rows make room, and when every row is pending a new one is refused', () => {
    const dir = projectDir('tenement-webhooks-outbox-');
    const store = new Store(path.join(dir, 'tenement.db'));
    try {
      const outbox = new Outbox({ db: store.db, migrate: (steps) => store.migrateOwner('webhooks', steps) }, 10);
      const row = (n: number) => ({ alert: `alt_${n}`, webhook: 'ops', kind: 'firing' as const, rule: 'failed', service: 's', instance: `s:${n}`, summary: 'x', body: '{}' });
      for (let n = 0; n < 10; n++) assert.ok(outbox.add(row(n)));
      assert.equal(outbox.add(row(10)), false, 'full of pending rows: refused');
      const [oldest] = outbox.list({ limit: 1000 }).reverse();
      outbox.markDelivered(oldest!.id, 200, Date.now());
      assert.ok(outbox.add(row(11)), 'a delivered row made room');
      const rows = outbox.list({ limit: 1000 });
      assert.equal(rows.length, 10);
      assert.ok(!rows.some((r) => r.alert === 'alt_0'), 'the delivered row was pruned');
      assert.equal(outbox.pendingCount(), 10);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
