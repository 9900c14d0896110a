import { writeFileSync } from 'node:fs';
import { SPEC_MAGIC } from './init-script.ts';

export interface GuestSpec {
  uid: number;
  gid: number;
  port: number;
  cwd: string;
  dataDir: string;
  hostname: string;
  network: 'host' | 'private' | 'none';
  /** util-linux setpriv in the tools image (busybox's, first on the guest's PATH, cannot change uids). */
  setpriv: string;
  command: string;
  args: readonly string[];
  env: Readonly<Record<string, string>>;
}

/** A value as one single-quoted shell word. */
const quote = (value: string): string => `'${value.replace(/'/g, `'\\''`)}'`;

/** The spec as the shell script the guest init sources: TNM_* settings, `export`s, and `set --` for the command. */
export function specScript(spec: GuestSpec): string {
  const lines = [
    SPEC_MAGIC,
    `TNM_UID=${spec.uid}`,
    `TNM_GID=${spec.gid}`,
    `TNM_PORT=${spec.port}`,
    `TNM_CWD=${quote(spec.cwd)}`,
    `TNM_DATA=${quote(spec.dataDir)}`,
    `TNM_HOSTNAME=${quote(spec.hostname)}`,
    `TNM_NET=${spec.network}`,
    `TNM_SETPRIV=${quote(spec.setpriv)}`,
  ];
  for (const [name, value] of Object.entries(spec.env)) {
    // Names the shell cannot export are left out rather than breaking the script.
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) lines.push(`export ${quote(`${name}=${value}`)}`);
  }
  lines.push(`set -- ${[spec.command, ...spec.args].map(quote).join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/**
 * Writes the spec as a raw disk (no file system: the guest reads it with `tr -d '\0' < /dev/vdX`). A disk
 * rather than the kernel command line keeps the environment out of the host's `ps` and of the 2 KiB limit.
 */
export function writeSpecDisk(file: string, spec: GuestSpec): void {
  const script = Buffer.from(specScript(spec));
  const size = Math.ceil((script.length + 1) / 512) * 512;
  const disk = Buffer.alloc(size);
  script.copy(disk);
  writeFileSync(file, disk, { mode: 0o600 });
}
