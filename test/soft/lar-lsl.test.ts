// LAR, LSL and ARPL (guests/soft/lar-lsl.asm): the access rights (masked 0x00F0FF00) and the
// byte-granular limit of the descriptors each accepts, with ZF = 1; ZF = 0 and the destination
// unchanged for null selectors, selectors beyond their table, descriptor types the instruction
// does not take (the legacy and the long-mode sets differ) and RPL or CPL above a DPL (but for
// conforming code); 16-bit forms write the low half only. ARPL raises an RPL (ZF = 1) or leaves it;
// in long mode 0x63 is MOVSXD. RSM outside SMM is #UD; RDPMC is #GP(0) on the soft CPU, whose model
// has no performance counters. Also run on KVM where KVM has VMX/SVM, so the expectations are the
// real CPU's (but for RDPMC, which a virtual PMU may answer).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { backends, reports, runGuest } from './guest-run.js';

const RESULT = 0x310000;
const U = 0xdeadbeef, Z = 0x40;
const UNCHANGED: [number, number] = [U, 0];

/** 32-bit protected mode: [value, ZF] per probe, in the guest's order. */
const LEGACY: [string, [number, number]][] = [
  ['LAR data DPL 0', [0x00409300, Z]], ['LSL data DPL 0 (byte granular)', [0x12345, Z]],
  ['LAR data DPL 3', [0x00c0f300, Z]], ['LSL data DPL 3 (4 KiB granular)', [0x1fff, Z]],
  ['LAR conforming code', [0x00409f00, Z]], ['LSL conforming code', [0xffff, Z]],
  ['LAR code', [0x00409b00, Z]], ['LSL code', [0xffff, Z]],
  ['LAR data not present', [0x00401300, Z]], ['LSL data not present', [0xffff, Z]],
  ['LAR data DPL 0 with RPL 3', UNCHANGED], ['LSL data DPL 0 with RPL 3', UNCHANGED],
  ['LAR data DPL 3 with RPL 3', [0x00c0f300, Z]], ['LSL data DPL 3 with RPL 3', [0x1fff, Z]],
  ['LAR conforming code with RPL 3', [0x00409f00, Z]], ['LSL conforming code with RPL 3', [0xffff, Z]],
  ['LAR code DPL 0 with RPL 3', UNCHANGED], ['LSL code DPL 0 with RPL 3', UNCHANGED],
  ['LAR LDT', [0x00008200, Z]], ['LSL LDT', [7, Z]],
  ['LAR 16-bit TSS', [0x00008100, Z]], ['LSL 16-bit TSS', [0x2b, Z]],
  ['LAR busy 16-bit TSS', [0x00008300, Z]], ['LSL busy 16-bit TSS', [0x2b, Z]],
  ['LAR 16-bit call gate', [0x00008400, Z]], ['LSL 16-bit call gate', UNCHANGED],
  ['LAR task gate', [0x00008500, Z]], ['LSL task gate', UNCHANGED],
  ['LAR 32-bit TSS', [0x00008900, Z]], ['LSL 32-bit TSS', [0x67, Z]],
  ['LAR busy 32-bit TSS', [0x00008b00, Z]], ['LSL busy 32-bit TSS', [0x67, Z]],
  ['LAR 32-bit call gate', [0x00008c00, Z]], ['LSL 32-bit call gate', UNCHANGED],
  ['LAR interrupt gate', UNCHANGED], ['LSL interrupt gate', UNCHANGED],
  ['LAR trap gate', UNCHANGED], ['LSL trap gate', UNCHANGED],
  ['LAR system type 0', UNCHANGED], ['LSL system type 0', UNCHANGED],
  ['LAR system type 8', UNCHANGED], ['LSL system type 8', UNCHANGED],
  ['LAR null', UNCHANGED], ['LSL null', UNCHANGED],
  ['LAR null RPL 3', UNCHANGED], ['LSL null RPL 3', UNCHANGED],
  ['LAR beyond the GDT', UNCHANGED], ['LSL beyond the GDT', UNCHANGED],
  ['LAR LDT selector, no LDT', UNCHANGED], ['LSL LDT selector, no LDT', UNCHANGED],
  ['LAR LDT[0]', [0x00009300, Z]], ['LSL LDT[0]', [0x777, Z]],
  ['LAR beyond the LDT', UNCHANGED], ['LSL beyond the LDT', UNCHANGED],
  ['LAR ax (16-bit)', [0xdead9300, Z]], ['LSL ax (16-bit)', [0xdead2345, Z]],
  ['LAR from memory', [0x00409300, Z]], ['LSL from memory', [0x12345, Z]],
  ['ARPL RPL 0 -> 3', [0xdead0013, Z]], ['ARPL RPL 2 over 1', [0xdead0012, 0]], ['ARPL RPL 1 = 1', [0xdead0011, 0]],
  ['ARPL to memory, RPL 0 -> 2 (ZF)', [U, Z]],
];

