/**
 * System side of the soft CPU: segment loading, interrupt and exception delivery (real mode IVT,
 * protected-mode and long-mode IDT with privilege changes, IST, #DF and triple fault), IRET, far
 * transfers, SYSCALL/SYSRET, SYSENTER/SYSEXIT, control registers, MSRs, CPUID and the instructions
 * that exit to the VMM (IN/OUT, HLT, RDMSR/WRMSR of foreign MSRs). SDM vol. 3 chapters 3, 5, 6.
 */
import { TWO32 } from '../../common/bits.js';
import {
  CR0_EM, CR0_ET, CR0_MP, CR0_PE, CR0_PG, CR0_TS, CR0_WP, CR4_DE, CR4_MCE, CR4_OSFXSR, CR4_OSXMMEXCPT, CR4_PAE, CR4_PGE, CR4_PSE,
  CR4_PVI, CR4_SMAP, CR4_SMEP, CR4_TSD, CR4_VME, EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE,
} from '../../x86/control-regs.js';
import {
  MSR_AMD_DE_CFG, MSR_AMD_HWCR, MSR_AMD_INT_PENDING, MSR_AMD_PERF_CTL0, MSR_AMD_PERF_CTR3, MSR_AMD_SYSCFG, MSR_APIC_BASE,
  MSR_ARCH_CAPABILITIES, MSR_CSTAR, MSR_EFER, MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE, MSR_LSTAR, MSR_MTRR_DEF_TYPE,
  MSR_MTRR_FIX16K_80000, MSR_MTRR_FIX16K_A0000, MSR_MTRR_FIX4K_C0000, MSR_MTRR_FIX4K_F8000, MSR_MTRR_FIX64K_00000,
  MSR_MTRR_PHYSBASE0, MSR_MTRR_PHYSMASK7, MSR_MTRRCAP, MSR_PAT, MSR_PRED_CMD, MSR_SFMASK, MSR_SPEC_CTRL, MSR_STAR,
  MSR_SYSENTER_CS, MSR_SYSENTER_EIP, MSR_SYSENTER_ESP, MSR_TSC, MSR_TSC_AUX, MSR_TSC_DEADLINE, MSR_UCODE_REV,
} from '../../x86/msr.js';
import type { InlineApic } from '../../nvmm/backend.js';
import { X2APIC_MSR_FIRST, X2APIC_MSR_LAST } from '../../x86/apic.js';
import { EXC_DE, EXC_DF, EXC_GP, EXC_NP, EXC_PF, EXC_SS, EXC_TS, EXC_UD } from '../../x86/exceptions.js';
import { FLAG_CF, FLAG_IF, FLAG_NT, FLAG_RF, FLAG_TF, FLAG_AC, FLAG_VM, FLAG_ZF } from '../../x86/flags.js';
import {
  A_DB, A_DPL_SHIFT, A_G, A_L, A_P, A_S,
  CPU_FAULT, S_CS, S_DS, S_ES, S_FS, S_GDT, S_GS, S_IDT, S_LDT, S_SS, S_TR, type Cpu,
} from './cpu.js';
import { IMM, MEM, ea, rdOp, wrOp, type Insn } from './insn.js';
import { countZero } from './ops-int.js';

// ---------------------------------------------------------------------------------------------
// MSRs

/** HWCR bits a write may carry: FFDIS (6, TLB flush filter off), IGNNE emulation (8) and TLB cache off (3) are ignored, McStatusWrEn (18) kept. */
const HWCR_IGNORED = (1 << 3) | (1 << 6) | (1 << 8);
const HWCR_MCSTATUSWREN = 1 << 18;
/** DE_CFG.LFENCE_SERIALIZE (bit 1): LFENCE is dispatch-serializing, as it trivially is here. */
const DE_CFG_LFENCE_SERIALIZE = 1 << 1;

/**
 * IA32_ARCH_CAPABILITIES: this CPU executes nothing speculatively, so it is immune to every
 * speculative-execution and data-sampling attack the MSR can report, and says so: RDCL_NO (0),
 * IBRS_ALL (1), SSB_NO (4), MDS_NO (5), IF_PSCHANGE_MC_NO (6), TAA_NO (8), SBDR_SSDP_NO (13),
 * FBSDP_NO (14), PSDP_NO (15), BHI_NO (20), PBRSB_NO (24), GDS_NO (26), RFDS_NO (27). Linux then
 * skips page-table isolation, retpolines and buffer clearing, none of which would protect anything.
 */
const ARCH_CAPABILITIES = (1 << 0) | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 13) | (1 << 14) | (1 << 15) |
  (1 << 20) | (1 << 24) | (1 << 26) | (1 << 27);

/** MSRs every model has (x86-64 with SYSENTER, PAT and MTRRs); a CPU model adds the ones its features and vendor bring. */
export const ARCH_MSRS: ReadonlySet<number> = new Set([
  MSR_TSC, MSR_APIC_BASE, MSR_SYSENTER_CS, MSR_SYSENTER_ESP, MSR_SYSENTER_EIP, MSR_PAT, MSR_EFER, MSR_STAR, MSR_LSTAR,
  MSR_CSTAR, MSR_SFMASK, MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE, MSR_MTRRCAP, MSR_MTRR_DEF_TYPE,
  ...msrRange(MSR_MTRR_PHYSBASE0, MSR_MTRR_PHYSMASK7), MSR_MTRR_FIX64K_00000, MSR_MTRR_FIX16K_80000, MSR_MTRR_FIX16K_A0000,
  ...msrRange(MSR_MTRR_FIX4K_C0000, MSR_MTRR_FIX4K_F8000),
]);

/** The numbers from `first` to `last`, both included. */
function msrRange(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, k) => first + k);
}

/**
 * What the CPU model decides in the system instructions (the backend sets it per vCPU, see
 * cpu-models.ts): the MSRs the CPU implements (every other RDMSR/WRMSR exits to the VMM, as with
 * NVMM), the CR4 bits beyond the base ones that MOV to CR4 accepts, and the IA32_SPEC_CTRL bits.
 */
export interface SysModel {
  msrs: ReadonlySet<number>;
  cr4: number;
  specCtrl: number;
}

/** CR4 bits every model accepts. */
const CR4_BASE = CR4_VME | CR4_PVI | CR4_TSD | CR4_DE | CR4_PSE | CR4_PAE | CR4_MCE | CR4_PGE | CR4_OSFXSR | CR4_OSXMMEXCPT;

const BASE_SYS_MODEL: SysModel = { msrs: ARCH_MSRS, cr4: 0, specCtrl: 0 };
function sysModelOf(c: Cpu): SysModel {
  return c.sysModel ?? BASE_SYS_MODEL;
}

/** Reads an MSR of the model (hRdmsr checked that it has it); the high half in c.hi. */
export function readMsr(c: Cpu, msr: number): number {
  if (msr >= MSR_AMD_PERF_CTL0 && msr <= MSR_AMD_PERF_CTR3) { c.hi = 0; return 0; }
  switch (msr) {
    case MSR_TSC: return c.tsc();
    case MSR_EFER: c.hi = 0; return c.efer;
    case MSR_FS_BASE: c.hi = c.segBaseHi[S_FS]!; return c.segBaseLo[S_FS]!;
    case MSR_GS_BASE: c.hi = c.segBaseHi[S_GS]!; return c.segBaseLo[S_GS]!;
    case MSR_MTRRCAP: c.hi = 0; return 0x508; // 8 variable ranges, fixed ranges, write-combining
    case MSR_ARCH_CAPABILITIES: c.hi = 0; return ARCH_CAPABILITIES;
    case MSR_PRED_CMD: c.gp(0); // write-only
    case MSR_UCODE_REV: case MSR_AMD_SYSCFG: case MSR_AMD_INT_PENDING: c.hi = 0; return 0; // no patch; no SMM, no C1E
    case MSR_AMD_DE_CFG: c.hi = 0; return DE_CFG_LFENCE_SERIALIZE;
  }
  const v = c.msr.get(msr);
  c.hi = v ? v[1] : 0;
  return v ? v[0] : 0;
}

/** Writes an MSR of the model; #GP for a value it refuses. */
export function writeMsr(c: Cpu, msr: number, lo: number, hi: number): void {
  if (msr >= MSR_AMD_PERF_CTL0 && msr <= MSR_AMD_PERF_CTR3) return; // no PMU: dropped
  switch (msr) {
    case MSR_TSC: {
      const now = Math.floor(c.now());
      c.tscOffset = (hi >>> 0) * TWO32 + (lo >>> 0) - now;
      return;
    }
    case MSR_EFER: {
      if (hi !== 0 || (lo & ~(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE))) c.gp(0);
      // LME cannot change while paging is on; LMA is read-only (kept).
      if ((c.cr0 & CR0_PG) && ((lo ^ c.efer) & EFER_LME)) c.gp(0);
      c.efer = (lo & ~EFER_LMA) | (c.efer & EFER_LMA);
      c.flushTlb(false);
      c.updateMode();
      return;
    }
    case MSR_FS_BASE: case MSR_GS_BASE: {
      const s = msr === MSR_FS_BASE ? S_FS : S_GS;
      c.segBaseLo[s] = lo; c.segBaseHi[s] = hi;
      c.updateMode();
      return;
    }
    case MSR_MTRRCAP: case MSR_ARCH_CAPABILITIES: case MSR_AMD_SYSCFG: case MSR_AMD_INT_PENDING: c.gp(0);
    case MSR_SPEC_CTRL: if (hi !== 0 || (lo & ~sysModelOf(c).specCtrl)) c.gp(0); break;
    case MSR_PRED_CMD: if (hi !== 0 || (lo & ~1)) c.gp(0); return; // IBPB: no predictor to flush
    case MSR_UCODE_REV: return; // no microcode to load
    case MSR_AMD_HWCR: {
      const v = lo & ~HWCR_IGNORED;
      if (hi !== 0 || (v !== 0 && v !== HWCR_MCSTATUSWREN)) c.gp(0);
      lo = v;
      break;
    }
    case MSR_AMD_DE_CFG: if (hi !== 0 || lo !== DE_CFG_LFENCE_SERIALIZE) c.gp(0); return; // fixed
  }
  c.msr.set(msr, [lo | 0, hi | 0]);
}

