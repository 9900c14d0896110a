// Names are data (issue 18, item 6) in the Host header: prototype member names as service and instance labels are
// routed as data (a coded 4xx, or the real instance when the name is a legit one), and header names too.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { echoService, waitFor } from '../helpers.ts';
import { NAMES, assertCoded, assertNoGhost, assertServing, call, codeOf, namesKernel, type Answer } from './names-fixture.ts';

test('Host headers made of prototype names are routed as data: coded 4xx, or the real instance when the name is legit', { timeout: 120_000 }, async (t) => {
  const kernel = await namesKernel(t, {
    services: { web: echoService(), auto: echoService({ autoCreate: true }) },
    instances: { web: ['alice'] },
  });
  await waitFor(() => kernel.instances.get('web', 'alice')?.state === 'running', 'web:alice running', 30_000);
  const hosts: string[] = [];
  for (const name of NAMES) {
    hosts.push(`${name}.localhost`, `${name}.web.localhost`, `alice.${name}.localhost`, `${name}.${name}.localhost`, `${name}.alice.web.localhost`);
  }
  for (const host of hosts) {
    // Each through the fast path (a plain GET) and through node:http (an upgrade is handed over there).
    for (const headers of [{}, { connection: 'upgrade', upgrade: 'websocket' }] as Array<Record<string, string>>) {
      const answer = await call(kernel, 'GET', '/echo', headers, undefined, host).catch((error: Error): Answer => ({ status: 0, headers: {}, body: error.message }));
      const what = `Host ${host} ${JSON.stringify(headers)}`;
      if (headers.upgrade && answer.status === 0) continue; // an upgrade to an instance's echo is not HTTP after the 101
      assert.notEqual(answer.status, 0, `${what}: ${answer.body}`);
      assertCoded(answer, what);
      if (answer.status >= 400) continue;
      assert.equal(answer.status, 200);
      assert.ok(host === 'alice.web.localhost' || /\.auto\.localhost$/.test(host), `${what} reached ${String(answer.headers['x-instance'])}`);
    }
    await assertServing(kernel, host);
    assertNoGhost(kernel, host);
  }
  // The exact answers for the interesting ones.
  const expect = async (host: string, status: number, code: string): Promise<void> => {
    const answer = await call(kernel, 'GET', '/echo', {}, undefined, host);
    assert.equal(answer.status, status, `${host}: ${answer.body}`);
    assert.equal(codeOf(answer), code, host);
  };
  await expect('__proto__.localhost', 400, 'TNM_ERR_BAD_NAME');
  await expect('constructor.localhost', 404, 'TNM_ERR_UNKNOWN_SERVICE');
  await expect('tostring.localhost', 404, 'TNM_ERR_UNKNOWN_SERVICE');
  await expect('alice.constructor.localhost', 404, 'TNM_ERR_UNKNOWN_SERVICE');
  await expect('constructor.web.localhost', 404, 'TNM_ERR_UNKNOWN_INSTANCE');
  await expect('valueof.web.localhost', 404, 'TNM_ERR_UNKNOWN_INSTANCE');
  assert.deepEqual(
    kernel.instances
      .list()
      .map((i) => i.key)
      .filter((key) => key.startsWith('web:')),
    ['web:alice'],
  );
  // autoCreate makes real instances of legit names (and nothing of the others).
  const made = await call(kernel, 'GET', '/echo', {}, undefined, 'constructor.auto.localhost');
  assert.equal(made.status, 200, made.body);
  assert.equal(made.headers['x-instance'], 'auto:constructor');
  // Header names are data too: the app gets them as sent.
  const named = JSON.parse('{"constructor":"c","__proto__":"p","tostring":"t"}') as Record<string, string>;
  const echoed = await call(kernel, 'GET', '/echo', named, undefined, 'alice.web.localhost');
  assert.equal(echoed.status, 200);
  const seen = JSON.parse(echoed.body) as { headers: Record<string, string>; rawHeaders: string[] };
  assert.equal(seen.headers.constructor, 'c');
  assert.equal(seen.headers.tostring, 't');
  // (Node's parser in the app leaves `__proto__` out of req.headers; the proxy forwarded it as sent.)
  assert.equal(seen.rawHeaders[seen.rawHeaders.indexOf('__proto__') + 1], 'p');
});
