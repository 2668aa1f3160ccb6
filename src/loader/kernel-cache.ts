/**
 * A per-user cache of decompressed kernels, so that only the first `--pvh` boot of a bzImage
 * pays for inflating its payload (about 2 s for Debian's xz kernel) and later boots read the
 * vmlinux back.
 *
 * Where: $TSVMM_CACHE_DIR, else $XDG_CACHE_HOME/tsvmm, else ~/.cache/tsvmm (created 0700).
 * Clearing it is removing that directory.
 *
 * An entry is keyed by the sha256 of the compressed payload and of the decoder's identity (a
 * decoder fix changes the identity, so nothing it decoded before is served again). One file per
 * entry, `<key>.vmlinux`: a 48-byte header (magic, body length, sha256 of the body) and the body.
 * It is written to a temporary file and renamed into place, so a reader sees a whole entry or
 * none. On read the length and the sha256 are checked again: an entry that fails is removed and
 * the kernel decoded anew (and stored again); a cached kernel is never booted unverified.
 *
 * The cache is never trusted across users: the directory must belong to this user and grant
 * nothing to group or others, and each entry must be a regular file of this user; otherwise the
 * cache is not used (and the reason logged once). It is bounded: after each store, the least
 * recently used entries are removed beyond `maxEntries` entries or `maxBytes` bytes (defaults 4
 * and 512 MiB: a few distribution kernels). The cache only saves time: every failure of it
 * (a read-only disk, a full disk) is logged and the boot goes on without it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, statSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The environment variable that names the cache directory. */
export const KERNEL_CACHE_ENV = 'TSVMM_CACHE_DIR';

export const KERNEL_CACHE_DEFAULTS = { maxEntries: 4, maxBytes: 512 * 1024 * 1024 } as const;

const MAGIC = Buffer.from('TSVMMKC1', 'latin1');
/** magic (8), body length (u64 LE), sha256 of the body (32). */
const HEADER_BYTES = 48;
const ENTRY_SUFFIX = '.vmlinux';
const ENTRY_NAME = /^[0-9a-f]{64}\.vmlinux$/;
const TEMP_NAME = /^\.[0-9a-f]{64}\..*\.tmp$/;
/** A temporary file older than this was left by a process that died while writing it. */
const STALE_TEMP_MS = 60 * 60 * 1000;

/** The cache directory this user's tsvmm uses by default. */
export function defaultKernelCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env[KERNEL_CACHE_ENV];
  if (explicit) return explicit;
  const xdg = env['XDG_CACHE_HOME'];
  // XDG: a relative path is invalid and to be ignored.
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'tsvmm');
}

export interface KernelCacheOptions {
  maxEntries?: number;
  maxBytes?: number;
  /** Where the cache's problems are reported (an unusable directory, a corrupt entry). */
  log?: (message: string) => void;
}

export interface KernelCacheStats {
  /** Lookups answered from the cache. */
  hits: number;
  /** Lookups that found no entry. */
  misses: number;
  /** Entries found corrupt or foreign, removed and not used. */
  rejected: number;
  stored: number;
  evicted: number;
}

const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest();

export class KernelCache {
  readonly stats: KernelCacheStats = { hits: 0, misses: 0, rejected: 0, stored: 0, evicted: 0 };
  readonly maxEntries: number;
  readonly maxBytes: number;
  private readonly log: (message: string) => void;
  /** undefined until first used; then whether the directory passed the checks. */
  private usable: boolean | undefined;

  constructor(readonly dir: string, options: KernelCacheOptions = {}) {
    this.maxEntries = options.maxEntries ?? KERNEL_CACHE_DEFAULTS.maxEntries;
    this.maxBytes = options.maxBytes ?? KERNEL_CACHE_DEFAULTS.maxBytes;
    this.log = options.log ?? (() => {});
  }

  /** The key of what `decoder` makes of `payload`. */
  static key(decoder: string, payload: Uint8Array): string {
    return createHash('sha256').update(decoder).update('\0').update(payload).digest('hex');
  }