// ---------------------------------------------------------------------------------------------
// Descriptors and segment loading

let descLo = 0, descHi = 0;

/** RSPn or ISTn (at byte `off`) of the 64-bit TSS into tssSpLo/tssSpHi; #TS(TR) beyond the TSS limit. */
let tssSpLo = 0, tssSpHi = 0;
function readTssRsp(c: Cpu, off: number): void {
  if (off + 7 > c.segLimit[S_TR]!) c.fault(EXC_TS, c.segSel[S_TR]! & 0xfffc);
  const ta = (c.segBaseLo[S_TR]! >>> 0) + off;
  const th = (c.segBaseHi[S_TR]! + (ta >= TWO32 ? 1 : 0)) | 0;
  tssSpLo = rdSys32(c, ta | 0, th); tssSpHi = rdSys32(c, (ta + 4) | 0, th);
}

/**
 * Pushes `words` ([lo, hi] pairs, the first pair pushed first) as 64-bit slots below spLo:spHi
 * with the rights of CPL 3 (`user` 1) or of a supervisor level, then sets RSP; a write that
 * faults leaves RSP as it was.
 */
function pushFrame64(c: Cpu, spLo: number, spHi: number, words: number[], user: number): void {
  let s = (spLo >>> 0) + (spHi | 0) * TWO32;
  const saveUser = c.user;
  c.user = user;
  try {
    for (let k = 0; k < words.length; k += 2) {
      s -= 8;
      const hi = Math.floor(s / TWO32);
      c.wr64((s - hi * TWO32) | 0, hi | 0, words[k]!, words[k + 1]!);
    }
  } finally { c.user = saveUser; }
  const hi = Math.floor(s / TWO32);
  c.regs[8] = (s - hi * TWO32) | 0; c.regs[9] = hi | 0;
}

/** Reads a system-table dword with supervisor rights (implicit access). */
function rdSys32(c: Cpu, lo: number, hi: number): number {
  const u = c.user;
  c.user = 0;
  try { return c.rd32(lo, hi); } finally { c.user = u; }
}

function wrSys32(c: Cpu, lo: number, hi: number, v: number): void {
  const u = c.user;
  c.user = 0;
  try { c.wr32(lo, hi, v); } finally { c.user = u; }
}

/** Linear address of descriptor `sel` in the GDT or LDT, or -1 past the limit; high half in c.hi. */
function descAddr(c: Cpu, sel: number, size = 8): number {
  const t = (sel & 4) !== 0 ? S_LDT : S_GDT;
  const off = sel & 0xfff8;
  if (off + size - 1 > c.segLimit[t]!) return -1;
  const s = (c.segBaseLo[t]! >>> 0) + off;
  c.hi = (c.segBaseHi[t]! + (s >= TWO32 ? 1 : 0)) | 0;
  return s >>> 0;
}

/** Loads descriptor `sel` into descLo/descHi; faults with `vector`(sel) when outside the table. */
function readDesc(c: Cpu, sel: number, vector = EXC_GP): void {
  const a = descAddr(c, sel);
  if (a < 0) c.fault(vector, sel & 0xfffc);
  const hi = c.hi;
  descLo = rdSys32(c, a | 0, hi);
  descHi = rdSys32(c, (a + 4) | 0, hi);
}

function setAccessed(c: Cpu, sel: number): void {
  if (descHi & 0x100) return;
  const a = descAddr(c, sel);
  if (a < 0) return;
  descHi |= 0x100;
  wrSys32(c, (a + 4) | 0, c.hi, descHi);
}

/** Puts descLo/descHi into segment register `s`. */
function loadCache(c: Cpu, s: number, sel: number, baseHi = 0): void {
  c.segSel[s] = sel;
  c.segBaseLo[s] = ((descLo >>> 16) | ((descHi & 0xff) << 16) | (descHi & 0xff000000)) | 0;
  c.segBaseHi[s] = baseHi;
  let limit = (descLo & 0xffff) | (descHi & 0xf0000);
  if (descHi & (1 << 23)) limit = limit * 4096 + 0xfff;
  c.segLimit[s] = limit;
  c.segAttr[s] = (descHi >>> 8) & 0xf0ff;
}

/** Real-mode / virtual-8086 segment load. */
function loadReal(c: Cpu, s: number, sel: number): void {
  c.segSel[s] = sel & 0xffff;
  c.segBaseLo[s] = (sel & 0xffff) << 4;
  c.segBaseHi[s] = 0;
  if (c.fl & FLAG_VM) { c.segLimit[s] = 0xffff; c.segAttr[s] = 0xf3 | (s === S_CS ? 0x8 : 0); }
}

/** MOV/POP to a data or stack segment register (not CS), with the protected-mode checks. */
export function loadSeg(c: Cpu, s: number, sel: number): void {
  sel &= 0xffff;
  if (!c.pe || (c.fl & FLAG_VM)) { loadReal(c, s, sel); c.updateMode(); return; }
  if ((sel & 0xfffc) === 0) {
    if (s === S_SS && !(c.long64 && c.cpl !== 3)) c.gp(0);
    c.segSel[s] = sel; c.segBaseLo[s] = 0; c.segBaseHi[s] = 0; c.segLimit[s] = 0;
    c.segAttr[s] = s === S_SS ? (c.cpl << A_DPL_SHIFT) | A_DB | 0x13 | A_P : 0;
    if (s === S_SS) c.segAttr[s] = (c.cpl << A_DPL_SHIFT) | 0x13 | A_P | (c.long64 ? 0 : A_DB);
    c.updateMode();
    return;
  }
  readDesc(c, sel);
  const attr = (descHi >>> 8) & 0xf0ff;
  const type = attr & 0xf, dpl = (attr >> A_DPL_SHIFT) & 3, rpl = sel & 3;
  const code = (type & 8) !== 0;
  if (!(attr & A_S)) c.gp(sel & 0xfffc);
  if (s === S_SS) {
    if (code || !(type & 2) || rpl !== c.cpl || dpl !== c.cpl) c.gp(sel & 0xfffc);
    if (!(attr & A_P)) c.fault(EXC_SS, sel & 0xfffc);
  } else {
    if (code && !(type & 2)) c.gp(sel & 0xfffc); // execute-only code
    if ((!code || !(type & 4)) && (rpl > dpl || c.cpl > dpl)) c.gp(sel & 0xfffc);
    if (!(attr & A_P)) c.fault(EXC_NP, sel & 0xfffc);
  }
  setAccessed(c, sel);
  loadCache(c, s, sel);
  c.updateMode();
}

/** Loads CS for a far transfer to `sel` (already checked by the caller for privilege). */
function loadCs(c: Cpu, sel: number, cpl: number): void {
  if (!c.pe || (c.fl & FLAG_VM)) { loadReal(c, S_CS, sel); c.updateMode(); return; }
  readDesc(c, sel);
  const attr = (descHi >>> 8) & 0xf0ff;
  if (!(attr & A_S) || !(attr & 8)) c.gp(sel & 0xfffc);
  if (!(attr & A_P)) c.fault(EXC_NP, sel & 0xfffc);
  setAccessed(c, sel);
  loadCache(c, S_CS, (sel & 0xfffc) | cpl);
}

/** Checks a code-segment selector for a far JMP/CALL/RET/IRET target; returns its DPL. */
function checkCode(c: Cpu, sel: number): number {
  if ((sel & 0xfffc) === 0) c.gp(0);
  readDesc(c, sel);
  return checkCodeDesc(c, sel);
}

/** checkCode on the descriptor already in descLo/descHi. */
function checkCodeDesc(c: Cpu, sel: number): number {
  const attr = (descHi >>> 8) & 0xf0ff;
  if (!(attr & A_S) || !(attr & 8)) c.gp(sel & 0xfffc);
  if (!(attr & A_P)) c.fault(EXC_NP, sel & 0xfffc);
  return (attr >> A_DPL_SHIFT) & 3;
}

/** Sets SS for a CPL change in long mode: a null selector with RPL = cpl. */
function nullSs(c: Cpu, cpl: number): void {
  c.segSel[S_SS] = cpl;
  c.segBaseLo[S_SS] = 0; c.segBaseHi[S_SS] = 0; c.segLimit[S_SS] = 0xffffffff;
  c.segAttr[S_SS] = 0x13 | A_P | (cpl << A_DPL_SHIFT) | A_G | A_DB;
}

// ---------------------------------------------------------------------------------------------
// Interrupt and exception delivery

/** Event kinds for deliver(). */
export const EV_EXT = 0, EV_NMI = 1, EV_EXC = 2, EV_SOFT = 3;

