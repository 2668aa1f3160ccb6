// The libnvmm suites' standard guest state (src/selftest/guest-x64.ts): the reset_machine()
// values the expected results were recorded with (spec §0.1).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { CR, MSR, STATE } from '../../src/nvmm/state.js';
import { resetX64 } from '../../src/selftest/guest-x64.js';
import { withMachine } from '../helpers/machine.js';

test('reset_machine(): CR0 0x80050033, CR4 PAE, EFER LMA|LME|SCE, XCR0 x87', () => {
  withMachine(SoftBackend.open(), (machine) => {
    const vcpu = machine.createVcpu(0);
    resetX64(vcpu);
    const s = vcpu.getState(STATE.CRS | STATE.MSRS);
    assert.equal(s.crs[CR.CR0], 0x80050033n);
    assert.equal(s.crs[CR.CR4], 0x20n);
    assert.equal(s.crs[CR.XCR0], 1n);
    assert.equal(s.msrs[MSR.EFER], 0x501n);
  });
});
