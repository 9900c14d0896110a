import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { TierProbe } from '../../core/types.ts';
import { PREPARE_COMMAND, type GuestManifest } from './guest-dir.ts';
import type { Hypervisor } from './hypervisor.ts';
import { INIT_KEY } from './init-script.ts';
import { readManifest } from './prepare.ts';
import { toolFiles, toolsKey } from './tools-image.ts';

/** The prepared guest in `guestDir`, or TNM_ERR_TIER_UNAVAILABLE saying what is missing and how to fix it. */
export function requireGuest(guestDir: string, hypervisor: Hypervisor): GuestManifest {
  if (!hypervisor.qemu) {
    const firecracker = hypervisor.firecracker ? ` (firecracker is on PATH at ${hypervisor.firecracker}, but this build drives QEMU only)` : '';
    throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `the 'microvm' tier needs qemu-system-x86_64${firecracker}: apt-get install qemu-system-x86`);
  }
  const manifest = readManifest(guestDir);
  if (!manifest) {
    throw new TenementError(
      ErrorCodes.TIER_UNAVAILABLE,
      `the microvm guest (kernel, initramfs, node image) is not prepared in ${guestDir}: run '${PREPARE_COMMAND}' (needs apt access to the Debian mirror and busybox-static)`,
    );
  }
  if (toolsKey(toolFiles()) !== manifest.toolsKey) {
    throw new TenementError(
      ErrorCodes.TIER_UNAVAILABLE,
      `the microvm guest in ${guestDir} was prepared for another node binary (${process.execPath} changed): run '${PREPARE_COMMAND}' again`,
    );
  }
  if (manifest.initKey !== INIT_KEY) {
    throw new TenementError(
      ErrorCodes.TIER_UNAVAILABLE,
      `the microvm guest in ${guestDir} was prepared by another version of Tenement (its /init changed): run '${PREPARE_COMMAND}' again`,
    );
  }
  return manifest;
}

/** What the tier's probe says: available with a note on the accelerator (emulated and slow, or KVM), or why not. */
export function probeMicrovm(guestDir: string, hypervisor: Hypervisor): TierProbe {
  try {
    const manifest = requireGuest(guestDir, hypervisor);
    const firecracker = hypervisor.firecracker ? `; firecracker found at ${hypervisor.firecracker} but not used (this build drives QEMU)` : '; firecracker not installed (not packaged in Debian)';
    const accel =
      hypervisor.accel === 'tcg'
        ? `QEMU microvm, EMULATED (TCG, slow: boots take seconds): ${hypervisor.accelReason}`
        : `QEMU microvm with KVM (${hypervisor.accelReason})`;
    return { available: true, note: `${accel}; guest ${manifest.kernelPackage} in ${guestDir}${firecracker}` };
  } catch (error) {
    return { available: false, reason: (error as Error).message };
  }
}
