/**
 * A raw disk image file as a BlockBackend.
 *
 * - Open: the file must exist, be a regular file, be readable (and writable unless read-only)
 *   and hold a whole number of 512-byte sectors; otherwise TSVMM_BAD_DISK naming the file and
 *   the reason.
 * - Lock: like QEMU's image locking, a writer takes an exclusive lock and a read-only user a
 *   shared one (flock(2), non-blocking), so two tsvmm processes never write one image, and no
 *   one reads an image another is writing. A held lock is TSVMM_BUSY. The lock belongs to this
 *   open file and goes away with close() or the process.
 * - I/O is synchronous (preadv/pwritev at explicit offsets, so no shared file position, one
 *   system call per request);
 *   FLUSH is fdatasync before the outcome is returned, hence before the device posts the
 *   completion. An I/O failure is the outcome 'io-error' (the guest sees VIRTIO_BLK_S_IOERR);
 *   the error is kept in `lastError` for the host, never thrown at the guest's request.
 * - DISCARD punches a hole (fallocate PUNCH_HOLE|KEEP_SIZE); where the filesystem cannot, it
 *   does nothing, which a discard allows. WRITE_ZEROES punches a hole when the driver allows
 *   unmapping, else zeroes the range in place (ZERO_RANGE), and falls back to writing zeros.
 */
import { closeSync, fdatasyncSync, fstatSync, openSync, readSync, readvSync, writeSync, writevSync } from 'node:fs';
import { TsvmmError } from '../../common/errors.js';
import * as libc from '../../common/libc.js';
import { SECTOR_SIZE, type BlockBackend, type BlockOutcome } from './block-backend.js';

export interface FileBlockOptions {
  path: string;
  readOnly?: boolean;
  /** The serial GET_ID returns (default: empty). */
  id?: string;
}