/** Vectors whose delivery failure turns into #DF (contributory exceptions and #PF). */
const CONTRIBUTORY = new Set([EXC_DE, EXC_TS, EXC_NP, EXC_SS, EXC_GP, EXC_PF]);

/**
 * Delivers an event through the IVT/IDT. The return address pushed is c.ripLo/ripHi (the caller
 * sets it to the faulting or the next instruction). errorCode < 0: none. Returns false on triple fault.
 */
export function deliver(c: Cpu, vector: number, errorCode: number, kind: number): boolean {
  c.events++;
  try {
    deliverOnce(c, vector, errorCode, kind);
    return true;
  } catch (e) {
    if (e !== CPU_FAULT) throw e;
    // A fault while delivering.
    if (vector === EXC_DF) return false;
    if (kind === EV_EXC && CONTRIBUTORY.has(vector) && CONTRIBUTORY.has(c.faultVector)) {
      return deliver(c, EXC_DF, 0, EV_EXC);
    }
    return deliver(c, c.faultVector, c.faultCode, EV_EXC);
  }
}

function deliverOnce(c: Cpu, vector: number, errorCode: number, kind: number): void {
  c.halted = false;
  const flags = c.getRflags();
  if (!c.pe) {
    // Real mode: IVT entry = offset:segment at IDT base + 4*vector.
    if (vector * 4 + 3 > c.segLimit[S_IDT]!) c.gp(0);
    const a = (c.segBaseLo[S_IDT]! + vector * 4) | 0;
    const ip = c.rd16(a, 0), cs = c.rd16((a + 2) | 0, 0);
    c.push(flags, 0, 2);
    c.push(c.segSel[S_CS]!, 0, 2);
    c.push(c.ripLo, 0, 2);
    c.fl &= ~(FLAG_IF | FLAG_TF | FLAG_AC | FLAG_RF);
    loadReal(c, S_CS, cs);
    c.ripLo = ip; c.ripHi = 0;
    c.updateMode();
    return;
  }
  const lma = (c.efer & EFER_LMA) !== 0;
  const gsz = lma ? 16 : 8;
  if (vector * gsz + gsz - 1 > c.segLimit[S_IDT]!) c.gp(vector * 8 + 2 + (kind === EV_SOFT ? 0 : 1));
  const gs = (c.segBaseLo[S_IDT]! >>> 0) + vector * gsz;
  const gHi = (c.segBaseHi[S_IDT]! + (gs >= TWO32 ? 1 : 0)) | 0;
  const g0 = rdSys32(c, gs | 0, gHi), g1 = rdSys32(c, (gs + 4) | 0, gHi);
  const g2 = lma ? rdSys32(c, (gs + 8) | 0, gHi) : 0;
  const type = (g1 >> 8) & 0x1f, gdpl = (g1 >> 13) & 3, present = (g1 & 0x8000) !== 0;
  const ext = kind === EV_SOFT ? 0 : 1;
  const trap = (type & 0xf) === 0xf || (type & 0xf) === 0x7;
  if ((type & 0xf) === 5) c.doExit({ kind: 'invalid', reason: `task gate in IDT vector ${vector} (task switching is not implemented)` });
  const gateOk = lma ? (type === 0xe || type === 0xf) : (type === 0xe || type === 0xf || type === 6 || type === 7);
  if (!gateOk) c.gp(vector * 8 + 2 + ext);
  if (kind === EV_SOFT && gdpl < c.cpl) c.gp(vector * 8 + 2);
  if (!present) c.fault(EXC_NP, vector * 8 + 2 + ext);
  const sel = (g0 >>> 16) & 0xffff;
  let offLo = (g0 & 0xffff) | (g1 & 0xffff0000);
  const offHi = lma ? g2 : 0;
  if ((sel & 0xfffc) === 0) c.gp(ext);
  readDesc(c, sel);
  const cattr = (descHi >>> 8) & 0xf0ff;
  const cdpl = (cattr >> A_DPL_SHIFT) & 3;
  if (!(cattr & A_S) || !(cattr & 8) || cdpl > c.cpl) c.gp((sel & 0xfffc) + ext);
  if (!(cattr & A_P)) c.fault(EXC_NP, (sel & 0xfffc) + ext);
  if (lma && (!(cattr & A_L) || (cattr & A_DB))) c.gp((sel & 0xfffc) + ext);
  const conforming = (cattr & 4) !== 0;
  const newCpl = conforming ? c.cpl : cdpl;
  const R = c.regs;
  const oldSs = c.segSel[S_SS]!, oldSpLo = R[8]!, oldSpHi = R[9]!;
  const oldCs = c.segSel[S_CS]!;
  const retLo = c.ripLo | 0, retHi = c.ripHi;
  const csDesc0 = descLo, csDesc1 = descHi;
  if (lma) {
    const ist = g1 & 7;
    let spLo = R[8]!, spHi = R[9]!;
    if (ist !== 0 || newCpl !== c.cpl) {
      readTssRsp(c, ist !== 0 ? 0x24 + (ist - 1) * 8 : 4 + newCpl * 8);
      spLo = tssSpLo; spHi = tssSpHi;
    }
    const words: number[] = [oldSs, 0, oldSpLo, oldSpHi, flags, 0, oldCs, 0, retLo, retHi];
    if (errorCode >= 0) words.push(errorCode, 0);
    pushFrame64(c, spLo & ~15, spHi, words, newCpl === 3 ? 1 : 0);
    descLo = csDesc0; descHi = csDesc1;
    loadCache(c, S_CS, (sel & 0xfffc) | newCpl);
    if (newCpl !== c.cpl) nullSs(c, newCpl);
  } else {
    const is32 = (type & 8) !== 0;
    const w = is32 ? 4 : 2;
    if (newCpl < c.cpl) {
      // Inner stack from the TSS (32-bit TSS: ESPn at 4 + 8n, SSn at 8 + 8n).
      const off = 4 + newCpl * 8;
      const ta = c.segBaseLo[S_TR]!;
      const esp = rdSys32(c, (ta + off) | 0, 0), ss = rdSys32(c, (ta + off + 4) | 0, 0) & 0xffff;
      if ((ss & 0xfffc) === 0) c.fault(EXC_TS, ext);
      readDesc(c, ss, EXC_TS);
      const saveCpl = c.cpl;
      loadCache(c, S_SS, ss);
      R[8] = esp;
      c.cpl = newCpl; c.user = newCpl === 3 ? 1 : 0;
      c.stackSize = (c.segAttr[S_SS]! & A_DB) ? 4 : 2;
      c.effBaseLo[S_SS] = c.segBaseLo[S_SS]!;
      try {
        c.push(oldSs, 0, w); c.push(oldSpLo, 0, w);
      } catch (e) { void saveCpl; throw e; }
    }
    c.push(flags, 0, w);
    c.push(oldCs, 0, w);
    c.push(retLo, 0, w);
    if (errorCode >= 0) c.push(errorCode, 0, w);
    descLo = csDesc0; descHi = csDesc1;
    loadCache(c, S_CS, (sel & 0xfffc) | newCpl);
    if (!is32) offLo &= 0xffff;
  }
  c.fl &= ~(FLAG_TF | FLAG_NT | FLAG_RF | FLAG_VM);
  if (!trap) c.fl &= ~FLAG_IF;
  c.ripLo = offLo >>> 0; c.ripHi = offHi | 0;
  c.updateMode();
  if (kind === EV_NMI) c.nmiBlocked = true;
}

// ---------------------------------------------------------------------------------------------
// Instructions

/** INT n (sub 0), INT3 (1), INTO (2), INT1 (3). */
export function hInt(c: Cpu, i: Insn): void {
  if (i.sub === 2 && !(c.lz.of())) return;
  const v = i.sub === 0 ? i.imm & 0xff : i.sub === 1 ? 3 : i.sub === 2 ? 4 : 1;
  // An INT3 a debugger placed stops the vCPU instead (debug.ts), RIP at it.
  if (i.sub === 1 && c.onInt3 !== null && c.onInt3(c)) c.doExit({ kind: 'debug', reason: 'swbreak' });
  // INT n, INT3 and INTO are software interrupts (the gate's DPL is checked, EXT = 0 in error
  // codes); INT1 (ICEBP) is delivered as the #DB exception, whatever the gate's DPL
  if (!deliver(c, v, -1, i.sub === 3 ? EV_EXC : EV_SOFT)) c.doExit({ kind: 'shutdown' });
}

