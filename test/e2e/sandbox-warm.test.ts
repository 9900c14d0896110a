// The sandbox tier's warm pool end to end (real runsc): a start or a wake runs the instance as a second
// container in a booted, empty sandbox, which is destroyed with it.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { ServiceInput } from '../../core/config/schema.ts';
import { processTree } from '../../core/process/tree.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import cgroups from '../../plugins/cgroups/index.ts';
import sandboxRuntime from '../../runtimes/sandbox/index.ts';
import { sandboxPaths } from '../../runtimes/sandbox/runsc.ts';
import { FIXTURES, getJson, gone, onPath, recordEvents, request, servePlugins, sleep, waitFor } from '../helpers.ts';
import { assertConfined, probeService, type Probe } from '../probe.ts';

const skip = onPath('runsc') ? false : 'needs runsc (apt-get install runsc)';
const asRoot = process.getuid?.() === 0;
// The pool is opt-in (warmSandboxes, default 0).
const plugins = [...servePlugins, [sandboxRuntime, { warmSandboxes: 1 }] as const];
const sandboxProbe = (overrides: Partial<ServiceInput> = {}): ServiceInput => probeService({ isolation: 'sandbox', idleTimeout: false, ...overrides });

interface RunscState {
  goferPid?: number;
  sandbox?: { pid?: number };
  status?: string;
}

/** runsc's state files: `<container>_sandbox:<sandbox>.state`, one per container of this data dir. */
function stateFiles(dataRoot: string): Array<{ container: string; sandbox: string; meta: RunscState }> {
  const { state } = sandboxPaths(dataRoot);
  if (!existsSync(state)) return [];
  const files: Array<{ container: string; sandbox: string; meta: RunscState }> = [];
  for (const name of readdirSync(state)) {
    const match = /^(.+)_sandbox:(.+)\.state$/.exec(name);
    if (!match) continue;
    try {
      files.push({ container: match[1]!, sandbox: match[2]!, meta: JSON.parse(readFileSync(path.join(state, name), 'utf8')) as RunscState });
    } catch {
      // Being written or deleted.
    }
  }
  return files;
}

const warmSandboxes = (dataRoot: string) => stateFiles(dataRoot).filter((f) => f.container.startsWith('warm-') && f.container === f.sandbox);

/** The sandbox the instance's container runs in (its own id when it booted its own). */
function sandboxOf(dataRoot: string, service: string, id: string): { container: string; sandbox: string } {
  const own = stateFiles(dataRoot).filter((f) => f.container.startsWith(`${service}-${id}-`));
  assert.equal(own.length, 1, `one container for ${service}:${id}: ${own.map((f) => f.container).join(' ')}`);
  return own[0]!;
}

/** Waits until the pool holds an idle sandbox (runsc says running, and the pool has read its pids). */
async function warmReady(dataRoot: string): Promise<string> {
  await waitFor(() => warmSandboxes(dataRoot).some((f) => f.meta.status === 'running' && !!f.meta.sandbox?.pid), 'a warm sandbox', 20_000);
  await sleep(200);
  return warmSandboxes(dataRoot)[0]!.sandbox;
}

