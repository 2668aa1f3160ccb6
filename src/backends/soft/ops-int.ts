/**
 * General-purpose integer instructions of the soft CPU: data movement, ALU, shifts, multiply and
 * divide, bit operations, conditional moves and jumps, the stack, string instructions.
 * The hottest ALU operations are inlined with lazy flags; the rest go through x86/alu.ts.
 */
import * as alu from '../../x86/alu.js';
import {
  LAZY_ADD, LAZY_DEC, LAZY_INC, LAZY_LOGIC, LAZY_SUB, aluOut, type OperandSize,
} from '../../x86/alu.js';
import { FLAG_AF, FLAG_CF, FLAG_DF, FLAG_OF } from '../../x86/flags.js';
import { TWO32 } from '../../common/bits.js';
import { EXC_BR, EXC_DE } from '../../x86/exceptions.js';
import { S_ES, TLB_READ, TLB_WRITE, type Cpu } from './cpu.js';
import { IMM, MASK, MEM, ea, effOffset, rdOp, wrOp, type Insn } from './insn.js';

// ---------------------------------------------------------------------------------------------
// Helpers

/**
 * Result of aluCore (lo, hi): a typed array, as a module-level let holding a uint32 above 2^30 would box it at every store.
 * Its two words always exist, so the reads RES[0]! and RES[1]! below are never undefined.
 */
const RES = new Uint32Array(2);

/**
 * Binary ALU operation `op` (ALU_ADD..ALU_CMP) on zero-extended operands, flags recorded in c.lz.
 * ADD, SUB, CMP and the logic operations are inline with lazy flags.
 */
function aluCore(c: Cpu, op: number, size: number, aLo: number, aHi: number, bLo: number, bHi: number): void {
  const lz = c.lz;
  if (size !== 8) {
    const m = MASK[size]!;
    const a = (aLo & m) >>> 0, b = (bLo & m) >>> 0;
    switch (op) {
      case alu.ALU_ADD: RES[0] = ((a + b) & m) >>> 0; RES[1] = 0; lz.record(LAZY_ADD, size, a, 0, b, 0, RES[0], 0, 0); return;
      case alu.ALU_SUB: case alu.ALU_CMP: RES[0] = ((a - b) & m) >>> 0; RES[1] = 0; lz.record(LAZY_SUB, size, a, 0, b, 0, RES[0], 0, 0); return;
      case alu.ALU_AND: RES[0] = (a & b) >>> 0; RES[1] = 0; lz.record(LAZY_LOGIC, size, 0, 0, 0, 0, RES[0], 0, 0); return;
      case alu.ALU_OR: RES[0] = (a | b) >>> 0; RES[1] = 0; lz.record(LAZY_LOGIC, size, 0, 0, 0, 0, RES[0], 0, 0); return;
      case alu.ALU_XOR: RES[0] = (a ^ b) >>> 0; RES[1] = 0; lz.record(LAZY_LOGIC, size, 0, 0, 0, 0, RES[0], 0, 0); return;
    }
  } else {
    switch (op) {
      case alu.ALU_ADD: {
        const s = (aLo >>> 0) + (bLo >>> 0);
        RES[0] = s >>> 0; RES[1] = (aHi + bHi + (s >= TWO32 ? 1 : 0)) >>> 0;
        lz.record(LAZY_ADD, 8, aLo, aHi, bLo, bHi, RES[0], RES[1], 0);
        return;
      }
      case alu.ALU_SUB: case alu.ALU_CMP: {
        const d = (aLo >>> 0) - (bLo >>> 0);
        RES[0] = d >>> 0; RES[1] = (aHi - bHi - (d < 0 ? 1 : 0)) >>> 0;
        lz.record(LAZY_SUB, 8, aLo, aHi, bLo, bHi, RES[0], RES[1], 0);
        return;
      }
      case alu.ALU_AND: RES[0] = (aLo & bLo) >>> 0; RES[1] = (aHi & bHi) >>> 0; lz.record(LAZY_LOGIC, 8, 0, 0, 0, 0, RES[0], RES[1], 0); return;
      case alu.ALU_OR: RES[0] = (aLo | bLo) >>> 0; RES[1] = (aHi | bHi) >>> 0; lz.record(LAZY_LOGIC, 8, 0, 0, 0, 0, RES[0], RES[1], 0); return;
      case alu.ALU_XOR: RES[0] = (aLo ^ bLo) >>> 0; RES[1] = (aHi ^ bHi) >>> 0; lz.record(LAZY_LOGIC, 8, 0, 0, 0, 0, RES[0], RES[1], 0); return;
    }
  }
  // ADC, SBB: eager.
  alu.aluBinary(op, aLo, aHi, bLo, bHi, size as OperandSize, lz.get());
  RES[0] = aluOut.lo; RES[1] = aluOut.hi;
  lz.setEager(aluOut.flags);
}

/** Reads the destination operand o0 (computing the EA for memory). */
function rdDst(c: Cpu, i: Insn, size: number): number {
  return rdOp(c, i, i.o0, size);
}

/**
 * Reads the destination of a read-modify-write and, when it is memory, checks that the write will
 * succeed: an instruction that faults on its write (a read-only page: copy-on-write after fork)
 * must leave the flags as they were, since the fault's frame saves them and the instruction runs
 * again after it (ADC, SBB, RCL and RCR read CF).
 */
function rdDstRmw(c: Cpu, i: Insn, size: number): number {
  const v = rdOp(c, i, i.o0, size);
  if (i.o0 === MEM) {
    const hi = c.hi;
    c.probeWrite(c.eaLo, c.eaHi, size);
    c.hi = hi;
  }
  return v;
}

function statusFlags(c: Cpu): number {
  return c.lz.get();
}

// ---------------------------------------------------------------------------------------------
// MOV and friends

export function hMov(c: Cpu, i: Insn): void {
  const size = i.size;
  const v = rdOp(c, i, i.o1, size);
  const hi = c.hi;
  if (i.o0 === MEM) {
    ea(c, i);
    c.wr(c.eaLo, c.eaHi, size, v, hi);
  } else c.setReg(i.o0, size, v, hi);
}

