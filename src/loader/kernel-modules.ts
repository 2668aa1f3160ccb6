/**
 * Linux kernel modules for an initramfs, taken from a kernel's module tree (lib/modules/<release>/
 * of a kernel package) without depmod's indexes: Debian's kernel package ships no modules.dep, and
 * each module names what it needs in its own .modinfo section (NUL-separated key=value strings:
 * `depends=virtio,virtio_ring`, `vermagic=6.1.0-57-amd64 SMP ...`, `softdep=pre: crypto-crc32c`).
 *
 * resolveModules() takes module names (dashes and underscores alike, as modprobe does), finds each
 * in the tree (`.ko`, or compressed `.ko.xz` / `.ko.gz`, decompressed here so that busybox insmod
 * can load them), reads its .modinfo through the ELF section headers and returns them, and what
 * they depend on, in an order where every module follows its dependencies. A module is refused
 * when it is missing (TSVMM_NO_MODULE, also for a missing dependency) or is not a module of this
 * tree's kernel (TSVMM_BAD_MODULE: not an x86-64 relocatable ELF, no .modinfo, a vermagic naming
 * another release than the tree's directory name, a dependency cycle or chain deeper than
 * MODULE_MAX_DEPTH, a file larger than MODULE_MAX_BYTES). Soft dependencies (`softdep=pre:`/
 * `post:`) that name modules are loaded before / after; those that are aliases (crypto-crc32c)
 * are returned as unresolved, since resolving aliases needs every module's modinfo or depmod's
 * modules.alias. Work is bounded: the tree walk (MODULE_TREE_MAX_ENTRIES entries, directories
 * MODULE_TREE_MAX_DEPTH deep, symlinked directories not followed), the modules selected
 * (MODULE_MAX_COUNT) and their bytes (INITRAMFS_MAX_BYTES in all).
 */
