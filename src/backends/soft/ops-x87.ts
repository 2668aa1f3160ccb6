/**
 * The x87 FPU of the soft CPU (Intel SDM vol. 1 ch. 8, vol. 2 F* pages).
 *
 * Precision policy (documented; adequate for Linux and busybox, which barely use x87):
 * - A register holds a double (`Cpu.fpr`, the value arithmetic uses) and, where the value was only
 *   loaded or moved (FLD m80, FLD ST(i), FXCH, FST ST(i), FILD m64, constants, FXRSTOR/FRSTOR, MMX
 *   writes, setState), its exact 80-bit image (`Cpu.fpRaw`, `fpRawOk`). FSTP m80, FNSAVE, FXSAVE and
 *   the API's FPU state give back those exact bits; computed values are converted from the double.
 * - Arithmetic is IEEE double precision rounded to nearest whatever FCW.PC/RC say (FIST, FISTP and
 *   FRNDINT do honour FCW.RC). Results that need the 64-bit significand differ from a real CPU in
 *   the low bits; transcendental instructions (F2XM1, FYL2X, FPTAN, FPATAN, FSIN, FCOS, FSINCOS)
 *   use Math and are approximate. FPREM/FPREM1 reduce completely in one step (C2 = 0).
 * - Status: IE (invalid operation, stack overflow/underflow with SF and C1), ZE, DE on loads of
 *   denormal m32/m64 are set; PE, UE and OE are not tracked. An unmasked exception sets ES and B;
 *   with CR0.NE = 1 the next waiting x87 instruction (every one but FNINIT, FNCLEX, FNSTSW,
 *   FNSTCW, FNSTENV, FNSAVE) or FWAIT raises #MF before it executes (SDM vol. 1 8.6). With
 *   CR0.NE = 0 (FERR# and IRQ 13) nothing is raised. An unmasked IE leaves FBSTP's destination and
 *   the stack unchanged; the other stores write the masked response.
 * - CR0.EM or CR0.TS: #NM (FWAIT: CR0.MP and TS). FIP/FDP/FOP are recorded for non-control
 *   instructions (FIP = RIP). FBLD/FBSTP convert packed BCD exactly.
 */
import { TWO32 } from '../../common/bits.js';
import { assert } from '../../common/errors.js';
import { CR0_EM, CR0_MP, CR0_NE, CR0_TS } from '../../x86/control-regs.js';
import { EXC_MF, EXC_NM } from '../../x86/exceptions.js';
import type { Cpu } from './cpu.js';
import { ea, MEM, NONE, type Handler, type Insn } from './insn.js';
import { MNEMONICS, OperandKind, type DecodedInsn } from '../../x86/decoder.js';

// Status word bits.
const IE = 1, ZE = 4, DE = 2, SF = 0x40, ES = 0x80, C0 = 0x100, C1 = 0x200, C2 = 0x400, C3 = 0x4000, B = 0x8000;
const CC = C0 | C1 | C2 | C3;

const INDEF80 = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff]);
const B64 = new Float64Array(1), B64I = new Int32Array(B64.buffer);
const B32 = new Float32Array(1), B32I = new Int32Array(B32.buffer);

// ------------------------------------------------------------------------------------------
// 80-bit conversions

/** Writes the 80-bit image of double v at out[off..off+10). */
export function doubleToF80(v: number, out: Uint8Array, off: number): void {
  B64[0] = v;
  const hi = B64I[1]!, lo = B64I[0]!;
  const sign = hi < 0 ? 0x8000 : 0;
  let exp = (hi >>> 20) & 0x7ff;
  let mHi = ((hi & 0xfffff) << 11) | (lo >>> 21), mLo = lo << 11;
  let e80: number;
  if (exp === 0x7ff) {
    e80 = 0x7fff;
    mHi |= 0x80000000;
  } else if (exp === 0) {
    if ((mHi | mLo) === 0) e80 = 0;
    else {
      // A double denormal is an x87 normal: normalize.
      exp = 1;
      while (!(mHi & 0x80000000)) { mHi = (mHi << 1) | (mLo >>> 31); mLo <<= 1; exp--; }
      e80 = exp + 15360;
    }
  } else {
    e80 = exp - 1023 + 16383;
    mHi |= 0x80000000;
  }
  out[off] = mLo; out[off + 1] = mLo >>> 8; out[off + 2] = mLo >>> 16; out[off + 3] = mLo >>> 24;
  out[off + 4] = mHi; out[off + 5] = mHi >>> 8; out[off + 6] = mHi >>> 16; out[off + 7] = mHi >>> 24;
  const se = sign | e80;
  out[off + 8] = se; out[off + 9] = se >>> 8;
}

