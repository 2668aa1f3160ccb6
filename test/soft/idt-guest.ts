/**
 * The 64-bit system guest of the soft CPU's small tests: the standard libnvmm guest (its code
 * page at 0x2000, src/selftest/guest-x64.ts) with a GDT at 0x1800 (64-bit code 0x08, flat data
 * 0x10 for the SS that IRETQ and MOV SS load), an IDT at 0x1000 (vectors 0-127) whose interrupt
 * gates point at the image's handlers, and the stack below 0x2000.
 */
import { PROT } from '../../src/nvmm/backend.js';
import type { Machine, Vcpu } from '../../src/nvmm/machine.js';
import { GPR, SEG, STATE } from '../../src/nvmm/state.js';
import { DATA_GPA, mapPage, mapStandardPages, resetX64 } from '../../src/selftest/guest-x64.js';

/** Maps `image` at 0x2000 and the tables, points each [vector, handler address] gate; returns the vCPU, ready to run. */
export function idtGuest(machine: Machine, image: Uint8Array, gates: [number, number][]): Vcpu {
  mapStandardPages(machine).set(image);
  const data = mapPage(machine, DATA_GPA, PROT.READ | PROT.WRITE);
  const dv = new DataView(data.buffer, data.byteOffset);
  dv.setBigUint64(0x808, 0x00209a0000000000n, true); // GDT[1]: 64-bit code
  dv.setBigUint64(0x810, 0x00cf92000000ffffn, true); // GDT[2]: flat data
  for (const [vector, handler] of gates) {
    const g = vector * 16;
    dv.setUint16(g, handler & 0xffff, true);
    dv.setUint16(g + 2, 0x08, true);
    dv.setUint8(g + 5, 0x8e);
    dv.setUint16(g + 6, handler >>> 16, true);
  }
  const vcpu = machine.createVcpu(0);
  resetX64(vcpu);
  const s = vcpu.state;
  s.segs[SEG.GDT] = { ...s.segs[SEG.GDT]!, base: 0x1800n, limit: 23 };
  s.segs[SEG.IDT] = { ...s.segs[SEG.IDT]!, base: 0x1000n, limit: 128 * 16 - 1 };
  s.gprs[GPR.RSP] = 0x1ff0n;
  vcpu.setState(STATE.ALL);
  return vcpu;
}

/** The 64-bit value at `offset` of the image (where the guests keep their handlers' addresses). */
export function imageQword(image: Uint8Array, offset: number): number {
  return Number(new DataView(image.buffer, image.byteOffset).getBigUint64(offset, true));
}
