/**
 * SSE, SSE2 and MMX for the soft CPU (Intel SDM vol. 1 ch. 9-11, vol. 2 instruction pages).
 *
 * Execution model: an instruction copies its destination register into the 16-byte scratch `D`
 * and its source (register, memory, GPR or immediate) into `S`, runs one lane operation from a
 * table (`VOPS`, chosen at decode time into `Insn.sub`), and writes `D` back. The operand form is
 * packed into `Insn.imm2` (F_* bits below: memory size, alignment, MMX/GPR operands, SSE checks).
 * Moves go through one generic byte-range move (`hMove`) described by `Insn.sub`.
 *
 * Floating point: IEEE binary32/binary64 through JS doubles. Results are rounded to nearest by JS;
 * the exact error's sign (TwoSum, Dekker's product, remainders; BigInt only for operands outside
 * the safe exponent range) drives MXCSR.PE, directed rounding (MXCSR.RC), OE and UE. DAZ and FTZ are
 * honoured. NaNs are handled on bit patterns (x86 rules: first source NaN wins, quieted; default
 * NaN = negative QNaN). Tininess is judged on the rounded result (differs from the SDM's "rounded
 * with unbounded exponent" only within half an ulp of the smallest normal). Unmasked exceptions
 * raise #XM (CR4.OSXMMEXCPT=1) or #UD, leaving the destination unchanged and the MXCSR flags set.
 * RCPPS/RSQRTPS and friends return the correctly rounded reciprocal (hardware returns a 12-bit
 * approximation: values differ from a real CPU in low bits).
 *
 * MMX registers are the low 64 bits of the x87 physical registers (ops-x87.ts): an MMX instruction
 * sets TOP = 0 and tags every register valid; a write sets the exponent bits to all ones.
 */
import { TWO32 } from '../../common/bits.js';
import { CR0_EM, CR0_TS, CR4_OSFXSR, CR4_OSXMMEXCPT } from '../../x86/control-regs.js';
import { EXC_NM, EXC_XM } from '../../x86/exceptions.js';
import type { Cpu } from './cpu.js';
import { ea, IMM, MEM, NONE, type Handler, type Insn } from './insn.js';
import { MNEMONICS, OperandKind, OpMethod, type DecodedInsn } from '../../x86/decoder.js';
import { RegClass } from '../../x86/registers.js';
import { FXSAVE } from '../../x86/fxsave.js';
import { f80Raw, fpuLoadRaw, fpswGet } from './ops-x87.js';

// ---- Insn.imm2: the operand form ----
const F_SIZE = 31; // memory (or GPR source) size in bytes
const F_ALIGN = 0x20; // a 16-byte memory operand must be aligned (#GP(0))
const F_DMMX = 0x40;
const F_SMMX = 0x80;
const F_SGPR = 0x100;
const F_DGPR = 0x200;
const F_SSE = 0x400; // needs CR4.OSFXSR (XMM operand or MXCSR)
const F_MMX = 0x800; // MMX state transition

// ---- MXCSR ----
export const MX_IE = 1, MX_DE = 2, MX_ZE = 4, MX_OE = 8, MX_UE = 16, MX_PE = 32, MX_DAZ = 64, MX_FTZ = 0x8000;
/** Bits of MXCSR this CPU implements (the MXCSR_MASK it reports). */
export const MXCSR_MASK = 0xffff;
const RN = 0, RD = 1, RU = 2, RZ = 3;

// ---- scratch ----
const DB = new ArrayBuffer(16), SB = new ArrayBuffer(16);
const D8 = new Uint8Array(DB), D16 = new Uint16Array(DB), Ds8 = new Int8Array(DB), Ds16 = new Int16Array(DB), D32 = new Int32Array(DB);
const DF32 = new Float32Array(DB), DF64 = new Float64Array(DB);
const S8 = new Uint8Array(SB), S16 = new Uint16Array(SB), Ss8 = new Int8Array(SB), Ss16 = new Int16Array(SB), S32 = new Int32Array(SB);
const SF32 = new Float32Array(SB), SF64 = new Float64Array(SB);
const TB = new ArrayBuffer(16), T8 = new Uint8Array(TB), T16 = new Int16Array(TB), T32 = new Int32Array(TB);
const B64 = new Float64Array(1), B64I = new Int32Array(B64.buffer);
const B32 = new Float32Array(1), B32I = new Int32Array(B32.buffer);

/** Exception flags of the current instruction, and the mode it runs in. */
let FL = 0;
let RC = RN;
let DAZ = false;
let FTZ = false;
let UMASK = true; // underflow masked

function fpMode(c: Cpu): void {
  const m = c.mxcsr;
  FL = 0;
  RC = (m >> 13) & 3;
  DAZ = (m & MX_DAZ) !== 0;
  FTZ = (m & MX_FTZ) !== 0;
  UMASK = (m & (MX_UE << 7)) !== 0;
}

/** Merges FL into MXCSR; an unmasked exception faults (#XM, or #UD when CR4.OSXMMEXCPT = 0). */
function commit(c: Cpu): void {
  if (FL === 0) return;
  c.mxcsr |= FL;
  if (FL & ~(c.mxcsr >> 7) & 0x3f) {
    if (c.cr4 & CR4_OSXMMEXCPT) c.fault(EXC_XM);
    c.ud();
  }
}

// ------------------------------------------------------------------------------------------
// Checks and operand access

function check(c: Cpu, f: number): void {
  if ((c.cr0 & (CR0_EM | CR0_TS)) === 0 && ((f & F_SSE) === 0 || (c.cr4 & CR4_OSFXSR) !== 0)) return;
  if (c.cr0 & CR0_EM) c.ud();
  if ((f & F_SSE) && !(c.cr4 & CR4_OSFXSR)) c.ud();
  c.fault(EXC_NM);
}

/** The MMX state transition: TOP = 0, every register tagged valid. */
function mmxEnter(c: Cpu): void {
  c.ftop = 0;
  c.ftw = 0xff;
}

function mmxRead(c: Cpu, r: number, dst: Int32Array): void {
  if (!c.fpRawOk[r]) f80Raw(c, r);
  const raw = c.fpRaw, o = r * 10;
  dst[0] = raw[o]! | (raw[o + 1]! << 8) | (raw[o + 2]! << 16) | (raw[o + 3]! << 24);
  dst[1] = raw[o + 4]! | (raw[o + 5]! << 8) | (raw[o + 6]! << 16) | (raw[o + 7]! << 24);
}

function mmxWrite(c: Cpu, r: number, lo: number, hi: number): void {
  const raw = c.fpRaw, o = r * 10;
  raw[o] = lo; raw[o + 1] = lo >>> 8; raw[o + 2] = lo >>> 16; raw[o + 3] = lo >>> 24;
  raw[o + 4] = hi; raw[o + 5] = hi >>> 8; raw[o + 6] = hi >>> 16; raw[o + 7] = hi >>> 24;
  raw[o + 8] = 0xff; raw[o + 9] = 0xff;
  c.fpRawOk[r] = 1;
  c.fpr[r] = lo === 0 && hi === (0x80000000 | 0) ? -Infinity : NaN;
}

function addr8(c: Cpu): void {
  const n = (c.eaLo >>> 0) + 8;
  c.eaLo = n | 0;
  if (n >= TWO32) c.eaHi = (c.eaHi + 1) | 0;
}

/** Reads `size` bytes at the EA into `dst` (an Int32Array view). */
function readMem(c: Cpu, size: number, align: number, dst: Int32Array): void {
  const lo = c.eaLo, hi = c.eaHi;
  switch (size) {
    case 16:
      if (align && (lo & 15)) c.gp(0);
      dst[0] = c.rd64(lo, hi); dst[1] = c.hi;
      addr8(c);
      dst[2] = c.rd64(c.eaLo, c.eaHi); dst[3] = c.hi;
      c.eaLo = lo; c.eaHi = hi;
      return;
    case 8: dst[0] = c.rd64(lo, hi); dst[1] = c.hi; return;
    case 4: dst[0] = c.rd32(lo, hi); return;
    case 2: dst[0] = (dst[0]! & ~0xffff) | c.rd16(lo, hi); return;
    default: dst[0] = (dst[0]! & ~0xff) | c.rd8(lo, hi);
  }
}