import { closeSync, openSync, readdirSync, readSync, realpathSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { TsvmmError } from '../common/errors.js';
import { EM_X86_64, ET_REL, parseElfSections } from './elf.js';
import { INITRAMFS_MAX_BYTES } from './initramfs.js';
import { xzDecompress } from './xz.js';

/** The largest module file, and the largest decompressed module (Debian 6.1's largest, amdgpu, is 19 MB). */
export const MODULE_MAX_BYTES = 64 << 20;
/** The most modules one resolution selects (Debian's kernel has about 4000 in all). */
export const MODULE_MAX_COUNT = 512;
/** The longest dependency chain (Debian's longest is about 10). */
export const MODULE_MAX_DEPTH = 32;
/** The largest .modinfo section (ext4's is 2 KiB; drivers with many device aliases reach tens of KiB). */
export const MODINFO_MAX_BYTES = 1 << 20;
/** The most directory entries the tree walk visits. */
export const MODULE_TREE_MAX_ENTRIES = 200_000;
/** The deepest directory nesting the tree walk enters (Debian's: kernel/drivers/net/ethernet/x/y). */
export const MODULE_TREE_MAX_DEPTH = 16;

/** Module files by suffix: how to turn their bytes into the ELF module. */
const MODULE_SUFFIXES = ['.ko', '.ko.xz', '.ko.gz', '.ko.zst'] as const;
const MODULE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** A module's canonical name: what modprobe and the kernel use (dashes become underscores). */
export function moduleName(name: string): string {
  return name.replace(/-/g, '_');
}

export interface ModuleInfo {
  /** `name=` (absent in modules older than 4.x). */
  name: string | undefined;
  /** `vermagic=`: the kernel release, then its build options. */
  vermagic: string | undefined;
  /** `depends=`: canonical names. */
  depends: string[];
  /** `softdep=pre:` names (modules or aliases). */
  softdepPre: string[];
  /** `softdep=post:` names. */
  softdepPost: string[];
}

function badModule(message: string, detail?: Record<string, unknown>): TsvmmError {
  return new TsvmmError('TSVMM_BAD_MODULE', message, detail);
}

/**
 * The .modinfo fields of a module's ELF image. Malformed ELF (truncated, section headers outside
 * the file, not x86-64, not relocatable) and a missing .modinfo are TSVMM_BAD_MODULE naming `what`.
 */
export function parseModinfo(ko: Uint8Array, what = 'module'): ModuleInfo {
  let elf;
  try {
    elf = parseElfSections(ko);
  } catch (e) {
    if (e instanceof TsvmmError) throw badModule(`${what}: ${e.message}`);
    throw e;
  }
  if (elf.type !== ET_REL || elf.machine !== EM_X86_64 || elf.elfClass !== 64) {
    throw badModule(`${what} is not an x86-64 kernel module (ELF class ${elf.elfClass}, type ${elf.type}, machine ${elf.machine}; want 64, ET_REL ${ET_REL}, EM_X86_64 ${EM_X86_64})`);
  }
  const section = elf.sections.find((s) => s.name === '.modinfo');
  if (!section) throw badModule(`${what} has no .modinfo section: not a kernel module`);
  if (section.size > MODINFO_MAX_BYTES) throw badModule(`${what}: its .modinfo section is ${section.size} bytes, more than ${MODINFO_MAX_BYTES}`);
  const info: ModuleInfo = { name: undefined, vermagic: undefined, depends: [], softdepPre: [], softdepPost: [] };
  const text = new TextDecoder('latin1').decode(ko.subarray(section.offset, section.offset + section.size));
  for (const entry of text.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const key = entry.slice(0, eq);
    const value = entry.slice(eq + 1);
    if (key === 'name') info.name = value;
    else if (key === 'vermagic') info.vermagic = value;
    else if (key === 'depends') info.depends.push(...value.split(',').filter((d) => d !== '').map(moduleName));
    else if (key === 'softdep') {
      // "pre: a b post: c": names after pre: load before the module, after post: after it.
      let list: string[] | undefined;
      for (const word of value.split(/\s+/)) {
        if (word === 'pre:') list = info.softdepPre;
        else if (word === 'post:') list = info.softdepPost;
        else if (word !== '' && list) list.push(word);
      }
    }
  }
  return info;
}

/** The kernel release a vermagic names: its first word. */
export function vermagicRelease(vermagic: string): string {
  return vermagic.trim().split(/\s+/)[0] ?? '';
}

/**
 * The modules of one kernel: lib/modules/<release>/ of its package. The release is the directory's
 * own name (symlinks resolved), as the kernel's `uname -r` and modprobe's layout have it.
 */
export class ModuleTree {
  /** Canonical name -> paths relative to the tree (more than one is an ambiguity). */
  private readonly files = new Map<string, string[]>();

  private constructor(readonly dir: string, readonly release: string) {}

  static open(dir: string): ModuleTree {
    let real: string;
    try {
      real = realpathSync(dir);
      if (!statSync(real).isDirectory()) throw new Error('not a directory');
    } catch (e) {
      throw new TsvmmError('TSVMM_NO_MODULE', `no kernel module tree at ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): want a lib/modules/<release> directory`);
    }
    const tree = new ModuleTree(real, basename(real));
    tree.walk(real, 0, { entries: 0 });
    return tree;
  }

  /** Every module's canonical name. */
  names(): string[] {
    return [...this.files.keys()].sort();
  }

  /** The path (relative to the tree) of module `name`, or undefined; two files of one name are refused. */
  find(name: string): string | undefined {
    const paths = this.files.get(moduleName(name));
    if (paths && paths.length > 1) throw badModule(`module ${name} is in ${this.dir} more than once: ${paths.join(', ')}`);
    return paths?.[0];
  }

  private walk(dir: string, depth: number, count: { entries: number }): void {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      throw new TsvmmError('TSVMM_NO_MODULE', `cannot read ${dir} in the module tree ${this.dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (++count.entries > MODULE_TREE_MAX_ENTRIES) throw new TsvmmError('TSVMM_LIMIT', `the module tree ${this.dir} has more than ${MODULE_TREE_MAX_ENTRIES} entries`);
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        if (depth + 1 > MODULE_TREE_MAX_DEPTH) throw new TsvmmError('TSVMM_LIMIT', `the module tree ${this.dir} nests deeper than ${MODULE_TREE_MAX_DEPTH} directories at ${path}`);
        this.walk(path, depth + 1, count);
        continue;
      }
      const suffix = MODULE_SUFFIXES.find((s) => e.name.endsWith(s));
      if (!suffix || !(e.isFile() || e.isSymbolicLink())) continue;
      const name = moduleName(e.name.slice(0, -suffix.length));
      const list = this.files.get(name);
      if (list) list.push(relative(this.dir, path));
      else this.files.set(name, [relative(this.dir, path)]);
    }
  }
}

export interface KernelModule {
  /** Canonical name. */
  name: string;
  /** Where it goes under /lib/modules/<release>/: its path in the tree, without a compression suffix. */
  path: string;
  /** The file it was read from. */
  source: string;
  /** The module's ELF image (decompressed). */
  bytes: Uint8Array;
  info: ModuleInfo;
}

export interface ModuleSelection {
  release: string;
  /** Load order: every module after those it depends on. */
  modules: KernelModule[];
  /** Soft dependencies that name no module file (aliases such as crypto-crc32c): not loaded. */
  unresolvedSoftdeps: { module: string; softdep: string }[];
}

/** Reads and decompresses one module file, within MODULE_MAX_BYTES. */
function readModuleFile(source: string, what: string): Uint8Array {
  let raw: Uint8Array;
  let fd: number | undefined;
  try {
    const st = statSync(source);
    if (!st.isFile()) throw badModule(`${what} is not a regular file`);
    if (st.size > MODULE_MAX_BYTES) throw badModule(`${what} is ${st.size} bytes, more than the ${MODULE_MAX_BYTES} a module may have`);
    // Read at most one byte more than the limit (a file may grow between stat and read).
    const buf = new Uint8Array(Math.min(st.size + 1, MODULE_MAX_BYTES + 1));
    fd = openSync(source, 'r');
    let n = 0;
    for (let got; n < buf.length && (got = readSync(fd, buf, n, buf.length - n, null)) > 0; ) n += got;
    if (n > MODULE_MAX_BYTES) throw badModule(`${what} is more than the ${MODULE_MAX_BYTES} bytes a module may have`);
    raw = buf.subarray(0, n);
  } catch (e) {
    if (e instanceof TsvmmError) throw e;
    throw new TsvmmError('TSVMM_NO_MODULE', `cannot read ${what}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  try {
    if (source.endsWith('.ko.xz')) return xzDecompress(raw, { maxBytes: MODULE_MAX_BYTES });
    if (source.endsWith('.ko.gz')) return new Uint8Array(gunzipSync(raw, { maxOutputLength: MODULE_MAX_BYTES }));
  } catch (e) {
    throw badModule(`${what} does not decompress within ${MODULE_MAX_BYTES} bytes: ${(e as Error).message}`);
  }
  if (source.endsWith('.ko.zst')) throw badModule(`${what} is zstd-compressed, which tsvmm cannot decompress: use the uncompressed or .xz module`);
  return raw;
}

/**
 * `names` and what they depend on, in load order (see the file header). Each module is read once.
 */
export function resolveModules(tree: ModuleTree, names: readonly string[]): ModuleSelection {
  const order: KernelModule[] = [];
  const done = new Set<string>();
  const unresolvedSoftdeps: ModuleSelection['unresolvedSoftdeps'] = [];
  const post: string[] = [];
  let bytes = 0;

  const load = (name: string, neededBy: string | undefined): KernelModule => {
    const rel = tree.find(name);
    if (rel === undefined) {
      const why = neededBy === undefined ? '' : ` (${neededBy} depends on it)`;
      throw new TsvmmError('TSVMM_NO_MODULE', `module ${name} is not in ${tree.dir}${why}`, { module: name, neededBy });
    }
    const source = join(tree.dir, rel);
    const what = `module ${name} (${source})`;
    const ko = readModuleFile(source, what);
    const info = parseModinfo(ko, what);
    if (info.vermagic === undefined) throw badModule(`${what} has no vermagic: cannot tell which kernel it is for`);
    const release = vermagicRelease(info.vermagic);
    if (release !== tree.release) {
      throw badModule(`${what} is for kernel ${release} (vermagic '${info.vermagic.trim()}'), not ${tree.release}, the release the tree ${tree.dir} is named after`, { module: name, vermagic: info.vermagic, release: tree.release });
    }
    if (info.name !== undefined && moduleName(info.name) !== name) throw badModule(`${what} calls itself ${info.name} in its .modinfo`);
    return { name, path: rel.replace(/\.(xz|gz|zst)$/, ''), source, bytes: ko, info };
  };

  const visit = (raw: string, chain: readonly string[], soft: boolean): void => {
    const name = moduleName(raw);
    if (done.has(name)) return;
    const parent = chain.at(-1);
    if (chain.includes(name)) {
      throw badModule(`module dependency cycle: ${[...chain, name].join(' -> ')}`, { cycle: [...chain, name] });
    }
    if (chain.length >= MODULE_MAX_DEPTH) {
      throw badModule(`module dependencies nest deeper than ${MODULE_MAX_DEPTH}: ${[...chain, name].join(' -> ')}`);
    }
    if (soft && (!MODULE_NAME.test(name) || tree.find(name) === undefined)) {
      unresolvedSoftdeps.push({ module: parent!, softdep: raw });
      return;
    }
    if (!MODULE_NAME.test(name)) throw new TsvmmError('TSVMM_NO_MODULE', `'${raw}' is not a module name`, { module: raw, neededBy: parent });
    if (done.size >= MODULE_MAX_COUNT) throw badModule(`more than ${MODULE_MAX_COUNT} modules selected`);
    const m = load(name, parent);
    bytes += m.bytes.length;
    if (bytes > INITRAMFS_MAX_BYTES) throw new TsvmmError('TSVMM_LIMIT', `the selected modules hold more than ${INITRAMFS_MAX_BYTES} bytes, the most an initramfs holds`);
    const next = [...chain, name];
    for (const d of m.info.softdepPre) visit(d, next, true);
    for (const d of m.info.depends) visit(d, next, false);
    // A module can reach itself through its own dependencies only as a cycle, reported above.
    done.add(name);
    order.push(m);
    post.push(...m.info.softdepPost.map((p) => `${name}\0${p}`));
  };

  for (const n of names) visit(n, [], false);
  // Post soft dependencies after everything asked for (each may bring its own dependencies).
  for (let i = 0; i < post.length; i++) {
    const [owner, name] = post[i]!.split('\0') as [string, string];
    visit(name, [owner], true);
  }
  return { release: tree.release, modules: order, unresolvedSoftdeps };
}
