// Alert webhooks (plugins/webhooks) end to end, how a delivery gets there: `ten serve` as a real child process
// whose instance really crashes, and real HTTP receivers on loopback that fail once, are not listening until the
// server has been killed and restarted, or are hostile (hang, flood, redirect).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { freePort, sleep, waitFor } from '../helpers.ts';
import { SECRET, receiver, verifySignature } from './webhooks-fixture.ts';
import { alerts, api, deliveries, project, serve } from './webhooks-serve.ts';

describe('alert webhooks', { timeout: 300_000 }, () => {
  test('a receiver answering 500 then 200 gets the alert once, after one retry (two attempts recorded)', async (t) => {
    const hook = await receiver();
    hook.script.push((_req, res) => {
      res.statusCode = 500;
      res.end('try again later');
    });
    const setup = await project('retry', alerts([{ name: 'ops', url: hook.url, secret: SECRET }]));
    const server = await serve(setup);
    t.after(() => server.stop());
    await waitFor(async () => (await deliveries(server))[0]?.state === 'delivered', 'the delivery after its retry', 60_000);
    const [row] = await deliveries(server);
    assert.equal(row!.attempts, 2);
    assert.equal(row!.lastStatus, 200);
    assert.equal(hook.received.length, 2, 'one failed attempt, one accepted');
    const [first, second] = hook.received;
    assert.equal(first!.headers['tenement-delivery'], second!.headers['tenement-delivery'], 'the same delivery id on the retry');
    assert.equal(first!.raw, second!.raw, 'the same body on the retry');
    assert.equal(second!.headers['tenement-attempt'], '2');
    assert.ok(verifySignature(SECRET, second!.raw, second!.headers['tenement-signature'] as string));
    await sleep(700);
    assert.equal(hook.received.length, 2, 'nothing more once delivered');
  });

  test('ten serve killed (SIGKILL) before the delivery succeeded still delivers it after its restart', async (t) => {
    const port = await freePort(); // nobody listens there yet: attempts are refused
    const url = `http://127.0.0.1:${port}/hook`;
    const setup = await project('durable', alerts([{ name: 'ops', url, secret: SECRET }], [{ on: 'failed' }], { backoff: { base: '300ms', max: '600ms' } }));
    let server = await serve(setup);
    t.after(() => server.stop());
    await waitFor(async () => ((await deliveries(server))[0]?.attempts ?? 0) >= 1, 'a refused attempt', 60_000);
    const [pending] = await deliveries(server);
    assert.equal(pending!.state, 'pending');
    assert.match(pending!.lastError ?? '', /ECONNREFUSED/);
    assert.ok(pending!.nextAttemptAt !== null);

    server.child.kill('SIGKILL');
    await server.exit;
    const hook = await receiver(port);
    server = await serve(setup);
    await waitFor(() => hook.received.some((r) => r.body.id === pending!.alert), 'the alert raised before the crash, after the restart', 60_000);
    const delivered = hook.received.find((r) => r.body.id === pending!.alert)!;
    assert.ok(verifySignature(SECRET, delivered.raw, delivered.headers['tenement-signature'] as string));
    assert.equal(delivered.headers['tenement-delivery'], pending!.delivery);
    await waitFor(
      async () => (await deliveries(server)).find((d) => d.delivery === pending!.delivery)?.state === 'delivered',
      'the row recorded as delivered',
      10_000,
    );
  });

  test('hostile receivers (a hang, a huge body, a redirect) block neither the server nor the other webhooks', async (t) => {
    const good = await receiver();
    const hang = await receiver();
    hang.script.push(() => undefined); // never answers
    const huge = await receiver();
    let hugeBytes = 0;
    huge.script.push((_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const pump = (): void => {
        while (!res.destroyed && hugeBytes < 1024 ** 3) {
          hugeBytes += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      pump();
    });
    const elsewhere = await receiver(0, '127.0.0.2');
    const redirect = await receiver();
    redirect.script.push((_req, res) => {
      res.writeHead(307, { location: elsewhere.url });
      res.end();
    });
    const setup = await project(
      'hostile',
      alerts(
        [
          { name: 'hang', url: hang.url, secret: SECRET },
          { name: 'huge', url: huge.url, secret: SECRET },
          { name: 'redirect', url: redirect.url, secret: SECRET },
          { name: 'slack', url: good.url, format: 'slack' },
        ],
        [{ on: 'failed' }],
        // The hang is checked still pending ~0.3 s after the alert: 4 s leaves a wide margin, and the test waits it out.
        { timeout: '4s', backoff: { base: '30s', max: '1m' } },
      ),
    );
    const server = await serve(setup);
    t.after(() => server.stop());
    await waitFor(() => good.received.length >= 1, 'the alert at the well-behaved webhook', 60_000);
    // The Slack-compatible body, unsigned (no secret configured).
    const slack = good.received[0]!;
    assert.match(String(slack.body.text), /\[FIRING\] crashy:a failed/);
    assert.ok(Array.isArray(slack.body.blocks));
    assert.equal(slack.headers['tenement-signature'], undefined);

    await waitFor(async () => {
      const rows = await deliveries(server);
      const of = (name: string) => rows.find((r) => r.webhook === name);
      return of('huge')?.attempts === 1 && of('redirect')?.attempts === 1 && of('slack')?.state === 'delivered';
    }, 'the huge and redirect attempts recorded', 15_000);
    const rows = await deliveries(server);
    const of = (name: string) => rows.find((r) => r.webhook === name)!;
    assert.equal(of('huge').lastStatus, 500);
    assert.match(of('huge').lastError ?? '', /^answered 500: x+/);
    assert.ok(hugeBytes < 512 * 1024 * 1024, `the huge body was not read to its end (${hugeBytes} bytes written)`);
    assert.equal(of('redirect').lastStatus, 307);
    assert.match(of('redirect').lastError ?? '', /not followed/);
    assert.equal(elsewhere.received.length, 0, 'the redirect was not followed');
    // The hanging receiver holds only its own delivery; the server answers meanwhile.
    assert.equal(of('hang').state, 'pending');
    assert.equal(of('hang').attempts, 0, 'still waiting for the hanging receiver');
    const health = await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(health.status, 200);
    assert.equal((await api(server, '/api/instances')).status, 200);
    // The hang ends at the request timeout as a failed attempt, with a retry scheduled.
    await waitFor(async () => (await deliveries(server)).find((r) => r.webhook === 'hang')!.attempts === 1, 'the hanging attempt to time out', 40_000);
    const hung = (await deliveries(server)).find((r) => r.webhook === 'hang')!;
    assert.match(hung.lastError ?? '', /no complete answer within 4000ms/);
    assert.equal(hung.state, 'pending');
    assert.ok(hung.nextAttemptAt !== null);
  });
});
