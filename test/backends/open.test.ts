// Choosing a backend: --cpu names a soft CPU model (and makes `auto` take the soft CPU, as --trace
// does; KVM refuses it); `auto` passes a KVM over that emulates guest ring 0, in one logged line,
// and keeps one that does not (fake KVM backends: this machine has no /dev/kvm).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CPU_MODEL_NAMES, openAuto, openBackend, parseCpuModel } from '../../src/backends/open.js';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { TsvmmError } from '../../src/common/errors.js';
import type { Backend } from '../../src/nvmm/backend.js';

const code = (code: string) => (e: unknown) => e instanceof TsvmmError && e.code === code;

test('--cpu: the soft CPU models, refused by KVM, chosen by auto', () => {
  assert.deepEqual([...CPU_MODEL_NAMES].sort(), ['max', 'qemu64']);
  assert.equal(parseCpuModel('qemu64'), 'qemu64');
  assert.throws(() => parseCpuModel('pentium'), code('TSVMM_USAGE'));
  assert.throws(() => openBackend('kvm', { cpu: 'max' }), code('TSVMM_UNSUPPORTED'));
  const auto = openBackend('auto', { cpu: 'qemu64' });
  assert.ok(auto instanceof SoftBackend);
  assert.equal(auto.cpuModel.name, 'qemu64');
  const soft = openBackend('soft');
  assert.ok(soft instanceof SoftBackend);
  assert.equal(soft.cpuModel.name, 'max', 'the default model');
  assert.throws(() => SoftBackend.open({ cpu: 'k6' as 'max' }), code('TSVMM_BAD_ARGUMENT'));
});

/** A stand-in for an opened KVM backend that records whether it was closed. */
function fakeKvm(): Backend & { closed: boolean } {
  const b: Backend & { closed: boolean } = Object.assign(SoftBackend.open(), { closed: false, close: () => void (b.closed = true) });
  return b;
}

test('auto: a KVM that emulates guest ring 0 is closed and the soft CPU taken, with one line saying why', () => {
  const kvm = fakeKvm();
  const soft = SoftBackend.open();
  const notes: string[] = [];
  const got = openAuto(() => soft, (m) => notes.push(m), () => kvm, () => ({ native: false, why: 'KVM here is kvm_pvm (PVM), which emulates guest kernel code' }));
  assert.equal(got, soft);
  assert.equal(kvm.closed, true);
  assert.deepEqual(notes, ['--accel auto: KVM here is kvm_pvm (PVM), which emulates guest kernel code: using the soft CPU (--accel kvm uses KVM anyway)']);
  assert.ok(!notes[0]!.includes('\n'));
});

test('auto: a native KVM is kept, silently; no KVM gives the soft CPU, silently', () => {
  const kvm = fakeKvm();
  const notes: string[] = [];
  assert.equal(openAuto(() => SoftBackend.open(), (m) => notes.push(m), () => kvm, () => ({ native: true, why: 'KVM here is kvm_amd' })), kvm);
  assert.equal(kvm.closed, false);
  const soft = SoftBackend.open();
  const none = () => { throw new TsvmmError('TSVMM_NO_KVM', 'no /dev/kvm'); };
  assert.equal(openAuto(() => soft, (m) => notes.push(m), none, () => assert.fail('checked a KVM that did not open')), soft);
  assert.deepEqual(notes, []);
});
