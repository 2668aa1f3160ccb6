// The virtio devices on the kvm backend (the soft backend's tests are test/linux/virtio-soft.test.ts
// and agent-soft.test.ts): Debian's Linux booted on kvm with a raw disk, the exec agent on its
// virtio console and a virtio entropy device, all served by the board's thread through KVM's MMIO
// exits and the in-kernel irqchip's interrupt lines. One boot: the guest reads the host's bytes
// from /dev/vda, writes its own at a known sector and syncs, runs three commands through vm.exec,
// draws from /dev/hwrng; the host then finds the guest's bytes in the image. Needs KVM with VMX or
// SVM; scripts/kvm-nested.sh runs it inside QEMU where the host has none.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { kvmUnavailable } from '../helpers/kvm.js';
import { agentInitramfs, linuxGuest } from '../helpers/linux.js';
import { withTempDirAsync } from '../helpers/tools.js';
import { hardwareKvm } from '../soft/guest-run.js';

const BOOT_TIMEOUT_MS = 5 * 60_000;
const EXEC = { timeoutMs: 2 * 60_000, readyTimeoutMs: 4 * 60_000 };
const DISK_BYTES = 1 << 20;
/** Where the guest writes: sector 64, past what the host's hash covers (the first 4 KiB). */
const GUEST_SECTOR = 64;

test('virtio on the kvm backend: a disk read and written, vm.exec three times, entropy, in one Linux boot', { timeout: BOOT_TIMEOUT_MS + 60_000 }, async (t) => {
  const why = kvmUnavailable() ?? (hardwareKvm() ? undefined : 'needs KVM with VMX or SVM (kvm_pvm emulates the guest kernel: Linux would take hours)');
  if (why) return t.skip(why);
  const guest = linuxGuest();
  if (typeof guest === 'string') return t.skip(guest);
  await withTempDirAsync(async (dir) => {
    const initrd = await agentInitramfs(dir, ['virtio_mmio', 'virtio_blk', 'virtio_console', 'virtio_rng']);
    const disk = join(dir, 'disk.img');
    const image = randomBytes(DISK_BYTES);
    writeFileSync(disk, image);
    const mark = `guest-${randomBytes(6).toString('hex')}`;

    const vm = await VirtualMachine.create({
      kernel: guest.kernel, pvh: true, initrd, cmdline: 'console=ttyS0 quiet', memory: 256 << 20, accel: 'kvm',
      timeoutMs: BOOT_TIMEOUT_MS, agent: true, rng: true, drives: [{ file: disk, readonly: false }],
    });
    let out = '';
    vm.console.on('data', (b: Buffer) => (out += b.toString('latin1')));
    vm.start();
    const tail = () => `console tail:\n${out.slice(-2000)}`;
    try {
      const read = await vm.exec('cat /sys/block/vda/size; head -c 4096 /dev/vda | sha256sum', EXEC);
      const sha = createHash('sha256').update(image.subarray(0, 4096)).digest('hex');
      assert.equal(read.stdout.toString(), `${DISK_BYTES / 512}\n${sha}  -\n`, tail());
      const write = await vm.exec(`printf ${mark} | dd of=/dev/vda bs=512 seek=${GUEST_SECTOR} conv=notrunc,fsync 2>/dev/null; echo done >&2; exit 7`, EXEC);
      assert.deepEqual([write.stdout.toString(), write.stderr.toString(), write.code], ['', 'done\n', 7], tail());
      const rng = await vm.exec('cat /sys/class/misc/hw_random/rng_current; head -c 64 /dev/hwrng | wc -c', EXEC);
      assert.equal(rng.stdout.toString(), 'virtio_rng.0\n64\n', tail());
    } finally {
      await vm.stop();
    }
    const after = readFileSync(disk);
    assert.equal(after.subarray(GUEST_SECTOR * 512, GUEST_SECTOR * 512 + mark.length).toString('latin1'), mark);
    assert.ok(after.subarray(0, GUEST_SECTOR * 512).equals(image.subarray(0, GUEST_SECTOR * 512)), 'the bytes before the written sector are the host\'s');
  });
});