/** MOV r64/r32, r64/r32 (the register-to-register fast path). */
export function hMovRR(c: Cpu, i: Insn): void {
  const R = c.regs;
  const d = i.o0 << 1, s = i.o1 << 1;
  R[d] = R[s]!;
  R[d + 1] = i.size === 8 ? R[s + 1]! : 0;
}

/** MOV reg, [mem] with 4/8-byte operands. */
export function hLoad(c: Cpu, i: Insn): void {
  ea(c, i);
  const R = c.regs;
  const d = i.o0 << 1;
  if (i.size === 8) { R[d] = c.rd64(c.eaLo, c.eaHi); R[d + 1] = c.hi; } else { R[d] = c.rd32(c.eaLo, c.eaHi); R[d + 1] = 0; }
}

/** MOV [mem], reg with 4/8-byte operands. */
export function hStore(c: Cpu, i: Insn): void {
  ea(c, i);
  const R = c.regs;
  const s = i.o1 << 1;
  if (i.size === 8) c.wr64(c.eaLo, c.eaHi, R[s]!, R[s + 1]!); else c.wr32(c.eaLo, c.eaHi, R[s]!);
}

export function hMovRI(c: Cpu, i: Insn): void {
  c.setReg(i.o0, i.size, i.imm, i.immHi);
}

/** MOVZX / MOVSX / MOVSXD: source size in i.sub (negative = sign-extend). */
export function hMovx(c: Cpu, i: Insn): void {
  const ss = i.sub < 0 ? -i.sub : i.sub;
  let v = rdOp(c, i, i.o1, ss);
  let hi = 0;
  if (i.sub < 0) {
    const sh = 32 - ss * 8;
    v = (v << sh) >> sh;
    hi = v >> 31;
  } else v = ss === 4 ? v : v & MASK[ss]!;
  c.setReg(i.o0, i.size, v, hi);
}

export function hLea(c: Cpu, i: Insn): void {
  const lo = effOffset(c, i);
  c.setReg(i.o0, i.size, lo, c.hi);
}

export function hXchg(c: Cpu, i: Insn): void {
  const size = i.size;
  if (i.o0 === MEM || i.o1 === MEM) {
    const r = i.o0 === MEM ? i.o1 : i.o0;
    ea(c, i);
    const m = c.rd(c.eaLo, c.eaHi, size);
    const mh = c.hi;
    const v = c.getReg(r, size);
    c.wr(c.eaLo, c.eaHi, size, v, c.hi);
    c.setReg(r, size, m, mh);
    return;
  }
  const a = c.getReg(i.o0, size), ah = c.hi;
  const b = c.getReg(i.o1, size), bh = c.hi;
  c.setReg(i.o0, size, b, bh);
  c.setReg(i.o1, size, a, ah);
}

// ---------------------------------------------------------------------------------------------
// ALU

/** ADD OR ADC SBB AND SUB XOR CMP (sub-operation in i.sub); TEST is sub = -1. */
export function hAlu(c: Cpu, i: Insn): void {
  const size = i.size;
  const op = i.sub;
  const a = op === alu.ALU_CMP ? rdDst(c, i, size) : rdDstRmw(c, i, size), ah = c.hi;
  const b = rdOp(c, i, i.o1, size), bh = c.hi;
  aluCore(c, op, size, a, ah, b, bh);
  if (op !== alu.ALU_CMP) wrOp(c, i.o0, size, RES[0]!, RES[1]!);
}

export function hTest(c: Cpu, i: Insn): void {
  const size = i.size;
  const a = rdDst(c, i, size), ah = c.hi;
  const b = rdOp(c, i, i.o1, size), bh = c.hi;
  aluCore(c, alu.ALU_AND, size, a, ah, b, bh);
}

/** ALU r32/r64, r32/r64 without memory (fast path): ADD SUB CMP AND OR XOR. */
export function hAluRR(c: Cpu, i: Insn): void {
  const R = c.regs;
  const d = i.o0 << 1, s = i.o1 << 1;
  aluCore(c, i.sub, i.size, R[d]!, R[d + 1]!, R[s]!, R[s + 1]!);
  if (i.sub !== alu.ALU_CMP) { R[d] = RES[0]!; R[d + 1] = i.size === 8 ? RES[1]! : 0; }
}

/** ALU r32/r64, imm (fast path). */
export function hAluRI(c: Cpu, i: Insn): void {
  const R = c.regs;
  const d = i.o0 << 1;
  aluCore(c, i.sub, i.size, R[d]!, R[d + 1]!, i.imm, i.immHi);
  if (i.sub !== alu.ALU_CMP) { R[d] = RES[0]!; R[d + 1] = i.size === 8 ? RES[1]! : 0; }
}

export function hIncDec(c: Cpu, i: Insn): void {
  const size = i.size;
  const a = rdDstRmw(c, i, size), ah = c.hi;
  const cf = c.lz.cf();
  let lo: number, hi: number;
  if (size !== 8) {
    const m = MASK[size]!;
    const av = (a & m) >>> 0;
    lo = ((i.sub === 0 ? av + 1 : av - 1) & m) >>> 0; hi = 0;
    c.lz.record(i.sub === 0 ? LAZY_INC : LAZY_DEC, size, av, 0, 1, 0, lo, 0, cf);
  } else {
    if (i.sub === 0) { const s = (a >>> 0) + 1; lo = s >>> 0; hi = (ah + (s >= TWO32 ? 1 : 0)) >>> 0; }
    else { const d = (a >>> 0) - 1; lo = d >>> 0; hi = (ah - (d < 0 ? 1 : 0)) >>> 0; }
    c.lz.record(i.sub === 0 ? LAZY_INC : LAZY_DEC, 8, a, ah, 1, 0, lo, hi, cf);
  }
  wrOp(c, i.o0, size, lo, hi);
}

