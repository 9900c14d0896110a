import { chownSync, mkdirSync, mkdtempSync, rmSync, statSync, statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { spawnGroup } from '../../core/process/spawn-group.ts';
import { assertReachable, prepareDataDir, specUser, type TenantUser } from '../../core/process/tenant-user.ts';
import type { ExitInfo, LogStream, RunningHandle, SpawnSpec } from '../../core/types.ts';
import { appImage } from './app-image.ts';
import { DEFAULT_DATA_BYTES, ensureDataImage } from './data-image.ts';
import type { GuestManifest } from './guest-dir.ts';
import type { Hypervisor } from './hypervisor.ts';
import { MARKER } from './init-script.ts';
import { controlWrite, monitorCommand } from './monitor.ts';
import { qemuArgs } from './qemu-args.ts';
import { writeSpecDisk } from './spec-disk.ts';
import { hostSetpriv } from './tools-image.ts';
import { which } from './which.ts';

export interface VmContext {
  guestDir: string;
  manifest: GuestManifest;
  hypervisor: Hypervisor;
  tscKhz: number;
  dataRoot: string;
  log: { info(fields: object, message: string): void; warn(fields: object, message: string): void };
}

const MIN_MEMORY_MIB = 128;
const DEFAULT_MEMORY_MIB = 256;
const SIGNALS = os.constants.signals as Record<string, number>;

/** What QEMU itself needs besides guest RAM under TCG: its code, the 64 MiB translation cache, device state. */
const QEMU_OVERHEAD_MIB = 128;

/**
 * Guest RAM: 256 MiB, or `limits.memory` minus QEMU's own overhead, since the cgroup limit applies to the
 * QEMU process as a whole (a guest as big as the limit would get QEMU OOM-killed). At least 128 MiB.
 */
function memoryMiB(spec: SpawnSpec): number {
  const limit = spec.config.limits?.memory;
  return limit ? Math.max(MIN_MEMORY_MIB, Math.floor(limit / 1024 / 1024) - QEMU_OVERHEAD_MIB) : DEFAULT_MEMORY_MIB;
}

/** The data image size: `limits.storage` (or 256 MiB), but never more than 90% of what DATA_DIR's file system has free. */
function dataImageBytes(spec: SpawnSpec): number {
  const wanted = spec.config.limits?.storage ?? DEFAULT_DATA_BYTES;
  try {
    const fs = statfsSync(spec.dataDir);
    return Math.max(16 * 1024 * 1024, Math.min(wanted, Math.floor(fs.bavail * fs.bsize * 0.9)));
  } catch {
    return wanted;
  }
}

/** A shell's `$?` for a signal is 128 + its number: turned back into the signal, as for a local process. */
function exitFromCode(code: number): ExitInfo {
  if (code > 128) {
    const name = Object.keys(SIGNALS).find((key) => SIGNALS[key] === code - 128);
    if (name) return { code: null, signal: name as NodeJS.Signals };
  }
  return { code, signal: null };
}

/**
 * Starts one instance in a QEMU microVM: the spec disk, app image and data image are made ready, QEMU is
 * launched through `spawnGroup` (process group, logs, cgroups, network namespace, stop escalation like every
 * local tier) as the tenant's uid when we are root, and the port forward is added only once the guest says
 * its app listens, so a TCP readiness check cannot pass early.
 */
export async function spawnVm(spec: SpawnSpec, context: VmContext): Promise<RunningHandle> {
  const { hypervisor, manifest, guestDir } = context;
  if (!hypervisor.qemu) {
    throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, "the 'microvm' tier needs qemu-system-x86_64: apt-get install qemu-system-x86");
  }
  if (spec.socketPath) {
    throw new TenementError(
      ErrorCodes.SPAWN_FAILED,
      `services.${spec.service}.listen: 'socket' is not supported by the microvm tier (the proxy reaches the guest through a forwarded port)`,
    );
  }
  if (spec.config.limits?.pids !== undefined) {
    // On the host, pids.max would count QEMU's threads (its I/O workers among them), not the guest's processes.
    throw new TenementError(
      ErrorCodes.TIER_UNAVAILABLE,
      `services.${spec.service}.limits.pids is not enforced inside a microVM guest (a host limit would count QEMU's threads, not the app's processes): remove it, or use the sandbox tier`,
    );
  }
  const asRoot = process.getuid?.() === 0;
  const user: TenantUser = specUser(spec) ?? { uid: process.getuid?.() ?? 1000, gid: process.getgid?.() ?? 1000 };
  if (asRoot) {
    await prepareDataDir(path.resolve(context.dataRoot), spec.dataDir, user);
    await assertReachable(guestDir, user, 'the microvm guest folder');
  }
  const setpriv = asRoot ? which('setpriv', `${process.env.PATH ?? ''}:/usr/bin:/bin`) : null;
  if (asRoot && !setpriv) {
    throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, "the 'microvm' tier run as root needs setpriv to run QEMU as the tenant's uid: apt-get install util-linux");
  }
  const cwd = path.resolve(spec.cwd);
  const app = appImage(guestDir, cwd, spec.service);
  const data = ensureDataImage(spec.dataDir, user, dataImageBytes(spec));

  // Per-run files (spec disk, sockets), owned by the uid QEMU runs as; removed when QEMU ends.
  mkdirSync(path.join(guestDir, 'run'), { recursive: true, mode: 0o755 });
  const runDir = mkdtempSync(path.join(guestDir, 'run', `${spec.service}-${spec.id}-`));
  const specDisk = path.join(runDir, 'spec.raw');
  const network = spec.config.network ?? 'host';
  writeSpecDisk(specDisk, {
    uid: user.uid,
    gid: user.gid,
    port: spec.port,
    cwd,
    dataDir: spec.dataDir,
    hostname: `${spec.id}-${spec.service}`.slice(0, 63),
    network,
    setpriv: hostSetpriv(),
    command: spec.command,
    args: spec.args,
    // The guest's app binds every guest address: QEMU forwards to the guest's 10.0.2.15.
    env: { PATH: guestPath(), HOME: spec.dataDir, LANG: 'C.UTF-8', ...spec.env, HOST: '0.0.0.0' },
  });
  const layout = {
    kernel: path.join(guestDir, manifest.kernel),
    initrd: path.join(guestDir, manifest.initrd),
    tools: path.join(guestDir, manifest.tools),
    app,
    data,
    spec: specDisk,
    controlSocket: path.join(runDir, 'control.sock'),
    monitorSocket: path.join(runDir, 'monitor.sock'),
  };
  if (asRoot) {
    chownSync(runDir, user.uid, user.gid);
    chownSync(specDisk, user.uid, user.gid);
  }
  // Without the network plugin's namespace, a non-host network still gets no egress: QEMU's restrict=on.
  const restrictNetwork = network !== 'host' && !spec.netns;
  const args = qemuArgs(layout, { accel: hypervisor.accel, memoryMiB: memoryMiB(spec), tscKhz: context.tscKhz, restrictNetwork });

  const emulated = hypervisor.accel === 'tcg';
  const note = emulated
    ? `microvm: emulated (QEMU TCG, no hardware virtualisation: ${hypervisor.accelReason}); boots take seconds and the guest runs several times slower than native`
    : `microvm: QEMU with KVM (${hypervisor.accelReason})`;
  spec.onLog('stderr', `[tenement] ${note}`);
  const started = Date.now();
  let guestExit: ExitInfo | null = null;
  let pid = 0;

  const onLog = (stream: LogStream, line: string): void => {
    if (line.startsWith(MARKER.listening)) {
      addForward(layout.monitorSocket, spec, context, pid, started, line);
      return;
    }
    if (line.startsWith(MARKER.exited)) {
      guestExit = exitFromCode(Number(line.slice(MARKER.exited.length).trim()));
      return;
    }
    spec.onLog(stream, line);
  };
  const onExit = (exit: ExitInfo): void => {
    rmSync(runDir, { recursive: true, force: true });
    // QEMU exits 0 when the guest powers off: the app's own status is what the guest reported.
    const reported: ExitInfo = guestExit ?? (exit.code === 0 ? { code: 1, signal: null } : exit);
    if (!guestExit && exit.code === 0) spec.onLog('stderr', '[tenement] microvm: the guest powered off without reporting the app\'s exit');
    spec.onExit(reported);
  };

  const launch = setpriv
    ? { program: setpriv, args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, groupsFor(hypervisor), '--inh-caps=-all', '--bounding-set=-all', hypervisor.qemu, ...args] }
    : { program: hypervisor.qemu, args };
  try {
    const handle = await spawnGroup(
      { ...spec, cwd: runDir, onLog, onExit },
      { ...launch, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' } },
      {
        // Graceful stop: the guest init turns `stop` on its control port into SIGTERM for the app.
        terminate: () => {
          controlWrite(layout.controlSocket, 'stop').catch(() => undefined);
        },
      },
    );
    pid = handle.pid ?? 0;
    context.log.info(
      { instance: `${spec.service}:${spec.id}`, pid, accel: hypervisor.accel, memoryMiB: memoryMiB(spec) },
      emulated ? 'QEMU started (emulated, TCG: slow)' : 'QEMU started (KVM)',
    );
    return handle;
  } catch (error) {
    rmSync(runDir, { recursive: true, force: true });
    throw error;
  }
}

