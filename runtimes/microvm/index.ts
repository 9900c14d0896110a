import { definePlugin } from '../../sdk/index.ts';
import { requireGuest, probeMicrovm } from './availability.ts';
import { guestDirFor, type MicrovmOptions } from './guest-dir.ts';
import { detectHypervisor, hostTscKhz } from './hypervisor.ts';
import { removeStaleRunDirs } from './leftovers.ts';
import { spawnVm } from './spawn-vm.ts';

/**
 * The `microvm` tier: each instance is a QEMU `-M microvm` virtual machine with its own kernel (Debian's cloud
 * kernel), the host's node and the app on read-only disks, and its DATA_DIR on a disk image kept in DATA_DIR.
 * Under KVM when the host can run a standard guest, else emulated (TCG), which is reported as slow. The guest
 * is built once by `ten microvm prepare`. docs/microvm.md.
 */
export default definePlugin<MicrovmOptions | undefined>({
  name: 'runtime-microvm',
  version: '1.0.0',
  kernel: '^1',
  setup(ctx) {
    const options = ctx.config;
    // QEMU starts inside the instance cgroups, so memory and CPU limits bound the VM as a whole: the guest's RAM
    // is sized to fit under limits.memory with QEMU's own overhead (spawn-vm.ts). Its data disk is limits.storage.
    ctx.tiers.declare('microvm', { cgroups: 'limits', enforcesStorageLimit: true });
    const guestDir = guestDirFor(ctx.settings.dataDir, options);
    const hypervisor = detectHypervisor();
    let tscKhz: number | null = null;
    let warned = false;
    const stale = removeStaleRunDirs(guestDir);
    if (stale.length > 0) ctx.log.warn({ dirs: stale }, 'removed per-run folders left by a previous run');
    ctx.hooks.probe.for('microvm').tap(async () => {
      const probe = probeMicrovm(guestDir, hypervisor);
      if (probe.available && hypervisor.accel === 'tcg' && !warned) {
        warned = true;
        ctx.log.warn({ guestDir, why: hypervisor.accelReason }, 'no usable KVM; guests run EMULATED (TCG) and are slow');
      }
      return probe;
    });
    ctx.hooks.spawn.for('microvm').tap(async (spec) => {
      const manifest = requireGuest(guestDir, hypervisor);
      tscKhz ??= hostTscKhz();
      return spawnVm(spec, {
        guestDir,
        manifest,
        hypervisor,
        tscKhz,
        dataRoot: ctx.settings.dataDir,
        log: ctx.log,
      });
    });
  },
});
