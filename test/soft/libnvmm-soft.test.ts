// The ported libnvmm suite on the soft backend (no KVM needed): every case of shared/specs/libnvmm-tests.md.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { LIBNVMM_CASE_COUNT, runLibnvmmSuite, type CaseResult } from '../../src/selftest/libnvmm.js';
import { needsNasm } from '../helpers/nasm.js';

test('libnvmm suite on soft', needsNasm, async (t) => {
  const results: CaseResult[] = [];
  runLibnvmmSuite(SoftBackend.open(), (r) => results.push(r));
  for (const r of results) {
    await t.test(r.name, () => assert.ok(r.pass, r.detail));
  }
  assert.equal(results.length, LIBNVMM_CASE_COUNT);
});
