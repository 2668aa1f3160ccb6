import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as alu from '../../src/x86/alu.js';
import { LazyFlags, LAZY_ADC, LAZY_ADD, LAZY_DEC, LAZY_INC, LAZY_LOGIC, LAZY_SBB, LAZY_SUB, aluOut, type OperandSize } from '../../src/x86/alu.js';
import {
  FLAG_AF, FLAG_CF, FLAG_OF, FLAG_PF, FLAG_SF, FLAG_ZF, evalCondition,
} from '../../src/x86/flags.js';
import { ALU_OP_NAMES, runAlu } from './helpers/alu-adapter.js';
import { reference } from './helpers/alu-reference.js';
import { Rng, operand, randomFlags, secondOperand, thirdOperand } from './helpers/alu-cases.js';

const SIZES: readonly OperandSize[] = [1, 2, 4, 8];
const NO_BYTE = new Set(['bt', 'bts', 'btr', 'btc', 'bsf', 'bsr', 'tzcnt', 'lzcnt', 'popcnt', 'imul2']);
const hex = (v: bigint): string => '0x' + v.toString(16);

test('every op at every size agrees with the BigInt reference model on random operands', () => {
  const rng = new Rng(0x5eed_a100_0000_0001n);
  for (const name of ALU_OP_NAMES) {
    for (const size of SIZES) {
      if (NO_BYTE.has(name) && size === 1) continue;
      if (name === 'bswap' && size < 4) continue;
      for (let i = 0; i < 600; i++) {
        const a = operand(rng, size), b = secondOperand(rng, name, size), c = thirdOperand(rng, name, size, b);
        const f = randomFlags(rng);
        const got = runAlu(name, size, a, b, c, f);
        const want = reference(name, size, a, b, c, f);
        const what = `${name}/${size} a=${hex(a)} b=${hex(b)} c=${hex(c)} flags=${f.toString(16)}`;
        assert.equal(!!got.fault, !!want.fault, `#DE ${what}`);
        if (want.fault) continue;
        assert.equal(hex(got.r1), hex(want.r1), `r1 ${what}`);
        assert.equal(hex(got.r2), hex(want.r2), `r2 ${what}`);
        assert.equal(got.flags.toString(16), want.flags.toString(16), `flags ${what}`);
      }
    }
  }
});

const ALL = FLAG_CF | FLAG_PF | FLAG_AF | FLAG_ZF | FLAG_SF | FLAG_OF;

test('hand vectors: ADD/SUB/INC/NEG flag edges', () => {
  alu.add(0x7f, 0, 1, 0, 1);
  assert.deepEqual([aluOut.lo, aluOut.flags], [0x80, FLAG_OF | FLAG_SF | FLAG_AF]);
  alu.add(0xff, 0, 1, 0, 1);
  assert.deepEqual([aluOut.lo, aluOut.flags], [0, FLAG_CF | FLAG_ZF | FLAG_AF | FLAG_PF]);
  alu.add(0xffffffff, 0xffffffff, 1, 0, 8);
  assert.deepEqual([aluOut.lo, aluOut.hi, aluOut.flags], [0, 0, FLAG_CF | FLAG_ZF | FLAG_AF | FLAG_PF]);
  alu.add(0xffffffff, 0x7fffffff, 1, 0, 8);
  assert.deepEqual([aluOut.lo, aluOut.hi, aluOut.flags], [0, 0x80000000, FLAG_OF | FLAG_SF | FLAG_AF | FLAG_PF]);
  alu.adc(0xffffffff, 0, 0, 0, 4, FLAG_CF);
  assert.deepEqual([aluOut.lo, aluOut.flags & FLAG_CF], [0, FLAG_CF]);
  alu.sub(0, 0, 1, 0, 2);
  assert.deepEqual([aluOut.lo, aluOut.flags], [0xffff, FLAG_CF | FLAG_SF | FLAG_AF | FLAG_PF]);
  alu.sub(0, 0x80000000, 1, 0, 8);
  assert.deepEqual([aluOut.lo, aluOut.hi, aluOut.flags], [0xffffffff, 0x7fffffff, FLAG_OF | FLAG_AF | FLAG_PF]);
  alu.sbb(5, 0, 5, 0, 4, FLAG_CF);
  assert.deepEqual([aluOut.lo, aluOut.flags & (FLAG_CF | FLAG_ZF)], [0xffffffff, FLAG_CF]);
  alu.inc(0xffffffff, 0xffffffff, 8, 0);
  assert.deepEqual([aluOut.lo, aluOut.hi, aluOut.flags], [0, 0, FLAG_ZF | FLAG_AF | FLAG_PF]);
  alu.dec(0x80, 0, 1, FLAG_CF);
  assert.deepEqual([aluOut.lo, aluOut.flags], [0x7f, FLAG_CF | FLAG_OF | FLAG_AF]);
  alu.neg(0x8000, 0, 2);
  assert.deepEqual([aluOut.lo, aluOut.flags], [0x8000, FLAG_CF | FLAG_OF | FLAG_SF | FLAG_PF]);
  alu.xor(0x1234, 0, 0x1234, 0, 4);
  assert.deepEqual([aluOut.lo, aluOut.flags], [0, FLAG_ZF | FLAG_PF]);
  alu.not(0, 0, 8, ALL);
  assert.deepEqual([aluOut.lo, aluOut.hi, aluOut.flags], [0xffffffff, 0xffffffff, ALL]);
});