function rd32le(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

/** The double nearest to the 80-bit value at b[off..off+10). */
export function f80ToDouble(b: Uint8Array, off: number): number {
  const mLo = rd32le(b, off), mHi = rd32le(b, off + 4);
  const se = b[off + 8]! | (b[off + 9]! << 8);
  const neg = (se & 0x8000) !== 0, exp = se & 0x7fff;
  let v: number;
  if (exp === 0x7fff) v = ((mHi & 0x7fffffff) | mLo) === 0 ? Infinity : NaN;
  else {
    const m = mHi * TWO32 + mLo; // one rounding to 53 bits
    const e = (exp === 0 ? 1 : exp) - 16383 - 63;
    v = e < -1000 ? m * 2 ** (e + 600) * 2 ** -600 : m * 2 ** e;
  }
  return neg ? -v : v;
}

/** Makes the 80-bit image of physical register p from its double (fpRawOk = 1). */
export function f80Raw(c: Cpu, p: number): void {
  doubleToF80(c.fpr[p]!, c.fpRaw, p * 10);
  c.fpRawOk[p] = 1;
}

/** Loads physical register p from 10 bytes (exact image kept). */
export function fpuLoadRaw(c: Cpu, p: number, b: Uint8Array, off: number): void {
  c.fpRaw.set(b.subarray(off, off + 10), p * 10);
  c.fpRawOk[p] = 1;
  c.fpr[p] = f80ToDouble(b, off);
}

/** The status word with TOP. */
export function fpswGet(c: Cpu): number {
  return (c.fsw & ~0x3800) | (c.ftop << 11);
}

/** FNINIT state. */
export function fpuInit(c: Cpu): void {
  c.fcw = 0x37f; c.fsw = 0; c.ftop = 0; c.ftw = 0;
  c.fop = 0; c.fipLo = c.fipHi = c.fdpLo = c.fdpHi = 0;
}

// ------------------------------------------------------------------------------------------
// Stack

function exc(c: Cpu, bits: number): void {
  c.fsw |= bits;
  if (bits & ~c.fcw & 0x3f) c.fsw |= ES | B;
}

const phys = (c: Cpu, i: number) => (c.ftop + i) & 7;
const valid = (c: Cpu, p: number) => ((c.ftw >> p) & 1) !== 0;

/** ST(i); an empty register is a stack underflow (IE|SF, C1 = 0) and reads as the indefinite NaN. */
function get(c: Cpu, i: number): number {
  const p = phys(c, i);
  if (!valid(c, p)) { c.fsw &= ~C1; exc(c, IE | SF); return NaN; }
  return c.fpr[p]!;
}

function set(c: Cpu, i: number, v: number): void {
  const p = phys(c, i);
  c.fpr[p] = v;
  c.fpRawOk[p] = 0;
  if (v !== v) nanRaw(c, p);
  c.ftw |= 1 << p;
}

/**
 * Writes an arithmetic result to ST(i): a NaN result from a NaN operand (physical register pa, then
 * pb; -1 none) is that operand quieted, with its exact image; other NaNs are the indefinite QNaN.
 */
function result(c: Cpu, i: number, v: number, pa: number, pb: number): void {
  if (v === v) { set(c, i, v); return; }
  const q = pa >= 0 && c.fpr[pa] !== c.fpr[pa] ? pa : pb >= 0 && c.fpr[pb] !== c.fpr[pb] ? pb : -1;
  if (q < 0 || !valid(c, q)) { set(c, i, v); return; }
  const p = phys(c, i);
  copyReg(c, p, q);
  if (!c.fpRawOk[p]) f80Raw(c, p);
  c.fpRaw[p * 10 + 7] = c.fpRaw[p * 10 + 7]! | 0x40;
}

/** A computed NaN is the indefinite QNaN (NaN operands are not propagated with their payload). */
function nanRaw(c: Cpu, p: number): void {
  c.fpRaw.set(INDEF80, p * 10);
  c.fpRawOk[p] = 1;
}

/** Pushes v; stack overflow (IE|SF, C1 = 1) pushes the indefinite NaN. Returns the new ST0's register. */
function push(c: Cpu, v: number): number {
  const p = (c.ftop - 1) & 7;
  if (valid(c, p)) { c.fsw |= C1; exc(c, IE | SF); v = NaN; }
  c.ftop = p;
  c.fpr[p] = v;
  c.fpRawOk[p] = 0;
  if (v !== v) nanRaw(c, p);
  c.ftw |= 1 << p;
  return p;
}

/** Pushes a value with its exact 80-bit image (b[off..off+10)), unless the push overflows. */
function pushRaw(c: Cpu, b: Uint8Array, off: number): void {
  const over = valid(c, (c.ftop - 1) & 7);
  const p = push(c, f80ToDouble(b, off));
  if (!over) { c.fpRaw.set(b.subarray(off, off + 10), p * 10); c.fpRawOk[p] = 1; }
}

function pop(c: Cpu): void {
  c.ftw &= ~(1 << c.ftop);
  c.ftop = (c.ftop + 1) & 7;
}

/** Copies register q (value, exact image) to register p, marking p valid. */
function copyReg(c: Cpu, p: number, q: number): void {
  c.fpr[p] = c.fpr[q]!;
  c.fpRawOk[p] = c.fpRawOk[q]!;
  if (c.fpRawOk[q]) c.fpRaw.copyWithin(p * 10, q * 10, q * 10 + 10);
  c.ftw |= 1 << p;
}

// ------------------------------------------------------------------------------------------
// Arithmetic helpers

function arith(c: Cpu, op: number, a: number, b: number): number {
  let r: number;
  switch (op) {
    case 0: r = a + b; break;
    case 1: r = a * b; break;
    case 4: r = a - b; break;
    case 5: r = b - a; break;
    case 6: r = a / b; if (b === 0 && a === a && a !== 0 && a - a === 0) exc(c, ZE); break;
    default: r = b / a; if (a === 0 && b === b && b !== 0 && b - b === 0) exc(c, ZE);
  }
  if (r !== r && a === a && b === b) exc(c, IE);
  c.fsw &= ~C1;
  return r;
}

/**
 * FCOM/FUCOM/FTST: C3 C2 C0 := the comparison of a with b (C1 cleared), unordered raising #IA
 * unless quiet. Sets FSW itself: `c.fsw |= compare(...)` would read FSW before the call cleared
 * the old condition bits (and before it set IE).
 */
function compare(c: Cpu, a: number, b: number, quiet: boolean): void {
  c.fsw &= ~CC;
  if (a !== a || b !== b) { if (!quiet) exc(c, IE); c.fsw |= C3 | C2 | C0; return; }
  c.fsw |= a < b ? C0 : a === b ? C3 : 0;
}

function rcRound(x: number, rc: number): number {
  switch (rc) {
    case 0: { const f = Math.floor(x), d = x - f; return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f; }
    case 1: return Math.floor(x);
    case 2: return Math.ceil(x);
    default: return Math.trunc(x);
  }
}

/** FIST/FISTP/FISTTP of ST0 into `size` bytes at the EA (trunc: FISTTP). */
function storeInt(c: Cpu, size: number, trunc: boolean): void {
  const p = phys(c, 0);
  const rc = trunc ? 3 : (c.fcw >> 10) & 3;
  if (!valid(c, p)) { exc(c, IE | SF); writeIndef(c, size); return; }
  if (size === 8) {
    if (!c.fpRawOk[p]) f80Raw(c, p);
    const r = f80ToIntBig(c.fpRaw, p * 10, rc);
    if (r === null || r < -(1n << 63n) || r >= 1n << 63n) { exc(c, IE); writeIndef(c, 8); return; }
    const u = BigInt.asUintN(64, r);
    c.wr64(c.eaLo, c.eaHi, Number(u & 0xffffffffn) | 0, Number(u >> 32n) | 0);
    return;
  }
  const v = c.fpr[p]!;
  const r = rcRound(v, rc);
  const lim = size === 2 ? 32768 : 2147483648;
  if (r !== r || r < -lim || r >= lim) { exc(c, IE); writeIndef(c, size); return; }
  c.fsw &= ~C1;
  if (size === 2) c.wr16(c.eaLo, c.eaHi, r & 0xffff); else c.wr32(c.eaLo, c.eaHi, r | 0);
}

function writeIndef(c: Cpu, size: number): void {
  if (size === 2) c.wr16(c.eaLo, c.eaHi, 0x8000);
  else if (size === 4) c.wr32(c.eaLo, c.eaHi, 0x80000000 | 0);
  else c.wr64(c.eaLo, c.eaHi, 0, 0x80000000 | 0);
}

/** The 80-bit value at b[off] rounded to an integer per rc (exact, BigInt; cold path); null for NaN/inf. */
function f80ToIntBig(b: Uint8Array, off: number, rc: number): bigint | null {
  const m = (BigInt(rd32le(b, off + 4)) << 32n) | BigInt(rd32le(b, off));
  const se = b[off + 8]! | (b[off + 9]! << 8);
  const neg = (se & 0x8000) !== 0, exp = se & 0x7fff;
  if (exp === 0x7fff) return null;
  const sh = (exp === 0 ? 1 : exp) - 16383 - 63;
  let q: bigint;
  if (sh >= 0) q = sh > 64 ? 1n << 200n : m << BigInt(sh);
  else {
    const s = BigInt(Math.min(-sh, 130));
    q = m >> s;
    const rem = m - (q << s), half = 1n << (s - 1n);
    let up = false;
    if (rem !== 0n) {
      switch (rc) {
        case 0: up = rem > half || (rem === half && (q & 1n) === 1n); break;
        case 1: up = neg; break;
        case 2: up = !neg; break;
        default: up = false;
      }
    }
    if (up) q += 1n;
  }
  return neg ? -q : q;
}

/** The exact 80-bit image of a 64-bit integer (FILD m64). */
function intToF80(lo: number, hi: number, out: Uint8Array, off: number): void {
  let m = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
  const neg = m < 0n;
  if (neg) m = -m;
  if (m === 0n) { out.fill(0, off, off + 10); return; }
  const len = m.toString(2).length;
  m <<= BigInt(64 - len);
  const mLo = Number(m & 0xffffffffn), mHi = Number(m >> 32n);
  out[off] = mLo; out[off + 1] = mLo >>> 8; out[off + 2] = mLo >>> 16; out[off + 3] = mLo >>> 24;
  out[off + 4] = mHi; out[off + 5] = mHi >>> 8; out[off + 6] = mHi >>> 16; out[off + 7] = mHi >>> 24;
  const se = (neg ? 0x8000 : 0) | (16383 + len - 1);
  out[off + 8] = se; out[off + 9] = se >>> 8;
}

/** The full (2-bit) tag of physical register p: 0 valid, 1 zero, 2 special, 3 empty. */
function fullTag(c: Cpu, p: number): number {
  if (!valid(c, p)) return 3;
  if (!c.fpRawOk[p]) f80Raw(c, p);
  const o = p * 10, r = c.fpRaw;
  const exp = (r[o + 8]! | (r[o + 9]! << 8)) & 0x7fff;
  const mz = rd32le(r, o) === 0 && rd32le(r, o + 4) === 0;
  if (exp === 0x7fff) return 2;
  if (exp === 0) return mz ? 1 : 2;
  return r[o + 7]! & 0x80 ? 0 : 2;
}

// ------------------------------------------------------------------------------------------
// Memory operands

function loadM32(c: Cpu): number {
  const x = c.rd32(c.eaLo, c.eaHi);
  if ((x & 0x7f800000) === 0 && (x & 0x7fffff) !== 0) exc(c, DE);
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0 && !(x & 0x400000)) exc(c, IE);
  B32I[0] = x;
  return B32[0]!;
}
function loadM64(c: Cpu): number {
  const lo = c.rd64(c.eaLo, c.eaHi), hi = c.hi;
  if ((hi & 0x7ff00000) === 0 && ((hi & 0xfffff) | lo) !== 0) exc(c, DE);
  if ((hi & 0x7ff00000) === 0x7ff00000 && ((hi & 0xfffff) | lo) !== 0 && !(hi & 0x80000)) exc(c, IE);
  B64I[0] = lo; B64I[1] = hi;
  return B64[0]!;
}