/** Long mode: [value (64-bit), ZF or -1 (not checked)]. */
const LONG: [string, [bigint, number]][] = [
  ['LAR data', [0x00409300n, Z]], ['LSL data', [0x12345n, Z]],
  ['LAR LDT', [0x8200n, Z]], ['LSL LDT', [7n, Z]],
  ['LAR 64-bit TSS', [0x8900n, Z]], ['LSL 64-bit TSS', [0x67n, Z]],
  ['LAR busy 64-bit TSS', [0x8b00n, Z]], ['LSL busy 64-bit TSS', [0x67n, Z]],
  ['LAR 64-bit call gate', [0x8c00n, Z]], ['LSL 64-bit call gate', [0xdeadbeefdeadbeefn, 0]],
  ['LAR 16-bit TSS', [0xdeadbeefdeadbeefn, 0]], ['LSL 16-bit TSS', [0xdeadbeefdeadbeefn, 0]],
  ['LAR 16-bit call gate', [0xdeadbeefdeadbeefn, 0]], ['LSL 16-bit call gate', [0xdeadbeefdeadbeefn, 0]],
  ['LAR task gate', [0xdeadbeefdeadbeefn, 0]], ['LSL task gate', [0xdeadbeefdeadbeefn, 0]],
  ['LAR interrupt gate', [0xdeadbeefdeadbeefn, 0]], ['LSL interrupt gate', [0xdeadbeefdeadbeefn, 0]],
  ['LAR rax (zero-extended)', [0x00409300n, Z]], ['LSL rax', [0x12345n, Z]],
  ['63 C1: movsxd eax, ecx (zero-extends)', [0x80000001n, -1]], ['48 63 C1: movsxd rax, ecx', [0xffffffff80000001n, -1]],
];

test('soft CPU: LAR, LSL and ARPL: access rights, limits, ZF by type, privilege and table; 0x63 is MOVSXD in long mode; RSM #UD, RDPMC #GP(0)', (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  const image = assemble('soft/lar-lsl.asm');
  for (const [name, open] of backends()) {
    const run = runGuest(open(), image);
    assert.equal(run.end, 'end', `${name}: reports ${reports(run)}`);
    const dv = new DataView(run.ram.buffer, run.ram.byteOffset);
    const legacy = LEGACY.map(([what], k) => [what, [dv.getUint32(RESULT + 8 * k, true), dv.getUint32(RESULT + 8 * k + 4, true)]]);
    assert.deepEqual(legacy, LEGACY, name);
    assert.equal(dv.getUint32(RESULT + 8 * LEGACY.length, true), 0x22, `${name}: ARPL to memory wrote RPL 2`);
    const long = LONG.map(([what, [, zf]], k) => {
      const a = RESULT + 0x1000 + 16 * k;
      return [what, [dv.getBigUint64(a, true), zf < 0 ? -1 : dv.getUint32(a + 8, true)]];
    });
    assert.deepEqual(long, LONG, name);
    // RSM: #UD; RDPMC ECX = 0: #GP(0) (a CPU with a virtual PMU may return counter 0 instead)
    const r = reports(run);
    if (name === 'soft') assert.deepEqual(r, [6, 13, 0, 1, 2], name);
    else assert.ok(JSON.stringify(r) === '[6,13,0,1,2]' || JSON.stringify(r) === '[6,1,2]', `${name}: ${r}`);
  }
});
