// The `ten` client commands as a user runs them: a real `ten serve` child process, and real `ten ...` child
// processes talking to it over loopback, run from the config's directory so the server and the admin token are
// found without flags. The tests share the server and run in order: each finds the instances the ones before made.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ECHO_APP, freePort, request, sleep, waitFor } from '../helpers.ts';
import { TEN, stopServeChild, tempDir, type Result } from '../ten-cli.ts';
import { assertOneLineFailure, cleanEnv, ten } from './cli-commands-fixture.ts';

const noAnsi = (text: string): void => assert.ok(!text.includes('\u001b['), 'no colors when stdout is not a terminal');

describe('ten client commands against a real ten serve', { timeout: 600_000 }, () => {
  let dir = '';
  let dataDir = '';
  let url = '';
  let server: ChildProcess | null = null;
  let serverLog = '';

  before(async () => {
    dir = tempDir('tenement-cli-cmd-');
    dataDir = path.join(dir, 'data');
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const configFile = path.join(dir, 'tenement.config.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        settings: { port, listen: '127.0.0.1', dataDir },
        services: { web: { command: `node ${ECHO_APP}`, health: '/health', idleTimeout: false } },
      }),
    );
    server = spawn(process.execPath, [TEN, 'serve', '--config', configFile], {
      cwd: dir,
      env: cleanEnv({ TENEMENT_LOG_LEVEL: 'warn' }),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    // Kept (the tail of it) for failure messages; read continuously so the pipe never fills.
    server.stderr!.on('data', (chunk: Buffer) => {
      serverLog = (serverLog + chunk.toString('utf8')).slice(-20_000);
    });
    await waitFor(
      async () => {
        if (server!.exitCode !== null) throw new Error(`ten serve exited ${server!.exitCode}: ${serverLog}`);
        return request(url, '127.0.0.1', '/health', { timeoutMs: 2000 }).then(
          (reply) => reply.status === 200,
          () => false,
        );
      },
      'ten serve to answer /health',
      60_000,
    );
    await waitFor(() => existsSync(path.join(dataDir, 'admin.token')), 'admin.token to be written', 10_000);
  });

  after(async () => {
    try {
      if (server) await stopServeChild(server, dataDir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('spawn starts an instance and says where it runs', async () => {
    const result = await ten(['spawn', 'web:alice'], dir);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^spawned web:alice: running, port \d+, pid \d+\n$/);
    noAnsi(result.stdout);
  });

  test('ps prints a table sorted by instance with a footer; --json the raw answer', async () => {
    assert.equal((await ten(['spawn', 'web:bob'], dir)).code, 0);
    const result = await ten(['ps'], dir);
    assert.equal(result.code, 0, result.stderr);
    noAnsi(result.stdout);
    const lines = result.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^INSTANCE +STATE +HEALTH +TIER +PORT +UPTIME +IDLE +RESTARTS +OOM +WEIGHT +MEMORY$/);
    assert.match(lines[1]!, /^web:alice +running +healthy +process +\d+ +\d+[smhd]\S* +\d+[smhd]\S* +0 +0 +100 +[\d.]+[KMG]?B$/);
    assert.match(lines[2]!, /^web:bob +running /);
    assert.equal(lines[3], '2 instances (2 running)');

    const json = await ten(['ps', '--json'], dir);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { instances: Array<{ key: string; state: string; port: number; pid: number }> };
    assert.deepEqual(
      parsed.instances.map((i) => [i.key, i.state]),
      [
        ['web:alice', 'running'],
        ['web:bob', 'running'],
      ],
    );
    assert.ok(parsed.instances.every((i) => i.port > 0 && i.pid > 0));

    const filtered = await ten(['ps', '--service', 'web', '--state', 'hibernated'], dir);
    assert.equal(filtered.code, 0, filtered.stderr);
    assert.equal(filtered.stdout, 'no instances (service web, state hibernated)\n');
  });

  test('logs prints captured lines one-shot, filters by search and stream, and --json is raw', async () => {
    for (const line of ['alpha bravo', 'charlie delta']) {
      const reply = await request(url, 'alice.web.localhost', `/log?line=${encodeURIComponent(line)}`);
      assert.equal(reply.status, 200);
    }
    let result: Result = { code: -1, stdout: '', stderr: '' };
    await waitFor(
      async () => {
        result = await ten(['logs', 'web:alice'], dir);
        return result.stdout.includes('err:charlie delta');
      },
      'the logged lines to be listed',
      30_000,
    );
    assert.equal(result.code, 0, result.stderr);
    noAnsi(result.stdout);
    assert.match(result.stdout, /^\d\d:\d\d:\d\d\.\d{3} web:alice OUT alpha bravo$/m);
    assert.match(result.stdout, /^\d\d:\d\d:\d\d\.\d{3} web:alice ERR err:alpha bravo$/m);

    const search = await ten(['logs', 'web:alice', '--search', 'charlie'], dir);
    assert.equal(search.code, 0, search.stderr);
    assert.match(search.stdout, / web:alice OUT charlie delta$/m);
    assert.doesNotMatch(search.stdout, /alpha/);

    const stderrOnly = await ten(['logs', 'web:alice', '--stream', 'stderr', '--since', '10m'], dir);
    assert.equal(stderrOnly.code, 0, stderrOnly.stderr);
    assert.match(stderrOnly.stdout, / ERR err:alpha bravo$/m);
    assert.doesNotMatch(stderrOnly.stdout, / OUT /);

    const json = await ten(['logs', 'web:alice', '--json', '--limit', '2'], dir);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { lines: Array<{ at: number; service: string; id: string; stream: string; line: string }> };
    assert.equal(parsed.lines.length, 2);
    assert.deepEqual(
      parsed.lines.map((l) => [l.service, l.id, l.stream, l.line]),
      [
        ['web', 'alice', 'stdout', 'charlie delta'],
        ['web', 'alice', 'stderr', 'err:charlie delta'],
      ],
    );
  });

  test('logs -f follows new lines over SSE until interrupted', async () => {
    const follower = spawn(process.execPath, [TEN, 'logs', 'web:alice', '-f'], { cwd: dir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    follower.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    follower.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => follower.once('exit', (code) => resolve(code)));
    try {
      // The follower subscribes some time after it starts; keep writing until a line shows up.
      let n = 0;
      await waitFor(
        async () => {
          if (follower.exitCode !== null) throw new Error(`ten logs -f exited ${follower.exitCode}: ${stderr}`);
          await request(url, 'alice.web.localhost', `/log?line=followed-${n++}`);
          await sleep(250);
          return /web:alice OUT followed-\d+/.test(stdout);
        },
        'a followed line',
        45_000,
      );
      assert.match(stdout, /^\d\d:\d\d:\d\d\.\d{3} web:alice OUT followed-\d+$/m);
      follower.kill('SIGINT');
      assert.equal(await exited, 0, `Ctrl-C ends following cleanly: ${stderr}`);
    } finally {
      follower.kill('SIGKILL');
    }
  });

  test('health runs the check now; --json is raw', async () => {
    const result = await ten(['health', 'web:alice'], dir);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^web:alice ok in \d+ms \(running, healthy\)/);
    const json = await ten(['health', 'web:alice', '--json'], dir);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { ok: boolean; state: string; health: string };
    assert.equal(parsed.ok, true);
    assert.equal(parsed.state, 'running');
  });

  test('weight sets a weight; a weight out of range is a one-line usage error', async () => {
    const result = await ten(['weight', 'web:bob', '30'], dir);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'web:bob weight 30\n');
    const json = JSON.parse((await ten(['ps', '--json'], dir)).stdout) as { instances: Array<{ key: string; weight: number }> };
    assert.equal(json.instances.find((i) => i.key === 'web:bob')?.weight, 30);
    assertOneLineFailure(await ten(['weight', 'web:bob', '101'], dir), /from 0 to 100/);
  });

  test('deploy starts a version beside the running ones; route moves the traffic', async () => {
    const deployed = await ten(['deploy', 'web:v2', '--timeout', '30s'], dir);
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.match(deployed.stdout, /^deployed web:v2: running, weight 0$/m);
    assert.match(deployed.stdout, /ten route web --from alice --to v2/);

    const json = await ten(['deploy', 'web:v3', '--weight', '5', '--json'], dir);
    assert.equal(json.code, 0, json.stderr);
    const view = JSON.parse(json.stdout) as { key: string; weight: number; state: string };
    assert.deepEqual([view.key, view.weight, view.state], ['web:v3', 5, 'running']);

    const routed = await ten(['route', 'web', '--from', 'alice', '--to', 'v2'], dir);
    assert.equal(routed.code, 0, routed.stderr);
    assert.match(routed.stdout, /web traffic moved: web:alice weight 0 .* web:v2 weight 100/);
    const routedJson = await ten(['route', 'web', '--from', 'bob', '--to', 'v2', '--json'], dir);
    assert.equal(routedJson.code, 0, routedJson.stderr);
    const swap = JSON.parse(routedJson.stdout) as { from: { key: string; weight: number }; to: { key: string; weight: number } };
    assert.deepEqual([swap.from.key, swap.from.weight, swap.to.key, swap.to.weight], ['web:bob', 0, 'web:v2', 100]);

    assertOneLineFailure(await ten(['deploy', 'web:v2'], dir), /^ten: TNM_ERR_CONFLICT: web:v2 already exists/);
  });

  test('hibernate, restart and stop', async () => {
    const hibernated = await ten(['hibernate', 'web:v3'], dir);
    assert.equal(hibernated.code, 0, hibernated.stderr);
    assert.equal(hibernated.stdout, 'hibernated web:v3: hibernated\n');
    const ps = await ten(['ps', '--state', 'hibernated'], dir);
    assert.match(ps.stdout, /^web:v3 +hibernated /m);

    const restarted = await ten(['restart', 'web:v3'], dir);
    assert.equal(restarted.code, 0, restarted.stderr);
    assert.match(restarted.stdout, /^restarted web:v3: running, port \d+, pid \d+\n$/);

    const stopped = await ten(['stop', 'web:v3'], dir);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal(stopped.stdout, 'stopped and removed web:v3\n');
    const after = JSON.parse((await ten(['ps', '--json'], dir)).stdout) as { instances: Array<{ key: string }> };
    assert.ok(!after.instances.some((i) => i.key === 'web:v3'));
  });

  test('token create (tenant), list and revoke; a tenant token sees its own instances only', async () => {
    const created = await ten(['token', 'create', '--name', 'alice-app', '--tenant', 'alice', '--expires', '30d'], dir);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^tnm_\S+\n$/, 'the secret alone on stdout');
    assert.match(created.stderr, /created tenant token for alice 'alice-app' \(id \S+, expires /);
    const secret = created.stdout.trim();

    const asTenant = await ten(['ps', '--json', '--token', secret], dir);
    assert.equal(asTenant.code, 0, asTenant.stderr);
    const seen = JSON.parse(asTenant.stdout) as { instances: Array<{ key: string }> };
    assert.deepEqual(
      seen.instances.map((i) => i.key),
      ['web:alice'],
    );

    const list = await ten(['token', 'list'], dir);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^ID +NAME +KIND +TENANT +CREATED +EXPIRES +LAST USED +STATUS$/m);
    assert.match(list.stdout, /^\S+ +alice-app +tenant +alice +.* active$/m);
    assert.match(list.stdout, /^\S+ +admin +admin +- /m);
    const json = JSON.parse((await ten(['token', 'list', '--json'], dir)).stdout) as { tokens: Array<{ id: string; name: string }> };
    const id = json.tokens.find((t) => t.name === 'alice-app')?.id;
    assert.ok(id, 'the new token is listed');

    const revoked = await ten(['token', 'revoke', id], dir);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal(revoked.stdout, `revoked token ${id}\n`);
    assertOneLineFailure(await ten(['ps', '--token', secret], dir), /^ten: TNM_ERR_UNAUTHORIZED: .*token from --token/);
  });

  test('audit lists mutating calls newest first, a page at a time', async () => {
    const result = await ten(['audit'], dir);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^ID +AT +ACTOR +ACTION +TARGET +STATUS +DETAIL$/m);
    assert.match(result.stdout, /^\d+ +\S+ \S+ +admin +POST \/api\/deploy +web:v2 +201 /m);

    const page = JSON.parse((await ten(['audit', '--limit', '2', '--json'], dir)).stdout) as {
      entries: Array<{ id: number; action: string }>;
      next: number | null;
    };
    assert.equal(page.entries.length, 2);
    assert.ok(page.entries[0]!.id > page.entries[1]!.id, 'newest first');
    assert.equal(page.next, page.entries[1]!.id);
    const next = JSON.parse((await ten(['audit', '--limit', '2', '--before', String(page.next), '--json'], dir)).stdout) as {
      entries: Array<{ id: number }>;
    };
    assert.ok(next.entries.every((e) => e.id < page.next!));
  });

  test('failures are one line with the code and exit 1', async () => {
    assertOneLineFailure(await ten(['health', 'web:nobody'], dir), /^ten: TNM_ERR_UNKNOWN_INSTANCE: unknown instance 'web:nobody'$/m);
    assertOneLineFailure(await ten(['spawn', 'nosuch:alice'], dir), /^ten: TNM_ERR_UNKNOWN_SERVICE: /);
    assertOneLineFailure(await ten(['spawn', 'alice'], dir), /^ten: TNM_ERR_BAD_NAME: 'alice' is not service:id/);
    assertOneLineFailure(await ten(['stop', 'web:Alice'], dir), /^ten: TNM_ERR_BAD_NAME: instance id 'Alice' is not a DNS label/);
    assertOneLineFailure(await ten(['ps', '--bogus'], dir), /^ten: unknown option '--bogus'/);
  });

  test('without a token in reach, a 401 says how to pass one', async () => {
    const elsewhere = tempDir('tenement-cli-notoken-');
    try {
      assertOneLineFailure(await ten(['ps', '--server', url], elsewhere), /^ten: TNM_ERR_UNAUTHORIZED: .*pass --token <token> or set TENEMENT_TOKEN/);
      // With the token from the environment it works from anywhere.
      const token = readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
      const ok = await ten(['ps'], elsewhere, { TENEMENT_SERVER: url, TENEMENT_TOKEN: token });
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /^web:alice /m);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
