/**
 * The KVM backend tested where no /dev/kvm exists: QEMU's TCG emulates AMD SVM with nested paging
 * (`-cpu max`, or `qemu64,+svm,+npt`), so a Debian guest under it (the "outer guest") loads the
 * kvm modules of Debian's kernel package and has a /dev/kvm on which tsvmm runs real guests.
 *
 * This file builds that outer guest from the cached Debian kernel and the current checkout: an
 * uncompressed initramfs (the kernel copies it; inflating 200 MB under TCG would cost seconds)
 * holding busybox, node, nasm, gdb (and the Python files it loads) and passt with the libraries
 * `ldd` names, the built project (package.json, README.md (test/cli runs its examples), bin/,
 * dist/ without declarations, guests/, node_modules/ without the build tools), the guest
 * cache (.cache/guests: the same kernel and busybox, for the inner boots, and the ELF guests the
 * tests link with ld, linked here: the outer guest has no binutils), the kvm and dummy modules in
 * dependency order (the package has no modules.dep: each .ko names its own in .modinfo) and
 * outer-init.sh as /init. It boots it on QEMU, runs a list of steps inside and reads their
 * framed output back (see outer-init.sh).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findGuestBusybox, findGuestKernel, guestCacheDir } from '../../src/loader/guest-kernels.js';
import { Initramfs, addBaseLayout } from '../../src/loader/initramfs.js';
import { linkedGuest, prebuiltLinkedGuestName } from '../helpers/nasm.js';

/** The repository root (this file runs from dist/test/kvm-nested/). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** Where the project sits inside the outer guest. */
export const GUEST_ROOT = '/tsvmm';
export const QEMU = 'qemu-system-x86_64';
/**
 * The modules outer-init.sh loads, their dependencies added: kvm_amd gives /dev/kvm on the AMD CPU
 * QEMU's TCG emulates; dummy gives the outer guest a network interface with a default route, which
 * passt (--nic user) needs to take its addresses from (the outer guest has no NIC: only loopback).
 */
const OUTER_MODULES = ['kvm_amd', 'dummy'];
/** What of the cached kernel's module tree goes inside, for the guests of the nested virtio and network tests. */
const GUEST_MODULES = ['modules.builtin', 'kernel/drivers/virtio', 'kernel/drivers/block/virtio_blk.ko', 'kernel/drivers/char/virtio_console.ko', 'kernel/drivers/char/hw_random',
  'kernel/drivers/net/virtio_net.ko', 'kernel/drivers/net/net_failover.ko', 'kernel/net/core/failover.ko'];
/** The ELF guests the tests link with ld (test/helpers/nasm.ts linkedGuest): test/vmm/gdb.test.ts's and gdb-threads.test.ts's. */
const LINKED_GUESTS: readonly (readonly [source: string, script: string])[] = [['gdb/target.asm', 'gdb/target.ld'], ['gdb/smp-target.asm', 'gdb/target.ld']];
/**
 * Host programs the tests inside run, when installed here (without them those tests skip, saying
 * why): gdb, the GDB stub's client, and passt, --nic user's backend, with the variant it
 * re-executes on CPUs with AVX2.
 */
const TOOLS = ['gdb', 'passt', 'passt.avx2'];

/**
 * The Python files Debian's gdb loads as it starts, each with its cached bytecode, as that gdb
 * lists them: gdb links libpython and does not start without Python's `encodings`, and without
 * its own gdb module (data directory) it prints an error at each stop. About 2 MB where the
 * standard library is 50 MB. Empty when gdb cannot tell (a gdb without Python needs none).
 */
