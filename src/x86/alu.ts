/**
 * Exact x86 integer ALU semantics with RFLAGS (Intel SDM vol. 2, AMD APM vol. 3), without BigInt
 * on the hot path.
 *
 * Calling convention
 * ------------------
 * - An operand of `size` bytes (1, 2, 4 or 8) is passed as two 32-bit halves `(lo, hi)`. Either
 *   signed (int32) or unsigned (uint32) encodings are accepted. For size 1, 2 and 4 only the low
 *   `size` bytes of `lo` are used and `hi` is ignored (pass 0).
 * - Every function writes its results into the one shared, reused object `aluOut` and returns
 *   nothing (no allocation):
 *     aluOut.lo / aluOut.hi    primary result, uint32 halves, zero-extended to `size`
 *                              (for size < 8, hi = 0)
 *     aluOut.lo2 / aluOut.hi2  secondary result where there is one (MUL/IMUL high half, DIV
 *                              remainder, CMPXCHG new accumulator, XADD old destination)
 *     aluOut.flags             the complete new status flags (CF PF AF ZF SF OF bits only, see
 *                              STATUS_FLAGS); merge with `(rflags & ~STATUS_FLAGS) | aluOut.flags`.
 *   Read them before the next ALU call.
 * - Functions that leave some status flags unchanged (ADC/SBB read CF; INC/DEC keep CF; shifts by 0;
 *   rotates; BT*; DIV; NOT) take the current flags as `flagsIn`; only its status bits matter.
 * - Counts of shifts and rotates are masked here (5 bits, 6 bits for size 8), as the CPU does.
 * - DIV/IDIV return `false` for #DE (divide by zero or quotient overflow) and leave aluOut untouched.
 *
 * Undefined flags: where the manuals leave a flag undefined, we produce what one recorded CPU, an
 * AMD EPYC of family 0x1A (Zen 5), produces: test/x86/alu-vectors.test.ts checks every function
 * against vectors recorded on it (test/vectors/x86/alu-undefined-flags.txt). Each choice is
 * documented at the function. Other CPUs differ on some of these, even other AMD generations; no
 * correct guest depends on them, and the live-host test compares only the defined flags.
 *
 * Lazy flags: `LazyFlags` records the last flag-setting operation (op, size, operands, result) and
 * computes single flags or a condition code on demand, for the software CPU.
 */
import { TWO32 } from '../common/bits.js';
import {
  FLAG_AF, FLAG_CF, FLAG_OF, FLAG_PF, FLAG_SF, FLAG_ZF, PARITY, STATUS_FLAGS, evalCondition,
} from './flags.js';

export type OperandSize = 1 | 2 | 4 | 8;

/** Where every ALU function leaves its results (see the calling convention above). */
export interface AluResult {
  lo: number;
  hi: number;
  lo2: number;
  hi2: number;
  flags: number;
}

/** The one reused result object. Initialized with doubles so V8 keeps one field representation. */
export const aluOut: AluResult = { lo: 0.5, hi: 0.5, lo2: 0.5, hi2: 0.5, flags: 0 };
aluOut.lo = 0; aluOut.hi = 0; aluOut.lo2 = 0; aluOut.hi2 = 0;

/** Value mask per operand size (index = size in bytes; size 8 masks each half). */
const MASK = [0, 0xff, 0xffff, 0, 0xffffffff, 0, 0, 0, 0xffffffff];
/** Sign bit per operand size (for size 8: of the high half). */
const SIGN = [0, 0x80, 0x8000, 0, 0x80000000, 0, 0, 0, 0x80000000];

/** ZF, SF and PF of a result (size < 8: r zero-extended; size 8: r = rLo, rHi). */
export function szp(rLo: number, rHi: number, size: number): number {
  return ((rLo | rHi) === 0 ? FLAG_ZF : 0) | PARITY[rLo & 0xff]! |
    (((size === 8 ? rHi : rLo) & SIGN[size]!) !== 0 ? FLAG_SF : 0);
}

// ---------------------------------------------------------------------------------------------
// ADD ADC SUB SBB CMP NEG INC DEC

function addWithCarry(aLo: number, aHi: number, bLo: number, bHi: number, size: number, cin: number): void {
  const o = aluOut;
  if (size !== 8) {
    const m = MASK[size]!, sg = SIGN[size]!;
    const a = (aLo & m) >>> 0, b = (bLo & m) >>> 0;
    const s = a + b + cin;
    const r = (s & m) >>> 0;
    o.lo = r; o.hi = 0;
    o.flags = (s > m ? FLAG_CF : 0) | ((a ^ b ^ r) & FLAG_AF) | szp(r, 0, size) |
      (((a ^ r) & (b ^ r) & sg) !== 0 ? FLAG_OF : 0);
    return;
  }
  const aL = aLo >>> 0, bL = bLo >>> 0, aH = aHi >>> 0, bH = bHi >>> 0;
  const sl = aL + bL + cin;
  const rl = sl >>> 0;
  const sh = aH + bH + (sl >= TWO32 ? 1 : 0);
  const rh = sh >>> 0;
  o.lo = rl; o.hi = rh;
  o.flags = (sh >= TWO32 ? FLAG_CF : 0) | ((aL ^ bL ^ rl) & FLAG_AF) | szp(rl, rh, 8) |
    (((aH ^ rh) & (bH ^ rh) & 0x80000000) !== 0 ? FLAG_OF : 0);
}

function subWithBorrow(aLo: number, aHi: number, bLo: number, bHi: number, size: number, cin: number): void {
  const o = aluOut;
  if (size !== 8) {
    const m = MASK[size]!, sg = SIGN[size]!;
    const a = (aLo & m) >>> 0, b = (bLo & m) >>> 0;
    const d = a - b - cin;
    const r = (d & m) >>> 0;
    o.lo = r; o.hi = 0;
    o.flags = (d < 0 ? FLAG_CF : 0) | ((a ^ b ^ r) & FLAG_AF) | szp(r, 0, size) |
      (((a ^ b) & (a ^ r) & sg) !== 0 ? FLAG_OF : 0);
    return;
  }
  const aL = aLo >>> 0, bL = bLo >>> 0, aH = aHi >>> 0, bH = bHi >>> 0;
  const dl = aL - bL - cin;
  const rl = dl >>> 0;
  const dh = aH - bH - (dl < 0 ? 1 : 0);
  const rh = dh >>> 0;
  o.lo = rl; o.hi = rh;
  o.flags = (dh < 0 ? FLAG_CF : 0) | ((aL ^ bL ^ rl) & FLAG_AF) | szp(rl, rh, 8) |
    (((aH ^ bH) & (aH ^ rh) & 0x80000000) !== 0 ? FLAG_OF : 0);
}

/** ADD: a + b. */
export function add(aLo: number, aHi: number, bLo: number, bHi: number, size: OperandSize): void {
  addWithCarry(aLo, aHi, bLo, bHi, size, 0);
}

/** ADC: a + b + CF(flagsIn). */
export function adc(aLo: number, aHi: number, bLo: number, bHi: number, size: OperandSize, flagsIn: number): void {
  addWithCarry(aLo, aHi, bLo, bHi, size, flagsIn & FLAG_CF);
}

/** SUB: a - b. CMP is SUB with the result discarded. */
export function sub(aLo: number, aHi: number, bLo: number, bHi: number, size: OperandSize): void {
  subWithBorrow(aLo, aHi, bLo, bHi, size, 0);
}

/** CMP: flags of a - b (aluOut.lo/hi hold the difference; the CPU discards it). */
export const cmp = sub;

