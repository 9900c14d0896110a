import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

/** `ip` (iproute2) and `nft` (nftables), by absolute path; null when not installed. */
export interface NetTools {
  ip: string | null;
  nft: string | null;
  nsenter: string | null;
}

function find(name: string): string | null {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    try {
      accessSync(`${dir}/${name}`, constants.X_OK);
      return `${dir}/${name}`;
    } catch {
      // Not here.
    }
  }
  return null;
}

export function findNetTools(): NetTools {
  return { ip: find('ip'), nft: find('nft'), nsenter: find('nsenter') };
}

/** Why this host cannot give `network` to an instance, with the fix; null when it can. */
export function missingTools(tools: NetTools, network: 'private' | 'none'): string | null {
  if (process.getuid?.() !== 0) return `network: '${network}' needs Tenement to run as root (it creates network namespaces)`;
  if (!tools.ip) return `network: '${network}' needs the ip command: apt-get install iproute2`;
  if (!tools.nsenter) return `network: '${network}' needs nsenter: apt-get install util-linux`;
  if (network === 'private' && !tools.nft) return "network: 'private' needs nft for its egress rules: apt-get install nftables";
  return null;
}

/** Runs a command with `input` on stdin; rejects with its stderr when it fails. */
export function run(program: string, args: readonly string[], input = ''): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: [input ? 'pipe' : 'ignore', 'ignore', 'pipe'] });
    // First: a failed spawn (EMFILE) emits `error` and leaves the streams null.
    child.once('error', reject);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${[program, ...args].join(' ')}: ${stderr.trim() || `exit ${code}`}`));
    });
    if (child.stdin) {
      // A program that exits without reading its input (a failed `ip netns add`) must not crash Tenement with EPIPE.
      child.stdin.on('error', () => undefined);
      child.stdin.end(input);
    }
  });
}
