/**
 * The 64-bit system guest of the small tests that take exceptions and interrupts: the standard
 * libnvmm guest (its code page at 0x2000, src/selftest/guest-x64.ts) with a GDT at 0x1800 (64-bit
 * code 0x08, flat data 0x10 for the SS that IRETQ and MOV SS load), an IDT at 0x1000 whose
 * interrupt gates point at the image's handlers, and the stack below 0x2000. Such a guest reports
 * by OUT of a dword and ends with HLT.
 */
import assert from 'node:assert/strict';
import { assistIo, type IoAccess } from '../../src/nvmm/assist.js';
import { PROT } from '../../src/nvmm/backend.js';
import type { Machine, Vcpu } from '../../src/nvmm/machine.js';
import { GPR, SEG, STATE } from '../../src/nvmm/state.js';
import { CODE_GPA, DATA_GPA, mapPage, mapStandardPages, resetX64 } from '../../src/selftest/guest-x64.js';

const GDT = DATA_GPA + 0x800;
const IDT = DATA_GPA;
const STACK_TOP = DATA_GPA + 0xff0;
/** The IDT's size unless a test says otherwise: vectors 0-127. */
const VECTORS = 128;

/** Maps `image` at 0x2000 and the tables, and points each [vector, handler address] gate. */
export function mapIdtGuest(machine: Machine, image: Uint8Array, gates: readonly (readonly [number, number])[]): void {
  mapStandardPages(machine).set(image);
  const data = mapPage(machine, DATA_GPA, PROT.READ | PROT.WRITE);
  const dv = new DataView(data.buffer, data.byteOffset);
  dv.setBigUint64(GDT - DATA_GPA + 8, 0x00209a0000000000n, true); // GDT[1]: 64-bit code
  dv.setBigUint64(GDT - DATA_GPA + 16, 0x00cf92000000ffffn, true); // GDT[2]: flat data
  for (const [vector, handler] of gates) {
    const g = IDT - DATA_GPA + vector * 16;
    dv.setUint16(g, handler & 0xffff, true);
    dv.setUint16(g + 2, 0x08, true);
    dv.setUint8(g + 5, 0x8e); // present, DPL 0, 64-bit interrupt gate
    dv.setUint16(g + 6, handler >>> 16, true);
  }
}

/** reset_machine() with the guest's GDT, an IDT of `vectors` gates, the stack, and RIP at `rip`; committed. */
export function enterIdtGuest(vcpu: Vcpu, rip: bigint | number = CODE_GPA, vectors = VECTORS): void {
  resetX64(vcpu);
  const s = vcpu.state;
  s.segs[SEG.GDT] = { ...s.segs[SEG.GDT]!, base: BigInt(GDT), limit: 23 };
  s.segs[SEG.IDT] = { ...s.segs[SEG.IDT]!, base: BigInt(IDT), limit: vectors * 16 - 1 };
  s.gprs[GPR.RSP] = BigInt(STACK_TOP);
  s.gprs[GPR.RIP] = BigInt(rip);
  vcpu.setState(STATE.ALL);
}

/** Maps the guest (mapIdtGuest) and returns vCPU 0 entered at its code page, ready to run. */
export function idtGuest(machine: Machine, image: Uint8Array, gates: readonly (readonly [number, number])[]): Vcpu {
  mapIdtGuest(machine, image, gates);
  const vcpu = machine.createVcpu(0);
  enterIdtGuest(vcpu);
  return vcpu;
}

/** The 64-bit value at `offset` of the image (where the guests keep their handlers' addresses). */
export function imageQword(image: Uint8Array, offset: number): number {
  return Number(new DataView(image.buffer, image.byteOffset).getBigUint64(offset, true));
}

/** The dword an OUT wrote. */
export function outWord(io: IoAccess): number {
  return new DataView(io.data.buffer, io.data.byteOffset).getUint32(0, true);
}

/** Runs the vCPU until HLT and returns the dword of each OUT on the way; any other exit fails. */
export function outWordsUntilHalt(vcpu: Vcpu): number[] {
  const words: number[] = [];
  for (let exit = vcpu.run(); exit.kind !== 'halted'; exit = vcpu.run()) {
    assert.equal(exit.kind, 'io', `unexpected ${exit.kind}`);
    assistIo(vcpu, (io) => words.push(outWord(io)));
  }
  return words;
}
