// TypeScript handlers as WebAssembly components served by the wasm tier through the kernel's proxy, on each engine:
// the examples' own services (examples/wasm-hello, examples/wasm-kv) over HTTP, a request body past the engine's
// limit, and per-tenant data that survives hibernation and a restart of the server.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ServiceInput } from '../../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import wasmRuntime from '../../runtimes/wasm/index.ts';
import { request, servePlugins } from '../helpers.ts';
import { ENGINES, HELLO_DIR, KV_DIR, buildComponents, engineSkip, jcoMissing, work } from './wasm-component-fixture.ts';

const skip = jcoMissing();

describe('wasm components (TypeScript handlers)', { skip, timeout: 300_000 }, () => {
  before(() => buildComponents());
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const engine of ENGINES) describe(`through the wasm tier and the kernel proxy [${engine}]`, { skip: engineSkip(engine) }, () => {
    let kernel: TestKernel | null = null;
    const dataDir = path.join(work, 'tier-data', engine);
    // The examples' own service definitions, their module made absolute (the kernel has one cwd) and with
    // room to transpile on the first spawn (seconds on a loaded 2-core machine).
    const example = async (dir: string, name: string): Promise<ServiceInput> => {
      const config = (await import(path.join(dir, 'tenement.config.ts'))) as { default: { services: Record<string, ServiceInput> } };
      const service = config.default.services[name]!;
      assert.equal(service.isolation, 'wasm');
      return { ...service, module: path.resolve(dir, service.module!), startupTimeout: '60s', wasm: { ...service.wasm, engine } };
    };
    const boot = async () =>
      createTestKernel({
        plugins: [...servePlugins, wasmRuntime],
        config: { settings: { dataDir }, services: { hello: await example(HELLO_DIR, 'hello'), kv: await example(KV_DIR, 'kv') } },
      });
    after(async () => {
      await kernel?.close();
    });

    test('serves the TypeScript function over HTTP; a guest error is a 500 and the next request works', async () => {
      kernel = await boot();
      const reply = await request(kernel, 'alice.hello.localhost', '/hi?name=bob', { headers: { 'user-agent': 'tier-test' } });
      assert.equal(reply.status, 200, reply.body);
      assert.equal(reply.headers['content-type'], 'application/json');
      const body = JSON.parse(reply.body) as Record<string, unknown>;
      assert.equal(body.hello, 'bob');
      assert.equal(body.agent, 'tier-test');

      const boom = await request(kernel, 'alice.hello.localhost', '/boom');
      assert.equal(boom.status, 500);
      const again = await request(kernel, 'alice.hello.localhost', '/hi');
      assert.equal(again.status, 200, again.body);

      const lines = kernel.instances.get('hello', 'alice')!.logs.query().map((e) => `${e.stream}: ${e.line}`);
      assert.ok(lines.includes('stdout: GET /hi for bob'), lines.join('\n'));
      assert.ok(lines.some((l) => l.includes('boom requested')), lines.join('\n'));
      // Served by the engine asked for, not a fallback to V8.
      assert.ok(!lines.some((l) => l.includes('running on V8')), lines.join('\n'));
    });

    test('a request body over the engine\'s limit is refused with 413 before the guest runs (wasmtime: 2 MiB), and the next request works', async () => {
      kernel ??= await boot();
      const body = Buffer.alloc(3 * 1024 * 1024, 120);
      const reply = await request(kernel, 'alice.hello.localhost', '/upload', { method: 'POST', body, timeoutMs: 60_000 });
      if (engine === 'wasmtime') {
        assert.equal(reply.status, 413, reply.body.slice(0, 300));
      } else {
        assert.equal(reply.status, 200, reply.body.slice(0, 300));
        assert.equal((JSON.parse(reply.body) as { bytes: number }).bytes, body.length);
      }
      const again = await request(kernel, 'alice.hello.localhost', '/hi');
      assert.equal(again.status, 200, again.body);
    });

    test('kv: alice and bob count separately; the counts survive hibernation and a restart of the server', async () => {
      kernel ??= await boot();
      const post = async (tenant: string) => {
        const reply = await request(kernel!, `${tenant}.kv.localhost`, '/increment', { method: 'POST' });
        assert.equal(reply.status, 200, reply.body);
        return (JSON.parse(reply.body) as { count: number }).count;
      };
      assert.equal(await post('alice'), 1);
      assert.equal(await post('alice'), 2);
      assert.equal(await post('bob'), 1);
      // Hibernation drops the instance; the next request wakes a fresh one that reads the count from disk.
      const alice = kernel.instances.get('kv', 'alice')!;
      await kernel.hibernate(alice, 'test');
      assert.equal(alice.state, 'hibernated');
      assert.equal(await post('alice'), 3);
      await kernel.close();
      kernel = await boot();
      const reply = await request(kernel, 'alice.kv.localhost', '/');
      assert.equal(reply.status, 200, reply.body);
      assert.equal((JSON.parse(reply.body) as { count: number }).count, 3);
      assert.equal(await post('bob'), 2);
    });
  });
});
