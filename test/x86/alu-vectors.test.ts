/**
 * alu.ts's choices for the flags the manuals leave undefined, against results recorded on one real
 * CPU (test/vectors/x86/alu-undefined-flags.txt, which names it). The live host is not consulted:
 * undefined flags differ between vendors and between generations of one vendor, so a comparison
 * against whatever CPU runs the tests would pass or fail by the machine (alu-host.test.ts compares
 * the defined results there).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { OperandSize } from '../../src/x86/alu.js';
import { HOST_OPS } from './helpers/host-cpu-oracle.js';
import { runAlu } from './helpers/alu-adapter.js';
import { OPS_WITH_UNDEFINED_FLAGS, STATUS_FLAGS } from './helpers/alu-cases.js';

const FILE = new URL('../../../test/vectors/x86/alu-undefined-flags.txt', import.meta.url);

test('alu.ts reproduces the recorded CPU, undefined flags included', (t) => {
  const text = readFileSync(FILE, 'utf8');
  t.diagnostic(/^# cpu: (.*)$/m.exec(text)?.[1] ?? 'unknown cpu');
  const seen = new Set<string>();
  let compared = 0;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [name, sizeText, ...fields] = line.split(' ');
    const [a, b, c, flagsIn, r1, r2, flagsOut] = fields.map((f) => BigInt('0x' + f)) as [bigint, bigint, bigint, bigint, bigint, bigint, bigint];
    const size = Number(sizeText) as OperandSize;
    const got = runAlu(name!, size, a, b, c, Number(flagsIn));
    const what = `${line}: alu.ts r1=${got.r1.toString(16)} r2=${got.r2.toString(16)} flags=${got.flags.toString(16)}`;
    assert.equal(got.r1, r1, what);
    const kind = HOST_OPS[name!]!.kind;
    if (kind === 'mul1' || kind === 'div') assert.equal(got.r2, r2, what);
    assert.equal(got.flags & STATUS_FLAGS, Number(flagsOut), what);
    seen.add(`${name}/${size}`);
    compared++;
  }
  // Every op with undefined flags is covered at every size it has.
  for (const name of OPS_WITH_UNDEFINED_FLAGS) {
    for (const size of HOST_OPS[name]!.sizes) assert.ok(seen.has(`${name}/${size}`), `no vectors for ${name}/${size}`);
  }
  t.diagnostic(`${compared} recorded cases agree`);
});