/** SBB: a - b - CF(flagsIn). */
export function sbb(aLo: number, aHi: number, bLo: number, bHi: number, size: OperandSize, flagsIn: number): void {
  subWithBorrow(aLo, aHi, bLo, bHi, size, flagsIn & FLAG_CF);
}

/** NEG: 0 - a; CF = (a != 0). */
export function neg(aLo: number, aHi: number, size: OperandSize): void {
  subWithBorrow(0, 0, aLo, aHi, size, 0);
}

/** INC: a + 1; CF unchanged. */
export function inc(aLo: number, aHi: number, size: OperandSize, flagsIn: number): void {
  addWithCarry(aLo, aHi, 1, 0, size, 0);
  aluOut.flags = (aluOut.flags & ~FLAG_CF) | (flagsIn & FLAG_CF);
}

/** DEC: a - 1; CF unchanged. */
export function dec(aLo: number, aHi: number, size: OperandSize, flagsIn: number): void {
  subWithBorrow(aLo, aHi, 1, 0, size, 0);
  aluOut.flags = (aluOut.flags & ~FLAG_CF) | (flagsIn & FLAG_CF);
}

// ---------------------------------------------------------------------------------------------
// AND OR XOR TEST NOT. CF = OF = 0; AF is undefined and is 0 on Intel and AMD.

function logicResult(rLo: number, rHi: number, size: number): void {
  const o = aluOut;
  if (size !== 8) {
    const r = (rLo & MASK[size]!) >>> 0;
    o.lo = r; o.hi = 0;
    o.flags = szp(r, 0, size);
  } else {
    const rl = rLo >>> 0, rh = rHi >>> 0;
    o.lo = rl; o.hi = rh;
    o.flags = szp(rl, rh, 8);
  }
}

/** AND: a & b. */
export function and(aLo: number, aHi: number, bLo: number, bHi: number, size: OperandSize): void {
  logicResult(aLo & bLo, aHi & bHi, size);
}

/** TEST: flags of a & b. */
export const test = and;

/** OR: a | b. */
export function or(aLo: number, aHi: number, bLo: number, bHi: number, size: OperandSize): void {
  logicResult(aLo | bLo, aHi | bHi, size);
}

/** XOR: a ^ b. */
export function xor(aLo: number, aHi: number, bLo: number, bHi: number, size: OperandSize): void {
  logicResult(aLo ^ bLo, aHi ^ bHi, size);
}

/** NOT: ~a; flags unchanged. */
export function not(aLo: number, aHi: number, size: OperandSize, flagsIn: number): void {
  const o = aluOut;
  o.lo = (~aLo & MASK[size]!) >>> 0;
  o.hi = size === 8 ? ~aHi >>> 0 : 0;
  o.flags = flagsIn & STATUS_FLAGS;
}

// ---------------------------------------------------------------------------------------------
// Group-1 and group-2 dispatch (the /reg field of opcodes 0x80-0x83 and 0xc0/0xc1/0xd0-0xd3).

export const ALU_ADD = 0; // /0
export const ALU_OR = 1; // /1
export const ALU_ADC = 2; // /2
export const ALU_SBB = 3; // /3
export const ALU_AND = 4; // /4
export const ALU_SUB = 5; // /5
export const ALU_XOR = 6; // /6
export const ALU_CMP = 7; // /7 (result must not be written back)

/** Run group-1 operation `op` (ALU_ADD..ALU_CMP). */
export function aluBinary(op: number, aLo: number, aHi: number, bLo: number, bHi: number, size: OperandSize, flagsIn: number): void {
  switch (op) {
    case ALU_ADD: addWithCarry(aLo, aHi, bLo, bHi, size, 0); break;
    case ALU_OR: logicResult(aLo | bLo, aHi | bHi, size); break;
    case ALU_ADC: addWithCarry(aLo, aHi, bLo, bHi, size, flagsIn & FLAG_CF); break;
    case ALU_SBB: subWithBorrow(aLo, aHi, bLo, bHi, size, flagsIn & FLAG_CF); break;
    case ALU_AND: logicResult(aLo & bLo, aHi & bHi, size); break;
    case ALU_XOR: logicResult(aLo ^ bLo, aHi ^ bHi, size); break;
    default: subWithBorrow(aLo, aHi, bLo, bHi, size, 0); break; // SUB, CMP
  }
}

export const SHIFT_ROL = 0; // /0
export const SHIFT_ROR = 1; // /1
export const SHIFT_RCL = 2; // /2
export const SHIFT_RCR = 3; // /3
export const SHIFT_SHL = 4; // /4 (SAL)
export const SHIFT_SHR = 5; // /5
export const SHIFT_SAL = 6; // /6 (undocumented alias of SHL)
export const SHIFT_SAR = 7; // /7

/** Run group-2 operation `op` (SHIFT_ROL..SHIFT_SAR). */
export function aluShift(op: number, aLo: number, aHi: number, count: number, size: OperandSize, flagsIn: number): void {
  switch (op) {
    case SHIFT_ROL: rol(aLo, aHi, count, size, flagsIn); break;
    case SHIFT_ROR: ror(aLo, aHi, count, size, flagsIn); break;
    case SHIFT_RCL: rcl(aLo, aHi, count, size, flagsIn); break;
    case SHIFT_RCR: rcr(aLo, aHi, count, size, flagsIn); break;
    case SHIFT_SHR: shr(aLo, aHi, count, size, flagsIn); break;
    case SHIFT_SAR: sar(aLo, aHi, count, size, flagsIn); break;
    default: shl(aLo, aHi, count, size, flagsIn); break; // SHL, SAL
  }
}

// ---------------------------------------------------------------------------------------------
// Shifts. Count masked to 5 bits (6 for size 8); count 0 changes nothing (flags included).
// For 8/16-bit operands a count past the width shifts out zeros (SHL/SHR) or copies of the sign
// (SAR), and CF is the last bit shifted out (0 for SHL/SHR once the count exceeds the width).
// Undefined flags, as AMD Zen does them (verified against the host CPU): OF for a count > 1 is
// that of the last 1-bit step (SHL: MSB(r) ^ CF; SHR: 0; SAR: 0); AF = 1 for any non-zero count.

/** AF after a shift with a non-zero count (undefined by the SDM): AMD Zen sets it. */
const SHIFT_AF = FLAG_AF;

/** Bit i (0..63) of the 64-bit value (lo, hi). */
function bit64(lo: number, hi: number, i: number): number {
  return i >= 32 ? (hi >>> (i - 32)) & 1 : (lo >>> i) & 1;
}

/** SHL/SAL: a << count. */
export function shl(aLo: number, aHi: number, count: number, size: OperandSize, flagsIn: number): void {
  const o = aluOut;
  if (size !== 8) {
    const m = MASK[size]!, w = size * 8;
    const a = (aLo & m) >>> 0;
    const c = count & 31;
    if (c === 0) { o.lo = a; o.hi = 0; o.flags = flagsIn & STATUS_FLAGS; return; }
    const r = c >= w ? 0 : ((a << c) & m) >>> 0;
    const cf = c > w ? 0 : (a >>> (w - c)) & 1;
    o.lo = r; o.hi = 0;
    o.flags = cf | szp(r, 0, size) | SHIFT_AF | ((((r & SIGN[size]!) !== 0 ? 1 : 0) ^ cf) !== 0 ? FLAG_OF : 0);
    return;
  }
  const aL = aLo >>> 0, aH = aHi >>> 0;
  const c = count & 63;
  if (c === 0) { o.lo = aL; o.hi = aH; o.flags = flagsIn & STATUS_FLAGS; return; }
  let rl: number, rh: number;
  if (c < 32) { rh = ((aH << c) | (aL >>> (32 - c))) >>> 0; rl = (aL << c) >>> 0; }
  else { rh = (aL << (c - 32)) >>> 0; rl = 0; }
  const cf = bit64(aL, aH, 64 - c);
  o.lo = rl; o.hi = rh;
  o.flags = cf | szp(rl, rh, 8) | SHIFT_AF | (((rh >>> 31) ^ cf) !== 0 ? FLAG_OF : 0);
}