/** NaN bits of register p as binary64 (from its exact image when it has one). */
function nan64(c: Cpu, p: number): [number, number] {
  if (!c.fpRawOk[p]) return [0, 0xfff80000 | 0];
  const r = c.fpRaw, o = p * 10;
  const mHi = rd32le(r, o + 4), mLo = rd32le(r, o);
  const sign = r[o + 9]! & 0x80 ? 0x80000000 : 0;
  return [((mHi << 21) | (mLo >>> 11)) | 0, (sign | 0x7ff80000 | ((mHi >>> 11) & 0xfffff)) | 0];
}

function storeReal(c: Cpu, size: number, p: number): void {
  const v = valid(c, p) ? c.fpr[p]! : (exc(c, IE | SF), NaN);
  if (size === 10) {
    if (!valid(c, p)) { B64[0] = NaN; writeRaw(c, INDEF80, 0); return; }
    if (!c.fpRawOk[p]) f80Raw(c, p);
    writeRaw(c, c.fpRaw, p * 10);
    return;
  }
  if (v !== v) {
    const [lo, hi] = valid(c, p) ? nan64(c, p) : [0, 0xfff80000 | 0];
    if (size === 8) c.wr64(c.eaLo, c.eaHi, lo, hi);
    else c.wr32(c.eaLo, c.eaHi, (hi & 0x80000000) | 0x7fc00000 | ((hi & 0x7ffff) << 3) | (lo >>> 29));
    return;
  }
  if (size === 8) { B64[0] = v; c.wr64(c.eaLo, c.eaHi, B64I[0]!, B64I[1]!); }
  else { B32[0] = v; c.wr32(c.eaLo, c.eaHi, B32I[0]!); }
}


function writeRaw(c: Cpu, b: Uint8Array, o: number): void {
  c.probeWrite(c.eaLo, c.eaHi, 10);
  c.wr64(c.eaLo, c.eaHi, rd32le(b, o) | 0, rd32le(b, o + 4) | 0);
  const n = (c.eaLo >>> 0) + 8;
  c.wr16(n | 0, n >= TWO32 ? c.eaHi + 1 : c.eaHi, b[o + 8]! | (b[o + 9]! << 8));
}