/** Writes `size` bytes of `src` starting at byte `off` to the EA (all or nothing). */
function writeMem(c: Cpu, size: number, align: number, src: Uint8Array, off: number): void {
  const lo = c.eaLo, hi = c.eaHi;
  if (size === 16 && align && (lo & 15)) c.gp(0);
  if (off & 3 || size < 4) {
    c.probeWrite(lo, hi, size);
    for (let k = 0; k < size; k++) {
      const n = (lo >>> 0) + k;
      c.wr8(n | 0, n >= TWO32 ? hi + 1 : hi, src[off + k]!);
    }
    return;
  }
  const w = T32;
  for (let k = 0; k < size; k++) T8[k] = src[off + k]!;
  if (size === 16) {
    c.probeWrite(lo, hi, 16);
    c.wr64(lo, hi, w[0]!, w[1]!);
    addr8(c);
    c.wr64(c.eaLo, c.eaHi, w[2]!, w[3]!);
    c.eaLo = lo; c.eaHi = hi;
  } else if (size === 8) c.wr64(lo, hi, w[0]!, w[1]!);
  else c.wr32(lo, hi, w[0]!);
}

function loadSrc(c: Cpu, i: Insn, f: number): void {
  const o = i.o1;
  if (o >= 0) {
    if (f & F_SGPR) {
      S32[0] = c.regs[o << 1]!; S32[1] = (f & F_SIZE) === 8 ? c.regs[(o << 1) + 1]! : 0; S32[2] = 0; S32[3] = 0;
    } else if (f & F_SMMX) mmxRead(c, o, S32);
    else { const x = c.xmm32, b = o << 2; S32[0] = x[b]!; S32[1] = x[b + 1]!; S32[2] = x[b + 2]!; S32[3] = x[b + 3]!; }
  } else if (o === MEM) {
    ea(c, i);
    readMem(c, f & F_SIZE, f & F_ALIGN, S32);
  } else if (o === IMM) {
    S32[0] = i.imm & 0xff; S32[1] = 0; S32[2] = 0; S32[3] = 0;
  }
}

function loadDst(c: Cpu, r: number, f: number): void {
  if (f & F_DMMX) mmxRead(c, r, D32);
  else { const x = c.xmm32, b = r << 2; D32[0] = x[b]!; D32[1] = x[b + 1]!; D32[2] = x[b + 2]!; D32[3] = x[b + 3]!; }
}

function storeDst(c: Cpu, r: number, f: number): void {
  if (f & F_DMMX) mmxWrite(c, r, D32[0]!, D32[1]!);
  else { const x = c.xmm32, b = r << 2; x[b] = D32[0]!; x[b + 1] = D32[1]!; x[b + 2] = D32[2]!; x[b + 3] = D32[3]!; }
}

// ------------------------------------------------------------------------------------------
// Handlers

type VecOp = (n: number, imm: number) => void;
const VOPS: VecOp[] = [];
const VOP_IDS = new Map<string, number>();
function vop(names: string | string[], fn: VecOp): void {
  const id = VOPS.length;
  VOPS.push(fn);
  for (const n of typeof names === 'string' ? [names] : names) VOP_IDS.set(n, id);
}

/** dst = op(dst, src[, imm]) for the lane operations of VOPS. */
export function hVec(c: Cpu, i: Insn): void {
  const f = i.imm2;
  check(c, f);
  if (f & F_MMX) mmxEnter(c);
  loadSrc(c, i, f);
  loadDst(c, i.o0, f);
  fpMode(c);
  VOPS[i.sub]!(f & F_DMMX ? 8 : 16, i.imm);
  commit(c);
  storeDst(c, i.o0, f);
}

/**
 * The generic move: `len` bytes from byte `so` of the source (register, or memory at offset 0) to
 * byte `dof` of the destination; register destinations keep their other bytes unless `zero`.
 * Insn.sub = so | dof << 5 | len << 10 | zero << 15.
 */
export function hMove(c: Cpu, i: Insn): void {
  const f = i.imm2;
  check(c, f);
  if (f & F_MMX) mmxEnter(c);
  const sub = i.sub, len = (sub >> 10) & 31, dof = (sub >> 5) & 31;
  let so = sub & 31;
  if (i.o1 === MEM) {
    ea(c, i);
    readMem(c, len, f & F_ALIGN, S32);
    so = 0;
  } else loadSrc(c, i, f);
  if (i.o0 === MEM) {
    ea(c, i);
    writeMem(c, len, f & F_ALIGN, S8, so);
    return;
  }
  if (f & F_DGPR) {
    let lo = 0;
    for (let k = Math.min(len, 4) - 1; k >= 0; k--) lo = (lo << 8) | S8[so + k]!;
    c.setReg(i.o0, len === 8 ? 8 : 4, lo, len === 8 ? S32[(so >> 2) + 1]! : 0);
    return;
  }
  if (sub & 0x8000) { D32[0] = 0; D32[1] = 0; D32[2] = 0; D32[3] = 0; } else loadDst(c, i.o0, f);
  for (let k = 0; k < len; k++) D8[dof + k] = S8[so + k]!;
  storeDst(c, i.o0, f);
}

/** MOVMSKPS/PD, PMOVMSKB: sign bits to a GPR. sub = lane size (4, 8, 1). */
export function hMovmsk(c: Cpu, i: Insn): void {
  const f = i.imm2;
  check(c, f);
  if (f & F_MMX) mmxEnter(c);
  loadSrc(c, i, f);
  const w = i.sub, n = f & F_SMMX ? 8 : 16;
  let m = 0;
  for (let k = 0, b = 0; k < n; k += w, b++) if (S8[k + w - 1]! & 0x80) m |= 1 << b;
  c.setReg(i.o0, 4, m, 0);
}

/** MASKMOVDQU / MASKMOVQ: bytes of o0 whose mask byte (o1) has bit 7 set go to DS:rDI. */
export function hMaskmov(c: Cpu, i: Insn): void {
  const f = i.imm2;
  check(c, f);
  if (f & F_MMX) mmxEnter(c);
  loadSrc(c, i, f);
  loadDst(c, i.o0, f);
  const n = f & F_DMMX ? 8 : 16;
  const R = c.regs;
  for (let k = 0; k < n; k++) {
    if (!(S8[k]! & 0x80)) continue;
    if (i.asz === 8) {
      const a = (R[14]! >>> 0) + k + (c.effBaseLo[i.seg]! >>> 0);
      c.wr8(a | 0, (R[15]! + c.effBaseHi[i.seg]! + (a >= TWO32 ? Math.floor(a / TWO32) : 0)) | 0, D8[k]!);
    } else {
      const a = i.asz === 4 ? (R[14]! + k) | 0 : (R[14]! + k) & 0xffff;
      c.wr8((a + c.effBaseLo[i.seg]!) | 0, 0, D8[k]!);
    }
  }
}

export function hEmms(c: Cpu, _i: Insn): void {
  check(c, 0);
  c.ftw = 0;
}

export function hLdmxcsr(c: Cpu, i: Insn): void {
  check(c, F_SSE);
  ea(c, i);
  const v = c.rd32(c.eaLo, c.eaHi);
  if (v & ~MXCSR_MASK) c.gp(0);
  c.mxcsr = v;
}

export function hStmxcsr(c: Cpu, i: Insn): void {
  check(c, F_SSE);
  ea(c, i);
  c.wr32(c.eaLo, c.eaHi, c.mxcsr);
}

/** FXSAVE / FXSAVE64 (sub = 8 for the REX.W form). */
export function hFxsave(c: Cpu, i: Insn): void {
  if (c.cr0 & (CR0_EM | CR0_TS)) c.fault(EXC_NM);
  ea(c, i);
  const lo = c.eaLo, hi = c.eaHi;
  if (lo & 15) c.gp(0);
  const img = fxImage(c, i.sub === 8);
  c.probeWrite(lo, hi, 512);
  for (let k = 0; k < 512; k += 8) {
    const n = (lo >>> 0) + k;
    c.wr64(n | 0, n >= TWO32 ? hi + 1 : hi, img.getInt32(k, true), img.getInt32(k + 4, true));
  }
}

const FX = new DataView(new ArrayBuffer(512));
const FX8 = new Uint8Array(FX.buffer);