describe('sandbox tier: warm sandboxes', { timeout: 300_000, skip }, () => {
  test('a wake runs the instance in a warm sandbox: confined as ever, DATA_DIR kept, the used sandbox destroyed', async (t) => {
    process.env.TENEMENT_TEST_SECRET = 'do-not-leak';
    t.after(() => delete process.env.TENEMENT_TEST_SECRET);
    const kernel = await createTestKernel({ plugins, config: { services: { probe: sandboxProbe() } } });
    t.after(() => kernel.close());
    const dataRoot = kernel.config.settings.dataDir;

    const firstWarm = await warmReady(dataRoot);
    const instance = await kernel.spawnInstance('probe', 'a');
    assert.equal(instance.state, 'running', instance.lastError ?? '');
    assert.equal(sandboxOf(dataRoot, 'probe', 'a').sandbox, firstWarm, 'the start took the warm sandbox');

    const probe = await getJson<Probe>(kernel, 'a.probe.localhost', `/probe?kill=${process.pid}`);
    assertConfined(probe);
    assert.ok(probe.pids.includes(1) && probe.pids.length <= 4, `only its own processes, not the idle root container: ${probe.pids.join(' ')}`);
    assert.equal(probe.hostname, 'a-probe');
    const { release } = await getJson<{ release: string }>(kernel, 'a.probe.localhost', '/kernel');
    assert.match(release, /^4\.4\.0/, "gVisor's kernel answers");
    const dataDir = kernel.instanceDir('probe', 'a');
    assert.equal((await request(kernel, 'a.probe.localhost', `/write?path=${dataDir}/kept`)).status, 200);
    assert.equal(await instance.handle!.ownsAddress!(), true, "the warm sandbox's sentry holds the listener");
    assert.ok(((await instance.handle!.stats()).memoryBytes ?? 0) > 40 * 1024 * 1024, 'stats include the warm sentry');
    const sentry = stateFiles(dataRoot).find((f) => f.container === firstWarm)!.meta.sandbox!.pid!;

    await kernel.hibernate(instance, 'test');
    assert.equal(instance.state, 'hibernated');
    assert.ok(gone(sentry), 'the sandbox it ran in is destroyed with it');
    assert.ok(!stateFiles(dataRoot).some((f) => f.sandbox === firstWarm), 'and its runsc state');

    const secondWarm = await warmReady(dataRoot);
    assert.notEqual(secondWarm, firstWarm, 'a fresh sandbox refills the pool: none is ever reused');
    assert.deepEqual(await getJson(kernel, 'a.probe.localhost', `/exists?path=${dataDir}/kept`), { exists: true }, 'the wake keeps DATA_DIR');
    assert.equal(sandboxOf(dataRoot, 'probe', 'a').sandbox, secondWarm, 'the wake took the new warm sandbox');
  });

  test('a warm sandbox that died while idle is not used: the start boots its own', async (t) => {
    const kernel = await createTestKernel({ plugins, config: { services: { probe: sandboxProbe() } } });
    t.after(() => kernel.close());
    const dataRoot = kernel.config.settings.dataDir;
    const warm = await warmReady(dataRoot);
    process.kill(warmSandboxes(dataRoot).find((f) => f.sandbox === warm)!.meta.sandbox!.pid!, 'SIGKILL');

    const instance = await kernel.spawnInstance('probe', 'a');
    assert.equal(instance.state, 'running', instance.lastError ?? '');
    const { container, sandbox } = sandboxOf(dataRoot, 'probe', 'a');
    assert.equal(sandbox, container, 'a sandbox of its own');
    assert.equal((await request(kernel, 'a.probe.localhost', '/health')).status, 200);
    await waitFor(() => !stateFiles(dataRoot).some((f) => f.sandbox === warm), 'the dead warm sandbox to be deleted');
  });

  test('an instance on a Unix socket takes a warm sandbox booted with --host-uds=create', async (t) => {
    const service: ServiceInput = { command: `node ${path.join(FIXTURES, 'net-app.mjs')}`, health: '/health', isolation: 'sandbox', cwd: FIXTURES, listen: 'socket', idleTimeout: false };
    const kernel = await createTestKernel({ plugins, config: { services: { probe: service } } });
    t.after(() => kernel.close());
    const dataRoot = kernel.config.settings.dataDir;
    const warm = await warmReady(dataRoot);
    const instance = await kernel.spawnInstance('probe', 'a');
    assert.equal(instance.state, 'running', instance.lastError ?? '');
    assert.equal(sandboxOf(dataRoot, 'probe', 'a').sandbox, warm);
    assert.ok(instance.handle?.address.socketPath);
    assert.equal((await request(kernel, 'a.probe.localhost', '/health')).status, 200);
    assert.equal(await instance.handle!.ownsAddress!(), true);
  });

  test('limits hold in a warm sandbox: its processes join the instance cgroups, and an OOM kill is reported', { skip: asRoot ? false : 'cgroups need root' }, async (t) => {
    const kernel = await createTestKernel({
      plugins: [...plugins, cgroups],
      config: {
        services: {
          bomb: { command: `node ${path.join(FIXTURES, 'bombs.mjs')}`, health: '/health', isolation: 'sandbox', cwd: FIXTURES, restart: 'never', limits: { memory: '256MB', pids: 64 } },
        },
      },
    });
    t.after(() => kernel.close());
    const dataRoot = kernel.config.settings.dataDir;
    const events = recordEvents(kernel);
    const warm = await warmReady(dataRoot);
    const instance = await kernel.spawnInstance('bomb', 'a');
    assert.equal(instance.state, 'running', instance.lastError ?? '');
    assert.equal(sandboxOf(dataRoot, 'bomb', 'a').sandbox, warm);
    const sentry = stateFiles(dataRoot).find((f) => f.container === warm)!.meta.sandbox!.pid!;
    const memoryCgroup = /^\d+:memory:(.*)$/m.exec(readFileSync(`/proc/${sentry}/cgroup`, 'utf8'))?.[1] ?? '';
    const leaderCgroup = /^\d+:memory:(.*)$/m.exec(readFileSync(`/proc/${instance.handle!.pid}/cgroup`, 'utf8'))?.[1] ?? '';
    assert.equal(memoryCgroup, leaderCgroup, "the warm sentry is in the instance's memory cgroup");
    // The sentry and every stub it made (the app's among them, holding its memory): a stub forked while the warm
    // sandbox was being moved once stayed outside, and the hoard below then grew past the limit unseen.
    const memoryOf = (pid: number) => /^\d+:memory:(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1];
    assert.deepEqual(processTree(sentry).map((pid) => [pid, memoryOf(pid)]).filter(([, cgroup]) => cgroup !== leaderCgroup), [], 'no sandbox process outside the memory cgroup');

    const forks = JSON.parse((await request(kernel, 'a.bomb.localhost', '/fork?n=100')).body) as { ok: number; failed: number };
    assert.ok(forks.failed > 0 && forks.ok < 64, `the pids limit refuses forks: ${JSON.stringify(forks)}`);
    void request(kernel, 'a.bomb.localhost', '/alloc').catch(() => undefined);
    // Generous: under the ptrace platform every page the hoard touches is a trap, slow on a loaded 2-core host.
    await waitFor(() => events.some((e) => e.type === 'oom'), 'the OOM kill to be reported', 90_000);
    await waitFor(() => instance.state === 'failed' || instance.state === 'stopped', 'the killed sandbox to end', 10_000);
    await waitFor(() => gone(sentry), 'the warm sentry to be gone');
  });

  test('by default no sandbox is kept ready, and a bad warmSandboxes is refused naming the option', async (t) => {
    const kernel = await createTestKernel({ plugins: [...servePlugins, sandboxRuntime], config: { services: { probe: sandboxProbe() } } });
    t.after(() => kernel.close());
    const dataRoot = kernel.config.settings.dataDir;
    const instance = await kernel.spawnInstance('probe', 'a');
    assert.equal(instance.state, 'running', instance.lastError ?? '');
    const { container, sandbox } = sandboxOf(dataRoot, 'probe', 'a');
    assert.equal(sandbox, container);
    assert.deepEqual(warmSandboxes(dataRoot), []);

    await assert.rejects(
      createTestKernel({ plugins: [...servePlugins, [sandboxRuntime, { warmSandboxes: -1 }]], config: { services: { probe: sandboxProbe() } } }),
      /warmSandboxes/,
    );
  });
});
