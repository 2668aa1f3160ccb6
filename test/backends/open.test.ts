// Choosing a backend: --cpu names a soft CPU model (and makes `auto` take the soft CPU, as --trace
// does; KVM refuses it).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CPU_MODEL_NAMES, openBackend, parseCpuModel } from '../../src/backends/open.js';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { TsvmmError } from '../../src/common/errors.js';

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
