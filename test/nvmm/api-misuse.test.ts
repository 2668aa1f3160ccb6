// Bad use of the hypervisor API is refused with a stable code and leaves the machine usable.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TsvmmError, type ErrorCode } from '../../src/common/errors.js';
import { HostMemory } from '../../src/memory/host-memory.js';
import { PROT } from '../../src/nvmm/backend.js';
import { validateEvent } from '../../src/nvmm/event.js';
import { Machine } from '../../src/nvmm/machine.js';
import { GPR, STATE } from '../../src/nvmm/state.js';
import { kvmOrSkip } from '../helpers/kvm.js';

function throwsCode(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (e: unknown) => e instanceof TsvmmError && e.code === code);
}

test('injection follows NVMM rules', () => {
  throwsCode(() => validateEvent({ type: 'interrupt', vector: 256 }), 'TSVMM_BAD_EVENT');
  throwsCode(() => validateEvent({ type: 'interrupt', vector: -1 }), 'TSVMM_BAD_EVENT');
  throwsCode(() => validateEvent({ type: 'exception', vector: 32 }), 'TSVMM_BAD_EVENT');
  throwsCode(() => validateEvent({ type: 'exception', vector: 2 }), 'TSVMM_BAD_EVENT');
  throwsCode(() => validateEvent({ type: 'exception', vector: 0 }), 'TSVMM_BAD_EVENT');
  throwsCode(() => validateEvent({ type: 'exception', vector: 3 }), 'TSVMM_BAD_EVENT');
  throwsCode(() => validateEvent({ type: 'exception', vector: 6, errorCode: 1 }), 'TSVMM_BAD_EVENT');
  assert.deepEqual(validateEvent({ type: 'exception', vector: 13 }), { type: 'exception', vector: 13, errorCode: 0 });
  assert.deepEqual(validateEvent({ type: 'exception', vector: 14, errorCode: 2 }), { type: 'exception', vector: 14, errorCode: 2 });
  assert.deepEqual(validateEvent({ type: 'interrupt', vector: 2 }), { type: 'nmi' });
  assert.deepEqual(validateEvent({ type: 'interrupt', vector: 0x20 }), { type: 'interrupt', vector: 0x20 });
});

test('GPA mapping misuse is refused and leaves the machine intact (kvm)', (t) => {
  const backend = kvmOrSkip(t);
  if (!backend) return;
  const machine = new Machine(backend);
  const mem = HostMemory.allocate(4 * 4096);
  try {
    // Not registered with mapHva yet.
    throwsCode(() => machine.mapGpa(0, mem.hva, 4096, PROT.ALL), 'TSVMM_HVA_UNMAPPED');
    machine.mapHva(mem);
    throwsCode(() => machine.mapHva(mem), 'TSVMM_BAD_ARGUMENT');
    throwsCode(() => machine.mapGpa(0x123, mem.hva, 4096, PROT.ALL), 'TSVMM_BAD_ARGUMENT');
    throwsCode(() => machine.mapGpa(0, mem.hva + 1, 4096, PROT.ALL), 'TSVMM_BAD_ARGUMENT');
    throwsCode(() => machine.mapGpa(0, mem.hva, 100, PROT.ALL), 'TSVMM_BAD_ARGUMENT');
    throwsCode(() => machine.mapGpa(0, mem.hva, 0, PROT.ALL), 'TSVMM_BAD_ARGUMENT');
    throwsCode(() => machine.mapGpa(0, mem.hva, 4096, 8), 'TSVMM_BAD_ARGUMENT');
    throwsCode(() => machine.mapGpa(0, mem.hva, 8 * 4096, PROT.ALL), 'TSVMM_HVA_UNMAPPED');
    throwsCode(() => machine.mapGpa(machine.capability.maxRam, mem.hva, 4096, PROT.ALL), 'TSVMM_LIMIT');
    machine.mapGpa(0x10000, mem.hva, 4 * 4096, PROT.ALL);
    throwsCode(() => machine.mapGpa(0x12000, mem.hva, 4096, PROT.ALL), 'TSVMM_GPA_OVERLAP');
    throwsCode(() => machine.mapGpa(0xf000, mem.hva, 2 * 4096, PROT.ALL), 'TSVMM_GPA_OVERLAP');
    throwsCode(() => machine.unmapHva(mem), 'TSVMM_HVA_BUSY');
    throwsCode(() => machine.unmapGpa(0x40000, 4096), 'TSVMM_GPA_UNMAPPED');
    throwsCode(() => machine.gpaToHva(0x9000), 'TSVMM_GPA_UNMAPPED');
    // The mapping survived every refusal.
    mem.bytes[0x1234] = 0x5a;
    const { hva, bytes, prot } = machine.gpaToHva(0x11234);
    assert.equal(hva, mem.hva + 0x1234);
    assert.equal(bytes[0], 0x5a);
    assert.equal(prot, PROT.ALL);
    // Unmapping the middle splits the mapping in two.
    machine.unmapGpa(0x11000, 2 * 4096);
    throwsCode(() => machine.gpaToHva(0x11000), 'TSVMM_GPA_UNMAPPED');
    assert.equal(machine.gpaToHva(0x10000).hva, mem.hva);
    assert.equal(machine.gpaToHva(0x13000).hva, mem.hva + 0x3000);
    machine.unmapGpa(0x10000, 4 * 4096);
    machine.unmapHva(mem);
  } finally {
    machine.destroy();
    mem.free();
  }
});

test('vCPU misuse: duplicate id, destroyed vCPU and machine, bad state mask (kvm)', (t) => {
  const backend = kvmOrSkip(t);
  if (!backend) return;
  const machine = new Machine(backend);
  const vcpu = machine.createVcpu(0);
  throwsCode(() => machine.createVcpu(0), 'TSVMM_BUSY');
  throwsCode(() => machine.createVcpu(-1), 'TSVMM_LIMIT');
  throwsCode(() => vcpu.getState(0x80), 'TSVMM_BAD_ARGUMENT');
  throwsCode(() => vcpu.inject({ type: 'exception', vector: 40 }), 'TSVMM_BAD_EVENT');
  throwsCode(() => vcpu.configure({ kind: 'cpuid', leaf: 1, exit: true }), 'TSVMM_UNSUPPORTED');
  throwsCode(() => vcpu.configure({ kind: 'cpuid', leaf: 1, set: { ecx: 1 }, del: { ecx: 1 } }), 'TSVMM_BAD_ARGUMENT');
  // The reset state is the architectural one.
  const s = vcpu.getState(STATE.GPRS);
  assert.equal(s.gprs[GPR.RIP], 0xfff0n);
  vcpu.destroy();
  throwsCode(() => vcpu.getState(STATE.GPRS), 'TSVMM_DESTROYED');
  throwsCode(() => vcpu.run(), 'TSVMM_DESTROYED');
  const again = machine.createVcpu(0); // the id is free again
  machine.destroy();
  throwsCode(() => again.getState(), 'TSVMM_DESTROYED');
  throwsCode(() => machine.createVcpu(1), 'TSVMM_DESTROYED');
});
