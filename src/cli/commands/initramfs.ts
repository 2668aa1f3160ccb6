/**
 * `tsvmm initramfs`: a gzip-compressed newc archive with busybox, the user's init script, kernel
 * modules with their dependencies (--modules, from a module tree: src/loader/kernel-modules.ts),
 * the exec agent and the /init that loads the modules, starts the agent and runs the user's
 * script (src/loader/initramfs-init.ts), and --add trees.
 * Every input is checked and read before the output is written: only regular files, symlinks and
 * directories (a FIFO, a device, a /proc file that cannot be read are errors, not a stack trace),
 * within the archive's size limit (INITRAMFS_MAX_BYTES, checked against each file's size before
 * it is read, and while reading, for files such as /proc's whose size says 0), and never the
 * output itself (same device and inode: -o naming the --init script, busybox, a module or an
 * added file).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, statSync, writeFileSync, type BigIntStats } from 'node:fs';
import { dirname, join } from 'node:path';
import { TsvmmError } from '../../common/errors.js';
import { parseElf, PT_INTERP } from '../../loader/elf.js';
import { findGuestBusybox, findGuestModules } from '../../loader/guest-kernels.js';
import { addBaseLayout, DEFAULT_BUSYBOX_APPLETS, Initramfs, INITRAMFS_MAX_BYTES, INITRAMFS_MAX_ENTRIES, normalizeArchivePath } from '../../loader/initramfs.js';
import { addTsvmmInit, AGENT_GUEST_PATH, AGENT_SCRIPT, UDHCPC_SCRIPT_GUEST_PATH, USER_INIT_GUEST_PATH } from '../../loader/initramfs-init.js';
import { ModuleTree, resolveModules, type ModuleSelection } from '../../loader/kernel-modules.js';
import { parseCommandArgs } from '../args.js';
import type { Command } from '../command.js';

const DEFAULT_BUSYBOX = '/bin/busybox';

export const initramfs: Command = {
  name: 'initramfs',
  summary: 'write a gzip-compressed newc cpio initramfs with busybox and an /init script',
  usage: `usage: tsvmm initramfs --init SCRIPT [--modules NAME[,NAME]...] [--kernel-modules DIR]
                       [--net-dhcp] [--busybox PATH] [--add SRC:DST]... -o FILE

Writes a gzip-compressed newc cpio archive for Linux holding:
  /init            a busybox script that loads the --modules (insmod, in dependency order),
                   with --net-dhcp brings eth0 up with an address from DHCP (busybox udhcpc;
                   with tsvmm run --nic user, passt answers), starts the exec agent in the
                   background, then execs SCRIPT as PID 1
  ${UDHCPC_SCRIPT_GUEST_PATH}  with --net-dhcp: what udhcpc runs to set the address, the
                   MTU, the default route and /etc/resolv.conf it was given
  ${USER_INIT_GUEST_PATH}  SCRIPT, mode 0755
  ${AGENT_GUEST_PATH}  the exec agent (docs/agent-protocol.md): it serves the virtio-console
                   port named org.tsvmm.agent when the guest has one, and exits otherwise
  /lib/modules/RELEASE/...  each module named by --modules (dashes or underscores, comma-separated,
                   the option repeatable) and every module it depends on (its .modinfo's depends=
                   and softdep=), uncompressed, from the module tree DIR (lib/modules/RELEASE of a
                   kernel; default: the Debian kernel scripts/fetch-guest-kernel.sh cached). A
                   module missing from DIR is TSVMM_NO_MODULE; one built for another release than
                   DIR's name, malformed, or in a dependency cycle is TSVMM_BAD_MODULE
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
      modules: { type: 'string', multiple: true },
      'kernel-modules': { type: 'string' },
      'net-dhcp': { type: 'boolean', default: false },
      output: { type: 'string', short: 'o' },
    });
    if (values.init === undefined) throw new TsvmmError('TSVMM_USAGE', '--init SCRIPT is required');
    if (values.output === undefined) throw new TsvmmError('TSVMM_USAGE', '-o FILE is required');
    const adds = (values.add ?? []).map(parseAdd);
    const moduleNames = parseModules(values.modules);
    if (values['kernel-modules'] !== undefined && moduleNames.length === 0) throw new TsvmmError('TSVMM_USAGE', '--kernel-modules DIR needs --modules NAME,...');

    const fs = addBaseLayout(new Initramfs());
    const inputs = new Inputs(fs, values.output);
    const userInit = inputs.readNamed(values.init, '--init');
    const agent = inputs.readNamed(AGENT_SCRIPT, 'the agent script');
    let modules: ModuleSelection | undefined;
    if (moduleNames.length > 0) {
      const dir = values['kernel-modules'] ?? findGuestModules();
      if (dir === undefined) {
        throw new TsvmmError('TSVMM_USAGE', '--modules needs a kernel module tree: pass --kernel-modules DIR (lib/modules/RELEASE), or run scripts/fetch-guest-kernel.sh');
      }
      modules = resolveModules(ModuleTree.open(dir), moduleNames);
      for (const m of modules.modules) inputs.checkNotOutput(m.source, `module ${m.name}`);
    }
    addTsvmmInit(fs, userInit, agent, modules, { netDhcp: values['net-dhcp'] });

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
    const withModules = modules ? `, ${modules.modules.length} kernel modules (${modules.release})` : '';
    let notes = '';
    for (const { module, softdep } of modules?.unresolvedSoftdeps ?? []) {
      notes += `note: ${module} asks for ${softdep} first (softdep), which names no module file; if the guest needs it, add the module that provides it to --modules\n`;
    }
    await io.out(
      `wrote ${values.output}: ${fs.size} entries, ${linked} busybox applets (${applets.source})${withModules}, ${gz.length} bytes gzip-compressed\n${notes}`,
    );
    return 0;
  },
};

/** --modules values: comma-separated names, the option repeatable; empty names are a usage error. */
function parseModules(values: readonly string[] | undefined): string[] {
  const names: string[] = [];
  for (const v of values ?? []) {
    for (const name of v.split(',')) {
      if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new TsvmmError('TSVMM_USAGE', `--modules '${v}': '${name}' is not a module name (letters, digits, '-' and '_')`);
      names.push(name);
    }
  }
  return names;
}

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

  /** Refuses `path` (`what` names it) when it is the output file. */
  checkNotOutput(path: string, what: string): void {
    if (!this.output) return;
    let st: BigIntStats;
    try {
      st = statSync(path, { bigint: true });
    } catch {
      return; // not there: not the output either
    }
    if (st.dev === this.output.dev && st.ino === this.output.ino) {
      throw new TsvmmError('TSVMM_USAGE', `-o ${this.outputPath} is the same file as ${what} (${path}): writing it would destroy an input`);
    }
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