/** SHR: a >>> count (logical). */
export function shr(aLo: number, aHi: number, count: number, size: OperandSize, flagsIn: number): void {
  const o = aluOut;
  if (size !== 8) {
    const m = MASK[size]!, w = size * 8;
    const a = (aLo & m) >>> 0;
    const c = count & 31;
    if (c === 0) { o.lo = a; o.hi = 0; o.flags = flagsIn & STATUS_FLAGS; return; }
    const r = c >= w ? 0 : a >>> c;
    const cf = c > w ? 0 : (a >>> (c - 1)) & 1;
    o.lo = r; o.hi = 0;
    o.flags = cf | szp(r, 0, size) | SHIFT_AF | (c === 1 && (a & SIGN[size]!) !== 0 ? FLAG_OF : 0);
    return;
  }
  const aL = aLo >>> 0, aH = aHi >>> 0;
  const c = count & 63;
  if (c === 0) { o.lo = aL; o.hi = aH; o.flags = flagsIn & STATUS_FLAGS; return; }
  let rl: number, rh: number;
  if (c < 32) { rl = ((aL >>> c) | (aH << (32 - c))) >>> 0; rh = aH >>> c; }
  else { rl = aH >>> (c - 32); rh = 0; }
  const cf = bit64(aL, aH, c - 1);
  o.lo = rl; o.hi = rh;
  o.flags = cf | szp(rl, rh, 8) | SHIFT_AF | (c === 1 && (aH & 0x80000000) !== 0 ? FLAG_OF : 0);
}

/** SAR: a >> count (arithmetic). OF = 0. */
export function sar(aLo: number, aHi: number, count: number, size: OperandSize, flagsIn: number): void {
  const o = aluOut;
  if (size !== 8) {
    const m = MASK[size]!;
    const sh = 32 - size * 8;
    const sa = (aLo << sh) >> sh; // sign-extended to int32
    const c = count & 31;
    if (c === 0) { o.lo = (sa & m) >>> 0; o.hi = 0; o.flags = flagsIn & STATUS_FLAGS; return; }
    const r = ((sa >> c) & m) >>> 0;
    const cf = (sa >> (c - 1)) & 1;
    o.lo = r; o.hi = 0;
    o.flags = cf | szp(r, 0, size) | SHIFT_AF;
    return;
  }
  const aL = aLo >>> 0, aH = aHi | 0;
  const c = count & 63;
  if (c === 0) { o.lo = aL; o.hi = aH >>> 0; o.flags = flagsIn & STATUS_FLAGS; return; }
  let rl: number, rh: number;
  if (c < 32) { rl = ((aL >>> c) | (aH << (32 - c))) >>> 0; rh = (aH >> c) >>> 0; }
  else { rl = (aH >> (c - 32)) >>> 0; rh = (aH >> 31) >>> 0; }
  const cf = c - 1 >= 32 ? (aH >> (c - 33)) & 1 : (aL >>> (c - 1)) & 1;
  o.lo = rl; o.hi = rh;
  o.flags = cf | szp(rl, rh, 8) | SHIFT_AF;
}

// ---------------------------------------------------------------------------------------------
// Rotates. Only CF and OF change, and only when the masked count is non-zero. OF is defined for a
// count of 1; for larger counts we apply the same formula to the final result (ROL/RCL:
// MSB(r) ^ CF; ROR/RCR: MSB(r) ^ MSB-1(r)), which is what the host CPU does.

/** ROL: rotate left. */
export function rol(aLo: number, aHi: number, count: number, size: OperandSize, flagsIn: number): void {
  const o = aluOut;
  const keep = flagsIn & STATUS_FLAGS & ~(FLAG_CF | FLAG_OF);
  if (size !== 8) {
    const m = MASK[size]!, w = size * 8;
    const a = (aLo & m) >>> 0;
    const c = count & 31;
    o.hi = 0;
    if (c === 0) { o.lo = a; o.flags = flagsIn & STATUS_FLAGS; return; }
    const rc = c & (w - 1);
    const r = rc === 0 ? a : (((a << rc) | (a >>> (w - rc))) & m) >>> 0;
    const cf = r & 1;
    o.lo = r;
    o.flags = keep | cf | ((((r & SIGN[size]!) !== 0 ? 1 : 0) ^ cf) !== 0 ? FLAG_OF : 0);
    return;
  }
  let l = aLo >>> 0, h = aHi >>> 0;
  const c = count & 63;
  if (c === 0) { o.lo = l; o.hi = h; o.flags = flagsIn & STATUS_FLAGS; return; }
  let rc = c;
  if (rc >= 32) { const t = l; l = h; h = t; rc -= 32; }
  if (rc !== 0) {
    const nh = ((h << rc) | (l >>> (32 - rc))) >>> 0;
    l = ((l << rc) | (h >>> (32 - rc))) >>> 0;
    h = nh;
  }
  const cf = l & 1;
  o.lo = l; o.hi = h;
  o.flags = keep | cf | (((h >>> 31) ^ cf) !== 0 ? FLAG_OF : 0);
}

/** ROR: rotate right. */
export function ror(aLo: number, aHi: number, count: number, size: OperandSize, flagsIn: number): void {
  const o = aluOut;
  const keep = flagsIn & STATUS_FLAGS & ~(FLAG_CF | FLAG_OF);
  if (size !== 8) {
    const m = MASK[size]!, w = size * 8;
    const a = (aLo & m) >>> 0;
    const c = count & 31;
    o.hi = 0;
    if (c === 0) { o.lo = a; o.flags = flagsIn & STATUS_FLAGS; return; }
    const rc = c & (w - 1);
    const r = rc === 0 ? a : (((a >>> rc) | (a << (w - rc))) & m) >>> 0;
    const msb = (r >>> (w - 1)) & 1;
    o.lo = r;
    o.flags = keep | msb | ((msb ^ ((r >>> (w - 2)) & 1)) !== 0 ? FLAG_OF : 0);
    return;
  }
  let l = aLo >>> 0, h = aHi >>> 0;
  const c = count & 63;
  if (c === 0) { o.lo = l; o.hi = h; o.flags = flagsIn & STATUS_FLAGS; return; }
  let rc = c;
  if (rc >= 32) { const t = l; l = h; h = t; rc -= 32; }
  if (rc !== 0) {
    const nl = ((l >>> rc) | (h << (32 - rc))) >>> 0;
    h = ((h >>> rc) | (l << (32 - rc))) >>> 0;
    l = nl;
  }
  const msb = h >>> 31;
  o.lo = l; o.hi = h;
  o.flags = keep | msb | ((msb ^ ((h >>> 30) & 1)) !== 0 ? FLAG_OF : 0);
}

/**
 * RCL: rotate left through CF (a (size*8+1)-bit rotate). The count is masked to 5 bits (6 for
 * size 8), then reduced modulo 9 (size 1) or 17 (size 2). A masked count of 0 changes nothing;
 * a reduced count of 0 leaves the value and CF and sets OF by the formula.
 */
