// Outbound NAT for private instances (settings.network.nat) end to end: a real "outside" machine (a network
// namespace of its own behind a veth, on a test-only range), real forwarding, real nftables masquerade.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import type { ConfigInput } from '../../core/config/schema.ts';
import { makeLogger, type Logger } from '../../core/logger.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import network from '../../plugins/network/index.ts';
import { natTableName } from '../../plugins/network/nat-rules.ts';
import { netNames } from '../../plugins/network/names.ts';
import { getJson, servePlugins, waitFor } from '../helpers.ts';
import { netService, privateNetworkSkip, tenantRange, type Connect } from '../private-network.ts';

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';
const skip = privateNetworkSkip('network namespaces, forwarding');
const plugins = [...servePlugins, network];

const random = (n: number): number => Math.floor(Math.random() * n);
/** The tenants' range; the first instance is .2, the second .6. */
const { base: RANGE_BASE, range: RANGE } = tenantRange();
const FIRST_GUEST = `${RANGE_BASE}.2`;
/** The outside machine: a /30 of 10.254.0.0/16 (never inside RANGE): the host's side .1, the server .2. */
const OUTSIDE_BASE = `10.254.${random(256)}.${4 * random(64)}`;
const OUTSIDE_NET = OUTSIDE_BASE.split('.').map(Number);
const OUTSIDE = {
  host: [...OUTSIDE_NET.slice(0, 3), OUTSIDE_NET[3]! + 1].join('.'),
  server: [...OUTSIDE_NET.slice(0, 3), OUTSIDE_NET[3]! + 2].join('.'),
  port: 8080,
};
const TAG = random(36 ** 4).toString(36).padStart(4, '0');
const OUTSIDE_NETNS = `tnatout-${TAG}`;
const OUTSIDE_VETH = `natout${TAG}`;

/** A kernel closed after the test unless the test closed it itself (`closeNow`). */
async function kernelWith(t: TestContext, config: ConfigInput, start = true, logger?: Logger): Promise<TestKernel & { closeNow(): Promise<void> }> {
  const kernel = await createTestKernel({ plugins, start, config, logger });
  let closed = false;
  t.after(() => (closed ? undefined : kernel.close()));
  return Object.assign(kernel, {
    closeNow: async () => {
      closed = true;
      await kernel.close();
    },
  });
}

const connect = (kernel: TestKernel, host: string, to: string, port: number): Promise<Connect> =>
  getJson<Connect>(kernel, host, `/connect?host=${to}&port=${port}`, { timeoutMs: 5_000 });

