// x87 exceptions and packed BCD on the soft CPU (guests/soft/x87-mf.asm): with CR0.NE = 1 an
// unmasked pending exception raises #MF at the next waiting x87 instruction or FWAIT (not at the
// FN* control instructions), FWAIT takes #NM with CR0.MP and TS; FBLD/FBSTP (rounding, sign,
// the BCD indefinite). Also run on KVM where KVM has VMX/SVM.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guestImage, needsNasm } from '../helpers/nasm.js';
import { reports, runOnEachBackend } from './guest-run.js';

test('soft CPU: x87 #MF at the next waiting instruction, #NM at FWAIT, FBLD/FBSTP', needsNasm, () => {
  const image = guestImage('soft/x87-mf.asm');
  for (const [name, run] of runOnEachBackend(image)) {
    assert.equal(run.end, 'end', `${name}: reports ${reports(run)}`);
    assert.deepEqual(reports(run), [1, 16, 2, 16, 3, 4, 5, 6, 0x77, 8, 9], name);
    const dv = new DataView(run.ram.buffer, run.ram.byteOffset + 0x310000);
    const d = (o: number) => dv.getUint32(o, true);
    const ZE = 4, IE = 1, ES = 0x80, B = 0x8000;
    assert.equal(d(0) & (B | ES | 0x3f), B | ES | ZE, `${name}: FSW with ZE pending`);
    assert.deepEqual([d(8), d(12)], [d(200), d(204)], `${name}: #MF at the FWAIT, then at the FLD1`);
    assert.equal(d(16) & (ES | ZE), ES | ZE, `${name}: the handler sees the pending ZE`);
    assert.equal(dv.getBigInt64(48, true), -123456789012345678n, `${name}: FBLD`);
    const bcd = (o: number) => Array.from(run.ram.subarray(0x310000 + o, 0x310000 + o + 10));
    assert.deepEqual(bcd(56), [0x32, 0x54, 0x76, 0x98, 0x10, 0x32, 0x54, 0x76, 0x98, 0], `${name}: FBSTP 987654321098765432`);
    assert.deepEqual(bcd(72), [2, 0, 0, 0, 0, 0, 0, 0, 0, 0], `${name}: FBSTP 2.5 rounds to even`);
    assert.deepEqual(bcd(88), [8, 0, 0, 0, 0, 0, 0, 0, 0, 0x80], `${name}: FBSTP -7.5`);
    assert.deepEqual(bcd(104), [0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff], `${name}: FBSTP 1e18: the BCD indefinite`);
    assert.equal(d(120) & IE, IE, `${name}: FBSTP 1e18 is an invalid operation`);
  }
});
