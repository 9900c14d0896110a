// The sandbox tier end to end: the probe app in a real gVisor sandbox (runsc), behind a real kernel.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import type { ServiceInput } from '../../core/config/schema.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import cgroups, { cgroupScope } from '../../plugins/cgroups/index.ts';
import { detectCgroups } from '../../plugins/cgroups/detect.ts';
import network from '../../plugins/network/index.ts';
import sandboxRuntime from '../../runtimes/sandbox/index.ts';
import { globalFlags, sandboxPaths } from '../../runtimes/sandbox/runsc.ts';
import { hostTasksFor } from '../../runtimes/sandbox/spawn-sandbox.ts';
import { FIXTURES, getJson, gone, onPath, recordEvents, request, servePlugins, waitFor } from '../helpers.ts';
import { assertConfined, assertTierUnavailable, probeService, type Attempt, type Probe } from '../probe.ts';

const BOMBS = path.join(FIXTURES, 'bombs.mjs');
const NET_APP = path.join(FIXTURES, 'net-app.mjs');
const skip = onPath('runsc') ? false : 'needs runsc (apt-get install runsc)';
const asRoot = process.getuid?.() === 0;
const plugins = [...servePlugins, sandboxRuntime];

const sandboxProbe = (overrides: Partial<ServiceInput> = {}): ServiceInput => probeService({ isolation: 'sandbox', ...overrides });

/**
 * Host processes of this data dir's sandboxes: every runsc process (run, gofer, sentry) names the state root
 * in its arguments; the sentry's ptrace stubs are its children. The app itself exists only inside the sentry.
 */
function processesOf(dataRoot: string): number[] {
  const marker = `--root=${sandboxPaths(dataRoot).state}`;
  const parents = new Map<number, number>();
  const found = new Set<number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      parents.set(Number(entry), Number(fields[1]));
      if (readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0').includes(marker)) found.add(Number(entry));
    } catch {
      // Gone.
    }
  }
  for (const [pid, ppid] of parents) if (found.has(ppid)) found.add(pid);
  return [...found];
}

/** Containers runsc knows in this data dir's state root. */
function containers(dataDir: string): string[] {
  const { state } = sandboxPaths(dataDir);
  if (!existsSync(state)) return [];
  return execFileSync('runsc', [`--root=${state}`, 'list', '-quiet'], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

function bundles(dataDir: string): string[] {
  const dir = sandboxPaths(dataDir).bundles;
  return existsSync(dir) ? readdirSync(dir) : [];
}

/**
 * With `warmSandboxes` on, the runtime keeps one booted, empty sandbox ready (runtimes/sandbox/warm-pool.ts):
 * what belongs to an instance is everything else. A warm sandbox an instance ran in is destroyed with it, so at
 * most one (the refill) may be left once no instance runs: a leaked used one would make two.
 */
const isWarm = (name: string): boolean => name.startsWith('warm-');
const instanceContainers = (dataDir: string): string[] => containers(dataDir).filter((id) => !isWarm(id));
const instanceBundles = (dataDir: string): string[] => bundles(dataDir).filter((name) => !isWarm(name));

/** processesOf without the warm sandboxes' processes: those naming a warm bundle, and their stubs below them. */
function instanceProcessesOf(dataRoot: string): number[] {
  const warmBundles = `${sandboxPaths(dataRoot).bundles}/warm-`;
  const all = processesOf(dataRoot);
  const warm = new Set<number>();
  const parentOf = (pid: number): number => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      return 0;
    }
  };
  for (const pid of all) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').some((arg) => arg.includes(warmBundles))) warm.add(pid);
    } catch {
      // Gone.
    }
  }
  const underWarm = (pid: number): boolean => {
    for (let at = pid, hops = 0; at > 1 && hops < 64; at = parentOf(at), hops++) if (warm.has(at)) return true;
    return false;
  };
  return all.filter((pid) => !underWarm(pid));
}

function describeProcess(pid: number): string {
  try {
    return `${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').join(' ').slice(0, 300)}`;
  } catch {
    return `${pid} (gone)`;
  }
}

/**
 * Only the idle warm sandbox is left. A crashed run's sandbox is destroyed in the background (nobody waits for a
 * crashed process's stop), so its last `runsc delete` may still be running for a moment.
 */
