/**
 * The archive a move carries between nodes (docs/fleet.md#what-follows-an-instance-when-it-moves): an instance's
 * `DATA_DIR` and, for a live move, its CRIU images, as one file of records `<4-byte header length><JSON header>
 * <file bytes>`. Packed by the source as the target pulls it and unpacked by the target as it arrives (no archive
 * file on either side); the target answers the size and sha256 it received, which the source compares with what
 * it sent before the placement moves. Unpacking trusts nothing: every path is relative,
 * normal and under a known top folder, a file is only written into a folder this unpack made (never through a
 * link), and entries, path lengths and bytes are bounded. Asynchronous throughout: a large DATA_DIR never blocks the
 * event loop the node's proxy runs on.
 */
import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink, symlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../../core/errors.ts';

export const MAX_ENTRIES = 200_000;
const MAX_PATH = 4096;
const MAX_HEADER = 8192;
const CHUNK = 1 << 20;

interface Header {
  /** `<top>/<relative path>`; `<top>` alone is the top folder itself. */
  p: string;
  t: 'd' | 'f' | 'l';
  /** Permission bits (files and folders). */
  m: number;
  /** Bytes that follow (files). */
  s: number;
  /** A link's target, kept as it is: it is never followed here. */
  l?: string;
}

export interface PackSource {
  top: string;
  dir: string;
}

function tooLarge(what: string): TenementError {
  return new TenementError(ErrorCodes.BODY_TOO_LARGE, `fleet move: ${what}`);
}

export interface Packed {
  bytes: number;
  sha256: string;
}

/** Packs each source folder (missing ones are skipped) into `file` (made 0600). Returns its size and sha256. */
export async function pack(sources: readonly PackSource[], file: string, maxBytes: number): Promise<Packed> {
  const out = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    const packed = await packInto(sources, maxBytes, async (chunk) => {
      await out.write(chunk);
    });
    await out.sync();
    return packed;
  } finally {
    await out.close();
  }
}

/**
 * Packs the sources into a stream as it is read (no archive file: the bytes go from the folders to the socket);
 * `done` settles with the size and sha256 sent, or the reason packing stopped (the stream is destroyed then).
 */
export function packStream(sources: readonly PackSource[], maxBytes: number): { stream: Readable; done: Promise<Packed> } {
  const stream = new PassThrough({ highWaterMark: CHUNK });
  const done = packInto(sources, maxBytes, async (chunk) => {
    if (stream.destroyed) throw new Error('the receiving node went away');
    if (stream.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const go = (): void => {
        stream.off('drain', go);
        stream.off('close', go);
        resolve();
      };
      stream.on('drain', go);
      stream.on('close', go);
    });
  }).then(
    (packed) => {
      stream.end();
      return packed;
    },
    (error: unknown) => {
      stream.destroy(error as Error);
      throw error;
    },
  );
  done.catch(() => undefined);
  return { stream, done };
}

async function packInto(sources: readonly PackSource[], maxBytes: number, write: (chunk: Buffer) => Promise<void>): Promise<Packed> {
  const hash = createHash('sha256');
  let bytes = 0;
  let entries = 0;
  const emit = async (chunk: Buffer): Promise<void> => {
    bytes += chunk.length;
    if (bytes > maxBytes) throw tooLarge(`the data and images are over ${maxBytes} bytes (settings.fleet.moveMaxBytes)`);
    hash.update(chunk);
    await write(chunk);
  };
  const header = async (value: Header): Promise<void> => {
    if (++entries > MAX_ENTRIES) throw tooLarge(`more than ${MAX_ENTRIES} files`);
    const json = Buffer.from(JSON.stringify(value));
    const length = Buffer.alloc(4);
    length.writeUInt32BE(json.length);
    await emit(length);
    await emit(json);
  };
  const walk = async (dir: string, rel: string): Promise<void> => {
    const info = await lstat(dir);
    await header({ p: rel, t: 'd', m: info.mode & 0o7777, s: 0 });
    for (const name of (await readdir(dir)).sort()) {
      const full = path.join(dir, name);
      const entry = `${rel}/${name}`;
      const stat = await lstat(full);
      if (stat.isDirectory()) await walk(full, entry);
      else if (stat.isSymbolicLink()) await header({ p: entry, t: 'l', m: 0o777, s: 0, l: await readlink(full) });
      else if (stat.isFile()) {
        await header({ p: entry, t: 'f', m: stat.mode & 0o777, s: stat.size });
        // O_NOFOLLOW: a file swapped for a link since the lstat is refused, not followed.
        const input = await open(full, constants.O_RDONLY | constants.O_NOFOLLOW);
        try {
          let left = stat.size;
          while (left > 0) {
            // A buffer per chunk: a stream may still hold the previous one.
            const buffer = Buffer.allocUnsafe(Math.min(CHUNK, left));
            const { bytesRead } = await input.read(buffer, 0, buffer.length, null);
            if (bytesRead === 0) throw new Error(`${full} shrank while it was packed`);
            await emit(buffer.subarray(0, bytesRead));
            left -= bytesRead;
          }
        } finally {
          await input.close();
        }
      }
      // Sockets, fifos and devices are not data: left behind.
    }
  };
  for (const source of sources) {
    const exists = await lstat(source.dir).then(
      (info) => info.isDirectory(),
      () => false,
    );
    if (exists) await walk(source.dir, source.top);
  }
  return { bytes, sha256: hash.digest('hex') };
}

