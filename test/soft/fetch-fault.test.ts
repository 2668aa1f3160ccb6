// A page fault on instruction fetch pushes the unfetchable address and sets CR2 to it. (The
// case that once pushed the previous instruction's address, a fetch fault right after IRETQ to
// user space, is covered by Linux's boot in test/linux/.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { assistIo } from '../../src/nvmm/assist.js';
import { PROT } from '../../src/nvmm/backend.js';
import { Machine } from '../../src/nvmm/machine.js';
import { GPR, SEG, STATE } from '../../src/nvmm/state.js';
import { DATA_GPA, mapPage, mapStandardPages, resetX64 } from '../../src/selftest/guest-x64.js';

test('#PF on a fetch pushes the faulting RIP and sets CR2 to it (soft)', (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  const image = assemble('soft/fetch-fault.asm');
  const machine = new Machine(SoftBackend.open());
  try {
    mapStandardPages(machine).set(image);
    const data = mapPage(machine, DATA_GPA, PROT.READ | PROT.WRITE);
    const dv = new DataView(data.buffer, data.byteOffset);
    dv.setBigUint64(0x808, 0x00209a0000000000n, true); // GDT[1]: 64-bit code
    const handler = Number(new DataView(image.buffer).getBigUint64(8, true));
    const gate = 14 * 16;
    dv.setUint16(gate, handler & 0xffff, true);
    dv.setUint16(gate + 2, 0x08, true);
    dv.setUint8(gate + 5, 0x8e);
    dv.setUint16(gate + 6, handler >>> 16, true);
    const vcpu = machine.createVcpu(0);
    resetX64(vcpu);
    const s = vcpu.state;
    s.segs[SEG.GDT] = { ...s.segs[SEG.GDT]!, base: 0x1800n, limit: 15 };
    s.segs[SEG.IDT] = { ...s.segs[SEG.IDT]!, base: 0x1000n, limit: 16 * 16 - 1 };
    s.gprs[GPR.RSP] = 0x1ff0n;
    vcpu.setState(STATE.ALL);
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
