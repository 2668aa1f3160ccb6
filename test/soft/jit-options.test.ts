// The block compilers' settings are the soft backend's options (SoftOptions.jit), read from the
// environment once, by SoftBackend.open; the source dump goes to the backend's log, not stderr.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend, jitOptionsFromEnv, type SoftOptions } from '../../src/backends/soft/soft-backend.js';
import { PROT } from '../../src/nvmm/backend.js';
import { Machine } from '../../src/nvmm/machine.js';
import { STATE } from '../../src/nvmm/state.js';
import { enterFlat32 } from '../../src/selftest/guest-x64.js';

const RAM = 1 << 20;
const LOAD = 0x1000;
/** mov ecx, 100; l: add eax, ecx; dec ecx; jnz l; hlt (flat 32-bit code: always jit.ts). */
const LOOP = [0xb9, 100, 0, 0, 0, 0x01, 0xc8, 0x49, 0x75, 0xfb, 0xf4];

/** Runs LOOP on a backend made with `opts`; returns the blocks compiled. */
function runLoop(opts: SoftOptions): number {
  const machine = new Machine(new SoftBackend(opts));
  const mem = machine.allocateMemory(RAM);
  try {
    machine.mapHva(mem);
    machine.mapGpa(0, mem.hva, RAM, PROT.ALL);
    mem.bytes.set(LOOP, LOAD);
    const vcpu = machine.createVcpu(0);
    enterFlat32(vcpu, LOAD);
    vcpu.setState(STATE.ALL);
    assert.equal(vcpu.run().kind, 'halted');
    const impl = (machine as unknown as { impl: { vcpuList(): { exec: { jitCount: number } }[] } }).impl;
    return impl.vcpuList()[0]!.exec.jitCount;
  } finally {
    machine.destroy();
    mem.free();
  }
}

test('the environment gives the JIT settings open() leaves unset', () => {
  assert.deepEqual(jitOptionsFromEnv({}), {});
  assert.deepEqual(jitOptionsFromEnv({ TSVMM_SOFT_JIT: 'off', TSVMM_SOFT_JIT_KIND: 'js', TSVMM_JIT_DUMP: '1' }), { threshold: -1, kind: 'js', dump: true });
  assert.deepEqual(jitOptionsFromEnv({ TSVMM_SOFT_JIT: '12', TSVMM_SOFT_JIT_KIND: 'bogus' }), { threshold: 12 });
  assert.equal(new SoftBackend({ jit: { threshold: 7 } }).jitThreshold, 7);
  assert.equal(SoftBackend.open({ jit: { threshold: 7 } }).jitThreshold, 7, 'an option wins over the environment');
  assert.throws(() => new SoftBackend({ jit: { threshold: -2 } }), (e: Error & { code?: string }) => e.code === 'TSVMM_BAD_ARGUMENT');
});

test('two backends in one process keep their own JIT settings', () => {
  assert.equal(runLoop({ jit: { threshold: -1 } }), 0, 'interpreter only');
  assert.ok(runLoop({ jit: { threshold: 0 } }) > 0, 'every block compiled');
  assert.equal(runLoop({ jit: { threshold: -1 } }), 0, 'still interpreter only');
});

test('the JIT dump goes to the backend\'s log', () => {
  const lines: string[] = [];
  runLoop({ jit: { threshold: 0, dump: true }, log: (m) => lines.push(m) });
  assert.ok(lines.length > 0 && lines.every((l) => l.startsWith('--- region\n')), 'one note per region');
  lines.length = 0;
  runLoop({ jit: { threshold: 0 }, log: (m) => lines.push(m) });
  assert.deepEqual(lines, [], 'no dump unless asked');
});
