// The process tier never runs a tenant as root: run as root, Tenement starts it as an unprivileged uid with no
// capabilities, owning its DATA_DIR, with an environment of its own. The probe app reports what it can do.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { ServiceInput } from '../../core/config/schema.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import { getJson, servePlugins } from '../helpers.ts';
import { probeService, type Probe } from '../probe.ts';

const skip = process.getuid?.() === 0 ? false : 'Tenement is not root here: tenants already run as its own unprivileged user';

const probeNoRestart = (overrides: Partial<ServiceInput> = {}): ServiceInput => probeService({ restart: 'never', ...overrides });

describe('process tier as root', { skip, timeout: 60_000 }, () => {
  test('the tenant is not root: no capabilities, cannot read root files, signal or mount; owns its DATA_DIR', async (t) => {
    process.env.TENEMENT_TEST_SECRET = 'do-not-leak';
    t.after(() => delete process.env.TENEMENT_TEST_SECRET);
    const secretDir = mkdtempSync(path.join(os.tmpdir(), 'tenement-secret-'));
    // The folder is reachable: only the file's own mode (root, 0600) keeps the tenant out.
    chmodSync(secretDir, 0o755);
    const secret = path.join(secretDir, 'root-only');
    writeFileSync(secret, 'secret');
    chmodSync(secret, 0o600);

    const kernel = await createTestKernel({ plugins: servePlugins, config: { services: { probe: probeNoRestart() } } });
    // One hook, closing before removing (after-hooks stop at the first that throws).
    t.after(() => kernel.close().finally(() => rmSync(secretDir, { recursive: true, force: true })));
    const instance = await kernel.spawnInstance('probe', 'a');
    assert.equal(instance.state, 'running', instance.lastError ?? '');
    assert.equal(instance.tier, 'process');

    const probe = await getJson<Probe>(kernel, 'a.probe.localhost', `/probe?read=${encodeURIComponent(secret)}&kill=${process.pid}`);
    assert.notEqual(probe.uid, 0, 'uid is not 0');
    assert.notEqual(probe.gid, 0, 'gid is not 0');
    assert.equal(probe.capEff, '0000000000000000', 'no effective capabilities');
    assert.deepEqual(probe.read, { ok: false, code: 'EACCES' }, 'a root-only (0600) host file cannot be read');
    assert.deepEqual(probe.kill, { ok: false, code: 'EPERM' }, "Tenement's own process cannot be signalled");
    assert.equal(probe.mount.ok, false, `mount fails: ${probe.mount.stderr}`);
    assert.equal(probe.writable.dataDir.ok, true, 'DATA_DIR is writable');
    const dataDir = kernel.instanceDir('probe', 'a');
    assert.equal(statSync(dataDir).uid, probe.uid, 'DATA_DIR belongs to the tenant uid');
    // Its own environment, not Tenement's.
    assert.equal(probe.env.TENEMENT_TEST_SECRET, undefined, "Tenement's environment does not leak in");
    assert.equal(probe.env.HOME, dataDir);
    assert.equal(probe.env.DATA_DIR, dataDir);
    assert.doesNotMatch(probe.env.PATH ?? '', /\/root\//, 'PATH holds only folders the tenant can reach');
  });

  test("a service's `user` is the uid its tenants run as", async (t) => {
    const kernel = await createTestKernel({ plugins: servePlugins, config: { services: { probe: probeNoRestart({ user: 65534 }) } } });
    t.after(() => kernel.close());
    const instance = await kernel.spawnInstance('probe', 'a');
    assert.equal(instance.state, 'running', instance.lastError ?? '');
    const probe = await getJson<Probe>(kernel, 'a.probe.localhost', '/probe');
    assert.equal(probe.uid, 65534);
    assert.equal(statSync(kernel.instanceDir('probe', 'a')).uid, 65534);
  });

  test('a program only found in a folder the tenant uid cannot reach fails the start, naming the folder and the fix', async (t) => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'tenement-home-'));
    // Like /root/.pyenv/shims: a 0700 home folder holding the only copy of the program.
    const bin = path.join(home, 'shims');
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'tenement-test-tool'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath ?? ''}`;
    t.after(() => {
      process.env.PATH = savedPath;
    });
    const kernel = await createTestKernel({ plugins: servePlugins, config: { services: { tool: probeNoRestart({ command: 'tenement-test-tool' }) } } });
    // One hook, closing before removing (after-hooks stop at the first that throws).
    t.after(() => kernel.close().finally(() => rmSync(home, { recursive: true, force: true })));
    const instance = await kernel.spawnInstance('tool', 'a');
    assert.equal(instance.state, 'failed');
    assert.match(instance.lastError ?? '', new RegExp(`resolves to ${bin}/tenement-test-tool, which the tenant uid \\d+ cannot reach`));
    assert.match(instance.lastError ?? '', new RegExp(`${home} is not searchable \\(chmod o\\+x ${home}\\)`));
    assert.match(instance.lastError ?? '', /Install it in a system folder/);
  });
});
