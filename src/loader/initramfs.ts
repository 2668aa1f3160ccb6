/**
 * An initramfs: a "newc" cpio archive (the SVR4 portable format with ASCII hex fields, magic
 * "070701"), gzip-compressed, as the Linux kernel unpacks into its rootfs. Each entry: a 110-byte
 * header, the NUL-terminated name padded to 4 bytes, the data padded to 4 bytes; the archive ends
 * with an entry named TRAILER!!!. Names are stored without a leading '/'.
 *
 * Limits: the archive is built in memory (the host needs about three times its size while it
 * writes and compresses it) and the guest needs RAM for the compressed image and the unpacked
 * files both, so an archive holds at most INITRAMFS_MAX_BYTES (1 GiB, uncompressed, headers
 * included) and INITRAMFS_MAX_ENTRIES entries; adding past either throws TSVMM_LIMIT.
 */
import { gzipSync } from 'node:zlib';
import { TsvmmError } from '../common/errors.js';

export const CPIO_NEWC_MAGIC = '070701';
export const CPIO_TRAILER = 'TRAILER!!!';
export const CPIO_HEADER_SIZE = 110;

/** The largest archive (uncompressed, as toCpio() returns it) an Initramfs builds. */
export const INITRAMFS_MAX_BYTES = 1 << 30;
/** The most entries an Initramfs holds (a Debian initramfs has a few thousand). */
export const INITRAMFS_MAX_ENTRIES = 1 << 20;

/** st_mode file type bits. */
export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

export type InitramfsEntry =
  | { kind: 'dir'; path: string; mode: number }
  | { kind: 'file'; path: string; mode: number; data: Uint8Array }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'char' | 'block'; path: string; mode: number; major: number; minor: number };

/** Normalizes '/a//b/' to 'a/b'; rejects '.', '..' and empty paths. */
export function normalizeArchivePath(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `initramfs path '${path}' is empty or climbs out with '..'`);
  return parts.join('/');
}

/**
 * Builds an initramfs. Entries keep insertion order; adding a path again replaces the earlier entry
 * in place. Parent directories are created (0755) when missing, before their children.
 */
export class Initramfs {
  private readonly entries = new Map<string, InitramfsEntry>();
  /** What toCpio() returns would be this long: every entry and the trailer. */
  private bytes = recordBytes(CPIO_TRAILER, 0);

  /** Modification time written into every header (seconds); 0 keeps archives reproducible. */
  constructor(private readonly mtime = 0) {}

  get size(): number {
    return this.entries.size;
  }

  /** The length of the uncompressed archive (toCpio()). */
  get byteLength(): number {
    return this.bytes;
  }

  /** How many more bytes of archive can be added (INITRAMFS_MAX_BYTES - byteLength). */
  get room(): number {
    return INITRAMFS_MAX_BYTES - this.bytes;
  }

  has(path: string): boolean {
    return this.entries.has(normalizeArchivePath(path));
  }

  list(): InitramfsEntry[] {
    return [...this.entries.values()];
  }

  addDir(path: string, mode = 0o755): this {
    return this.put({ kind: 'dir', path: normalizeArchivePath(path), mode });
  }

  addFile(path: string, data: Uint8Array | string, mode = 0o644): this {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    return this.put({ kind: 'file', path: normalizeArchivePath(path), mode, data: bytes });
  }

