/**
 * Runs one alu.ts operation by name with BigInt operands, in the same shape as the host-CPU oracle
 * and the BigInt reference model (see host-cpu-oracle.ts for the meaning of a, b, c, r1, r2).
 */
import * as alu from '../../../src/x86/alu.js';
import type { OperandSize } from '../../../src/x86/alu.js';

export interface OpResult { r1: bigint; r2: bigint; flags: number; fault?: boolean }

const lo = (v: bigint): number => Number(BigInt.asUintN(32, v));
const hi = (v: bigint): number => Number(BigInt.asUintN(32, v >> 32n));
const join = (l: number, h: number): bigint => (BigInt(h >>> 0) << 32n) | BigInt(l >>> 0);

type Fn = (a: bigint, b: bigint, c: bigint, s: OperandSize, f: number) => boolean | void;

const FNS: Record<string, Fn> = {
  add: (a, b, _c, s) => alu.add(lo(a), hi(a), lo(b), hi(b), s),
  adc: (a, b, _c, s, f) => alu.adc(lo(a), hi(a), lo(b), hi(b), s, f),
  sub: (a, b, _c, s) => alu.sub(lo(a), hi(a), lo(b), hi(b), s),
  sbb: (a, b, _c, s, f) => alu.sbb(lo(a), hi(a), lo(b), hi(b), s, f),
  cmp: (a, b, _c, s) => alu.cmp(lo(a), hi(a), lo(b), hi(b), s),
  and: (a, b, _c, s) => alu.and(lo(a), hi(a), lo(b), hi(b), s),
  or: (a, b, _c, s) => alu.or(lo(a), hi(a), lo(b), hi(b), s),
  xor: (a, b, _c, s) => alu.xor(lo(a), hi(a), lo(b), hi(b), s),
  test: (a, b, _c, s) => alu.test(lo(a), hi(a), lo(b), hi(b), s),
  neg: (a, _b, _c, s) => alu.neg(lo(a), hi(a), s),
  not: (a, _b, _c, s, f) => alu.not(lo(a), hi(a), s, f),
  inc: (a, _b, _c, s, f) => alu.inc(lo(a), hi(a), s, f),
  dec: (a, _b, _c, s, f) => alu.dec(lo(a), hi(a), s, f),
  bswap: (a, _b, _c, s, f) => alu.bswap(lo(a), hi(a), s, f),
  shl: (a, b, _c, s, f) => alu.shl(lo(a), hi(a), lo(b) & 0xff, s, f),
  shr: (a, b, _c, s, f) => alu.shr(lo(a), hi(a), lo(b) & 0xff, s, f),
  sar: (a, b, _c, s, f) => alu.sar(lo(a), hi(a), lo(b) & 0xff, s, f),
  rol: (a, b, _c, s, f) => alu.rol(lo(a), hi(a), lo(b) & 0xff, s, f),
  ror: (a, b, _c, s, f) => alu.ror(lo(a), hi(a), lo(b) & 0xff, s, f),
  rcl: (a, b, _c, s, f) => alu.rcl(lo(a), hi(a), lo(b) & 0xff, s, f),
  rcr: (a, b, _c, s, f) => alu.rcr(lo(a), hi(a), lo(b) & 0xff, s, f),
  bt: (a, b, _c, s, f) => alu.bt(lo(a), hi(a), lo(b), s, f),
  bts: (a, b, _c, s, f) => alu.bts(lo(a), hi(a), lo(b), s, f),
  btr: (a, b, _c, s, f) => alu.btr(lo(a), hi(a), lo(b), s, f),
  btc: (a, b, _c, s, f) => alu.btc(lo(a), hi(a), lo(b), s, f),
  imul2: (a, b, _c, s, f) => alu.imul(lo(a), hi(a), lo(b), hi(b), s, f),
  mul: (a, b, _c, s, f) => alu.mul(lo(a), hi(a), lo(b), hi(b), s, f),
  imul: (a, b, _c, s, f) => alu.imul(lo(a), hi(a), lo(b), hi(b), s, f),
  div: (a, b, c, s, f) => alu.div(lo(a), hi(a), lo(c), hi(c), lo(b), hi(b), s, f),
  idiv: (a, b, c, s, f) => alu.idiv(lo(a), hi(a), lo(c), hi(c), lo(b), hi(b), s, f),
  bsf: (a, b, _c, s) => alu.bsf(lo(a), hi(a), s, lo(b), hi(b)),
  bsr: (a, b, _c, s) => alu.bsr(lo(a), hi(a), s, lo(b), hi(b)),
  tzcnt: (a, _b, _c, s, f) => alu.tzcnt(lo(a), hi(a), s, f),
  lzcnt: (a, _b, _c, s, f) => alu.lzcnt(lo(a), hi(a), s, f),
  popcnt: (a, _b, _c, s) => alu.popcnt(lo(a), hi(a), s),
  cmpxchg: (a, b, c, s) => alu.cmpxchg(lo(a), hi(a), lo(b), hi(b), lo(c), hi(c), s),
  xadd: (a, b, _c, s) => alu.xadd(lo(a), hi(a), lo(b), hi(b), s),
};

/** Ops whose second result (r2) is meaningful. */
const HAS_R2 = new Set(['mul', 'imul', 'div', 'idiv', 'cmpxchg', 'xadd']);

export function runAlu(name: string, size: OperandSize, a: bigint, b: bigint, c: bigint, flags: number): OpResult {
  const fn = FNS[name];
  if (!fn) throw new Error(`no alu adapter for ${name}`);
  const o = alu.aluOut;
  o.lo2 = 0; o.hi2 = 0;
  const ok = fn(a, b, c, size, flags);
  if (ok === false) return { r1: 0n, r2: 0n, flags, fault: true };
  // CMP and TEST do not write their destination: report it unchanged, as the CPU leaves it.
  if (name === 'cmp' || name === 'test') return { r1: BigInt.asUintN(size * 8, a), r2: 0n, flags: o.flags };
  return { r1: join(o.lo, o.hi), r2: HAS_R2.has(name) ? join(o.lo2, o.hi2) : 0n, flags: o.flags };
}

export const ALU_OP_NAMES = Object.keys(FNS);
