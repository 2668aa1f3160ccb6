/**
 * The x86-64 vCPU state as libnvmm exposes it (struct nvmm_x64_state), in groups that are fetched
 * and committed independently. Register values are bigint here (the API boundary); backends convert
 * once per get/set, never per instruction.
 */
import {
  MSR_CSTAR, MSR_EFER, MSR_KERNEL_GS_BASE, MSR_LSTAR, MSR_PAT, MSR_SFMASK, MSR_STAR, MSR_SYSENTER_CS, MSR_SYSENTER_EIP,
  MSR_SYSENTER_ESP, MSR_TSC,
} from '../x86/msr.js';

/** State groups (NVMM_X64_STATE_*), combinable as a bit mask. */
export const STATE = {
  SEGS: 1 << 0,
  GPRS: 1 << 1,
  CRS: 1 << 2,
  DRS: 1 << 3,
  MSRS: 1 << 4,
  INTR: 1 << 5,
  FPU: 1 << 6,
  ALL: 0x7f,
} as const;

/** Indices into `state.segs` (NVMM_X64_SEG_*). */
export const SEG = { ES: 0, CS: 1, SS: 2, DS: 3, FS: 4, GS: 5, GDT: 6, IDT: 7, LDT: 8, TR: 9 } as const;
export const SEG_COUNT = 10;

/** Indices into `state.gprs` (NVMM_X64_GPR_*): the 16 general registers, then RIP and RFLAGS. */
export const GPR = {
  RAX: 0, RCX: 1, RDX: 2, RBX: 3, RSP: 4, RBP: 5, RSI: 6, RDI: 7,
  R8: 8, R9: 9, R10: 10, R11: 11, R12: 12, R13: 13, R14: 14, R15: 15,
  RIP: 16, RFLAGS: 17,
} as const;
export const GPR_COUNT = 18;

/** Indices into `state.crs` (NVMM_X64_CR_*). */
export const CR = { CR0: 0, CR2: 1, CR3: 2, CR4: 3, CR8: 4, XCR0: 5 } as const;
export const CR_COUNT = 6;

/** Indices into `state.drs` (NVMM_X64_DR_*). */
export const DR = { DR0: 0, DR1: 1, DR2: 2, DR3: 3, DR6: 4, DR7: 5 } as const;
export const DR_COUNT = 6;

/**
 * Positions in `state.msrs` (NVMM_X64_MSR_*): an index into the MSRS group, not an MSR number
 * (MSR.EFER is 0; the register's number, 0xC0000080, is MSR_NUMBER_AT[MSR.EFER], from x86/msr.ts).
 */
export const MSR = {
  EFER: 0, STAR: 1, LSTAR: 2, CSTAR: 3, SFMASK: 4, KERNELGSBASE: 5,
  SYSENTER_CS: 6, SYSENTER_ESP: 7, SYSENTER_EIP: 8, PAT: 9, TSC: 10,
} as const;
export const MSR_COUNT = 11;
/** The MSR number (RDMSR's ECX) of the register at each position of `state.msrs`. */
export const MSR_NUMBER_AT: readonly number[] = [
  MSR_EFER, MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SFMASK, MSR_KERNEL_GS_BASE,
  MSR_SYSENTER_CS, MSR_SYSENTER_ESP, MSR_SYSENTER_EIP, MSR_PAT, MSR_TSC,
];

/** Segment attributes as NVMM splits them. `type` is the 4-bit descriptor type. */
export interface SegmentAttrib {
  type: number;
  s: boolean;
  dpl: number;
  p: boolean;
  avl: boolean;
  l: boolean;
  def: boolean;
  g: boolean;
}

export interface Segment {
  selector: number;
  attrib: SegmentAttrib;
  /** Byte-granular limit (as in the hidden part of the register, after G scaling). */
  limit: number;
  base: bigint;
}

export interface IntrState {
  /** Interrupts are blocked for one instruction (after MOV SS / STI). */
  intShadow: boolean;
  /** Exit with `interruptWindow` as soon as an external interrupt can be injected. */
  intWindowExiting: boolean;
  /** Exit with `nmiWindow` as soon as an NMI can be injected. */
  nmiWindowExiting: boolean;
  /** An event is pending delivery (read-only). */
  evtPending: boolean;
}

export interface FpuState {
  fcw: number;
  fsw: number;
  /** Abridged tag word (one bit per register, as in FXSAVE). */
  ftw: number;
  fop: number;
  fip: bigint;
  fdp: bigint;
  mxcsr: number;
  mxcsrMask: number;
  /** ST0-ST7, 16 bytes each (80-bit value in the low 10). */
  sts: Uint8Array;
  /** XMM0-XMM15, 16 bytes each. */
  xmms: Uint8Array;
}

export interface X64State {
  segs: Segment[];
  gprs: BigUint64Array;
  crs: BigUint64Array;
  drs: BigUint64Array;
  msrs: BigUint64Array;
  intr: IntrState;
  fpu: FpuState;
}

export function emptySegment(): Segment {
  return { selector: 0, attrib: { type: 0, s: false, dpl: 0, p: false, avl: false, l: false, def: false, g: false }, limit: 0, base: 0n };
}

export function emptyState(): X64State {
  return {
    segs: Array.from({ length: SEG_COUNT }, emptySegment),
    gprs: new BigUint64Array(GPR_COUNT),
    crs: new BigUint64Array(CR_COUNT),
    drs: new BigUint64Array(DR_COUNT),
    msrs: new BigUint64Array(MSR_COUNT),
    intr: { intShadow: false, intWindowExiting: false, nmiWindowExiting: false, evtPending: false },
    fpu: { fcw: 0, fsw: 0, ftw: 0, fop: 0, fip: 0n, fdp: 0n, mxcsr: 0, mxcsrMask: 0, sts: new Uint8Array(128), xmms: new Uint8Array(256) },
  };
}

/** Copies the groups in `mask` from `src` to `dst` (deep for the parts that are objects). */
export function copyState(dst: X64State, src: X64State, mask: number): void {
  if (mask & STATE.SEGS) src.segs.forEach((s, i) => (dst.segs[i] = { ...s, attrib: { ...s.attrib } }));
  if (mask & STATE.GPRS) dst.gprs.set(src.gprs);
  if (mask & STATE.CRS) dst.crs.set(src.crs);
  if (mask & STATE.DRS) dst.drs.set(src.drs);
  if (mask & STATE.MSRS) dst.msrs.set(src.msrs);
  if (mask & STATE.INTR) dst.intr = { ...src.intr };
  if (mask & STATE.FPU) dst.fpu = { ...src.fpu, sts: src.fpu.sts.slice(), xmms: src.fpu.xmms.slice() };
}
