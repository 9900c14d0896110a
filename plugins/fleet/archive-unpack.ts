/**
 * The target's side of a move's archive (archive.ts): records `<4-byte header length><JSON header><file bytes>`
 * parsed as the bytes arrive, in the socket's own `data` callback, with no promise per chunk; the filesystem work
 * (folders, files, writes a MiB at a time) queued in order and run on the thread pool while the next bytes are
 * parsed. A move's pause waits for this on a host whose cores also proxy the load: every chunk's overhead counts
 * (an async iterator per 64 KiB socket chunk cost more CPU than the writes). Unpacking trusts nothing: every path is
 * relative, normal and under a known top folder, a file is only written into a folder this unpack made (never
 * through a link, O_EXCL|O_NOFOLLOW), and entries, path lengths and header sizes are bounded.
 */
import { constants } from 'node:fs';
import { mkdir, open, symlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

export const MAX_ENTRIES = 200_000;
export const MAX_PATH = 4096;
const MAX_HEADER = 8192;
/** File bytes gathered before one write (the socket's chunks are 64 KiB). */
const WRITE_BATCH = 1 << 20;
/** Bytes queued for the disk before the sender is paused, and the level it is resumed at. */
const QUEUE_HIGH = 8 << 20;
const QUEUE_LOW = 2 << 20;

export interface Header {
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

/** `<top>/<rest>` with `<top>` one of `tops`: its parts, or null for anything else (absolute, `..`, empty parts). */
function checkedPath(p: unknown, tops: ReadonlySet<string>): string[] | null {
  if (typeof p !== 'string' || p.length === 0 || p.length > MAX_PATH || p.includes('\0')) return null;
  const parts = p.split('/');
  if (!tops.has(parts[0]!)) return null;
  for (const part of parts) if (part === '' || part === '.' || part === '..') return null;
  return parts;
}

interface OpenFile {
  rel: string;
  handle: FileHandle | null;
  left: number;
  batch: Buffer[];
  batched: number;
}

/**
 * Unpacks an archive pushed to it chunk by chunk under `dest` (made by `start`, which must not exist): the top
 * folders of `tops` become `dest/<top>`. Files and folders are root's (a spawn gives DATA_DIR to the tenant's uid),
 * modes kept without set-id bits. `push` throws at the first bad record; `end` settles once everything is on disk.
 * `pause`/`resume` are called as the disk queue fills and drains (the socket's flow control).
 */
export class Unpacker {
  private readonly allowed: ReadonlySet<string>;
  private readonly made = new Set<string>(['']);
  private entries = 0;
  /** Bytes of the record's length or header gathered so far (they may straddle chunks). */
  private head: Buffer[] = [];
  private headBytes = 0;
  private need = 4;
  private state: 'length' | 'header' | 'body' = 'length';
  private file: OpenFile | null = null;
  private readonly handles = new Set<FileHandle>();
  private queue: Promise<void>;
  private queued = 0;
  private paused = false;
  private failure: Error | null = null;

  constructor(
    private readonly dest: string,
    tops: readonly string[],
    private readonly flow: { pause(): void; resume(): void } = { pause: () => undefined, resume: () => undefined },
  ) {
    this.allowed = new Set(tops);
    this.queue = mkdir(dest, { mode: 0o700 }).then(
      () => undefined,
      (error: unknown) => void this.fail(error),
    );
  }

  /** Parses `chunk`, queueing what it asks of the disk. Throws the first error (a bad record or a failed write). */
  push(chunk: Buffer): void {
    if (this.failure) throw this.failure;
    let at = 0;
    while (at < chunk.length) {
      if (this.state === 'body') {
        const file = this.file!;
        const take = Math.min(file.left, chunk.length - at);
        file.batch.push(chunk.subarray(at, at + take));
        file.batched += take;
        file.left -= take;
        at += take;
        if (file.batched >= WRITE_BATCH || file.left === 0) this.flush(file);
        if (file.left === 0) this.finishFile(file);
        continue;
      }
      const take = Math.min(this.need - this.headBytes, chunk.length - at);
      this.head.push(chunk.subarray(at, at + take));
      this.headBytes += take;
      at += take;
      if (this.headBytes < this.need) continue;
      const bytes = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head, this.headBytes);
      this.head = [];
      this.headBytes = 0;
      if (this.state === 'length') {
        const length = bytes.readUInt32BE(0);
        if (length === 0 || length > MAX_HEADER) throw this.fail(new Error(`an entry header of ${length} bytes`));
        this.need = length;
        this.state = 'header';
      } else {
        this.need = 4;
        this.state = 'length';
        this.record(bytes);
      }
    }
  }

  /** The archive ended: resolves once every write is done, or rejects with what went wrong. */
  async end(): Promise<{ entries: number }> {
    if (!this.failure && (this.state !== 'length' || this.headBytes > 0)) this.fail(new Error(this.state === 'body' ? `${this.file!.rel}: the archive ends inside it` : 'the archive ends inside an entry'));
    await this.queue.catch(() => undefined);
    if (this.failure) {
      await this.closeAll();
      throw this.failure;
    }
    return { entries: this.entries };
  }

  /** Stops: closes what is open; the caller removes `dest`. */
  async abort(error: Error): Promise<void> {
    this.fail(error);
    await this.queue.catch(() => undefined);
    await this.closeAll();
  }

  private fail(error: unknown): Error {
    this.failure ??= error instanceof Error ? error : new Error(String(error));
    if (this.paused) {
      this.paused = false;
      this.flow.resume();
    }
    return this.failure;
  }

  private record(json: Buffer): void {
    if (++this.entries > MAX_ENTRIES) throw this.fail(new Error(`more than ${MAX_ENTRIES} entries`));
    let header: Header;
    try {
      header = JSON.parse(json.toString('utf8')) as Header;
    } catch {
      throw this.fail(new Error('an entry header is not JSON'));
    }
    const parts = checkedPath(header?.p, this.allowed);
    if (!parts) throw this.fail(new Error(`an entry path is not allowed: ${JSON.stringify(String(header?.p).slice(0, 200))}`));
    const rel = parts.join('/');
    const parent = parts.slice(0, -1).join('/');
    // Only into folders made by this unpack: never through a link, never into a file's place.
    if (parts.length > 1 && !this.made.has(parent)) throw this.fail(new Error(`${rel}: its folder is not in the archive before it`));
    if (parts.length === 1 && header.t !== 'd') throw this.fail(new Error(`${rel}: a top entry must be a folder`));
    const target = path.join(this.dest, ...parts);
    const mode = Number.isInteger(header.m) ? header.m & 0o777 : 0o600;
    if (header.t === 'd') {
      if (this.made.has(rel)) throw this.fail(new Error(`${rel}: twice in the archive`));
      this.made.add(rel);
      this.enqueue(0, () => mkdir(target, { mode: mode | 0o700 }).then(() => undefined));
    } else if (header.t === 'l') {
      if (typeof header.l !== 'string' || header.l.length > MAX_PATH || header.l.includes('\0')) throw this.fail(new Error(`${rel}: a bad link`));
      const link = header.l;
      this.enqueue(0, () => symlink(link, target));
    } else if (header.t === 'f') {
      if (!Number.isSafeInteger(header.s) || header.s < 0) throw this.fail(new Error(`${rel}: a bad size`));
      const file: OpenFile = { rel, handle: null, left: header.s, batch: [], batched: 0 };
      // O_EXCL: a name given twice (or a link planted under it) is refused, never written through.
      this.enqueue(0, async () => {
        file.handle = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
        this.handles.add(file.handle);
      });
      if (file.left === 0) this.finishFile(file);
      else {
        this.file = file;
        this.state = 'body';
      }
    } else throw this.fail(new Error(`${rel}: an unknown entry type`));
  }

  private flush(file: OpenFile): void {
    if (file.batched === 0) return;
    const batch = file.batch;
    const bytes = file.batched;
    file.batch = [];
    file.batched = 0;
    this.enqueue(bytes, async () => {
      await file.handle!.writev(batch);
    });
  }

  private finishFile(file: OpenFile): void {
    this.file = null;
    this.state = 'length';
    this.need = 4;
    this.enqueue(0, async () => {
      const handle = file.handle!;
      this.handles.delete(handle);
      await handle.close();
    });
  }

  /** Runs `op` after everything queued before it; `bytes` count towards the flow control. */
  private enqueue(bytes: number, op: () => Promise<void>): void {
    this.queued += bytes;
    if (this.queued > QUEUE_HIGH && !this.paused && !this.failure) {
      this.paused = true;
      this.flow.pause();
    }
    this.queue = this.queue.then(async () => {
      if (this.failure) return;
      try {
        await op();
      } catch (error) {
        this.fail(error);
      } finally {
        this.queued -= bytes;
        if (this.paused && this.queued <= QUEUE_LOW) {
          this.paused = false;
          this.flow.resume();
        }
      }
    });
  }

  private async closeAll(): Promise<void> {
    for (const handle of this.handles) await handle.close().catch(() => undefined);
    this.handles.clear();
  }
}

/** Unpacks an archive read from `source` under `dest`, with the Unpacker's checks. */
export async function unpackFrom(source: AsyncIterable<Buffer> | Iterable<Buffer>, dest: string, tops: readonly string[]): Promise<{ entries: number }> {
  const unpacker = new Unpacker(dest, tops);
  try {
    for await (const chunk of source) unpacker.push(chunk);
  } catch (error) {
    await unpacker.abort(error as Error);
    throw error;
  }
  return unpacker.end();
}
