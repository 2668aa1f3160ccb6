/**
 * A slow, obviously-right BigInt model of the x86 ALU, written from the instruction definitions
 * (SDM vol. 2) independently of src/x86/alu.ts. Same shape as alu-adapter.ts. Where the SDM leaves
 * a flag undefined, the model states the choice alu.ts documents (AMD Zen behaviour).
 */
import type { OpResult } from './alu-adapter.js';

const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, OF = 0x800;
const STATUS = CF | PF | AF | ZF | SF | OF;

const u = (w: number, v: bigint): bigint => BigInt.asUintN(w, v);
const s = (w: number, v: bigint): bigint => BigInt.asIntN(w, v);
const bit = (v: bigint, i: number): number => Number((v >> BigInt(i)) & 1n);

function parityEven(r: bigint): boolean {
  let n = 0;
  for (let i = 0; i < 8; i++) n += bit(r, i);
  return n % 2 === 0;
}

/** ZF, SF, PF of a w-bit result. */
function szp(w: number, r: bigint): number {
  return (r === 0n ? ZF : 0) | (bit(r, w - 1) ? SF : 0) | (parityEven(r) ? PF : 0);
}

const fl = (cond: boolean, f: number): number => (cond ? f : 0);

export function reference(name: string, size: number, a0: bigint, b0: bigint, c0: bigint, fin: number): OpResult {
  const w = size * 8;
  const a = u(w, a0), b = u(w, b0), c = u(w, c0);
  const cin = BigInt(fin & CF);
  const keep = (mask: number): number => fin & mask;
  const W = 1n << BigInt(w);
  switch (name) {
    case 'add': case 'adc': case 'xadd': {
      const ci = name === 'adc' ? cin : 0n;
      const full = a + b + ci;
      const r = u(w, full);
      const sr = s(w, a) + s(w, b) + ci;
      const f = fl(full >= W, CF) | fl(((a & 15n) + (b & 15n) + ci) > 15n, AF) | szp(w, r) |
        fl(sr !== s(w, r), OF);
      return { r1: r, r2: name === 'xadd' ? a : 0n, flags: f };
    }
    case 'sub': case 'sbb': case 'cmp': case 'neg': {
      const x = name === 'neg' ? 0n : a, y = name === 'neg' ? a : b;
      const bi = name === 'sbb' ? cin : 0n;
      const r = u(w, x - y - bi);
      const sr = s(w, x) - s(w, y) - bi;
      const f = fl(x < y + bi, CF) | fl((x & 15n) < (y & 15n) + bi, AF) | szp(w, r) | fl(sr !== s(w, r), OF);
      return { r1: name === 'cmp' ? a : r, r2: 0n, flags: f };
    }
    case 'and': case 'or': case 'xor': case 'test': {
      const r = name === 'or' ? a | b : name === 'xor' ? a ^ b : a & b;
      return { r1: name === 'test' ? a : r, r2: 0n, flags: szp(w, r) }; // CF = OF = 0, AF = 0
    }
    case 'not': return { r1: u(w, ~a), r2: 0n, flags: keep(STATUS) };
    case 'inc': case 'dec': {
      const r = u(w, name === 'inc' ? a + 1n : a - 1n);
      const sr = name === 'inc' ? s(w, a) + 1n : s(w, a) - 1n;
      const af = name === 'inc' ? (a & 15n) === 15n : (a & 15n) === 0n;
      return { r1: r, r2: 0n, flags: keep(CF) | fl(af, AF) | szp(w, r) | fl(sr !== s(w, r), OF) };
    }
    case 'bswap': {
      let r = 0n;
      if (size >= 4) for (let i = 0; i < size; i++) r |= ((a >> BigInt(8 * i)) & 0xffn) << BigInt(8 * (size - 1 - i));
      return { r1: r, r2: 0n, flags: keep(STATUS) };
    }
    case 'shl': case 'shr': case 'sar': {
      const n = Number(b & (size === 8 ? 63n : 31n));
      if (n === 0) return { r1: a, r2: 0n, flags: keep(STATUS) };
      let r: bigint, cf: number, of: boolean;
      if (name === 'shl') {
        r = u(w, a << BigInt(n));
        cf = n <= w ? bit(a, w - n) : 0;
        of = (bit(r, w - 1) ^ cf) !== 0;
      } else if (name === 'shr') {
        r = a >> BigInt(n);
        cf = n <= w ? bit(a, n - 1) : 0;
        of = n === 1 && bit(a, w - 1) !== 0;
      } else {
        r = u(w, s(w, a) >> BigInt(n));
        cf = Number(u(1, s(w, a) >> BigInt(n - 1)));
        of = false;
      }
      return { r1: r, r2: 0n, flags: cf | szp(w, r) | AF | fl(of, OF) }; // AF = 1 (AMD)
    }
    case 'rol': case 'ror': {
      const n = Number(b & (size === 8 ? 63n : 31n));
      if (n === 0) return { r1: a, r2: 0n, flags: keep(STATUS) };
      const k = BigInt(n % w);
      const r = name === 'rol' ? u(w, (a << k) | (a >> (BigInt(w) - k))) : u(w, (a >> k) | (a << (BigInt(w) - k)));
      const cf = name === 'rol' ? bit(r, 0) : bit(r, w - 1);
      const of = name === 'rol' ? bit(r, w - 1) ^ cf : bit(r, w - 1) ^ bit(r, w - 2);
      return { r1: r, r2: 0n, flags: keep(STATUS & ~(CF | OF)) | cf | fl(of !== 0, OF) };
    }
    case 'rcl': case 'rcr': {
      const n = Number(b & (size === 8 ? 63n : 31n));
      if (n === 0) return { r1: a, r2: 0n, flags: keep(STATUS) };
      const k = BigInt(n % (w + 1));
      const x = (cin << BigInt(w)) | a; // the (w+1)-bit rotating quantity
      const wide = BigInt(w + 1);
      const y = name === 'rcl' ? u(w + 1, (x << k) | (x >> (wide - k))) : u(w + 1, (x >> k) | (x << (wide - k)));
      const r = u(w, y), cf = bit(y, w);
      const of = name === 'rcl' ? bit(r, w - 1) ^ cf : bit(r, w - 1) ^ bit(r, w - 2);
      return { r1: r, r2: 0n, flags: keep(STATUS & ~(CF | OF)) | cf | fl(of !== 0, OF) };
    }
    case 'bt': case 'bts': case 'btr': case 'btc': {
      const i = Number(b % BigInt(w));
      const m = 1n << BigInt(i);
      const r = name === 'bts' ? a | m : name === 'btr' ? a & ~m : name === 'btc' ? a ^ m : a;
      return { r1: r, r2: 0n, flags: keep(STATUS & ~CF) | bit(a, i) };
    }
    case 'mul': case 'imul': case 'imul2': {
      const p = name === 'mul' ? a * b : s(w, a) * s(w, b);
      const lo = u(w, p), hi = u(w, p >> BigInt(w));
      const ovf = name === 'mul' ? hi !== 0n : s(w, lo) !== p;
      return { r1: lo, r2: name === 'imul2' ? 0n : hi, flags: keep(SF | ZF | AF | PF) | fl(ovf, CF | OF) };
    }
    case 'div': case 'idiv': {
      // dividend = c:a, divisor = b
      const flags = keep(CF | OF) | AF;
      if (b === 0n) return { r1: 0n, r2: 0n, flags: fin, fault: true };
      if (name === 'div') {
        const n = (c << BigInt(w)) | a;
        const q = n / b;
        if (q >= W) return { r1: 0n, r2: 0n, flags: fin, fault: true };
        return { r1: q, r2: n % b, flags };
      }
      const n = s(2 * w, (c << BigInt(w)) | a), d = s(w, b);
      const q = n / d; // BigInt division truncates toward zero, as IDIV does
      if (q !== s(w, q)) return { r1: 0n, r2: 0n, flags: fin, fault: true };
      return { r1: u(w, q), r2: u(w, n % d), flags };
    }
    case 'bsf': case 'bsr': {
      // Undefined CF OF SF AF PF as Zen 5 leaves them: clear, PF the parity of the index (of 0 for a zero source).
      if (a === 0n) return { r1: b, r2: 0n, flags: ZF | PF };
      let i = name === 'bsf' ? 0 : w - 1;
      while (bit(a, i) === 0) i += name === 'bsf' ? 1 : -1;
      return { r1: BigInt(i), r2: 0n, flags: parityEven(BigInt(i)) ? PF : 0 };
    }
    case 'tzcnt': case 'lzcnt': {
      let n = 0;
      if (name === 'tzcnt') while (n < w && bit(a, n) === 0) n++;
      else while (n < w && bit(a, w - 1 - n) === 0) n++;
      return { r1: BigInt(n), r2: 0n, flags: keep(OF) | fl(n === w, CF) | fl(n === 0, ZF) };
    }
    case 'popcnt': {
      let n = 0;
      for (let i = 0; i < w; i++) n += bit(a, i);
      return { r1: BigInt(n), r2: 0n, flags: fl(n === 0, ZF) };
    }
    case 'cmpxchg': {
      const cmp = reference('cmp', size, a, b, 0n, fin);
      return a === b ? { r1: c, r2: a, flags: cmp.flags } : { r1: b, r2: b, flags: cmp.flags };
    }
    default: throw new Error(`no reference for ${name}`);
  }
}