function readRaw(c: Cpu, lo: number, hi: number, out: Uint8Array, o: number): void {
  for (let k = 0; k < 10; k++) {
    const n = (lo >>> 0) + k;
    out[o + k] = c.rd8(n | 0, n >= TWO32 ? hi + 1 : hi);
  }
}

const RAWBUF = new Uint8Array(10);

// ------------------------------------------------------------------------------------------
// Environment (FNSTENV/FLDENV/FNSAVE/FRSTOR)

function envSize(i: Insn): number {
  return i.size === 2 ? 14 : 28;
}

function at(c: Cpu, base: number, off: number): [number, number] {
  const n = (base >>> 0) + off;
  return [n | 0, n >= TWO32 ? c.eaHi + 1 : c.eaHi];
}

function storeEnv(c: Cpu, i: Insn): void {
  const lo = c.eaLo;
  let tw = 0;
  for (let p = 0; p < 8; p++) tw |= fullTag(c, p) << (2 * p);
  const w = (off: number, v: number, sz: number) => { const [a, h] = at(c, lo, off); if (sz === 2) c.wr16(a, h, v); else c.wr32(a, h, v); };
  c.probeWrite(lo, c.eaHi, envSize(i));
  if (i.size === 2) {
    w(0, c.fcw, 2); w(2, fpswGet(c), 2); w(4, tw, 2); w(6, c.fipLo & 0xffff, 2); w(8, c.fop & 0x7ff, 2); w(10, c.fdpLo & 0xffff, 2); w(12, 0, 2);
  } else {
    w(0, 0xffff0000 | c.fcw, 4); w(4, 0xffff0000 | fpswGet(c), 4); w(8, 0xffff0000 | tw, 4);
    w(12, c.fipLo, 4); w(16, (c.fop & 0x7ff) << 16, 4); w(20, c.fdpLo, 4); w(24, 0xffff0000 | 0, 4);
  }
}

function loadEnv(c: Cpu, i: Insn): void {
  const lo = c.eaLo;
  const r = (off: number, sz: number) => { const [a, h] = at(c, lo, off); return sz === 2 ? c.rd16(a, h) : c.rd32(a, h); };
  let tw: number, sw: number;
  if (i.size === 2) {
    c.fcw = r(0, 2); sw = r(2, 2); tw = r(4, 2); c.fipLo = r(6, 2); c.fop = r(8, 2) & 0x7ff; c.fdpLo = r(10, 2);
  } else {
    c.fcw = r(0, 4) & 0xffff; sw = r(4, 4) & 0xffff; tw = r(8, 4) & 0xffff; c.fipLo = r(12, 4); c.fop = (r(16, 4) >>> 16) & 0x7ff; c.fdpLo = r(20, 4);
  }
  c.fipHi = 0; c.fdpHi = 0;
  c.fsw = sw & ~0x3800;
  c.ftop = (sw >> 11) & 7;
  let ab = 0;
  for (let p = 0; p < 8; p++) if (((tw >> (2 * p)) & 3) !== 3) ab |= 1 << p;
  c.ftw = ab;
  if (c.fsw & ~c.fcw & 0x3f) c.fsw |= ES | B; else c.fsw &= ~(ES | B);
}

// ------------------------------------------------------------------------------------------
// Handlers. Memory forms by (opcode - 0xD8) * 8 + reg; register forms likewise, with ModRM.rm in Insn.imm2.

type X87Op = (c: Cpu, i: Insn) => void;
const MEM_OPS: (X87Op | null)[] = new Array<X87Op | null>(64).fill(null);
const REG_OPS: (X87Op | null)[] = new Array<X87Op | null>(64).fill(null);
/** Control instructions: do not update FIP/FDP/FOP. */
const CONTROL = new Set<number>();

/** A waiting instruction: #NM with CR0.EM or TS, then #MF for a pending unmasked exception. */
function check(c: Cpu): void {
  if (c.cr0 & (CR0_EM | CR0_TS)) c.fault(EXC_NM);
  if ((c.fsw & ES) && (c.cr0 & CR0_NE)) c.fault(EXC_MF);
}

/** FWAIT: #NM when CR0.MP and TS are both set, #MF for a pending unmasked exception. */
export function hFwait(c: Cpu, _i: Insn): void {
  if ((c.cr0 & (CR0_MP | CR0_TS)) === (CR0_MP | CR0_TS)) c.fault(EXC_NM);
  if ((c.fsw & ES) && (c.cr0 & CR0_NE)) c.fault(EXC_MF);
}

/** The non-waiting control instructions (FNINIT, FNCLEX, FNSTSW, FNSTCW, FNSTENV, FNSAVE): no #MF. */
const NO_WAIT_MEM = new Set([1 * 8 + 6, 1 * 8 + 7, 5 * 8 + 6, 5 * 8 + 7]);
const NO_WAIT_REG = new Set([3 * 8 + 4, 7 * 8 + 4]);

export function hX87MemNoWait(c: Cpu, i: Insn): void {
  if (c.cr0 & (CR0_EM | CR0_TS)) c.fault(EXC_NM);
  ea(c, i);
  MEM_OPS[i.sub]!(c, i);
}

export function hX87RegNoWait(c: Cpu, i: Insn): void {
  if (c.cr0 & (CR0_EM | CR0_TS)) c.fault(EXC_NM);
  REG_OPS[i.sub]!(c, i);
}

export function hX87Mem(c: Cpu, i: Insn): void {
  check(c);
  ea(c, i);
  if (!CONTROL.has(i.sub)) {
    c.fop = i.imm & 0x7ff;
    c.fipLo = c.curLo | 0; c.fipHi = c.curHi;
    c.fdpLo = c.eaLo; c.fdpHi = c.eaHi;
  }
  MEM_OPS[i.sub]!(c, i);
}

export function hX87Reg(c: Cpu, i: Insn): void {
  check(c);
  if (!CONTROL.has(64 + i.sub)) {
    c.fop = i.imm & 0x7ff;
    c.fipLo = c.curLo | 0; c.fipHi = c.curHi;
  }
  REG_OPS[i.sub]!(c, i);
}