async function assertOnlyIdleWarm(dataRoot: string): Promise<void> {
  await waitFor(
    () => instanceProcessesOf(dataRoot).length + instanceContainers(dataRoot).length + instanceBundles(dataRoot).length === 0,
    'the background clean-up of a crashed run',
    5_000,
  ).catch(() => undefined);
  const left = instanceProcessesOf(dataRoot);
  assert.deepEqual(left, [], `no process of an instance: ${left.map(describeProcess).join('; ')}`);
  assert.deepEqual(instanceContainers(dataRoot), [], 'no container of an instance');
  assert.deepEqual(instanceBundles(dataRoot), [], 'no bundle of an instance');
  assert.ok(containers(dataRoot).filter(isWarm).length <= 1, `at most the one idle warm sandbox: ${containers(dataRoot).join(' ')}`);
}

/**
 * One sandboxed instance through hibernation, a wake, a crash and its restart, and removal, checking after each
 * that nothing of it is left. With `warm`, the runtime keeps one warm sandbox: the idle one belongs to the pool
 * (at most one may be left), and only closing the server removes it.
 */
async function hibernateWakeCrashStop(t: TestContext, warm: boolean): Promise<void> {
  const kernel = await createTestKernel({
    plugins: warm ? [...servePlugins, [sandboxRuntime, { warmSandboxes: 1 }]] : plugins,
    config: { services: { probe: sandboxProbe({ idleTimeout: '400ms', backoff: { base: 50 } }) } },
  });
  t.after(() => kernel.close());
  const dataRoot = kernel.config.settings.dataDir;
  const ownContainers = warm ? instanceContainers : containers;
  const ownProcesses = warm ? instanceProcessesOf : processesOf;
  const nothingLeft = async (when: string): Promise<void> => {
    if (warm) return assertOnlyIdleWarm(dataRoot);
    assert.deepEqual(processesOf(dataRoot), [], `no process ${when}`);
    assert.deepEqual(containers(dataRoot), [], `no container ${when}`);
    assert.deepEqual(bundles(dataRoot), [], `no bundle ${when}`);
  };
  const events = recordEvents(kernel);
  const instance = await kernel.spawnInstance('probe', 'a');
  assert.equal(ownContainers(dataRoot).length, 1);
  assert.ok(processesOf(dataRoot).length >= 4, 'runsc, its gofer, its sentry and a stub run');

  await waitFor(() => instance.state === 'hibernated', 'the idle sandbox to hibernate', 20_000);
  await waitFor(() => ownProcesses(dataRoot).length === 0, 'no process of the hibernated sandbox', 10_000);
  if (warm) await waitFor(() => containers(dataRoot).filter(isWarm).length <= 1, 'the used warm sandbox to go', 10_000);
  await nothingLeft('kept while hibernated');

  const woken = await getJson<Probe>(kernel, 'a.probe.localhost', '/probe');
  assert.equal(woken.hostname, 'a-probe', 'a request wakes the sandbox');

  // A crash: the app exits 3 inside the sandbox; runsc exits with it; the supervisor starts a fresh container.
  const before = ownContainers(dataRoot);
  const pidBefore = instance.handle!.pid;
  await request(kernel, 'a.probe.localhost', '/exit?code=3');
  await waitFor(() => events.some((e) => e.type === 'restarting' && /exited with code 3/.test(e.reason ?? '')), 'the crash to be seen');
  await waitFor(() => instance.state === 'running' && instance.handle?.pid !== pidBefore, 'the restart');
  assert.equal((await request(kernel, 'a.probe.localhost', '/health')).status, 200);
  await waitFor(() => ownContainers(dataRoot).length === 1 && ownContainers(dataRoot)[0] !== before[0], 'only the new container');

  await kernel.removeInstance(instance);
  await nothingLeft('after stop');
  if (!warm) return;
  // Closing the server destroys the idle warm sandbox too: nothing at all is left.
  await kernel.close();
  assert.deepEqual(processesOf(dataRoot), [], 'no process after close');
  assert.deepEqual(containers(dataRoot), [], 'no container after close');
  assert.deepEqual(bundles(dataRoot), [], 'no bundle after close');
}