export function hNot(c: Cpu, i: Insn): void {
  const a = rdDst(c, i, i.size), ah = c.hi;
  wrOp(c, i.o0, i.size, ~a, ~ah);
}

export function hNeg(c: Cpu, i: Insn): void {
  const size = i.size;
  const a = rdDstRmw(c, i, size), ah = c.hi;
  aluCore(c, alu.ALU_SUB, size, 0, 0, a, size === 8 ? ah : 0);
  wrOp(c, i.o0, size, RES[0]!, RES[1]!);
}

/** Shifts and rotates (group 2): op in i.sub, count from o1 (IMM, CL or the constant 1 as IMM). */
export function hShift(c: Cpu, i: Insn): void {
  const size = i.size;
  const a = rdDstRmw(c, i, size), ah = c.hi;
  const count = i.o1 === IMM ? i.imm : c.regs[2]! & 0xff;
  if ((count & (size === 8 ? 63 : 31)) === 0) {
    // No flags change; a 32-bit register destination is still written (zero-extended).
    if (size === 4 && i.o0 >= 0) c.regs[(i.o0 << 1) + 1] = 0;
    return;
  }
  alu.aluShift(i.sub, a, ah, count, size as OperandSize, statusFlags(c));
  c.lz.setEager(aluOut.flags);
  wrOp(c, i.o0, size, aluOut.lo, aluOut.hi);
}

/** SHLD/SHRD: i.sub = 0 left, 1 right; count in IMM (imm2) or CL. */
export function hShd(c: Cpu, i: Insn): void {
  const size = i.size;
  const a = rdDstRmw(c, i, size), ah = c.hi;
  const b = c.getReg(i.o1, size), bh = c.hi;
  const bits = size * 8;
  let n = (i.o2 === IMM ? i.imm2 : c.regs[2]!) & (size === 8 ? 63 : 31);
  if (n === 0) {
    if (size === 4 && i.o0 >= 0) c.regs[(i.o0 << 1) + 1] = 0;
    return;
  }
  // Compose in BigInt-free fashion through doubles is error-prone; use the 64-bit case explicitly.
  const toBig = (lo: number, hi: number) => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  const mask = (1n << BigInt(bits)) - 1n;
  const dst = size === 8 ? toBig(a, ah) : BigInt((a & MASK[size]!) >>> 0);
  const src = size === 8 ? toBig(b, bh) : BigInt((b & MASK[size]!) >>> 0);
  const flagsIn = statusFlags(c);
  let res: bigint, cf: bigint;
  if (size === 2 && n > 16) {
    // Undefined result for 16-bit counts above 16: model the AMD/Intel behaviour of a 32-bit concatenation.
    n &= 31;
  }
  const bn = BigInt(n);
  if (i.sub === 0) {
    const wide = (dst << BigInt(bits)) | src;
    const sh = size === 2 && n > 16 ? ((wide << bn) | (dst << (bn - 16n))) : wide << bn;
    res = (sh >> BigInt(bits)) & mask;
    cf = (dst >> (BigInt(bits) - bn)) & 1n;
    if (size === 2 && n > 16) cf = ((wide << (bn - 1n)) >> 31n) & 1n;
  } else {
    const wide = (src << BigInt(bits)) | dst;
    res = (wide >> bn) & mask;
    cf = (dst >> (bn - 1n)) & 1n;
    if (size === 2 && n > 16) { res = (((src << 32n) | (dst << 16n) | src) >> bn) & mask; cf = (((src << 16n) | dst) >> (bn - 1n)) & 1n; }
  }
  const lo = Number(res & 0xffffffffn), hi = Number(res >> 32n);
  const sign = BigInt(bits - 1);
  const of = ((res >> sign) & 1n) !== ((dst >> sign) & 1n);
  alu.and(lo, hi, lo, hi, size as OperandSize); // SF ZF PF of the result
  let f = (aluOut.flags & ~(FLAG_CF | FLAG_OF | 0x10)) | (cf ? FLAG_CF : 0) | (of ? FLAG_OF : 0) | (flagsIn & 0x10);
  if (n !== 1 && !of) f &= ~FLAG_OF;
  c.lz.setEager(f);
  wrOp(c, i.o0, size, lo, hi);
}

/** MUL/IMUL/DIV/IDIV with the accumulator (one operand): i.sub 0 mul, 1 imul, 2 div, 3 idiv. */
export function hMulDiv(c: Cpu, i: Insn): void {
  const size = i.size;
  const b = rdOp(c, i, i.o0, size), bh = c.hi;
  const R = c.regs;
  const flagsIn = statusFlags(c);
  if (i.sub < 2) {
    const a = size === 1 ? R[0]! & 0xff : R[0]!, ah = R[1]!;
    (i.sub === 0 ? alu.mul : alu.imul)(a, ah, b, bh, size as OperandSize, flagsIn);
    c.lz.setEager(aluOut.flags);
    if (size === 1) c.setReg(0, 2, (aluOut.lo & 0xff) | ((aluOut.lo2 & 0xff) << 8), 0);
    else { c.setReg(0, size, aluOut.lo, aluOut.hi); c.setReg(2, size, aluOut.lo2, aluOut.hi2); }
    return;
  }
  let lowLo: number, lowHi: number, highLo: number, highHi: number;
  if (size === 1) { lowLo = R[0]! & 0xff; highLo = (R[0]! >> 8) & 0xff; lowHi = highHi = 0; }
  else { lowLo = R[0]!; lowHi = R[1]!; highLo = R[4]!; highHi = R[5]!; }
  const ok = (i.sub === 2 ? alu.div : alu.idiv)(lowLo, lowHi, highLo, highHi, b, bh, size as OperandSize, flagsIn);
  if (!ok) c.fault(EXC_DE);
  c.lz.setEager(aluOut.flags);
  if (size === 1) c.setReg(0, 2, (aluOut.lo & 0xff) | ((aluOut.lo2 & 0xff) << 8), 0);
  else { c.setReg(0, size, aluOut.lo, aluOut.hi); c.setReg(2, size, aluOut.lo2, aluOut.hi2); }
}

