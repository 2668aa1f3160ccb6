/**
 * Puts a vCPU in the state a loader's entry point asks for: real mode, flat 32-bit protected
 * mode, or 64-bit long mode on identity-mapped page tables the board writes into low memory.
 */
import type { EntryPoint } from '../loader/load-result.js';
import type { Vcpu } from '../nvmm/machine.js';
import { CR, GPR, MSR, SEG, STATE, type Segment } from '../nvmm/state.js';
import { CR0_ET, CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME } from '../x86/control-regs.js';
import { FLAG_FIXED1 } from '../x86/flags.js';
import { PTE_P, PTE_PS, PTE_RW } from '../x86/page-walk.js';
import { BOOT } from './layout.js';

const GDT_ENTRIES: readonly bigint[] = [
  0n,
  0x00af9b000000ffffn, // 0x08: 64-bit code, DPL 0
  0x00cf9b000000ffffn, // 0x10: 32-bit flat code
  0x00cf93000000ffffn, // 0x18: flat data
];
const SEL_CODE64 = 0x08;
const SEL_CODE32 = 0x10;
const SEL_DATA = 0x18;

const PTE_PRESENT_RW = BigInt(PTE_P | PTE_RW);
const PDE_2M = BigInt(PTE_P | PTE_RW | PTE_PS);

function flat(selector: number, code: boolean, long: boolean): Segment {
  return {
    selector,
    base: 0n,
    limit: 0xffffffff,
    attrib: { type: code ? 0xb : 0x3, s: true, dpl: 0, p: true, avl: false, l: long, def: !long, g: true },
  };
}

/** Writes the GDT (and for long mode the identity page tables, 4 GiB in 2 MiB pages) into `ram`. */
function writeTables(ram: Uint8Array, long: boolean): void {
  const dv = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  GDT_ENTRIES.forEach((e, i) => dv.setBigUint64(BOOT.GDT + 8 * i, e, true));
  if (!long) return;
  ram.fill(0, BOOT.PML4, BOOT.PD + 4 * 4096);
  dv.setBigUint64(BOOT.PML4, BigInt(BOOT.PDPT) | PTE_PRESENT_RW, true);
  for (let g = 0; g < 4; g++) {
    dv.setBigUint64(BOOT.PDPT + 8 * g, BigInt(BOOT.PD + 4096 * g) | PTE_PRESENT_RW, true);
    for (let i = 0; i < 512; i++) {
      dv.setBigUint64(BOOT.PD + 4096 * g + 8 * i, (BigInt(g * 512 + i) << 21n) | PDE_2M, true);
    }
  }
}

/** Sets every state group of `vcpu` for `entry`; `ram` is guest memory from guest-physical 0. */
export function enterGuest(vcpu: Vcpu, ram: Uint8Array, entry: EntryPoint): void {
  const s = vcpu.getState(STATE.ALL);
  const regs = entry.regs;
  s.gprs.fill(0n);
  s.gprs[GPR.RFLAGS] = BigInt(FLAG_FIXED1);
  s.gprs[GPR.RIP] = BigInt(entry.ip);
  s.gprs[GPR.RAX] = BigInt(regs.rax ?? 0);
  s.gprs[GPR.RBX] = BigInt(regs.rbx ?? 0);
  s.gprs[GPR.RSI] = BigInt(regs.rsi ?? 0);
  if (entry.mode === 'real16') {
    // CS:IP with CS = ip >> 4 rounded down to a paragraph; the rest of the reset state stays.
    const cs = (entry.ip >>> 4) & 0xf000;
    s.segs[SEG.CS] = { ...s.segs[SEG.CS]!, selector: cs, base: BigInt(cs << 4) };
    s.gprs[GPR.RIP] = BigInt(entry.ip - (cs << 4));
    vcpu.setState(STATE.ALL);
    return;
  }
  const long = entry.mode === 'long64';
  writeTables(ram, long);
  s.gprs[GPR.RSP] = BigInt(BOOT.STACK_TOP);
  s.segs[SEG.CS] = long ? flat(SEL_CODE64, true, true) : flat(SEL_CODE32, true, false);
  for (const i of [SEG.DS, SEG.ES, SEG.FS, SEG.GS, SEG.SS]) s.segs[i] = flat(SEL_DATA, false, false);
  s.segs[SEG.GDT] = { ...s.segs[SEG.GDT]!, base: BigInt(BOOT.GDT), limit: GDT_ENTRIES.length * 8 - 1 };
  s.segs[SEG.IDT] = { ...s.segs[SEG.IDT]!, base: 0n, limit: 0 };
  s.crs[CR.CR0] = BigInt((CR0_PE | CR0_ET | (long ? CR0_PG : 0)) >>> 0);
  s.crs[CR.CR3] = long ? BigInt(BOOT.PML4) : 0n;
  s.crs[CR.CR4] = long ? BigInt(CR4_PAE) : 0n;
  s.msrs[MSR.EFER] = long ? BigInt(EFER_LME | EFER_LMA) : 0n;
  vcpu.setState(STATE.ALL);
}