// Arithmetic: D8 (m32), DC (m64), DA (m32int), DE (m16int); reg 2/3 = compare (and pop).
const memLoad: ((c: Cpu) => number)[] = [
  loadM32,
  (c) => c.rd32(c.eaLo, c.eaHi),
  loadM64,
  (c) => (c.rd16(c.eaLo, c.eaHi) << 16) >> 16,
];
[0, 2, 4, 6].forEach((row, kind) => {
  for (let reg = 0; reg < 8; reg++) {
    MEM_OPS[row * 8 + reg] = (c) => {
      const b = memLoad[kind]!(c);
      const a = get(c, 0);
      if (reg === 2 || reg === 3) {
        compare(c, a, b, false);
        if (reg === 3) pop(c);
        return;
      }
      result(c, 0, arith(c, reg, a, b), phys(c, 0), -1);
    };
  }
});

// Register arithmetic: D8 ST0 = ST0 op STi; DC STi = STi op ST0; DE the same and pop.
const DC_OP = [0, 1, 2, 3, 5, 4, 7, 6];
for (let reg = 0; reg < 8; reg++) {
  REG_OPS[reg] = (c, i) => {
    const a = get(c, 0), b = get(c, i.imm2);
    if (reg === 2 || reg === 3) { compare(c, a, b, false); if (reg === 3) pop(c); return; }
    result(c, 0, arith(c, reg, a, b), phys(c, 0), phys(c, i.imm2));
  };
  if (reg !== 2 && reg !== 3) {
    REG_OPS[4 * 8 + reg] = (c, i) => result(c, i.imm2, arith(c, DC_OP[reg]!, get(c, i.imm2), get(c, 0)), phys(c, i.imm2), phys(c, 0));
    REG_OPS[6 * 8 + reg] = (c, i) => { result(c, i.imm2, arith(c, DC_OP[reg]!, get(c, i.imm2), get(c, 0)), phys(c, i.imm2), phys(c, 0)); pop(c); };
  }
}
// DE D9: FCOMPP.
REG_OPS[6 * 8 + 3] = (c) => { compare(c, get(c, 0), get(c, 1), false); pop(c); pop(c); };
// DD E0/E8: FUCOM, FUCOMP; DA E9: FUCOMPP.
REG_OPS[5 * 8 + 4] = (c, i) => { compare(c, get(c, 0), get(c, i.imm2), true); };
REG_OPS[5 * 8 + 5] = (c, i) => { compare(c, get(c, 0), get(c, i.imm2), true); pop(c); };
REG_OPS[2 * 8 + 5] = (c) => { compare(c, get(c, 0), get(c, 1), true); pop(c); pop(c); };
// DB E8/F0, DF E8/F0: FUCOMI, FCOMI, FUCOMIP, FCOMIP.
function comi(c: Cpu, i: Insn, quiet: boolean, p: boolean): void {
  const a = get(c, 0), b = get(c, i.imm2);
  c.fsw &= ~C1;
  let f: number;
  if (a !== a || b !== b) { if (!quiet) exc(c, IE); f = 0x45; } else f = a < b ? 1 : a === b ? 0x40 : 0;
  c.lz.setEager(f);
  if (p) pop(c);
}
REG_OPS[3 * 8 + 5] = (c, i) => comi(c, i, true, false);
REG_OPS[3 * 8 + 6] = (c, i) => comi(c, i, false, false);
REG_OPS[7 * 8 + 5] = (c, i) => comi(c, i, true, true);
REG_OPS[7 * 8 + 6] = (c, i) => comi(c, i, false, true);
// FCMOVcc: DA 0-3 (B E BE U), DB 0-3 (NB NE NBE NU).
const FCMOV_CC = [2, 4, 6, 10];
for (let k = 0; k < 4; k++) {
  REG_OPS[2 * 8 + k] = (c, i) => { if (c.lz.cond(FCMOV_CC[k]!)) { get(c, i.imm2); copyReg(c, phys(c, 0), phys(c, i.imm2)); } };
  REG_OPS[3 * 8 + k] = (c, i) => { if (!c.lz.cond(FCMOV_CC[k]!)) { get(c, i.imm2); copyReg(c, phys(c, 0), phys(c, i.imm2)); } };
}

