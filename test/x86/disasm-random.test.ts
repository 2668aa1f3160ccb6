/**
 * Differential test over plain random bytes: tsvmm's disassembler against GNU objdump, per mode.
 *
 * disasm-objdump.test.ts draws structured encodings (an opcode map, then ModRM and operand bytes); this
 * test draws 15 uniformly random bytes per instruction, so every prefix mix, undefined opcode and
 * invalid operand form turns up in the proportion real garbage (data, a wrong mode, a wrong offset)
 * has. Layout and comparison: helpers/objdump-compare.ts. The remaining disagreement classes are in
 * test/vectors/x86/README.md.
 *
 * Env: TSVMM_RANDOM_COUNT (instructions per mode, default 50000), TSVMM_RANDOM_SEED (default 2024),
 *      TSVMM_RANDOM_VERBOSE=1 (print the mismatches), TSVMM_RANDOM_DUMP=/path (write them to path.<mode>).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import type { CpuMode } from '../../src/x86/decoder.js';
import { tempDir } from '../helpers/tools.js';
import { compareWithObjdump, OBJDUMP, Rng } from './helpers/objdump-compare.js';

const COUNT = Number(process.env['TSVMM_RANDOM_COUNT'] ?? 50000);
const SEED = Number(process.env['TSVMM_RANDOM_SEED'] ?? 2024);
const VERBOSE = process.env['TSVMM_RANDOM_VERBOSE'] === '1';
const DUMP = process.env['TSVMM_RANDOM_DUMP'];
/** The floor asserted per mode (agreement on random bytes). */
const FLOOR = 0.999;

for (const mode of [16, 32, 64] as CpuMode[]) {
  test(`disassembly of random bytes agrees with objdump in ${mode}-bit mode`, (t) => {
    if (!existsSync(OBJDUMP)) {
      t.skip('objdump not installed');
      return;
    }
    const dir = tempDir(t);
    const rng = new Rng(SEED * 3 + mode);
    const res = compareWithObjdump(mode, COUNT, dir, (out) => {
      for (let i = 0; i < 15; i++) out[i] = rng.next() >>> 24;
    }, false);
    const rate = res.agree / res.total;
    const msg = `${mode}-bit random bytes: ${res.agree}/${res.total} agree (${(rate * 100).toFixed(3)} %)`;
    t.diagnostic(msg);
    if (DUMP) {
      writeFileSync(`${DUMP}.${mode}`, res.mismatches.map((m) => `${m.bytes} [${m.next}] | ours: ${m.ours} | objdump: ${m.theirs}\n`).join(''));
    }
    if (VERBOSE || rate < FLOOR) {
      for (const m of res.mismatches.slice(0, VERBOSE ? 400 : 25)) {
        t.diagnostic(`${m.bytes} | ours: ${m.ours} | objdump: ${m.theirs}`);
      }
    }
    assert.ok(rate >= FLOOR, msg);
  });
}
