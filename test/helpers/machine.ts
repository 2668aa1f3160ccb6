/**
 * A guest for a test, set up through the tsvmm API as a VMM would: a machine (destroyed when the
 * test's body returns or throws) with RAM from guest-physical 0 and its first vCPU; the entry
 * states the tests start their guests in (real mode, long mode at CPL 3 over identity-mapped
 * 2 MiB pages); running a vCPU to its next exit.
 */
import type { Backend } from '../../src/nvmm/backend.js';
import { PROT } from '../../src/nvmm/backend.js';
import type { IoExit, VcpuExit } from '../../src/nvmm/exit.js';
import { Machine, type Vcpu } from '../../src/nvmm/machine.js';
import { CR, GPR, MSR, SEG, STATE, type Segment, type X64State } from '../../src/nvmm/state.js';

/** Runs `body` with a machine of `backend`, destroyed afterwards. */
export function withMachine<T>(backend: Backend, body: (machine: Machine) => T): T {
  const machine = new Machine(backend);
  try {
    return body(machine);
  } finally {
    machine.destroy();
  }
}

export interface RamMachine {
  machine: Machine;
  /** vCPU 0, in its reset state. */
  vcpu: Vcpu;
  /** Guest RAM, from guest-physical 0. */
  ram: Uint8Array;
  /** `ram` as a DataView (the tests' guests are little-endian). */
  view: DataView;
}

/**
 * Runs `body` with a machine of `backend` that has `size` bytes of RAM at guest-physical 0
 * (readable, writable, executable) and vCPU 0; the machine and its RAM are freed afterwards.
 */
export function withRamMachine<T>(backend: Backend, size: number, body: (m: RamMachine) => T): T {
  return withMachine(backend, (machine) => {
    const mem = machine.allocateMemory(size);
    machine.mapHva(mem);
    machine.mapGpa(0, mem.hva, size, PROT.ALL);
    const ram = mem.bytes;
    return body({ machine, vcpu: machine.createVcpu(0), ram, view: new DataView(ram.buffer, ram.byteOffset, ram.byteLength) });
  });
}

/** Runs the vCPU to its next exit other than 'none' (the soft CPU's end of a time slice). */
export function runToExit(vcpu: Vcpu): VcpuExit {
  let exit = vcpu.run();
  while (exit.kind === 'none') exit = vcpu.run();
  return exit;
}

/**
 * Completes an I/O exit that carries no data (the soft CPU's: the instruction is left to the VMM)
 * by moving RIP past the instruction; returns the GPRs (RAX holds what an OUT wrote).
 */
export function stepOverIo(vcpu: Vcpu, exit: IoExit): BigUint64Array {
  const gprs = vcpu.getState(STATE.GPRS).gprs;
  gprs[GPR.RIP] = exit.npc!;
  vcpu.setState(STATE.GPRS);
  return gprs;
}

/** An exit as JSON with its bigints in hex, for failure messages. */
export function showExit(exit: VcpuExit): string {
  return JSON.stringify(exit, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v));
}

/**
 * Real mode at 0:`rip` (CS base and selector 0; everything else as after reset). Returns the
 * vCPU's state for the caller's additions; the caller commits it (setState).
 */
export function enterReal16(vcpu: Vcpu, rip: number): X64State {
  const s = vcpu.getState(STATE.ALL);
  s.segs[SEG.CS]!.base = 0n;
  s.segs[SEG.CS]!.selector = 0;
  s.gprs[GPR.RIP] = BigInt(rip);
  return s;
}

const PTE_USER_RW = 7n; // present, writable, user
const PDE_2M = 0x80n; // PS: the entry maps a 2 MiB page

/**
 * 4-level page tables at `at` (three pages: PML4, PDPT, PD) that identity-map the first `size`
 * bytes (a multiple of 2 MiB, at most 1 GiB) with user-accessible, writable 2 MiB pages.
 */