// D9 C0 FLD STi, C8 FXCH, D0 FNOP, E0.. group, E8 constants, F0/F8 groups.
REG_OPS[1 * 8 + 0] = (c, i) => {
  const q = phys(c, i.imm2);
  if (!valid(c, q)) { push(c, get(c, i.imm2)); return; }
  if (!c.fpRawOk[q]) f80Raw(c, q);
  RAWBUF.set(c.fpRaw.subarray(q * 10, q * 10 + 10));
  pushRaw(c, RAWBUF, 0);
  c.fsw &= ~C1;
};
REG_OPS[1 * 8 + 1] = (c, i) => {
  const p = phys(c, 0), q = phys(c, i.imm2);
  if (!valid(c, p) || !valid(c, q)) {
    exc(c, IE | SF);
    if (!valid(c, p)) set(c, 0, NaN);
    if (!valid(c, q)) set(c, i.imm2, NaN);
  }
  const v = c.fpr[p]!; c.fpr[p] = c.fpr[q]!; c.fpr[q] = v;
  const ok = c.fpRawOk[p]!; c.fpRawOk[p] = c.fpRawOk[q]!; c.fpRawOk[q] = ok;
  RAWBUF.set(c.fpRaw.subarray(p * 10, p * 10 + 10));
  c.fpRaw.copyWithin(p * 10, q * 10, q * 10 + 10);
  c.fpRaw.set(RAWBUF, q * 10);
  c.fsw &= ~C1;
};
REG_OPS[1 * 8 + 2] = () => {};
REG_OPS[1 * 8 + 4] = (c, i) => {
  switch (i.imm2) {
    case 0: case 1: { // FCHS, FABS: the exact image follows
      const p = phys(c, 0);
      const v = get(c, 0);
      c.fsw &= ~C1;
      if (!valid(c, p)) { set(c, 0, v); return; }
      c.fpr[p] = i.imm2 === 0 ? -v : Math.abs(v);
      if (c.fpRawOk[p]) c.fpRaw[p * 10 + 9] = i.imm2 === 0 ? c.fpRaw[p * 10 + 9]! ^ 0x80 : c.fpRaw[p * 10 + 9]! & 0x7f;
      return;
    }
    case 4: compare(c, get(c, 0), 0, false); return; // FTST
    case 5: { // FXAM
      const p = phys(c, 0);
      c.fsw &= ~CC;
      if (!c.fpRawOk[p]) f80Raw(c, p);
      if (c.fpRaw[p * 10 + 9]! & 0x80) c.fsw |= C1;
      if (!valid(c, p)) { c.fsw |= C3 | C0; return; }
      const t = fullTag(c, p);
      const v = c.fpr[p]!;
      if (t === 1) c.fsw |= C3;
      else if (t === 0) c.fsw |= C2;
      else if (v !== v) c.fsw |= C0;
      else if (v === Infinity || v === -Infinity) c.fsw |= C2 | C0;
      else if ((c.fpRaw[p * 10 + 8]! | (c.fpRaw[p * 10 + 9]! << 8)) & 0x7fff) c.fsw |= 0; // unnormal: unsupported
      else c.fsw |= C3 | C2; // denormal
      return;
    }
    default: c.ud();
  }
};
/** The constants as exact 80-bit images (round to nearest). */
const CONSTS: readonly (readonly [number, number, number])[] = [
  [0x3fff, 0x80000000, 0x00000000], // 1
  [0x4000, 0xd49a784b, 0xcd1b8afe], // log2(10)
  [0x3fff, 0xb8aa3b29, 0x5c17f0bc], // log2(e)
  [0x4000, 0xc90fdaa2, 0x2168c235], // pi
  [0x3ffd, 0x9a209a84, 0xfbcff799], // log10(2)
  [0x3ffe, 0xb17217f7, 0xd1cf79ac], // ln(2)
  [0, 0, 0], // +0
];
REG_OPS[1 * 8 + 5] = (c, i) => {
  const k = CONSTS[i.imm2];
  if (k === undefined) return c.ud();
  const b = RAWBUF;
  const [se, mHi, mLo] = k;
  b[0] = mLo; b[1] = mLo >>> 8; b[2] = mLo >>> 16; b[3] = mLo >>> 24;
  b[4] = mHi; b[5] = mHi >>> 8; b[6] = mHi >>> 16; b[7] = mHi >>> 24; b[8] = se; b[9] = se >>> 8;
  pushRaw(c, b, 0);
};
REG_OPS[1 * 8 + 6] = (c, i) => {
  switch (i.imm2) {
    case 0: set(c, 0, 2 ** get(c, 0) - 1); return; // F2XM1
    case 1: { const x = get(c, 0), y = get(c, 1); if (x < 0) exc(c, IE); else if (x === 0) exc(c, ZE); set(c, 1, y * Math.log2(x)); pop(c); return; } // FYL2X
    case 2: { const x = get(c, 0); set(c, 0, Math.tan(x)); push(c, 1); c.fsw &= ~C2; return; } // FPTAN
    case 3: { const x = get(c, 0), y = get(c, 1); set(c, 1, Math.atan2(y, x)); pop(c); return; } // FPATAN
    case 4: { // FXTRACT
      const x = get(c, 0);
      if (x === 0) { exc(c, ZE); set(c, 0, -Infinity); push(c, x); return; }
      if (x !== x || x === Infinity || x === -Infinity) { set(c, 0, x !== x ? x : Infinity); push(c, x); return; }
      const e = Math.floor(Math.log2(Math.abs(x)));
      let m = x / 2 ** e;
      let ee = e;
      if (Math.abs(m) >= 2) { m /= 2; ee++; } else if (Math.abs(m) < 1) { m *= 2; ee--; }
      set(c, 0, ee); push(c, m);
      return;
    }
    case 5: prem(c, true); return; // FPREM1
    case 6: c.ftop = (c.ftop - 1) & 7; c.fsw &= ~C1; return; // FDECSTP
    default: c.ftop = (c.ftop + 1) & 7; c.fsw &= ~C1; // FINCSTP
  }
};
REG_OPS[1 * 8 + 7] = (c, i) => {
  switch (i.imm2) {
    case 0: prem(c, false); return; // FPREM
    case 1: { const x = get(c, 0), y = get(c, 1); set(c, 1, y * Math.log2(x + 1)); pop(c); return; } // FYL2XP1
    case 2: { const x = get(c, 0); if (x < 0) exc(c, IE); result(c, 0, Math.sqrt(x), phys(c, 0), -1); return; } // FSQRT
    case 3: { const x = get(c, 0); set(c, 0, Math.sin(x)); push(c, Math.cos(x)); c.fsw &= ~C2; return; } // FSINCOS
    case 4: { const x = get(c, 0); result(c, 0, rcRound(x, (c.fcw >> 10) & 3), phys(c, 0), -1); return; } // FRNDINT
    case 5: { const x = get(c, 0), y = get(c, 1); set(c, 0, x * 2 ** Math.trunc(y)); return; } // FSCALE
    case 6: { set(c, 0, Math.sin(get(c, 0))); c.fsw &= ~C2; return; } // FSIN
    default: set(c, 0, Math.cos(get(c, 0))); c.fsw &= ~C2; // FCOS
  }
};
function prem(c: Cpu, ieee: boolean): void {
  const x = get(c, 0), y = get(c, 1);
  c.fsw &= ~CC;
  if (y === 0 || x !== x || y !== y || x === Infinity || x === -Infinity) { exc(c, IE); set(c, 0, NaN); return; }
  let r = x % y;
  let q = Math.abs(Math.round((x - r) / y));
  if (ieee) {
    const ay = Math.abs(y), ar = Math.abs(r);
    if (ar > ay / 2 || (ar === ay / 2 && q % 2 === 1)) { r -= Math.sign(r) * ay; q += 1; }
  }
  if (r === 0) r = x < 0 ? -0 : 0;
  if (q & 1) c.fsw |= C1;
  if (q & 2) c.fsw |= C3;
  if (q & 4) c.fsw |= C0;
  set(c, 0, r);
}
// DB E2 FNCLEX, E3 FNINIT (E0, E1, E4: 8087/287 leftovers, no-ops).
REG_OPS[3 * 8 + 4] = (c, i) => {
  if (i.imm2 === 2) c.fsw &= ~(0xff | B);
  else if (i.imm2 === 3) fpuInit(c);
};
CONTROL.add(64 + 3 * 8 + 4);
// DD C0 FFREE, D0 FST STi, D8 FSTP STi; DF C0 FFREEP.
REG_OPS[5 * 8 + 0] = (c, i) => { c.ftw &= ~(1 << phys(c, i.imm2)); };
REG_OPS[5 * 8 + 2] = (c, i) => { get(c, 0); copyReg(c, phys(c, i.imm2), phys(c, 0)); c.fsw &= ~C1; };
REG_OPS[5 * 8 + 3] = (c, i) => { get(c, 0); copyReg(c, phys(c, i.imm2), phys(c, 0)); c.fsw &= ~C1; pop(c); };
REG_OPS[7 * 8 + 0] = (c, i) => { c.ftw &= ~(1 << phys(c, i.imm2)); pop(c); };
// DF E0: FNSTSW AX.
REG_OPS[7 * 8 + 4] = (c) => { c.setReg(0, 2, fpswGet(c), 0); };
CONTROL.add(64 + 7 * 8 + 4);

