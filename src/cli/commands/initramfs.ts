/**
 * `tsvmm initramfs`: a gzip-compressed newc archive with busybox, an /init script and --add trees.
 * Every input is checked and read before the output is written: only regular files, symlinks and
 * directories (a FIFO, a device, a /proc file that cannot be read are errors, not a stack trace),
 * within the archive's size limit (INITRAMFS_MAX_BYTES, checked against each file's size before
 * it is read, and while reading, for files such as /proc's whose size says 0), and never the
 * output itself (same device and inode: -o naming the --init script, busybox or an added file).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, statSync, writeFileSync, type BigIntStats } from 'node:fs';
import { dirname, join } from 'node:path';
import { TsvmmError } from '../../common/errors.js';
import { parseElf, PT_INTERP } from '../../loader/elf.js';
import { findGuestBusybox } from '../../loader/guest-kernels.js';
import { addBaseLayout, DEFAULT_BUSYBOX_APPLETS, Initramfs, INITRAMFS_MAX_BYTES, INITRAMFS_MAX_ENTRIES, normalizeArchivePath } from '../../loader/initramfs.js';
import { parseCommandArgs } from '../args.js';
import type { Command } from '../command.js';

const DEFAULT_BUSYBOX = '/bin/busybox';

export const initramfs: Command = {
  name: 'initramfs',
  summary: 'write a gzip-compressed newc cpio initramfs with busybox and an /init script',
  usage: `usage: tsvmm initramfs --init SCRIPT [--busybox PATH] [--add SRC:DST]... -o FILE

Writes a gzip-compressed newc cpio archive for Linux holding:
  /init            SCRIPT, mode 0755 (the kernel runs it as the first process)
  /bin/busybox     a statically linked busybox (default ${DEFAULT_BUSYBOX}, Debian's busybox-static,
                   else the one scripts/fetch-guest-kernel.sh cached), with a symlink per applet
                   it lists ('busybox --list-full'), or a fixed useful set if it cannot be run
  /dev/console (c 5 1), /dev/null, /dev/ttyS0, and /proc /sys /tmp /dev /etc /root ...
  DST              for each --add SRC:DST, the file, symlink or directory tree SRC
                   (modes kept; later --add entries replace earlier ones)

Inputs are regular files, symlinks and directories; FILE must not be one of them. The archive
holds at most ${INITRAMFS_MAX_BYTES} bytes (1 GiB) uncompressed and ${INITRAMFS_MAX_ENTRIES} entries.
Nothing is written unless every input could be read.
`,
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, {
      init: { type: 'string' },
      busybox: { type: 'string' },
      add: { type: 'string', multiple: true },
      output: { type: 'string', short: 'o' },
    });
    if (values.init === undefined) throw new TsvmmError('TSVMM_USAGE', '--init SCRIPT is required');
    if (values.output === undefined) throw new TsvmmError('TSVMM_USAGE', '-o FILE is required');
    const adds = (values.add ?? []).map(parseAdd);

    const fs = addBaseLayout(new Initramfs());
    const inputs = new Inputs(fs, values.output);
    fs.addFile('init', inputs.readNamed(values.init, '--init'), 0o755);

    const busybox = resolveBusybox(values.busybox);
    const busyboxBytes = inputs.readNamed(busybox, '--busybox');
    requireStatic(busyboxBytes, busybox);
    fs.addFile('bin/busybox', busyboxBytes, 0o755);
    const applets = listApplets(busybox);
    let linked = 0;
    for (const applet of applets.paths) {
      const path = normalizeArchivePath(applet);
      if (fs.has(path)) continue;
      fs.addSymlink(path, '/bin/busybox');
      linked++;
    }

    for (const { src, dst } of adds) inputs.addTree(src, dst, src);

    const gz = fs.toGzip();
    try {
      writeFileSync(values.output, gz);
    } catch (e) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `cannot write ${values.output}: ${(e as Error).message}`);
    }
    await io.out(
      `wrote ${values.output}: ${fs.size} entries, ${linked} busybox applets (${applets.source}), ${gz.length} bytes gzip-compressed\n`,
    );
    return 0;
  },
};

function parseAdd(spec: string): { src: string; dst: string } {
  const colon = spec.lastIndexOf(':');
  if (colon <= 0 || colon === spec.length - 1) throw new TsvmmError('TSVMM_USAGE', `--add '${spec}' is not SRC:DST`);
  return { src: spec.slice(0, colon), dst: spec.slice(colon + 1) };
}

function resolveBusybox(given: string | undefined): string {
  if (given !== undefined) return given;
  if (existsSync(DEFAULT_BUSYBOX)) return DEFAULT_BUSYBOX;
  const cached = findGuestBusybox();
  if (cached) return cached;
  throw new TsvmmError(
    'TSVMM_TOOL_MISSING',
    `no busybox at ${DEFAULT_BUSYBOX} and none cached: apt-get install busybox-static, run scripts/fetch-guest-kernel.sh, or pass --busybox PATH`,
  );
}

/** A dynamically linked busybox would fail in the initramfs (no loader, no libc): refuse it. */
function requireStatic(bytes: Uint8Array, path: string): void {
  let elf;
  try {
    elf = parseElf(bytes);
  } catch (e) {
    throw new TsvmmError('TSVMM_BAD_ARGUMENT', `busybox ${path} is not an x86 executable: ${(e as Error).message}`);
  }
  if (elf.programHeaders.some((p) => p.type === PT_INTERP)) {
    throw new TsvmmError('TSVMM_BAD_ARGUMENT', `busybox ${path} is dynamically linked (it has PT_INTERP); use a static one (Debian's busybox-static)`);
  }
}