/** IRET/IRETD/IRETQ (operand size in i.size). */
export function hIret(c: Cpu, i: Insn): void {
  c.onSerialize?.(); // another vCPU may have written code this one runs (exec.ts)
  const size = i.size;
  const R = c.regs;
  if (!c.pe) {
    const ip = c.pop(size), cs = c.pop(size), fl = c.pop(size);
    loadReal(c, S_CS, cs);
    c.ripLo = ip >>> 0; c.ripHi = 0;
    setFlagsPriv(c, size === 2 ? (c.getRflags() & 0xffff0000) | (fl & 0xffff) : fl, 0, size);
    c.updateMode();
    c.nmiBlocked = false;
    return;
  }
  if (c.fl & FLAG_NT) c.doExit({ kind: 'invalid', reason: 'IRET with NT=1 (task return) is not implemented' });
  const sp0 = R[8]!, sp1 = R[9]!;
  try {
    const ip = c.pop(size), iph = c.hi;
    const cs = c.pop(size) & 0xffff;
    const fl = c.pop(size);
    const rpl = cs & 3;
    const dpl = checkCode(c, cs);
    if (rpl < c.cpl) c.gp(cs & 0xfffc);
    const conforming = (descHi & 0x400) !== 0;
    if (conforming ? dpl > rpl : dpl !== rpl) c.gp(cs & 0xfffc);
    const popStack = c.long64 || rpl > c.cpl;
    let spLo = 0, spHi = 0, ss = 0;
    if (popStack) {
      spLo = c.pop(size); spHi = size === 8 ? c.hi : 0;
      ss = c.pop(size) & 0xffff;
    }
    const oldCpl = c.cpl;
    const csDesc0 = descLo, csDesc1 = descHi;
    // Commit.
    setFlagsPriv(c, fl, oldCpl, size);
    descLo = csDesc0; descHi = csDesc1;
    loadCache(c, S_CS, cs);
    if (popStack) {
      if ((ss & 0xfffc) === 0) {
        if (!(c.efer & EFER_LMA) || rpl === 3) c.gp(0);
        nullSs(c, rpl);
        c.segSel[S_SS] = ss;
      } else {
        readDesc(c, ss);
        loadCache(c, S_SS, ss);
      }
      if (size === 8) { R[8] = spLo; R[9] = spHi; } else if (size === 4) { R[8] = spLo; R[9] = 0; } else R[8] = (R[8]! & ~0xffff) | (spLo & 0xffff);
    }
    if (size === 8 || c.long64) { c.ripLo = ip >>> 0; c.ripHi = size === 8 ? iph : 0; } else { c.ripLo = (size === 2 ? ip & 0xffff : ip) >>> 0; c.ripHi = 0; }
    c.updateMode();
    if (c.cpl > oldCpl) nullDataSegs(c);
    c.nmiBlocked = false;
  } catch (e) {
    R[8] = sp0; R[9] = sp1;
    throw e;
  }
}

/** After a return to an outer level: data segments the new CPL may not use become null. */
function nullDataSegs(c: Cpu): void {
  for (const s of [S_ES, S_DS, S_FS, S_GS]) {
    const a = c.segAttr[s]!;
    const dpl = (a >> A_DPL_SHIFT) & 3;
    const conformingCode = (a & 0xc) === 0xc;
    if ((a & A_S) && !conformingCode && dpl < c.cpl) { c.segSel[s] = 0; c.segAttr[s] = 0; }
  }
}

/** Writes RFLAGS from POPF/IRET with the privilege rules (IOPL at CPL 0, IF at CPL <= IOPL). */
function setFlagsPriv(c: Cpu, v: number, cpl: number, size: number): void {
  const old = c.getRflags();
  let mask = 0x257fd5; // CF PF AF ZF SF TF IF DF OF IOPL NT AC ID (VIF VIP handled below)
  const iopl = (old >> 12) & 3;
  if (c.pe && cpl > 0) mask &= ~0x3000;
  if (c.pe && cpl > iopl) mask &= ~FLAG_IF;
  if (size === 2) mask &= 0xffff;
  const nv = (old & ~mask) | (v & mask);
  c.setRflags(nv & ~FLAG_RF & ~FLAG_VM | (old & FLAG_VM));
}

export function hPushf(c: Cpu, i: Insn): void {
  c.push(c.getRflags() & 0xfcffff, 0, i.size);
}

export function hPopf(c: Cpu, i: Insn): void {
  const v = c.pop(i.size);
  const oldIf = c.fl & FLAG_IF;
  setFlagsPriv(c, v, c.cpl, i.size);
  if (!oldIf && (c.fl & FLAG_IF)) c.intShadow = true;
}

export function hCliSti(c: Cpu, i: Insn): void {
  if (c.pe && c.cpl > ((c.fl >> 12) & 3)) c.gp(0);
  if (i.sub === 0) c.fl &= ~FLAG_IF;
  else {
    if (!(c.fl & FLAG_IF)) c.intShadow = true;
    c.fl |= FLAG_IF;
  }
}

/** MOV Sreg, r/m (o0 = segment number). */
export function hMovToSeg(c: Cpu, i: Insn): void {
  if (i.o0 === S_CS) c.ud();
  const v = rdOp(c, i, i.o1, 2);
  loadSeg(c, i.o0, v);
  if (i.o0 === S_SS) { c.intShadow = true; c.ssShadow = true; }
}

/** MOV r/m, Sreg (o1 = segment number). */
export function hMovFromSeg(c: Cpu, i: Insn): void {
  const v = c.segSel[i.o1]!;
  if (i.o0 === MEM) { ea(c, i); c.wr16(c.eaLo, c.eaHi, v); } else c.setReg(i.o0, i.size, v, 0);
}

export function hPushSeg(c: Cpu, i: Insn): void {
  c.push(c.segSel[i.o0]!, 0, i.size);
}

export function hPopSeg(c: Cpu, i: Insn): void {
  const R = c.regs;
  const sp0 = R[8]!, sp1 = R[9]!;
  const v = c.pop(i.size);
  try { loadSeg(c, i.o0, v); } catch (e) { R[8] = sp0; R[9] = sp1; throw e; }
  if (i.o0 === S_SS) { c.intShadow = true; c.ssShadow = true; }
}

/** LDS LES LSS LFS LGS: segment in i.sub. */
export function hLoadFar(c: Cpu, i: Insn): void {
  ea(c, i);
  const off = c.rd(c.eaLo, c.eaHi, i.size), offHi = c.hi;
  const n = (c.eaLo >>> 0) + i.size;
  const sel = c.rd16(n | 0, c.eaHi + (n >= TWO32 ? 1 : 0));
  loadSeg(c, i.sub, sel);
  c.setReg(i.o0, i.size, off, offHi);
}

/** Far JMP (sub 0) / far CALL (sub 1) to selector:offset, direct (IMM: imm, imm2) or from memory. */
export function hFarJmpCall(c: Cpu, i: Insn): void {
  let off: number, sel: number, offHi = 0;
  if (i.o0 === MEM) {
    ea(c, i);
    off = c.rd(c.eaLo, c.eaHi, i.size); offHi = i.size === 8 ? c.hi : 0;
    const n = (c.eaLo >>> 0) + i.size;
    sel = c.rd16(n | 0, c.eaHi + (n >= TWO32 ? 1 : 0));
  } else { off = i.imm; sel = i.imm2; }
  const size = i.size;
  const retCs = c.segSel[S_CS]!, retLo = c.ripLo | 0, retHi = c.ripHi;
  if (c.pe && !(c.fl & FLAG_VM)) {
    if ((sel & 0xfffc) === 0) c.gp(0);
    readDesc(c, sel);
    // S = 0: a call gate, task gate or TSS (the cold path).
    if ((descHi & 0x1000) === 0) { farGate(c, i.sub === 1, sel, retCs, retLo, retHi); return; }
    const dpl = checkCodeDesc(c, sel);
    const conforming = (descHi & 0x400) !== 0;
    if (conforming ? dpl > c.cpl : ((sel & 3) > c.cpl || dpl !== c.cpl)) c.gp(sel & 0xfffc);
  }
  if (i.sub === 1) {
    const R = c.regs;
    const sp0 = R[8]!, sp1 = R[9]!;
    try { c.push(retCs, 0, size); c.push(retLo, retHi, size); } catch (e) { R[8] = sp0; R[9] = sp1; throw e; }
  }
  loadCs(c, sel, c.pe ? c.cpl : 0);
  c.ripLo = (size === 2 ? off & 0xffff : off) >>> 0;
  c.ripHi = size === 8 ? offHi : 0;
  c.updateMode();
}

/** System descriptor types (S = 0) a far CALL/JMP may name. */
const T_TSS16 = 1, T_CALL16 = 4, T_TASK = 5, T_TSS32 = 9, T_CALL32 = 0xc;

/** Segment limit of the descriptor in descLo/descHi, in bytes (granularity applied). */
function descLimit(): number {
  const l = (descLo & 0xffff) | (descHi & 0xf0000);
  return descHi & (1 << 23) ? l * 4096 + 0xfff : l;
}

function rdSys16(c: Cpu, lo: number, hi: number): number {
  const u = c.user;
  c.user = 0;
  try { return c.rd16(lo, hi); } finally { c.user = u; }
}

/**
 * Far CALL/JMP whose selector names a system descriptor (in descLo/descHi): through a call gate
 * (16- and 32-bit gates in legacy mode, 64-bit gates in IA-32e mode), with the stack switch of a
 * CALL to a more privileged level. SDM vol. 2A CALL and JMP, vol. 3A 5.8.3-5.8.6. Task gates and
 * TSSs exit (task switching is not implemented).
 */