/** Whether `ip <table>` exists in the host's nftables now. */
function tableExists(table: string): boolean {
  try {
    execFileSync('nft', ['list', 'table', 'ip', table], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function removeOutside(): void {
  // -force goes on past the errors of pieces that are already gone (or were never made).
  try {
    execFileSync('ip', ['-force', '-batch', '-'], { input: `link del ${OUTSIDE_VETH}\nnetns del ${OUTSIDE_NETNS}\n`, stdio: ['pipe', 'ignore', 'ignore'] });
  } catch {
    // Nothing left to remove.
  }
}

/** The outside server: a TCP server in its own namespace that reports each connection's source address. */
let server: ChildProcess | null = null;
const seen: string[] = [];
let forwardBefore = '';

describe('network plugin: outbound NAT', { timeout: 30_000, skip }, () => {
  before(async () => {
    forwardBefore = readFileSync(IP_FORWARD, 'utf8');
    removeOutside();
    execFileSync('ip', ['-batch', '-'], {
      input: [
        `netns add ${OUTSIDE_NETNS}`,
        `link add ${OUTSIDE_VETH} type veth peer name eth0 netns ${OUTSIDE_NETNS}`,
        `addr add ${OUTSIDE.host}/30 dev ${OUTSIDE_VETH}`,
        `link set ${OUTSIDE_VETH} up`,
        '',
      ].join('\n'),
    });
    execFileSync('ip', ['-n', OUTSIDE_NETNS, '-batch', '-'], {
      input: ['link set lo up', `addr add ${OUTSIDE.server}/30 dev eth0`, 'link set eth0 up', ''].join('\n'),
    });
    // No route back to the tenants' range out there: an answer reaches a tenant only when it was masqueraded.
    const script = `const s = require('node:net').createServer((c) => { console.log(c.remoteAddress); c.on('error', () => {}); c.end('hello'); });
      s.listen(${OUTSIDE.port}, '${OUTSIDE.server}', () => console.log('listening'));`;
    server = spawn('ip', ['netns', 'exec', OUTSIDE_NETNS, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buffered = '';
    server.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      seen.push(...lines);
    });
    await waitFor(() => seen.includes('listening'), 'the outside server', 5_000);
    seen.length = 0;
  });

  after(() => {
    server?.kill('SIGKILL');
    removeOutside();
    // The test acts as the host's admin: forwarding goes back to what it was before.
    if (forwardBefore) writeFileSync(IP_FORWARD, forwardBefore);
  });

  test('an allowed off-host address is reached through the masquerade; other tenants stay refused; close removes the table', async (t) => {
    const kernel = await kernelWith(t, {
      settings: { network: { range: RANGE, nat: true } },
      services: {
        out: netService({ network: 'private', egress: [`${OUTSIDE.server}/32`] }),
        other: netService({ network: 'private', egress: ['203.0.113.10/32'] }),
      },
      pluginOptions: { network: { spare: false } },
    });
    const table = natTableName(netNames(kernel.config.settings.dataDir).scope);
    const a = await kernel.spawnInstance('out', 'a');
    const b = await kernel.spawnInstance('other', 'b');
    assert.equal(a.state, 'running', a.lastError ?? '');
    assert.equal(b.state, 'running', b.lastError ?? '');
    assert.equal(tableExists(table), true, `nft table ip ${table} is loaded`);
    assert.equal(readFileSync(IP_FORWARD, 'utf8').trim(), '1', 'IPv4 forwarding is on');

    // Allowed: the connection arrives from the host's address on the outside link, not from the tenant's.
    assert.deepEqual(await connect(kernel, 'a.out.localhost', OUTSIDE.server, OUTSIDE.port), { ok: true });
    await waitFor(() => seen.length === 1, 'the outside server saw the connection', 2_000);
    assert.equal(seen[0], OUTSIDE.host, 'masqueraded to the host side of the outside link');
    assert.notEqual(seen[0], FIRST_GUEST);

    // Not on b's list: its own namespace refuses at once, whatever the host forwards.
    assert.deepEqual(await connect(kernel, 'b.other.localhost', OUTSIDE.server, OUTSIDE.port), { ok: false, code: 'EHOSTUNREACH' });

    // Defence in depth: with b's own rules gone (as if bypassed), the host's forward chain still keeps it from
    // its neighbour a (a drop there: the connect times out). The outside server is on the union of allowed
    // addresses, so that one would pass: the per-tenant list lives in the namespace.
    execFileSync('nsenter', [`--net=/proc/${b.handle!.pid!}/ns/net`, '--', 'nft', 'delete', 'table', 'inet', 'tenement']);
    assert.deepEqual(await connect(kernel, 'b.other.localhost', FIRST_GUEST, a.port!), { ok: false, code: 'TIMEOUT' });
    assert.deepEqual(seen, [OUTSIDE.host], 'no other connection reached the outside server');

    await kernel.closeNow();
    assert.equal(tableExists(table), false, 'the table is gone after close');
  });

  test("nat off: an off-host egress entry is reported, nothing is loaded, and a crashed run's table is removed", async (t) => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tenement-nat-'));
    const table = natTableName(netNames(dataDir).scope);
    t.after(() => {
      // Never throws: a failing hook would skip the kernel's close added after it.
      if (tableExists(table)) spawnSync('nft', ['delete', 'table', 'ip', table]);
    });
    execFileSync('nft', ['add', 'table', 'ip', table]);
    const warnings: string[] = [];
    const kernel = await kernelWith(
      t,
      {
        settings: { dataDir, network: { range: RANGE } },
        services: { out: netService({ network: 'private', egress: [`${OUTSIDE.server}/32`, `${RANGE_BASE}.1`] }) },
        pluginOptions: { network: { spare: false } },
      },
      false,
      // What the plugins warn about, read from the log lines themselves (plugins log through children of it).
      makeLogger('warn', (line) => {
        const entry = JSON.parse(line) as { level: number; msg?: string };
        if (entry.level === 40 && entry.msg !== undefined) warnings.push(entry.msg);
      }),
    );
    // Added after kernelWith's close: after-hooks run in the order added, and the kernel writes into it.
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    await kernel.start();
    assert.equal(tableExists(table), false, 'the leftover table is removed at start');
    const reported = warnings.filter((message) => message.includes('settings.network.nat is off'));
    assert.equal(reported.length, 1, warnings.join('\n'));
    assert.match(reported[0]!, new RegExp(`${OUTSIDE.server.replaceAll('.', '\\.')}/32`));
    assert.doesNotMatch(reported[0]!, new RegExp(`${RANGE_BASE.replaceAll('.', '\\.')}\\.1`), 'a host side is not off-host');
    const a = await kernel.spawnInstance('out', 'a');
    assert.equal(a.state, 'running', a.lastError ?? '');
    assert.equal(tableExists(table), false, 'no table without settings.network.nat');
  });
});
