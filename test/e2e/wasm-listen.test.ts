// A wasm instance's loopback face (runtimes/wasm/function-server.ts) listens off the wake's path: its spawn
// resolves before the listener is up, and the proxy calls the instance in-process meanwhile. A port taken between
// the allocator's probe and the bind must not leave an instance that claims an address another program answers
// on: the instance ends as a crash would (onExit, a log line), says it does not own its address, and holds no
// listener. A stop while the listen is under way must not leave a listener bound after it. Real module, real
// pool, real sockets.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { ExitInfo, SpawnSpec } from '../../core/types.ts';
import { ModuleCache } from '../../core/wasm/module-cache.ts';
import { WasmPool } from '../../core/wasm/pool.ts';
import { startFunctionServer } from '../../runtimes/wasm/function-server.ts';
import { WasmMetrics } from '../../runtimes/wasm/metrics.ts';
import { buildCGuests } from '../wasm-guests.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-wasm-listen-'));
const { handler: HANDLER, skip } = buildCGuests(work);
const pool = new WasmPool({ threads: 1 });
after(async () => {
  await pool.close();
  rmSync(work, { recursive: true, force: true });
});

const SETTINGS = { timeoutMs: 5_000, fresh: false, maxQueue: 16, maxBody: 1_000_000 };

/** A listener of another program on `port`; closing it ends its connections too. */
function listenOn(port: number): Promise<{ server: net.Server; close: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.end('HTTP/1.1 418 Not Yours\r\ncontent-length: 0\r\n\r\n');
    });
    const close = () => new Promise<void>((done) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => done());
    });
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve({ server, close }));
  });
}

async function freePort(): Promise<number> {
  const probe = await listenOn(0);
  const port = (probe.server.address() as net.AddressInfo).port;
  await probe.close();
  return port;
}

function specFor(port: number, logs: string[], exits: ExitInfo[]): SpawnSpec {
  const dataDir = path.join(work, `data-${port}`);
  mkdirSync(dataDir, { recursive: true });
  return {
    service: 'fn', id: `i${port}`, tier: 'wasm', command: '', args: [], env: {}, cwd: work, port, host: '127.0.0.1', dataDir,
    config: { env: {} } as unknown as SpawnSpec['config'],
    onLog: (_stream: string, line: string) => logs.push(line),
    onExit: (exit: ExitInfo) => exits.push(exit),
  } as unknown as SpawnSpec;
}

async function until(check: () => boolean, what: string, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('a wasm instance listens off the wake path', { skip }, () => {
  const load = async () => new ModuleCache(path.join(work, 'cache')).load(HANDLER, 64, 'v8');
  const metrics = new WasmMetrics(() => pool, () => ['fn']);

  test('a port taken after the probe ends the instance as a crash, and it claims no address', async () => {
    const port = await freePort();
    const squatter = await listenOn(port);
    try {
      const logs: string[] = [];
      const exits: ExitInfo[] = [];
      const handle = await startFunctionServer(specFor(port, logs, exits), await load(), pool, SETTINGS, metrics);
      await until(() => exits.length === 1, 'the instance to end');
      assert.deepEqual(exits[0], { code: 1, signal: null });
      assert.ok(logs.some((line) => line.includes('EADDRINUSE')), logs.join('\n'));
      assert.equal(await handle.ownsAddress!(), false);
      // The port still answers from the program that took it, and only from it.
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
        let text = '';
        socket.on('data', (chunk) => (text += chunk));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
      assert.match(answer, /418 Not Yours/);
    } finally {
      await squatter.close();
    }
  });

  test('a free port: the instance answers in-process at once, on its port once listening, and a stop right after the spawn leaves the port free', async () => {
    const port = await freePort();
    const logs: string[] = [];
    const exits: ExitInfo[] = [];
    const handle = await startFunctionServer(specFor(port, logs, exits), await load(), pool, SETTINGS, metrics);
    const direct = await handle.inProcess!.serve({ method: 'GET', target: '/', headers: ['host', 'fn.localhost'], body: Buffer.alloc(0), remoteAddress: '127.0.0.1' });
    assert.equal(direct.status, 200);
    assert.equal(await handle.ownsAddress!(), true);
    const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { host: 'fn.localhost' } }).catch(() => null);
    // Listening by now (a fetch takes longer than the bind); either way the port is the instance's.
    if (res) assert.equal(res.status, 200);
    await handle.stop({ graceMs: 0 });
    await (await listenOn(port)).close();

    // Stopped before its listen settled: no listener is left bound afterwards.
    const port2 = await freePort();
    const early = await startFunctionServer(specFor(port2, logs, exits), await load(), pool, SETTINGS, metrics);
    await early.stop({ graceMs: 0 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await (await listenOn(port2)).close();
    assert.deepEqual(exits, [{ code: 0, signal: null }, { code: 0, signal: null }]);
  });
});
