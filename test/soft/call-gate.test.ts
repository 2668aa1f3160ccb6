// Call gates on the soft CPU (guests/soft/call-gate64.asm, call-gate32.asm): far CALL from CPL 3
// to CPL 0 through a gate with the stack switch through the TSS, far RET back to CPL 3, a gate to
// the same level, and the #GP/#NP cases. Each guest also runs on KVM where KVM has hardware
// virtualization (kvm_intel or kvm_amd loaded; not kvm_pvm, whose guests cannot own rings 0-3),
// so the expectations below are the real CPU's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guestImage, needsNasm } from '../helpers/nasm.js';
import { reports, runOnEachBackend } from './guest-run.js';

test('soft CPU: 64-bit call gates: CPL 3 -> 0 with RSP0, RETFQ back, same-level gate, #GP/#NP', needsNasm, () => {
  const image = guestImage('soft/call-gate64.asm');
  for (const [name, run] of runOnEachBackend(image)) {
    assert.equal(run.end, 'end', `${name}: reports ${reports(run)}`);
    assert.deepEqual(reports(run), [1, 2, 3, 4, 5, 6, 13, 0x50, 11, 0x60, 13, 0x08, 13, 0x80, 7], name);
    const R = 0x310000;
    const afterCall = run.u64(R + 128), afterSame = run.u64(R + 136);
    // At CPL 0: CS 0x08, SS null, RSP = RSP0 - 32, frame = caller's RIP, CS, RSP, SS.
    assert.deepEqual([0, 8, 16, 24, 32, 40, 48].map((o) => run.u64(R + o)),
      [0x08, 0, 0x170000 - 32, afterCall, 0x2b, 0x160000, 0x23], `${name}: CPL-0 side`);
    // Back at CPL 3: CS, SS, RSP restored; ES (DPL 0) nulled.
    assert.deepEqual([64, 72, 80, 88].map((o) => run.u64(R + o)), [0x2b, 0x23, 0x160000, 0], `${name}: after RETFQ`);
    // Same-level gate: CS 0x2b, 8-byte CS:RIP pushed on the CPL-3 stack.
    assert.deepEqual([96, 104, 112, 120].map((o) => run.u64(R + o)), [0x2b, 0x160000 - 16, afterSame, 0x2b], `${name}: same-level gate`);
  }
});

test('soft CPU: 32-bit call gates: CPL 3 -> 0 with SS0:ESP0 and parameter copy, RETF 8 back, conforming target, #GP/#NP', needsNasm, () => {
  const image = guestImage('soft/call-gate32.asm');
  for (const [name, run] of runOnEachBackend(image)) {
    assert.equal(run.end, 'end', `${name}: reports ${reports(run)}`);
    assert.deepEqual(reports(run), [1, 2, 3, 4, 5, 6, 13, 0x48, 13, 0x08, 11, 0x50, 7], name);
    const R = 0x310000;
    const afterCall = run.u32(R + 128), afterConf = run.u32(R + 132);
    // At CPL 0: CS 0x08, SS 0x10 (SS0), ESP = ESP0 - 24; frame: EIP, CS, parameters (order kept), ESP, SS.
    assert.deepEqual([0, 4, 8, 12, 16, 20, 24, 28, 32].map((o) => run.u32(R + o)),
      [0x08, 0x10, 0x9000 - 24, afterCall, 0x1b, 0x22222222, 0x11111111, 0x7000 - 8, 0x23], `${name}: CPL-0 side`);
    // Back at CPL 3: RETF 8 released the parameters on both stacks; ES (DPL 0) nulled.
    assert.deepEqual([64, 68, 72, 76].map((o) => run.u32(R + o) & (o === 72 ? -1 : 0xffff)).map((v) => v >>> 0),
      [0x1b, 0x23, 0x7000, 0], `${name}: after RETF 8`);
    // Conforming DPL-0 code through a gate: CPL stays 3 (CS.RPL = 3), CS:EIP pushed on the CPL-3 stack.
    assert.deepEqual([96, 100, 104, 108].map((o) => run.u32(R + o) & (o === 96 ? 0xffff : -1)).map((v) => v >>> 0),
      [0x63, 0x7000 - 8, afterConf, 0x1b], `${name}: conforming target`);
  }
});