function farGate(c: Cpu, call: boolean, gsel: number, retCs: number, retLo: number, retHi: number): void {
  const lma = (c.efer & EFER_LMA) !== 0;
  const type = (descHi >>> 8) & 0xf;
  const gerr = gsel & 0xfffc;
  if (!lma && (type === T_TASK || type === T_TSS16 || type === T_TSS32)) {
    c.doExit({ kind: 'invalid', reason: `far ${call ? 'call' : 'jmp'} to a task (selector 0x${gsel.toString(16)}): task switching is not implemented` });
  }
  if (lma ? type !== T_CALL32 : type !== T_CALL32 && type !== T_CALL16) c.gp(gerr);
  const g0 = descLo, g1 = descHi;
  const gdpl = (g1 >>> 13) & 3;
  if (gdpl < c.cpl || (gsel & 3) > gdpl) c.gp(gerr);
  if (!(g1 & 0x8000)) c.fault(EXC_NP, gerr);
  let offLo = (g0 & 0xffff) | (g1 & 0xffff0000), offHi = 0;
  if (type === T_CALL16) offLo &= 0xffff;
  if (lma) {
    // 16-byte gate: offset 63:32 in the third dword, type 0 in the fourth.
    const a = descAddr(c, gsel, 16);
    if (a < 0) c.gp(gerr);
    const ah = c.hi, n = a + 8;
    const nh = (ah + (n >= TWO32 ? 1 : 0)) | 0;
    offHi = rdSys32(c, n | 0, nh);
    if ((rdSys32(c, (n + 4) | 0, nh) >>> 8) & 0x1f) c.gp(gerr);
  }
  const csel = (g0 >>> 16) & 0xffff;
  const cerr = csel & 0xfffc;
  if (cerr === 0) c.gp(0);
  readDesc(c, csel);
  const attr = (descHi >>> 8) & 0xf0ff;
  const dpl = (attr >> A_DPL_SHIFT) & 3, conforming = (attr & 4) !== 0;
  if (!(attr & A_S) || !(attr & 8)) c.gp(cerr);
  if (call || conforming ? dpl > c.cpl : dpl !== c.cpl) c.gp(cerr);
  if (lma && (!(attr & A_L) || (attr & A_DB))) c.gp(cerr);
  if (!(attr & A_P)) c.fault(EXC_NP, cerr);
  if (lma ? (offHi >> 15) !== 0 && (offHi >> 15) !== -1 : (offLo >>> 0) > descLimit()) c.gp(0);
  if (call && !conforming && dpl < c.cpl) {
    callInner(c, lma, type === T_CALL32 ? 4 : 2, g1 & 0x1f, csel, dpl, retCs, retLo, retHi);
  } else {
    if (call) {
      const R = c.regs;
      const w = lma ? 8 : type === T_CALL32 ? 4 : 2;
      const sp0 = R[8]!, sp1 = R[9]!, cs0 = descLo, cs1 = descHi;
      try { c.push(retCs, 0, w); c.push(retLo, w === 8 ? retHi : 0, w); } catch (e) { R[8] = sp0; R[9] = sp1; throw e; }
      descLo = cs0; descHi = cs1;
    }
    setAccessed(c, csel);
    loadCache(c, S_CS, cerr | c.cpl);
  }
  c.ripLo = offLo >>> 0; c.ripHi = offHi | 0;
  c.updateMode();
}

/**
 * The stack switch of a CALL through a gate to the more privileged level `newCpl` (the target
 * code descriptor is in descLo/descHi): the inner stack comes from the TSS (SSn:ESPn of a 16- or
 * 32-bit TSS, copying `count` parameters of `w` bytes; RSPn of the 64-bit TSS with a null SS),
 * the caller's SS:rSP and CS:rIP are pushed there. Nothing is committed until every write succeeded.
 */
function callInner(c: Cpu, lma: boolean, w: number, count: number, csel: number, newCpl: number, retCs: number, retLo: number, retHi: number): void {
  const R = c.regs;
  const cs0 = descLo, cs1 = descHi;
  const trErr = c.segSel[S_TR]! & 0xfffc, trLimit = c.segLimit[S_TR]!;
  const tb = c.segBaseLo[S_TR]! >>> 0;
  const oldSs = c.segSel[S_SS]!, oldSpLo = R[8]!, oldSpHi = R[9]!;
  const u = c.user;
  if (lma) {
    readTssRsp(c, 4 + newCpl * 8);
    if ((tssSpHi >> 15) !== 0 && (tssSpHi >> 15) !== -1) c.fault(EXC_SS, 0);
    pushFrame64(c, tssSpLo, tssSpHi, [oldSs, 0, oldSpLo, oldSpHi, retCs, 0, retLo, retHi], 0);
    nullSs(c, newCpl);
  } else {
    const tss32 = (c.segAttr[S_TR]! & 8) !== 0;
    const off = tss32 ? 4 + newCpl * 8 : 2 + newCpl * 4;
    if (off + (tss32 ? 7 : 4) > trLimit) c.fault(EXC_TS, trErr);
    const a = (tb + off) | 0;
    const newSp = tss32 ? rdSys32(c, a, 0) : rdSys16(c, a, 0);
    const newSs = rdSys16(c, (a + (tss32 ? 4 : 2)) | 0, 0);
    const serr = newSs & 0xfffc;
    if (serr === 0) c.fault(EXC_TS, serr);
    readDesc(c, newSs, EXC_TS);
    const sattr = (descHi >>> 8) & 0xf0ff;
    if ((newSs & 3) !== newCpl || ((sattr >> A_DPL_SHIFT) & 3) !== newCpl || !(sattr & A_S) || (sattr & 8) || !(sattr & 2)) c.fault(EXC_TS, serr);
    if (!(sattr & A_P)) c.fault(EXC_SS, serr);
    const ss0 = descLo, ss1 = descHi;
    // In push order: the caller's SS:ESP, its parameters (the deepest first), CS:EIP.
    const vals = [oldSs, oldSpLo];
    for (let k = count - 1; k >= 0; k--) vals.push(c.peekStack(k * w, w));
    vals.push(retCs, retLo);
    const base = ((ss0 >>> 16) | ((ss1 & 0xff) << 16) | (ss1 & 0xff000000)) | 0;
    const mask = sattr & A_DB ? -1 : 0xffff;
    let sp = newSp & mask;
    c.user = 0;
    try {
      for (const v of vals) { sp = (sp - w) & mask; c.wr((base + sp) | 0, 0, w, v, 0); }
    } finally { c.user = u; }
    descLo = ss0; descHi = ss1;
    setAccessed(c, newSs);
    loadCache(c, S_SS, newSs);
    R[8] = mask === -1 ? sp : (newSp & ~0xffff) | sp; R[9] = 0;
  }
  descLo = cs0; descHi = cs1;
  setAccessed(c, csel);
  loadCache(c, S_CS, (csel & 0xfffc) | newCpl);
}

/** Adds n to the stack pointer at the current stack size (RET imm). */
function addSp(c: Cpu, n: number): void {
  const R = c.regs;
  if (c.stackSize === 8) {
    const s = (R[8]! >>> 0) + n;
    R[8] = s | 0;
    if (s >= TWO32) R[9] = (R[9]! + 1) | 0;
  } else if (c.stackSize === 4) R[8] = (R[8]! + n) | 0;
  else R[8] = (R[8]! & ~0xffff) | ((R[8]! + n) & 0xffff);
}

/** Far RET (RETF) with optional immediate. */
export function hFarRet(c: Cpu, i: Insn): void {
  const size = i.size;
  const R = c.regs;
  const sp0 = R[8]!, sp1 = R[9]!;
  try {
    const ip = c.pop(size), iph = c.hi;
    const cs = c.pop(size) & 0xffff;
    if (c.pe && !(c.fl & FLAG_VM)) {
      const rpl = cs & 3;
      const dpl = checkCode(c, cs);
      if (rpl < c.cpl) c.gp(cs & 0xfffc);
      if ((descHi & 0x400) !== 0 ? dpl > rpl : dpl !== rpl) c.gp(cs & 0xfffc);
      if (rpl > c.cpl) { farRetOuter(c, size, i.imm & 0xffff, ip, iph, cs); return; }
    }
    loadCs(c, cs, c.pe ? c.cpl : 0);
    c.ripLo = (size === 2 ? ip & 0xffff : ip) >>> 0; c.ripHi = size === 8 ? iph : 0;
    c.updateMode();
    if (i.imm) addSp(c, i.imm & 0xffff);
  } catch (e) { R[8] = sp0; R[9] = sp1; throw e; }
}

/**
 * RETF to an outer privilege level (the return CS, checked, in descLo/descHi): release `n` bytes
 * of parameters on the inner stack, pop and check SS:rSP, release `n` bytes on the outer stack,
 * and null the data segments the outer level may not use. SDM vol. 2B RET.
 */
function farRetOuter(c: Cpu, size: number, n: number, ip: number, iph: number, cs: number): void {
  const R = c.regs;
  const rpl = cs & 3;
  const cs0 = descLo, cs1 = descHi;
  if (n) addSp(c, n);
  const sp = c.pop(size), sph = size === 8 ? c.hi : 0;
  const ss = c.pop(size) & 0xffff;
  const serr = ss & 0xfffc;
  let ss0 = 0, ss1 = 0;
  if (serr === 0) {
    // A null SS only for a return to 64-bit code at CPL < 3.
    if (!(c.efer & EFER_LMA) || !(cs1 & (1 << 21)) || rpl === 3) c.gp(0);
  } else {
    readDesc(c, ss);
    const a = (descHi >>> 8) & 0xf0ff;
    if ((ss & 3) !== rpl || ((a >> A_DPL_SHIFT) & 3) !== rpl || !(a & A_S) || (a & 8) || !(a & 2)) c.gp(serr);
    if (!(a & A_P)) c.fault(EXC_SS, serr);
    ss0 = descLo; ss1 = descHi;
  }
  // Commit.
  descLo = cs0; descHi = cs1;
  setAccessed(c, cs);
  loadCache(c, S_CS, cs);
  if (serr === 0) { nullSs(c, rpl); c.segSel[S_SS] = ss; } else { descLo = ss0; descHi = ss1; setAccessed(c, ss); loadCache(c, S_SS, ss); }
  if (size === 8) { R[8] = sp; R[9] = sph; } else if (size === 4) { R[8] = sp; R[9] = 0; } else R[8] = (R[8]! & ~0xffff) | (sp & 0xffff);
  c.ripLo = (size === 2 ? ip & 0xffff : ip) >>> 0; c.ripHi = size === 8 ? iph : 0;
  c.updateMode();
  if (n) addSp(c, n);
  nullDataSegs(c);
}

