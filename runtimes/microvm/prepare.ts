import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { initramfs, type CpioEntry } from './cpio.ts';
import { isStaticElf } from './elf.ts';
import { MANIFEST, type GuestManifest } from './guest-dir.ts';
import { GUEST_MODULES, INIT_KEY, INIT_SCRIPT } from './init-script.ts';
import { ensureKernel } from './kernel-package.ts';
import { buildToolsImage, toolFiles, toolsImageName, toolsKey } from './tools-image.ts';
import { which } from './which.ts';

export interface PrepareOptions {
  /** A specific kernel package instead of the one linux-image-cloud-amd64 depends on now. */
  kernelPackage?: string;
  log?: (line: string) => void;
}

/** busybox-static from the host: the guest's shell, init helpers and coreutils. */
function staticBusybox(): string {
  const found = [which('busybox'), '/bin/busybox', '/usr/bin/busybox'].find((file) => file && existsSync(file) && isStaticElf(file));
  if (!found) throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, 'no statically linked busybox on this host: apt-get install busybox-static');
  return found;
}

function buildInitrd(root: string, kernelDir: string, log: (line: string) => void): string {
  const busybox = readFileSync(staticBusybox());
  const modules = GUEST_MODULES.map((name) => ({ name, data: readFileSync(path.join(kernelDir, 'modules', `${name}.ko`)) }));
  const hash = createHash('sha256').update(INIT_SCRIPT).update(busybox);
  for (const module of modules) hash.update(module.name).update(module.data);
  const name = `initrd-${hash.digest('hex').slice(0, 16)}.gz`;
  if (existsSync(path.join(root, name))) {
    log(`initramfs: ${name} (already built)`);
    return name;
  }
  const entries: CpioEntry[] = [
    ...['bin', 'sbin', 'dev', 'proc', 'sys', 'tmp', 'run', 'etc', 'modules', 'tnm'].map((dir) => ({ path: dir, mode: 0o755, type: 'dir' as const })),
    { path: 'bin/busybox', mode: 0o755, type: 'file', data: busybox },
    { path: 'init', mode: 0o755, type: 'file', data: Buffer.from(INIT_SCRIPT) },
    ...modules.map((module) => ({ path: `modules/${module.name}.ko`, mode: 0o644, type: 'file' as const, data: module.data })),
  ];
  const archive = initramfs(entries);
  writeFileSync(path.join(root, `${name}.tmp`), archive, { mode: 0o644 });
  renameSync(path.join(root, `${name}.tmp`), path.join(root, name));
  log(`initramfs: ${name} (${(archive.length / 1024 / 1024).toFixed(1)} MiB: busybox, ${modules.length} modules, /init)`);
  return name;
}

function buildTools(root: string, log: (line: string) => void): { name: string; key: string } {
  const files = toolFiles();
  const key = toolsKey(files);
  const name = toolsImageName(key);
  if (existsSync(path.join(root, name))) {
    log(`tools image: ${name} (already built)`);
    return { name, key };
  }
  const stage = mkdtempSync(path.join(root, 'stage-'));
  try {
    buildToolsImage(path.join(root, `${name}.tmp`), stage, files);
    chmodSync(path.join(root, `${name}.tmp`), 0o644);
    renameSync(path.join(root, `${name}.tmp`), path.join(root, name));
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  log(`tools image: ${name} (${files.length} host files: ${process.execPath}, setpriv and their libraries)`);
  return { name, key };
}

/** The manifest of a prepared guest folder, or null when it was never prepared (or is half written). */
export function readManifest(root: string): GuestManifest | null {
  try {
    const manifest = JSON.parse(readFileSync(path.join(root, MANIFEST), 'utf8')) as GuestManifest;
    for (const file of [manifest.kernel, manifest.initrd, manifest.tools]) if (!existsSync(path.join(root, file))) return null;
    return manifest;
  } catch {
    return null;
  }
}

/**
 * `ten microvm prepare`: kernel, initramfs and tools image in `root`, each reused when its inputs did not
 * change (kernel package name; init script, busybox and modules; host node and libraries), so a second run
 * costs a few stats. Artifacts no longer referenced are removed.
 */
export function prepareGuest(root: string, options: PrepareOptions = {}): GuestManifest {
  const log = options.log ?? (() => undefined);
  mkdirSync(root, { recursive: true, mode: 0o755 });
  chmodSync(root, 0o755);
  const kernel = ensureKernel(root, log, options.kernelPackage);
  const initrd = buildInitrd(root, kernel.dir, log);
  const tools = buildTools(root, log);
  const manifest: GuestManifest = {
    version: 1,
    kernelPackage: kernel.package,
    kernel: path.relative(root, path.join(kernel.dir, 'vmlinuz')),
    initrd,
    tools: tools.name,
    toolsKey: tools.key,
    initKey: INIT_KEY,
    preparedAt: new Date().toISOString(),
  };
  writeFileSync(path.join(root, `${MANIFEST}.tmp`), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o644 });
  renameSync(path.join(root, `${MANIFEST}.tmp`), path.join(root, MANIFEST));
  for (const entry of readdirSync(root)) {
    const stale = (/^initrd-.*\.gz$/.test(entry) && entry !== initrd) || (/^tools-.*\.ext4$/.test(entry) && entry !== tools.name);
    if (stale || entry.startsWith('stage-')) rmSync(path.join(root, entry), { recursive: true, force: true });
  }
  for (const entry of readdirSync(path.join(root, 'kernel'))) {
    if (entry !== kernel.package) rmSync(path.join(root, 'kernel', entry), { recursive: true, force: true });
  }
  return manifest;
}