function gdbPythonFiles(gdb: string): string[] {
  const list = [
    'import sys, os, importlib.util',
    'for m in list(sys.modules.values()):',
    '  f = getattr(m, "__file__", None)',
    '  if f and f.endswith(".py"): print(f); print(importlib.util.cache_from_source(f))',
  ].join('\n');
  const r = spawnSync(gdb, ['-batch', '-nx', '-ex', `python exec(${JSON.stringify(list)})`], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent' } });
  // Site packages (.pth hooks) are not part of gdb.
  return [...new Set(r.stdout.split('\n'))].filter((f) => f.startsWith('/') && !f.includes('-packages/') && existsSync(f));
}
/** node_modules entries the tests do not need inside (compilers, type declarations). */
const DEV_ONLY_MODULES = new Set(['typescript', '@types', 'undici-types', '.bin', '.package-lock.json']);

export interface Step {
  name: string;
  /** A shell command run in GUEST_ROOT; its output is the step's output. */
  command: string;
}

export interface StepResult {
  name: string;
  status: number;
  seconds: number;
  output: string;
}

export interface OuterRun {
  /** Why nothing could run (QEMU missing, no SVM in the emulated CPU), or undefined. */
  skipped?: string;
  /** A failure before or around the steps (module load, timeout, a wedge, QEMU's own exit). */
  fatal?: string;
  /** The outer guest stopped printing, even its heartbeat, and was ended. */
  wedged?: boolean;
  steps: StepResult[];
  /** The outer guest's uptime when its init started and when /dev/kvm was up. */
  outerUpS?: number;
  kvmUpS?: number;
  wallS: number;
  output: string;
}

/** Why QEMU cannot run the outer guest here, or undefined. */
export function qemuUnavailable(): string | undefined {
  const r = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `${QEMU} is not installed (apt-get install qemu-system-x86)`;
  return undefined;
}

/** The absolute paths of the shared libraries `ldd` lists for `binary` (the dynamic loader included). */
export function sharedLibraries(binary: string): string[] {
  const r = spawnSync('ldd', [binary], { encoding: 'utf8' });
  if (r.status !== 0) return []; // a static binary ("not a dynamic executable")
  const libs: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m) libs.push(m[1]!);
  }
  return libs;
}

/** `depends=` of a kernel module's .modinfo section (ELF64 section headers, little-endian). */
export function moduleDepends(ko: Uint8Array): string[] {
  const dv = new DataView(ko.buffer, ko.byteOffset, ko.byteLength);
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true);
  const shnum = dv.getUint16(0x3c, true);
  const shstrndx = dv.getUint16(0x3e, true);
  const section = (i: number) => {
    const o = shoff + i * shentsize;
    return { name: dv.getUint32(o, true), offset: Number(dv.getBigUint64(o + 0x18, true)), size: Number(dv.getBigUint64(o + 0x20, true)) };
  };
  const strtab = section(shstrndx);
  const latin1 = (a: number, b: number) => Buffer.from(ko.buffer, ko.byteOffset + a, b - a).toString('latin1');
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    const nameEnd = ko.indexOf(0, strtab.offset + s.name);
    if (latin1(strtab.offset + s.name, nameEnd) !== '.modinfo') continue;
    for (const entry of latin1(s.offset, s.offset + s.size).split('\0')) {
      if (entry.startsWith('depends=')) return entry.slice('depends='.length).split(',').filter(Boolean);
    }
    return [];
  }
  return [];
}

/** Module name (dashes as underscores) → .ko path, for every module under `dir`. */
function moduleFiles(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ko')) found.set(e.name.slice(0, -3).replace(/-/g, '_'), p);
    }
  };
  walk(dir);
  return found;
}

/** `wanted` and their dependencies, each after what it depends on, as [name, path]. */
export function moduleLoadOrder(modulesDir: string, wanted: readonly string[]): [string, string][] {
  const files = moduleFiles(modulesDir);
  const order: [string, string][] = [];
  const visit = (name: string, chain: string[]): void => {
    if (order.some(([n]) => n === name)) return;
    if (chain.includes(name)) throw new Error(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    const path = files.get(name);
    if (!path) throw new Error(`module ${name} is not in ${modulesDir}`);
    for (const dep of moduleDepends(readFileSync(path))) visit(dep.replace(/-/g, '_'), [...chain, name]);
    order.push([name, path]);
  };
  for (const w of wanted) visit(w, []);
  return order;
}

/** Adds `src` (a file or a directory, recursively) at `dest`; `keep` filters by path relative to `src`. */
function addTree(fs: Initramfs, src: string, dest: string, keep: (rel: string, isDir: boolean) => boolean = () => true): void {
  const st = statSync(src);
  if (!st.isDirectory()) {
    fs.addFile(dest, readFileSync(src), st.mode & 0o7777);
    return;
  }
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      const rel = relative(src, p);
      const isDir = e.isDirectory() || (e.isSymbolicLink() && statSync(p).isDirectory());
      if (!keep(rel, isDir)) continue;
      if (isDir) walk(p);
      else fs.addFile(join(dest, rel), readFileSync(p), statSync(p).mode & 0o7777);
    }
  };
  walk(src);
}