test('hand vectors: shifts and rotates, count masking and count 0/1 rules', () => {
  alu.shl(0x80, 0, 1, 1, 0);
  assert.deepEqual([aluOut.lo, aluOut.flags], [0, FLAG_CF | FLAG_ZF | FLAG_PF | FLAG_OF | FLAG_AF]);
  alu.shl(0x81, 0, 33, 1, 0); // masked to 1
  assert.equal(aluOut.lo, 0x02);
  alu.shl(1, 0, 64, 8, ALL); // masked to 0: nothing changes
  assert.deepEqual([aluOut.lo, aluOut.hi, aluOut.flags], [1, 0, ALL]);
  alu.shl(1, 0, 63, 8, 0);
  assert.deepEqual([aluOut.lo, aluOut.hi], [0, 0x80000000]);
  alu.shr(0x80000000, 0, 1, 4, 0);
  assert.deepEqual([aluOut.lo, aluOut.flags & (FLAG_OF | FLAG_CF)], [0x40000000, FLAG_OF]);
  alu.shr(0xff, 0, 9, 1, 0); // past the width: zero, CF = 0
  assert.deepEqual([aluOut.lo, aluOut.flags & FLAG_CF], [0, 0]);
  alu.sar(0x80, 0, 9, 1, 0);
  assert.deepEqual([aluOut.lo, aluOut.flags & (FLAG_CF | FLAG_OF)], [0xff, FLAG_CF]);
  alu.sar(0, 0x80000000, 63, 8, 0);
  assert.deepEqual([aluOut.lo, aluOut.hi], [0xffffffff, 0xffffffff]);
  alu.rol(0x80000001, 0, 1, 4, FLAG_ZF);
  assert.deepEqual([aluOut.lo, aluOut.flags], [3, FLAG_CF | FLAG_OF | FLAG_ZF]);
  alu.ror(1, 0, 1, 8, 0);
  assert.deepEqual([aluOut.lo, aluOut.hi, aluOut.flags], [0, 0x80000000, FLAG_CF | FLAG_OF]);
  alu.rcl(0x80, 0, 1, 1, 0);
  assert.deepEqual([aluOut.lo, aluOut.flags], [0, FLAG_CF | FLAG_OF]);
  alu.rcl(0x80, 0, 9, 1, FLAG_CF); // 9 mod 9 = 0: value and CF unchanged
  assert.deepEqual([aluOut.lo, aluOut.flags & FLAG_CF], [0x80, FLAG_CF]);
  alu.rcr(1, 0, 1, 8, FLAG_CF);
  assert.deepEqual([aluOut.lo, aluOut.hi, aluOut.flags], [0, 0x80000000, FLAG_CF | FLAG_OF]);
});

