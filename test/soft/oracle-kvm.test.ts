// The real CPU (KVM runs CPL-3 code natively here) as the oracle of the soft CPU: generated
// user-mode sequences must leave the same registers, defined flags and memory on both backends.
// TSVMM_ORACLE_SEQS=N (default 20000) and TSVMM_ORACLE_SEED=S choose a larger or another run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { kvmOrSkip } from '../helpers/kvm.js';
import { needsNasm } from '../helpers/nasm.js';
import { assembleProgram, compareRuns, generate, runImage } from './oracle.js';

const TOTAL = Number(process.env.TSVMM_ORACLE_SEQS ?? 20000);
const SEED = Number(process.env.TSVMM_ORACLE_SEED ?? 20240601);
const PER_RUN = 5000;

test(`soft CPU agrees with the real CPU on ${TOTAL} generated user-mode sequences`, needsNasm, (t) => {
  const kvm = kvmOrSkip(t);
  if (!kvm) return;
  const soft = SoftBackend.open();
  let softMs = 0, done = 0;
  for (let run = 0; done < TOTAL; run++) {
    const n = Math.min(PER_RUN, TOTAL - done);
    const prog = generate(SEED + run, n);
    const image = assembleProgram(prog);
    const a = runImage(kvm, image, prog);
    const b = runImage(soft, image, prog);
    softMs += b.ms;
    const diff = compareRuns(prog, a, b);
    assert.equal(diff, null, `seed ${SEED + run}: ${diff}`);
    done += n;
  }
  t.diagnostic(`${done} sequences agree; soft CPU time ${softMs.toFixed(0)} ms`);
});
