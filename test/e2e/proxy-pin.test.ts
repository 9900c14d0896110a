// settings.proxy.pin in `ten serve` (core/dataplane/cpu-pin.ts): under load the server's main thread is pinned to
// one CPU; an instance woken meanwhile does not inherit the pin (a tenant must never be confined to the proxy's
// core by the moment it was started); when the load ends the pin is let go; `pin: 'off'` never pins.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { FIXTURES, freePort, onPath, request, waitFor } from '../helpers.ts';
import { startServe, tempDir, type ServeProcess } from '../ten-cli.ts';

const ECHO_APP = path.join(FIXTURES, 'echo-app.mjs');

function allowedList(pid: number): string {
  return /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'latin1'))?.[1] ?? '';
}

const whole = allowedList(process.pid);
const single = (list: string): boolean => /^\d+$/.test(list);
const skip = single(whole) ? `this process may run on one CPU only (${whole})` : !onPath('wrk') ? 'wrk is not installed (CI installs it)' : false;

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function serve(pin: 'busy' | 'off'): Promise<{ url: string; serve: ServeProcess }> {
  const dir = tempDir('tenement-pin-');
  const port = await freePort();
  const configFile = path.join(dir, 'tenement.config.json');
  const config = {
    settings: { port, dataDir: './data', domain: 'localhost', proxy: { pin } },
    services: {
      echo: { command: `node ${ECHO_APP}`, health: '/health', idleTimeout: false },
      sleepy: { command: `node ${ECHO_APP}`, health: '/health', idleTimeout: '300ms' },
    },
    instances: { echo: ['a'], sleepy: ['c', 'd', 'e'] },
  };
  writeFileSync(configFile, JSON.stringify(config));
  const url = `http://127.0.0.1:${port}`;
  const server = await startServe(configFile, url, path.join(dir, 'data'));
  cleanups.push(() => server.stop());
  return { url, serve: server };
}

function load(url: string, seconds: number): ChildProcess {
  const wrk = spawn('wrk', ['-t1', '-c16', `-d${seconds}s`, '-H', 'Host: a.echo.localhost', `${url}/`], { stdio: 'ignore' });
  cleanups.push(() => void wrk.kill('SIGKILL'));
  return wrk;
}

const ended = (child: ChildProcess): Promise<void> => new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));

test('under load the server pins its main thread; an instance woken meanwhile keeps the whole mask; the pin ends with the load', { skip }, async () => {
  const { url, serve: server } = await serve('busy');
  const pid = server.child.pid!;
  // Start-up itself can be a busy moment (loading, spawning, health checks): 5 s later an idle server holds no CPU.
  await waitFor(() => allowedList(pid) === whole, 'the idle server to hold no pinned CPU', 15_000);
  // Longer than the test needs: on a loaded host a crowded pin is let go and held off for 5 s before the next.
  const wrk = load(url, 40);
  let checked = false;
  // A wake that happens while the thread is pinned (pinned just before and just after it), on a sleeping instance:
  // the pin can be let go for a moment on a crowded host, so up to three instances are tried.
  for (const id of ['c', 'd', 'e']) {
    await waitFor(() => single(allowedList(pid)), 'the server to pin its main thread under load', 20_000);
    const pinnedTo = allowedList(pid);
    const reply = await request(url, `${id}.sleepy.localhost`, '/pid', { timeoutMs: 10_000 });
    assert.equal(reply.status, 200, reply.body);
    if (allowedList(pid) !== pinnedTo) continue;
    const instance = Number(reply.body);
    assert.ok(instance > 0 && instance !== pid);
    assert.equal(allowedList(instance), whole, `sleepy:${id} (pid ${instance}) was started with the whole mask, not the proxy's CPU ${pinnedTo}`);
    checked = true;
    break;
  }
  assert.ok(checked, 'a wake happened while the main thread was pinned');
  wrk.kill('SIGINT');
  await ended(wrk);
  // Let go after 5 s without load.
  await waitFor(() => allowedList(pid) === whole, 'the pin to be let go once the load ended', 15_000);
});

test("proxy.pin: 'off' never pins", { skip }, async () => {
  const { url, serve: server } = await serve('off');
  const pid = server.child.pid!;
  const wrk = load(url, 2);
  const seen = new Set<string>();
  while (wrk.exitCode === null) {
    seen.add(allowedList(pid));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.deepEqual([...seen], [whole]);
});
