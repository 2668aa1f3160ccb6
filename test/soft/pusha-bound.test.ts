// PUSHA/PUSHAD, POPA/POPAD and BOUND on the soft CPU (guests/soft/pusha32.asm): the slot order, the
// SP/ESP value pushed and the one POPA skips, 16-bit forms that keep the upper register halves, BOUND's
// signed bounds with #BR, and #UD for BOUND with a register operand. Also run on KVM where KVM has
// VMX/SVM, so the expectations are the real CPU's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guestImage, needsNasm } from '../helpers/nasm.js';
import { reports, runOnEachBackend } from './guest-run.js';

test('soft CPU: a flat 32-bit guest runs PUSHA/POPA (16 and 32-bit) and BOUND (#BR, #UD with a register)', needsNasm, () => {
  const image = guestImage('soft/pusha32.asm');
  for (const [name, run] of runOnEachBackend(image)) {
    assert.equal(run.end, 'end', `${name}: reports ${reports(run)}`);
    assert.deepEqual(reports(run), [1, 2, 5, 5, 5, 6, 3], name);
    const R = 0x310000;
    // PUSHAD from ESP 0x9000: EDI ESI EBP ESP(before) EBX EDX ECX EAX from the lowest address up
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((k) => run.u32(R + 4 * k)),
      [0x88888888, 0x77777777, 0x66666666, 0x9000, 0x44444444, 0x33333333, 0x22222222, 0x11111111], `${name}: PUSHAD`);
    assert.equal(run.u32(R + 32), 0x9000 - 32, `${name}: ESP after PUSHAD`);
    // POPAD: the ESP slot (0xdeadbeef) is skipped, ESP = frame + 32
    assert.deepEqual([36, 40, 44, 48, 56, 60, 64].map((o) => run.u32(R + o)), [0xa1, 0xc1, 0xd2, 0xb2, 0xb1, 0x51, 0xd1], `${name}: POPAD`);
    const frameEnd = run.u32(R + 68);
    assert.equal(run.u32(R + 52), frameEnd, `${name}: ESP after POPAD`);
    // O16 PUSHA: word slots DI SI BP SP BX DX CX AX, ESP - 16
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((k) => run.u16(R + 72 + 2 * k)), [8, 7, 6, 0x9000, 4, 3, 2, 1], `${name}: PUSHA`);
    assert.equal(run.u32(R + 88), 0x9000 - 16, `${name}: ESP after PUSHA`);
    // O16 POPA: the low halves from the frame, the upper halves kept; the SP slot skipped
    assert.deepEqual([92, 96, 100, 104, 108, 112, 116].map((o) => run.u32(R + o)),
      [0xbbbb00a1, 0xbbbb00c1, 0xbbbb00d2, 0xbbbb00b2, 0xbbbb00b1, 0xbbbb0051, 0xbbbb00d1], `${name}: POPA`);
    assert.equal(run.u32(R + 124), frameEnd + 16, `${name}: ESP after POPA`); // frame16 follows frame
  }
});
