import { accessSync, constants, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { which } from './which.ts';

export type Accel = 'kvm' | 'tcg';

export interface Hypervisor {
  qemu: string | null;
  firecracker: string | null;
  accel: Accel;
  /** Why this accelerator: shown by the probe, the logs and each instance's log. */
  accelReason: string;
}

/**
 * Whether /dev/kvm can run a standard guest kernel. These machines are themselves VMs whose /dev/kvm is PVM
 * (a software nested-virtualisation backend that only runs PVM-built guests): a Debian kernel hangs in its
 * decompressor there. A KVM that can run one shows the vmx (Intel) or svm (AMD) CPU flag, which PVM does not.
 * TENEMENT_MICROVM_ACCEL=kvm|tcg overrides the check.
 */
export function chooseAccel(env = process.env): { accel: Accel; reason: string } {
  const forced = env.TENEMENT_MICROVM_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return { accel: forced, reason: `TENEMENT_MICROVM_ACCEL=${forced}` };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'tcg', reason: 'no usable /dev/kvm' };
  }
  let flags = '';
  try {
    flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    // Unknown: assume the worst.
  }
  if (/\b(vmx|svm)\b/.test(flags)) return { accel: 'kvm', reason: '/dev/kvm with hardware virtualisation (vmx/svm)' };
  return {
    accel: 'tcg',
    reason: '/dev/kvm cannot run a standard guest here (no vmx/svm CPU flag: nested PVM or no nested virtualisation)',
  };
}

export function detectHypervisor(env = process.env): Hypervisor {
  const searchPath = `${env.PATH ?? ''}:/usr/bin:/usr/local/bin`;
  const { accel, reason } = chooseAccel(env);
  return { qemu: which('qemu-system-x86_64', searchPath), firecracker: which('firecracker', searchPath), accel, accelReason: reason };
}

/**
 * The host's TSC frequency in kHz. Under TCG the guest's TSC is the host's (QEMU passes the host counter
 * through), but the guest cannot calibrate it: microvm has no PIT, HPET or PM timer under TCG, and a boot
 * without a calibrated TSC has no clock to count jiffies with and hangs (see docs/microvm.md). Passing
 * `tsc_early_khz` removes the calibration. From the kernel log when readable, else /proc/cpuinfo's MHz.
 */
export function hostTscKhz(): number {
  const dmesg = spawnSync('dmesg', [], { encoding: 'utf8' });
  if (dmesg.status === 0) {
    const refined = /tsc: Refined TSC clocksource calibration: ([\d.]+) MHz/.exec(dmesg.stdout);
    const detected = /tsc: Detected ([\d.]+) MHz/.exec(dmesg.stdout);
    const mhz = Number((refined ?? detected)?.[1]);
    if (mhz > 0) return Math.round(mhz * 1000);
  }
  try {
    const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]);
    if (mhz > 0) return Math.round(mhz * 1000);
  } catch {
    // Fall through.
  }
  return 2_000_000;
}
