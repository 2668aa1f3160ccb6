// The debug capability in KVM's terms (backends/kvm/guest-debug.ts), without /dev/kvm: the control
// flags against <linux/kvm.h>, DR7 as the SDM lays it out, and KVM_EXIT_DEBUG decoded back.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as abi from '../../src/backends/kvm/abi.js';
import { decodeDebugExit, guestDebugControl, guestDebugRegs } from '../../src/backends/kvm/guest-debug.js';
import { NO_DEBUG, type DebugConfig } from '../../src/nvmm/debug.js';
import { hasTool, run, withTempDir } from '../helpers/tools.js';

test('KVM_GUESTDBG_* flags match <linux/kvm.h>', (t) => {
  if (!hasTool('gcc')) return t.skip('gcc not installed (needed to read <linux/kvm.h>)');
  const names = ['KVM_GUESTDBG_ENABLE', 'KVM_GUESTDBG_SINGLESTEP', 'KVM_GUESTDBG_USE_SW_BP', 'KVM_GUESTDBG_USE_HW_BP'] as const;
  const out = withTempDir((dir) => {
    const src = ['#include <stdio.h>', '#include <linux/kvm.h>', 'int main(void) {', ...names.map((n) => `  printf("%lu\\n", (unsigned long)${n});`), '  return 0;', '}'];
    writeFileSync(join(dir, 'g.c'), src.join('\n'));
    run('gcc', ['-o', join(dir, 'g'), join(dir, 'g.c')]);
    return run(join(dir, 'g'), []);
  });
  assert.deepEqual(out.trim().split('\n').map(Number), names.map((n) => abi[n]));
});

const cfg = (c: Partial<DebugConfig>): DebugConfig => ({ ...NO_DEBUG, ...c });

test('guest debug: the control word asks KVM for what the configuration uses', () => {
  const { KVM_GUESTDBG_ENABLE: E, KVM_GUESTDBG_SINGLESTEP: S, KVM_GUESTDBG_USE_SW_BP: SW, KVM_GUESTDBG_USE_HW_BP: HW } = abi;
  assert.equal(guestDebugControl(NO_DEBUG, false), 0);
  assert.equal(guestDebugControl(NO_DEBUG, true), E | S, 'the TPR policy single-steps');
  assert.equal(guestDebugControl(cfg({ singleStep: true }), false), E | S);
  assert.equal(guestDebugControl(cfg({ softwareBreakpoints: [0x1000n] }), false), E | SW);
  assert.equal(guestDebugControl(cfg({ hardwareBreakpoints: [0x1000n] }), false), E | HW);
  assert.equal(guestDebugControl(cfg({ watchpoints: [{ addr: 0x2000n, len: 4, access: 'write' }] }), false), E | HW);
});

test('guest debug: DR0-DR3 hold the slots and DR7 enables them (SDM vol. 3, 18.2.4)', () => {
  const regs = guestDebugRegs(cfg({
    hardwareBreakpoints: [0xffffffff81000000n],
    watchpoints: [
      { addr: 0x2000n, len: 8, access: 'write' },
      { addr: 0x3002n, len: 2, access: 'access' },
      { addr: 0x4004n, len: 4, access: 'read' },
    ],
  }));
  assert.deepEqual(regs.slice(0, 4), [0xffffffff81000000n, 0x2000n, 0x3002n, 0x4004n]);
  assert.equal(regs[4], 0n);
  assert.equal(regs[6], 0n);
  // G0-G3 (bits 1, 3, 5, 7), GE and bit 10; slot 0 R/W 00 LEN 00 (instruction), slot 1 R/W 01 LEN 10
  // (8-byte writes), slot 2 R/W 11 LEN 01, slot 3 R/W 11 LEN 11 (reads are watched as accesses).
  const dr7 = 0xaan | 0x600n | (0b0000n << 16n) | (0b1001n << 20n) | (0b0111n << 24n) | (0b1111n << 28n);
  assert.equal(regs[7]!.toString(16), dr7.toString(16));
  assert.deepEqual(guestDebugRegs(NO_DEBUG), new Array<bigint>(8).fill(0n));
});

test('guest debug: KVM_EXIT_DEBUG decodes to the reason, or back to the guest', () => {
  const watch = { addr: 0x2000n, len: 8, access: 'write' } as const;
  const c = cfg({ singleStep: true, softwareBreakpoints: [0x1000n], hardwareBreakpoints: [0x5000n], watchpoints: [watch] });
  assert.deepEqual(decodeDebugExit(3, 0x1000n, 0n, c, false), { kind: 'stop', reason: 'swbreak' });
  assert.deepEqual(decodeDebugExit(3, 0x1234n, 0n, c, false), { kind: 'reinject', vector: 3 }, "the guest's own INT3");
  assert.deepEqual(decodeDebugExit(1, 0x5000n, 0xffff0ff1n, c, false), { kind: 'stop', reason: 'hwbreak' }, 'B0: slot 0');
  assert.deepEqual(decodeDebugExit(1, 0x5008n, 0xffff0ff2n, c, false), { kind: 'stop', reason: 'watch', watchpoint: watch }, 'B1: slot 1');
  assert.deepEqual(decodeDebugExit(1, 0x5008n, 0xffff4ff0n, c, false), { kind: 'stop', reason: 'step' }, 'BS');
  assert.deepEqual(decodeDebugExit(1, 0x5008n, 0xffff4ff0n, NO_DEBUG, true), { kind: 'tprStep' });
  assert.deepEqual(decodeDebugExit(1, 0x5008n, 0xffff4ff0n, NO_DEBUG, false), { kind: 'reinject', vector: 1 }, "the guest's own TF");
  assert.deepEqual(decodeDebugExit(1, 0x5008n, 0xffff0ff8n, c, false), { kind: 'reinject', vector: 1 }, 'B3: no slot of ours');
});