// The reserved register slots a CPU executes as aliases (SDM vol. 2 appendix A.5 leaves them blank;
// they are the FSTP1, FCOM2, FCOMP3, FXCH4, FCOMP5, FXCH7, FSTP8 and FSTP9 of the opcode maps).
function alias(slot: number, of: number): void {
  const op = REG_OPS[of];
  assert(op, `x87 register form ${of} has a handler to alias`);
  REG_OPS[slot] = op;
}
alias(1 * 8 + 3, 5 * 8 + 3); // D9 D8+i: FSTP STi
alias(4 * 8 + 2, 0 * 8 + 2); // DC D0+i: FCOM STi
alias(4 * 8 + 3, 0 * 8 + 3); // DC D8+i: FCOMP STi
alias(5 * 8 + 1, 1 * 8 + 1); // DD C8+i: FXCH STi
alias(6 * 8 + 2, 0 * 8 + 3); // DE D0+i: FCOMP STi
alias(7 * 8 + 1, 1 * 8 + 1); // DF C8+i: FXCH STi
alias(7 * 8 + 2, 5 * 8 + 3); // DF D0+i: FSTP STi
alias(7 * 8 + 3, 5 * 8 + 3); // DF D8+i: FSTP STi

// Memory loads and stores.
MEM_OPS[1 * 8 + 0] = (c) => { const v = loadM32(c); push(c, v); c.fsw &= ~C1; };
MEM_OPS[1 * 8 + 2] = (c) => { storeReal(c, 4, phys(c, 0)); };
MEM_OPS[1 * 8 + 3] = (c) => { storeReal(c, 4, phys(c, 0)); pop(c); };
MEM_OPS[5 * 8 + 0] = (c) => { const v = loadM64(c); push(c, v); c.fsw &= ~C1; };
MEM_OPS[5 * 8 + 2] = (c) => { storeReal(c, 8, phys(c, 0)); };
MEM_OPS[5 * 8 + 3] = (c) => { storeReal(c, 8, phys(c, 0)); pop(c); };
MEM_OPS[3 * 8 + 5] = (c) => { // FLD m80
  readRaw(c, c.eaLo, c.eaHi, RAWBUF, 0);
  pushRaw(c, RAWBUF, 0);
};
MEM_OPS[3 * 8 + 7] = (c) => { storeReal(c, 10, phys(c, 0)); pop(c); };
// FILD m32 / m16 / m64.
MEM_OPS[3 * 8 + 0] = (c) => { push(c, c.rd32(c.eaLo, c.eaHi)); };
MEM_OPS[7 * 8 + 0] = (c) => { push(c, (c.rd16(c.eaLo, c.eaHi) << 16) >> 16); };
MEM_OPS[7 * 8 + 5] = (c) => {
  const lo = c.rd64(c.eaLo, c.eaHi), hi = c.hi;
  intToF80(lo, hi, RAWBUF, 0);
  pushRaw(c, RAWBUF, 0);
};
// FIST/FISTP/FISTTP.
MEM_OPS[3 * 8 + 1] = (c) => { storeInt(c, 4, true); pop(c); };
MEM_OPS[3 * 8 + 2] = (c) => { storeInt(c, 4, false); };
MEM_OPS[3 * 8 + 3] = (c) => { storeInt(c, 4, false); pop(c); };
MEM_OPS[5 * 8 + 1] = (c) => { storeInt(c, 8, true); pop(c); };
MEM_OPS[7 * 8 + 1] = (c) => { storeInt(c, 2, true); pop(c); };
MEM_OPS[7 * 8 + 2] = (c) => { storeInt(c, 2, false); };
MEM_OPS[7 * 8 + 3] = (c) => { storeInt(c, 2, false); pop(c); };
MEM_OPS[7 * 8 + 7] = (c) => { storeInt(c, 8, false); pop(c); };
// Control: FLDENV, FLDCW, FNSTENV, FNSTCW, FRSTOR, FNSAVE, FNSTSW m16.
MEM_OPS[1 * 8 + 4] = (c, i) => loadEnv(c, i);
MEM_OPS[1 * 8 + 5] = (c) => {
  c.fcw = c.rd16(c.eaLo, c.eaHi);
  if (c.fsw & ~c.fcw & 0x3f) c.fsw |= ES | B; else c.fsw &= ~(ES | B);
};
MEM_OPS[1 * 8 + 6] = (c, i) => { storeEnv(c, i); c.fcw |= 0x3f; };
MEM_OPS[1 * 8 + 7] = (c) => { c.wr16(c.eaLo, c.eaHi, c.fcw); };
MEM_OPS[5 * 8 + 4] = (c, i) => {
  const base = c.eaLo, n = envSize(i);
  loadEnv(c, i);
  for (let k = 0; k < 8; k++) {
    const [a, h] = at(c, base, n + 10 * k);
    readRaw(c, a, h, RAWBUF, 0);
    fpuLoadRaw(c, phys(c, k), RAWBUF, 0);
  }
};
MEM_OPS[5 * 8 + 6] = (c, i) => {
  const base = c.eaLo, hi = c.eaHi, n = envSize(i);
  c.probeWrite(base, hi, n + 80);
  storeEnv(c, i);
  for (let k = 0; k < 8; k++) {
    const p = phys(c, k);
    if (!c.fpRawOk[p]) f80Raw(c, p);
    const [a, h] = at(c, base, n + 10 * k);
    c.eaLo = a; c.eaHi = h;
    writeRaw(c, c.fpRaw, p * 10);
  }
  fpuInit(c);
};
MEM_OPS[5 * 8 + 7] = (c) => { c.wr16(c.eaLo, c.eaHi, fpswGet(c)); };
for (const k of [1 * 8 + 4, 1 * 8 + 5, 1 * 8 + 6, 1 * 8 + 7, 5 * 8 + 4, 5 * 8 + 6, 5 * 8 + 7]) CONTROL.add(k);

