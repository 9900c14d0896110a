/**
 * `ten doctor`: what this host offers Tenement. Local only: it needs no server. Each isolation tier is checked
 * for real (cli/tier-check.ts); it exits non-zero only when the process tier, which every host must run, fails.
 */
import { accessSync, constants, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { color, out, printJson } from '../output.ts';
import type { TierCheckOptions, TierReport } from '../tier-check.ts';
import { examples } from './common.ts';
import { fetchWasmtime, wasmtimeStatus, type WasmtimeStatus } from '../../core/wasm/wasmtime/library.ts';
import type { HaproxyCheck } from '../../plugins/edge-haproxy/check.ts';
import type { NatsServerCheck } from '../../plugins/fleet/nats-server/check.ts';
import type { CriuStatus } from '../../plugins/snapshots/criu.ts';

/**
 * Programs Tenement itself runs (a tier, a feature), the Debian package that provides each, and a file that runs
 * it (`usedBy`: test/e2e/cli-commands-local.test.ts checks the name is there, so the list never names a tool no code
 * uses). Tools only the tests and benchmarks use (promtool, nginx, wrk) are `.ci/run`'s business, not a host's.
 */
export const TOOLS: ReadonlyArray<{ name: string; package: string | null; purpose: string; usedBy: string }> = [
  { name: 'bwrap', package: 'bubblewrap', purpose: 'namespace and sandbox isolation', usedBy: 'runtimes/namespace/host-tools.ts' },
  { name: 'runsc', package: 'runsc', purpose: 'gVisor sandbox isolation', usedBy: 'runtimes/sandbox/runsc.ts' },
  { name: 'qemu-system-x86_64', package: 'qemu-system-x86', purpose: 'microvm isolation (QEMU)', usedBy: 'runtimes/microvm/hypervisor.ts' },
  { name: 'firecracker', package: null, purpose: 'microvm isolation (Firecracker)', usedBy: 'runtimes/microvm/hypervisor.ts' },
  { name: 'busybox', package: 'busybox-static', purpose: 'the microvm guest (ten microvm prepare)', usedBy: 'runtimes/microvm/prepare.ts' },
  { name: 'setpriv', package: 'util-linux', purpose: 'tenants as their own uid when Tenement runs as root', usedBy: 'core/process/tenant-launch.ts' },
  { name: 'ip', package: 'iproute2', purpose: "network: 'private' (namespaces and veths)", usedBy: 'plugins/network/commands.ts' },
  { name: 'nft', package: 'nftables', purpose: 'egress rules and outbound NAT of private networks', usedBy: 'plugins/network/commands.ts' },
  { name: 'mkfs.ext4', package: 'e2fsprogs', purpose: 'limits.storage (a loop-mounted ext4 image per instance)', usedBy: 'plugins/storage/ext4.ts' },
  { name: 'haproxy', package: 'haproxy', purpose: "settings.edge: 'haproxy' (the production edge, docs/edge.md)", usedBy: 'plugins/edge-haproxy/check.ts' },
  { name: 'zstd', package: 'zstd', purpose: 'named snapshots (`ten snapshot`: compressed archives, docs/snapshots.md)', usedBy: 'plugins/snapshots/archive.ts' },
];

export interface DoctorReport {
  node: { version: string; ok: boolean; required: string };
  platform: { os: string; release: string; arch: string };
  tiers: TierReport[];
  cgroup: { version: 1 | 2 | null; controllers: string[]; path: string };
  kvm: boolean;
  /** The wasm tier's wasmtime engine: usable, or why not (`ten doctor --fix wasmtime` fetches it). */
  wasmtime: WasmtimeStatus;
  /** The HAProxy edge: binary, version, and whether it is 2.6 or later. */
  haproxy: HaproxyCheck;
  /** nats-server for `ten nats start` (fleet mode): found, version, what to know about it. */
  natsServer: NatsServerCheck;
  /** CRIU for `hibernate: { mode: 'suspend' }`: its version and `criu check` (`ten doctor --fix criu` fetches it). */
  criu: CriuStatus;
  tools: Array<{ name: string; found: boolean; path: string | null; package: string | null; install: string; purpose: string }>;
}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** v2 when the unified hierarchy's cgroup.controllers exists; else v1's per-controller directories. */
function cgroupInfo(root = '/sys/fs/cgroup'): DoctorReport['cgroup'] {
  const unified = path.join(root, 'cgroup.controllers');
  try {
    if (existsSync(unified)) {
      return { version: 2, controllers: readFileSync(unified, 'utf8').trim().split(/\s+/).filter(Boolean), path: root };
    }
    const controllers = readdirSync(root, { withFileTypes: true })
      .filter((entry) => entry.isDirectory() || entry.isSymbolicLink())
      .map((entry) => entry.name)
      .filter((name) => name !== 'unified' && !name.includes(','))
      .sort();
    return { version: controllers.length > 0 ? 1 : null, controllers, path: root };
  } catch {
    return { version: null, controllers: [], path: root };
  }
}

export async function diagnose(options: TierCheckOptions = {}): Promise<DoctorReport> {
  // Loaded on use: the tier check boots a kernel with every runtime, far too much for `ten --help` to import.
  const { checkTiers } = await import('../tier-check.ts');
  // Loaded here, not at the top: `ten <any command> --help` loads this file and must stay clear of plugins/.
  const { checkHaproxy } = await import('../../plugins/edge-haproxy/check.ts');
  const { checkNatsServer } = await import('../../plugins/fleet/nats-server/check.ts');
  const { criuStatus } = await import('../../plugins/snapshots/criu.ts');
  const major = Number(process.versions.node.split('.')[0]);
  return {
    node: { version: process.version, ok: major >= 20, required: '>=20' },
    platform: { os: os.platform(), release: os.release(), arch: os.arch() },
    tiers: await checkTiers(options),
    cgroup: cgroupInfo(),
    kvm: existsSync('/dev/kvm'),
    wasmtime: wasmtimeStatus(),
    haproxy: checkHaproxy(),
    natsServer: checkNatsServer(),
    criu: await criuStatus(),
    tools: TOOLS.map((tool) => {
      const found = onPath(tool.name);
      const install = tool.package ? `apt-get install ${tool.package}` : 'not packaged in Debian: install the release binary';
      return { name: tool.name, found: found !== null, path: found, package: tool.package, install, purpose: tool.purpose };
    }),
  };
}

/**
 * The data directory `ten serve` would use here (--data-dir, TENEMENT_DATA_DIR, the config's, ./tenement-data).
 * The check never runs instances there (a live server's clean-up would be at stake); it only reads what was
 * prepared in it for a tier: the microvm guest of `ten microvm prepare`, in <dataDir>/.microvm.
 */
async function servedDataDir(explicit: string | undefined): Promise<string> {
  const chosen = explicit ?? process.env.TENEMENT_DATA_DIR;
  if (chosen) return path.resolve(chosen);
  try {
    const { loadConfig } = await import('../../core/config/loader.ts');
    return (await loadConfig()).settings.dataDir;
  } catch {
    return path.resolve('tenement-data');
  }
}

function usePreparedGuests(dataDir: string): void {
  // Set even when missing: the microvm probe's "not prepared in <dir>" then names the folder `ten serve` reads.
  process.env.TENEMENT_MICROVM_DIR ||= path.join(dataDir, '.microvm');
}

/** 'works (answered in 85 ms)', or 'not working: <reason and fix>'. */
function tierStatus(tier: TierReport): string {
  if (tier.status === 'works') return `${color.green('works')} ${color.dim(`(started, answered and stopped; first answer in ${tier.answeredMs} ms)`)}`;
  if (tier.status === 'available') return `${color.green('available')} ${color.dim('(probed; nothing started)')}`;
  return `${color.red(tier.status)} ${color.dim(tier.reason ?? '')}`;
}

function render(report: DoctorReport): void {
  const label = (text: string): string => color.bold(text.padEnd(10));
  const pad = ' '.repeat(10);
  out(`${label('node')}${report.node.version} ${report.node.ok ? color.green('ok') : color.red(`too old: Tenement needs Node ${report.node.required}`)}`);
  out(`${label('platform')}${report.platform.os} ${report.platform.release} ${report.platform.arch}`);
  report.tiers.forEach((tier, i) => {
    out(`${i === 0 ? label('tiers') : pad}${tier.tier.padEnd(20)}${tierStatus(tier)}`);
    if (tier.note) out(`${pad}${' '.repeat(20)}${color.yellow(tier.note)}`);
  });
  const cgroup = report.cgroup.version === null ? color.yellow(`none found at ${report.cgroup.path}`) : `v${report.cgroup.version}`;
  const controllers = report.cgroup.controllers.length > 0 ? ` (${report.cgroup.controllers.join(' ')})` : '';
  out(`${label('cgroup')}${cgroup}${controllers}`);
  out(`${label('kvm')}${report.kvm ? color.green('/dev/kvm present') : color.gray('no /dev/kvm')}`);
  const wasmtime = report.wasmtime;
  out(`${label('wasmtime')}${wasmtime.usable ? `${color.green(`${wasmtime.version} usable`)} ${color.dim(wasmtime.library)}` : `${color.yellow('not usable')} ${color.dim(wasmtime.reason)}`}`);
  const edge = report.haproxy;
  out(`${label('haproxy')}${edge.ok ? `${color.green(`${edge.version} usable`)} ${color.dim("for settings.edge 'haproxy'")}` : `${color.yellow('not usable')} ${color.dim(edge.reason ?? '')}`}`);
  const nats = report.natsServer;
  out(`${label('nats')}${nats.found ? `${color.green(`nats-server ${nats.version ?? '?'}`)} ${color.dim(`for ten nats start${nats.note ? `; ${nats.note}` : ''}`)}` : `${color.yellow('missing')} ${color.dim(nats.note ?? '')}`}`);
  const criu = report.criu;
  out(`${label('criu')}${criu.usable ? `${color.green(`${criu.version} usable`)} ${color.dim(`criu check: ${criu.check} ${criu.probeCache}. For hibernate mode 'suspend'.`)}` : `${color.yellow('not usable')} ${color.dim(criu.reason)}`}`);
  report.tools.forEach((tool, i) => {
    const status = tool.found ? color.green(tool.path!) : `${color.yellow('missing')} ${color.dim(`(${tool.install})`)}`;
    out(`${i === 0 ? label('tools') : pad}${tool.name.padEnd(20)}${status} ${color.dim(`- ${tool.purpose}`)}`);
  });
}

export function registerDoctor(program: Command): void {
  const command = program
    .command('doctor')
    .description(
      'Check what this host supports: Node, cgroups, KVM, the tools tiers use, and each isolation tier for real ' +
        '(a tiny app started, requested and stopped in it). Exits 1 only when the process tier does not work',
    )
    .option('--json', 'print the report as JSON')
    .option('--timeout <seconds>', 'deadline of each tier (the microvm tier gets four times it)', '15')
    .option('--probe-only', "only ask each runtime's probe; start no instance")
    .option('--data-dir <dir>', "the data directory of `ten serve`, whose prepared guests (microvm) to use; default: the config's")
    .option('--fix <what>', "fetch what is missing first; 'wasmtime': the pinned wasmtime library (pip download, sha256 checked); 'criu': CRIU 4.2.1 from Debian sid with its own loader (sha256 checked)")
    .action(async (flags: { json?: boolean; timeout: string; probeOnly?: boolean; dataDir?: string; fix?: string }) => {
      const seconds = Number(flags.timeout);
      if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`--timeout: expected a number of seconds, got '${flags.timeout}'`);
      if (flags.fix !== undefined) {
        const say = (line: string): void => void (flags.json ? process.stderr.write(`${line}\n`) : out(line));
        if (flags.fix === 'wasmtime') await fetchWasmtime(say);
        else if (flags.fix === 'criu') await (await import('../../plugins/snapshots/criu.ts')).fetchCriu(say);
        else throw new Error(`--fix: only 'wasmtime' or 'criu' can be fetched, not '${flags.fix}'`);
      }
      usePreparedGuests(await servedDataDir(flags.dataDir));
      const report = await diagnose({ timeoutMs: seconds * 1000, probeOnly: flags.probeOnly === true });
      if (flags.json) printJson(report);
      else render(report);
      if (!report.tiers.find((tier) => tier.tier === 'process')?.works) process.exitCode = 1;
    });
  examples(command, [['ten doctor'], ['ten doctor --json | jq ".tiers[] | select(.works | not)"', 'what does not work, and why'], ['ten doctor --probe-only', 'start nothing'], ['ten doctor --fix wasmtime', 'fetch the wasmtime engine, then check'], ['ten doctor --fix criu', 'fetch CRIU for suspend-depth hibernation']]);
}
