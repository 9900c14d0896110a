import { chmodSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** glibc reads at most three nameserver lines. */
const MAX_NAMESERVERS = 3;

/** The host's nameservers a tenant could use after ours (loopback ones are the tenant's own loopback inside). */
export function hostNameservers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const [keyword, address] = line.trim().split(/\s+/);
    if (keyword !== 'nameserver' || !address) continue;
    if (address.startsWith('127.') || address === '::1') continue;
    out.push(address);
  }
  return out;
}

/**
 * resolv.conf for a private instance: its host side first (the zone, REFUSED for any other name, so glibc asks
 * the next line), then the host's own non-loopback nameservers (reachable if the tenant's egress allows them).
 */
export function resolvConfText(hostSide: string, host: readonly string[], who: string): string {
  const servers = [hostSide, ...host.filter((address) => address !== hostSide)].slice(0, MAX_NAMESERVERS);
  return [`# ${who}: written by Tenement's service discovery (docs/discovery.md)`, ...servers.map((address) => `nameserver ${address}`), ''].join('\n');
}

/**
 * The files given to sandboxes as /etc/resolv.conf: a folder of its own in the temp dir, 0755 and only Tenement
 * writes in it, files 0644 (a tenant uid reads its file through bwrap; nothing in it is secret), removed at close.
 */
export class ResolvConfFiles {
  /** Made on the first file: a server without private callers leaves nothing in the temp dir. */
  private dir: string | null = null;
  private seq = 0;
  private readonly host: string[];

  constructor() {
    let text = '';
    try {
      text = readFileSync('/etc/resolv.conf', 'utf8');
    } catch {
      // No resolver of the host: only the zone resolves.
    }
    this.host = hostNameservers(text);
  }

  write(hostSide: string, who: string): string {
    if (this.dir === null) {
      this.dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-discovery-'));
      chmodSync(this.dir, 0o755);
    }
    const file = path.join(this.dir, `${(this.seq++).toString(36)}.conf`);
    writeFileSync(file, resolvConfText(hostSide, this.host, who), { mode: 0o644, flag: 'wx' });
    return file;
  }

  remove(file: string): void {
    try {
      unlinkSync(file);
    } catch {
      // Already gone.
    }
  }

  close(): void {
    if (this.dir !== null) rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
  }
}
