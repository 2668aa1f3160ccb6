// `--accel auto` on a KVM that emulates guest ring 0 (kvm_pvm): the decision from the modules
// behind /dev/kvm and from the timed ring-0 probe, fed with made-up facts (this machine has no
// /dev/kvm); the module scan on a fake /sys/module; the probe's guest, run on the soft CPU.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  EMULATED_NS_PER_ITERATION, LOOP_ITERATIONS, checkKvmRing0, judgeRing0, kvmModules, probeCode, probeRing0, type Ring0Probe,
} from '../../src/backends/kvm/ring0-check.js';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { withTempDir } from '../helpers/tools.js';

/** PVM's measured CPL-0 cost: ~1,070 ns per iteration of a two-instruction loop (ENVIRONMENT.md). */
const PVM_PROBE: Ring0Probe = { iterations: LOOP_ITERATIONS, ns: LOOP_ITERATIONS * 1070 };
/** Hardware virtualization: a LOOP iteration in a few nanoseconds, plus an exit round trip. */
const VMX_PROBE: Ring0Probe = { iterations: LOOP_ITERATIONS, ns: LOOP_ITERATIONS * 2 + 8000 };

test('the modules decide when they can: kvm_pvm alone is emulated, kvm_intel/kvm_amd alone native', () => {
  assert.equal(judgeRing0({ modules: ['kvm_pvm'] }).native, false);
  assert.match((judgeRing0({ modules: ['kvm_pvm'] }) as { why: string }).why, /kvm_pvm/);
  assert.equal(judgeRing0({ modules: ['kvm_intel'] }).native, true);
  assert.equal(judgeRing0({ modules: ['kvm_amd'] }).native, true);
  // Neither, both, or unknown: the probe decides.
  assert.equal(judgeRing0({ modules: [] }).native, 'probe');
  assert.equal(judgeRing0({ modules: ['kvm_pvm', 'kvm_intel'] }).native, 'probe');
  assert.equal(judgeRing0({ modules: null }).native, 'probe');
});

test('the probe decides the rest: about a microsecond per CPL-0 iteration is emulation', () => {
  assert.equal(judgeRing0({ modules: null, probe: PVM_PROBE }).native, false);
  assert.equal(judgeRing0({ modules: ['kvm_pvm', 'kvm_amd'], probe: VMX_PROBE }).native, true);
  const at = (nsPerIteration: number) => judgeRing0({ modules: [], probe: { iterations: 1000, ns: 1000 * nsPerIteration } }).native;
  assert.equal(at(EMULATED_NS_PER_ITERATION), true);
  assert.equal(at(EMULATED_NS_PER_ITERATION + 1), false);
  // A probe's evidence outranks the modules' (it measured this KVM).
  assert.equal(judgeRing0({ modules: ['kvm_intel'], probe: PVM_PROBE }).native, false);
});

test('checkKvmRing0: modules first, the probe only when they do not settle it, a failed probe keeps KVM', () => {
  const backend = SoftBackend.open();
  const never = (): Ring0Probe => assert.fail('the probe ran although the modules decided');
  assert.equal(checkKvmRing0(backend, ['kvm_pvm'], never).native, false);
  assert.equal(checkKvmRing0(backend, ['kvm_amd'], never).native, true);
  const slow = checkKvmRing0(backend, [], () => PVM_PROBE);
  assert.equal(slow.native, false);
  assert.match(slow.why, /1070 ns per iteration/);
  assert.equal(checkKvmRing0(backend, null, () => VMX_PROBE).native, true);
  const failed = checkKvmRing0(backend, null, () => { throw new Error('shutdown exit'); });
  assert.deepEqual(failed, { native: true, why: 'the ring-0 probe failed (shutdown exit)' });
});

test('kvmModules reads /sys/module (built-in modules have their directory too)', () => {
  withTempDir((dir) => {
    const sys = join(dir, 'module');
    assert.equal(kvmModules(sys), null, 'no such directory: unknown');
    for (const m of ['kvm', 'kvm_pvm', 'irqbypass']) mkdirSync(join(sys, m), { recursive: true });
    assert.deepEqual(kvmModules(sys), ['kvm_pvm']);
    mkdirSync(join(sys, 'kvm_intel'));
    assert.deepEqual(kvmModules(sys), ['kvm_intel', 'kvm_pvm']);
  });
});

test('the probe guest: HLT, then two timed `mov cx, N; loop $; hlt` (run on the soft CPU)', () => {
  assert.deepEqual([...probeCode(0x1234)], [0xf4, 0xb9, 0x34, 0x12, 0xe2, 0xfe, 0xf4, 0xb9, 0x34, 0x12, 0xe2, 0xfe, 0xf4]);
  assert.ok(probeCode().length <= 16, 'it fits between the reset vector and the end of memory');
  assert.throws(() => probeCode(0x10000), RangeError);
  // A fake clock: each reading 1 ms later, so each timed run "takes" 1 ms and both runs happen.
  let t = 0n;
  const probe = probeRing0(SoftBackend.open(), 1000, () => (t += 1_000_000n));
  assert.deepEqual(probe, { iterations: 1000, ns: 1_000_000 });
  // A fast first run is enough.
  t = 0n;
  let reads = 0;
  const fast = probeRing0(SoftBackend.open(), 1000, () => { reads++; return (t += 1000n); });
  assert.deepEqual([fast.ns, reads], [1000, 2]);
});