/** IMUL r, r/m (o2 NONE) or IMUL r, r/m, imm. */
export function hImul2(c: Cpu, i: Insn): void {
  const size = i.size;
  const a = rdOp(c, i, i.o1, size), ah = c.hi;
  let b: number, bh: number;
  if (i.o2 === IMM) { b = i.imm; bh = i.immHi; } else { b = c.getReg(i.o0, size); bh = c.hi; }
  alu.imul(a, ah, b, bh, size as OperandSize, statusFlags(c));
  c.lz.setEager(aluOut.flags);
  c.setReg(i.o0, size, aluOut.lo, aluOut.hi);
}

/** BT BTS BTR BTC: i.sub 0..3. Register bit offsets address a bit string in memory. */
export function hBt(c: Cpu, i: Insn): void {
  const size = i.size;
  let idx: number;
  let idxHi = 0;
  if (i.o1 === IMM) idx = i.imm & (size * 8 - 1);
  else { idx = c.getReg(i.o1, size); idxHi = c.hi; }
  let a: number, ah: number;
  if (i.o0 === MEM) {
    ea(c, i);
    if (i.o1 !== IMM) {
      // The bit offset is signed and selects the operand-sized word: add (offset >> log2(bits)) * size bytes.
      const bits = size * 8;
      let off: number;
      if (size === 8) off = (idxHi | 0) * TWO32 + (idx >>> 0);
      else if (size === 4) off = idx | 0;
      else off = (idx << 16) >> 16;
      const word = Math.floor(off / bits);
      const byteOff = word * size;
      const sum = (c.eaLo >>> 0) + (c.eaHi | 0) * TWO32 + byteOff;
      if (c.long64 || i.asz === 8) {
        const hiPart = Math.floor(sum / TWO32);
        c.eaLo = (sum - hiPart * TWO32) | 0; c.eaHi = hiPart | 0;
      } else { c.eaLo = sum | 0; c.eaHi = 0; }
      idx = ((off % bits) + bits) % bits;
    }
    a = c.rd(c.eaLo, c.eaHi, size); ah = c.hi;
  } else { a = c.getReg(i.o0, size); ah = c.hi; idx &= size * 8 - 1; }
  const fin = statusFlags(c);
  switch (i.sub) {
    case 0: alu.bt(a, ah, idx, size as OperandSize, fin); break;
    case 1: alu.bts(a, ah, idx, size as OperandSize, fin); break;
    case 2: alu.btr(a, ah, idx, size as OperandSize, fin); break;
    default: alu.btc(a, ah, idx, size as OperandSize, fin); break;
  }
  // The write first: one that faults leaves the flags as they were.
  if (i.sub !== 0) {
    if (i.o0 === MEM) c.wr(c.eaLo, c.eaHi, size, aluOut.lo, aluOut.hi);
    else c.setReg(i.o0, size, aluOut.lo, aluOut.hi);
  }
  c.lz.setEager(aluOut.flags);
}

/** BSF BSR TZCNT LZCNT POPCNT: i.sub 0..4. */
export function hBitScan(c: Cpu, i: Insn): void {
  const size = i.size as OperandSize;
  const a = rdOp(c, i, i.o1, size), ah = c.hi;
  const fin = statusFlags(c);
  switch (i.sub) {
    case 0: case 1: {
      const d = c.getReg(i.o0, size), dh = c.hi;
      (i.sub === 0 ? alu.bsf : alu.bsr)(a, ah, size, d, dh);
      c.lz.setEager(aluOut.flags);
      if ((size === 8 ? a | ah : a & MASK[size]!) !== 0) c.setReg(i.o0, size, aluOut.lo, aluOut.hi);
      return;
    }
    case 2: alu.tzcnt(a, ah, size, fin); break;
    case 3: alu.lzcnt(a, ah, size, fin); break;
    default: alu.popcnt(a, ah, size); break;
  }
  c.lz.setEager(aluOut.flags);
  c.setReg(i.o0, size, aluOut.lo, aluOut.hi);
}

export function hBswap(c: Cpu, i: Insn): void {
  const a = c.getReg(i.o0, i.size), ah = c.hi;
  alu.bswap(a, ah, i.size as OperandSize, 0);
  c.setReg(i.o0, i.size, aluOut.lo, aluOut.hi);
}

export function hXadd(c: Cpu, i: Insn): void {
  const size = i.size;
  const d = rdDstRmw(c, i, size), dh = c.hi;
  const s = c.getReg(i.o1, size), sh = c.hi;
  aluCore(c, alu.ALU_ADD, size, d, dh, s, sh);
  const lo = RES[0]!, hi = RES[1]!;
  if (i.o0 === MEM) { c.wr(c.eaLo, c.eaHi, size, lo, hi); c.setReg(i.o1, size, d, dh); return; }
  c.setReg(i.o1, size, d, dh); // the destination is written last (XADD r, r with one register keeps the sum)
  c.setReg(i.o0, size, lo, hi);
}

export function hCmpxchg(c: Cpu, i: Insn): void {
  const size = i.size;
  const d = rdDstRmw(c, i, size), dh = c.hi;
  const acc = c.getReg(0, size), acch = c.hi;
  aluCore(c, alu.ALU_CMP, size, acc, acch, d, dh);
  const m = MASK[size]!;
  const equal = size === 8 ? (acc === d && acch === dh) : ((acc ^ d) & m) === 0;
  if (equal) {
    const s = c.getReg(i.o1, size), sh = c.hi;
    wrOp(c, i.o0, size, s, sh);
  } else {
    if (i.o0 === MEM) c.wr(c.eaLo, c.eaHi, size, d, dh); // the destination is always written
    c.setReg(0, size, d, dh);
  }
}