// FBLD m80bcd (DF /4): 18 packed BCD digits and a sign bit, loaded exactly (BigInt: a cold path).
MEM_OPS[7 * 8 + 4] = (c) => {
  readRaw(c, c.eaLo, c.eaHi, RAWBUF, 0);
  const neg = (RAWBUF[9]! & 0x80) !== 0;
  let v = 0n;
  for (let k = 8; k >= 0; k--) { const b = RAWBUF[k]!; v = v * 100n + BigInt((b >> 4) * 10 + (b & 15)); }
  const u = BigInt.asUintN(64, neg ? -v : v);
  intToF80(Number(u & 0xffffffffn) | 0, Number(u >> 32n) | 0, RAWBUF, 0);
  if (neg) RAWBUF[9] = RAWBUF[9]! | 0x80; // -0 stays -0
  pushRaw(c, RAWBUF, 0);
  c.fsw &= ~C1;
};
// FBSTP m80bcd (DF /6): ST0 rounded per FCW.RC; NaN, infinity or |value| >= 10^18 is an invalid
// operation (masked: the BCD indefinite FFFF C000 0000 0000 0000H; unmasked: no store, no pop).
MEM_OPS[7 * 8 + 6] = (c) => {
  const p = phys(c, 0);
  c.probeWrite(c.eaLo, c.eaHi, 10);
  let r: bigint | null = null;
  if (!valid(c, p)) { c.fsw &= ~C1; exc(c, IE | SF); } else {
    if (!c.fpRawOk[p]) f80Raw(c, p);
    r = f80ToIntBig(c.fpRaw, p * 10, (c.fcw >> 10) & 3);
    const lim = 1000000000000000000n;
    if (r === null || r <= -lim || r >= lim) { r = null; exc(c, IE); }
  }
  if (r === null) {
    if (!(c.fcw & IE)) return;
    RAWBUF.fill(0); RAWBUF[7] = 0xc0; RAWBUF[8] = 0xff; RAWBUF[9] = 0xff;
  } else {
    let m = r < 0n ? -r : r;
    for (let k = 0; k < 9; k++) { const d = Number(m % 100n); m /= 100n; RAWBUF[k] = ((d / 10) << 4) | (d % 10); }
    RAWBUF[9] = c.fpRaw[p * 10 + 9]! & 0x80; // the sign of the source (also for -0 and values rounded to 0)
    c.fsw &= ~C1;
  }
  writeRaw(c, RAWBUF, 0);
  pop(c);
};

// ------------------------------------------------------------------------------------------
// Builder

function hX87Unimplemented(c: Cpu, _i: Insn): void {
  c.doExit({ kind: 'invalid', reason: 'unimplemented' });
}

function x87Builder(d: DecodedInsn, i: Insn): Handler {
  const modrm = d.modrm;
  const idx = (d.opcode - 0xd8) * 8 + ((modrm >> 3) & 7);
  i.imm = ((d.opcode & 7) << 8) | modrm; // FOP
  i.sub = idx;
  i.size = d.opSize;
  i.o0 = NONE;
  if ((modrm >> 6) !== 3) {
    for (let k = 0; k < d.nOps; k++) {
      const o = d.ops[k]!;
      if (o.kind !== OperandKind.Mem) continue;
      i.seg = o.seg; i.base = o.base; i.index = o.index; i.scale = o.scale;
      i.disp = o.disp | 0; i.dispHi = (o.disp | 0) >> 31;
      i.o0 = MEM;
    }
    return !MEM_OPS[idx] ? hX87Unimplemented : NO_WAIT_MEM.has(idx) ? hX87MemNoWait : hX87Mem;
  }
  i.imm2 = modrm & 7;
  return !REG_OPS[idx] ? hX87Unimplemented : NO_WAIT_REG.has(idx) ? hX87RegNoWait : hX87Reg;
}

const X87_NAMES = [
  'fadd', 'fmul', 'fcom', 'fcomp', 'fsub', 'fsubr', 'fdiv', 'fdivr', 'fadds', 'fmuls', 'fcoms', 'fcomps', 'fsubs', 'fsubrs', 'fdivs', 'fdivrs',
  'faddl', 'fmull', 'fcoml', 'fcompl', 'fsubl', 'fsubrl', 'fdivl', 'fdivrl', 'fiaddl', 'fimull', 'ficoml', 'ficompl', 'fisubl', 'fisubrl',
  'fidivl', 'fidivrl', 'fiadds', 'fimuls', 'ficoms', 'ficomps', 'fisubs', 'fisubrs', 'fidivs', 'fidivrs', 'faddp', 'fmulp', 'fsubp', 'fsubrp',
  'fdivp', 'fdivrp', 'fcompp', 'fucom', 'fucomp', 'fucompp', 'fcomi', 'fucomi', 'fcomip', 'fucomip', 'flds', 'fldl', 'fldt', 'fld', 'fsts',
  'fstl', 'fst', 'fstps', 'fstpl', 'fstpt', 'fstp', 'fildl', 'filds', 'fildll', 'fistl', 'fists', 'fistpl', 'fistps', 'fistpll', 'fisttpl',
  'fisttps', 'fisttpll', 'fld1', 'fldl2t', 'fldl2e', 'fldpi', 'fldlg2', 'fldln2', 'fldz', 'fchs', 'fabs', 'ftst', 'fxam', 'f2xm1', 'fyl2x',
  'fptan', 'fpatan', 'fxtract', 'fprem1', 'fdecstp', 'fincstp', 'fprem', 'fyl2xp1', 'fsqrt', 'fsincos', 'frndint', 'fscale', 'fsin', 'fcos',
  'fxch', 'fnop', 'fcmovb', 'fcmove', 'fcmovbe', 'fcmovu', 'fcmovnb', 'fcmovne', 'fcmovnbe', 'fcmovnu', 'fnclex', 'fninit', 'ffree', 'ffreep',
  'fnstsw', 'fnstcw', 'fldcw', 'fnstenv', 'fldenv', 'fnsave', 'frstor', 'fneni(8087_only)', 'fndisi(8087_only)', 'fnsetpm(287_only)',
  'fbld', 'fbstp',
];

/** Registered by compile.ts. */
export const X87_BUILDERS: [readonly string[], (d: DecodedInsn, i: Insn) => Handler][] = [[X87_NAMES, x87Builder], [['fwait'], () => hFwait]];
void MNEMONICS;