  addSymlink(path: string, target: string): this {
    if (target === '' || target.includes('\0')) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `symlink target '${target}' for ${path} is empty or has a NUL`);
    return this.put({ kind: 'symlink', path: normalizeArchivePath(path), target });
  }

  addCharDevice(path: string, major: number, minor: number, mode = 0o600): this {
    return this.put({ kind: 'char', path: normalizeArchivePath(path), mode, major, minor });
  }

  addBlockDevice(path: string, major: number, minor: number, mode = 0o600): this {
    return this.put({ kind: 'block', path: normalizeArchivePath(path), mode, major, minor });
  }

  private put(e: InitramfsEntry): this {
    if (e.kind !== 'symlink' && (!Number.isInteger(e.mode) || e.mode < 0 || e.mode > 0o7777)) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `initramfs mode ${e.mode.toString(8)} for ${e.path} is not a permission mode (0..07777)`);
    }
    const slash = e.path.lastIndexOf('/');
    if (slash > 0) {
      const parent = e.path.slice(0, slash);
      const existing = this.entries.get(parent);
      if (!existing) this.addDir(parent);
      else if (existing.kind !== 'dir') throw new TsvmmError('TSVMM_BAD_ARGUMENT', `initramfs path ${e.path}: parent ${parent} is a ${existing.kind}`);
    }
    const replaced = this.entries.get(e.path);
    const bytes = this.bytes + entryBytes(e) - (replaced ? entryBytes(replaced) : 0);
    if (bytes > INITRAMFS_MAX_BYTES) {
      throw new TsvmmError('TSVMM_LIMIT', `initramfs entry ${e.path} would make the archive ${bytes} bytes, above its limit of ${INITRAMFS_MAX_BYTES} (1 GiB)`);
    }
    if (!replaced && this.entries.size >= INITRAMFS_MAX_ENTRIES) {
      throw new TsvmmError('TSVMM_LIMIT', `initramfs entry ${e.path} would be entry ${this.entries.size + 1}, above the limit of ${INITRAMFS_MAX_ENTRIES}`);
    }
    this.entries.set(e.path, e);
    this.bytes = bytes;
    return this;
  }

  /** The uncompressed newc cpio archive. */
  toCpio(): Uint8Array {
    const chunks: Uint8Array[] = [];
    let total = 0;
    const push = (b: Uint8Array): void => {
      chunks.push(b);
      total += b.length;
    };
    const pad4 = (): void => {
      if (total % 4) push(new Uint8Array(4 - (total % 4)));
    };
    let ino = 1;
    const enc = new TextEncoder();
    const emit = (name: string, mode: number, nlink: number, data: Uint8Array, rdev: [number, number], inode: number): void => {
      const nameBytes = enc.encode(name);
      const fields = [inode, mode, 0, 0, nlink, this.mtime, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length + 1, 0];
      push(enc.encode(CPIO_NEWC_MAGIC + fields.map(hex8).join('')));
      push(nameBytes);
      push(new Uint8Array(1));
      pad4();
      push(data);
      pad4();
    };
    for (const e of this.entries.values()) {
      switch (e.kind) {
        case 'dir':
          emit(e.path, S_IFDIR | e.mode, 2, new Uint8Array(0), [0, 0], ino++);
          break;
        case 'file':
          emit(e.path, S_IFREG | e.mode, 1, e.data, [0, 0], ino++);
          break;
        case 'symlink':
          emit(e.path, S_IFLNK | 0o777, 1, enc.encode(e.target), [0, 0], ino++);
          break;
        case 'char':
        case 'block':
          emit(e.path, (e.kind === 'char' ? S_IFCHR : S_IFBLK) | e.mode, 1, new Uint8Array(0), [e.major, e.minor], ino++);
          break;
      }
    }
    emit(CPIO_TRAILER, 0, 1, new Uint8Array(0), [0, 0], 0);
    const out = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }

  /** The archive, gzip-compressed (what the kernel and `tsvmm initramfs` use). */
  toGzip(level = 6): Uint8Array {
    return new Uint8Array(gzipSync(this.toCpio(), { level }));
  }
}

const align4 = (n: number): number => Math.ceil(n / 4) * 4;

/** The bytes one record takes in the archive: header and name, padded; data, padded. */
function recordBytes(name: string, dataBytes: number): number {
  return align4(CPIO_HEADER_SIZE + Buffer.byteLength(name) + 1) + align4(dataBytes);
}

function entryBytes(e: InitramfsEntry): number {
  switch (e.kind) {
    case 'file': return recordBytes(e.path, e.data.length);
    case 'symlink': return recordBytes(e.path, Buffer.byteLength(e.target));
    default: return recordBytes(e.path, 0);
  }
}

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `cpio header field ${n} does not fit 32 bits`);
  return n.toString(16).toUpperCase().padStart(8, '0');
}

/** The directories, console and mount points every Linux initramfs needs (/dev/console is c 5 1). */
export function addBaseLayout(fs: Initramfs): Initramfs {
  for (const d of ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'root', 'run', 'mnt']) fs.addDir(d);
  fs.addDir('tmp', 0o1777);
  fs.addCharDevice('dev/console', 5, 1, 0o600);
  fs.addCharDevice('dev/null', 1, 3, 0o666);
  fs.addCharDevice('dev/ttyS0', 4, 64, 0o660);
  return fs;
}

/** Applets linked when `busybox --list-full` cannot be run: enough for a shell-driven /init. */
export const DEFAULT_BUSYBOX_APPLETS: readonly string[] = [
  'bin/sh', 'bin/ash', 'bin/cat', 'bin/echo', 'bin/ls', 'bin/mkdir', 'bin/mount', 'bin/umount', 'bin/uname', 'bin/dmesg',
  'bin/sleep', 'bin/ps', 'bin/rm', 'bin/cp', 'bin/mv', 'bin/ln', 'bin/grep', 'bin/sed', 'bin/mknod', 'bin/sync',
  'bin/true', 'bin/false', 'bin/date', 'bin/hostname', 'bin/dd', 'bin/head', 'bin/stty',
  'sbin/poweroff', 'sbin/reboot', 'sbin/halt', 'sbin/insmod', 'sbin/modprobe', 'sbin/lsmod', 'sbin/ifconfig', 'sbin/switch_root',
  'usr/bin/env', 'usr/bin/wc', 'usr/bin/tail', 'usr/bin/free', 'usr/bin/test', 'usr/bin/[', 'usr/bin/id', 'usr/bin/which',
  'usr/bin/find', 'usr/bin/xargs', 'usr/bin/md5sum', 'usr/bin/seq', 'usr/bin/awk', 'usr/bin/hexdump',
  // What the exec agent (guests/agent/tsvmm-agent.sh) needs beyond the above.
  'bin/base64', 'bin/stat', 'usr/bin/setsid',
];
