// The soft CPU's block compiler (src/backends/soft/jit.ts) against the interpreter and the real CPU:
// generated user-mode sequences, run with every block compiled before its first execution
// (threshold 0) and after one interpreted run (threshold 1), must leave the same state as the
// interpreter (no KVM needed), and compiled at once, as KVM; self-modifying code must run the new
// code once it is written, compiled or not.
// TSVMM_JIT_ORACLE_SEQS=N (default 5000) sets the number of sequences of each comparison, generated
// in programs of at most 5000.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { STATE } from '../../src/nvmm/state.js';
import { enterFlat32 } from '../../src/selftest/guest-x64.js';
import { kvmOrSkip } from '../helpers/kvm.js';
import { runToExit, withRamMachine } from '../helpers/machine.js';
import { guestImage, needsNasm } from '../helpers/nasm.js';
import { assembleProgram, compareRuns, generate, runImage, type OracleRun } from './oracle.js';

const TOTAL = Number(process.env.TSVMM_JIT_ORACLE_SEQS ?? 5000);
const SEED = 0x5eed1;
const PER_RUN = 5000;

/** The soft backend with compile threshold `n`. */
function softWithThreshold(n: number): SoftBackend {
  return SoftBackend.open({ jit: { threshold: n } });
}

test(`compiled blocks agree with the interpreter on ${TOTAL} generated sequences`, needsNasm, () => {
  for (let done = 0, run = 0; done < TOTAL; run++) {
    const n = Math.min(PER_RUN, TOTAL - done);
    const prog = generate(SEED + run, n);
    const image = assembleProgram(prog);
    const interp = runImage(softWithThreshold(-1), image, prog);
    // Threshold 0: every block compiled before it runs; 1: a mix (a block runs interpreted once).
    for (const th of [0, 1]) {
      const jit: OracleRun = runImage(softWithThreshold(th), image, prog);
      assert.equal(jit.exit, interp.exit, `seed ${SEED + run} threshold ${th}`);
      assert.equal(compareRuns(prog, interp, jit), null, `seed ${SEED + run} threshold ${th}`);
    }
    done += n;
  }
});

test(`compiled blocks agree with the real CPU on ${TOTAL} generated sequences`, needsNasm, (t) => {
  const kvm = kvmOrSkip(t);
  if (!kvm) return;
  for (let done = 0, run = 0; done < TOTAL; run++) {
    const n = Math.min(PER_RUN, TOTAL - done);
    const prog = generate(SEED + 100 + run, n);
    const image = assembleProgram(prog);
    const real = runImage(kvm, image, prog);
    const jit = runImage(softWithThreshold(0), image, prog);
    assert.equal(compareRuns(prog, real, jit), null, `seed ${SEED + 100 + run}`);
    done += n;
  }
});

/** Runs guests/soft/smc.asm (flat 32-bit entry at 0x100000) with a JIT threshold; returns its six result qwords. */
function runSmc(image: Uint8Array, threshold: number): bigint[] {
  return withRamMachine(softWithThreshold(threshold), 4 << 20, ({ vcpu, ram, view }) => {
    ram.set(image, 0x100000);
    enterFlat32(vcpu, 0x100000);
    vcpu.setState(STATE.ALL);
    const exit = runToExit(vcpu);
    assert.ok(exit.kind === 'io' && exit.port === 0xf4, `exit ${exit.kind}`);
    return [0, 1, 2, 3, 4, 5].map((k) => view.getBigUint64(0x300000 + 8 * k, true));
  });
}

test('self-modifying code runs the new code, interpreted and compiled', needsNasm, () => {
  const image = guestImage('soft/smc.asm');
  for (const th of [-1, 0, 1, 3]) {
    assert.deepEqual(runSmc(image, th), [1275n, 300n, 500n, 19n, 7n, 0n], `threshold ${th}`);
  }
});