/** CMPXCHG8B / CMPXCHG16B (i.sub = 8 or 16). */
export function hCmpxchg8b(c: Cpu, i: Insn): void {
  ea(c, i);
  const R = c.regs;
  if (i.sub === 8) {
    const lo = c.rd32(c.eaLo, c.eaHi);
    const hi = c.rd32((c.eaLo + 4) | 0, c.eaHi);
    if (lo === R[0] && hi === R[4]) {
      c.probeWrite(c.eaLo, c.eaHi, 8);
      c.wr32(c.eaLo, c.eaHi, R[6]!); c.wr32((c.eaLo + 4) | 0, c.eaHi, R[2]!);
      c.lz.setEager(c.lz.get() | 0x40);
    } else {
      c.wr32(c.eaLo, c.eaHi, lo); c.wr32((c.eaLo + 4) | 0, c.eaHi, hi);
      c.setReg(0, 4, lo, 0); c.setReg(2, 4, hi, 0);
      c.lz.setEager(c.lz.get() & ~0x40);
    }
    return;
  }
  if ((c.eaLo & 15) !== 0) c.gp(0);
  const a0 = c.rd64(c.eaLo, c.eaHi), a1 = c.hi;
  const b0 = c.rd64((c.eaLo + 8) | 0, c.eaHi), b1 = c.hi;
  if (a0 === R[0] && a1 === R[1] && b0 === R[4] && b1 === R[5]) {
    c.probeWrite(c.eaLo, c.eaHi, 16);
    c.wr64(c.eaLo, c.eaHi, R[6]!, R[7]!); c.wr64((c.eaLo + 8) | 0, c.eaHi, R[2]!, R[3]!);
    c.lz.setEager(c.lz.get() | 0x40);
  } else {
    c.wr64(c.eaLo, c.eaHi, a0, a1); c.wr64((c.eaLo + 8) | 0, c.eaHi, b0, b1);
    R[0] = a0; R[1] = a1; R[4] = b0; R[5] = b1;
    c.lz.setEager(c.lz.get() & ~0x40);
  }
}

/** CBW/CWDE/CDQE (i.sub 0) and CWD/CDQ/CQO (i.sub 1). */
export function hConvert(c: Cpu, i: Insn): void {
  const R = c.regs;
  const size = i.size;
  if (i.sub === 0) {
    if (size === 2) c.setReg(0, 2, (R[0]! << 24) >> 24, 0);
    else if (size === 4) c.setReg(0, 4, (R[0]! << 16) >> 16, 0);
    else { R[1] = R[0]! >> 31; }
  } else {
    if (size === 2) c.setReg(2, 2, (R[0]! << 16) >> 31, 0);
    else if (size === 4) c.setReg(2, 4, R[0]! >> 31, 0);
    else { const s = R[1]! >> 31; R[4] = s; R[5] = s; }
  }
}

// ---------------------------------------------------------------------------------------------
// Decimal adjust (legacy and compatibility mode only; the decoder makes them #UD in 64-bit mode)

/** i.sub of hBcd. */
export const BCD_AAA = 0, BCD_AAS = 1, BCD_DAA = 2, BCD_DAS = 3, BCD_AAM = 4, BCD_AAD = 5;

/**
 * AAA, AAS, DAA, DAS, AAM imm8, AAD imm8 (i.sub = BCD_*, imm8 in i.imm) as the SDM vol. 2
 * pseudocode says. Flags the SDM leaves undefined: AAA/AAS set SF ZF PF from the final AL and
 * clear OF; DAA/DAS clear OF; AAM/AAD clear OF AF CF.
 */
export function hBcd(c: Cpu, i: Insn): void {
  const R = c.regs;
  const ax = R[0]! & 0xffff;
  let al = ax & 0xff, ah = ax >>> 8;
  const f = c.lz.get();
  let flags = 0;
  switch (i.sub) {
    case BCD_AAA: case BCD_AAS: {
      if ((al & 0xf) > 9 || (f & FLAG_AF)) {
        // AX + 106H / AX - 6 then AH - 1: the carry or borrow of AL reaches AH.
        const v = i.sub === BCD_AAA ? ax + 0x106 : ax - 6 - 0x100;
        al = v & 0xf; ah = (v >>> 8) & 0xff;
        flags = FLAG_AF | FLAG_CF;
      } else al &= 0xf;
      flags |= alu.szp(al, 0, 1);
      break;
    }
    case BCD_DAA: case BCD_DAS: {
      const oldAl = al, oldCf = f & FLAG_CF;
      const sub = i.sub === BCD_DAS;
      if ((al & 0xf) > 9 || (f & FLAG_AF)) {
        const v = sub ? al - 6 : al + 6;
        al = v & 0xff;
        flags = FLAG_AF | oldCf | (v > 0xff || v < 0 ? FLAG_CF : 0);
      }
      if (oldAl > 0x99 || oldCf) { al = (sub ? al - 0x60 : al + 0x60) & 0xff; flags |= FLAG_CF; }
      flags |= alu.szp(al, 0, 1);
      break;
    }
    case BCD_AAM: {
      const n = i.imm & 0xff;
      if (n === 0) c.fault(EXC_DE);
      ah = (al / n) | 0; al = al % n;
      flags = alu.szp(al, 0, 1);
      break;
    }
    default: { // AAD
      al = (al + ah * (i.imm & 0xff)) & 0xff; ah = 0;
      flags = alu.szp(al, 0, 1);
    }
  }
  R[0] = (R[0]! & ~0xffff) | (ah << 8) | al;
  c.lz.setEager(flags);
}

// ---------------------------------------------------------------------------------------------
// Conditions

export function hCmov(c: Cpu, i: Insn): void {
  const v = rdOp(c, i, i.o1, i.size), vh = c.hi;
  if (c.lz.cond(i.sub)) c.setReg(i.o0, i.size, v, vh);
  else if (i.size === 4) c.regs[(i.o0 << 1) + 1] = 0; // a 32-bit CMOV zero-extends even when false
}

export function hSetcc(c: Cpu, i: Insn): void {
  const v = c.lz.cond(i.sub) ? 1 : 0;
  if (i.o0 === MEM) { ea(c, i); c.wr8(c.eaLo, c.eaHi, v); } else c.setReg(i.o0, 1, v, 0);
}

