// The HAProxy edge (plugins/edge-haproxy, docs/edge.md), routing: a real haproxy on a loopback port, programmed by
// a real kernel over its runtime API, sends tenants straight to their echo-app instances, follows weights, is set
// right when it drifts, refuses or re-frames framing attacks, and leaves unknown hosts to the activator's errors.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { echoService, request, sleep, waitFor } from '../helpers.ts';
import { rawExchange } from '../raw-http.ts';
import { haproxyMissing, startEdge, untilDirect } from './edge-haproxy-fixture.ts';

const skip = haproxyMissing();

describe('HAProxy edge', { skip, timeout: 180_000 }, () => {
  test('routes two tenants through haproxy, directly to their instances', async (t) => {
    const e = await startEdge(t, { echo: echoService({ idleTimeout: 0 }) });
    await e.kernel.spawnInstance('echo', 'alice');
    await e.kernel.spawnInstance('echo', 'bob');
    await untilDirect(e, 'echo', 'alice');
    await untilDirect(e, 'echo', 'bob');
    const before = e.viaActivator.length;
    const a = await request(e.edge, 'alice.echo.localhost', '/pid');
    const b = await request(e.edge, 'bob.echo.localhost:8080', '/pid');
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal(Number(a.body), e.kernel.instances.get('echo', 'alice')?.handle?.pid);
    assert.equal(Number(b.body), e.kernel.instances.get('echo', 'bob')?.handle?.pid);
    assert.equal(e.viaActivator.length, before, 'served by haproxy directly, not through the activator');
    const echoed = JSON.parse((await request(e.edge, 'alice.echo.localhost', '/echo')).body) as { headers: Record<string, string> };
    assert.equal(echoed.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(echoed.headers['x-forwarded-proto'], 'http');
  });

  test('a weight change is applied over the runtime API, without a reload (same haproxy worker pid)', async (t) => {
    const e = await startEdge(t, { echo: echoService({ idleTimeout: 0 }) });
    await e.kernel.spawnInstance('echo', 'alice');
    await e.kernel.spawnInstance('echo', 'bob');
    await untilDirect(e, 'echo', 'alice');
    await untilDirect(e, 'echo', 'bob');
    // The two spawns changed the backends: wait for that reload to be over before taking the pid.
    await sleep(500);
    const pid = await e.api.pid();
    const bob = e.kernel.instances.get('echo', 'bob')!;
    e.kernel.setWeight(e.kernel.instances.get('echo', 'alice')! as never, 0);
    await waitFor(
      async () => (await e.api.serverStats((b) => b === 's.echo')).some((s) => s.server === 'alice' && s.weight === 0),
      "haproxy to give alice's server weight 0",
      10_000,
    );
    assert.equal(await e.api.pid(), pid, 'no reload: the same haproxy worker');
    for (let i = 0; i < 6; i++) {
      const reply = await request(e.edge, 'echo.localhost', '/pid');
      assert.equal(reply.status, 200);
      assert.equal(Number(reply.body), bob.handle?.pid, 'weight 0: never alice');
    }
  });

  test("a server HAProxy holds differently from what Tenement sent (a worker that read an older config) is set right again", async (t) => {
    const e = await startEdge(t, { echo: echoService({ idleTimeout: 0 }) });
    const alice = await e.kernel.spawnInstance('echo', 'alice');
    await untilDirect(e, 'echo', 'alice');
    e.kernel.setWeight(alice as never, 90);
    const weightOf = async (): Promise<number | undefined> => (await e.api.serverStats((b) => b === 's.echo')).find((s) => s.server === 'alice')?.weight;
    await waitFor(async () => (await weightOf()) === 90, "haproxy to give alice's server weight 90", 10_000);
    // Behind Tenement's back, as a worker starting from a config file written before the weight change would hold it.
    await e.api.run(['set server s.echo/alice weight 100']);
    await waitFor(async () => (await weightOf()) === 90, "alice's server to be back at weight 90", 10_000);
    await e.api.run(['set server s.echo/alice state maint']);
    await waitFor(
      async () => (await e.api.serverStats((b) => b === 's.echo')).some((s) => s.server === 'alice' && !s.maint),
      "alice's server (running) to be out of maintenance again",
      10_000,
    );
  });

  test('framing attacks are refused or re-framed by haproxy; nothing ambiguous reaches an instance', async (t) => {
    const e = await startEdge(t, { echo: echoService({ idleTimeout: 0 }) });
    await e.kernel.spawnInstance('echo', 'a');
    await untilDirect(e, 'echo', 'a');
    const H = 'a.echo.localhost';
    const hidden = `GET /pid HTTP/1.1\r\nHost: ${H}\r\n\r\n`;
    const chunked = `0\r\n\r\n${hidden}`;
    const send = (text: string) => rawExchange(e.edge, [text], () => false, { timeoutMs: 3_000, resetIsClose: true }).catch((error: Error) => ({ text: error.message, closed: false }));
    const answers = (text: string): number => (text.match(/HTTP\/1\.1 \d{3}/g) ?? []).length;

    // Refused by HAProxy itself (its own 400 page, not a TNM_ERR code): conflicting Content-Lengths, an
    // obfuscated Transfer-Encoding, whitespace before the colon.
    for (const attack of [
      `POST /digest HTTP/1.1\r\nHost: ${H}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhelloo${hidden}`,
      `POST /digest HTTP/1.1\r\nHost: ${H}\r\nContent-Length: ${chunked.length}\r\nTransfer-Encoding: xchunked\r\n\r\n${chunked}`,
      `POST /digest HTTP/1.1\r\nHost: ${H}\r\nTransfer-Encoding : chunked\r\nContent-Length: ${chunked.length}\r\n\r\n${chunked}`,
    ]) {
      const reply = await send(attack);
      assert.match(reply.text, /^HTTP\/1\.1 400 /, attack);
      assert.equal(answers(reply.text), 1, 'nothing smuggled behind it');
    }

    // CL+TE: HAProxy drops Content-Length, reads the chunked body (empty), and closes the connection after the
    // answer, so the request hidden behind the chunks is never parsed (the built-in proxy refuses it with 400).
    const clte = await send(`POST /digest HTTP/1.1\r\nHost: ${H}\r\nContent-Length: ${chunked.length}\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`);
    assert.equal(answers(clte.text), 1, `one answer, the hidden GET never served:\n${clte.text}`);
    assert.match(clte.text, /"bytes":0,/);
    assert.match(clte.text, /"contentLength":null,"transferEncoding":"chunked"/, 'the instance saw one framing only');

    // obs-fold: HAProxy unfolds the line into the previous header's value, so the folded Transfer-Encoding is
    // data, the request is framed by its Content-Length alone (the built-in proxy refuses obs-fold with 400).
    const fold = await send(`POST /digest HTTP/1.1\r\nHost: ${H}\r\nX-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: ${chunked.length}\r\nConnection: close\r\n\r\n${chunked}`);
    assert.equal(answers(fold.text), 1, fold.text);
    assert.match(fold.text, new RegExp(`"bytes":${chunked.length},`));
    assert.match(fold.text, /"transferEncoding":null/);

    // Bare LF line ends: HAProxy reads them as line ends and sends the instance a CRLF head (the built-in proxy
    // refuses with 400); a header hidden after a bare LF is a header for both, so no desync.
    const lf = await send(`GET /echo HTTP/1.1\nHost: ${H}\nX-A: a\nConnection: close\n\n`);
    assert.equal(answers(lf.text), 1, lf.text);
    assert.match(lf.text, /^HTTP\/1\.1 200 /);
  });

  test('unknown hosts get the built-in edge\'s coded errors (answered by the activator)', async (t) => {
    const e = await startEdge(t, { echo: echoService({ idleTimeout: 0 }) });
    const cases: Array<[string, number, string]> = [
      ['nope.example.org', 404, 'TNM_ERR_UNKNOWN_HOST'],
      ['zz.nosvc.localhost', 404, 'TNM_ERR_UNKNOWN_SERVICE'],
      ['a.b.c.localhost', 400, 'TNM_ERR_BAD_HOST'],
      ['ghost.echo.localhost', 404, 'TNM_ERR_UNKNOWN_INSTANCE'],
      // A hostile tenant's names: never a map hit, never a prototype key, answered as the built-in answers them.
      ['__proto__.echo.localhost', 400, 'TNM_ERR_BAD_NAME'],
      ['constructor.localhost', 404, 'TNM_ERR_UNKNOWN_SERVICE'],
    ];
    for (const [host, status, code] of cases) {
      const viaEdge = await request(e.edge, host, '/');
      const viaBuiltin = await request(e.kernel, host, '/');
      assert.equal(viaEdge.status, status, `${host}: ${viaEdge.body}`);
      assert.equal(viaEdge.status, viaBuiltin.status, host);
      assert.equal((JSON.parse(viaEdge.body) as { error: { code: string } }).error.code, code);
    }
  });
});
