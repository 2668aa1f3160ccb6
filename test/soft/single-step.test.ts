// RFLAGS.TF: a single-step #DB trap after each instruction that began with TF set, pushing the
// next instruction's RIP with DR6.BS set; none after the POPF that sets TF, none into an
// INT3's handler, and after MOV SS only once the next instruction has run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { idtGuest, imageQword, outWordsUntilHalt } from '../helpers/idt-guest.js';
import { withMachine } from '../helpers/machine.js';
import { guestImage, needsNasm } from '../helpers/nasm.js';

test('TF single-steps with a #DB trap per instruction (soft)', needsNasm, () => {
  const image = guestImage('soft/single-step.asm');
  const iv = new DataView(image.buffer, image.byteOffset);
  withMachine(SoftBackend.open(), (machine) => {
    const expect: number[] = [];
    for (let a = 0x18; iv.getBigUint64(a, true) !== 0n; a += 8) expect.push(Number(iv.getBigUint64(a, true)));
    const vcpu = idtGuest(machine, image, [[1, imageQword(image, 8)], [3, imageQword(image, 0x10)]]);
    const words = outWordsUntilHalt(vcpu);
    const BS = 0xffff4ff0; // DR6 as the handler resets it (0xffff0ff0), with BS (bit 14)
    const want: number[] = [];
    expect.forEach((rip, k) => {
      if (k === 4) want.push(0xb9); // INT3 at s5, between the traps pushing s5 and s7
      want.push(rip, BS);
    });
    want.push(0xd0e, 3);
    assert.deepEqual(words.map((w) => w >>> 0), want, 'pushed RIPs, DR6, #BP and the end');
  });
});
