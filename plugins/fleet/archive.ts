/**
 * The archive a move carries between nodes (docs/fleet.md#what-follows-an-instance-when-it-moves): an instance's
 * `DATA_DIR` and, for a live move, its CRIU images, as one file of records `<4-byte header length><JSON header>
 * <file bytes>`. Packed by the source as the target pulls it and unpacked by the target as it arrives (no archive
 * file on either side); the target answers the size and CRC-32 it received, which the source compares with what
 * it sent before the placement moves. Unpacking trusts nothing: every path is relative,
 * normal and under a known top folder, a file is only written into a folder this unpack made (never through a
 * link), and entries, path lengths and bytes are bounded. Asynchronous throughout: a large DATA_DIR never blocks the
 * event loop the node's proxy runs on.
 */
import { PassThrough, type Readable } from 'node:stream';
import { constants } from 'node:fs';
import { lstat, open, readdir, readlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { MAX_ENTRIES, unpackFrom, type Header } from './archive-unpack.ts';

export { MAX_ENTRIES, Unpacker, unpackFrom } from './archive-unpack.ts';

const CHUNK = 1 << 20;

export interface PackSource {
  top: string;
  dir: string;
}

function tooLarge(what: string): TenementError {
  return new TenementError(ErrorCodes.BODY_TOO_LARGE, `fleet move: ${what}`);
}

export interface Packed {
  bytes: number;
  /** CRC-32 of every byte of the stream, as 8 hex digits. */
  crc32: string;
}

/**
 * The size and checksum of a move's stream, taken the same way on both sides. It catches a stream cut, damaged or
 * mangled between the two nodes, by accident: node-to-node answers are not signed, so a stronger hash would stop no
 * attacker (one who can change the stream can change the answer), and CRC-32 costs a third of sha256's CPU
 * (6 against 15 ms per 25 MB here, on each side, inside the move's pause).
 */
export class Digest {
  private crc = 0;
  bytes = 0;

  update(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.crc = crc32(chunk, this.crc);
  }

  result(): Packed {
    return { bytes: this.bytes, crc32: this.crc.toString(16).padStart(8, '0') };
  }
}

/** Packs each source folder (missing ones are skipped) into `file` (made 0600). Returns its size and CRC-32. */
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
 * `done` settles with the size and CRC-32 sent, or the reason packing stopped (the stream is destroyed then).
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
  const digest = new Digest();
  let entries = 0;
  const emit = async (chunk: Buffer): Promise<void> => {
    digest.update(chunk);
    if (digest.bytes > maxBytes) throw tooLarge(`the data and images are over ${maxBytes} bytes (settings.fleet.moveMaxBytes)`);
    await write(chunk);
  };
  const header = async (value: Header): Promise<void> => {
    if (++entries > MAX_ENTRIES) throw tooLarge(`more than ${MAX_ENTRIES} files`);
    const json = JSON.stringify(value);
    // One chunk per record head: the length and the header together.
    const record = Buffer.allocUnsafe(4 + Buffer.byteLength(json));
    record.writeUInt32BE(record.length - 4, 0);
    record.write(json, 4, 'utf8');
    await emit(record);
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
  return digest.result();
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
