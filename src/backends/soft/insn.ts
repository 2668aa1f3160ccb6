/**
 * The soft CPU's pre-decoded instruction: what the decoder produced, flattened into one fixed-shape
 * record with its handler chosen at decode time (so the interpreter does one indirect call per
 * instruction, and a block compiler can later turn the same records into JS source).
 *
 * Operand codes (`o0`, `o1`, `o2`): 0-15 a GPR, 16-19 AH CH DH BH, MEM the instruction's memory
 * operand (described by seg/base/index/scale/disp/dispHi), IMM the immediate, NONE absent. Other
 * register classes (segment, control, debug, XMM) store their number and are read by the handler
 * that knows the class.
 */
import { TWO32 } from '../../common/bits.js';
import type { Cpu } from './cpu.js';

export const MEM = -1, IMM = -2, NONE = -3;

export type Handler = (c: Cpu, i: Insn) => void;

export class Insn {
  fn: Handler;
  /** Offset of the instruction from its block's start, and its length. */
  off = 0;
  len = 0;
  /** Operand size (1, 2, 4, 8) and address size (2, 4, 8). */
  size = 4;
  asz = 8;
  o0 = NONE;
  o1 = NONE;
  o2 = NONE;
  /** Memory operand. base/index: -1 none, 16 = RIP. */
  seg = 3;
  base = -1;
  index = -1;
  scale = 1;
  disp = 0;
  dispHi = 0;
  /** Immediate, extended to the operand size (hi for 8-byte operands). */
  imm = 0;
  immHi = 0;
  /**
   * A second field for the handler, not always an immediate: ENTER's level, the imm8 count of
   * SHLD/SHRD or a far pointer's selector; the ST(i) number of an x87 register form (ops-x87.ts);
   * the operand-form bits (F_*) of an SSE/MMX instruction (ops-sse.ts).
   */
  imm2 = 0;
  /** Branch displacement. */
  rel = 0;
  /** Handler-specific selector: condition code, ALU sub-operation, source size... */
  sub = 0;
  /** 0, 0xF3 or 0xF2 (string instructions), LOCK seen. */
  rep = 0;
  /** Mnemonic id (x86/decoder.ts MNEMONICS) for traces and reasons. */
  mnem = 0;
  /** Ends its block (changes RIP or the mode, or may iterate). */
  term = false;

  constructor(fn: Handler) {
    this.fn = fn;
  }
}

/** Computes the linear address of `i`'s memory operand into c.eaLo / c.eaHi. */
export function ea(c: Cpu, i: Insn): void {
  const R = c.regs;
  const b = i.base, x = i.index, s = i.seg;
  if (i.asz === 8) {
    let sum = i.disp >>> 0;
    let hi = i.dispHi;
    if (b >= 0) {
      if (b === 16) { sum += c.ripLo >>> 0; hi += c.ripHi; } else { sum += R[b << 1]! >>> 0; hi += R[(b << 1) + 1]!; }
    }
    if (x >= 0) { sum += (R[x << 1]! >>> 0) * i.scale; hi += R[(x << 1) + 1]! * i.scale; }
    sum += c.effBaseLo[s]! >>> 0;
    hi += c.effBaseHi[s]!;
    const lo = sum >>> 0;
    c.eaLo = lo | 0;
    c.eaHi = (hi + (sum - lo) / TWO32) | 0;
    return;
  }
  let a = i.disp;
  if (b >= 0) a += b === 16 ? c.ripLo | 0 : R[b << 1]!;
  if (x >= 0) a += Math.imul(R[x << 1]!, i.scale);
  a = i.asz === 4 ? a | 0 : a & 0xffff;
  if (c.long64) {
    const sum = (a >>> 0) + (c.effBaseLo[s]! >>> 0);
    const lo = sum >>> 0;
    c.eaLo = lo | 0;
    c.eaHi = (c.effBaseHi[s]! + (sum - lo) / TWO32) | 0;
  } else {
    c.eaLo = (a + c.effBaseLo[s]!) | 0;
    c.eaHi = 0;
  }
}

/** The effective address (offset, no segment base) of `i`'s memory operand, for LEA: lo, hi in c.hi. */
export function effOffset(c: Cpu, i: Insn): number {
  const R = c.regs;
  const b = i.base, x = i.index;
  if (i.asz === 8) {
    let sum = i.disp >>> 0;
    let hi = i.dispHi;
    if (b >= 0) {
      if (b === 16) { sum += c.ripLo >>> 0; hi += c.ripHi; } else { sum += R[b << 1]! >>> 0; hi += R[(b << 1) + 1]!; }
    }
    if (x >= 0) { sum += (R[x << 1]! >>> 0) * i.scale; hi += R[(x << 1) + 1]! * i.scale; }
    const lo = sum >>> 0;
    c.hi = (hi + (sum - lo) / TWO32) | 0;
    return lo | 0;
  }
  let a = i.disp;
  if (b >= 0) a += b === 16 ? c.ripLo | 0 : R[b << 1]!;
  if (x >= 0) a += Math.imul(R[x << 1]!, i.scale);
  c.hi = 0;
  return i.asz === 4 ? a | 0 : a & 0xffff;
}

/** Reads operand `code` of `size` bytes (lo returned, hi in c.hi for size 8). Computes the EA for MEM. */
export function rdOp(c: Cpu, i: Insn, code: number, size: number): number {
  if (code >= 0) return c.getReg(code, size);
  if (code === MEM) {
    ea(c, i);
    return c.rd(c.eaLo, c.eaHi, size);
  }
  c.hi = i.immHi;
  return i.imm;
}

/** Writes operand `code` (a register, or MEM at the EA computed by the last rdOp/ea). */
export function wrOp(c: Cpu, code: number, size: number, lo: number, hi: number): void {
  if (code >= 0) c.setReg(code, size, lo, hi);
  else c.wr(c.eaLo, c.eaHi, size, lo, hi);
}

/** Value masks per operand size (size 8: per half). */
export const MASK = [0, 0xff, 0xffff, 0, 0xffffffff, 0, 0, 0, 0xffffffff];