const EWOULDBLOCK = 11;
const EOPNOTSUPP = 95;
const ZERO_CHUNK = 64 * 1024;
/** The most buffers one preadv/pwritev takes (Linux's UIO_MAXIOV). */
const IOV_MAX = 1024;

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class FileBlockBackend implements BlockBackend {
  readonly id: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly path: string;
  /** The last host I/O error, for diagnostics. */
  lastError: string | null = null;
  private fd: number;
  private zeros: Uint8Array | null = null;

  private constructor(fd: number, opts: FileBlockOptions, size: number) {
    this.fd = fd;
    this.path = opts.path;
    this.id = opts.id ?? '';
    this.readOnly = opts.readOnly ?? false;
    this.size = size;
  }

  static open(opts: FileBlockOptions): FileBlockBackend {
    const readOnly = opts.readOnly ?? false;
    let fd: number;
    try {
      fd = openSync(opts.path, readOnly ? 'r' : 'r+');
    } catch (e) {
      throw new TsvmmError('TSVMM_BAD_DISK', `disk image ${opts.path} cannot be opened ${readOnly ? 'for reading' : 'for reading and writing'}: ${describe(e)}`, { path: opts.path });
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new TsvmmError('TSVMM_BAD_DISK', `disk image ${opts.path} is not a regular file`, { path: opts.path });
      if (st.size % SECTOR_SIZE !== 0) {
        throw new TsvmmError('TSVMM_BAD_DISK', `disk image ${opts.path} is ${st.size} bytes, not a whole number of ${SECTOR_SIZE}-byte sectors`, { path: opts.path, size: st.size });
      }
      // A probe read: a file that opens but cannot be read (a directory-like object, EIO) is refused now, not at boot.
      if (st.size > 0) readSync(fd, new Uint8Array(1), 0, 1, 0);
      if (libc.flock(fd, (readOnly ? libc.LOCK_SH : libc.LOCK_EX) | libc.LOCK_NB) < 0) {
        const errno = libc.lastErrno();
        if (errno === EWOULDBLOCK) {
          throw new TsvmmError('TSVMM_BUSY', `disk image ${opts.path} is in use by another process (it holds a lock on it)`, { path: opts.path });
        }
        throw new TsvmmError('TSVMM_BAD_DISK', `disk image ${opts.path} cannot be locked: errno ${errno}`, { path: opts.path, errno });
      }
      return new FileBlockBackend(fd, { ...opts, readOnly }, st.size);
    } catch (e) {
      closeSync(fd);
      if (e instanceof TsvmmError) throw e;
      throw new TsvmmError('TSVMM_BAD_DISK', `disk image ${opts.path} cannot be read: ${describe(e)}`, { path: opts.path });
    }
  }

  read(offset: number, buffers: readonly Uint8Array[]): BlockOutcome {
    return this.guard(() => this.vectored(readvSync, 'read', offset, buffers));
  }

  write(offset: number, buffers: readonly Uint8Array[]): BlockOutcome {
    if (this.readOnly) return 'io-error';
    return this.guard(() => this.vectored(writevSync, 'write', offset, buffers));
  }

  /**
   * preadv/pwritev of `buffers` at `offset` until all are done: one system call per request (a
   * guest's 1 MiB request is ~256 page-sized buffers), IOV_MAX at a time, resumed after a short
   * transfer.
   */
  private vectored(io: (fd: number, buffers: readonly Uint8Array[], position: number) => number, what: string, offset: number, buffers: readonly Uint8Array[]): void {
    let list = buffers.filter((b) => b.length > 0);
    while (list.length > 0) {
      const batch = list.length > IOV_MAX ? list.slice(0, IOV_MAX) : list;
      let n = io(this.fd, batch, offset);
      if (n === 0) throw new Error(`unexpected end of ${this.path} at ${offset} on ${what} (the file shrank?)`);
      offset += n;
      let i = 0;
      while (i < list.length && n >= list[i]!.length) n -= list[i++]!.length;
      list = list.slice(i);
      if (n > 0) list[0] = list[0]!.subarray(n);
    }
  }

  flush(): BlockOutcome {
    if (this.readOnly) return 'ok';
    return this.guard(() => fdatasyncSync(this.fd));
  }

  discard(offset: number, length: number): BlockOutcome {
    if (this.readOnly) return 'io-error';
    if (libc.fallocate(this.fd, libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE, offset, length) === 0) return 'ok';
    const errno = libc.lastErrno();
    if (errno === EOPNOTSUPP) return 'ok'; // a discard is a hint
    this.lastError = `fallocate(PUNCH_HOLE) on ${this.path}: errno ${errno}`;
    return 'io-error';
  }

  writeZeroes(offset: number, length: number, mayUnmap: boolean): BlockOutcome {
    if (this.readOnly) return 'io-error';
    const mode = mayUnmap ? libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE : libc.FALLOC_FL_ZERO_RANGE | libc.FALLOC_FL_KEEP_SIZE;
    if (libc.fallocate(this.fd, mode, offset, length) === 0) return 'ok';
    const errno = libc.lastErrno();
    if (errno !== EOPNOTSUPP) {
      this.lastError = `fallocate(${mayUnmap ? 'PUNCH_HOLE' : 'ZERO_RANGE'}) on ${this.path}: errno ${errno}`;
      return 'io-error';
    }
    this.zeros ??= new Uint8Array(ZERO_CHUNK);
    const zeros = this.zeros;
    return this.guard(() => {
      for (let done = 0; done < length;) {
        const n = Math.min(ZERO_CHUNK, length - done);
        done += writeSync(this.fd, zeros, 0, n, offset + done);
      }
    });
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd); // drops the lock
    this.fd = -1;
  }

  private guard(io: () => void): BlockOutcome {
    if (this.fd < 0) return 'io-error';
    try {
      io();
      return 'ok';
    } catch (e) {
      this.lastError = `${this.path}: ${describe(e)}`;
      return 'io-error';
    }
  }
}