/** The FXSAVE image of the current state (the reserved and available bytes are zero). */
export function fxImage(c: Cpu, wide: boolean): DataView {
  FX8.fill(0);
  FX.setUint16(FXSAVE.fcw, c.fcw, true);
  FX.setUint16(FXSAVE.fsw, fpswGet(c), true);
  FX.setUint8(FXSAVE.ftw, c.ftw);
  FX.setUint16(FXSAVE.fop, c.fop, true);
  FX.setInt32(FXSAVE.fip, c.fipLo, true);
  FX.setInt32(FXSAVE.fdp, c.fdpLo, true);
  if (wide) { FX.setInt32(FXSAVE.fip + 4, c.fipHi, true); FX.setInt32(FXSAVE.fdp + 4, c.fdpHi, true); }
  FX.setInt32(FXSAVE.mxcsr, c.mxcsr, true);
  FX.setInt32(FXSAVE.mxcsrMask, MXCSR_MASK, true);
  for (let k = 0; k < 8; k++) {
    const r = (c.ftop + k) & 7;
    if (!c.fpRawOk[r]) f80Raw(c, r);
    FX8.set(c.fpRaw.subarray(r * 10, r * 10 + 10), FXSAVE.st + 16 * k);
  }
  const nx = c.long64 ? 256 : 128;
  FX8.set(c.xmm.subarray(0, nx), FXSAVE.xmm);
  return FX;
}

/** FXRSTOR / FXRSTOR64. */
export function hFxrstor(c: Cpu, i: Insn): void {
  if (c.cr0 & (CR0_EM | CR0_TS)) c.fault(EXC_NM);
  ea(c, i);
  const lo = c.eaLo, hi = c.eaHi;
  if (lo & 15) c.gp(0);
  for (let k = 0; k < 512; k += 8) {
    const n = (lo >>> 0) + k;
    FX.setInt32(k, c.rd64(n | 0, n >= TWO32 ? hi + 1 : hi), true);
    FX.setInt32(k + 4, c.hi, true);
  }
  const mx = FX.getInt32(FXSAVE.mxcsr, true);
  if (mx & ~MXCSR_MASK) c.gp(0);
  fxLoad(c, FX, i.sub === 8);
}

/** Loads the state from an FXSAVE image (also used by setState through the API's FPU group). */
export function fxLoad(c: Cpu, img: DataView, wide: boolean): void {
  const b = new Uint8Array(img.buffer, img.byteOffset, 512);
  c.fcw = img.getUint16(FXSAVE.fcw, true);
  const sw = img.getUint16(FXSAVE.fsw, true);
  c.fsw = sw & ~0x3800;
  c.ftop = (sw >> 11) & 7;
  c.ftw = img.getUint8(FXSAVE.ftw);
  c.fop = img.getUint16(FXSAVE.fop, true) & 0x7ff;
  c.fipLo = img.getInt32(FXSAVE.fip, true);
  c.fdpLo = img.getInt32(FXSAVE.fdp, true);
  c.fipHi = wide ? img.getInt32(FXSAVE.fip + 4, true) : 0;
  c.fdpHi = wide ? img.getInt32(FXSAVE.fdp + 4, true) : 0;
  c.mxcsr = img.getInt32(FXSAVE.mxcsr, true) & MXCSR_MASK;
  for (let k = 0; k < 8; k++) fpuLoadRaw(c, (c.ftop + k) & 7, b, FXSAVE.st + 16 * k);
  const nx = c.long64 ? 256 : 128;
  c.xmm.set(b.subarray(FXSAVE.xmm, FXSAVE.xmm + nx), 0);
}

/** CVT(T)SS2SI / CVT(T)SD2SI: sub = (trunc ? 1 : 0) | (double ? 2 : 0); i.size = 4 or 8. */
export function hCvtToInt(c: Cpu, i: Insn): void {
  const f = i.imm2;
  check(c, f);
  loadSrc(c, i, f);
  fpMode(c);
  const dbl = (i.sub & 2) !== 0;
  let x: number;
  if (dbl) x = isNan64(S32[1]!, S32[0]!) ? NaN : den64(S32[1]!, S32[0]!) && DAZ ? 0 : SF64[0]!;
  else x = isNan32(S32[0]!) ? NaN : den32(S32[0]!) && DAZ ? 0 : SF32[0]!;
  const lo = toInt(x, i.sub & 1 ? RZ : RC, i.size === 8);
  commit(c);
  c.setReg(i.o0, i.size, lo, i.size === 8 ? HI : 0);
}

// ------------------------------------------------------------------------------------------
// Floating-point core

const MIN64 = 2.2250738585072014e-308, MAX64 = 1.7976931348623157e308;
const MIN32 = 1.1754943508222875e-38, MAX32 = 3.4028234663852886e38;