test('hand vectors: MUL/IMUL/DIV/IDIV at 64 bits and #DE', () => {
  alu.mul(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 8, 0);
  assert.deepEqual([aluOut.lo, aluOut.hi, aluOut.lo2, aluOut.hi2], [1, 0, 0xfffffffe, 0xffffffff]);
  assert.equal(aluOut.flags, FLAG_CF | FLAG_OF);
  alu.imul(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 8, 0); // -1 * -1
  assert.deepEqual([aluOut.lo, aluOut.hi, aluOut.lo2, aluOut.hi2, aluOut.flags], [1, 0, 0, 0, 0]);
  alu.imul(0, 0x80000000, 0xffffffff, 0xffffffff, 8, 0); // INT64_MIN * -1 overflows
  assert.deepEqual([aluOut.lo, aluOut.hi, aluOut.lo2, aluOut.hi2, aluOut.flags], [0, 0x80000000, 0, 0, FLAG_CF | FLAG_OF]);
  assert.equal(alu.div(0, 0, 0, 0, 0, 0, 8, 0), false); // divide by zero
  assert.equal(alu.div(0, 0, 1, 0, 1, 0, 8, 0), false); // quotient overflow
  assert.equal(alu.div(0xffffffff, 0xffffffff, 0x7, 0, 10, 0, 8, 0), true); // (7 << 64 | 2^64 - 1) = 2^67 - 1
  assert.deepEqual([aluOut.lo, aluOut.hi, aluOut.lo2], [0xcccccccc, 0xcccccccc, 7]); // (2^67 - 1) / 10
  assert.equal(alu.div(0, 0, 0x1234, 0x5678, 0x1, 0x80000000, 8, 0), true); // divisor >= 2^32
  assert.equal(alu.idiv(0x80, 0, 0xff, 0, 0xff, 0, 1, 0), false); // -128 / -1
  assert.equal(alu.idiv(0, 0x80000000, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 8, 0), false);
  assert.equal(alu.idiv(0xfffffff9, 0, 0xffffffff, 0, 2, 0, 4, 0), true); // -7 / 2 = -3 rem -1
  assert.deepEqual([aluOut.lo, aluOut.lo2], [0xfffffffd, 0xffffffff]);
});

test('hand vectors: bit scans, counts, BSWAP, CMPXCHG, XADD, BT', () => {
  alu.bsf(0, 0, 8, 0x1234, 0x5678);
  assert.deepEqual([aluOut.lo, aluOut.hi, aluOut.flags], [0x1234, 0x5678, FLAG_ZF | FLAG_PF]);
  alu.bsr(0, 1, 8, 0, 0);
  assert.deepEqual([aluOut.lo, aluOut.flags], [32, 0]);
  alu.tzcnt(0, 0, 2, 0);
  assert.deepEqual([aluOut.lo, aluOut.flags], [16, FLAG_CF]);
  alu.lzcnt(1, 0, 8, 0);
  assert.equal(aluOut.lo, 63);
  alu.popcnt(0xffffffff, 0xffffffff, 8);
  assert.deepEqual([aluOut.lo, aluOut.flags], [64, 0]);
  alu.bswap(0x01020304, 0x05060708, 8, 0);
  assert.deepEqual([aluOut.lo, aluOut.hi], [0x08070605, 0x04030201]);
  alu.cmpxchg(5, 0, 5, 0, 9, 0, 4);
  assert.deepEqual([aluOut.lo, aluOut.lo2, aluOut.flags & FLAG_ZF], [9, 5, FLAG_ZF]);
  alu.cmpxchg(5, 0, 6, 0, 9, 0, 4);
  assert.deepEqual([aluOut.lo, aluOut.lo2, aluOut.flags & FLAG_ZF], [6, 6, 0]);
  alu.xadd(1, 0, 2, 0, 1);
  assert.deepEqual([aluOut.lo, aluOut.lo2], [3, 1]);
  alu.bts(0, 0, 35, 8, 0);
  assert.deepEqual([aluOut.lo, aluOut.hi, aluOut.flags], [0, 8, 0]);
  alu.btc(0, 0, 35, 4, FLAG_ZF); // index taken mod 32
  assert.deepEqual([aluOut.lo, aluOut.flags], [8, FLAG_ZF]);
});

