/** The Linux guest of the integration tests and bench/boot: Debian's kernel and a busybox initramfs. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GUESTS_DIR } from '../../src/common/nasm.js';
import { findGuestBusybox, findGuestKernel } from '../../src/loader/guest-kernels.js';
import { DEFAULT_BUSYBOX_APPLETS, Initramfs, addBaseLayout } from '../../src/loader/initramfs.js';

export interface LinuxGuest {
  kernel: string;
  version: string;
  /** Writes the initramfs (guests/linux/init.sh as /init, busybox) into `dir`; returns its path. */
  writeInitramfs(dir: string): string;
}

/** The cached Debian kernel and busybox, or why they are missing. */
export function linuxGuest(): LinuxGuest | string {
  const kernel = findGuestKernel();
  const busybox = findGuestBusybox();
  if (!kernel || !busybox) return 'the Debian kernel or busybox is not cached: run scripts/fetch-guest-kernel.sh';
  return {
    kernel: kernel.vmlinuz,
    version: kernel.version,
    writeInitramfs(dir: string): string {
      const fs = addBaseLayout(new Initramfs());
      fs.addFile('/init', readFileSync(join(GUESTS_DIR, 'linux', 'init.sh')), 0o755);
      fs.addFile('/bin/busybox', readFileSync(busybox), 0o755);
      for (const applet of DEFAULT_BUSYBOX_APPLETS) if (!fs.has(`/${applet}`)) fs.addSymlink(`/${applet}`, '/bin/busybox');
      const path = join(dir, 'initramfs.cpio.gz');
      writeFileSync(path, fs.toGzip());
      return path;
    },
  };
}