/** Sets RIP to next + rel, truncated to the operand size. */
function jumpRel(c: Cpu, i: Insn): void {
  if (i.size === 8 || c.long64) {
    const s = (c.ripLo >>> 0) + i.rel;
    const lo = s >>> 0;
    c.ripHi = (c.ripHi + (s - lo) / TWO32) | 0;
    c.ripLo = lo;
  } else {
    c.ripLo = i.size === 2 ? (c.ripLo + i.rel) & 0xffff : (c.ripLo + i.rel) >>> 0;
  }
}

export function hJcc(c: Cpu, i: Insn): void {
  if (c.lz.cond(i.sub)) jumpRel(c, i);
}

export function hJmpRel(c: Cpu, i: Insn): void {
  jumpRel(c, i);
}

/** Sets RIP from (lo, hi) as a near indirect target of the operand size. */
function jumpAbs(c: Cpu, size: number, lo: number, hi: number): void {
  if (size === 8) { c.ripLo = lo >>> 0; c.ripHi = hi | 0; } else { c.ripLo = (size === 2 ? lo & 0xffff : lo) >>> 0; c.ripHi = 0; }
}

export function hJmpInd(c: Cpu, i: Insn): void {
  const v = rdOp(c, i, i.o0, i.size);
  jumpAbs(c, i.size, v, c.hi);
}

export function hCallRel(c: Cpu, i: Insn): void {
  c.push(c.ripLo | 0, c.ripHi, i.size);
  jumpRel(c, i);
}

export function hCallInd(c: Cpu, i: Insn): void {
  const v = rdOp(c, i, i.o0, i.size), vh = c.hi;
  c.push(c.ripLo | 0, c.ripHi, i.size);
  jumpAbs(c, i.size, v, vh);
}

export function hRet(c: Cpu, i: Insn): void {
  const v = c.pop(i.size), vh = c.hi;
  jumpAbs(c, i.size, v, vh);
  if (i.imm) addSp(c, i.imm);
}

function addSp(c: Cpu, n: number): void {
  const R = c.regs;
  if (c.stackSize === 8) { const s = (R[8]! >>> 0) + n; R[8] = s | 0; if (s >= TWO32) R[9] = (R[9]! + 1) | 0; }
  else if (c.stackSize === 4) R[8] = (R[8]! + n) | 0;
  else R[8] = (R[8]! & ~0xffff) | ((R[8]! + n) & 0xffff);
}

/** LOOP (sub 0), LOOPE (1), LOOPNE (2), JrCXZ (3). */
export function hLoop(c: Cpu, i: Insn): void {
  const R = c.regs;
  const as = i.asz;
  let zero: boolean;
  if (i.sub === 3) zero = as === 8 ? (R[2]! | R[3]!) === 0 : as === 4 ? R[2] === 0 : (R[2]! & 0xffff) === 0;
  else {
    if (as === 8) { const d = (R[2]! >>> 0) - 1; R[2] = d | 0; if (d < 0) R[3] = (R[3]! - 1) | 0; zero = (R[2]! | R[3]!) === 0; }
    else if (as === 4) { R[2] = (R[2]! - 1) | 0; R[3] = 0; zero = R[2] === 0; }
    else { R[2] = (R[2]! & ~0xffff) | ((R[2]! - 1) & 0xffff); zero = (R[2]! & 0xffff) === 0; }
  }
  let take: boolean;
  switch (i.sub) {
    case 0: take = !zero; break;
    case 1: take = !zero && c.lz.zf() !== 0; break;
    case 2: take = !zero && c.lz.zf() === 0; break;
    default: take = zero;
  }
  if (take) jumpRel(c, i);
}

// ---------------------------------------------------------------------------------------------
// Stack

export function hPush(c: Cpu, i: Insn): void {
  const v = rdOp(c, i, i.o0, i.size);
  c.push(v, c.hi, i.size);
}

/** PUSH r64 fast path. */
export function hPushR64(c: Cpu, i: Insn): void {
  const R = c.regs, r = i.o0 << 1;
  c.push(R[r]!, R[r + 1]!, 8);
}

export function hPop(c: Cpu, i: Insn): void {
  const size = i.size;
  if (i.o0 === MEM) {
    // The address is computed after RSP is incremented (SDM POP): pop into a temporary first.
    const R = c.regs;
    const sp0 = R[8]!, sp1 = R[9]!;
    const v = c.pop(size), vh = c.hi;
    ea(c, i);
    try { c.wr(c.eaLo, c.eaHi, size, v, vh); } catch (e) { R[8] = sp0; R[9] = sp1; throw e; }
    return;
  }
  const v = c.pop(size);
  c.setReg(i.o0, size, v, c.hi);
}

/**
 * PUSHA/PUSHAD (i.size 2 or 4): AX CX DX BX, the SP/ESP from before the first push, BP SI DI (SDM
 * PUSHA). A fault on any store leaves every register as it was (the stores before it may have been made,
 * as on a CPU: the instruction restarts).
 */
export function hPusha(c: Cpu, i: Insn): void {
  const R = c.regs;
  const size = i.size;
  const sp0 = R[8]!, sp1 = R[9]!;
  try {
    for (let r = 0; r < 8; r++) c.push(r === 4 ? sp0 : R[r << 1]!, 0, size);
  } catch (e) { R[8] = sp0; R[9] = sp1; throw e; }
}

const POPA_VALUES = new Int32Array(8);

/**
 * POPA/POPAD: DI SI BP, the SP/ESP slot skipped, BX DX CX AX (SDM POPA), then SP/ESP past the eight
 * slots. Every slot is read before any register is written, so a fault changes nothing.
 */
export function hPopa(c: Cpu, i: Insn): void {
  const size = i.size;
  for (let k = 0; k < 8; k++) if (k !== 3) POPA_VALUES[7 - k] = c.peekStack(k * size, size);
  for (let r = 0; r < 8; r++) if (r !== 4) c.setReg(r, size, POPA_VALUES[r]!, 0);
  addSp(c, 8 * size);
}