export function rcl(aLo: number, aHi: number, count: number, size: OperandSize, flagsIn: number): void {
  const o = aluOut;
  const keep = flagsIn & STATUS_FLAGS & ~(FLAG_CF | FLAG_OF);
  let cf = flagsIn & FLAG_CF;
  if (size !== 8) {
    const m = MASK[size]!, w = size * 8;
    let a = (aLo & m) >>> 0;
    const c = count & 31;
    o.hi = 0;
    if (c === 0) { o.lo = a; o.flags = flagsIn & STATUS_FLAGS; return; }
    const rc = size === 4 ? c : c % (w + 1);
    for (let i = 0; i < rc; i++) {
      const out = (a >>> (w - 1)) & 1;
      a = (((a << 1) | cf) & m) >>> 0;
      cf = out;
    }
    o.lo = a;
    o.flags = keep | cf | ((((a >>> (w - 1)) & 1) ^ cf) !== 0 ? FLAG_OF : 0);
    return;
  }
  let l = aLo >>> 0, h = aHi >>> 0;
  const c = count & 63;
  if (c === 0) { o.lo = l; o.hi = h; o.flags = flagsIn & STATUS_FLAGS; return; }
  for (let i = 0; i < c; i++) {
    const out = h >>> 31;
    h = ((h << 1) | (l >>> 31)) >>> 0;
    l = ((l << 1) | cf) >>> 0;
    cf = out;
  }
  o.lo = l; o.hi = h;
  o.flags = keep | cf | (((h >>> 31) ^ cf) !== 0 ? FLAG_OF : 0);
}

/** RCR: rotate right through CF; count handling as RCL. */
export function rcr(aLo: number, aHi: number, count: number, size: OperandSize, flagsIn: number): void {
  const o = aluOut;
  const keep = flagsIn & STATUS_FLAGS & ~(FLAG_CF | FLAG_OF);
  let cf = flagsIn & FLAG_CF;
  if (size !== 8) {
    const m = MASK[size]!, w = size * 8;
    let a = (aLo & m) >>> 0;
    const c = count & 31;
    o.hi = 0;
    if (c === 0) { o.lo = a; o.flags = flagsIn & STATUS_FLAGS; return; }
    const rc = size === 4 ? c : c % (w + 1);
    for (let i = 0; i < rc; i++) {
      const out = a & 1;
      a = ((a >>> 1) | (cf << (w - 1))) >>> 0;
      cf = out;
    }
    o.lo = a;
    o.flags = keep | cf | ((((a >>> (w - 1)) ^ (a >>> (w - 2))) & 1) !== 0 ? FLAG_OF : 0);
    return;
  }
  let l = aLo >>> 0, h = aHi >>> 0;
  const c = count & 63;
  if (c === 0) { o.lo = l; o.hi = h; o.flags = flagsIn & STATUS_FLAGS; return; }
  for (let i = 0; i < c; i++) {
    const out = l & 1;
    l = ((l >>> 1) | (h << 31)) >>> 0;
    h = ((h >>> 1) | (cf << 31)) >>> 0;
    cf = out;
  }
  o.lo = l; o.hi = h;
  o.flags = keep | cf | ((((h >>> 31) ^ (h >>> 30)) & 1) !== 0 ? FLAG_OF : 0);
}

// ---------------------------------------------------------------------------------------------
// BT BTS BTR BTC (register forms: the bit index is taken modulo the operand width; for memory
// operands the caller adds (index >> 3) with sign to the address first). CF = the selected bit.
// OF, SF, AF, PF are undefined; the host CPU leaves them unchanged, and so do we. ZF unchanged.

function bitOp(kind: number, aLo: number, aHi: number, index: number, size: number, flagsIn: number): void {
  const o = aluOut;
  const i = index & (size * 8 - 1);
  let l = size === 8 ? aLo >>> 0 : (aLo & MASK[size]!) >>> 0;
  let h = size === 8 ? aHi >>> 0 : 0;
  const cf = bit64(l, h, i);
  if (kind !== 0) {
    const bl = i < 32 ? (1 << i) : 0, bh = i >= 32 ? (1 << (i - 32)) : 0;
    if (kind === 1) { l |= bl; h |= bh; } else if (kind === 2) { l &= ~bl; h &= ~bh; } else { l ^= bl; h ^= bh; }
    l >>>= 0; h >>>= 0;
  }
  o.lo = l; o.hi = h;
  o.flags = (flagsIn & STATUS_FLAGS & ~FLAG_CF) | cf;
}

/** BT: CF = bit `index` of a; aluOut.lo/hi = a. */
export function bt(aLo: number, aHi: number, index: number, size: OperandSize, flagsIn: number): void { bitOp(0, aLo, aHi, index, size, flagsIn); }
/** BTS: CF = bit, then set it. */
export function bts(aLo: number, aHi: number, index: number, size: OperandSize, flagsIn: number): void { bitOp(1, aLo, aHi, index, size, flagsIn); }
/** BTR: CF = bit, then clear it. */
export function btr(aLo: number, aHi: number, index: number, size: OperandSize, flagsIn: number): void { bitOp(2, aLo, aHi, index, size, flagsIn); }
/** BTC: CF = bit, then complement it. */
export function btc(aLo: number, aHi: number, index: number, size: OperandSize, flagsIn: number): void { bitOp(3, aLo, aHi, index, size, flagsIn); }

// ---------------------------------------------------------------------------------------------
// MUL / IMUL. aluOut.lo/hi = low half of the double-width product, aluOut.lo2/hi2 = high half
// (size 1: AL and AH; size 2: AX and DX; 4: EAX and EDX; 8: RAX and RDX). The 2- and 3-operand
// IMUL forms keep only the low half; the flags are the same. CF = OF = the high half is
// significant. SF, ZF, AF, PF are undefined: AMD Zen leaves them unchanged, and so do we.

/**
 * The product of mulU32 / mulU64, low word first (a typed array: module-level lets would box every store).
 * Its four words always exist, so the reads P[k]! below are never undefined.
 */
export const P = new Uint32Array(4);

