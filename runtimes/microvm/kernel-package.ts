import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { GUEST_MODULES } from './init-script.ts';

/** Debian's meta-package for the small "cloud" kernel: virtio drivers as modules, no PCI needed. */
export const KERNEL_META_PACKAGE = 'linux-image-cloud-amd64';

export interface GuestKernel {
  /** e.g. linux-image-6.1.0-56-cloud-amd64 */
  package: string;
  /** Folder holding `vmlinuz` and `modules/*.ko`. */
  dir: string;
}

function run(command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    const why = result.error?.message ?? (result.stderr || result.stdout).trim().split('\n').slice(-3).join(' ');
    throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `${command} ${args.join(' ')} failed: ${why}`);
  }
  return result.stdout;
}

/** The versioned kernel package the meta-package points at now (apt-cache; needs Debian's apt lists). */
export function currentKernelPackage(): string {
  const out = run('apt-cache', ['depends', KERNEL_META_PACKAGE], '/');
  const match = /Depends:\s*(linux-image-\S+-cloud-amd64)/.exec(out);
  if (!match) {
    throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `apt-cache depends ${KERNEL_META_PACKAGE} names no kernel package (run apt-get update)`);
  }
  return match[1]!;
}

/**
 * The guest kernel in `root/kernel/<package>/`, downloaded with `apt-get download` and unpacked with
 * `dpkg-deb -x` unless that package is there already. Only vmlinuz and the modules the init loads are kept.
 */
export function ensureKernel(root: string, log: (line: string) => void, wanted?: string): GuestKernel {
  let name = wanted;
  if (!name) {
    try {
      name = currentKernelPackage();
    } catch (error) {
      // Offline, or not Debian: any kernel prepared earlier still does.
      const earlier = existsSync(path.join(root, 'kernel')) ? readdirSync(path.join(root, 'kernel')).sort().at(-1) : undefined;
      if (!earlier) throw error;
      log(`apt-cache unavailable (${(error as Error).message}); reusing ${earlier}`);
      name = earlier;
    }
  }
  const dir = path.join(root, 'kernel', name);
  if (existsSync(path.join(dir, 'vmlinuz'))) {
    log(`kernel: ${name} (already prepared)`);
    return { package: name, dir };
  }
  log(`kernel: downloading ${name} from the Debian mirror`);
  const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-kernel-'));
  try {
    // apt drops to the _apt user for downloads: let it write here.
    spawnSync('chmod', ['0777', work]);
    run('apt-get', ['download', '-q', name], work);
    const deb = readdirSync(work).find((file) => file.endsWith('.deb'));
    if (!deb) throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `apt-get download ${name} produced no .deb`);
    run('dpkg-deb', ['-x', deb, 'x'], work);
    const boot = path.join(work, 'x', 'boot');
    const vmlinuz = readdirSync(boot).find((file) => file.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `${deb} holds no boot/vmlinuz-*`);
    const staging = `${dir}.tmp-${process.pid}`;
    mkdirSync(path.join(staging, 'modules'), { recursive: true });
    copyFileSync(path.join(boot, vmlinuz), path.join(staging, 'vmlinuz'));
    const modules = findModules(path.join(work, 'x', 'lib', 'modules'));
    for (const module of GUEST_MODULES) {
      const file = modules.get(module);
      if (!file) throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `${name} has no ${module}.ko (built in? the init expects a module)`);
      copyFileSync(file, path.join(staging, 'modules', `${module}.ko`));
    }
    mkdirSync(path.dirname(dir), { recursive: true });
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
    return { package: name, dir };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function findModules(dir: string, found = new Map<string, string>()): Map<string, string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) findModules(full, found);
    else if (entry.name.endsWith('.ko')) found.set(entry.name.slice(0, -3), full);
  }
  return found;
}
