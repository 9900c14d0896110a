// The `ten` commands that need no running server, as a user runs them (real `ten ...` child processes): the
// cannot-reach failure, init, doctor, and every command's --help.
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { freePort, ROOT } from '../helpers.ts';
import { tempDir } from '../ten-cli.ts';
import { assertOneLineFailure, ten } from './cli-commands-fixture.ts';

test('no server: exit 1 with the cannot-reach line', { timeout: 120_000 }, async (t) => {
  const dir = tempDir('tenement-cli-noserver-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const result = await ten(['ps', '--server', `http://127.0.0.1:${port}`], dir);
  assertOneLineFailure(result, new RegExp(`^ten: cannot reach the server at http://127\\.0\\.0\\.1:${port}: is \`ten serve\` running\\?\\n$`));
  // The port comes from the local config when there is one.
  writeFileSync(path.join(dir, 'tenement.config.json'), JSON.stringify({ settings: { port }, services: { web: { command: 'node app.js' } } }));
  assertOneLineFailure(await ten(['spawn', 'web:alice'], dir), new RegExp(`cannot reach the server at http://127\\.0\\.0\\.1:${port}:`));
});

test('init scaffolds tenement.config.ts from the project files and refuses to overwrite it', { timeout: 180_000 }, async (t) => {
  const node = tempDir('tenement-cli-init-');
  t.after(() => rmSync(node, { recursive: true, force: true }));
  writeFileSync(path.join(node, 'package.json'), JSON.stringify({ name: '@acme/My_Shop', scripts: { start: 'node server.js' } }));
  const created = await ten(['init'], node);
  assert.equal(created.code, 0, created.stderr);
  // The start script's own command, not `npm start` (an npm process of about 50 MB in front of every tenant).
  assert.match(created.stdout, /^created tenement\.config\.ts: service my-shop runs `node server\.js` \(Node: the start script of package\.json, run without npm\)/);
  assert.match(created.stdout, /Next steps:[\s\S]*ten serve/);
  const config = await ten(['config'], node);
  assert.equal(config.code, 0, `the generated config is valid: ${config.stderr}`);
  const resolved = JSON.parse(config.stdout) as { services: Record<string, { command: string; autoCreate: boolean }> };
  assert.equal(resolved.services['my-shop']?.command, 'node server.js');
  const before = readFileSync(path.join(node, 'tenement.config.ts'), 'utf8');
  assertOneLineFailure(await ten(['init'], node), /^ten: .*tenement\.config\.ts already exists/);
  assert.equal(readFileSync(path.join(node, 'tenement.config.ts'), 'utf8'), before, 'left untouched');

  const python = tempDir('tenement-cli-init-py-');
  t.after(() => rmSync(python, { recursive: true, force: true }));
  writeFileSync(path.join(python, 'requirements.txt'), '');
  writeFileSync(path.join(python, 'main.py'), 'print(1)\n');
  const py = await ten(['init', '--name', 'notes'], python);
  assert.equal(py.code, 0, py.stderr);
  assert.match(readFileSync(path.join(python, 'tenement.config.ts'), 'utf8'), /notes: \{\n\s+command: 'python3 -u main\.py'/);
  assert.match(readFileSync(path.join(node, 'tenement.config.ts'), 'utf8'), /'my-shop': \{/);

  const other = tempDir('tenement-cli-init-other-');
  t.after(() => rmSync(other, { recursive: true, force: true }));
  const custom = await ten(['init', '--name', 'api', '--command', "./server --flag 'x y'"], other);
  assert.equal(custom.code, 0, custom.stderr);
  const check = JSON.parse((await ten(['config'], other)).stdout) as { services: Record<string, { command: string }> };
  assert.equal(check.services.api?.command, "./server --flag 'x y'");
  assertOneLineFailure(await ten(['init', '--name', 'Bad_Name'], other), /TNM_ERR_BAD_NAME/);
});

interface DoctorTier {
  tier: string;
  status: 'works' | 'available' | 'missing' | 'unavailable' | 'failed';
  works: boolean;
  answeredMs: number | null;
  note: string | null;
  reason: string | null;
}

test('doctor --json starts a tiny app in each tier the host can run, and says why the others do not work', { timeout: 120_000 }, async (t) => {
  const dir = tempDir('tenement-cli-doctor-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const result = await ten(['doctor', '--json', '--timeout', '20'], dir);
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout) as {
    node: { version: string; ok: boolean };
    tiers: DoctorTier[];
    cgroup: { version: number | null; controllers: string[] };
    tools: Array<{ name: string; found: boolean; path: string | null; package: string | null }>;
  };
  assert.equal(report.node.version, process.version);
  assert.deepEqual(report.tiers.map((tier) => tier.tier), ['process', 'namespace', 'sandbox', 'microvm', 'wasm']);
  const byTier = new Map(report.tiers.map((tier) => [tier.tier, tier]));
  const proc = byTier.get('process')!;
  assert.equal(proc.status, 'works', proc.reason ?? '');
  assert.ok((proc.answeredMs ?? 0) > 0, 'the process tier was started and answered');
  if (report.tools.find((tool) => tool.name === 'bwrap')?.found) {
    const ns = byTier.get('namespace')!;
    assert.equal(ns.status, 'works', ns.reason ?? '');
    assert.ok((ns.answeredMs ?? 0) > 0);
  }
  for (const tier of report.tiers) {
    if (!tier.works) assert.ok((tier.reason ?? '').length > 10, `${tier.tier} says why it does not work: ${JSON.stringify(tier)}`);
  }
  assert.ok([1, 2, null].includes(report.cgroup.version));
  assert.deepEqual(
    report.tools.map((tool) => tool.name),
    ['bwrap', 'runsc', 'qemu-system-x86_64', 'firecracker', 'busybox', 'setpriv', 'ip', 'nft', 'mkfs.ext4', 'haproxy', 'zstd'],
  );
  assert.equal(report.tools.find((tool) => tool.name === 'bwrap')?.package, 'bubblewrap');
  // Only tools some code runs: each is named, quoted, in the file that runs it (criu, listed once, was in none).
  const { TOOLS } = await import('../../cli/commands/doctor.ts');
  for (const tool of TOOLS) {
    assert.ok(readFileSync(path.join(ROOT, tool.usedBy), 'utf8').includes(`'${tool.name}'`), `${tool.name} is not run by ${tool.usedBy}`);
  }
});

test('doctor names the fix for a tier whose host tool is missing; the human report lists each tier', { timeout: 120_000 }, async (t) => {
  const dir = tempDir('tenement-cli-doctor-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // No bwrap on PATH: the namespace tier is unavailable, with the package to install. The process tier still works.
  const result = await ten(['doctor', '--json', '--probe-only'], dir, { PATH: '/nonexistent' });
  assert.equal(result.code, 0, result.stderr);
  const tiers = (JSON.parse(result.stdout) as { tiers: DoctorTier[] }).tiers;
  const ns = tiers.find((tier) => tier.tier === 'namespace')!;
  assert.equal(ns.status, 'unavailable');
  assert.match(ns.reason ?? '', /apt-get install bubblewrap/);
  assert.equal(tiers.find((tier) => tier.tier === 'process')?.status, 'available');
  const human = await ten(['doctor', '--probe-only'], dir, { PATH: '/nonexistent' });
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^tiers +process +available \(probed; nothing started\)/m);
  assert.match(human.stdout, /^ +namespace +unavailable .*apt-get install bubblewrap/m);
  // A process tier that does not answer in time (1 ms here) is the one failure that makes doctor exit 1.
  const failing = await ten(['doctor', '--json', '--timeout', '0.001'], dir);
  assert.equal(failing.code, 1, failing.stderr);
  const proc = (JSON.parse(failing.stdout) as { tiers: DoctorTier[] }).tiers.find((tier) => tier.tier === 'process')!;
  assert.equal(proc.status, 'failed');
  assert.match(proc.reason ?? '', /took longer than/);
});

test('every command has a description and an Examples section in --help', { timeout: 300_000 }, async (t) => {
  const dir = tempDir('tenement-cli-help-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const commands = [
    [],
    ['serve'], ['init'], ['config'], ['ps'], ['spawn'], ['stop'], ['restart'], ['hibernate'], ['health'], ['weight'],
    ['logs'], ['deploy'], ['route'], ['token'], ['token', 'create'], ['token', 'list'], ['token', 'revoke'], ['audit'], ['doctor'],
  ];
  for (let i = 0; i < commands.length; i += 5) {
    await Promise.all(
      commands.slice(i, i + 5).map(async (command) => {
        const result = await ten([...command, '--help'], dir);
        const name = `ten ${command.join(' ')}`;
        assert.equal(result.code, 0, `${name}: ${result.stderr}`);
        assert.match(result.stdout, /^Usage: ten/m, name);
        assert.match(result.stdout, /\nExamples:\n {2}\$ ten /, `${name} has examples`);
      }),
    );
  }
});