/** A host program and its libraries at the paths `ldd` gives (content read through symlinks). */
function addProgram(fs: Initramfs, path: string, dest = path): void {
  fs.addFile(dest, readFileSync(realpathSync(path)), 0o755);
  for (const lib of sharedLibraries(path)) if (!fs.has(lib)) fs.addFile(lib, readFileSync(realpathSync(lib)), 0o755);
}

function which(name: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export interface OuterGuestFiles {
  /** The kernel QEMU boots: the vmlinux (PVH entry, seconds faster under TCG) or the bzImage. */
  kernel: string;
  initramfs: Uint8Array;
  modules: string[];
}

/** Assembles test/kvm-nested/kvm-hold.asm into a static executable, or says what failed. */
function buildKvmHold(): Uint8Array | string {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-kvm-hold-'));
  try {
    const src = join(REPO_ROOT, 'test', 'kvm-nested', 'kvm-hold.asm');
    for (const [tool, args] of [['nasm', ['-f', 'elf64', '-o', join(dir, 'kvm-hold.o'), src]], ['ld', ['-o', join(dir, 'kvm-hold'), join(dir, 'kvm-hold.o')]]] as const) {
      const r = spawnSync(tool, args, { encoding: 'utf8' });
      if (r.error || r.status !== 0) return `${tool} could not build kvm-hold: ${r.error?.message ?? r.stderr.trim()}`;
    }
    return readFileSync(join(dir, 'kvm-hold'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A deliberate defect in one built file of the project, to show that the tests inside catch it. */
export interface Mutation {
  /** The file, relative to the repository (e.g. dist/src/backends/kvm/kvm-backend.js). */
  file: string;
  from: string;
  to: string;
}

/** Builds the outer guest's initramfs, or says what is missing. */
export function buildOuterGuest(steps: readonly Step[], mutation?: Mutation): OuterGuestFiles | string {
  const kernel = findGuestKernel();
  const busybox = findGuestBusybox();
  if (!kernel || !busybox) return 'the Debian kernel or busybox is not cached: run scripts/fetch-guest-kernel.sh';
  if (!existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'))) return 'the project is not built (npx tsc -p .)';
  const nasm = which('nasm');
  if (!nasm) return 'nasm is not installed (the tests assemble their guests inside)';
  const modulesDir = join(dirname(dirname(kernel.vmlinuz)), 'lib', 'modules', kernel.version);
  const modules = moduleLoadOrder(modulesDir, OUTER_MODULES);
  const kvmHold = buildKvmHold();
  if (typeof kvmHold === 'string') return kvmHold;

  const fs = addBaseLayout(new Initramfs());
  fs.addFile('/bin/busybox', readFileSync(busybox), 0o755);
  const applets = spawnSync(busybox, ['--list-full'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const applet of applets) if (!fs.has(applet)) fs.addSymlink(applet, '/bin/busybox');
  fs.addFile('/init', readFileSync(join(REPO_ROOT, 'test', 'kvm-nested', 'outer-init.sh')), 0o755);
  addProgram(fs, process.execPath, '/usr/bin/node');
  addProgram(fs, nasm, '/usr/bin/nasm');
  const script = which('script'); // a pty for test/cli's terminal case
  if (script) addProgram(fs, script, '/usr/bin/script');
  for (const tool of TOOLS) {
    const path = which(tool);
    if (path) addProgram(fs, path, `/usr/bin/${tool}`);
    if (path && tool === 'gdb') for (const f of gdbPythonFiles(path)) fs.addFile(f, readFileSync(f));
  }

  for (const [name, path] of modules) fs.addFile(`/kvm-nested/modules/${name}.ko`, readFileSync(path));
  fs.addFile('/kvm-nested/kvm-hold', kvmHold, 0o755);
  fs.addFile('/kvm-nested/module-order', modules.map(([n]) => n).join('\n') + '\n');
  fs.addFile('/kvm-nested/steps', steps.map((s) => `${s.name}|${s.command}`).join('\n') + '\n');

  for (const f of ['package.json', 'README.md', 'bin', 'guests']) addTree(fs, join(REPO_ROOT, f), `${GUEST_ROOT}/${f}`);
  addTree(fs, join(REPO_ROOT, 'dist'), `${GUEST_ROOT}/dist`, (rel, isDir) => isDir || rel.endsWith('.js'));
  if (mutation) {
    const text = readFileSync(join(REPO_ROOT, mutation.file), 'utf8');
    if (!text.includes(mutation.from)) return `the mutation of ${mutation.file} does not apply: it has no '${mutation.from}'`;
    fs.addFile(`${GUEST_ROOT}/${mutation.file}`, text.replace(mutation.from, mutation.to));
  }
  addTree(fs, join(REPO_ROOT, 'node_modules'), `${GUEST_ROOT}/node_modules`, (rel) => !DEV_ONLY_MODULES.has(rel.split('/')[0]!));
  // The guest cache as guest-kernels.ts reads it: guests.env and the files it names.
  const cache = guestCacheDir();
  const manifest = readFileSync(join(cache, 'guests.env'), 'utf8');
  fs.addFile(`${GUEST_ROOT}/.cache/guests/guests.env`, manifest);
  for (const line of manifest.split('\n')) {
    const [key, rel] = line.split('=');
    if (key && rel && key !== 'KERNEL_VERSION') fs.addFile(`${GUEST_ROOT}/.cache/guests/${rel}`, readFileSync(join(cache, rel)), 0o755);
  }
  // The part of the kernel's module tree that the tests inside put in their guests' initramfs
  // (tsvmm initramfs --modules): the virtio drivers, not the whole 300 MB tree.
  const tree = relative(cache, modulesDir);
  for (const part of GUEST_MODULES) addTree(fs, join(modulesDir, part), `${GUEST_ROOT}/.cache/guests/${tree}/${part}`);
  // Linked here, where ld is, from the same sources (the name says which: prebuiltLinkedGuestName).
  for (const [source, script] of LINKED_GUESTS) {
    const { elf, symbols } = linkedGuest(source, script);
    const name = `${GUEST_ROOT}/.cache/guests/${prebuiltLinkedGuestName(source, script)}`;
    fs.addFile(`${name}.elf`, elf);
    fs.addFile(`${name}.json`, JSON.stringify(symbols));
  }
  return { kernel: kernel.vmlinux ?? kernel.vmlinuz, initramfs: fs.toCpio(), modules: modules.map(([n]) => n) };
}

export interface BootOptions {
  /** QEMU's -cpu: `max`, or e.g. `qemu64,+svm,+npt`. */
  cpu: string;
  /** QEMU's -m. */
  memory: string;
  smp: number;
  timeoutMs: number;
  /**
   * How long the console may stay silent before the outer guest counts as wedged and QEMU is
   * ended (outer-init.sh prints a line every 10 s while its kernel runs). Default 90 s.
   */
  silenceMs?: number;
  /** More words for the outer kernel's command line. */
  append?: string;
  /** Receives the console output as it comes. */
  onOutput?: (text: string) => void;
}

const MARK = '@@kvm-nested ';

/** Asks QEMU's human monitor (a Unix socket) one command and returns its answer, or '' after 3 s. */
function askMonitor(socket: string, command: string): Promise<string> {
  return new Promise((resolve) => {
    let answer = '';
    const s = connect(socket);
    const done = (): void => {
      s.destroy();
      resolve(answer);
    };
    s.setTimeout(3000, done);
    s.on('error', done);
    s.on('data', (b) => {
      answer += b.toString('latin1');
      // The banner's prompt comes first; the command's answer ends at the next prompt.
      if (answer.split('(qemu)').length === 2 && !answer.includes(command)) s.write(`${command}\n`);
      else if (answer.split('(qemu)').length > 2) done();
    });
  });
}

/** Boots the outer guest on QEMU's TCG and reads the framed step results from its console. */
export async function bootOuterGuest(files: OuterGuestFiles, dir: string, opts: BootOptions): Promise<OuterRun> {
  const initrd = join(dir, 'outer-initramfs.cpio');
  const monitor = join(dir, 'monitor');
  writeFileSync(initrd, files.initramfs);
  const args = ['-accel', 'tcg', '-cpu', opts.cpu, '-smp', String(opts.smp), '-m', opts.memory,
    '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio', '-monitor', `unix:${monitor},server=on,wait=off`,
    '-kernel', files.kernel, '-initrd', initrd, '-append', `console=ttyS0 quiet panic=-1 ${opts.append ?? ''}`.trim()];
  const t0 = process.hrtime.bigint();
  const child = spawn(QEMU, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let ended: string | undefined;
  let wedged = false;
  let lastOutput = Date.now();
  const onData = (b: Buffer) => {
    const text = b.toString('latin1');
    lastOutput = Date.now();
    output += text;
    opts.onOutput?.(text);
  };
  const end = (why: string, cpus = ''): void => {
    if (ended) return;
    ended = why;
    if (cpus) onData(Buffer.from(`\n[host] ${why}; its vCPUs then:\n${cpus}\n`, 'latin1'));
    child.kill('SIGKILL');
  };
  const timer = setTimeout(() => end(`QEMU did not finish within ${opts.timeoutMs / 1000} s`), opts.timeoutMs);
  const silenceMs = opts.silenceMs ?? 90_000;
  const watchdog = setInterval(() => {
    if (ended || Date.now() - lastOutput < silenceMs) return;
    // Where each vCPU is, for whoever reads the log: a wedge has so far been both in one loop.
    void askMonitor(monitor, 'info registers -a').then((regs) => {
      const cpus = regs.split('\n').filter((l) => /^CPU#|^RIP=/.test(l)).join('\n');
      if (ended) return;
      wedged = true;
      end(`the outer guest printed nothing for ${silenceMs / 1000} s (wedged)`, cpus || '(the monitor did not answer)');
    });
  }, 5000);
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  clearInterval(watchdog);
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const run = parseOuterOutput(output.replace(/\r/g, ''));
  run.wallS = wallS;
  if (ended) {
    run.fatal ??= ended;
    run.wedged = wedged;
  } else if (!run.done && !run.fatal && !run.skipped) run.fatal = `QEMU ended (status ${status}) before the outer guest finished`;
  return run;
}

/** The results in the outer guest's console output (outer-init.sh's framing). */
export function parseOuterOutput(output: string): OuterRun & { done: boolean } {
  const run: OuterRun & { done: boolean } = { steps: [], wallS: 0, output, done: false };
  let current: { name: string; lines: string[] } | undefined;
  // A mark (the heartbeat) printed while a step had half a line out: the half joins the step's next line.
  let half = '';
  for (const line of output.split('\n')) {
    const at = line.indexOf(MARK);
    if (at < 0) {
      current?.lines.push(half + line);
      half = '';
      continue;
    }
    half += line.slice(0, at);
    const msg = line.slice(at + MARK.length);
    let m: RegExpExecArray | null;
    if ((m = /^outer up at ([\d.]+) s/.exec(msg))) run.outerUpS = Number(m[1]);
    else if ((m = /^kvm up at ([\d.]+) s/.exec(msg))) run.kvmUpS = Number(m[1]);
    else if ((m = /^skip: (.*)$/.exec(msg))) run.skipped = m[1];
    else if ((m = /^fatal: (.*)$/.exec(msg))) run.fatal = m[1];
    else if ((m = /^begin (\S+)$/.exec(msg))) current = { name: m[1]!, lines: [] };
    else if ((m = /^end (\S+) rc=(\d+) from ([\d.]+) to ([\d.]+) s$/.exec(msg)) && current !== undefined && current.name === m[1]) {
      run.steps.push({ name: current.name, status: Number(m[2]), seconds: Number(m[4]) - Number(m[3]), output: current.lines.join('\n') });
      current = undefined;
    } else if (/^done at /.test(msg)) run.done = true;
  }
  if (current) run.fatal ??= `step ${current.name} did not end; its output tail:\n${current.lines.slice(-30).join('\n')}`;
  return run;
}