function requireCpl0(c: Cpu): void {
  if (c.pe && c.cpl !== 0) c.gp(0);
}

/** LGDT (0) / LIDT (1) / SGDT (2) / SIDT (3). */
export function hDescTable(c: Cpu, i: Insn): void {
  const t = i.sub & 1 ? S_IDT : S_GDT;
  ea(c, i);
  const baseBytes = c.long64 ? 8 : 4;
  if (i.sub < 2) {
    requireCpl0(c);
    const limit = c.rd16(c.eaLo, c.eaHi);
    const n = (c.eaLo >>> 0) + 2;
    const a = n | 0, ah = c.eaHi + (n >= TWO32 ? 1 : 0);
    let lo = baseBytes === 8 ? c.rd64(a, ah) : c.rd32(a, ah);
    const hi = baseBytes === 8 ? c.hi : 0;
    if (baseBytes === 4 && i.size === 2) lo &= 0xffffff;
    c.segBaseLo[t] = lo; c.segBaseHi[t] = hi; c.segLimit[t] = limit;
    return;
  }
  c.wr16(c.eaLo, c.eaHi, c.segLimit[t]!);
  const n = (c.eaLo >>> 0) + 2;
  const a = n | 0, ah = c.eaHi + (n >= TWO32 ? 1 : 0);
  if (baseBytes === 8) c.wr64(a, ah, c.segBaseLo[t]!, c.segBaseHi[t]!); else c.wr32(a, ah, c.segBaseLo[t]!);
}

/** LLDT (0), LTR (1), SLDT (2), STR (3). */
export function hLdtTr(c: Cpu, i: Insn): void {
  const t = i.sub & 1 ? S_TR : S_LDT;
  // none of the four is recognized in real or virtual-8086 mode
  if (!c.pe || (c.fl & FLAG_VM)) c.ud();
  if (i.sub >= 2) {
    const v = c.segSel[t]!;
    if (i.o0 === MEM) { ea(c, i); c.wr16(c.eaLo, c.eaHi, v); } else c.setReg(i.o0, i.size, v, 0);
    return;
  }
  requireCpl0(c);
  const sel = rdOp(c, i, i.o0, 2) & 0xffff;
  if ((sel & 0xfffc) === 0) {
    if (t === S_TR) c.gp(0);
    c.segSel[t] = sel; c.segAttr[t] = 0; c.segBaseLo[t] = 0; c.segBaseHi[t] = 0; c.segLimit[t] = 0;
    return;
  }
  if (sel & 4) c.gp(sel & 0xfffc);
  const lma = (c.efer & EFER_LMA) !== 0;
  const a = descAddr(c, sel, lma ? 16 : 8);
  if (a < 0) c.gp(sel & 0xfffc);
  const ah = c.hi;
  descLo = rdSys32(c, a | 0, ah);
  descHi = rdSys32(c, (a + 4) | 0, ah);
  const type = (descHi >> 8) & 0x1f;
  if (t === S_LDT ? type !== 2 : (type !== 9 && type !== 1)) c.gp(sel & 0xfffc);
  if (!(descHi & 0x8000)) c.fault(EXC_NP, sel & 0xfffc);
  const baseHi = lma ? rdSys32(c, (a + 8) | 0, ah) : 0;
  loadCache(c, t, sel, baseHi);
  if (t === S_TR) {
    descHi |= 0x200; // busy
    wrSys32(c, (a + 4) | 0, ah, descHi);
    c.segAttr[t] = (descHi >>> 8) & 0xf0ff;
  }
}

/** MOV CRn, r (o0 = CR number, o1 = register). */
export function hMovToCr(c: Cpu, i: Insn): void {
  requireCpl0(c);
  const R = c.regs;
  const r = i.o1 << 1;
  const lo = R[r]!, hi = c.long64 ? R[r + 1]! : 0;
  switch (i.o0) {
    case 0: {
      if ((lo & CR0_PG) && !(lo & CR0_PE)) c.gp(0);
      if (hi !== 0) c.gp(0);
      const old = c.cr0;
      let efer = c.efer;
      if ((lo & CR0_PG) && !(old & CR0_PG) && (efer & EFER_LME)) {
        if (!(c.cr4 & CR4_PAE)) c.gp(0);
        efer |= EFER_LMA;
      }
      if (!(lo & CR0_PG) && (old & CR0_PG)) {
        if (c.long64) c.gp(0);
        efer &= ~EFER_LMA;
      }
      c.cr0 = lo | CR0_ET; // hard-wired to 1
      c.efer = efer;
      if ((old ^ lo) & (CR0_PG | CR0_WP | CR0_PE)) c.flushTlb(false);
      c.updateMode();
      return;
    }
    case 2: c.cr2Lo = lo; c.cr2Hi = hi; return;
    case 3: c.cr3Lo = lo; c.cr3Hi = hi; c.flushTlb(true); return;
    case 4: {
      if (hi !== 0 || (lo & ~(CR4_BASE | sysModelOf(c).cr4))) c.gp(0);
      if (c.efer & EFER_LMA && !(lo & CR4_PAE)) c.gp(0);
      const old = c.cr4;
      c.cr4 = lo;
      if ((old ^ lo) & (CR4_PGE | CR4_PAE | CR4_PSE | CR4_SMEP | CR4_SMAP)) c.flushTlb(false);
      return;
    }
    case 8: {
      if (hi !== 0 || (lo & ~0xf)) c.gp(0);
      const apic = c.dev?.apic;
      if (apic !== undefined) { apic.setCr8(lo); return; } // CR8 is the APIC's TPR
      const old = c.cr8;
      c.cr8 = lo & 0xf;
      if (c.cr8 !== old && c.tprExit) c.doExit({ kind: 'tprChanged' });
      return;
    }
    default: c.ud();
  }
}


/** MOV r, CRn (o0 = register, o1 = CR number). */
export function hMovFromCr(c: Cpu, i: Insn): void {
  requireCpl0(c);
  let lo: number, hi = 0;
  switch (i.o1) {
    case 0: lo = c.cr0; break;
    case 2: lo = c.cr2Lo; hi = c.cr2Hi; break;
    case 3: lo = c.cr3Lo; hi = c.cr3Hi; break;
    case 4: lo = c.cr4; break;
    case 8: lo = c.dev?.apic?.getCr8() ?? c.cr8; break;
    default: c.ud();
  }
  c.setReg(i.o0, c.long64 ? 8 : 4, lo, hi);
}

/** MOV DRn, r (sub 0) / MOV r, DRn (sub 1): stored, not acted on (no hardware breakpoints yet). */
export function hMovDr(c: Cpu, i: Insn): void {
  requireCpl0(c);
  if (i.sub === 0) {
    const n = i.o0 & 7;
    const R = c.regs;
    c.dr[n] = (R[(i.o1 << 1) + 1]! >>> 0) * TWO32 + (R[i.o1 << 1]! >>> 0);
  } else {
    const v = c.dr[i.o1 & 7]!;
    const hi = Math.floor(v / TWO32);
    c.setReg(i.o0, c.long64 ? 8 : 4, (v - hi * TWO32) | 0, hi | 0);
  }
}

export function hClts(c: Cpu, _i: Insn): void {
  requireCpl0(c);
  c.cr0 &= ~CR0_TS;
}

export function hInvlpg(c: Cpu, i: Insn): void {
  requireCpl0(c);
  ea(c, i);
  c.flushPage(c.eaLo, c.eaHi);
}

/** Privileged no-ops for this CPU (WBINVD, INVD). */
export function hPrivNop(c: Cpu, _i: Insn): void {
  requireCpl0(c);
}

export function hLmsw(c: Cpu, i: Insn): void {
  requireCpl0(c);
  const v = rdOp(c, i, i.o0, 2);
  // LMSW writes PE, MP, EM and TS, and cannot clear PE.
  c.cr0 = (c.cr0 & ~(CR0_MP | CR0_EM | CR0_TS)) | (v & (CR0_PE | CR0_MP | CR0_EM | CR0_TS)) | (c.cr0 & CR0_PE);
  c.updateMode();
}

/**
 * VERR (sub 0) / VERW (sub 1): ZF = 1 when the selector names a code or data segment that is
 * readable (VERR) or writable (VERW) from max(CPL, RPL); no fault for a bad selector (Intel SDM
 * vol. 2B). Linux executes VERW on every return to user space (the MDS buffer clearing).
 */
export function hVerify(c: Cpu, i: Insn): void {
  if (!c.pe || (c.fl & FLAG_VM)) c.ud();
  const sel = rdOp(c, i, i.o0, 2) & 0xffff;
  let ok = false;
  const a = sel & 0xfffc ? descAddr(c, sel) : -1;
  if (a >= 0) {
    const hi = rdSys32(c, (a + 4) | 0, c.hi);
    const type = (hi >>> 8) & 0xf;
    const s = (hi & (1 << 12)) !== 0;
    const dpl = (hi >>> 13) & 3;
    const code = (type & 8) !== 0;
    const conforming = code && (type & 4) !== 0;
    const privileged = conforming || dpl >= Math.max(c.cpl, sel & 3);
    ok = s && privileged && (i.sub === 0 ? !code || (type & 2) !== 0 : !code && (type & 2) !== 0);
  }
  const f = c.getRflags();
  c.setRflags(ok ? f | FLAG_ZF : f & ~FLAG_ZF);
}