describe('sandbox tier', { timeout: 400_000, skip }, () => {
  test('a tenant sees its own kernel and only itself: pids, uid, capabilities, files, signals, mount, env, neighbours', async (t) => {
    process.env.TENEMENT_TEST_SECRET = 'do-not-leak';
    t.after(() => delete process.env.TENEMENT_TEST_SECRET);
    // Not under /tmp, which is private inside: the file must be visible, and still unreadable.
    const secretDir = mkdtempSync(path.join('/var/tmp', 'tenement-secret-'));
    chmodSync(secretDir, 0o755);
    const secret = path.join(secretDir, 'root-only');
    writeFileSync(secret, 'secret');
    chmodSync(secret, 0o600);

    const kernel = await createTestKernel({ plugins, config: { services: { probe: sandboxProbe() } } });
    // One hook, closing before removing (after-hooks stop at the first that throws).
    t.after(() => kernel.close().finally(() => rmSync(secretDir, { recursive: true, force: true })));
    const tier = await kernel.hooks.probe.get('sandbox')!.promise();
    assert.equal(tier?.available, true, `the probe starts a real container: ${tier?.reason}`);
    const [a, b] = await Promise.all([kernel.spawnInstance('probe', 'a'), kernel.spawnInstance('probe', 'b')]);
    assert.equal(a.state, 'running', a.lastError ?? '');
    assert.equal(b.state, 'running', b.lastError ?? '');

    const { release } = await getJson<{ release: string }>(kernel, 'a.probe.localhost', '/kernel');
    assert.notEqual(release, os.release(), "gVisor's kernel answers, not the host's");

    const probe = await getJson<Probe>(kernel, 'a.probe.localhost', `/probe?read=${encodeURIComponent(secret)}&kill=${process.pid}`);
    assert.ok(probe.pids.length <= 4, `only the sandbox's own processes are visible: ${probe.pids.join(' ')}`);
    assert.ok(probe.pids.includes(1), 'the app is pid 1 of its sandbox');
    assertConfined(probe);
    assert.deepEqual(probe.read, { ok: false, code: 'EACCES' }, 'a root-only host file is visible but cannot be read');
    assert.equal(probe.env.DATA_DIR, kernel.instanceDir('probe', 'a'));
    assert.equal(probe.env.PORT, String(a.port));

    // Writes: only DATA_DIR (and the private /tmp) reach anything; the host folder the app runs from does not.
    const aData = kernel.instanceDir('probe', 'a');
    assert.equal((await request(kernel, 'a.probe.localhost', `/write?path=${aData}/mine`)).status, 200);
    assert.equal(readFileSync(path.join(aData, 'mine'), 'utf8'), 'probe', "the file lands in a's DATA_DIR on the host");
    assert.equal((await request(kernel, 'a.probe.localhost', `/write?path=${path.join(FIXTURES, 'sandbox-was-here')}`)).status, 500);
    assert.equal((await request(kernel, 'a.probe.localhost', `/write?path=${secretDir}/new`)).status, 500);
    assert.equal((await request(kernel, 'a.probe.localhost', '/write?path=/tmp/from-a')).status, 200);
    // The neighbour sees neither a's DATA_DIR, nor a's /tmp, nor Tenement's own files.
    assert.deepEqual(await getJson(kernel, 'b.probe.localhost', `/exists?path=${aData}/mine`), { exists: false });
    assert.deepEqual(await getJson(kernel, 'b.probe.localhost', '/exists?path=/tmp/from-a'), { exists: false });
    assert.deepEqual(await getJson(kernel, 'b.probe.localhost', `/exists?path=${path.join(kernel.config.settings.dataDir, 'tenement.db')}`), {
      exists: false,
    });
    assert.equal((await request(kernel, 'b.probe.localhost', `/write?path=${aData}/theirs`)).status, 500);

    const stats = await a.handle!.stats();
    assert.ok((stats.memoryBytes ?? 0) > 20 * 1024 * 1024, `stats cover the sandbox tree: ${stats.memoryBytes}`);
    assert.equal(await a.handle!.ownsAddress!(), true, "the listener is recognised as the sandbox's");
  });

  test('hibernate, wake, crash-restart and stop leave no container, process or bundle behind', (t) => hibernateWakeCrashStop(t, false));

  // With the pool: its starts, crash clean-up and stops are the ones with the most to leave behind.
  test('hibernate, wake, crash-restart and stop leave no container, process or bundle behind (warm sandboxes on)', (t) =>
    hibernateWakeCrashStop(t, true));

  test('an app that ignores SIGTERM is killed through runsc after stopTimeout, leaving nothing', async (t) => {
    const stubborn = "process.on('SIGTERM', () => console.log('ignoring SIGTERM')); require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT, process.env.HOST)";
    const kernel = await createTestKernel({ plugins, config: { services: { s: { command: 'node', args: ['-e', stubborn], isolation: 'sandbox', stopTimeout: '500ms' } } } });
    t.after(() => kernel.close());
    const instance = await kernel.spawnInstance('s', 'a');
    assert.equal(instance.state, 'running', instance.lastError ?? '');
    await kernel.removeInstance(instance);
    assert.ok(instance.logs.query({}).some((line) => line.line === 'ignoring SIGTERM'), 'SIGTERM reached the app inside the sandbox');
    const dataRoot = kernel.config.settings.dataDir;
    assert.deepEqual(processesOf(dataRoot), []);
    assert.deepEqual(containers(dataRoot), []);
    assert.deepEqual(bundles(dataRoot), []);
  });

  test('a container left by a crashed run is killed and deleted when the plugin starts', async (t) => {
    const dataRoot = mkdtempSync(path.join(os.tmpdir(), 'tenement-sandbox-left-'));
    const { state, bundles: bundleDir } = sandboxPaths(dataRoot);
    const bundle = path.join(bundleDir, 'crashed-1');
    mkdirSync(bundle, { recursive: true });
    writeFileSync(
      path.join(bundle, 'config.json'),
      JSON.stringify({
        ociVersion: '1.0.0',
        process: { terminal: false, user: { uid: 65534, gid: 65534 }, args: ['/bin/sleep', '1000'], env: ['PATH=/usr/bin:/bin'], cwd: '/' },
        root: { path: '/', readonly: true },
        mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
        linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }] },
      }),
    );
    // What a Tenement killed with -9 leaves: a running container with nobody attached to it.
    const runsc = spawn('runsc', [...globalFlags(state), 'run', '--detach', '--bundle', bundle, 'crashed-1'], { stdio: 'ignore' });
    const code = await new Promise<number | null>((resolve) => runsc.once('exit', resolve));
    assert.equal(code, 0, 'the leftover container started');
    const sentry = (JSON.parse(execFileSync('runsc', [`--root=${state}`, 'state', 'crashed-1'], { encoding: 'utf8' })) as { pid: number }).pid;
    t.after(() => {
      // Only if the plugin failed to: the test must not leave it running.
      execFileSync('runsc', [`--root=${state}`, 'delete', '-force', 'crashed-1'], { stdio: 'ignore' });
    });
    assert.ok(!gone(sentry));

    const kernel = await createTestKernel({ plugins, config: { settings: { dataDir: dataRoot } } });
    // One hook, closing before removing: the kernel and runsc write into the folder (after-hooks stop at the first
    // that throws).
    t.after(() => kernel.close().finally(() => rmSync(dataRoot, { recursive: true, force: true })));
    assert.deepEqual(containers(dataRoot), [], 'the leftover container is deleted');
    assert.ok(gone(sentry), 'its sentry is gone');
    assert.ok(!existsSync(bundle), 'its bundle is gone');
  });

  test('memory and pids limits hold for a sandboxed app (cgroups), and an OOM kill is reported as oom', { skip: asRoot ? false : 'cgroups need root' }, async (t) => {
    const kernel = await createTestKernel({
      plugins: [...plugins, cgroups],
      config: {
        services: {
          bomb: {
            command: `node ${BOMBS}`,
            health: '/health',
            isolation: 'sandbox',
            cwd: FIXTURES,
            restart: 'never',
            limits: { memory: '256MB', pids: 64 },
          },
        },
      },
    });
    t.after(() => kernel.close());
    const events = recordEvents(kernel);
    const instance = await kernel.spawnInstance('bomb', 'a');
    assert.equal(instance.state, 'running', instance.lastError ?? '');
    // gVisor enforces the 64 inside; the host's pids.max is the backstop the runtime had the cgroups plugin raise.
    const pidsMax = path.join(detectCgroups().roots.pids!, cgroupScope(kernel.config.settings.dataDir), 'bomb', 'a', 'pids.max');
    assert.equal(readFileSync(pidsMax, 'utf8').trim(), String(hostTasksFor(64)));

    const forks = JSON.parse((await request(kernel, 'a.bomb.localhost', '/fork?n=100')).body) as { ok: number; failed: number };
    assert.ok(forks.failed > 0 && forks.ok < 64, `the pids limit refuses forks: ${JSON.stringify(forks)}`);
    assert.equal((await request(kernel, 'a.bomb.localhost', '/health')).status, 200, 'the sandbox survives its fork bomb');

    void request(kernel, 'a.bomb.localhost', '/alloc').catch(() => undefined);
    // Generous: under the ptrace platform every page the hoard touches is a trap, slow on a loaded 2-core host.
    await waitFor(() => events.some((e) => e.type === 'oom'), 'the OOM kill to be reported', 90_000);
    await waitFor(() => instance.state === 'failed' || instance.state === 'stopped', 'the killed sandbox to end', 10_000);
  });

  test("network 'private' joins the instance's namespace; 'none' with listen 'socket' is served over --host-uds", {
    skip: !asRoot ? 'needs root (network namespaces)' : !onPath('ip') || !onPath('nft') ? 'needs ip and nft (apt-get install iproute2 nftables)' : false,
  }, async (t) => {
    const loopback = createServer((_req, res) => res.end('host')).listen(0, '127.0.0.1');
    t.after(() => loopback.close());
    await once(loopback, 'listening');
    const hostPort = (loopback.address() as AddressInfo).port;
    const range = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}`;
    const service = (overrides: Partial<ServiceInput>): ServiceInput => ({ command: `node ${NET_APP}`, health: '/health', isolation: 'sandbox', cwd: FIXTURES, ...overrides });
    const kernel = await createTestKernel({
      plugins: [...plugins, network],
      config: {
        settings: { network: { range: `${range}.0/24` } },
        services: { priv: service({ network: 'private' }), iso: service({ network: 'none', listen: 'socket' }) },
      },
    });
    t.after(() => kernel.close());
    const priv = await kernel.spawnInstance('priv', 'a');
    const iso = await kernel.spawnInstance('iso', 'a');
    assert.equal(priv.state, 'running', priv.lastError ?? '');
    assert.equal(iso.state, 'running', iso.lastError ?? '');

    assert.equal(priv.handle?.address.host, `${range}.2`, 'reached through its veth address');
    const whoPriv = await getJson<{ interfaces: Record<string, string[]> }>(kernel, 'a.priv.localhost', '/whoami');
    assert.deepEqual(whoPriv.interfaces.eth0, [`${range}.2`]);
    assert.equal((await getJson<Attempt>(kernel, 'a.priv.localhost', `/connect?host=127.0.0.1&port=${hostPort}`)).ok, false, "no host loopback");
    assert.equal(await priv.handle!.ownsAddress!(), true);

    assert.equal(iso.handle?.address.socketPath, path.join(kernel.instanceDir('iso', 'a'), 'app.sock'));
    const whoIso = await getJson<{ interfaces: Record<string, string[]> }>(kernel, 'a.iso.localhost', '/whoami');
    assert.deepEqual(Object.keys(whoIso.interfaces), ['lo']);
    assert.equal((await getJson<Attempt>(kernel, 'a.iso.localhost', `/connect?host=127.0.0.1&port=${hostPort}`)).ok, false, "no host loopback");
    assert.equal(await iso.handle!.ownsAddress!(), true, 'the socket is held by the sandbox (its gofer)');

    // runsc kill must reach a sentry whose control socket lives in the instance's namespace.
    await kernel.removeInstance(priv);
    await kernel.removeInstance(iso);
    assert.deepEqual(processesOf(kernel.config.settings.dataDir), []);
    assert.deepEqual(containers(kernel.config.settings.dataDir), []);
  });

  test('a missing runsc fails the probe and the spawn with TNM_ERR_TIER_UNAVAILABLE naming the package', async (t) => {
    const kernel = await createTestKernel({
      plugins: [...servePlugins, [sandboxRuntime, { runsc: '/nonexistent/runsc' }]],
      config: { services: { probe: sandboxProbe() } },
    });
    t.after(() => kernel.close());
    const probe = await kernel.hooks.probe.get('sandbox')!.promise();
    assert.equal(probe?.available, false);
    assert.match(probe?.reason ?? '', /apt-get install runsc/);
    await assertTierUnavailable(kernel, 'sandbox', /apt-get install runsc/);
  });
});