test('group dispatch: aluBinary / aluShift match the named functions', () => {
  const rng = new Rng(99n);
  for (let i = 0; i < 2000; i++) {
    const size = SIZES[rng.int(4)]!;
    const a = operand(rng, size), b = operand(rng, size), f = randomFlags(rng);
    const lo = (v: bigint): number => Number(v & 0xffffffffn), hi = (v: bigint): number => Number(v >> 32n);
    const op = rng.int(8);
    alu.aluBinary(op, lo(a), hi(a), lo(b), hi(b), size, f);
    const got = [aluOut.lo, aluOut.hi, aluOut.flags];
    const name = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'][op]!;
    const want = reference(name, size, a, b, 0n, f);
    if (name !== 'cmp') assert.deepEqual(got.slice(0, 2), [lo(want.r1), hi(want.r1)]);
    assert.equal(got[2], want.flags, `${name}/${size}`);
    const sop = rng.int(8), n = rng.int(70);
    alu.aluShift(sop, lo(a), hi(a), n, size, f);
    const sname = ['rol', 'ror', 'rcl', 'rcr', 'shl', 'shr', 'shl', 'sar'][sop]!;
    const sw = reference(sname, size, a, BigInt(n), 0n, f);
    assert.deepEqual([aluOut.lo, aluOut.hi, aluOut.flags], [lo(sw.r1), hi(sw.r1), sw.flags], `${sname}/${size} ${n}`);
  }
});

test('LazyFlags: every flag and all 16 condition codes agree with the eager ALU', () => {
  const rng = new Rng(4242n);
  const lf = new LazyFlags();
  const lo = (v: bigint): number => Number(v & 0xffffffffn), hi = (v: bigint): number => Number(v >> 32n);
  const kinds = [LAZY_ADD, LAZY_ADC, LAZY_SUB, LAZY_SBB, LAZY_LOGIC, LAZY_INC, LAZY_DEC];
  for (let i = 0; i < 20000; i++) {
    const size = SIZES[rng.int(4)]!;
    const a = operand(rng, size);
    const b = rng.int(3) === 0 ? a : operand(rng, size);
    const f = randomFlags(rng);
    const kind = kinds[rng.int(kinds.length)]!;
    const cf = f & FLAG_CF;
    let bb = b, aux = 0;
    switch (kind) {
      case LAZY_ADD: alu.add(lo(a), hi(a), lo(b), hi(b), size); break;
      case LAZY_ADC: alu.adc(lo(a), hi(a), lo(b), hi(b), size, f); aux = cf; break;
      case LAZY_SUB: alu.sub(lo(a), hi(a), lo(b), hi(b), size); break;
      case LAZY_SBB: alu.sbb(lo(a), hi(a), lo(b), hi(b), size, f); aux = cf; break;
      case LAZY_LOGIC: alu.and(lo(a), hi(a), lo(b), hi(b), size); break;
      case LAZY_INC: alu.inc(lo(a), hi(a), size, f); bb = 1n; aux = cf; break;
      default: alu.dec(lo(a), hi(a), size, f); bb = 1n; aux = cf; break;
    }
    const eager = aluOut.flags;
    lf.record(kind, size, lo(a), hi(a), lo(bb), hi(bb), aluOut.lo, aluOut.hi, aux);
    const what = `kind ${kind} size ${size} a=${hex(a)} b=${hex(b)}`;
    assert.equal(lf.get(), eager, what);
    assert.equal(lf.cf(), eager & FLAG_CF, what);
    assert.equal(lf.zf() | lf.sf() | lf.pf() | lf.af() | lf.of(), eager & ~FLAG_CF, what);
    for (let cc = 0; cc < 16; cc++) assert.equal(lf.cond(cc), evalCondition(cc, eager), `${what} cc ${cc}`);
    lf.setEager(eager);
    for (let cc = 0; cc < 16; cc++) assert.equal(lf.cond(cc), evalCondition(cc, eager), `eager cc ${cc}`);
  }
});
