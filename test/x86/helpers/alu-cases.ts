/** Seeded random operands for ALU tests: edge values, small numbers and uniform bits. */

/** xorshift64 over BigInt: reproducible across runs. */
export class Rng {
  private state: bigint;
  constructor(seed: bigint) { this.state = BigInt.asUintN(64, seed) || 1n; }
  next64(): bigint {
    let x = this.state;
    x ^= BigInt.asUintN(64, x << 13n);
    x ^= x >> 7n;
    x ^= BigInt.asUintN(64, x << 17n);
    this.state = x;
    return x;
  }
  int(n: number): number { return Number(this.next64() % BigInt(n)); }
}

/** An operand of `size` bytes, biased towards the values where flags change. */
export function operand(rng: Rng, size: number): bigint {
  const w = BigInt(size * 8);
  const m = (1n << w) - 1n;
  const sign = 1n << (w - 1n);
  switch (rng.int(8)) {
    case 0: return [0n, 1n, 2n, m, m - 1n, sign, sign - 1n, sign + 1n][rng.int(8)]!;
    case 1: return BigInt(rng.int(64));
    case 2: return (m - BigInt(rng.int(64))) & m;
    case 3: return (sign + BigInt(rng.int(33)) - 16n) & m;
    default: return rng.next64() & m;
  }
}

/** Random status flags (CF PF AF ZF SF OF). */
export function randomFlags(rng: Rng): number {
  return Number(rng.next64() & 0x8d5n);
}

/** The second operand for an op: shift counts and bit indexes cover 0..70 (the CPU masks). */
export function secondOperand(rng: Rng, name: string, size: number): bigint {
  if (['shl', 'shr', 'sar', 'rol', 'ror', 'rcl', 'rcr', 'bt', 'bts', 'btr', 'btc'].includes(name)) {
    return rng.int(4) === 0 ? BigInt(rng.int(4)) : BigInt(rng.int(71));
  }
  return operand(rng, size);
}

/** A third operand: for DIV/IDIV the high half of the dividend, kept small half of the time so
 *  that most cases do not fault. */
export function thirdOperand(rng: Rng, name: string, size: number, b: bigint): bigint {
  if (name === 'div' || name === 'idiv') {
    const k = rng.int(4);
    if (k === 0) return operand(rng, size);
    if (name === 'div') return b === 0n ? 0n : (rng.next64() % b);
    // IDIV: a sign extension of the low half, or a small high half.
    return k === 1 ? (1n << BigInt(size * 8)) - 1n : BigInt(rng.int(2));
  }
  return operand(rng, size);
}

const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, OF = 0x800;
/** The six status flags. */
export const STATUS_FLAGS = CF | PF | AF | ZF | SF | OF;

/**
 * The status flags the Intel SDM and the AMD APM both define for an op, its size and its second
 * operand (a shift count, for shifts); the others are "undefined" and differ between CPUs.
 */
export function definedFlags(name: string, size: number, b: bigint): number {
  const w = size * 8;
  const count = Number(b & (size === 8 ? 63n : 31n));
  const ALL = STATUS_FLAGS;
  switch (name) {
    case 'and': case 'or': case 'xor': case 'test': return ALL & ~AF;
    case 'shl': case 'shr': case 'sar':
      if (count === 0) return ALL;
      return (ALL & ~AF & ~(count === 1 ? 0 : OF)) & ~(count > w && name !== 'sar' ? CF : 0);
    case 'rol': case 'ror': case 'rcl': case 'rcr': return count === 1 ? ALL : ALL & ~OF;
    case 'bt': case 'bts': case 'btr': case 'btc': return CF | ZF;
    case 'mul': case 'imul': case 'imul2': return CF | OF;
    case 'div': case 'idiv': return 0;
    case 'bsf': case 'bsr': return ZF;
    case 'tzcnt': case 'lzcnt': return CF | ZF;
    default: return ALL;
  }
}

/** Ops whose flags the manuals leave partly undefined: the ones recorded vectors cover. */
export const OPS_WITH_UNDEFINED_FLAGS = [
  'and', 'or', 'xor', 'test', 'shl', 'shr', 'sar', 'rol', 'ror', 'rcl', 'rcr', 'bt', 'bts', 'btr', 'btc',
  'mul', 'imul', 'imul2', 'div', 'idiv', 'bsf', 'bsr', 'tzcnt', 'lzcnt',
] as const;
