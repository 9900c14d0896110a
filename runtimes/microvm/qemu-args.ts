import type { Accel } from './hypervisor.ts';

export interface VmLayout {
  kernel: string;
  initrd: string;
  tools: string;
  app: string;
  data: string;
  spec: string;
  /** Unix sockets QEMU serves: the control port (ttyS1 in the guest) and the human monitor. */
  controlSocket: string;
  monitorSocket: string;
}

export interface VmSettings {
  accel: Accel;
  memoryMiB: number;
  tscKhz: number;
  /** restrict=on: the guest reaches nothing outside (forwarded ports still reach it). */
  restrictNetwork: boolean;
}

/**
 * The kernel command line. `tsc_early_khz` + `tsc=reliable` are what make TCG boots reliable (docs/microvm.md:
 * 0/10 boots without them, all with them); `panic=1` with -no-reboot turns a guest panic into a QEMU exit.
 */
export function kernelCommandLine(settings: VmSettings): string {
  const clock = settings.accel === 'tcg' ? [`tsc_early_khz=${settings.tscKhz}`, 'tsc=reliable'] : [];
  return ['console=ttyS0', 'quiet', 'panic=1', ...clock, 'rdinit=/init'].join(' ');
}

function drive(id: string, file: string, readOnly: boolean): string[] {
  return ['-drive', `id=${id},file=${file},format=raw,if=none${readOnly ? ',readonly=on' : ',discard=unmap'}`, '-device', `virtio-blk-device,drive=${id}`];
}

/**
 * TCG's translated-code cache. QEMU's default is 1 GiB, which a small guest never needs but which shows in
 * QEMU's RSS as the cache fills; 64 MiB keeps a Node guest's translations without thrashing.
 */
const TCG_TB_MIB = 64;

/** QEMU `-M microvm` arguments: virtio-mmio disks and network, the serial console on stdout, no firmware ROMs. */
export function qemuArgs(layout: VmLayout, settings: VmSettings): string[] {
  const accel = settings.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host,-arch-capabilities'] : ['-accel', `tcg,tb-size=${TCG_TB_MIB}`, '-cpu', 'max'];
  return [
    '-M', 'microvm,x-option-roms=off',
    ...accel,
    '-m', String(settings.memoryMiB),
    '-smp', '1',
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-chardev', 'stdio,id=console,signal=off',
    '-serial', 'chardev:console',
    '-chardev', `socket,id=control,path=${layout.controlSocket},server=on,wait=off`,
    '-device', 'isa-serial,chardev=control,iobase=0x2f8,irq=3',
    '-monitor', `unix:${layout.monitorSocket},server=on,wait=off`,
    '-kernel', layout.kernel,
    '-initrd', layout.initrd,
    '-append', kernelCommandLine(settings),
    ...drive('spec', layout.spec, true),
    ...drive('tools', layout.tools, true),
    ...drive('app', layout.app, true),
    ...drive('data', layout.data, false),
    '-netdev', `user,id=net0${settings.restrictNetwork ? ',restrict=on' : ''}`,
    '-device', 'virtio-net-device,netdev=net0',
  ];
}