/** System descriptor types LAR accepts (legacy modes; long mode only LDT, TSS and 64-bit call gate). */
const LAR_TYPES = [0x1a3e, 0x1a04];
/** And LSL (no gates). */
const LSL_TYPES = [0x0a0e, 0x0a04];

/**
 * LAR (i.sub 0) / LSL (1): the access rights (type through G, masked 0x00F0FF00) or the byte-granular
 * segment limit of the descriptor the source selector names, with ZF = 1; ZF = 0 and the destination
 * unchanged when the selector is null, beyond its table, of a type the instruction does not accept,
 * or not visible at max(CPL, RPL) (SDM LAR, LSL). #UD in real and virtual-8086 mode.
 */
export function hLarLsl(c: Cpu, i: Insn): void {
  if (!c.pe || (c.fl & FLAG_VM)) c.ud();
  const sel = rdOp(c, i, i.o1, 2) & 0xffff;
  const a = sel & 0xfffc ? descAddr(c, sel) : -1;
  let ok = false;
  let lo = 0, hi = 0;
  if (a >= 0) {
    const h = c.hi;
    lo = rdSys32(c, a | 0, h);
    hi = rdSys32(c, (a + 4) | 0, h);
    const type = (hi >>> 8) & 0xf;
    const dpl = (hi >>> 13) & 3;
    const conformingCode = (hi & (1 << 12)) !== 0 && (type & 0xc) === 0xc;
    const typeOk = (hi & (1 << 12)) !== 0 || (((i.sub === 0 ? LAR_TYPES : LSL_TYPES)[(c.efer & EFER_LMA) !== 0 ? 1 : 0]! >> type) & 1) !== 0;
    ok = typeOk && (conformingCode || dpl >= Math.max(c.cpl, sel & 3));
  }
  const f = c.getRflags();
  c.setRflags(ok ? f | FLAG_ZF : f & ~FLAG_ZF);
  if (!ok) return;
  let v: number;
  if (i.sub === 0) v = hi & 0x00f0ff00;
  else {
    v = (lo & 0xffff) | (hi & 0xf0000);
    if (hi & (1 << 23)) v = ((v << 12) | 0xfff) >>> 0;
  }
  c.setReg(i.o0, i.size, v, 0);
}

/** ARPL r/m16, r16: raises the destination selector's RPL to the source's, ZF = 1 if it did (#UD outside protected mode). */
export function hArpl(c: Cpu, i: Insn): void {
  if (!c.pe || (c.fl & FLAG_VM)) c.ud();
  const dst = rdOp(c, i, i.o0, 2) & 0xffff;
  const src = rdOp(c, i, i.o1, 2) & 0xffff;
  const f = c.getRflags();
  if ((dst & 3) < (src & 3)) {
    wrOp(c, i.o0, 2, (dst & ~3) | (src & 3), 0);
    c.setRflags(f | FLAG_ZF);
  } else c.setRflags(f & ~FLAG_ZF);
}

/**
 * RDPMC: the CPU modelled has no performance counters (CPUID advertises none), so every counter index
 * is invalid: #GP(0), as for CPL > 0 with CR4.PCE clear.
 */
export function hRdpmc(c: Cpu, _i: Insn): void {
  c.gp(0);
}

export function hSmsw(c: Cpu, i: Insn): void {
  if (i.o0 === MEM) { ea(c, i); c.wr16(c.eaLo, c.eaHi, c.cr0); } else c.setReg(i.o0, i.size, c.cr0, 0);
}

export function hHlt(c: Cpu, _i: Insn): void {
  requireCpl0(c);
  // An interrupt the inline controller presents is taken at the next block boundary instead.
  const d = c.dev;
  if (d !== null && (c.fl & FLAG_IF) && d.interruptPending()) return;
  c.halted = true;
  c.doExit({ kind: 'halted' });
}

export function hRdmsr(c: Cpu, _i: Insn): void {
  requireCpl0(c);
  const msr = c.regs[2]! >>> 0;
  const apic = c.dev?.apic;
  const lo = apic !== undefined && isApicMsr(msr) ? readApicMsr(c, apic, msr) : sysModelOf(c).msrs.has(msr) ? readMsr(c, msr) : c.doExit({ kind: 'rdmsr', msr });
  c.setReg(0, 4, lo, 0);
  c.setReg(2, 4, c.hi, 0);
}

export function hWrmsr(c: Cpu, _i: Insn): void {
  requireCpl0(c);
  const R = c.regs;
  const msr = R[2]! >>> 0;
  const apic = c.dev?.apic;
  if (apic !== undefined && isApicMsr(msr)) {
    if (msr >= X2APIC_MSR_FIRST) {
      if (!apic.writeX2apicMsr(msr, R[0]! >>> 0, R[4]! >>> 0)) c.gp(0);
    } else writeApicMsr(c, apic, msr, (R[4]! >>> 0) * TWO32 + (R[0]! >>> 0));
    c.devDeadline = 0; // the timer may have been armed
    return;
  }
  if (!sysModelOf(c).msrs.has(msr)) c.doExit({ kind: 'wrmsr', msr, lo: R[0]!, hi: R[4]! });
  writeMsr(c, msr, R[0]!, R[4]!);
}

/**
 * The MSRs a local APIC in the inline devices owns: IA32_APIC_BASE, IA32_TSC_DEADLINE and the
 * x2APIC range (which #GPs unless the APIC is in x2APIC mode).
 */
function isApicMsr(msr: number): boolean {
  return msr === MSR_APIC_BASE || msr === MSR_TSC_DEADLINE || (msr >= X2APIC_MSR_FIRST && msr <= X2APIC_MSR_LAST);
}

/** RDMSR of an isApicMsr register: the low word, the high in c.hi. The deadline goes from clock ns to the TSC. */
function readApicMsr(c: Cpu, apic: InlineApic, msr: number): number {
  if (msr >= X2APIC_MSR_FIRST && msr <= X2APIC_MSR_LAST) {
    const words = apic.readX2apicMsr(msr);
    if (words === undefined) c.gp(0);
    c.hi = words[1] | 0;
    return words[0] | 0;
  }
  let v: number;
  if (msr === MSR_APIC_BASE) v = apic.readBaseMsr();
  else {
    const ns = apic.readTscDeadline();
    v = ns === 0 ? 0 : Math.max(0, Math.ceil(ns) + c.tscOffset);
  }
  const hi = Math.floor(v / TWO32);
  c.hi = hi | 0;
  return (v - hi * TWO32) | 0;
}

/** WRMSR of IA32_APIC_BASE or IA32_TSC_DEADLINE (`value` unsigned; above 2^53 it is rounded, centuries of TSC away). */
function writeApicMsr(c: Cpu, apic: InlineApic, msr: number, value: number): void {
  if (msr === MSR_APIC_BASE) {
    if (!apic.writeBaseMsr(value)) c.gp(0);
    return;
  }
  // A deadline at or before the clock's start is due now; it must not read as 0 (disarm).
  apic.writeTscDeadline(value === 0 ? 0 : Math.max(value - c.tscOffset, Number.MIN_VALUE));
}

/** Random words for RDRAND/RDSEED, from the host's CSPRNG, refilled when used up. */
const randomPool = new Uint32Array(256);
let randomNext = randomPool.length;

/**
 * RDRAND / RDSEED r16/r32/r64: host CSPRNG bits (Node's crypto.getRandomValues), so a guest seeds
 * its own generator at once instead of gathering timer jitter. Always succeeds: CF = 1, OF SF ZF
 * AF PF = 0.
 */
export function hRdrand(c: Cpu, i: Insn): void {
  if (randomNext + 2 > randomPool.length) { crypto.getRandomValues(randomPool); randomNext = 0; }
  const lo = randomPool[randomNext++]!, hi = randomPool[randomNext++]!;
  c.setReg(i.o0, i.size, lo, hi);
  c.lz.setEager(FLAG_CF);
}

export function hRdtsc(c: Cpu, i: Insn): void {
  if (c.pe && c.cpl !== 0 && (c.cr4 & CR4_TSD)) c.gp(0);
  const lo = c.tsc(), hi = c.hi;
  c.setReg(0, 4, lo, 0);
  c.setReg(2, 4, hi, 0);
  if (i.sub === 1) c.setReg(1, 4, readMsr(c, MSR_TSC_AUX), 0);
}

/** CPUID: the backend installs the table lookup (Cpu.cpuidFn). */
export type CpuidFn = (c: Cpu, leaf: number, subleaf: number) => void;
export function hCpuid(c: Cpu, _i: Insn): void {
  const fn = c.cpuidFn;
  if (!fn) c.ud();
  fn(c, c.regs[0]! >>> 0, c.regs[2]! >>> 0);
}

