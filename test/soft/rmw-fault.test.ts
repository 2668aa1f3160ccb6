// Read-modify-write instructions whose write faults (guests/soft/rmw-fault.asm): the destination
// is on a read-only page, the read succeeds, the write raises #PF, and the flags must be those from
// before the instruction, in the fault's frame and when the instruction runs again after the
// handler made the page writable: ADC, SBB, RCL and RCR read CF, so a CF the failed attempt had
// already changed would give another result (as after fork, on a copy-on-write page). Interpreted
// (rmw-fault.asm, CPL 3 in 32-bit mode) and compiled (rmw-fault64.asm: loops in long mode whose
// last iteration faults, at CPL 0 with CR0.WP). Also run on KVM where KVM has VMX/SVM, so the
// expectations are the real CPU's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { backends, reports, runGuest } from './guest-run.js';

const RESULT = 0x310000;
const PF = 14, PF_PRESENT = 1, PF_WRITE = 2, PF_USER = 4;
const ALL_STATUS = 0x8d5; // OF SF ZF AF PF CF, all set before each instruction
const CF = 0x1;

/** Each case: its instruction, the destination's value after it, and the status flags it defines (mask) with their values. */
const CASES = [
  { what: 'ADC [mem], reg', value: 3, mask: 0x8d5, flags: 0x004 },
  { what: 'SBB [mem], reg', value: 3, mask: 0x8d5, flags: 0x004 },
  { what: 'RCL [mem], 1', value: 0x80000001, mask: 0x8d5, flags: 0x8d4 },
  { what: 'RCR [mem], CL', value: 0x80000001, mask: 0x8d5, flags: 0x8d4 },
  { what: 'ADD [mem], reg', value: 2, mask: 0x8d5, flags: 0x000 },
  { what: 'INC [mem]', value: 0x80000000, mask: 0x8d5, flags: 0x895 },
  { what: 'BTS [mem], imm', value: 8, mask: CF, flags: 0 },
];

test('soft CPU: a read-modify-write whose write faults leaves the flags as they were (the frame, and the instruction run again)', (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  const image = assemble('soft/rmw-fault.asm');
  for (const [name, open] of backends()) {
    const run = runGuest(open(), image, 8 << 20, 500);
    assert.equal(run.end, 'end', `${name}: reports ${reports(run)}`);
    assert.deepEqual(reports(run), [0xdd], name);
    const at = (k: number, o: number) => run.u32(RESULT + 32 * k + o);
    CASES.forEach((c, k) => {
      assert.deepEqual({ vector: at(k, 0), error: at(k, 4), frameFlags: at(k, 8) }, { vector: PF, error: PF_PRESENT | PF_WRITE | PF_USER, frameFlags: ALL_STATUS }, `${name}: ${c.what}: the fault`);
      assert.equal(at(k, 12), c.value, `${name}: ${c.what}: the value after the instruction ran again`);
      assert.equal(at(k, 16) & c.mask, c.flags, `${name}: ${c.what}: the flags after it`);
    });
  }
});

/** The compiled cases: each instruction 4999 times on SCRATCH, then once on its read-only page with CF set (and ZF, from the CMP). */
const HOT = [
  { what: 'ADC', value: 3, scratch: 4999 * 2 },
  { what: 'SBB', value: 3, scratch: (-4999 * 2) >>> 0 },
  { what: 'ADD', value: 2, scratch: 4999 },
];
const ZF = 0x40;

test('soft CPU: compiled read-modify-writes whose write faults leave the flags as they were', (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  const image = assemble('soft/rmw-fault64.asm');
  for (const [name, open] of backends()) {
    const run = runGuest(open(), image, 16 << 20, 500);
    assert.equal(run.end, 'end', `${name}: reports ${reports(run)}`);
    assert.deepEqual(reports(run), [0xdd], name);
    const at = (k: number, o: number) => run.u32(RESULT + 32 * k + o);
    HOT.forEach((c, k) => {
      assert.deepEqual({ vector: at(k, 0), error: at(k, 4), frameFlags: at(k, 8) & (CF | ZF) }, { vector: PF, error: PF_PRESENT | PF_WRITE, frameFlags: CF | ZF }, `${name}: ${c.what}: the fault`);
      assert.equal(at(k, 12), c.value, `${name}: ${c.what}: the value after it ran again`);
      assert.equal(at(k, 16), c.scratch, `${name}: ${c.what} on the writable page`);
    });
  }
});
