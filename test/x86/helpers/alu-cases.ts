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
