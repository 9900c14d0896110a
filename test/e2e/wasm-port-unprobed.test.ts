// A wasm instance's port is handed out without the probe's bind (TierTraits.probesPort false: the wake skips a
// bind and close). Its only port held by another program: the request is still served (in-process), the other
// program keeps its port and its answers, the instance is started again until the port is free, then binds it.
// The process tier, which probes, refuses the same range. Real kernel, real pool, real sockets.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import wasmRuntime from '../../runtimes/wasm/index.ts';
import { ECHO_APP, request, servePlugins, waitFor } from '../helpers.ts';
import { buildCGuests, wasmFunction } from '../wasm-guests.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-wasm-port-'));
const { handler: HANDLER, skip } = buildCGuests(work);
after(() => rmSync(work, { recursive: true, force: true }));

/** Another program's listener on a free port of the instance range, answering every connection with `OTHER`. */
async function otherProgram(): Promise<{ port: number; server: net.Server }> {
  for (let tries = 0; tries < 50; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    const server = net.createServer((socket) => socket.end('OTHER'));
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(true));
    });
    if (bound) return { port, server };
  }
  throw new Error('no free port to hold');
}

const askOther = (port: number): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve(text)).on('error', reject);
  });

test('a wasm instance whose only port another program holds still serves, and takes the port once it is free', { skip, timeout: 60_000 }, async (t) => {
  const { port, server } = await otherProgram();
  t.after(() => server.close());
  const kernel = await createTestKernel({
    plugins: [...servePlugins, wasmRuntime],
    config: {
      settings: { portRange: { from: port, to: port } },
      services: { hello: wasmFunction(HANDLER, { backoff: { base: '50ms', max: '200ms' }, maxRestarts: 1_000 }), app: { command: process.execPath, args: [ECHO_APP], autoCreate: { perAddress: { count: 10 } }, restart: 'never' } },
    },
  });
  t.after(() => kernel.close());

  const reply = await request(kernel, 'alice.hello.localhost', '/');
  assert.equal(reply.status, 200, `served in-process though its port is held: ${reply.body}`);
  assert.equal(await askOther(port), 'OTHER', 'the other program keeps its port');
  // The process tier probes its port: the range's only port is taken, so it cannot start.
  const refused = await request(kernel, 'bob.app.localhost', '/');
  assert.ok(refused.status >= 500, `the probing tier refuses the held port: ${refused.status} ${refused.body}`);

  server.close();
  await waitFor(async () => {
    const instance = kernel.instances.get('hello', 'alice');
    return instance?.state === 'running' && (await instance.handle?.ownsAddress?.()) === true;
  }, 'the wasm instance to bind its port once it is free', 20_000);
  assert.equal(kernel.instances.get('hello', 'alice')!.handle!.address.port, port);
  assert.equal((await request(kernel, 'alice.hello.localhost', '/')).status, 200);
});
