import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TsvmmError } from '../../common/errors.js';
import { parseElf, PT_INTERP } from '../../loader/elf.js';
import { findGuestBusybox } from '../../loader/guest-kernels.js';
import { addBaseLayout, DEFAULT_BUSYBOX_APPLETS, Initramfs, normalizeArchivePath } from '../../loader/initramfs.js';
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
    fs.addFile('init', readInput(values.init, '--init'), 0o755);

    const busybox = resolveBusybox(values.busybox);
    const busyboxBytes = readInput(busybox, '--busybox');
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

    for (const { src, dst } of adds) addTree(fs, src, dst);

    const gz = fs.toGzip();
    try {
      writeFileSync(values.output, gz);
    } catch (e) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `cannot write ${values.output}: ${(e as Error).message}`);
    }
    io.out(
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

function readInput(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new TsvmmError('TSVMM_USAGE', `${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
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

/** Adds SRC (a file, symlink or directory, recursively) at DST, keeping permission bits. */
function addTree(fs: Initramfs, src: string, dst: string): void {
  let st;
  try {
    st = lstatSync(src);
  } catch (e) {
    throw new TsvmmError('TSVMM_USAGE', `--add ${src}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const mode = st.mode & 0o7777;
  if (st.isSymbolicLink()) fs.addSymlink(dst, readlinkSync(src));
  else if (st.isFile()) fs.addFile(dst, new Uint8Array(readFileSync(src)), mode);
  else if (st.isDirectory()) {
    fs.addDir(dst, mode);
    for (const name of readdirSync(src).sort()) addTree(fs, join(src, name), `${dst}/${name}`);
  } else throw new TsvmmError('TSVMM_BAD_ARGUMENT', `--add ${src}: only files, symlinks and directories can be added`);
}
