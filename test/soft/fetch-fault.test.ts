// A page fault on instruction fetch pushes the unfetchable address and sets CR2 to it. (The
// case that once pushed the previous instruction's address, a fetch fault right after IRETQ to
// user space, is covered by Linux's boot in test/linux/.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { assistIo } from '../../src/nvmm/assist.js';
import { Machine } from '../../src/nvmm/machine.js';
import { idtGuest, imageQword } from './idt-guest.js';

test('#PF on a fetch pushes the faulting RIP and sets CR2 to it (soft)', (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  const image = assemble('soft/fetch-fault.asm');
  const machine = new Machine(SoftBackend.open());
  try {
    const vcpu = idtGuest(machine, image, [[14, imageQword(image, 8)]]);
    const words: number[] = [];
    for (let exit = vcpu.run(); exit.kind !== 'halted'; exit = vcpu.run()) {
      assert.equal(exit.kind, 'io', `unexpected ${exit.kind}`);
      assistIo(vcpu, (io) => words.push(new DataView(io.data.buffer, io.data.byteOffset).getUint32(0, true)));
    }
    assert.deepEqual(words, [0x3000, 0x3000], 'pushed RIP and CR2');
  } finally {
    machine.destroy();
  }
});
