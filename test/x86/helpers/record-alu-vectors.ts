/**
 * Records the real CPU's results, undefined flags included, for the ops whose flags the manuals
 * leave partly undefined, in the format test/x86/alu-vectors.test.ts reads. alu.ts models one
 * recorded CPU's choices (see its header); re-recording on another CPU changes that model, so do it
 * only together with alu.ts:
 *
 *   npx tsc -p . && node dist/test/x86/helpers/record-alu-vectors.js > test/vectors/x86/alu-undefined-flags.txt
 */
import { readFileSync } from 'node:fs';
import { HOST_OPS, openHostCpu, type HostCase } from './host-cpu-oracle.js';
import { runAlu } from './alu-adapter.js';
import { OPS_WITH_UNDEFINED_FLAGS, Rng, operand, randomFlags, secondOperand, thirdOperand } from './alu-cases.js';
import type { OperandSize } from '../../../src/x86/alu.js';

const SEED = 0x5eedn;
const CASES = 32;

const oracle = openHostCpu();
if (typeof oracle === 'string') {
  process.stderr.write(`cannot record: ${oracle}\n`);
  process.exit(1);
}
const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
const field = (k: string) => new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm').exec(cpuinfo)?.[1]?.trim() ?? '?';
const hex = (v: bigint) => BigInt.asUintN(64, v).toString(16);
const out: string[] = [
  '# x86 ALU results of one real CPU, undefined flags included (see test/vectors/x86/README.md).',
  `# cpu: ${field('model name')}, ${field('vendor_id')} family 0x${Number(field('cpu family')).toString(16)} ` +
    `model 0x${Number(field('model')).toString(16)} stepping ${field('stepping')}`,
  `# generator: test/x86/helpers/record-alu-vectors.ts, seed 0x${SEED.toString(16)}, ${CASES} cases per op and size`,
  '# op size a b c flagsIn r1 r2 flagsOut (hex)',
];
const rng = new Rng(SEED);
for (const name of OPS_WITH_UNDEFINED_FLAGS) {
  const op = HOST_OPS[name]!;
  for (const size of op.sizes) {
    const cases: HostCase[] = [];
    while (cases.length < CASES) {
      const a = operand(rng, size), b = secondOperand(rng, name, size), c = thirdOperand(rng, name, size, b);
      const flags = randomFlags(rng);
      // The oracle cannot take #DE.
      if ((name === 'div' || name === 'idiv') && runAlu(name, size as OperandSize, a, b, c, flags).fault) continue;
      cases.push({ a, b, c, flags });
    }
    oracle.run(name, size, cases).forEach((r, i) => {
      const k = cases[i]!;
      out.push([name, size, hex(k.a), hex(k.b), hex(k.c), k.flags.toString(16), hex(r.r1), hex(r.r2), r.flags.toString(16)].join(' '));
    });
  }
}
oracle.dispose();
process.stdout.write(out.join('\n') + '\n');