/** No supplementary groups, except /dev/kvm's group under KVM (the device is usually root:kvm 0660). */
function groupsFor(hypervisor: Hypervisor): string {
  if (hypervisor.accel !== 'kvm') return '--clear-groups';
  try {
    const kvm = statSync('/dev/kvm');
    return (kvm.mode & 0o006) === 0o006 ? '--clear-groups' : `--groups=${kvm.gid}`;
  } catch {
    return '--clear-groups';
  }
}

/** The guest's PATH: busybox's folders, plus the host folder of node (the tools image puts it there). */
function guestPath(): string {
  const nodeBin = path.dirname(process.execPath);
  return [nodeBin, '/usr/local/bin', '/usr/bin', '/bin', '/sbin'].filter((dir, index, all) => all.indexOf(dir) === index).join(':');
}

/** Adds the host -> guest port forward through the monitor; a failure (port taken meanwhile) ends the VM. */
function addForward(socket: string, spec: SpawnSpec, context: VmContext, pid: number, started: number, marker: string): void {
  const rule = `tcp:${spec.host}:${spec.port}-:${spec.port}`;
  forwardWithRetries(socket, `hostfwd_add net0 ${rule}`)
    .then((reply) => {
      if (reply) throw new Error(reply);
      const uptime = /uptime=([\d.]+)/.exec(marker)?.[1];
      spec.onLog('stderr', `[tenement] microvm: app listening ${Date.now() - started}ms after launch (guest uptime ${uptime ?? '?'}s); forwarding ${spec.host}:${spec.port}`);
    })
    .catch((error: Error) => {
      spec.onLog('stderr', `[tenement] microvm: cannot forward ${spec.host}:${spec.port} to the guest: ${error.message}`);
      context.log.warn({ instance: `${spec.service}:${spec.id}`, err: error.message }, 'port forward failed; stopping the VM');
      if (pid) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    });
}

/**
 * The monitor shares QEMU's main loop with the emulated CPU: on a loaded host under TCG it can take seconds to
 * answer: it gets 15 s, and a connection that failed before the command went out is retried. QEMU's own
 * refusal of the rule (a non-empty reply, e.g. the port was taken meanwhile) ends the VM.
 */
async function forwardWithRetries(socket: string, command: string, attempts = 3): Promise<string> {
  let lastError: Error | null = null;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      return await monitorCommand(socket, command, 15_000);
    } catch (error) {
      lastError = error as Error;
      // Once the command went out, a retry could add the rule twice (and fail on its own port): give up.
      if ((error as { commandSent?: boolean }).commandSent) break;
      await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
    }
  }
  throw lastError ?? new Error('QEMU monitor unreachable');
}