/** BOUND r, m (i.size 2 or 4): #BR unless lower <= r <= upper, all signed, the bounds at m and m + size. */
export function hBound(c: Cpu, i: Insn): void {
  const size = i.size;
  ea(c, i);
  const lo = c.eaLo, hi = c.eaHi;
  const shift = 32 - 8 * size;
  const lower = (c.rd(lo, hi, size) << shift) >> shift;
  const n = (lo >>> 0) + size;
  const upper = (c.rd(n | 0, n >= TWO32 ? hi + 1 : hi, size) << shift) >> shift;
  const v = (c.getReg(i.o0, size) << shift) >> shift;
  if (v < lower || v > upper) c.fault(EXC_BR);
}

export function hLeave(c: Cpu, i: Insn): void {
  const R = c.regs;
  const ss = c.stackSize;
  const sp0 = R[8]!, sp1 = R[9]!;
  if (ss === 8) { R[8] = R[10]!; R[9] = R[11]!; } else if (ss === 4) R[8] = R[10]!; else R[8] = (R[8]! & ~0xffff) | (R[10]! & 0xffff);
  try {
    const v = c.pop(i.size);
    c.setReg(5, i.size, v, c.hi);
  } catch (e) { R[8] = sp0; R[9] = sp1; throw e; }
}

export function hEnter(c: Cpu, i: Insn): void {
  const R = c.regs;
  const size = i.size;
  const alloc = i.imm & 0xffff;
  const level = i.imm2 & 31;
  const bp = c.getReg(5, size), bph = c.hi;
  c.push(bp, bph, size);
  const frameLo = R[8]!, frameHi = R[9]!;
  for (let k = 1; k < level; k++) {
    // Copy the enclosing frame pointers (rare).
    const off = k * size;
    let aLo: number, aHi = 0;
    if (c.stackSize === 8) { const s = (bp >>> 0) + (bph >>> 0) * TWO32 - off; aLo = s % TWO32 | 0; aHi = Math.floor(s / TWO32) | 0; }
    else aLo = ((bp - off) & (c.stackSize === 4 ? -1 : 0xffff)) + c.effBaseLo[2]!;
    const v = c.rd(aLo, aHi, size);
    c.push(v, c.hi, size);
  }
  if (level > 0) c.push(frameLo, frameHi, size);
  c.setReg(5, size, frameLo, frameHi);
  addSp(c, -alloc);
}

// ---------------------------------------------------------------------------------------------
// Flags

export function hFlagOp(c: Cpu, i: Insn): void {
  const f = c.lz.get();
  switch (i.sub) {
    case 0: c.lz.setEager(f & ~FLAG_CF); return; // CLC
    case 1: c.lz.setEager(f | FLAG_CF); return; // STC
    case 2: c.lz.setEager(f ^ FLAG_CF); return; // CMC
    case 3: c.fl &= ~FLAG_DF; return; // CLD
    case 4: c.fl |= FLAG_DF; return; // STD
  }
}

export function hLahf(c: Cpu, _i: Insn): void {
  c.setReg(16, 1, (c.lz.get() | 2) & 0xd7, 0);
}

export function hSahf(c: Cpu, _i: Insn): void {
  const ah = (c.regs[0]! >> 8) & 0xd5;
  c.lz.setEager((c.lz.get() & FLAG_OF) | ah);
}

export function hXlat(c: Cpu, i: Insn): void {
  const R = c.regs;
  i.base = 3; i.index = -1; i.disp = R[0]! & 0xff;
  ea(c, i);
  c.setReg(0, 1, c.rd8(c.eaLo, c.eaHi), 0);
}

export function hNop(_c: Cpu, _i: Insn): void {}

// ---------------------------------------------------------------------------------------------
// String instructions. i.sub: 0 movs, 1 cmps, 2 stos, 3 lods, 4 scas. Segment of the source in i.seg.

/** Address of rSI/rDI under the address size, with the segment base: into eaLo/eaHi. */
function strAddr(c: Cpu, reg: number, seg: number, asz: number): void {
  const R = c.regs;
  if (asz === 8) {
    const s = (R[reg << 1]! >>> 0) + (c.effBaseLo[seg]! >>> 0);
    const lo = s >>> 0;
    c.eaLo = lo | 0; c.eaHi = (R[(reg << 1) + 1]! + c.effBaseHi[seg]! + (s - lo) / TWO32) | 0;
    return;
  }
  const off = asz === 4 ? R[reg << 1]! >>> 0 : R[reg << 1]! & 0xffff;
  if (c.long64) {
    const s = off + (c.effBaseLo[seg]! >>> 0);
    const lo = s >>> 0;
    c.eaLo = lo | 0; c.eaHi = (c.effBaseHi[seg]! + (s - lo) / TWO32) | 0;
  } else { c.eaLo = (off + c.effBaseLo[seg]!) | 0; c.eaHi = 0; }
}

/** Adds `d` to rSI/rDI/rCX under the address size. */
export function stepReg(c: Cpu, reg: number, d: number, asz: number): void {
  const R = c.regs;
  const k = reg << 1;
  if (asz === 8) { const s = (R[k]! >>> 0) + d; const lo = s >>> 0; R[k] = lo | 0; R[k + 1] = (R[k + 1]! + (s - lo) / TWO32) | 0; }
  else if (asz === 4) { R[k] = (R[k]! + d) | 0; R[k + 1] = 0; }
  else R[k] = (R[k]! & ~0xffff) | ((R[k]! + d) & 0xffff);
}

export function countZero(c: Cpu, asz: number): boolean {
  const R = c.regs;
  return asz === 8 ? (R[2]! | R[3]!) === 0 : asz === 4 ? R[2] === 0 : (R[2]! & 0xffff) === 0;
}

/** Iterations a REP string instruction may do before the run loop looks at events again. */
const REP_CHUNK = 4096;
const PAGE = 4096;