function listApplets(busybox: string): { paths: readonly string[]; source: string } {
  const r = spawnSync(busybox, ['--list-full'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] });
  const paths = r.status === 0 ? r.stdout.split('\n').map((s) => s.trim()).filter((s) => s !== '' && !s.includes('..')) : [];
  return paths.length > 0 ? { paths, source: 'from busybox --list-full' } : { paths: DEFAULT_BUSYBOX_APPLETS, source: 'default set' };
}

const errno = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/** What a stat says a path is, for messages. */
function kindOf(st: BigIntStats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSymbolicLink()) return 'a symlink';
  return 'a regular file';
}

/**
 * Reads the inputs into the archive: regular files only, none of them the output, within the
 * room left in the archive (see the file header).
 */
class Inputs {
  /** The output's device and inode, when it exists already. */
  private readonly output: { dev: bigint; ino: bigint } | undefined;

  constructor(private readonly fs: Initramfs, private readonly outputPath: string) {
    let st: BigIntStats;
    try {
      st = statSync(outputPath, { bigint: true });
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw new TsvmmError('TSVMM_BAD_ARGUMENT', `cannot write ${outputPath}: ${errno(e)}`);
      const dir = dirname(outputPath);
      if (!existsSync(dir)) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `cannot write ${outputPath}: ${dir} does not exist`);
      this.output = undefined;
      return;
    }
    if (st.isDirectory()) throw new TsvmmError('TSVMM_USAGE', `-o ${outputPath} is a directory; want a file name`);
    this.output = { dev: st.dev, ino: st.ino };
  }

  /** An input named on the command line (--init, --busybox): a regular file, symlinks followed. */
  readNamed(path: string, what: string): Uint8Array {
    let st: BigIntStats;
    try {
      st = statSync(path, { bigint: true });
    } catch (e) {
      throw new TsvmmError('TSVMM_USAGE', `${what} ${path}: ${errno(e)}`);
    }
    if (!st.isFile()) throw new TsvmmError('TSVMM_USAGE', `${what} ${path} is ${kindOf(st)}, not a regular file`);
    return this.read(path, st, `${what} ${path}`);
  }

  /** Adds SRC (a file, symlink or directory, recursively) at DST, keeping permission bits; `top` is --add's SRC. */
  addTree(src: string, dst: string, top: string): void {
    let st: BigIntStats;
    try {
      st = lstatSync(src, { bigint: true });
    } catch (e) {
      if (src === top) throw new TsvmmError('TSVMM_USAGE', `--add ${src}: ${errno(e)}`);
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `cannot read ${src} (in --add ${top}): ${errno(e)}`);
    }
    const mode = Number(st.mode & 0o7777n);
    if (st.isSymbolicLink()) {
      let target: string;
      try {
        target = readlinkSync(src);
      } catch (e) {
        throw new TsvmmError('TSVMM_BAD_ARGUMENT', `cannot read the symlink ${src} (in --add ${top}): ${errno(e)}`);
      }
      this.fs.addSymlink(dst, target);
    } else if (st.isFile()) {
      this.fs.addFile(dst, this.read(src, st, src === top ? `--add ${src}` : `${src} (in --add ${top})`), mode);
    } else if (st.isDirectory()) {
      let names: string[];
      try {
        names = readdirSync(src).sort();
      } catch (e) {
        throw new TsvmmError('TSVMM_BAD_ARGUMENT', `cannot read the directory ${src} (in --add ${top}): ${errno(e)}`);
      }
      this.fs.addDir(dst, mode);
      for (const name of names) this.addTree(join(src, name), `${dst}/${name}`, top);
    } else {
      const where = src === top ? `--add ${src}` : `${src} (in --add ${top})`;
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `${where} is ${kindOf(st)}; only regular files, symlinks and directories can be added`);
    }
  }

  /**
   * The bytes of the regular file `path` (stat `st`), read only if it is not the output and fits
   * the archive; `where` names it in messages (`--init init.sh`, `a/b (in --add a)`).
   */
  private read(path: string, st: BigIntStats, where: string): Uint8Array {
    if (this.output && st.dev === this.output.dev && st.ino === this.output.ino) {
      throw new TsvmmError('TSVMM_USAGE', `-o ${this.outputPath} is the same file as ${where}: writing it would destroy an input`);
    }
    const room = this.fs.room;
    const tooLarge = (size: string): TsvmmError => new TsvmmError('TSVMM_LIMIT',
      `${where} is ${size} bytes: an initramfs holds at most ${INITRAMFS_MAX_BYTES} bytes (1 GiB), and ${room} are left`);
    if (st.size > BigInt(room)) throw tooLarge(String(st.size));
    // Read to the end, not to st.size: /proc and /sys files say 0 and have more, or less.
    let buf = new Uint8Array(Math.min(room + 1, Math.max(Number(st.size) + 1, 1 << 16)));
    let length = 0;
    let fd: number | undefined;
    try {
      fd = openSync(path, 'r');
      for (;;) {
        if (length === buf.length) {
          if (length > room) throw tooLarge(`more than ${room}`);
          const bigger = new Uint8Array(Math.min(room + 1, buf.length * 2));
          bigger.set(buf);
          buf = bigger;
        }
        const n = readSync(fd, buf, length, buf.length - length, null);
        if (n === 0) break;
        length += n;
      }
    } catch (e) {
      if (e instanceof TsvmmError) throw e;
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `cannot read ${where}: ${errno(e)}`);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    return buf.subarray(0, length);
  }
}