  /** The verified entry under `key`, no longer than `maxBytes`, or undefined. */
  lookup(key: string, maxBytes: number): Uint8Array | undefined {
    if (!this.ready()) return undefined;
    const path = this.entryPath(key);
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') this.stats.misses++;
      else this.reject(path, (e as Error).message);
      return undefined;
    }
    let why: string;
    try {
      const st = fstatSync(fd);
      const header = Buffer.alloc(HEADER_BYTES);
      if (!st.isFile()) why = 'not a regular file';
      else if (!ownedByUs(st.uid)) why = `owned by user ${st.uid}`;
      else if (st.size < HEADER_BYTES || readFully(fd, header, 0) !== HEADER_BYTES) why = 'truncated header';
      else if (!header.subarray(0, 8).equals(MAGIC)) why = 'bad magic';
      else {
        const length = Number(header.readBigUInt64LE(8));
        if (length > maxBytes) why = `${length} bytes, more than the ${maxBytes} expected`;
        else if (st.size !== HEADER_BYTES + length) why = `file of ${st.size} bytes for a ${length}-byte entry`;
        else {
          const body = new Uint8Array(length);
          if (readFully(fd, body, HEADER_BYTES) !== length) why = 'short read';
          else if (!sha256(body).equals(header.subarray(16, 48))) why = 'sha256 mismatch';
          else {
            this.stats.hits++;
            touch(path);
            return body;
          }
        }
      }
    } catch (e) {
      why = (e as Error).message;
    } finally {
      closeSync(fd);
    }
    this.reject(path, why);
    return undefined;
  }

  /** Stores `data` under `key` (atomically), then trims the cache to its bounds. */
  store(key: string, data: Uint8Array): void {
    if (!this.ready() || HEADER_BYTES + data.length > this.maxBytes) return;
    const temp = join(this.dir, `.${key}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    const header = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(header, 0);
    header.writeBigUInt64LE(BigInt(data.length), 8);
    sha256(data).copy(header, 16);
    try {
      const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      try {
        writeFully(fd, header);
        writeFully(fd, data);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, this.entryPath(key));
      this.stats.stored++;
    } catch (e) {
      this.log(`kernel cache: cannot store in ${this.dir}: ${(e as Error).message}`);
      tryUnlink(temp);
      return;
    }
    this.trim();
  }

  private entryPath(key: string): string {
    if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`kernel cache key ${key} is not a sha256`);
    return join(this.dir, key + ENTRY_SUFFIX);
  }

  private reject(path: string, why: string): void {
    this.stats.rejected++;
    this.log(`kernel cache: ${path} is not used (${why}); decompressing again`);
    tryUnlink(path);
  }

  /** Creates the directory (0700) and checks that it is this user's alone. */
  private ready(): boolean {
    if (this.usable !== undefined) return this.usable;
    let why: string | undefined;
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const st = statSync(this.dir);
      if (!st.isDirectory()) why = 'not a directory';
      else if (!ownedByUs(st.uid)) why = `owned by user ${st.uid}`;
      else if (st.mode & 0o077) why = `mode ${(st.mode & 0o777).toString(8)} lets other users in (chmod 700 it)`;
    } catch (e) {
      why = (e as Error).message;
    }
    this.usable = why === undefined;
    if (why !== undefined) this.log(`kernel cache: ${this.dir} is not used: ${why}`);
    return this.usable;
  }

  /** Removes the least recently used entries beyond the bounds, and stale temporary files. */
  private trim(): void {
    try {
      const now = Date.now();
      const entries: { path: string; size: number; mtime: number }[] = [];
      for (const name of readdirSync(this.dir)) {
        const path = join(this.dir, name);
        if (ENTRY_NAME.test(name)) {
          const st = statSync(path);
          entries.push({ path, size: st.size, mtime: st.mtimeMs });
        } else if (TEMP_NAME.test(name) && now - statSync(path).mtimeMs > STALE_TEMP_MS) {
          tryUnlink(path);
        }
      }
      entries.sort((a, b) => b.mtime - a.mtime);
      let bytes = 0;
      entries.forEach((e, i) => {
        bytes += e.size;
        if (i >= this.maxEntries || bytes > this.maxBytes) {
          tryUnlink(e.path);
          this.stats.evicted++;
        }
      });
    } catch (e) {
      this.log(`kernel cache: cannot trim ${this.dir}: ${(e as Error).message}`);
    }
  }
}

function ownedByUs(uid: number): boolean {
  return process.getuid === undefined || uid === process.getuid();
}

function readFully(fd: number, into: Uint8Array, position: number): number {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function writeFully(fd: number, data: Uint8Array): void {
  for (let done = 0; done < data.length;) done += writeSync(fd, data, done, data.length - done);
}

/** Marks an entry as just used (least-recently-used order); a failure only costs that order. */
function touch(path: string): void {
  try {
    const now = new Date();
    utimesSync(path, now, now);
  } catch {
    // the entry stays where it was in the order
  }
}

function tryUnlink(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone, or not ours to remove: it is not used either way
  }
}