/** `<top>/<rest>` with `<top>` one of `tops`: its parts, or null for anything else (absolute, `..`, empty parts). */
function checkedPath(p: unknown, tops: ReadonlySet<string>): string[] | null {
  if (typeof p !== 'string' || p.length === 0 || p.length > MAX_PATH || p.includes('\0')) return null;
  const parts = p.split('/');
  if (!tops.has(parts[0]!)) return null;
  for (const part of parts) if (part === '' || part === '.' || part === '..') return null;
  return parts;
}

/**
 * Unpacks `file` under `dest` (which must not exist): the top folders of `tops` become `dest/<top>`. Files and
 * folders are root's (a spawn gives DATA_DIR to the tenant's uid), modes kept without set-id bits.
 */
export async function unpack(file: string, dest: string, tops: readonly string[]): Promise<{ entries: number }> {
  const input: FileHandle = await open(file, constants.O_RDONLY);
  try {
    return await unpackFrom(input.createReadStream({ highWaterMark: CHUNK, autoClose: false }), dest, tops);
  } finally {
    await input.close();
  }
}

/** Bytes read from a stream on demand: up to `max` at a time, null at its end. */
class Bytes {
  private readonly chunks: AsyncIterator<Buffer>;
  private pending: Buffer | null = null;

  constructor(source: AsyncIterable<Buffer>) {
    this.chunks = source[Symbol.asyncIterator]();
  }

  async next(max: number): Promise<Buffer | null> {
    if (!this.pending || this.pending.length === 0) {
      const { value, done } = await this.chunks.next();
      if (done) return null;
      this.pending = value;
    }
    const out = this.pending.subarray(0, max);
    this.pending = this.pending.subarray(out.length);
    return out;
  }
}

/** Unpacks an archive read from `source` (a node's response) under `dest`, with the checks `unpack` makes. */
export async function unpackFrom(source: AsyncIterable<Buffer>, dest: string, tops: readonly string[]): Promise<{ entries: number }> {
  const allowed = new Set(tops);
  await mkdir(dest, { mode: 0o700 });
  const made = new Set<string>(['']);
  const input = new Bytes(source);
  let entries = 0;
  const readExactly = async (length: number): Promise<Buffer> => {
    const out = Buffer.allocUnsafe(length);
    let at = 0;
    while (at < length) {
      const chunk = await input.next(length - at);
      if (chunk === null) throw new Error('the archive ends inside an entry');
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  };
  for (;;) {
    const first = await input.next(4);
    if (first === null) break;
    const lengthBytes = first.length === 4 ? first : Buffer.concat([first, await readExactly(4 - first.length)]);
    const length = lengthBytes.readUInt32BE(0);
    if (length === 0 || length > MAX_HEADER) throw new Error(`an entry header of ${length} bytes`);
    if (++entries > MAX_ENTRIES) throw new Error(`more than ${MAX_ENTRIES} entries`);
    let header: Header;
    try {
      header = JSON.parse((await readExactly(length)).toString('utf8')) as Header;
    } catch {
      throw new Error('an entry header is not JSON');
    }
    const parts = checkedPath(header?.p, allowed);
    if (!parts) throw new Error(`an entry path is not allowed: ${JSON.stringify(String(header?.p).slice(0, 200))}`);
    const rel = parts.join('/');
    const parent = parts.slice(0, -1).join('/');
    // Only into folders made by this unpack: never through a link, never into a file's place.
    if (parts.length > 1 && !made.has(parent)) throw new Error(`${rel}: its folder is not in the archive before it`);
    if (parts.length === 1 && header.t !== 'd') throw new Error(`${rel}: a top entry must be a folder`);
    const target = path.join(dest, ...parts);
    const mode = Number.isInteger(header.m) ? header.m & 0o777 : 0o600;
    if (header.t === 'd') {
      if (made.has(rel)) throw new Error(`${rel}: twice in the archive`);
      await mkdir(target, { mode: mode | 0o700 });
      made.add(rel);
    } else if (header.t === 'l') {
      if (typeof header.l !== 'string' || header.l.length > MAX_PATH || header.l.includes('\0')) throw new Error(`${rel}: a bad link`);
      await symlink(header.l, target);
    } else if (header.t === 'f') {
      if (!Number.isSafeInteger(header.s) || header.s < 0) throw new Error(`${rel}: a bad size`);
      // O_EXCL: a name given twice (or a link planted under it) is refused, never written through.
      const out = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
      try {
        let left = header.s;
        // The socket's chunks are small (64 KiB): written a MiB at a time, not one write each.
        let batch: Buffer[] = [];
        let batched = 0;
        while (left > 0) {
          const chunk = await input.next(Math.min(CHUNK, left));
          if (chunk === null) throw new Error(`${rel}: the archive ends inside it`);
          batch.push(chunk);
          batched += chunk.length;
          left -= chunk.length;
          if (batched >= CHUNK || left === 0) {
            await out.writev(batch);
            batch = [];
            batched = 0;
          }
        }
      } finally {
        await out.close();
      }
    } else throw new Error(`${rel}: an unknown entry type`);
  }
  return { entries };
}