function isNan64(hi: number, lo: number): boolean { return (hi & 0x7ff00000) === 0x7ff00000 && ((hi & 0xfffff) | lo) !== 0; }
function den64(hi: number, lo: number): boolean { return (hi & 0x7ff00000) === 0 && ((hi & 0xfffff) | lo) !== 0; }
function isNan32(x: number): boolean { return (x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0; }
function den32(x: number): boolean { return (x & 0x7f800000) === 0 && (x & 0x7fffff) !== 0; }

function next64(x: number, up: boolean): number {
  if (x !== x) return x;
  if (x === 0) return up ? 5e-324 : -5e-324;
  B64[0] = x;
  const inc = (x > 0) === up;
  let lo = B64I[0]! >>> 0, hi = B64I[1]!;
  if (inc) { lo += 1; if (lo >= TWO32) { lo = 0; hi++; } } else { if (lo === 0) { lo = TWO32 - 1; hi--; } else lo -= 1; }
  B64I[0] = lo | 0; B64I[1] = hi;
  return B64[0]!;
}

function next32(x: number, up: boolean): number {
  if (x !== x) return x;
  if (x === 0) return up ? 1.401298464324817e-45 : -1.401298464324817e-45;
  B32[0] = x;
  B32I[0] = (x > 0) === up ? B32I[0]! + 1 : B32I[0]! - 1;
  return B32[0]!;
}

/** Applies MXCSR.RC to the round-to-nearest result r whose exact value differs by sign e. */
function directed(r: number, e: number, single: boolean): number {
  switch (RC) {
    case RD: return e < 0 ? (single ? next32(r, false) : next64(r, false)) : r;
    case RU: return e > 0 ? (single ? next32(r, true) : next64(r, true)) : r;
    case RZ:
      if (e < 0 && r > 0) return single ? next32(r, false) : next64(r, false);
      if (e > 0 && r < 0) return single ? next32(r, true) : next64(r, true);
      return r;
    default: return r;
  }
}

function overflow(neg: boolean, single: boolean): number {
  FL |= MX_OE | MX_PE;
  const max = single ? MAX32 : MAX64;
  switch (RC) {
    case RZ: return neg ? -max : max;
    case RD: return neg ? -Infinity : max;
    case RU: return neg ? -max : Infinity;
    default: return neg ? -Infinity : Infinity;
  }
}

/** Finishes a finite nearest-rounded result r with exact-error sign e: PE, RC, OE, UE, FTZ. */
function finish(r: number, e: number, single: boolean): number {
  // The true result's sign: r is rounded to nearest, so it is the sign of r, zeros included.
  const neg = r < 0 || Object.is(r, -0);
  if (e !== 0) {
    FL |= MX_PE;
    if (RC !== RN) {
      r = directed(r, e, single);
      if (r === Infinity || r === -Infinity) FL |= MX_OE;
    }
  }
  const ar = Math.abs(r);
  if (ar < (single ? MIN32 : MIN64) && (ar !== 0 || e !== 0)) {
    if (!UMASK) FL |= MX_UE;
    else if (FTZ) { FL |= MX_UE | MX_PE; return neg ? -0 : 0; }
    else if (e !== 0) FL |= MX_UE;
  }
  return r;
}

function sgn(x: number): number { return x > 0 ? 1 : x < 0 ? -1 : 0; }

// Exact decomposition x = m * 2^e (BigInt m), for the rare operands outside the safe range.
function dec(x: number): [bigint, number] {
  B64[0] = x;
  const hi = B64I[1]!, lo = B64I[0]! >>> 0;
  const ex = (hi >>> 20) & 0x7ff;
  let m = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let e: number;
  if (ex === 0) e = -1074; else { m |= 1n << 52n; e = ex - 1075; }
  return [hi < 0 ? -m : m, e];
}
function cmpExact(m1: bigint, e1: number, m2: bigint, e2: number): number {
  const k = Math.min(e1, e2);
  const v = (m1 << BigInt(e1 - k)) - (m2 << BigInt(e2 - k));
  return v > 0n ? 1 : v < 0n ? -1 : 0;
}

const SPLIT = 134217729;
const SAFE_HI = 2 ** 450, SAFE_LO = 2 ** -450;
function safe(x: number): boolean { const a = Math.abs(x); return a < SAFE_HI && a > SAFE_LO; }

/** sign(x*y - p) for finite x, y, p. */
function mulErr(x: number, y: number, p: number): number {
  if (x === 0 || y === 0) return 0;
  if (safe(x) && safe(y)) {
    let t = SPLIT * x; const xh = t - (t - x), xl = x - xh;
    t = SPLIT * y; const yh = t - (t - y), yl = y - yh;
    return sgn(((xh * yh - p) + xh * yl + xl * yh) + xl * yl);
  }
  const [mx, ex] = dec(x), [my, ey] = dec(y), [mp, ep] = dec(p);
  return cmpExact(mx * my, ex + ey, mp, ep);
}

/** sign(a - q*b) for finite values. */
function remErr(a: number, q: number, b: number): number {
  if (safe(q) && safe(b) && Math.abs(a) > 2 ** -900) {
    const p = q * b;
    let t = SPLIT * q; const qh = t - (t - q), ql = q - qh;
    t = SPLIT * b; const bh = t - (t - b), bl = b - bh;
    const e = ((qh * bh - p) + qh * bl + ql * bh) + ql * bl;
    return sgn((a - p) - e);
  }
  const [ma, ea2] = dec(a), [mq, eq] = dec(q), [mb, eb] = dec(b);
  return cmpExact(ma, ea2, mq * mb, eq + eb);
}

const OP_ADD = 0, OP_SUB = 1, OP_MUL = 2, OP_DIV = 3, OP_SQRT = 4;

/**
 * One IEEE operation on non-NaN operands (DAZ already applied), rounded to binary64 or binary32
 * per MXCSR; NaN = the default NaN (invalid).
 */
function arith(op: number, a: number, b: number, single: boolean): number {
  let d: number, e = 0;
  switch (op) {
    case OP_ADD: case OP_SUB: {
      if (op === OP_SUB) b = -b;
      d = a + b;
      if (d !== d) { FL |= MX_IE; return NaN; }
      if (d === Infinity || d === -Infinity) return a - a === 0 && b - b === 0 ? overflow(d < 0, single) : d;
      const bb = d - a;
      e = sgn((a - (d - bb)) + (b - bb));
      if (d === 0 && e === 0 && RC === RD && !(Object.is(a, 0) && Object.is(b, 0))) d = -0;
      break;
    }
    case OP_MUL:
      d = a * b;
      if (d !== d) { FL |= MX_IE; return NaN; }
      if (d === Infinity || d === -Infinity) return a - a === 0 && b - b === 0 ? overflow(d < 0, single) : d;
      e = single ? 0 : mulErr(a, b, d);
      break;
    case OP_DIV:
      if (b === 0) {
        if (a === 0) { FL |= MX_IE; return NaN; }
        if (a - a === 0) FL |= MX_ZE;
        return (a < 0) !== Object.is(b, -0) ? -Infinity : Infinity;
      }
      d = a / b;
      if (d !== d) { FL |= MX_IE; return NaN; }
      if (d === Infinity || d === -Infinity) return a - a === 0 ? overflow(d < 0, single) : d;
      if (d - d !== 0 || a - a !== 0 || b - b !== 0) return d; // infinite operand: exact
      e = d === 0 ? sgn(a) * sgn(b) : remErr(a, d, b) * sgn(b);
      break;
    default: // sqrt of b
      if (b < 0) { FL |= MX_IE; return NaN; }
      d = Math.sqrt(b);
      if (d === Infinity || d === 0) return d;
      e = remErr(b, d, d);
  }
  if (single) {
    const f = Math.fround(d);
    // |d| rounds past MAX32 even to nearest: the exact value overflows in every rounding mode.
    if ((f === Infinity || f === -Infinity) && d - d === 0) return overflow(f < 0, true);
    if (f !== d) e = d > f ? 1 : -1;
    return finish(f, e, true);
  }
  return finish(d, e, false);
}

/** arith() with a denormal operand: DE is reported unless the operation is invalid or divides by zero (as the oracle CPU does). */
function arithDe(op: number, a: number, b: number, single: boolean, de: number): number {
  if (de === 0) return arith(op, a, b, single);
  const before = FL;
  FL = 0;
  const r = arith(op, a, b, single);
  FL |= before | (FL & (MX_IE | MX_ZE) ? 0 : de);
  return r;
}

/** Binary operation on double lane k of D (first operand) and S. */
function lane64(op: number, k: number): void {
  const ah = D32[2 * k + 1]!, al = D32[2 * k]!, bh = S32[2 * k + 1]!, bl = S32[2 * k]!;
  const an = op !== OP_SQRT && isNan64(ah, al), bn = isNan64(bh, bl);
  if (an || bn) {
    if ((an && !(ah & 0x80000)) || (bn && !(bh & 0x80000))) FL |= MX_IE;
    if (an) D32[2 * k + 1] = ah | 0x80000;
    else { D32[2 * k + 1] = bh | 0x80000; D32[2 * k] = bl; }
    return;
  }
  let a = DF64[k]!, b = SF64[k]!, de = 0;
  if (op !== OP_SQRT && den64(ah, al)) { if (DAZ) a = ah < 0 ? -0 : 0; else de = MX_DE; }
  if (den64(bh, bl)) { if (DAZ) b = bh < 0 ? -0 : 0; else de = MX_DE; }
  const r = arithDe(op, a, b, false, de);
  if (r !== r) { D32[2 * k] = 0; D32[2 * k + 1] = 0xfff80000 | 0; } else DF64[k] = r;
}

function lane32(op: number, k: number): void {
  const ax = D32[k]!, bx = S32[k]!;
  const an = op !== OP_SQRT && isNan32(ax), bn = isNan32(bx);
  if (an || bn) {
    if ((an && !(ax & 0x400000)) || (bn && !(bx & 0x400000))) FL |= MX_IE;
    D32[k] = (an ? ax : bx) | 0x400000;
    return;
  }
  let a = DF32[k]!, b = SF32[k]!, de = 0;
  if (op !== OP_SQRT && den32(ax)) { if (DAZ) a = ax < 0 ? -0 : 0; else de = MX_DE; }
  if (den32(bx)) { if (DAZ) b = bx < 0 ? -0 : 0; else de = MX_DE; }
  const r = arithDe(op, a, b, true, de);
  if (r !== r) D32[k] = 0xffc00000 | 0; else DF32[k] = r;
}

/** MIN/MAX lane: NaN or both zero -> the source; any NaN signals invalid. */
function minmax32(k: number, max: boolean): void {
  const ax = D32[k]!, bx = S32[k]!;
  if (isNan32(ax) || isNan32(bx)) { FL |= MX_IE; D32[k] = DAZ && den32(bx) ? bx & 0x80000000 : bx; return; }
  let a = DF32[k]!, b = SF32[k]!;
  if (den32(ax)) { if (DAZ) a = 0; else FL |= MX_DE; }
  if (den32(bx)) { if (DAZ) b = 0; else FL |= MX_DE; }
  const takeA = max ? a > b : a < b;
  if (takeA) { if (DAZ && den32(ax)) D32[k] = ax & 0x80000000; } else D32[k] = DAZ && den32(bx) ? bx & 0x80000000 : bx;
}
function minmax64(k: number, max: boolean): void {
  const ah = D32[2 * k + 1]!, al = D32[2 * k]!, bh = S32[2 * k + 1]!, bl = S32[2 * k]!;
  if (isNan64(ah, al) || isNan64(bh, bl)) {
    FL |= MX_IE;
    const z = DAZ && den64(bh, bl);
    D32[2 * k] = z ? 0 : bl; D32[2 * k + 1] = z ? bh & 0x80000000 : bh;
    return;
  }
  let a = DF64[k]!, b = SF64[k]!;
  if (den64(ah, al)) { if (DAZ) a = 0; else FL |= MX_DE; }
  if (den64(bh, bl)) { if (DAZ) b = 0; else FL |= MX_DE; }
  const takeA = max ? a > b : a < b;
  if (takeA) { if (DAZ && den64(ah, al)) { D32[2 * k] = 0; D32[2 * k + 1] = ah & 0x80000000; } }
  else if (DAZ && den64(bh, bl)) { D32[2 * k] = 0; D32[2 * k + 1] = bh & 0x80000000; }
  else { D32[2 * k] = bl; D32[2 * k + 1] = bh; }
}

/** CMPPS/PD/SS/SD predicate p (0-7) on values with NaN flags: true/false. */
function cmpPred(p: number, a: number, b: number, unord: boolean, snan: boolean): boolean {
  if (snan || (unord && (p & 3) !== 0 && (p & 3) !== 3)) FL |= MX_IE;
  switch (p & 7) {
    case 0: return !unord && a === b;
    case 1: return !unord && a < b;
    case 2: return !unord && a <= b;
    case 3: return unord;
    case 4: return unord || a !== b;
    case 5: return unord || !(a < b);
    case 6: return unord || !(a <= b);
    default: return !unord;
  }
}
function cmp32(k: number, p: number): void {
  const ax = D32[k]!, bx = S32[k]!;
  const an = isNan32(ax), bn = isNan32(bx);
  let a = DF32[k]!, b = SF32[k]!;
  if (!an && !bn && den32(ax)) { if (DAZ) a = 0; else FL |= MX_DE; }
  if (!an && !bn && den32(bx)) { if (DAZ) b = 0; else FL |= MX_DE; }
  D32[k] = cmpPred(p, a, b, an || bn, (an && !(ax & 0x400000)) || (bn && !(bx & 0x400000))) ? -1 : 0;
}
function cmp64(k: number, p: number): void {
  const ah = D32[2 * k + 1]!, al = D32[2 * k]!, bh = S32[2 * k + 1]!, bl = S32[2 * k]!;
  const an = isNan64(ah, al), bn = isNan64(bh, bl);
  let a = DF64[k]!, b = SF64[k]!;
  if (!an && !bn && den64(ah, al)) { if (DAZ) a = 0; else FL |= MX_DE; }
  if (!an && !bn && den64(bh, bl)) { if (DAZ) b = 0; else FL |= MX_DE; }
  const r = cmpPred(p, a, b, an || bn, (an && !(ah & 0x80000)) || (bn && !(bh & 0x80000))) ? -1 : 0;
  D32[2 * k] = r; D32[2 * k + 1] = r;
}

/** COMISS/COMISD/UCOMISS/UCOMISD: ZF PF CF from the low lanes. sub = double | quiet << 1. */
export function hComis(c: Cpu, i: Insn): void {
  const f = i.imm2;
  check(c, f);
  loadSrc(c, i, f);
  loadDst(c, i.o0, f);
  fpMode(c);
  const dbl = (i.sub & 1) !== 0, quiet = (i.sub & 2) !== 0;
  let a: number, b: number, an: boolean, bn: boolean, as: boolean, bs: boolean;
  if (dbl) {
    an = isNan64(D32[1]!, D32[0]!); bn = isNan64(S32[1]!, S32[0]!);
    as = an && !(D32[1]! & 0x80000); bs = bn && !(S32[1]! & 0x80000);
    a = DF64[0]!; b = SF64[0]!;
    if (!an && !bn && den64(D32[1]!, D32[0]!)) { if (DAZ) a = 0; else FL |= MX_DE; }
    if (!an && !bn && den64(S32[1]!, S32[0]!)) { if (DAZ) b = 0; else FL |= MX_DE; }
  } else {
    an = isNan32(D32[0]!); bn = isNan32(S32[0]!);
    as = an && !(D32[0]! & 0x400000); bs = bn && !(S32[0]! & 0x400000);
    a = DF32[0]!; b = SF32[0]!;
    if (!an && !bn && den32(D32[0]!)) { if (DAZ) a = 0; else FL |= MX_DE; }
    if (!an && !bn && den32(S32[0]!)) { if (DAZ) b = 0; else FL |= MX_DE; }
  }
  if (as || bs || (!quiet && (an || bn))) FL |= MX_IE;
  commit(c);
  // ZF PF CF: unordered 111, less 001, equal 100, greater 000; OF SF AF cleared.
  c.lz.setEager(an || bn ? 0x45 : a < b ? 0x01 : a === b ? 0x40 : 0);
}

/** Rounds x to an integer per rc; returns the low half, HI the high half; invalid -> indefinite. */
let HI = 0;
function toInt(x: number, rc: number, wide: boolean): number {
  let r: number;
  switch (rc) {
    case RN: { const fl = Math.floor(x), d = x - fl; r = d > 0.5 || (d === 0.5 && fl % 2 !== 0) ? fl + 1 : fl; break; }
    case RD: r = Math.floor(x); break;
    case RU: r = Math.ceil(x); break;
    default: r = Math.trunc(x);
  }
  const ok = wide ? r >= -9223372036854775808 && r < 9223372036854775808 : r >= -2147483648 && r <= 2147483647;
  if (!ok || r !== r) { FL |= MX_IE; HI = wide ? 0x80000000 | 0 : 0; return wide ? 0 : 0x80000000 | 0; }
  if (r !== x) FL |= MX_PE;
  if (!wide) { HI = 0; return r | 0; }
  const h = Math.floor(r / TWO32);
  HI = h | 0;
  return (r - h * TWO32) | 0;
}

/** An integer (lo, hi; hi = sign extension for 32-bit values) to binary32/64 per MXCSR.RC. */
function fromInt(lo: number, hi: number, single: boolean): number {
  const v = hi * TWO32 + (lo >>> 0);
  if (Math.abs(v) < 2 ** 53 && hi >= -2097152 && hi < 2097152) {
    if (!single) return v;
    const f = Math.fround(v);
    return f === v ? f : finish(f, v > f ? 1 : -1, true);
  }
  // 64-bit value beyond 2^53: round the exact integer with BigInt (cold path).
  let m = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
  const neg = m < 0n;
  if (neg) m = -m;
  const bits = single ? 24 : 53;
  const len = m.toString(2).length;
  if (len <= bits) return neg ? -Number(m) : Number(m);
  const sh = BigInt(len - bits);
  let t = m >> sh;
  const rem = m - (t << sh), half = 1n << (sh - 1n);
  if (rem !== 0n) {
    FL |= MX_PE;
    const up = RC === RN ? rem > half || (rem === half && (t & 1n) === 1n) : RC === RZ ? false : (RC === RU) !== neg;
    if (up) t += 1n;
  }
  const r = Number(t) * 2 ** (len - bits);
  return neg ? -r : r;
}

// NaN conversions between the formats (quieted; payload kept in the top bits).
function nan32to64(x: number, k: number): void {
  D32[2 * k + 1] = (x & 0x80000000) | 0x7ff80000 | ((x >>> 3) & 0x7ffff);
  D32[2 * k] = x << 29;
}
function nan64to32(hi: number, lo: number): number {
  return (hi & 0x80000000) | 0x7fc00000 | ((hi & 0x7ffff) << 3) | (lo >>> 29);
}

function cvtD2S(hi: number, lo: number, d: number): number {
  if (isNan64(hi, lo)) { if (!(hi & 0x80000)) FL |= MX_IE; return nan64to32(hi, lo); }
  if (den64(hi, lo)) { if (DAZ) d = hi < 0 ? -0 : 0; else FL |= MX_DE; }
  const f = Math.fround(d);
  if ((f === Infinity || f === -Infinity) && d - d === 0) return f32bits(overflow(f < 0, true));
  return f32bits(finish(f, f === d ? 0 : d > f ? 1 : -1, true));
}
function f32bits(v: number): number {
  B32[0] = v;
  return B32I[0]!;
}
function cvtS2D(x: number, v: number, k: number): void {
  if (isNan32(x)) { if (!(x & 0x400000)) FL |= MX_IE; nan32to64(x, k); return; }
  if (den32(x)) { if (DAZ) v = x < 0 ? -0 : 0; else FL |= MX_DE; }
  DF64[k] = v;
}
function f32toInt(x: number, trunc: boolean): number {
  const v = isNan32(x) ? NaN : den32(x) && DAZ ? 0 : (B32I[0] = x, B32[0]!);
  return toInt(v, trunc ? RZ : RC, false);
}
function f64toInt(hi: number, lo: number, trunc: boolean): number {
  B64I[0] = lo; B64I[1] = hi;
  const v = isNan64(hi, lo) ? NaN : den64(hi, lo) && DAZ ? 0 : B64[0]!;
  return toInt(v, trunc ? RZ : RC, false);
}

// ------------------------------------------------------------------------------------------
// Lane operations

// Logical.
vop(['pand', 'andps', 'andpd'], (n) => { for (let k = 0; k < n >> 2; k++) D32[k] = D32[k]! & S32[k]!; });
vop(['pandn', 'andnps', 'andnpd'], (n) => { for (let k = 0; k < n >> 2; k++) D32[k] = ~D32[k]! & S32[k]!; });
vop(['por', 'orps', 'orpd'], (n) => { for (let k = 0; k < n >> 2; k++) D32[k] = D32[k]! | S32[k]!; });
vop(['pxor', 'xorps', 'xorpd'], (n) => { for (let k = 0; k < n >> 2; k++) D32[k] = D32[k]! ^ S32[k]!; });

// Add/subtract, wrapping and saturating.
vop('paddb', (n) => { for (let k = 0; k < n; k++) D8[k] = D8[k]! + S8[k]!; });
vop('paddw', (n) => { for (let k = 0; k < n >> 1; k++) D16[k] = D16[k]! + S16[k]!; });
vop('paddd', (n) => { for (let k = 0; k < n >> 2; k++) D32[k] = D32[k]! + S32[k]!; });
vop('paddq', (n) => {
  for (let k = 0; k < n >> 2; k += 2) {
    const s = (D32[k]! >>> 0) + (S32[k]! >>> 0);
    D32[k] = s | 0; D32[k + 1] = (D32[k + 1]! + S32[k + 1]! + (s >= TWO32 ? 1 : 0)) | 0;
  }
});
vop('psubb', (n) => { for (let k = 0; k < n; k++) D8[k] = D8[k]! - S8[k]!; });
vop('psubw', (n) => { for (let k = 0; k < n >> 1; k++) D16[k] = D16[k]! - S16[k]!; });
vop('psubd', (n) => { for (let k = 0; k < n >> 2; k++) D32[k] = D32[k]! - S32[k]!; });
vop('psubq', (n) => {
  for (let k = 0; k < n >> 2; k += 2) {
    const s = (D32[k]! >>> 0) - (S32[k]! >>> 0);
    D32[k] = s | 0; D32[k + 1] = (D32[k + 1]! - S32[k + 1]! - (s < 0 ? 1 : 0)) | 0;
  }
});
const sat = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);
vop('paddsb', (n) => { for (let k = 0; k < n; k++) Ds8[k] = sat(Ds8[k]! + Ss8[k]!, -128, 127); });
vop('paddsw', (n) => { for (let k = 0; k < n >> 1; k++) Ds16[k] = sat(Ds16[k]! + Ss16[k]!, -32768, 32767); });
vop('paddusb', (n) => { for (let k = 0; k < n; k++) D8[k] = sat(D8[k]! + S8[k]!, 0, 255); });
vop('paddusw', (n) => { for (let k = 0; k < n >> 1; k++) D16[k] = sat(D16[k]! + S16[k]!, 0, 65535); });
vop('psubsb', (n) => { for (let k = 0; k < n; k++) Ds8[k] = sat(Ds8[k]! - Ss8[k]!, -128, 127); });
vop('psubsw', (n) => { for (let k = 0; k < n >> 1; k++) Ds16[k] = sat(Ds16[k]! - Ss16[k]!, -32768, 32767); });
vop('psubusb', (n) => { for (let k = 0; k < n; k++) D8[k] = sat(D8[k]! - S8[k]!, 0, 255); });
vop('psubusw', (n) => { for (let k = 0; k < n >> 1; k++) D16[k] = sat(D16[k]! - S16[k]!, 0, 65535); });

