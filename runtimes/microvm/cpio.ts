import { gzipSync } from 'node:zlib';

/** One entry of an initramfs: a directory, or a file with its bytes. */
export type CpioEntry = { path: string; mode: number; type: 'dir' } | { path: string; mode: number; type: 'file'; data: Buffer };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

function header(fields: number[], name: string): Buffer {
  const hex = fields.map((n) => n.toString(16).padStart(8, '0')).join('');
  const text = `070701${hex}${name}\0`;
  const padded = text.length + ((4 - (text.length % 4)) % 4);
  return Buffer.from(text.padEnd(padded, '\0'), 'latin1');
}

function pad4(data: Buffer): Buffer {
  const extra = (4 - (data.length % 4)) % 4;
  return extra ? Buffer.concat([data, Buffer.alloc(extra)]) : data;
}

/**
 * A gzipped "newc" cpio archive, the format the kernel unpacks as its initramfs. Written here rather than with
 * a cpio tool (not installed by default): the format is a 110-byte ASCII header per entry, 4-byte aligned.
 * Every entry is owned by root with mtime 0, so the same inputs give the same archive.
 */
export function initramfs(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const entry of entries) {
    const data = entry.type === 'file' ? entry.data : Buffer.alloc(0);
    const mode = (entry.type === 'dir' ? S_IFDIR : S_IFREG) | entry.mode;
    const name = entry.path.replace(/^\/+/, '');
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    parts.push(header([ino++, mode, 0, 0, entry.type === 'dir' ? 2 : 1, 0, data.length, 0, 0, 0, 0, name.length + 1, 0], name));
    parts.push(pad4(data));
  }
  parts.push(header([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 'TRAILER!!!'.length + 1, 0], 'TRAILER!!!'));
  return gzipSync(Buffer.concat(parts), { level: 6 });
}
