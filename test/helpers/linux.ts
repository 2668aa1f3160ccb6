/** The Linux guest of the integration tests and bench/boot: Debian's kernel and a busybox initramfs. */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GUESTS_DIR } from '../../src/common/nasm.js';
import { findGuestBusybox, findGuestKernel } from '../../src/loader/guest-kernels.js';
import { DEFAULT_BUSYBOX_APPLETS, Initramfs, addBaseLayout } from '../../src/loader/initramfs.js';
import { VirtualMachine, type VmOptions } from '../../src/vmm/virtual-machine.js';
import { main } from '../../src/cli/main.js';

/** What goes into a test's initramfs beside busybox. */
export interface InitramfsOptions {
  /** The /init script, relative to guests/ (default linux/init.sh). */
  init?: string;
  /**
   * Kernel modules, by name (virtio_blk, ext4...), copied from the cached kernel package to
   * /lib/modules/NAME.ko and listed in that order in /etc/tsvmm-modules, which the init loads.
   * (Debian's package has no modules.dep: the caller lists dependencies first.)
   */
  modules?: readonly string[];
  /** More files, by absolute guest path. */
  files?: Record<string, Uint8Array>;
  /** More busybox applets (paths such as usr/bin/sha256sum). */
  applets?: readonly string[];
}

export interface LinuxGuest {
  kernel: string;
  version: string;
  /** The cached ELF vmlinux, when the cache has it (entered directly through PVH). */
  vmlinux?: string;
  /** Writes the initramfs (guests/linux/init.sh as /init unless told otherwise, busybox) into `dir`; returns its path. */
  writeInitramfs(dir: string, opts?: InitramfsOptions): string;
}

/** The module files of the cached kernel package, by module name. */
function moduleFiles(vmlinuz: string, version: string): Map<string, string> {
  const root = join(dirname(dirname(vmlinuz)), 'lib', 'modules', version, 'kernel');
  const found = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name.endsWith('.ko')) found.set(e.name.slice(0, -3), join(dir, e.name));
    }
  };
  if (existsSync(root)) walk(root);
  return found;
}

/** The cached Debian kernel and busybox, or why they are missing. */
export function linuxGuest(): LinuxGuest | string {
  const kernel = findGuestKernel();
  const busybox = findGuestBusybox();
  if (!kernel || !busybox) return 'the Debian kernel or busybox is not cached: run scripts/fetch-guest-kernel.sh';
  return {
    kernel: kernel.vmlinuz,
    version: kernel.version,
    ...(kernel.vmlinux ? { vmlinux: kernel.vmlinux } : {}),
    writeInitramfs(dir: string, opts: InitramfsOptions = {}): string {
      const fs = addBaseLayout(new Initramfs());
      fs.addFile('/init', readFileSync(join(GUESTS_DIR, ...(opts.init ?? 'linux/init.sh').split('/'))), 0o755);
      fs.addFile('/bin/busybox', readFileSync(busybox), 0o755);
      for (const applet of [...DEFAULT_BUSYBOX_APPLETS, ...(opts.applets ?? [])]) if (!fs.has(`/${applet}`)) fs.addSymlink(`/${applet}`, '/bin/busybox');
      if (opts.modules) {
        const files = moduleFiles(kernel.vmlinuz, kernel.version);
        if (!fs.has('/lib')) fs.addDir('lib');
        if (!fs.has('/lib/modules')) fs.addDir('lib/modules');
        for (const name of opts.modules) {
          const path = files.get(name);
          if (!path) throw new Error(`module ${name} is not in the cached kernel package`);
          fs.addFile(`/lib/modules/${name}.ko`, readFileSync(path), 0o644);
        }
        fs.addFile('/etc/tsvmm-modules', new TextEncoder().encode(opts.modules.join('\n') + '\n'), 0o644);
      }
      for (const [path, bytes] of Object.entries(opts.files ?? {})) fs.addFile(path, bytes, 0o644);
      const path = join(dir, 'initramfs.cpio.gz');
      writeFileSync(path, fs.toGzip());
      return path;
    },
  };
}