/**
 * REP STOS and REP MOVS with 64-bit addresses counting up (DF clear), as Linux's memset,
 * clear_user and copy routines run them: the elements that lie in one page of the destination
 * (and of the source) are done at once, with one translation per page instead of one per element.
 * What the guest can see is what the element-by-element loop does: the page is translated (and
 * may fault, or be left to MMIO) exactly where the first of its elements would be; rDI, rSI and
 * rCX move by the elements done, so a fault or exit at the next page finds them where the
 * element loop would have left them. Returns the elements done, 0 when this step must go
 * element by element: fewer than two elements fit, a page is not RAM (MMIO), a debugger watches
 * memory, or MOVS overlaps forward (the destination starts inside the source, where
 * element-by-element copying repeats the leading bytes and a block copy would not).
 */
function repBlockStep(c: Cpu, i: Insn, budget: number): number {
  const size = i.size, R = c.regs;
  let k = R[3] !== 0 ? budget : Math.min(R[2]! >>> 0, budget); // rCX's high half set: more than any budget
  strAddr(c, 7, S_ES, 8);
  const dLo = c.eaLo, dHi = c.eaHi;
  k = Math.min(k, Math.floor((PAGE - (dLo & 0xfff)) / size));
  const movs = i.sub === 0;
  let sLo = 0, sHi = 0;
  if (movs) {
    strAddr(c, 6, i.seg, 8);
    sLo = c.eaLo; sHi = c.eaHi;
    k = Math.min(k, Math.floor((PAGE - (sLo & 0xfff)) / size));
  }
  if (k < 2) return 0;
  let src: Uint8Array | null = null, sOff = 0;
  if (movs) {
    c.translate(sLo, sHi, TLB_READ, size); // the first element's read comes first, as in the loop
    if (c.tMmio) { c.tMmio = false; return 0; }
    src = c.tBytes; sOff = c.tOff;
  }
  c.translate(dLo, dHi, TLB_WRITE, size);
  if (c.tMmio) { c.tMmio = false; return 0; }
  const dst = c.tBytes, dOff = c.tOff, bytes = k * size;
  if (src !== null) {
    if (src.buffer === dst.buffer && src.byteOffset + sOff < dst.byteOffset + dOff && dst.byteOffset + dOff < src.byteOffset + sOff + bytes) return 0;
    dst.set(src.subarray(sOff, sOff + bytes), dOff); // a backward overlap copies as the loop does
  } else {
    const v = c.getReg(0, size), vh = c.hi;
    const dv = c.tDv;
    if (size === 1) dst.fill(v, dOff, dOff + bytes);
    else {
      if (size === 2) dv.setUint16(dOff, v, true);
      else { dv.setInt32(dOff, v, true); if (size === 8) dv.setInt32(dOff + 4, vh, true); }
      for (let done = size; done < bytes; done *= 2) dst.copyWithin(dOff + done, dOff, dOff + Math.min(done, bytes - done));
    }
    stepReg(c, 7, bytes, 8);
    stepReg(c, 1, -k, 8);
    return k;
  }
  stepReg(c, 6, bytes, 8);
  stepReg(c, 7, bytes, 8);
  stepReg(c, 1, -k, 8);
  return k;
}

export function hString(c: Cpu, i: Insn): void {
  const size = i.size, asz = i.asz;
  const delta = (c.fl & FLAG_DF) !== 0 ? -size : size;
  const rep = i.rep;
  const block = rep !== 0 && asz === 8 && delta > 0 && (i.sub === 0 || i.sub === 2) && c.watch === null;
  for (let n = 0; ; n++) {
    if (rep !== 0) {
      if (countZero(c, asz)) return;
      if (n >= REP_CHUNK) { c.ripLo = c.curLo; c.ripHi = c.curHi; return; } // resume later
    }
    if (block) {
      const k = repBlockStep(c, i, REP_CHUNK - n);
      if (k > 0) { n += k - 1; continue; }
    }
    switch (i.sub) {
      case 0: { // MOVS
        strAddr(c, 6, i.seg, asz);
        const v = c.rd(c.eaLo, c.eaHi, size), vh = c.hi;
        strAddr(c, 7, S_ES, asz);
        c.wr(c.eaLo, c.eaHi, size, v, vh);
        stepReg(c, 6, delta, asz); stepReg(c, 7, delta, asz);
        break;
      }
      case 1: { // CMPS
        strAddr(c, 6, i.seg, asz);
        const a = c.rd(c.eaLo, c.eaHi, size), ah = c.hi;
        strAddr(c, 7, S_ES, asz);
        const b = c.rd(c.eaLo, c.eaHi, size), bh = c.hi;
        aluCore(c, alu.ALU_CMP, size, a, ah, b, bh);
        stepReg(c, 6, delta, asz); stepReg(c, 7, delta, asz);
        break;
      }
      case 2: { // STOS
        strAddr(c, 7, S_ES, asz);
        const v = c.getReg(0, size);
        c.wr(c.eaLo, c.eaHi, size, v, c.hi);
        stepReg(c, 7, delta, asz);
        break;
      }
      case 3: { // LODS
        strAddr(c, 6, i.seg, asz);
        const v = c.rd(c.eaLo, c.eaHi, size);
        c.setReg(0, size, v, c.hi);
        stepReg(c, 6, delta, asz);
        break;
      }
      default: { // SCAS
        strAddr(c, 7, S_ES, asz);
        const b = c.rd(c.eaLo, c.eaHi, size), bh = c.hi;
        const a = c.getReg(0, size), ah = c.hi;
        aluCore(c, alu.ALU_CMP, size, a, ah, b, bh);
        stepReg(c, 7, delta, asz);
        break;
      }
    }
    if (rep === 0) return;
    stepReg(c, 1, -1, asz);
    if (i.sub === 1 || i.sub === 4) {
      const zf = c.lz.zf() !== 0;
      if (rep === 0xf3 ? !zf : zf) return;
    }
  }
}