/** Unsigned 32x32 -> 64 into (P[0], P[1]). */
export function mulU32(a: number, b: number): void {
  const p = a * b;
  // A double product below 2^53 is exact (and a true product above it never rounds below).
  if (p < 9007199254740992) {
    const lo = p >>> 0;
    P[0] = lo;
    P[1] = (p - lo) / TWO32;
    return;
  }
  const aL = a & 0xffff, aH = a >>> 16, bL = b & 0xffff, bH = b >>> 16;
  const ll = aL * bL, lh = aL * bH, hl = aH * bL, hh = aH * bH;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  P[0] = (((mid & 0xffff) << 16) | (ll & 0xffff)) >>> 0;
  P[1] = (hh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** Unsigned 64x64 -> 128 into (P[0], P[1], P[2], P[3]), from four 32x32 products. */
export function mulU64(aLo: number, aHi: number, bLo: number, bHi: number): void {
  mulU32(aLo, bLo); const ll0 = P[0]!, ll1 = P[1]!;
  mulU32(aLo, bHi); const lh0 = P[0]!, lh1 = P[1]!;
  mulU32(aHi, bLo); const hl0 = P[0]!, hl1 = P[1]!;
  mulU32(aHi, bHi); const hh0 = P[0]!, hh1 = P[1]!;
  // Column sums stay below 2^34: exact doubles; `>>> 0` keeps the low 32 bits.
  let s = ll1 + lh0 + hl0;
  const w1 = s >>> 0;
  s = lh1 + hl1 + hh0 + (s - w1) / TWO32;
  const w2 = s >>> 0;
  P[0] = ll0;
  P[1] = w1;
  P[2] = w2;
  P[3] = (hh1 + (s - w2) / TWO32) >>> 0;
}

/** Flags after MUL/IMUL: CF = OF = overflow; SF ZF AF PF (undefined) unchanged, as on AMD Zen. */
function mulFlags(overflow: boolean, flagsIn: number): number {
  return (overflow ? FLAG_CF | FLAG_OF : 0) | (flagsIn & (FLAG_SF | FLAG_ZF | FLAG_AF | FLAG_PF));
}

/** MUL: unsigned a * b (a is the accumulator). */
export function mul(aLo: number, aHi: number, bLo: number, bHi: number, size: OperandSize, flagsIn: number): void {
  const o = aluOut;
  if (size === 8) {
    mulU64(aLo >>> 0, aHi >>> 0, bLo >>> 0, bHi >>> 0);
    o.lo = P[0]!; o.hi = P[1]!; o.lo2 = P[2]!; o.hi2 = P[3]!;
    o.flags = mulFlags((P[2]! | P[3]!) !== 0, flagsIn);
    return;
  }
  const m = MASK[size]!;
  let lo: number, hi: number;
  if (size === 4) { mulU32(aLo >>> 0, bLo >>> 0); lo = P[0]!; hi = P[1]!; }
  else {
    const p = (aLo & m) * (bLo & m);
    const w = size * 8;
    lo = p & m; hi = p >>> w;
  }
  o.lo = lo; o.hi = 0; o.lo2 = hi; o.hi2 = 0;
  o.flags = mulFlags(hi !== 0, flagsIn);
}

/** IMUL: signed a * b, all forms. */
export function imul(aLo: number, aHi: number, bLo: number, bHi: number, size: OperandSize, flagsIn: number): void {
  const o = aluOut;
  if (size === 8) {
    mulU64(aLo >>> 0, aHi >>> 0, bLo >>> 0, bHi >>> 0);
    // Signed correction of the high half: subtract b if a < 0, and a if b < 0 (mod 2^64).
    let hl = P[2]!, hh = P[3]!;
    if ((aHi | 0) < 0) { const d = hl - (bLo >>> 0); hl = d >>> 0; hh = (hh - (bHi >>> 0) - (d < 0 ? 1 : 0)) >>> 0; }
    if ((bHi | 0) < 0) { const d = hl - (aLo >>> 0); hl = d >>> 0; hh = (hh - (aHi >>> 0) - (d < 0 ? 1 : 0)) >>> 0; }
    const ext = (P[1]! | 0) < 0 ? 0xffffffff : 0;
    o.lo = P[0]!; o.hi = P[1]!; o.lo2 = hl; o.hi2 = hh;
    o.flags = mulFlags(hl !== ext || hh !== ext, flagsIn);
    return;
  }
  const m = MASK[size]!;
  if (size === 4) {
    const a = aLo | 0, b = bLo | 0;
    mulU32(a >>> 0, b >>> 0);
    let hi = P[1]!;
    if (a < 0) hi -= b >>> 0;
    if (b < 0) hi -= a >>> 0;
    hi >>>= 0;
    const lo = P[0]!;
    o.lo = lo; o.hi = 0; o.lo2 = hi; o.hi2 = 0;
    o.flags = mulFlags(hi !== ((lo | 0) < 0 ? 0xffffffff : 0), flagsIn);
    return;
  }
  const sh = 32 - size * 8;
  const p = Math.imul((aLo << sh) >> sh, (bLo << sh) >> sh); // exact: |p| <= 2^30
  const lo = p & m, hi = (p >> (size * 8)) & m;
  o.lo = lo; o.hi = 0; o.lo2 = hi; o.hi2 = 0;
  o.flags = mulFlags(((lo << sh) >> sh) !== p, flagsIn);
}

// ---------------------------------------------------------------------------------------------
// DIV / IDIV. The dividend is (high:low), each half `size` bytes (size 1: AH:AL; 2: DX:AX;
// 4: EDX:EAX; 8: RDX:RAX). Quotient -> aluOut.lo/hi, remainder -> aluOut.lo2/hi2. Returns false
// on #DE. All flags are undefined; AMD Zen keeps CF and OF, sets AF and clears ZF SF PF, and so
// do we (divFlags).
// All exact in doubles: 16-bit limbs for 32-bit divisors, Knuth's algorithm D on 32-bit digits
// for wider ones.

let qLo = 0, qHi = 0, rLo = 0, rHi = 0;

/** Flags after DIV/IDIV (all undefined by the SDM), as AMD Zen leaves them. */
function divFlags(flagsIn: number): number {
  return (flagsIn & (FLAG_CF | FLAG_OF)) | FLAG_AF;
}

/** floor(t / d) for integers t < 2^49, d < 2^32, d > 0; exact. */
function divSmall(t: number, d: number): number {
  let q = Math.floor(t / d);
  const r = t - q * d;
  if (r < 0) q--; else if (r >= d) q++;
  return q;
}

/**
 * Unsigned (nHi:nLo) / (dLo + dHi*2^32) for a 128-bit dividend given as four uint32 words
 * n0 (lowest) .. n3. Result into qLo/qHi/rLo/rHi. False when the quotient needs more than 64 bits
 * or the divisor is zero.
 */
function divU128(n0: number, n1: number, n2: number, n3: number, dLo: number, dHi: number): boolean {
  if ((dLo | dHi) === 0) return false;
  // Quotient fits in 64 bits iff the high 64 bits of the dividend are below the divisor.
  if (n3 > dHi || (n3 === dHi && n2 >= dLo)) return false;
  if (dHi === 0) {
    // Long division by a 32-bit divisor over the four 16-bit limbs of the low 64 bits; the
    // running remainder (initially n2, < d) stays below d, so every step is < 2^48.
    const d = dLo;
    let r = n2;
    let t = r * 65536 + (n1 >>> 16); const q3 = divSmall(t, d); r = t - q3 * d;
    t = r * 65536 + (n1 & 0xffff); const q2 = divSmall(t, d); r = t - q2 * d;
    t = r * 65536 + (n0 >>> 16); const q1 = divSmall(t, d); r = t - q1 * d;
    t = r * 65536 + (n0 & 0xffff); const q0 = divSmall(t, d); r = t - q0 * d;
    qHi = (q3 * 65536 + q2) >>> 0; qLo = (q1 * 65536 + q0) >>> 0;
    rLo = r >>> 0; rHi = 0;
    return true;
  }
  return divLong(n0, n1, n2, n3, dLo, dHi);
}

/** floor((hi * 2^32 + lo) / d) for hi < d < 2^32, exactly (two 16-bit steps); the remainder into dRem. */
let dRem = 0;
function div64by32(hi: number, lo: number, d: number): number {
  let t = hi * 65536 + (lo >>> 16);
  const qa = divSmall(t, d);
  t = (t - qa * d) * 65536 + (lo & 0xffff);
  const qb = divSmall(t, d);
  dRem = t - qb * d;
  return qa * 65536 + qb;
}

/**
 * 128 / 64 with a divisor of 33 to 64 bits and a quotient known to fit in 64 bits: Knuth's
 * algorithm D (TAOCP vol. 2, 4.3.1) on 32-bit digits, the divisor normalized so that its top
 * digit has bit 31 set. The kernel's multi-precision division (RSA, DH) lives on this.
 */
function divLong(n0: number, n1: number, n2: number, n3: number, dLo: number, dHi: number): boolean {
  const sh = Math.clz32(dHi);
  // Normalized divisor (v1 v0) and dividend (u3 u2 u1 u0): the bits shifted out of n3 are zero,
  // since the dividend's high half is below the divisor (the quotient fits in 64 bits).
  const v1 = sh === 0 ? dHi : ((dHi << sh) | (dLo >>> (32 - sh))) >>> 0;
  const v0 = (dLo << sh) >>> 0;
  const u3 = sh === 0 ? n3 : ((n3 << sh) | (n2 >>> (32 - sh))) >>> 0;
  let u2 = sh === 0 ? n2 : ((n2 << sh) | (n1 >>> (32 - sh))) >>> 0;
  let u1 = sh === 0 ? n1 : ((n1 << sh) | (n0 >>> (32 - sh))) >>> 0;
  const u0 = (n0 << sh) >>> 0;
  // The high quotient digit from (u3 u2 u1), then the low one from (remainder u0).
  const q1 = divStep(u3, u2, u1, v1, v0);
  u2 = sRem1; u1 = sRem0;
  const q0 = divStep(u2, u1, u0, v1, v0);
  u2 = sRem1; u1 = sRem0;
  qHi = q1; qLo = q0;
  // Denormalize the remainder (u2 u1) >> sh.
  rLo = sh === 0 ? u1 : ((u1 >>> sh) | (u2 << (32 - sh))) >>> 0;
  rHi = u2 >>> sh;
  return true;
}

/** One step of algorithm D: the digit q of (a2 a1 a0) / (v1 v0), remainder (sRem1 sRem0). */
let sRem1 = 0, sRem0 = 0;
function divStep(a2: number, a1: number, a0: number, v1: number, v0: number): number {
  // Estimate q from the top two digits, then correct it with v0 (at most two decrements).
  let q: number, r: number;
  if (a2 >= v1) { q = 0xffffffff; r = (a2 - v1) * TWO32 + a1 + v1; } // a2 = v1 here (the remainder is below the divisor)
  else { q = div64by32(a2, a1, v1); r = dRem; }
  while (r < TWO32) {
    mulU32(q, v0);
    if (P[1]! > r || (P[1]! === r && P[0]! > a0)) { q--; r += v1; } else break;
  }
  // (a2 a1 a0) - q * (v1 v0): the product as three digits w2 w1 w0.
  mulU32(q, v0); const w0 = P[0]!; let c = P[1]!;
  mulU32(q, v1); let t = P[0]! + c; const w1 = t >>> 0; const w2 = P[1]! + (t - w1) / TWO32;
  let d0 = a0 - w0, borrow = d0 < 0 ? 1 : 0; d0 = d0 >>> 0;
  let d1 = a1 - w1 - borrow; borrow = d1 < 0 ? 1 : 0; d1 = d1 >>> 0;
  const d2 = a2 - w2 - borrow;
  if (d2 < 0) { // q was one too large: add the divisor back
    q--;
    t = d0 + v0; d0 = t >>> 0; c = t >= TWO32 ? 1 : 0;
    d1 = (d1 + v1 + c) >>> 0;
  }
  sRem1 = d1; sRem0 = d0;
  return q >>> 0;
}

/** DIV: unsigned (high:low) / d. False on #DE. */
export function div(lowLo: number, lowHi: number, highLo: number, highHi: number, dLo: number, dHi: number,
  size: OperandSize, flagsIn: number): boolean {
  const o = aluOut;
  if (size === 8) {
    if (!divU128(lowLo >>> 0, lowHi >>> 0, highLo >>> 0, highHi >>> 0, dLo >>> 0, dHi >>> 0)) return false;
    o.lo = qLo; o.hi = qHi; o.lo2 = rLo; o.hi2 = rHi;
  } else if (size === 4) {
    if (!divU128(lowLo >>> 0, highLo >>> 0, 0, 0, dLo >>> 0, 0)) return false;
    if (qHi !== 0) return false;
    o.lo = qLo; o.hi = 0; o.lo2 = rLo; o.hi2 = 0;
  } else {
    const m = MASK[size]!, w = size * 8;
    const d = dLo & m;
    if (d === 0) return false;
    const n = ((highLo & m) << w | (lowLo & m)) >>> 0;
    const q = Math.floor(n / d);
    if (q > m) return false;
    o.lo = q; o.hi = 0; o.lo2 = n - q * d; o.hi2 = 0;
  }
  o.flags = divFlags(flagsIn);
  return true;
}

/** IDIV: signed (high:low) / d, quotient truncated toward zero. False on #DE. */
export function idiv(lowLo: number, lowHi: number, highLo: number, highHi: number, dLo: number, dHi: number,
  size: OperandSize, flagsIn: number): boolean {
  const o = aluOut;
  if (size === 1 || size === 2) {
    const w = size * 8, m = MASK[size]!, sh = 32 - w;
    const d = (dLo << sh) >> sh;
    if (d === 0) return false;
    const n = ((highLo & m) << w) | (lowLo & m);
    const nn = size === 1 ? (n << 16) >> 16 : n | 0; // the dividend, sign-extended
    const q = Math.trunc(nn / d);
    const lim = SIGN[size]!;
    if (q >= lim || q < -lim) return false;
    const r = nn - q * d;
    o.lo = (q & m) >>> 0; o.hi = 0; o.lo2 = (r & m) >>> 0; o.hi2 = 0;
    o.flags = divFlags(flagsIn);
    return true;
  }
  // Sizes 4 and 8: divide magnitudes as a 128-bit / 64-bit unsigned problem.
  let n0: number, n1: number, n2: number, n3: number, dl: number, dh: number;
  if (size === 4) {
    n0 = lowLo >>> 0; n1 = highLo >>> 0;
    n2 = (n1 & 0x80000000) !== 0 ? 0xffffffff : 0; n3 = n2;
    dl = dLo >>> 0; dh = (dl & 0x80000000) !== 0 ? 0xffffffff : 0;
  } else {
    n0 = lowLo >>> 0; n1 = lowHi >>> 0; n2 = highLo >>> 0; n3 = highHi >>> 0;
    dl = dLo >>> 0; dh = dHi >>> 0;
  }
  const nNeg = (n3 & 0x80000000) !== 0, dNeg = (dh & 0x80000000) !== 0;
  if (nNeg) {
    // 128-bit two's complement negation.
    n0 = (~n0 >>> 0) + 1; let c = n0 >= TWO32 ? 1 : 0; n0 >>>= 0;
    n1 = (~n1 >>> 0) + c; c = n1 >= TWO32 ? 1 : 0; n1 >>>= 0;
    n2 = (~n2 >>> 0) + c; c = n2 >= TWO32 ? 1 : 0; n2 >>>= 0;
    n3 = ((~n3 >>> 0) + c) >>> 0;
  }
  if (dNeg) {
    dl = (~dl >>> 0) + 1; const c = dl >= TWO32 ? 1 : 0; dl >>>= 0;
    dh = ((~dh >>> 0) + c) >>> 0;
  }
  if (!divU128(n0, n1, n2, n3, dl, dh)) return false;
  const qNeg = nNeg !== dNeg;
  // Magnitude limits: positive quotient < 2^(w-1), negative quotient <= 2^(w-1).
  if (size === 4) {
    if (qHi !== 0) return false;
    if (qNeg ? qLo > 0x80000000 : qLo >= 0x80000000) return false;
    const q = qNeg ? (-qLo) >>> 0 : qLo;
    const r = nNeg ? (-rLo) >>> 0 : rLo;
    o.lo = q; o.hi = 0; o.lo2 = r; o.hi2 = 0;
  } else {
    if (qNeg ? (qHi > 0x80000000 || (qHi === 0x80000000 && qLo !== 0)) : qHi >= 0x80000000) return false;
    let ql = qLo, qh = qHi, rl = rLo, rh = rHi;
    if (qNeg) { ql = (~ql >>> 0) + 1; qh = ((~qh >>> 0) + (ql >= TWO32 ? 1 : 0)) >>> 0; ql >>>= 0; }
    if (nNeg) { rl = (~rl >>> 0) + 1; rh = ((~rh >>> 0) + (rl >= TWO32 ? 1 : 0)) >>> 0; rl >>>= 0; }
    o.lo = ql; o.hi = qh; o.lo2 = rl; o.hi2 = rh;
  }
  o.flags = divFlags(flagsIn);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Bit scans and counts.

/** Index of the lowest set bit of a non-zero uint32. */
function ctz32(v: number): number { return 31 - Math.clz32(v & -v); }

/**
 * BSF: aluOut.lo/hi = index of the lowest set bit of a. When a = 0, ZF = 1 and the destination is
 * unchanged (pass its current value as destLo/destHi; AMD documents this, Intel does it).
 * CF, OF, SF, AF, PF are undefined (bitScanFlags).
 */
export function bsf(aLo: number, aHi: number, size: OperandSize, destLo: number, destHi: number): void {
  bitScan(false, aLo, aHi, size, destLo, destHi);
}

/** BSR: index of the highest set bit; zero source as BSF. */
export function bsr(aLo: number, aHi: number, size: OperandSize, destLo: number, destHi: number): void {
  bitScan(true, aLo, aHi, size, destLo, destHi);
}

function bitScan(reverse: boolean, aLo: number, aHi: number, size: number, destLo: number, destHi: number): void {
  const o = aluOut;
  const l = (aLo & MASK[size]!) >>> 0, h = size === 8 ? aHi >>> 0 : 0;
  if ((l | h) === 0) {
    o.lo = size === 8 ? destLo >>> 0 : (destLo & MASK[size]!) >>> 0;
    o.hi = size === 8 ? destHi >>> 0 : 0;
    o.flags = bitScanFlags(true, 0);
    return;
  }
  let idx: number;
  if (reverse) idx = h !== 0 ? 63 - Math.clz32(h) : 31 - Math.clz32(l);
  else idx = l !== 0 ? ctz32(l) : 32 + ctz32(h);
  o.lo = idx; o.hi = 0;
  o.flags = bitScanFlags(false, idx);
}

/**
 * Flags of BSF/BSR: ZF = (source == 0). The undefined ones as Zen 5 leaves them: CF OF SF AF clear,
 * PF the parity of the index (of 0 for a zero source). Earlier AMD generations kept them unchanged.
 */
function bitScanFlags(zero: boolean, idx: number): number {
  return (zero ? FLAG_ZF : 0) | PARITY[idx & 0xff]!;
}

/** TZCNT: count of trailing zero bits (size when a = 0). CF = (a == 0), ZF = (result == 0). */
export function tzcnt(aLo: number, aHi: number, size: OperandSize, flagsIn: number): void {
  const o = aluOut;
  const l = (aLo & MASK[size]!) >>> 0, h = size === 8 ? aHi >>> 0 : 0;
  let n: number;
  if ((l | h) === 0) n = size * 8;
  else n = l !== 0 ? ctz32(l) : 32 + ctz32(h);
  o.lo = n; o.hi = 0;
  o.flags = countFlags(flagsIn, n === size * 8, n === 0);
}

/** LZCNT: count of leading zero bits (size when a = 0). CF = (a == 0), ZF = (result == 0). */
export function lzcnt(aLo: number, aHi: number, size: OperandSize, flagsIn: number): void {
  const o = aluOut;
  const l = (aLo & MASK[size]!) >>> 0, h = size === 8 ? aHi >>> 0 : 0;
  let n: number;
  if (size === 8) n = h !== 0 ? Math.clz32(h) : 32 + Math.clz32(l);
  else n = Math.clz32(l) - (32 - size * 8);
  o.lo = n; o.hi = 0;
  o.flags = countFlags(flagsIn, n === size * 8, n === 0);
}

/** Flags of TZCNT/LZCNT. Undefined OF SF AF PF: AMD Zen keeps OF and clears SF AF PF. */
function countFlags(flagsIn: number, cf: boolean, zf: boolean): number {
  return (flagsIn & FLAG_OF) | (cf ? FLAG_CF : 0) | (zf ? FLAG_ZF : 0);
}

function popcnt32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

/** POPCNT: number of set bits. ZF = (a == 0); CF OF SF AF PF cleared. */
export function popcnt(aLo: number, aHi: number, size: OperandSize): void {
  const o = aluOut;
  const l = (aLo & MASK[size]!) >>> 0, h = size === 8 ? aHi >>> 0 : 0;
  const n = popcnt32(l) + popcnt32(h);
  o.lo = n; o.hi = 0;
  o.flags = n === 0 ? FLAG_ZF : 0;
}

/**
 * BSWAP (sizes 4 and 8; flags unaffected). For size 2 the SDM says undefined; Intel and AMD CPUs
 * are reported to write 0 to the low 16 bits, and so do we.
 */
export function bswap(aLo: number, aHi: number, size: OperandSize, flagsIn: number): void {
  const o = aluOut;
  o.flags = flagsIn & STATUS_FLAGS;
  const sw = (v: number): number => (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
  if (size === 8) { const l = sw(aHi >>> 0); o.hi = sw(aLo >>> 0); o.lo = l; }
  else if (size === 4) { o.lo = sw(aLo >>> 0); o.hi = 0; }
  else { o.lo = 0; o.hi = 0; }
}

// ---------------------------------------------------------------------------------------------
// CMPXCHG / XADD

/**
 * CMPXCHG: compare the accumulator with the destination (flags of CMP acc, dest). If equal,
 * ZF = 1 and dest := src; else ZF = 0 and acc := dest. aluOut.lo/hi = new destination value
 * (the CPU always writes the destination back), aluOut.lo2/hi2 = new accumulator value.
 */
export function cmpxchg(accLo: number, accHi: number, destLo: number, destHi: number, srcLo: number, srcHi: number,
  size: OperandSize): void {
  subWithBorrow(accLo, accHi, destLo, destHi, size, 0);
  const o = aluOut;
  const m = MASK[size]!;
  if ((o.flags & FLAG_ZF) !== 0) {
    o.lo = (srcLo & m) >>> 0; o.hi = size === 8 ? srcHi >>> 0 : 0;
    o.lo2 = (accLo & m) >>> 0; o.hi2 = size === 8 ? accHi >>> 0 : 0;
  } else {
    o.lo = (destLo & m) >>> 0; o.hi = size === 8 ? destHi >>> 0 : 0;
    o.lo2 = o.lo; o.hi2 = o.hi;
  }
}

/** XADD: dest := dest + src (flags of ADD), src := old dest. aluOut.lo/hi = sum, lo2/hi2 = old dest. */
export function xadd(destLo: number, destHi: number, srcLo: number, srcHi: number, size: OperandSize): void {
  addWithCarry(destLo, destHi, srcLo, srcHi, size, 0);
  const o = aluOut;
  o.lo2 = (destLo & MASK[size]!) >>> 0; o.hi2 = size === 8 ? destHi >>> 0 : 0;
}

// ---------------------------------------------------------------------------------------------
// Lazy flags

export const LAZY_EAGER = 0; // flags already computed: aux holds the status bits
export const LAZY_ADD = 1; // r = a + b
export const LAZY_ADC = 2; // r = a + b + aux (carry-in 0/1)
export const LAZY_SUB = 3; // r = a - b (SUB, CMP, NEG with a = 0)
export const LAZY_SBB = 4; // r = a - b - aux (borrow-in 0/1)
export const LAZY_LOGIC = 5; // r = a op b for AND OR XOR TEST: CF = OF = AF = 0
export const LAZY_INC = 6; // r = a + 1 (b = 1), aux = CF before
export const LAZY_DEC = 7; // r = a - 1 (b = 1), aux = CF before

/** x < y as unsigned values of `size` bytes, from uint32 halves (the high halves count only for size 8). */
function ltU(size: number, xLo: number, xHi: number, yLo: number, yHi: number): boolean {
  return size === 8 && xHi !== yHi ? xHi < yHi : xLo < yLo;
}

/**
 * CF (0/1) of a lazy flag producer given field by field (LazyFlags.cf; the soft CPU's block
 * compiler holds a pending producer in locals and asks the same question).
 */
export function lazyCarry(op: number, size: number, aLo: number, aHi: number, bLo: number, bHi: number, rLo: number, rHi: number,
  aux: number): number {
  switch (op) {
    case LAZY_EAGER: return aux & FLAG_CF;
    case LAZY_ADD: return ltU(size, rLo, rHi, aLo, aHi) ? 1 : 0;
    case LAZY_ADC: return ltU(size, rLo, rHi, aLo, aHi) || ((aux & 1) !== 0 && rLo === aLo && rHi === aHi) ? 1 : 0;
    case LAZY_SUB: return ltU(size, aLo, aHi, bLo, bHi) ? 1 : 0;
    case LAZY_SBB: return ltU(size, aLo, aHi, bLo, bHi) || ((aux & 1) !== 0 && aLo === bLo && aHi === bHi) ? 1 : 0;
    case LAZY_LOGIC: return 0;
    default: return aux & 1; // INC, DEC
  }
}

/**
 * The last flag-setting operation, kept unevaluated. Record with `record()` (operands and result
 * zero-extended to `size`, as uint32 halves; hi = 0 for size < 8) or `setEager()`, then ask for
 * one flag, a condition code, or the materialized status bits. Any status flag the op leaves
 * undefined reads as the ALU functions above would produce it.
 */
export class LazyFlags {
  op = LAZY_EAGER;
  size: number = 4;
  aLo = 0; aHi = 0; bLo = 0; bHi = 0; rLo = 0; rHi = 0;
  aux = 0;

  /** Record op (LAZY_ADD..LAZY_DEC). `aux`: carry-in for ADC/SBB, old CF (0/1) for INC/DEC. */
  record(op: number, size: number, aLo: number, aHi: number, bLo: number, bHi: number, rLo: number, rHi: number, aux: number): void {
    this.op = op; this.size = size;
    this.aLo = aLo >>> 0; this.aHi = aHi >>> 0; this.bLo = bLo >>> 0; this.bHi = bHi >>> 0;
    this.rLo = rLo >>> 0; this.rHi = rHi >>> 0;
    this.aux = aux & 1;
  }

  /** Record fully computed status flags (e.g. aluOut.flags after a shift, or POPF). */
  setEager(flags: number): void {
    this.op = LAZY_EAGER;
    this.aux = flags & STATUS_FLAGS;
  }

  /** CF as 0/1. */
  cf(): number {
    return lazyCarry(this.op, this.size, this.aLo, this.aHi, this.bLo, this.bHi, this.rLo, this.rHi, this.aux);
  }

  /** ZF as 0 or FLAG_ZF. */
  zf(): number {
    if (this.op === LAZY_EAGER) return this.aux & FLAG_ZF;
    return (this.rLo | this.rHi) === 0 ? FLAG_ZF : 0;
  }

  /** SF as 0 or FLAG_SF. */
  sf(): number {
    if (this.op === LAZY_EAGER) return this.aux & FLAG_SF;
    return ((this.size === 8 ? this.rHi : this.rLo) & SIGN[this.size]!) !== 0 ? FLAG_SF : 0;
  }

  /** PF as 0 or FLAG_PF. */
  pf(): number {
    if (this.op === LAZY_EAGER) return this.aux & FLAG_PF;
    return PARITY[this.rLo & 0xff]!;
  }

  /** AF as 0 or FLAG_AF. */
  af(): number {
    if (this.op === LAZY_EAGER) return this.aux & FLAG_AF;
    if (this.op === LAZY_LOGIC) return 0;
    return (this.aLo ^ this.bLo ^ this.rLo) & FLAG_AF;
  }

  /** OF as 0 or FLAG_OF. */
  of(): number {
    const s = SIGN[this.size]!;
    const a = this.size === 8 ? this.aHi : this.aLo;
    const b = this.size === 8 ? this.bHi : this.bLo;
    const r = this.size === 8 ? this.rHi : this.rLo;
    switch (this.op) {
      case LAZY_EAGER: return this.aux & FLAG_OF;
      case LAZY_ADD: case LAZY_ADC: case LAZY_INC:
        return ((a ^ r) & (b ^ r) & s) !== 0 ? FLAG_OF : 0;
      case LAZY_LOGIC: return 0;
      default: return ((a ^ b) & (a ^ r) & s) !== 0 ? FLAG_OF : 0;
    }
  }

  /** All six status flags, materialized. */
  get(): number {
    if (this.op === LAZY_EAGER) return this.aux;
    return this.cf() | this.pf() | this.af() | this.zf() | this.sf() | this.of();
  }

  /** Condition code cc (0..15) true? Fast paths for CMP/SUB; otherwise from the flags. */
  cond(cc: number): boolean {
    if (this.op === LAZY_SUB) {
      let t: boolean;
      switch (cc >> 1) {
        case 1: t = this.ltU(this.aLo, this.aHi, this.bLo, this.bHi); break; // B
        case 2: t = this.aLo === this.bLo && this.aHi === this.bHi; break; // E
        case 3: t = !this.ltU(this.bLo, this.bHi, this.aLo, this.aHi); break; // BE: a <= b
        case 6: t = this.ltS(this.aLo, this.aHi, this.bLo, this.bHi); break; // L
        case 7: t = !this.ltS(this.bLo, this.bHi, this.aLo, this.aHi); break; // LE: a <= b
        default: return evalCondition(cc, this.get());
      }
      return (cc & 1) === 0 ? t : !t;
    }
    switch (cc) {
      case 4: return (this.op === LAZY_EAGER ? this.aux & FLAG_ZF : this.zf()) !== 0;
      case 5: return (this.op === LAZY_EAGER ? this.aux & FLAG_ZF : this.zf()) === 0;
      default: return evalCondition(cc, this.get());
    }
  }

  /** Unsigned a < b for values of this.size. */
  private ltU(aLo: number, aHi: number, bLo: number, bHi: number): boolean {
    return ltU(this.size, aLo, aHi, bLo, bHi);
  }

  /** Signed a < b for values of this.size. */
  private ltS(aLo: number, aHi: number, bLo: number, bHi: number): boolean {
    if (this.size === 8) {
      if (aHi !== bHi) return (aHi | 0) < (bHi | 0);
      return aLo < bLo;
    }
    const sh = 32 - this.size * 8;
    return ((aLo << sh) >> sh) < ((bLo << sh) >> sh);
  }
}