/** A Linux guest booted to guests/linux/init.sh's interactive shell (see bootToShell). */
export interface ShellSession {
  vm: VirtualMachine;
  /** The console output so far. */
  out(): string;
  /** The machine's log messages (unknown MSRs and ports, ...). */
  logs: string[];
  /** Resolves once the console output matches `re`. */
  waitFor(re: RegExp): Promise<void>;
  /** Types `poweroff -f` and returns how the machine ended, asserting it powered off. */
  powerOff(): Promise<void>;
}

/**
 * Boots `options` (a kernel with an initramfs from writeInitramfs, `tsvmm.interactive` on the
 * command line) to the init's shell and checks what the init printed on the way: the kernel's
 * version, uname, cpuinfo, a tmpfs file, the mounts. A machine that ends before the shell fails
 * with its output tail. The Linux boot tests on soft and on kvm share it. `beforeStart` runs on the
 * created machine before it starts (a test attaches a debugger there).
 */
export async function bootToShell(guest: LinuxGuest, options: VmOptions, beforeStart?: (vm: VirtualMachine) => Promise<void>): Promise<ShellSession> {
  const vm = await VirtualMachine.create(options);
  if (beforeStart) await beforeStart(vm);
  let out = '';
  const logs: string[] = [];
  vm.on('log', (m) => logs.push(m));
  const waitFor = (re: RegExp) => new Promise<void>((resolve) => {
    const check = () => (re.test(out) ? resolve() : vm.console.once('data', check));
    check();
  });
  vm.console.on('data', (b: Buffer) => (out += b.toString('latin1')));
  vm.start();
  const ended = vm.exited.then((e) => {
    if (!/tsvmm-init: shell/.test(out)) assert.fail(`ended ${JSON.stringify(e.end)} before the shell; output tail:\n${out.slice(-3000)}`);
    return e;
  });
  await Promise.race([waitFor(/tsvmm-init: shell/), ended]);
  const version = guest.version.replace(/\./g, '\\.');
  assert.match(out, new RegExp(`Linux version ${version}`));
  assert.match(out, /tsvmm-init: userspace up\r?\n/);
  assert.match(out, new RegExp(`Linux \\(none\\) ${version} #1 SMP .* x86_64 GNU/Linux`));
  assert.match(out, /processor\s*: 0\r?\nvendor_id\s*: \S+/);
  assert.match(out, /tmpfs says: written in tmpfs/);
  assert.match(out, /mounts: 3/);
  return {
    vm, logs, waitFor, out: () => out,
    async powerOff() {
      vm.console.write('poweroff -f\n');
      const { end } = await ended;
      assert.deepEqual(end, { how: 'poweroff' }, `output tail:\n${out.slice(-2000)}`);
      assert.match(out, /reboot: Power down/);
    },
  };
}

/** An /init that mounts proc, sysfs and devtmpfs and waits: the guest is driven through the exec agent. */
export const WAITING_INIT = '#!/bin/sh\nmount -t proc proc /proc\nmount -t sysfs sysfs /sys\nmount -t devtmpfs devtmpfs /dev\nwhile :; do sleep 1000; done\n';

/**
 * Writes into `dir` the initramfs `tsvmm initramfs` makes (busybox, the exec agent) with
 * WAITING_INIT as its /init, the kernel `modules` and `extra` options; returns its path.
 */
export async function agentInitramfs(dir: string, modules: readonly string[], extra: readonly string[] = []): Promise<string> {
  const init = join(dir, 'init.sh');
  writeFileSync(init, WAITING_INIT);
  const out = join(dir, 'initrd.gz');
  let said = '';
  const status = await main(['initramfs', '--init', init, '--modules', modules.join(','), ...extra, '-o', out], { out: (t) => void (said += t), err: (t) => void (said += t) });
  assert.equal(status, 0, said);
  return out;
}
