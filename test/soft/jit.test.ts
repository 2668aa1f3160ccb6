// The soft CPU's block compiler (src/backends/soft/jit.ts) against the interpreter and the real CPU:
// generated user-mode sequences with every block compiled before its first execution must leave
// the same state as the interpreter (no KVM needed) and as KVM; self-modifying code must run the
// new code once it is written, compiled or not.
// TSVMM_JIT_ORACLE_SEQS=N (default 10000) sets the number of sequences of each comparison.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { PROT } from '../../src/nvmm/backend.js';
import { Machine } from '../../src/nvmm/machine.js';
import { CR, GPR, SEG, STATE, type SegmentAttrib } from '../../src/nvmm/state.js';
import { kvmOrSkip } from '../helpers/kvm.js';
import { assembleProgram, compareRuns, generate, runImage, type OracleRun } from './oracle.js';

const TOTAL = Number(process.env.TSVMM_JIT_ORACLE_SEQS ?? 5000);
const SEED = 0x5eed1;
const PER_RUN = 5000;

/** The soft backend with compile threshold `n`. */
function softWithThreshold(n: number): SoftBackend {
  return SoftBackend.open({ jit: { threshold: n } });
}

test(`compiled blocks agree with the interpreter on ${TOTAL} generated sequences`, (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
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

test(`compiled blocks agree with the real CPU on ${TOTAL} generated sequences`, (t) => {
  const kvm = kvmOrSkip(t);
  if (!kvm) return;
  if (!hasNasm()) return t.skip('nasm not installed');
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

function flat(selector: number, type: number): { selector: number; attrib: SegmentAttrib; limit: number; base: bigint } {
  return { selector, attrib: { type, s: true, dpl: 0, p: true, avl: false, l: false, def: true, g: true }, limit: 0xffffffff, base: 0n };
}

/** Runs guests/soft/smc.asm; returns its six result qwords. */
function runSmc(image: Uint8Array, threshold: number): bigint[] {
  const RAM = 4 << 20;
  const machine = new Machine(softWithThreshold(threshold));
  const mem = machine.allocateMemory(RAM);
  try {
    machine.mapHva(mem);
    machine.mapGpa(0, mem.hva, RAM, PROT.ALL);
    mem.bytes.set(image, 0x100000);
    const vcpu = machine.createVcpu(0);
    const s = vcpu.getState(STATE.ALL);
    s.segs[SEG.CS] = flat(0x08, 0xb);
    for (const i of [SEG.SS, SEG.DS, SEG.ES, SEG.FS, SEG.GS]) s.segs[i] = flat(0x10, 0x3);
    s.crs[CR.CR0] = 0x11n;
    s.gprs[GPR.RIP] = 0x100000n;
    vcpu.setState(STATE.ALL);
    let exit = vcpu.run();
    while (exit.kind === 'none') exit = vcpu.run();
    assert.ok(exit.kind === 'io' && exit.port === 0xf4, `exit ${exit.kind}`);
    const dv = new DataView(mem.bytes.buffer, mem.bytes.byteOffset + 0x300000, 48);
    return [0, 1, 2, 3, 4, 5].map((k) => dv.getBigUint64(8 * k, true));
  } finally {
    machine.destroy();
    mem.free();
  }
}

test('self-modifying code runs the new code, interpreted and compiled', (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  const image = assemble('soft/smc.asm');
  for (const th of [-1, 0, 1, 3]) {
    assert.deepEqual(runSmc(image, th), [1275n, 300n, 500n, 19n, 7n, 0n], `threshold ${th}`);
  }
});
