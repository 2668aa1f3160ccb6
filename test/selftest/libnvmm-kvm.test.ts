// The ported libnvmm suite on the kvm backend: every case of shared/specs/libnvmm-tests.md.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LIBNVMM_CASE_COUNT, runLibnvmmSuite, type CaseResult } from '../../src/selftest/libnvmm.js';
import { kvmOrSkip } from '../helpers/kvm.js';
import { needsNasm } from '../helpers/nasm.js';

test('libnvmm suite on kvm', needsNasm, async (t) => {
  const backend = kvmOrSkip(t);
  if (!backend) return;
  const results: CaseResult[] = [];
  runLibnvmmSuite(backend, (r) => results.push(r));
  for (const r of results) {
    await t.test(r.name, () => assert.ok(r.pass, r.detail));
  }
  assert.equal(results.length, LIBNVMM_CASE_COUNT);
  assert.ok(results.length >= 40, `${results.length} cases`);
});
