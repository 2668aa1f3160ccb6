/**
 * alu.ts against the real CPU: a gcc-built inline-asm oracle (helpers/host-cpu-oracle.ts) runs
 * each instruction on random operands. Only what the manuals define is compared, on whatever
 * x86-64 host runs the tests: results and the defined flags. Undefined flags differ between
 * vendors and between generations of one vendor (BSF on Zen 5 clears what earlier Zen kept), so
 * alu.ts's choices for them are checked against recorded vectors instead (alu-vectors.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { OperandSize } from '../../src/x86/alu.js';
import { HOST_OPS, openHostCpu, type HostCase } from './helpers/host-cpu-oracle.js';
import { runAlu } from './helpers/alu-adapter.js';
import { Rng, definedFlags, operand, randomFlags, secondOperand, thirdOperand } from './helpers/alu-cases.js';

const CASES_PER_OP_SIZE = 2500;

function cpuHas(feature: string): boolean {
  try {
    return new RegExp(`^flags\\s*:.*\\b${feature}\\b`, 'm').test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch { return false; }
}

const oracle = openHostCpu();
const skip = typeof oracle === 'string' ? oracle : false;

test('alu.ts agrees with the host CPU (gcc inline-asm oracle)', { skip }, (t) => {
  if (typeof oracle === 'string') return;
  // AMD documents BSF/BSR with a zero source as leaving the destination unchanged; Intel calls it undefined.
  const amd = oracle.vendor === 'AuthenticAMD';
  t.diagnostic(`host vendor ${oracle.vendor}`);
  const rng = new Rng(0xc0ffeen);
  let compared = 0;
  try {
    for (const [name, op] of Object.entries(HOST_OPS)) {
      if ((name === 'tzcnt' && !cpuHas('bmi1')) || (name === 'lzcnt' && !cpuHas('abm')) ||
        (name === 'popcnt' && !cpuHas('popcnt'))) {
        t.diagnostic(`host lacks ${name}; skipped`);
        continue;
      }
      for (const size of op.sizes) {
        const cases: HostCase[] = [];
        while (cases.length < CASES_PER_OP_SIZE) {
          const a = operand(rng, size), b = secondOperand(rng, name, size), c = thirdOperand(rng, name, size, b);
          const flags = randomFlags(rng);
          // The oracle cannot take #DE; the BigInt model decides which cases fault (alu.test.ts
          // checks that alu.ts agrees).
          if ((name === 'div' || name === 'idiv') && runAlu(name, size as OperandSize, a, b, c, flags).fault) continue;
          cases.push({ a, b, c, flags });
        }
        const host = oracle.run(name, size, cases);
        cases.forEach((k, i) => {
          const got = runAlu(name, size as OperandSize, k.a, k.b, k.c, k.flags);
          const want = host[i]!;
          const what = `${name}/${size} a=${k.a.toString(16)} b=${k.b.toString(16)} c=${k.c.toString(16)} ` +
            `flags=${k.flags.toString(16)}: host r1=${want.r1.toString(16)} r2=${want.r2.toString(16)} ` +
            `flags=${want.flags.toString(16)}, alu.ts r1=${got.r1.toString(16)} r2=${got.r2.toString(16)} flags=${got.flags.toString(16)}`;
          // BSF/BSR with a zero source: Intel documents the destination as undefined.
          const valueDefined = amd || !((name === 'bsf' || name === 'bsr') && BigInt.asUintN(size * 8, k.a) === 0n);
          if (valueDefined) {
            assert.equal(got.r1, want.r1, what);
            if (op.kind === 'mul1' || op.kind === 'div' || op.kind === 'cmpxchg' || op.kind === 'xadd') assert.equal(got.r2, want.r2, what);
          }
          const mask = definedFlags(name, size, k.b);
          assert.equal(got.flags & mask, want.flags & mask, what);
          compared++;
        });
      }
    }
  } finally {
    oracle.dispose();
  }
  t.diagnostic(`${compared} cases compared against the host CPU`);
});