// Compare.
vop('pcmpeqb', (n) => { for (let k = 0; k < n; k++) D8[k] = D8[k] === S8[k] ? 0xff : 0; });
vop('pcmpeqw', (n) => { for (let k = 0; k < n >> 1; k++) D16[k] = D16[k] === S16[k] ? 0xffff : 0; });
vop('pcmpeqd', (n) => { for (let k = 0; k < n >> 2; k++) D32[k] = D32[k] === S32[k] ? -1 : 0; });
vop('pcmpgtb', (n) => { for (let k = 0; k < n; k++) Ds8[k] = Ds8[k]! > Ss8[k]! ? -1 : 0; });
vop('pcmpgtw', (n) => { for (let k = 0; k < n >> 1; k++) Ds16[k] = Ds16[k]! > Ss16[k]! ? -1 : 0; });
vop('pcmpgtd', (n) => { for (let k = 0; k < n >> 2; k++) D32[k] = D32[k]! > S32[k]! ? -1 : 0; });

// Min/max, average, multiply.
vop('pminub', (n) => { for (let k = 0; k < n; k++) if (S8[k]! < D8[k]!) D8[k] = S8[k]!; });
vop('pmaxub', (n) => { for (let k = 0; k < n; k++) if (S8[k]! > D8[k]!) D8[k] = S8[k]!; });
vop('pminsw', (n) => { for (let k = 0; k < n >> 1; k++) if (Ss16[k]! < Ds16[k]!) Ds16[k] = Ss16[k]!; });
vop('pmaxsw', (n) => { for (let k = 0; k < n >> 1; k++) if (Ss16[k]! > Ds16[k]!) Ds16[k] = Ss16[k]!; });
vop('pavgb', (n) => { for (let k = 0; k < n; k++) D8[k] = (D8[k]! + S8[k]! + 1) >> 1; });
vop('pavgw', (n) => { for (let k = 0; k < n >> 1; k++) D16[k] = (D16[k]! + S16[k]! + 1) >> 1; });
vop('pmullw', (n) => { for (let k = 0; k < n >> 1; k++) D16[k] = Math.imul(D16[k]!, S16[k]!); });
vop('pmulhw', (n) => { for (let k = 0; k < n >> 1; k++) D16[k] = Math.imul(Ds16[k]!, Ss16[k]!) >> 16; });
vop('pmulhuw', (n) => { for (let k = 0; k < n >> 1; k++) D16[k] = (D16[k]! * S16[k]!) >>> 16; });
vop('pmuludq', (n) => {
  for (let k = 0; k < n >> 2; k += 2) {
    const a = D32[k]! >>> 0, b = S32[k]! >>> 0;
    const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
    const ll = al * bl, mid = ah * bl + al * bh, hh = ah * bh;
    const lo = ll + (mid % 65536) * 65536;
    D32[k] = lo % TWO32 | 0;
    D32[k + 1] = (hh + Math.floor(mid / 65536) + Math.floor(lo / TWO32)) | 0;
  }
});
vop('pmaddwd', (n) => {
  for (let k = 0; k < n >> 2; k++) {
    D32[k] = (Math.imul(Ds16[2 * k]!, Ss16[2 * k]!) + Math.imul(Ds16[2 * k + 1]!, Ss16[2 * k + 1]!)) | 0;
  }
});
vop('psadbw', (n) => {
  for (let q = 0; q < n; q += 8) {
    let s = 0;
    for (let k = q; k < q + 8; k++) s += Math.abs(D8[k]! - S8[k]!);
    D32[q >> 2] = s; D32[(q >> 2) + 1] = 0;
  }
});

