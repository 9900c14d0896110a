// `ten serve` imports the default plugins a config asks for (cli/serve-plugins.ts): a plain config loads no
// fleet, tracing, HAProxy, autoscaling, private-network or extra runtime code; a reload (SIGHUP) whose new service
// needs one of those is refused with its reason and the running config kept; one that needs none is applied.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT, freePort, request, waitFor } from '../helpers.ts';
import { cleanEnv, instancePids, stopChild, tempDir } from '../ten-cli.ts';
import { TRACE_MODULES_ARGS, loadedModuleLines } from '../module-trace.ts';

const TEN = path.join(ROOT, 'bin', 'ten.mjs');
const ON_DEMAND = /\/(plugins\/(fleet|otel|edge-haproxy|autoscale|network)|runtimes\/(namespace|sandbox|microvm|wasm))\/index\.(ts|js)$/;

test('ten serve loads only the default plugins its config asks for; a reload needing another is refused and logged', { timeout: 180_000 }, async (t) => {
  const dir = tempDir('tenement-serve-plugins-');
  const dataDir = path.join(dir, 'data');
  const config = path.join(dir, 'tenement.config.json');
  const port = await freePort();
  const notes = { command: 'node app.mjs', cwd: path.join(ROOT, 'examples', 'notes') };
  const write = (services: Record<string, unknown>): void => writeFileSync(config, JSON.stringify({ settings: { domain: 'localhost', port, listen: '127.0.0.1', dataDir }, services }));
  write({ notes });
  let stderr = '';
  const serve: ChildProcess = spawn(process.execPath, [...TRACE_MODULES_ARGS, TEN, 'serve', '--config', config], {
    cwd: dir,
    env: cleanEnv({ TENEMENT_LOG_LEVEL: 'info', XDG_CONFIG_HOME: path.join(dir, 'xdg') }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  serve.stdout!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  serve.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  t.after(async () => {
    await stopChild(serve);
    for (const pid of instancePids(dataDir)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const running = (): boolean => {
    if (serve.exitCode !== null) throw new Error(`ten serve exited ${serve.exitCode}:\n${stderr.slice(-4000)}`);
    return true;
  };
  await waitFor(() => running() && stderr.includes('tenement serving'), 'ten serve to print its address', 120_000);
  const loaded = loadedModuleLines(stderr);
  assert.ok(loaded.some((line) => /\/plugins\/router\/index\.(ts|js)$/.test(line)), 'the module trace sees the always-loaded plugins');
  assert.deepEqual(loaded.filter((line) => ON_DEMAND.test(line)), [], 'on-demand plugins loaded for a config without their sections');

  // A new service with `scale` needs autoscale, not loaded: refused, logged with the reason, nothing changed.
  write({ notes, web: { ...notes, scale: { min: 0, max: 2, target: 10 } } });
  serve.kill('SIGHUP');
  await waitFor(() => running() && /config reload failed/.test(stderr), 'the refused reload to be logged', 60_000);
  assert.match(stderr, /'autoscale' \(for services\.web\.scale\)[^\n]*restart ten serve/);
  const refused = await request(`http://127.0.0.1:${port}`, 'a.web.localhost', '/');
  assert.equal(refused.status, 404, `service web was added by a refused reload: ${refused.body}`);

  // The same service without `scale` needs nothing more: applied.
  write({ notes, web: notes });
  serve.kill('SIGHUP');
  await waitFor(() => running() && /"msg":"config reloaded"/.test(stderr), 'the reload to be applied', 60_000);
  assert.match(stderr, /"added":\["web"\]/);
  assert.deepEqual(loadedModuleLines(stderr).filter((line) => ON_DEMAND.test(line)), [], 'a reload loaded an on-demand plugin');
});

test('ten serve loads a plugin its config asks for (a service with scale: autoscale)', { timeout: 180_000 }, async (t) => {
  const dir = tempDir('tenement-serve-plugins-');
  const dataDir = path.join(dir, 'data');
  const config = path.join(dir, 'tenement.config.json');
  const notes = { command: 'node app.mjs', cwd: path.join(ROOT, 'examples', 'notes') };
  writeFileSync(config, JSON.stringify({ settings: { domain: 'localhost', port: 0, listen: '127.0.0.1', dataDir }, services: { web: { ...notes, scale: { min: 0, max: 2, target: 10 } } } }));
  let stderr = '';
  const serve: ChildProcess = spawn(process.execPath, [...TRACE_MODULES_ARGS, TEN, 'serve', '--config', config], {
    cwd: dir,
    env: cleanEnv({ TENEMENT_LOG_LEVEL: 'warn', XDG_CONFIG_HOME: path.join(dir, 'xdg') }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  serve.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  t.after(async () => {
    await stopChild(serve);
    for (const pid of instancePids(dataDir)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  await waitFor(() => {
    if (serve.exitCode !== null) throw new Error(`ten serve exited ${serve.exitCode}:\n${stderr.slice(-4000)}`);
    return stderr.includes('tenement serving');
  }, 'ten serve to print its address', 120_000);
  const onDemand = loadedModuleLines(stderr).filter((line) => ON_DEMAND.test(line));
  assert.equal(onDemand.length, 1, onDemand.join('\n'));
  assert.match(onDemand[0]!, /plugins\/autoscale\/index\.(ts|js)$/);
});
