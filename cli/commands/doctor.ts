/** `ten doctor`: what this host offers Tenement. Local only: it needs no server and never fails. */
import { accessSync, constants, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { TIERS } from '../../core/config/schema.ts';
import { color, out, printJson } from '../output.ts';
import { examples } from './common.ts';

/** Tiers this build ships a runtime for (runtimes/): `ten serve` loads them all. */
const BUILT_IN_TIERS: readonly string[] = ['process'];

/** Tools a tier, a feature or the benchmarks use, and the Debian package that provides each. */
const TOOLS: ReadonlyArray<{ name: string; package: string | null; purpose: string }> = [
  { name: 'bwrap', package: 'bubblewrap', purpose: 'namespace and sandbox isolation' },
  { name: 'runsc', package: 'runsc', purpose: 'gVisor sandbox isolation' },
  { name: 'qemu-system-x86_64', package: 'qemu-system-x86', purpose: 'microvm isolation (QEMU)' },
  { name: 'firecracker', package: null, purpose: 'microvm isolation (Firecracker)' },
  { name: 'criu', package: 'criu', purpose: 'checkpoint and restore of processes' },
  { name: 'promtool', package: 'prometheus', purpose: 'checking the /metrics output' },
  { name: 'nginx', package: 'nginx-light', purpose: 'the proxy baseline of the benchmarks' },
];

export interface DoctorReport {
  node: { version: string; ok: boolean; required: string };
  platform: { os: string; release: string; arch: string };
  tiers: Array<{ tier: string; available: boolean; note: string }>;
  cgroup: { version: 1 | 2 | null; controllers: string[]; path: string };
  kvm: boolean;
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

export function diagnose(): DoctorReport {
  const major = Number(process.versions.node.split('.')[0]);
  return {
    node: { version: process.version, ok: major >= 20, required: '>=20' },
    platform: { os: os.platform(), release: os.release(), arch: os.arch() },
    tiers: TIERS.map((tier) => {
      if (BUILT_IN_TIERS.includes(tier)) return { tier, available: true, note: 'runtime included' };
      // The namespace runtime is included; it needs bwrap on the host (docs/isolation.md).
      if (tier === 'namespace') {
        return onPath('bwrap')
          ? { tier, available: true, note: 'runtime included (bwrap found)' }
          : { tier, available: false, note: 'needs bwrap: apt-get install bubblewrap' };
      }
      return { tier, available: false, note: 'not available in this build' };
    }),
    cgroup: cgroupInfo(),
    kvm: existsSync('/dev/kvm'),
    tools: TOOLS.map((tool) => {
      const found = onPath(tool.name);
      const install = tool.package ? `apt-get install ${tool.package}` : 'not packaged in Debian: install the release binary';
      return { name: tool.name, found: found !== null, path: found, package: tool.package, install, purpose: tool.purpose };
    }),
  };
}

function render(report: DoctorReport): void {
  const label = (text: string): string => color.bold(text.padEnd(10));
  const pad = ' '.repeat(10);
  out(`${label('node')}${report.node.version} ${report.node.ok ? color.green('ok') : color.red(`too old: Tenement needs Node ${report.node.required}`)}`);
  out(`${label('platform')}${report.platform.os} ${report.platform.release} ${report.platform.arch}`);
  report.tiers.forEach((tier, i) => {
    const status = tier.available ? color.green('available') : color.gray(tier.note);
    out(`${i === 0 ? label('tiers') : pad}${tier.tier.padEnd(20)}${status}`);
  });
  const cgroup = report.cgroup.version === null ? color.yellow(`none found at ${report.cgroup.path}`) : `v${report.cgroup.version}`;
  const controllers = report.cgroup.controllers.length > 0 ? ` (${report.cgroup.controllers.join(' ')})` : '';
  out(`${label('cgroup')}${cgroup}${controllers}`);
  out(`${label('kvm')}${report.kvm ? color.green('/dev/kvm present') : color.gray('no /dev/kvm')}`);
  report.tools.forEach((tool, i) => {
    const status = tool.found ? color.green(tool.path!) : `${color.yellow('missing')} ${color.dim(`(${tool.install})`)}`;
    out(`${i === 0 ? label('tools') : pad}${tool.name.padEnd(20)}${status} ${color.dim(`- ${tool.purpose}`)}`);
  });
}

export function registerDoctor(program: Command): void {
  const command = program
    .command('doctor')
    .description('Show what this host supports: Node, isolation tiers, cgroups, KVM and the tools tiers use (always exits 0)')
    .option('--json', 'print the report as JSON')
    .action((flags: { json?: boolean }) => {
      const report = diagnose();
      if (flags.json) printJson(report);
      else render(report);
    });
  examples(command, [['ten doctor'], ['ten doctor --json | jq .tools']]);
}