// Shifts (count: S's low 64 bits, or the immediate loaded there).
function count(): number {
  return S32[1] !== 0 || S32[0]! >>> 0 > 64 ? 64 : S32[0]!;
}
vop('psllw', (n) => { const s = count(); for (let k = 0; k < n >> 1; k++) D16[k] = s > 15 ? 0 : D16[k]! << s; });
vop('pslld', (n) => { const s = count(); for (let k = 0; k < n >> 2; k++) D32[k] = s > 31 ? 0 : D32[k]! << s; });
vop('psllq', (n) => {
  const s = count();
  for (let k = 0; k < n >> 2; k += 2) {
    const lo = D32[k]!, hi = D32[k + 1]!;
    if (s > 63) { D32[k] = 0; D32[k + 1] = 0; } else if (s >= 32) { D32[k + 1] = lo << (s - 32); D32[k] = 0; } else if (s > 0) { D32[k + 1] = (hi << s) | (lo >>> (32 - s)); D32[k] = lo << s; }
  }
});
vop('psrlw', (n) => { const s = count(); for (let k = 0; k < n >> 1; k++) D16[k] = s > 15 ? 0 : D16[k]! >>> s; });
vop('psrld', (n) => { const s = count(); for (let k = 0; k < n >> 2; k++) D32[k] = s > 31 ? 0 : D32[k]! >>> s; });
vop('psrlq', (n) => {
  const s = count();
  for (let k = 0; k < n >> 2; k += 2) {
    const lo = D32[k]!, hi = D32[k + 1]!;
    if (s > 63) { D32[k] = 0; D32[k + 1] = 0; } else if (s >= 32) { D32[k] = hi >>> (s - 32); D32[k + 1] = 0; } else if (s > 0) { D32[k] = (lo >>> s) | (hi << (32 - s)); D32[k + 1] = hi >>> s; }
  }
});
vop('psraw', (n) => { const s = Math.min(count(), 15); for (let k = 0; k < n >> 1; k++) Ds16[k] = Ds16[k]! >> s; });
vop('psrad', (n) => { const s = Math.min(count(), 31); for (let k = 0; k < n >> 2; k++) D32[k] = D32[k]! >> s; });
vop('pslldq', (_n, imm) => {
  const s = imm & 0xff;
  for (let k = 15; k >= 0; k--) D8[k] = k - s >= 0 ? D8[k - s]! : 0;
});
vop('psrldq', (_n, imm) => {
  const s = imm & 0xff;
  for (let k = 0; k < 16; k++) D8[k] = k + s < 16 ? D8[k + s]! : 0;
});