export function identityMap2M(view: DataView, at: number, size: number): void {
  view.setBigUint64(at, BigInt(at + 0x1000) | PTE_USER_RW, true);
  view.setBigUint64(at + 0x1000, BigInt(at + 0x2000) | PTE_USER_RW, true);
  for (let k = 0; k < size / 0x200000; k++) view.setBigUint64(at + 0x2000 + 8 * k, BigInt(k * 0x200000) | PDE_2M | PTE_USER_RW, true);
}

/** The selectors of enterLongModeUser: user data at GDT[3], user code at GDT[4] (RPL 3), the TSS at GDT[5]. */
export const USER_DS = 0x1b;
export const USER_CS = 0x23;
export const TSS_SELECTOR = 0x28;

export interface LongModeUser {
  /** 64: a 64-bit code segment; 32: a 32-bit one (compatibility mode). */
  bits: 64 | 32;
  /** Where the GDT goes, and its descriptors (for USER_DS, USER_CS and TSS_SELECTOR). */
  gdt: number;
  descriptors: readonly bigint[];
  /** Three pages for identityMap2M over all of RAM. */
  pageTables: number;
  /** The 64-bit TSS that TR points at. */
  tss: number;
  /** The IDT; without one (limit 0) an exception shuts the machine down. */
  idt?: { base: number; limit: number };
  /** EFER: LME and LMA unless given. */
  efer?: bigint;
  rip: number;
  rsp: number;
}

const EFER_LME_LMA = 0x500n;
const CR0_PG_AM_WP_NE_ET_MP_PE = 0x80050033n;
const CR4_OSXMMEXCPT_OSFXSR_PAE = 0x620n;
const RFLAGS_IOPL3_IF = 0x3202n;

function flatUser(selector: number, type: number, l: boolean, def: boolean): Segment {
  return { selector, attrib: { type, s: true, dpl: 3, p: true, avl: false, l, def, g: true }, limit: 0xffffffff, base: 0n };
}

function system(type: number, p: boolean, base: number, limit: number, selector = 0): Segment {
  return { selector, attrib: { type, s: false, dpl: 0, p, avl: false, l: false, def: false, g: false }, limit, base: BigInt(base) };
}

/**
 * Writes the GDT and the page tables of `e` to RAM and puts vCPU 0 in long mode at CPL 3 (IOPL 3,
 * so port I/O exits to the VMM) with flat user segments, every GPR zero but RSP and RIP.
 */
export function enterLongModeUser(m: RamMachine, e: LongModeUser): void {
  e.descriptors.forEach((d, k) => m.view.setBigUint64(e.gdt + 8 * k, d, true));
  identityMap2M(m.view, e.pageTables, m.ram.length);
  const s = m.vcpu.getState(STATE.ALL);
  s.segs[SEG.CS] = flatUser(USER_CS, 0xb, e.bits === 64, e.bits === 32);
  for (const i of [SEG.SS, SEG.DS, SEG.ES, SEG.FS, SEG.GS]) s.segs[i] = flatUser(USER_DS, 0x3, false, true);
  s.segs[SEG.GDT] = system(0, true, e.gdt, 8 * e.descriptors.length - 1);
  s.segs[SEG.IDT] = system(0, true, e.idt?.base ?? 0, e.idt?.limit ?? 0);
  s.segs[SEG.TR] = system(0xb, true, e.tss, 0x67, TSS_SELECTOR);
  s.segs[SEG.LDT] = system(2, false, 0, 0);
  s.crs[CR.CR0] = CR0_PG_AM_WP_NE_ET_MP_PE;
  s.crs[CR.CR3] = BigInt(e.pageTables);
  s.crs[CR.CR4] = CR4_OSXMMEXCPT_OSFXSR_PAE;
  s.msrs[MSR.EFER] = e.efer ?? EFER_LME_LMA;
  s.gprs.fill(0n);
  s.gprs[GPR.RSP] = BigInt(e.rsp);
  s.gprs[GPR.RIP] = BigInt(e.rip);
  s.gprs[GPR.RFLAGS] = RFLAGS_IOPL3_IF;
  m.vcpu.setState(STATE.ALL);
}
