// `tsvmm initramfs --modules` against the real kernel: Debian's virtio and ext4 modules, with the
// dependencies read from their .modinfo, loaded by the generated /init (busybox insmod, in order)
// on the soft backend; the user's script then runs as PID 1. There is no virtio-console device
// here, so /init starts no agent and leaves no mount behind.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { findGuestBusybox, findGuestKernel, findGuestModules } from '../../src/loader/guest-kernels.js';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { withTempDirAsync } from '../helpers/tools.js';

const BOOT_TIMEOUT_MS = 12 * 60_000;
const MODULES = 'virtio_mmio,virtio_blk,virtio_console,virtio_rng,ext4,crc32c_generic';
/** What /proc/modules lists after the generated /init: the modules asked for and their dependencies. */
const LOADED = ['crc16', 'crc32c_generic', 'ext4', 'jbd2', 'mbcache', 'virtio', 'virtio_blk', 'virtio_console', 'virtio_mmio', 'virtio_ring', 'virtio_rng'];

const USER_INIT = `#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
echo "tsvmm-modules: pid $$"
echo "tsvmm-modules: loaded $(cut -d' ' -f1 /proc/modules | sort | tr '\\n' ' ')"
echo "tsvmm-modules: ext4 $(grep -c ext4 /proc/filesystems)"
echo "tsvmm-modules: mounts $(cut -d' ' -f2 /proc/mounts | tr '\n' ' ')"
echo "tsvmm-modules: agents $(ps | grep -c '[t]svmm-agent')"
echo "tsvmm-modules: done"
poweroff -f
`;

test('Linux on the soft backend loads the modules tsvmm initramfs --modules put in, in dependency order', { timeout: BOOT_TIMEOUT_MS + 60_000 }, async (t) => {
  const kernel = findGuestKernel();
  const busybox = findGuestBusybox();
  if (!kernel?.vmlinux || !busybox || !findGuestModules()) return t.skip('the Debian kernel, its vmlinux and modules, or busybox are not cached: run scripts/fetch-guest-kernel.sh');
  await withTempDirAsync(async (dir) => {
    const script = join(dir, 'init.sh');
    writeFileSync(script, USER_INIT);
    const initrd = join(dir, 'initrd.gz');
    let built = '';
    const io = { out: (s: string) => void (built += s), err: (s: string) => void (built += s) };
    assert.equal(await main(['initramfs', '--init', script, '--busybox', busybox, '--modules', MODULES, '-o', initrd], io), 0, built);

    const vm = await VirtualMachine.create({ kernel: kernel.vmlinux!, initrd, cmdline: 'console=ttyS0', memory: 256 << 20, accel: 'soft', timeoutMs: BOOT_TIMEOUT_MS });
    let out = '';
    vm.console.on('data', (b: Buffer) => (out += b.toString('latin1')));
    vm.start();
    const { end } = await vm.exited;
    assert.deepEqual(end, { how: 'poweroff' }, `output tail:\n${out.slice(-3000)}`);
    assert.match(out, /tsvmm-modules: done/, `output tail:\n${out.slice(-3000)}`);
    assert.match(out, /tsvmm-modules: pid 1\r?\n/, 'the user script is PID 1');
    assert.match(out, new RegExp(`tsvmm-modules: loaded ${LOADED.join(' ')} \\r?\\n`));
    assert.match(out, /tsvmm-modules: ext4 [1-9]/, 'ext4 registered its file systems');
    // No virtio-console device: /init left nothing mounted and started no agent.
    assert.match(out, /tsvmm-modules: mounts \/ \/proc \r?\n/);
    assert.match(out, /tsvmm-modules: agents 0\r?\n/);
    assert.doesNotMatch(out, /insmod .* failed|Unknown symbol|disagrees about version|module verification failed/);
  });
});