// Unpack, pack, shuffle.
function unpack(n: number, w: number, high: boolean): void {
  T32[0] = D32[0]!; T32[1] = D32[1]!; T32[2] = D32[2]!; T32[3] = D32[3]!;
  const half = n >> 1, base = high ? half : 0;
  for (let k = 0, o = 0; k < half; k += w, o += 2 * w) {
    for (let b = 0; b < w; b++) { D8[o + b] = T8[base + k + b]!; D8[o + w + b] = S8[base + k + b]!; }
  }
}
vop('punpcklbw', (n) => unpack(n, 1, false));
vop('punpcklwd', (n) => unpack(n, 2, false));
vop(['punpckldq', 'unpcklps'], (n) => unpack(n, 4, false));
vop(['punpcklqdq', 'unpcklpd'], (n) => unpack(n, 8, false));
vop('punpckhbw', (n) => unpack(n, 1, true));
vop('punpckhwd', (n) => unpack(n, 2, true));
vop(['punpckhdq', 'unpckhps'], (n) => unpack(n, 4, true));
vop(['punpckhqdq', 'unpckhpd'], (n) => unpack(n, 8, true));
vop('packsswb', (n) => {
  const h = n >> 1;
  for (let k = 0; k < h; k++) T8[k] = sat(Ds16[k]!, -128, 127);
  for (let k = 0; k < h; k++) T8[h + k] = sat(Ss16[k]!, -128, 127);
  for (let k = 0; k < n; k++) D8[k] = T8[k]!;
});
vop('packuswb', (n) => {
  const h = n >> 1;
  for (let k = 0; k < h; k++) T8[k] = sat(Ds16[k]!, 0, 255);
  for (let k = 0; k < h; k++) T8[h + k] = sat(Ss16[k]!, 0, 255);
  for (let k = 0; k < n; k++) D8[k] = T8[k]!;
});
vop('packssdw', (n) => {
  const q = n >> 2;
  const t = T16;
  for (let k = 0; k < q; k++) t[k] = sat(D32[k]!, -32768, 32767);
  for (let k = 0; k < q; k++) t[q + k] = sat(S32[k]!, -32768, 32767);
  for (let k = 0; k < n >> 2; k++) D32[k] = T32[k]!;
});
vop('pshufd', (_n, imm) => { for (let k = 0; k < 4; k++) D32[k] = S32[(imm >> (2 * k)) & 3]!; });
vop('pshuflw', (_n, imm) => {
  for (let k = 0; k < 4; k++) D16[k] = S16[(imm >> (2 * k)) & 3]!;
  D32[2] = S32[2]!; D32[3] = S32[3]!;
});
vop('pshufhw', (_n, imm) => {
  for (let k = 0; k < 4; k++) D16[4 + k] = S16[4 + ((imm >> (2 * k)) & 3)]!;
  D32[0] = S32[0]!; D32[1] = S32[1]!;
});
vop('pshufw', (_n, imm) => { for (let k = 0; k < 4; k++) D16[k] = S16[(imm >> (2 * k)) & 3]!; });
vop('shufps', (_n, imm) => {
  const a = D32[imm & 3]!, b = D32[(imm >> 2) & 3]!;
  D32[2] = S32[(imm >> 4) & 3]!; D32[3] = S32[(imm >> 6) & 3]!;
  D32[0] = a; D32[1] = b;
});
vop('shufpd', (_n, imm) => {
  const a = imm & 1 ? 2 : 0, b = imm & 2 ? 2 : 0;
  const l0 = D32[a]!, l1 = D32[a + 1]!;
  D32[2] = S32[b]!; D32[3] = S32[b + 1]!;
  D32[0] = l0; D32[1] = l1;
});

// Floating-point arithmetic.
const FP_NAMES = ['add', 'sub', 'mul', 'div', 'sqrt'];
FP_NAMES.forEach((nm, op) => {
  vop(`${nm}ps`, () => { for (let k = 0; k < 4; k++) lane32(op, k); });
  vop(`${nm}pd`, () => { lane64(op, 0); lane64(op, 1); });
  vop(`${nm}ss`, () => lane32(op, 0));
  vop(`${nm}sd`, () => lane64(op, 0));
});
vop('minps', () => { for (let k = 0; k < 4; k++) minmax32(k, false); });
vop('maxps', () => { for (let k = 0; k < 4; k++) minmax32(k, true); });
vop('minpd', () => { minmax64(0, false); minmax64(1, false); });
vop('maxpd', () => { minmax64(0, true); minmax64(1, true); });
vop('minss', () => minmax32(0, false));
vop('maxss', () => minmax32(0, true));
vop('minsd', () => minmax64(0, false));
vop('maxsd', () => minmax64(0, true));
vop('cmpps', (_n, imm) => { for (let k = 0; k < 4; k++) cmp32(k, imm); });
vop('cmppd', (_n, imm) => { cmp64(0, imm); cmp64(1, imm); });
vop('cmpss', (_n, imm) => cmp32(0, imm));
vop('cmpsd', (_n, imm) => cmp64(0, imm));
// Reciprocal approximations: the correctly rounded value (see the header).
function recip(k: number, sqrt: boolean): void {
  const x = S32[k]!;
  if (isNan32(x)) { D32[k] = x | 0x400000; return; }
  const v = SF32[k]!;
  DF32[k] = den32(x) ? (x < 0 ? -Infinity : Infinity) : sqrt ? (v < 0 ? NaN : 1 / Math.sqrt(v)) : 1 / v;
  if (sqrt && v < 0) D32[k] = 0xffc00000 | 0;
}
vop('rcpps', () => { for (let k = 0; k < 4; k++) recip(k, false); });
vop('rsqrtps', () => { for (let k = 0; k < 4; k++) recip(k, true); });
vop('rcpss', () => recip(0, false));
vop('rsqrtss', () => recip(0, true));

// Conversions.
vop('cvtss2sd', () => cvtS2D(S32[0]!, SF32[0]!, 0));
vop('cvtsd2ss', () => { D32[0] = cvtD2S(S32[1]!, S32[0]!, SF64[0]!); });
vop('cvtps2pd', () => { const a = S32[0]!, b = S32[1]!, va = SF32[0]!, vb = SF32[1]!; cvtS2D(a, va, 0); cvtS2D(b, vb, 1); });
vop('cvtpd2ps', () => { D32[0] = cvtD2S(S32[1]!, S32[0]!, SF64[0]!); D32[1] = cvtD2S(S32[3]!, S32[2]!, SF64[1]!); D32[2] = 0; D32[3] = 0; });
vop('cvtdq2ps', () => { for (let k = 0; k < 4; k++) DF32[k] = fromInt(S32[k]!, S32[k]! >> 31, true); });
vop('cvtdq2pd', () => { const a = S32[0]!, b = S32[1]!; DF64[0] = a; DF64[1] = b; });
vop('cvtpi2ps', () => { DF32[0] = fromInt(S32[0]!, S32[0]! >> 31, true); DF32[1] = fromInt(S32[1]!, S32[1]! >> 31, true); });
vop('cvtpi2pd', () => { const a = S32[0]!, b = S32[1]!; DF64[0] = a; DF64[1] = b; });
vop('cvtps2dq', () => { for (let k = 0; k < 4; k++) D32[k] = f32toInt(S32[k]!, false); });
vop('cvttps2dq', () => { for (let k = 0; k < 4; k++) D32[k] = f32toInt(S32[k]!, true); });
vop('cvtps2pi', () => { D32[0] = f32toInt(S32[0]!, false); D32[1] = f32toInt(S32[1]!, false); });
vop('cvttps2pi', () => { D32[0] = f32toInt(S32[0]!, true); D32[1] = f32toInt(S32[1]!, true); });
vop('cvtpd2dq', () => { D32[0] = f64toInt(S32[1]!, S32[0]!, false); D32[1] = f64toInt(S32[3]!, S32[2]!, false); D32[2] = 0; D32[3] = 0; });
vop('cvttpd2dq', () => { D32[0] = f64toInt(S32[1]!, S32[0]!, true); D32[1] = f64toInt(S32[3]!, S32[2]!, true); D32[2] = 0; D32[3] = 0; });
vop('cvtpd2pi', () => { D32[0] = f64toInt(S32[1]!, S32[0]!, false); D32[1] = f64toInt(S32[3]!, S32[2]!, false); });
vop('cvttpd2pi', () => { D32[0] = f64toInt(S32[1]!, S32[0]!, true); D32[1] = f64toInt(S32[3]!, S32[2]!, true); });
vop('cvtsi2ss/4', () => { DF32[0] = fromInt(S32[0]!, S32[0]! >> 31, true); });
vop('cvtsi2ss/8', () => { DF32[0] = fromInt(S32[0]!, S32[1]!, true); });
vop('cvtsi2sd/4', () => { DF64[0] = S32[0]!; });
vop('cvtsi2sd/8', () => { DF64[0] = fromInt(S32[0]!, S32[1]!, false); });

