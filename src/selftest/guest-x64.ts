/**
 * The standard guest of the libnvmm suites (spec §0.1): identity-mapped 4-level paging with the
 * tables at 0x3000-0x6000, code at 0x2000, flat 64-bit segments, and the register values of
 * `reset_machine()`.
 */
import { PAGE_SIZE } from '../memory/page.js';
import { PROT } from '../nvmm/backend.js';
import type { Machine, Vcpu } from '../nvmm/machine.js';
import { CR, GPR, MSR, SEG, STATE, emptyState, copyState, type SegmentAttrib, type X64State } from '../nvmm/state.js';
import { CR0_AM, CR0_ET, CR0_MP, CR0_NE, CR0_PE, CR0_PG, CR0_WP, CR4_PAE, EFER_LMA, EFER_LME, EFER_SCE } from '../x86/control-regs.js';
import { FLAG_FIXED1 } from '../x86/flags.js';
import { XSTATE_X87 } from '../x86/fxsave.js';
import { PTE_P, PTE_RW } from '../x86/page-walk.js';

export const CODE_GPA = 0x2000;
export const DATA_GPA = 0x1000;
const PT_BASE = 0x3000;
const PTE_PRESENT_RW = BigInt(PTE_P | PTE_RW);

/** Maps one fresh zeroed page at `gpa` and returns its bytes. */
export function mapPage(machine: Machine, gpa: number, prot: number): Uint8Array {
  const page = machine.allocateMemory(PAGE_SIZE);
  machine.mapHva(page);
  machine.mapGpa(gpa, page.hva, PAGE_SIZE, prot);
  return page.bytes;
}

/** Maps the page tables and the code page; returns the code page's bytes. */
export function mapStandardPages(machine: Machine): Uint8Array {
  const tables = [0, 1, 2, 3].map((i) => mapPage(machine, PT_BASE + i * PAGE_SIZE, PROT.READ | PROT.WRITE));
  const entry = (table: Uint8Array, index: number, value: bigint) =>
    new DataView(table.buffer, table.byteOffset).setBigUint64(index * 8, value, true);
  entry(tables[0]!, 0, 0x4000n | PTE_PRESENT_RW); // L4 -> L3
  entry(tables[1]!, 0, 0x5000n | PTE_PRESENT_RW); // L3 -> L2
  entry(tables[2]!, 0, 0x6000n | PTE_PRESENT_RW); // L2 -> L1
  entry(tables[3]!, 1, 0x1000n | PTE_PRESENT_RW); // L1: 0x1000 (data or MMIO)
  entry(tables[3]!, 2, 0x2000n | PTE_PRESENT_RW); // L1: 0x2000 (code)
  return mapPage(machine, CODE_GPA, PROT.READ | PROT.EXEC);
}

function seg(selector: number, type: number): { selector: number; attrib: SegmentAttrib; limit: number; base: bigint } {
  return {
    selector,
    attrib: { type: type & 0xf, s: (type & 0x10) !== 0, dpl: 0, p: true, avl: true, l: true, def: false, g: true },
    limit: 0xffff,
    base: 0n,
  };
}

const SDT_MEMERA = 27; // code, execute/read, accessed
const SDT_MEMRWA = 19; // data, read/write, accessed
const SDT_SYSLDT = 2;
const SDT_SYS386BSY = 11;

/** reset_machine(): every register zero except the long-mode set-up. */
export function resetX64(vcpu: Vcpu): void {
  vcpu.getState(STATE.ALL);
  const s = emptyState();
  s.gprs[GPR.RFLAGS] = BigInt(FLAG_FIXED1);
  s.gprs[GPR.RIP] = BigInt(CODE_GPA);
  s.segs[SEG.CS] = seg(0x08, SDT_MEMERA);
  for (const i of [SEG.SS, SEG.DS, SEG.ES, SEG.FS, SEG.GS]) s.segs[i] = seg(0x10, SDT_MEMRWA);
  s.segs[SEG.GDT] = seg(0, 0);
  s.segs[SEG.IDT] = seg(0, 0);
  s.segs[SEG.LDT] = seg(0, SDT_SYSLDT);
  s.segs[SEG.TR] = seg(0, SDT_SYS386BSY);
  // 0x80050033, the suite's reset_machine() value (spec §0.1): ET, not TS, which would make the
  // guest's first x87/SSE instruction raise #NM; KVM reads ET back as 1 whatever is written.
  s.crs[CR.CR0] = BigInt((CR0_PG | CR0_AM | CR0_WP | CR0_NE | CR0_ET | CR0_MP | CR0_PE) >>> 0);
  s.crs[CR.CR4] = BigInt(CR4_PAE);
  s.crs[CR.CR3] = BigInt(PT_BASE);
  s.crs[CR.XCR0] = BigInt(XSTATE_X87); // which the CPU requires
  s.msrs[MSR.EFER] = BigInt(EFER_LMA | EFER_LME | EFER_SCE);
  s.msrs[MSR.PAT] = 0x0007040600070406n;
  copyState(vcpu.state, s, STATE.ALL);
  vcpu.setState(STATE.ALL);
}

/**
 * Multiboot's entry state, for guests that start in 32-bit code: flat 4 GiB segments (code 0x08,
 * data 0x10: no GDT is read until the guest loads its own), protected mode without paging, RIP at
 * `rip`. Returns the vCPU's state for the caller's additions; the caller commits it (setState).
 */
export function enterFlat32(vcpu: Vcpu, rip: number): X64State {
  const flat = (selector: number, type: number) => ({
    selector, attrib: { type, s: true, dpl: 0, p: true, avl: false, l: false, def: true, g: true }, limit: 0xffffffff, base: 0n,
  });
  const s = vcpu.getState(STATE.ALL);
  s.segs[SEG.CS] = flat(0x08, 0xb);
  for (const i of [SEG.SS, SEG.DS, SEG.ES, SEG.FS, SEG.GS]) s.segs[i] = flat(0x10, 0x3);
  s.crs[CR.CR0] = BigInt(CR0_ET | CR0_PE);
  s.gprs[GPR.RIP] = BigInt(rip);
  s.gprs[GPR.RFLAGS] = BigInt(FLAG_FIXED1);
  return s;
}
