// The `cpu` option of VirtualMachine.create (tsvmm run --cpu) reaches the soft CPU in the board's
// thread: a flat guest (guests/soft/cpu-brand.asm) prints the brand string of the model it runs on.
// KVM refuses a CPU model (it presents the host's processor).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CpuModelName } from '../../src/backends/open.js';
import { VirtualMachine, type VmExited } from '../../src/vmm/virtual-machine.js';
import { guestImage, needsNasm } from '../helpers/nasm.js';
import { withTempDirAsync } from '../helpers/tools.js';

async function brand(kernel: string, opts: { accel: 'soft' | 'kvm'; cpu?: CpuModelName }): Promise<{ out: string; exited: VmExited }> {
  const vm = await VirtualMachine.create({ kernel, flat: { loadAddr: 0x8000, mode: 'real16' }, memory: 16 << 20, timeoutMs: 60_000, ...opts });
  let out = '';
  vm.console.on('data', (b: Buffer) => (out += b.toString('latin1')));
  vm.start();
  const exited = await vm.exited;
  return { out, exited };
}

test('VirtualMachine.create({ cpu }) chooses the soft CPU\'s model; KVM refuses one', needsNasm, async () => {
  await withTempDirAsync(async (dir) => {
    const kernel = join(dir, 'cpu-brand.bin');
    writeFileSync(kernel, guestImage('soft/cpu-brand.asm'));
    for (const cpu of [undefined, 'max', 'qemu64'] as const) {
      const { out, exited } = await brand(kernel, { accel: 'soft', cpu });
      assert.deepEqual(exited.end, { how: 'debug-exit', status: 0x43 });
      assert.equal(out, `tsvmm soft CPU (${cpu ?? 'max'})\n`);
    }
    const kvm = await brand(kernel, { accel: 'kvm', cpu: 'qemu64' });
    assert.equal(kvm.exited.end.how, 'error');
    assert.equal((kvm.exited.end as { code: string }).code, 'TSVMM_UNSUPPORTED');
  });
});
