// The block compilers on loops (guests/soft/jit-loops.asm): flags, carries and conditions left
// pending by one block and consumed by the next inside a compiled region, and indirect
// CALL/JMP. The generated oracle sequences are straight-line, so their regions are mostly single
// blocks; here the same image runs interpreted and compiled (JS and WebAssembly, compile
// thresholds 0, 3 and 10: regions of one block, and of the whole loop) and must report the same.
// Regions of one block also take the dispatcher (jit-wasm.ts) from one region to the next.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JitKind } from '../../src/backends/soft/exec.js';
import { SoftBackend, type SoftMachine } from '../../src/backends/soft/soft-backend.js';
import { guestImage, needsNasm } from '../helpers/nasm.js';
import { reports, runGuest } from './guest-run.js';

function run(image: Uint8Array, kind: JitKind, threshold: number): { end: string; reports: number[]; jit: number; chained: number; runs: number } {
  const backend = SoftBackend.open({ jit: { kind, threshold } });
  let jit = 0, chained = 0, runs = 0;
  const r = runGuest(backend, image, 8 << 20, 500, (vcpu) => {
    // The soft machine behind the API object (as bench/soft-mips.ts reads its counters).
    const impl = (vcpu.machine as unknown as { impl: SoftMachine }).impl;
    const x = impl.vcpuList()[0]!.exec;
    jit = x.jitCount;
    chained = x.chainedTotal;
    runs = x.jitRuns;
  });
  return { end: r.end, reports: reports(r), jit, chained, runs };
}

test('compiled loops agree with the interpreter (pending flags across blocks, indirect branches)', needsNasm, () => {
  const image = guestImage('soft/jit-loops.asm');
  const interp = run(image, 'wasm', -1);
  assert.equal(interp.end, 'end');
  assert.equal(interp.reports.length, 4);
  for (const kind of ['wasm', 'js'] as const) {
    for (const th of [0, 3, 10]) {
      const r = run(image, kind, th);
      assert.equal(r.end, 'end', `${kind} threshold ${th}`);
      assert.deepEqual(r.reports, interp.reports, `${kind} threshold ${th}`);
      assert.ok(r.jit > 0, `${kind} threshold ${th}: regions compiled`);
      // WebAssembly regions run one after another in the dispatcher, pending flags and all.
      if (kind === 'wasm') assert.ok(r.chained > 0, `wasm threshold ${th}: regions chained`);
    }
  }
});

test('handler calls that change nothing the run loop checks do not stop the dispatcher; code they rewrite runs new', needsNasm, () => {
  const image = guestImage('soft/jit-quiet.asm');
  const ITER = 1000; // guests/soft/jit-quiet.asm
  const interp = run(image, 'wasm', -1);
  assert.equal(interp.end, 'end');
  assert.equal(interp.reports.length, 2);
  // The second report: the first part's sum plus get's 1 + 2 + 3 + 4.
  assert.equal(interp.reports[1]! - interp.reports[0]!, 10);
  const r = run(image, 'wasm', 0);
  assert.equal(r.end, 'end');
  assert.deepEqual(r.reports, interp.reports);
  // Each iteration calls the DIV handler: the dispatcher goes on after it (up to its budget of
  // 64 regions) rather than returning to the run loop every time.
  assert.ok(r.runs < ITER / 8, `regions the run loop called: ${r.runs}, chained: ${r.chained}`);
});