/** IN/OUT: served by the inline devices, or an exit to the VMM with RIP left at the instruction (the assist completes it). */
export function hInOut(c: Cpu, i: Insn): void {
  const isIn = i.sub === 1;
  const port = i.o1 === IMM || i.o0 === IMM ? i.imm & 0xff : c.regs[4]! & 0xffff;
  if (c.pe && (c.cpl > ((c.fl >> 12) & 3) || (c.fl & FLAG_VM))) checkIoBitmap(c, port, i.size);
  const d = c.dev;
  if (d !== null) {
    const size = i.size as 1 | 2 | 4;
    if (isIn) c.setReg(0, size, d.io(port, size, true, 0), 0);
    else d.io(port, size, false, c.regs[0]! & (size === 4 ? -1 : (1 << (8 * size)) - 1));
    c.devDeadline = 0;
    if (d.ended()) c.doExit({ kind: 'stopped' });
    return;
  }
  c.doExit({ kind: 'io', in: isIn, port, seg: -1, addressSize: i.asz, operandSize: i.size, rep: false, str: false });
}

/** INS (sub 1) / OUTS (sub 0). */
export function hInsOuts(c: Cpu, i: Insn): void {
  const port = c.regs[4]! & 0xffff;
  if (c.pe && (c.cpl > ((c.fl >> 12) & 3) || (c.fl & FLAG_VM))) checkIoBitmap(c, port, i.size);
  if (i.rep && countZero(c, i.asz)) return;
  const isIn = i.sub === 1;
  c.doExit({
    kind: 'io', in: isIn, port, seg: isIn ? S_ES : i.seg, addressSize: i.asz, operandSize: i.size,
    rep: i.rep !== 0, str: true,
  });
}

/**
 * I/O at CPL > IOPL (or in virtual-8086 mode): the I/O permission bitmap of the 32/64-bit TSS,
 * at the offset in TSS bytes 0x66-0x67, must have the bits of ports port..port+size-1 clear; the
 * two bytes holding them are read and must lie within the TSS limit, else #GP(0) (SDM vol. 1 19.5.2).
 */
function checkIoBitmap(c: Cpu, port: number, size: number): void {
  const limit = c.segLimit[S_TR]!;
  if ((c.segAttr[S_TR]! & 0xd) !== 9 || limit < 0x67) c.gp(0); // not an available/busy 32/64-bit TSS
  const base = c.segBaseLo[S_TR]! >>> 0, baseHi = c.segBaseHi[S_TR]!;
  let a = base + 0x66;
  const mapOff = rdSys16(c, a | 0, (baseHi + (a >= TWO32 ? 1 : 0)) | 0);
  const off = mapOff + (port >>> 3);
  if (off + 1 > limit) c.gp(0);
  a = base + off;
  const bits = rdSys16(c, a | 0, (baseHi + (a >= TWO32 ? 1 : 0)) | 0);
  if ((bits >>> (port & 7)) & ((1 << size) - 1)) c.gp(0);
}

export function hSwapgs(c: Cpu, _i: Insn): void {
  if (!c.long64) c.ud();
  requireCpl0(c);
  const k = c.msr.get(MSR_KERNEL_GS_BASE) ?? [0, 0];
  const lo = c.segBaseLo[S_GS]!, hi = c.segBaseHi[S_GS]!;
  c.segBaseLo[S_GS] = k[0]; c.segBaseHi[S_GS] = k[1];
  c.msr.set(MSR_KERNEL_GS_BASE, [lo, hi]);
  c.updateMode();
}

/** Flat segment caches for SYSCALL/SYSRET/SYSENTER/SYSEXIT. */
function flatSeg(c: Cpu, s: number, sel: number, code: boolean, dpl: number, long: boolean): void {
  c.segSel[s] = sel;
  c.segBaseLo[s] = 0; c.segBaseHi[s] = 0; c.segLimit[s] = 0xffffffff;
  c.segAttr[s] = (code ? 0xb : 0x3) | A_S | A_P | (dpl << A_DPL_SHIFT) | A_G | (long ? A_L : A_DB);
}

export function hSyscall(c: Cpu, _i: Insn): void {
  if (!(c.efer & 1)) c.ud();
  const R = c.regs;
  const star = c.msr.get(MSR_STAR) ?? [0, 0];
  const sel = (star[1] & 0xffff);
  if (!(c.efer & EFER_LMA)) {
    // Legacy mode (AMD APM vol. 3 SYSCALL; Intel CPUs raise #UD outside 64-bit mode): ECX = the
    // return EIP, flat 32-bit CPL-0 CS and SS from STAR[47:32], EIP = STAR[31:0], VM IF RF cleared.
    R[2] = c.ripLo | 0; R[3] = 0;
    c.fl &= ~(FLAG_VM | FLAG_IF | FLAG_RF);
    flatSeg(c, S_CS, sel & 0xfffc, true, 0, false);
    flatSeg(c, S_SS, (sel + 8) & 0xfffc, false, 0, false);
    c.ripLo = star[0] >>> 0; c.ripHi = 0;
    c.updateMode();
    return;
  }
  R[2] = c.ripLo | 0; R[3] = c.ripHi;
  R[22] = c.getRflags() & ~FLAG_RF; R[23] = 0;
  const target = c.msr.get(c.long64 ? MSR_LSTAR : MSR_CSTAR) ?? [0, 0];
  const mask = (c.msr.get(MSR_SFMASK) ?? [0, 0])[0];
  flatSeg(c, S_CS, sel & 0xfffc, true, 0, true);
  flatSeg(c, S_SS, (sel + 8) & 0xfffc, false, 0, false);
  c.setRflags(c.getRflags() & ~mask & ~FLAG_RF);
  c.ripLo = target[0] >>> 0; c.ripHi = target[1];
  c.updateMode();
}

export function hSysret(c: Cpu, i: Insn): void {
  if (!(c.efer & 1)) c.ud();
  const lma = (c.efer & EFER_LMA) !== 0;
  if (lma && !c.long64) c.doExit({ kind: 'invalid', reason: 'SYSRET in compatibility mode is not implemented' });
  if (!c.pe) c.gp(0);
  requireCpl0(c);
  const R = c.regs;
  const star = c.msr.get(MSR_STAR) ?? [0, 0];
  const base = (star[1] >>> 16) & 0xffff;
  if (!lma) {
    // Legacy mode (AMD APM vol. 3 SYSRET): flat 32-bit CPL-3 CS = STAR[63:48], SS = STAR[63:48] + 8
    // (RPL 3), EIP = ECX, IF set.
    flatSeg(c, S_CS, (base & 0xfffc) | 3, true, 3, false);
    flatSeg(c, S_SS, ((base + 8) & 0xfffc) | 3, false, 3, false);
    c.fl |= FLAG_IF;
    c.ripLo = R[2]! >>> 0; c.ripHi = 0;
    c.updateMode();
    return;
  }
  const to64 = i.size === 8;
  if (to64) {
    if (((R[3]! | 0) >> 15) !== 0 && ((R[3]! | 0) >> 15) !== -1) c.gp(0); // non-canonical RCX
    flatSeg(c, S_CS, ((base + 16) & 0xfffc) | 3, true, 3, true);
    c.ripLo = R[2]! >>> 0; c.ripHi = R[3]!;
  } else {
    flatSeg(c, S_CS, (base & 0xfffc) | 3, true, 3, false);
    c.ripLo = R[2]! >>> 0; c.ripHi = 0;
  }
  flatSeg(c, S_SS, ((base + 8) & 0xfffc) | 3, false, 3, false);
  c.setRflags((R[22]! & 0x3c7fd7) | 2);
  c.updateMode();
}

export function hSysenter(c: Cpu, _i: Insn): void {
  if (!c.pe) c.gp(0);
  const cs = (c.msr.get(MSR_SYSENTER_CS) ?? [0, 0])[0] & 0xffff;
  if ((cs & 0xfffc) === 0) c.gp(0);
  const lma = (c.efer & EFER_LMA) !== 0;
  const esp = c.msr.get(MSR_SYSENTER_ESP) ?? [0, 0], eip = c.msr.get(MSR_SYSENTER_EIP) ?? [0, 0];
  c.fl &= ~(FLAG_VM | FLAG_IF | FLAG_RF);
  flatSeg(c, S_CS, cs & 0xfffc, true, 0, lma);
  flatSeg(c, S_SS, (cs + 8) & 0xfffc, false, 0, false);
  const R = c.regs;
  R[8] = esp[0]; R[9] = lma ? esp[1] : 0;
  c.ripLo = eip[0] >>> 0; c.ripHi = lma ? eip[1] : 0;
  c.updateMode();
}

export function hSysexit(c: Cpu, i: Insn): void {
  if (!c.pe) c.gp(0);
  requireCpl0(c);
  const cs = (c.msr.get(MSR_SYSENTER_CS) ?? [0, 0])[0] & 0xffff;
  if ((cs & 0xfffc) === 0) c.gp(0);
  const R = c.regs;
  const to64 = i.size === 8;
  flatSeg(c, S_CS, ((cs + (to64 ? 32 : 16)) & 0xfffc) | 3, true, 3, to64);
  flatSeg(c, S_SS, ((cs + (to64 ? 40 : 24)) & 0xfffc) | 3, false, 3, false);
  R[8] = R[2]!; R[9] = to64 ? R[3]! : 0; // RSP = RCX
  c.ripLo = R[4]! >>> 0; c.ripHi = to64 ? R[5]! : 0; // RIP = RDX
  c.updateMode();
}

/** UD2 / UD0 / UD1 and undefined opcodes. */
export function hUd(c: Cpu, _i: Insn): void {
  c.fault(EXC_UD);
}

/** Instructions recognised but not implemented: an `invalid` exit naming them. */
export function hUnimplemented(c: Cpu, _i: Insn): void {
  c.doExit({ kind: 'invalid', reason: 'unimplemented' });
}
