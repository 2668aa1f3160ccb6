/**
 * The kernel and initrd files a user names. They are untrusted: each must be a regular file (a
 * device such as /dev/zero never ends, opening a FIFO blocks until a writer comes, a directory
 * has no bytes to load) no larger than the guest RAM the loaders may fill. VirtualMachine.create
 * checks the path with stat before any thread starts; the board's reader checks again with fstat
 * on the descriptor it reads (the path may have changed in between), which it opens without
 * blocking, and reads no more than that size.
 */
import { accessSync, closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { TsvmmError } from '../common/errors.js';
import { MMIO_HOLE_START } from './layout.js';

/** The most bytes of one image a machine with `memoryBytes` of RAM can load: its RAM below the 32-bit hole. */
export function maxImageBytes(memoryBytes: number): number {
  return Math.min(memoryBytes, MMIO_HOLE_START);
}

function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'of an unknown type';
}

function checkStats(st: Stats, path: string, what: string, maxBytes: number): void {
  if (!st.isFile()) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `the ${what} ${path} is ${fileKind(st)}, not a regular file`, { path });
  if (st.size > maxBytes) {
    throw new TsvmmError('TSVMM_LIMIT', `the ${what} ${path} is ${st.size} bytes, more than the ${maxBytes} bytes of guest RAM`, { path, size: st.size, maxBytes });
  }
}

function unreadable(path: string, what: string, e: unknown): TsvmmError {
  return new TsvmmError('TSVMM_BAD_KERNEL', `the ${what} ${path} does not exist or is not readable: ${(e as Error).message}`, { path });
}

/** Checks, without opening it, that `path` is a readable regular file of at most `maxBytes`. */
export function checkImageFile(path: string, what: string, maxBytes: number): void {
  let st: Stats;
  try {
    st = statSync(path);
    accessSync(path, constants.R_OK);
  } catch (e) {
    throw unreadable(path, what, e);
  }
  checkStats(st, path, what, maxBytes);
}

/** Reads a regular file of at most `maxBytes`; anything else is refused without blocking. */
export function readImageFile(path: string, what: string, maxBytes: number): Uint8Array {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO returns at once (fstat then refuses it).
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    throw unreadable(path, what, e);
  }
  try {
    const st = fstatSync(fd);
    checkStats(st, path, what, maxBytes);
    const bytes = new Uint8Array(st.size);
    for (let done = 0; done < bytes.length; ) {
      const n = readSync(fd, bytes, done, bytes.length - done, done);
      if (n === 0) throw new TsvmmError('TSVMM_BAD_KERNEL', `the ${what} ${path} shrank while it was read (${done} of ${st.size} bytes)`, { path });
      done += n;
    }
    return bytes;
  } catch (e) {
    throw e instanceof TsvmmError ? e : unreadable(path, what, e);
  } finally {
    closeSync(fd);
  }
}
