// Without a usable /dev/kvm every KVM command says so with TSVMM_NO_KVM and fails cleanly.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'tsvmm.js');

function tsvmm(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
}

test('selftest --accel kvm without /dev/kvm reports TSVMM_NO_KVM', () => {
  const r = tsvmm(['selftest', '--accel', 'kvm'], { TSVMM_KVM_DEVICE: '/nonexistent/kvm' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /TSVMM_NO_KVM: \/nonexistent\/kvm does not exist/);
});

test('an unknown command and an unknown flag are usage errors with status 2', () => {
  const a = tsvmm(['frobnicate']);
  assert.equal(a.status, 2);
  assert.match(a.stderr, /TSVMM_USAGE: unknown command 'frobnicate'/);
  const b = tsvmm(['selftest', '--frob']);
  assert.equal(b.status, 2);
  assert.match(b.stderr, /TSVMM_USAGE: Unknown option '--frob'/);
  const c = tsvmm(['selftest', '--accel', 'tcg']);
  assert.equal(c.status, 2);
  assert.match(c.stderr, /TSVMM_USAGE: unknown accelerator 'tcg'/);
});

test('help lists the commands', () => {
  const r = tsvmm(['help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /selftest/);
});
