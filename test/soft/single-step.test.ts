// RFLAGS.TF: a single-step #DB trap after each instruction that began with TF set, pushing the
// next instruction's RIP with DR6.BS set; none after the POPF that sets TF, none into an
// INT3's handler, and after MOV SS only once the next instruction has run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { assistIo } from '../../src/nvmm/assist.js';
import { PROT } from '../../src/nvmm/backend.js';
import { Machine } from '../../src/nvmm/machine.js';
import { GPR, SEG, STATE } from '../../src/nvmm/state.js';
import { DATA_GPA, mapPage, mapStandardPages, resetX64 } from '../../src/selftest/guest-x64.js';

{
  test('TF single-steps with a #DB trap per instruction (soft)', (t) => {
    if (!hasNasm()) return t.skip('nasm not installed');
    const image = assemble('soft/single-step.asm');
    const iv = new DataView(image.buffer, image.byteOffset);
    const machine = new Machine(SoftBackend.open());
    try {
      mapStandardPages(machine).set(image);
      const data = mapPage(machine, DATA_GPA, PROT.READ | PROT.WRITE);
      const dv = new DataView(data.buffer, data.byteOffset);
      dv.setBigUint64(0x808, 0x00209a0000000000n, true); // GDT[1]: 64-bit code
      dv.setBigUint64(0x810, 0x00cf92000000ffffn, true); // GDT[2]: data (SS, which IRETQ and MOV SS load)
      const gate = (vector: number, handler: number): void => {
        const g = vector * 16;
        dv.setUint16(g, handler & 0xffff, true);
        dv.setUint16(g + 2, 0x08, true);
        dv.setUint8(g + 5, 0x8e);
        dv.setUint16(g + 6, handler >>> 16, true);
      };
      const dbHandler = Number(iv.getBigUint64(8, true));
      gate(1, dbHandler);
      const expect: number[] = [];
      for (let a = 0x18; iv.getBigUint64(a, true) !== 0n; a += 8) expect.push(Number(iv.getBigUint64(a, true)));
      gate(3, Number(iv.getBigUint64(0x10, true)));
      const vcpu = machine.createVcpu(0);
      resetX64(vcpu);
      const s = vcpu.state;
      s.segs[SEG.GDT] = { ...s.segs[SEG.GDT]!, base: 0x1800n, limit: 23 };
      s.segs[SEG.IDT] = { ...s.segs[SEG.IDT]!, base: 0x1000n, limit: 16 * 16 - 1 };
      s.gprs[GPR.RSP] = 0x1ff0n;
      vcpu.setState(STATE.ALL);
      const words: number[] = [];
      for (let exit = vcpu.run(); exit.kind !== 'halted'; exit = vcpu.run()) {
        assert.equal(exit.kind, 'io', `unexpected ${exit.kind}`);
        assistIo(vcpu, (io) => words.push(new DataView(io.data.buffer, io.data.byteOffset).getUint32(0, true)));
      }
      const BS = 0xffff4ff0; // DR6 as the handler resets it (0xffff0ff0), with BS (bit 14)
      const want: number[] = [];
      expect.forEach((rip, k) => {
        if (k === 4) want.push(0xb9); // INT3 at s5, between the traps pushing s5 and s7
        want.push(rip, BS);
      });
      want.push(0xd0e, 3);
      assert.deepEqual(words.map((w) => w >>> 0), want, 'pushed RIPs, DR6, #BP and the end');
    } finally {
      machine.destroy();
    }
  });
}
