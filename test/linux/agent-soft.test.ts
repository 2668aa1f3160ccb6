// The exec agent on a running machine (soft backend, one boot of Debian's Linux with the initramfs
// `tsvmm initramfs` writes): several vm.exec calls in turn, each with its own stdout, stderr and
// exit status; an output of several MiB, larger than the host's buffers between the vCPU thread
// and the Agent (the agent port's ring and backlog, 1 MiB each), arrives whole (hashed on both
// sides) while the host's main thread keeps stopping reading (the port holds the guest's writes
// back meanwhile); one over the caller's cap is TSVMM_LIMIT with what fit, and the agent goes on
// serving.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { TsvmmError } from '../../src/common/errors.js';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { agentInitramfs, linuxGuest } from '../helpers/linux.js';
import { withTempDirAsync } from '../helpers/tools.js';

const BOOT_TIMEOUT_MS = 10 * 60_000;
const EXEC = { timeoutMs: 5 * 60_000, readyTimeoutMs: 5 * 60_000 };
const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');
/** How long the host stops reading at a time while a large output is on its way. */
const STALL_MS = 1000;

/**
 * Settles as `p` does, while the main thread (which moves the agent's output from the vCPU
 * thread's ring to the Agent) stops for STALL_MS at a time, as a busy host would: what the guest
 * sends meanwhile must wait for room, not be lost.
 */
async function withStalls<T>(p: Promise<T>): Promise<T> {
  let settled = false;
  p.then(() => (settled = true), () => (settled = true));
  const word = new Int32Array(new SharedArrayBuffer(4));
  while (!settled) {
    Atomics.wait(word, 0, 0, STALL_MS);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return p;
}

test('vm.exec on one running machine (soft): three commands in turn, 4 MiB of output whole, one over its cap', { timeout: BOOT_TIMEOUT_MS + 60_000 }, async (t) => {
  const guest = linuxGuest();
  if (typeof guest === 'string' || !guest.vmlinux) return t.skip(typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)');
  await withTempDirAsync(async (dir) => {
    const initrd = await agentInitramfs(dir, ['virtio_mmio', 'virtio_console']);
    const vm = await VirtualMachine.create({ kernel: guest.vmlinux!, initrd, cmdline: 'console=ttyS0 quiet', memory: 256 << 20, accel: 'soft', timeoutMs: BOOT_TIMEOUT_MS, agent: true });
    let out = '';
    vm.console.on('data', (b: Buffer) => (out += b.toString('latin1')));
    const logs: string[] = [];
    vm.on('log', (m) => logs.push(m));
    vm.start();
    try {
      const tail = () => `console tail:\n${out.slice(-2000)}\nlog: ${logs.join('\n')}`;
      const a = await vm.exec('echo first; echo err-first >&2; exit 3', EXEC);
      assert.deepEqual([a.stdout.toString(), a.stderr.toString(), a.code], ['first\n', 'err-first\n', 3], tail());
      const b = await vm.exec('printf second; printf "err\\0second" >&2', EXEC);
      assert.deepEqual([b.stdout.toString(), b.stderr.toString('latin1'), b.code], ['second', 'err\0second', 0], tail());
      const c = await vm.exec('echo "third $((6 * 7))"; kill -TERM $$', EXEC);
      assert.deepEqual([c.stdout.toString(), c.stderr.toString(), c.code], ['third 42\n', '', 128 + 15], tail());

      // 3 MiB of zeros in base64: 4 MiB and 4 MiB / 76 newlines, more than the ring and the backlog hold.
      const big = await withStalls(vm.exec('head -c 3145728 /dev/zero | base64; echo done >&2', EXEC));
      assert.equal(big.code, 0, tail());
      assert.equal(big.stderr.toString(), 'done\n');
      assert.equal(big.stdout.length, 4194304 + Math.ceil(4194304 / 76), tail());
      const sum = await vm.exec('head -c 3145728 /dev/zero | base64 | md5sum', EXEC);
      assert.equal(sum.stdout.toString().split(' ')[0], md5(big.stdout), 'the bytes the host got are the ones the guest wrote');

      await assert.rejects(withStalls(vm.exec('head -c 3145728 /dev/zero | base64; exit 9', { ...EXEC, maxOutputBytes: 1 << 20 })), (e: unknown) => {
        assert.ok(e instanceof TsvmmError && e.code === 'TSVMM_LIMIT', String(e));
        const d = e.detail!;
        assert.equal((d['stdout'] as Buffer).length, 1 << 20);
        assert.equal(md5(d['stdout'] as Buffer), md5(big.stdout.subarray(0, 1 << 20)));
        assert.equal(d['code'], 9);
        return true;
      });
      const after = await vm.exec('echo still here', EXEC);
      assert.equal(after.stdout.toString(), 'still here\n');
    } finally {
      await vm.stop();
    }
  });
});
