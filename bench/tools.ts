/** The external tools the benches drive (wrk, nginx), found on PATH or in the sbin folders. */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

const TOOLS: ReadonlyArray<{ bin: string; pkg: string }> = [
  { bin: 'wrk', pkg: 'wrk' },
  { bin: 'nginx', pkg: 'nginx-light' },
];

export function findBinary(bin: string): string | null {
  const candidates = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/local/sbin', '/sbin']);
  for (const dir of candidates) {
    if (!dir) continue;
    const file = path.join(dir, bin);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

/** The wrk and nginx binaries, or an error naming the Debian packages to install. */
export function requireTools(): { wrk: string; nginx: string } {
  const found = new Map<string, string>();
  const missing: string[] = [];
  for (const tool of TOOLS) {
    const file = findBinary(tool.bin);
    if (file) found.set(tool.bin, file);
    else missing.push(`${tool.bin} (Debian package ${tool.pkg})`);
  }
  if (missing.length > 0) {
    throw new Error(`missing ${missing.join(' and ')}: install with  apt-get install -y nginx-light wrk`);
  }
  return { wrk: found.get('wrk')!, nginx: found.get('nginx')! };
}
