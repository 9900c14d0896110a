/** `ten microvm prepare`: builds the microVM guest (kernel, initramfs, node image) once. Local only: no server. */
import path from 'node:path';
import type { Command } from 'commander';
import type { MicrovmOptions } from '../../runtimes/microvm/guest-dir.ts';
import { out, printJson } from '../output.ts';
import { examples } from './common.ts';

interface PrepareFlags {
  dir?: string;
  config?: string;
  kernelPackage?: string;
  json?: boolean;
}

/** --dir, else $TENEMENT_MICROVM_DIR, else the config's pluginOptions['runtime-microvm'].guestDir or {dataDir}/.microvm. */
async function guestDir(flags: PrepareFlags): Promise<string> {
  const { guestDirFor } = await import('../../runtimes/microvm/guest-dir.ts');
  if (flags.dir) return path.resolve(flags.dir);
  if (process.env.TENEMENT_MICROVM_DIR) return path.resolve(process.env.TENEMENT_MICROVM_DIR);
  try {
    const { loadConfig } = await import('../../core/config/loader.ts');
    const config = await loadConfig({ file: flags.config });
    return guestDirFor(config.settings.dataDir, config.pluginOptions['runtime-microvm'] as MicrovmOptions | undefined);
  } catch (error) {
    // No config here: the default data folder, as `ten serve` would use.
    if (flags.config) throw error;
    return guestDirFor(path.resolve('tenement-data'), undefined);
  }
}

export function registerMicrovm(program: Command): void {
  const microvm = program.command('microvm').description('The microvm isolation tier: prepare its guest');
  const prepare = microvm
    .command('prepare')
    .description(
      "Build the microVM guest once: Debian's cloud kernel (apt-get download), an initramfs (busybox-static, virtio modules, /init) " +
        "and a read-only image of this host's node and its libraries. Reused until one of them changes",
    )
    .option('--dir <dir>', 'where to build it (default: $TENEMENT_MICROVM_DIR, else {dataDir}/.microvm of the config)')
    .option('-c, --config <file>', 'config whose dataDir / pluginOptions locate the guest folder')
    .option('--kernel-package <name>', 'a specific linux-image-*-cloud-amd64 package (default: what linux-image-cloud-amd64 depends on)')
    .option('--json', 'print the manifest as JSON')
    .action(async (flags: PrepareFlags) => {
      // Loaded on use: building the guest is this action's business alone.
      const { prepareGuest } = await import('../../runtimes/microvm/prepare.ts');
      const { detectHypervisor } = await import('../../runtimes/microvm/hypervisor.ts');
      const dir = await guestDir(flags);
      const started = Date.now();
      const manifest = prepareGuest(dir, { kernelPackage: flags.kernelPackage, log: flags.json ? undefined : (line) => out(line) });
      if (flags.json) return printJson({ dir, ...manifest });
      const hypervisor = detectHypervisor();
      out(`guest ready in ${dir} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      out(
        hypervisor.qemu
          ? `QEMU: ${hypervisor.qemu}; ${hypervisor.accel === 'tcg' ? `EMULATED (TCG, slow): ${hypervisor.accelReason}` : `KVM: ${hypervisor.accelReason}`}`
          : 'QEMU is not installed: apt-get install qemu-system-x86',
      );
    });
  examples(prepare, [
    ['ten microvm prepare', 'build {dataDir}/.microvm for ./tenement.config.ts'],
    ['ten microvm prepare --dir /var/lib/tenement/microvm', 'somewhere shared (then set TENEMENT_MICROVM_DIR or the guestDir plugin option)'],
  ]);
}
