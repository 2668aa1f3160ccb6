// A page fault on instruction fetch pushes the unfetchable address and sets CR2 to it. (The
// case that once pushed the previous instruction's address, a fetch fault right after IRETQ to
// user space, is covered by Linux's boot in test/linux/.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { idtGuest, imageQword, outWordsUntilHalt } from '../helpers/idt-guest.js';
import { withMachine } from '../helpers/machine.js';
import { guestImage, needsNasm } from '../helpers/nasm.js';

test('#PF on a fetch pushes the faulting RIP and sets CR2 to it (soft)', needsNasm, () => {
  const image = guestImage('soft/fetch-fault.asm');
  withMachine(SoftBackend.open(), (machine) => {
    const vcpu = idtGuest(machine, image, [[14, imageQword(image, 8)]]);
    assert.deepEqual(outWordsUntilHalt(vcpu), [0x3000, 0x3000], 'pushed RIP and CR2');
  });
});
