/**
 * Where a WASI guest's stdout and stderr go on wasmtime (run.ts), each a memfd capped at its limit plus one page.
 *
 * The fast way, `FileCapture`: wasmtime writes into the memfd through a file it opens itself
 * (`wasi_config_set_stdout_file` on `/proc/self/fd/N`), synchronously on the guest's thread. The custom-callback
 * stream (`wasi_config_set_*_custom`, `Capture` below) is wrapped by wasmtime-wasi in an async stream that hands
 * every write to a tokio thread and back: 70-140 µs of the C example's ~230 µs request in-thread here. Its cap:
 * the memfd is sized and sealed (no growing) once wasmtime opened it (its open truncates), and the guest's
 * writes past the size fail. What the guest wrote is the offset of wasmtime's own descriptor, found by its inode
 * among the numbers just above the lowest free one; where it is not found (another thread took those numbers),
 * the caller falls back to the custom stream for that request.
 */
import { fstatSync, readSync } from 'node:fs';
import { koffi } from './ffi.ts';

export interface Libc {
  memfd_create: (name: string, flags: number) => number;
  fcntl: (fd: number, cmd: number, ...rest: unknown[]) => number;
  lseek: (fd: number, offset: number, whence: number) => bigint | number;
  ftruncate: (fd: number, length: number) => number;
  fallocate: (fd: number, mode: number, offset: number, length: number) => number;
  /** libc's own: Node warns when a worker closes, with fs.closeSync, a descriptor it did not open. */
  close: (fd: number) => number;
  /** Into a struct timespec (thread-cpu.ts). */
  clock_gettime: (clock: number, out: Buffer) => number;
}

const MFD_CLOEXEC = 0x1;
const MFD_ALLOW_SEALING = 0x2;
const F_DUPFD_CLOEXEC = 1030;
const F_ADD_SEALS = 1033;
const F_SEAL_SEAL = 0x1;
const F_SEAL_SHRINK = 0x2;
const F_SEAL_GROW = 0x4;
const SEEK_SET = 0;
const SEEK_CUR = 1;
/** A memfd that held more than this is emptied after the request (its pages freed). */
const SHRINK_OVER = 1024 * 1024;
/** How far above the lowest free descriptor wasmtime's is looked for. */
const SEARCH = 16;

export function loadLibc(): Libc {
  const c = koffi.load('libc.so.6');
  return {
    memfd_create: c.func('int memfd_create(const char *name, unsigned int flags)'),
    fcntl: c.func('int fcntl(int fd, int cmd, ...)'),
    lseek: c.func('int64_t lseek(int fd, int64_t offset, int whence)'),
    ftruncate: c.func('int ftruncate(int fd, int64_t length)'),
    fallocate: c.func('int fallocate(int fd, int mode, int64_t offset, int64_t length)'),
    close: c.func('int close(int fd)'),
    clock_gettime: c.func('int clock_gettime(int clock, void *spec)'),
  };
}

/** Reads `length` bytes from the start of `fd`. */
function readAll(fd: number, length: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  let read = 0;
  while (read < length) {
    const got = readSync(fd, bytes, read, length - read, read);
    if (got === 0) break;
    read += got;
  }
  return read === length ? bytes : bytes.subarray(0, read);
}

/** One request's stream, written by wasmtime through a descriptor of its own into a fresh memfd. */
export class FileCapture {
  /** wasmtime's descriptor of the memfd (its offset is what the guest wrote), once found. */
  private theirs = -1;

  private constructor(
    readonly fd: number,
    private readonly ino: number,
    private readonly cap: number,
    private readonly libc: Libc,
  ) {}

  /** A fresh memfd named `name`, or null when none can be made (the caller uses the custom stream). */
  static create(libc: Libc, name: string, cap: number): FileCapture | null {
    const fd = libc.memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return null;
    try {
      return new FileCapture(fd, fstatSync(fd).ino, cap, libc);
    } catch {
      libc.close(fd);
      return null;
    }
  }

  /** A capture attached on another thread (config-preparer.ts): our descriptor and wasmtime's, as found there. */
  static adopt(libc: Libc, fd: number, theirs: number): FileCapture {
    const capture = new FileCapture(fd, 0, 0, libc);
    capture.theirs = theirs;
    return capture;
  }

  /** wasmtime's descriptor of the memfd, once attached (-1 before). */
  get wasmtimeFd(): number {
    return this.theirs;
  }

  /**
   * Points a WASI config's stream at the memfd (`set` opens it, in wasmtime), then sizes and seals it. False when
   * wasmtime's descriptor cannot be told apart: the caller then sets the custom stream over it, which closes it.
   */
  attach(set: (path: string) => boolean): boolean {
    const lowest = this.libc.fcntl(this.fd, F_DUPFD_CLOEXEC, 'int', 0);
    if (lowest < 0) return false;
    this.libc.close(lowest);
    if (!set(`/proc/self/fd/${this.fd}`)) return false;
    for (let fd = lowest; fd < lowest + SEARCH; fd++) {
      if (fd === this.fd) continue;
      try {
        if (fstatSync(fd).ino === this.ino) {
          this.theirs = fd;
          break;
        }
      } catch {
        // not open
      }
    }
    if (this.theirs < 0) return false;
    // Sized only now: wasmtime's open truncated it. A guest's write past the size fails (EPERM in the guest).
    return this.libc.ftruncate(this.fd, this.cap + 4096) === 0 && this.libc.fcntl(this.fd, F_ADD_SEALS, 'int', F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) === 0;
  }

  /** What the guest wrote: up to wasmtime's offset. Call before the store (holding that descriptor) is deleted. */
  take(): Buffer {
    if (this.theirs < 0) return Buffer.alloc(0);
    const length = Number(this.libc.lseek(this.theirs, 0, SEEK_CUR));
    return length > 0 ? readAll(this.fd, length) : Buffer.alloc(0);
  }

  /** Our descriptor; the memory goes once wasmtime's is closed too (with its store, or the config). */
  close(): void {
    this.libc.close(this.fd);
  }
}

/** The fallback: a worker's memfd that wasmtime's custom stream writes into with libc's `write` (see above). */
export class Capture {
  constructor(
    readonly fd: number,
    readonly size: number,
    private readonly libc: Libc,
  ) {}

  static create(libc: Libc, name: string, cap: number): Capture {
    const fd = libc.memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) throw new Error(`memfd_create failed for the guest's ${name}`);
    const size = cap + 4096;
    if (libc.ftruncate(fd, size) !== 0 || libc.fcntl(fd, F_ADD_SEALS, 'int', F_SEAL_GROW | F_SEAL_SEAL) !== 0) throw new Error(`cannot size or seal the guest's ${name}`);
    return new Capture(fd, size, libc);
  }

  rewind(): void {
    this.libc.lseek(this.fd, 0, SEEK_SET);
  }

  /** What the guest wrote since the rewind. */
  take(): Buffer {
    const length = Number(this.libc.lseek(this.fd, 0, SEEK_CUR));
    const bytes = readAll(this.fd, length);
    // The pages stay allocated in the memfd otherwise: a big answer would pin its memory in this worker.
    if (length > SHRINK_OVER) this.libc.fallocate(this.fd, 0x1 | 0x2, 0, this.size); // KEEP_SIZE | PUNCH_HOLE
    return bytes;
  }
}