// ------------------------------------------------------------------------------------------
// Builders (registered by compile.ts)

export type FpBuilder = (d: DecodedInsn, i: Insn) => Handler;

/** Fills the operand fields of `i` from the decoder's operands and returns the F_* form. */
export function simdForm(d: DecodedInsn, i: Insn): number {
  let f = 0;
  for (let k = 0; k < d.nOps && k < 3; k++) {
    const o = d.ops[k]!;
    let code = NONE;
    switch (o.kind) {
      case OperandKind.Reg:
        code = o.reg;
        if (o.regClass === RegClass.Mmx) f |= k === 0 ? F_DMMX : F_SMMX;
        else if (o.regClass === RegClass.Xmm) f |= F_SSE;
        else if (o.regClass === RegClass.Gpr) {
          if (k === 0) { f |= F_DGPR; i.size = o.size; } else f = (f & ~F_SIZE) | F_SGPR | (o.size & F_SIZE);
        }
        break;
      case OperandKind.Mem:
        i.seg = o.seg; i.base = o.base; i.index = o.index; i.scale = o.scale;
        i.disp = o.disp | 0;
        i.dispHi = (o.spec & 0xff) === OpMethod.O ? o.dispHi | 0 : (o.disp | 0) >> 31;
        code = MEM;
        if (!(f & F_SGPR)) f = (f & ~F_SIZE) | (o.size & F_SIZE);
        break;
      case OperandKind.Imm:
        i.imm = o.imm & 0xff;
        code = IMM;
        break;
    }
    if (k === 0) i.o0 = code; else if (k === 1) i.o1 = code; else i.o2 = code;
  }
  if (f & (F_DMMX | F_SMMX)) f |= F_MMX;
  return f;
}

const UNALIGNED = new Set(['movups', 'movupd', 'movdqu', 'lddqu']);

function vecBuilder(d: DecodedInsn, i: Insn): Handler {
  let f = simdForm(d, i);
  let name = MNEMONICS[d.mnemonic]!;
  if (name === 'cvtsi2ss' || name === 'cvtsi2sd') name += `/${d.ops[1]!.size === 8 ? 8 : 4}`;
  const id = VOP_IDS.get(name);
  if (id === undefined) return hUnknown;
  if ((f & F_SIZE) === 16 && i.o1 === MEM) f |= F_ALIGN;
  i.imm2 = f;
  i.sub = id;
  return hVec;
}

function hUnknown(c: Cpu, _i: Insn): void {
  c.doExit({ kind: 'invalid', reason: 'unimplemented' });
}

/** A move builder: how the decoder's operands map onto hMove's byte ranges. */
function moveBuilder(d: DecodedInsn, i: Insn): Handler {
  let f = simdForm(d, i);
  const name = MNEMONICS[d.mnemonic]!;
  const o0 = d.ops[0]!, o1 = d.ops[1]!;
  const dstMem = o0.kind === OperandKind.Mem, srcMem = o1.kind === OperandKind.Mem;
  let so = 0, dof = 0, len: number, zero = 0;
  switch (name) {
    case 'movss': case 'movsd':
      len = name === 'movss' ? 4 : 8; zero = srcMem ? 1 : 0; break;
    case 'movlps': case 'movlpd': len = 8; break;
    case 'movhps': case 'movhpd': len = 8; if (dstMem) so = 8; else dof = 8; break;
    case 'movlhps': len = 8; dof = 8; break;
    case 'movhlps': len = 8; so = 8; break;
    case 'movd': case 'movq': case 'movnti': case 'movq2dq': case 'movdq2q':
      len = name === 'movd' ? 4 : name === 'movnti' ? o1.size : 8;
      if (name === 'movq' && (o0.kind === OperandKind.Reg && o0.regClass === RegClass.Gpr || o1.kind === OperandKind.Reg && o1.regClass === RegClass.Gpr)) len = 8;
      if (name === 'movd' || name === 'movnti') len = o0.kind === OperandKind.Reg && o0.regClass === RegClass.Gpr ? o0.size : o1.kind === OperandKind.Reg && o1.regClass === RegClass.Gpr ? o1.size : 4;
      zero = 1;
      if (name === 'movnti') f &= ~(F_SSE | F_MMX);
      break;
    case 'pextrw':
      len = 2; so = (i.imm & (f & F_SMMX ? 3 : 7)) * 2; break;
    case 'pinsrw':
      len = 2; dof = (i.imm & (f & F_DMMX ? 3 : 7)) * 2;
      if (srcMem) f = (f & ~F_SIZE) | 2; else f = (f & ~F_SIZE) | F_SGPR | 4;
      break;
    default: // full-register moves
      len = f & F_DMMX || f & F_SMMX ? 8 : 16;
      if (len === 16 && !UNALIGNED.has(name)) f |= F_ALIGN;
  }
  if (dstMem || srcMem) f = (f & ~F_SIZE) | len;
  i.imm2 = f;
  i.sub = so | (dof << 5) | (len << 10) | (zero << 15);
  return hMove;
}

/** Mnemonic groups and their builders, registered by compile.ts. */
export const SSE_BUILDERS: [readonly string[], FpBuilder][] = [
  [['movaps', 'movups', 'movapd', 'movupd', 'movdqa', 'movdqu', 'lddqu', 'movntps', 'movntpd', 'movntdq', 'movntq', 'movd', 'movq', 'movss', 'movsd',
    'movlps', 'movhps', 'movlpd', 'movhpd', 'movlhps', 'movhlps', 'movnti', 'movq2dq', 'movdq2q', 'pextrw', 'pinsrw'], moveBuilder],
  [[...VOP_IDS.keys()].map((n) => n.replace(/\/.*/, '')), vecBuilder],
  [['movmskps', 'movmskpd', 'pmovmskb'], (d, i) => {
    i.imm2 = simdForm(d, i);
    const n = MNEMONICS[d.mnemonic]!;
    i.sub = n === 'movmskps' ? 4 : n === 'movmskpd' ? 8 : 1;
    return hMovmsk;
  }],
  [['maskmovdqu', 'maskmovq'], (d, i) => { i.imm2 = simdForm(d, i); i.seg = d.segment >= 0 ? d.segment : 3; i.asz = d.addrSize; return hMaskmov; }],
  [['comiss', 'comisd', 'ucomiss', 'ucomisd'], (d, i) => {
    i.imm2 = simdForm(d, i);
    const n = MNEMONICS[d.mnemonic]!;
    i.sub = (n.endsWith('d') ? 1 : 0) | (n.startsWith('u') ? 2 : 0);
    return hComis;
  }],
  [['cvtss2si', 'cvttss2si', 'cvtsd2si', 'cvttsd2si'], (d, i) => {
    i.imm2 = simdForm(d, i) & ~F_DGPR;
    const n = MNEMONICS[d.mnemonic]!;
    i.sub = (n.startsWith('cvtt') ? 1 : 0) | (n.endsWith('sd2si') ? 2 : 0);
    return hCvtToInt;
  }],
  [['emms'], () => hEmms],
  [['ldmxcsr'], (d, i) => { simdForm(d, i); return hLdmxcsr; }],
  [['stmxcsr'], (d, i) => { simdForm(d, i); return hStmxcsr; }],
  [['fxsave', 'fxsave64'], (d, i) => { simdForm(d, i); i.sub = MNEMONICS[d.mnemonic] === 'fxsave64' ? 8 : 4; return hFxsave; }],
  [['fxrstor', 'fxrstor64'], (d, i) => { simdForm(d, i); i.sub = MNEMONICS[d.mnemonic] === 'fxrstor64' ? 8 : 4; return hFxrstor; }],
];
