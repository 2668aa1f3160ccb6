// The real CPU as the oracle of the opcode walk (test/soft/opcode-walk.ts): every 64-bit form of
// docs/soft-cpu-opcodes.md runs at CPL 3 on KVM with VMX or SVM (whose guests' user mode runs on
// the processor itself; the guest's ring 0 takes the exceptions, which kvm_pvm does not run as a
// processor does) and on the soft CPU, and each must end the same way on both: it
// completes, or raises the same exception (#GP with the same error code). Left out, as the table
// lists: instructions of features the soft CPU's model does not advertise (the host executes
// them, the model raises #UD by design), instructions whose CPUID feature bit differs between the
// two guests' CPUID (read by the guests themselves), and, when the host's vendor is not the
// model's (AMD), the forms the vendors define differently.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { hasNasm } from '../../src/common/nasm.js';
import { kvmOrSkip } from '../helpers/kvm.js';
import { hardwareKvm } from './guest-run.js';
import { walkForms } from './opcode-forms.js';
import { bindEnv, describe, GP, guestCpuid, hardwareExclusion, makeProbe, outcomeName, runWalk, walkEnv } from './opcode-walk.js';

test('opcode walk at CPL 3 in 64-bit mode: the soft CPU completes or faults where the real CPU does (KVM)', (t) => {
  const kvm = kvmOrSkip(t);
  if (!kvm) return;
  // the probes run at CPL 3, but the guest takes their exceptions in its own ring 0
  if (!hardwareKvm()) return t.skip('needs KVM with VMX or SVM: kvm_pvm does not run a guest\'s own ring 0 as a processor does');
  if (!hasNasm()) return t.skip('nasm not installed');
  const env = bindEnv(walkEnv(64, 3));
  const softBackend = SoftBackend.open();
  const hostCpuid = guestCpuid(kvm, env), modelCpuid = guestCpuid(softBackend, env);
  const all = walkForms(64);
  const excluded = new Map<string, number>();
  const forms = all.filter((f) => {
    const why = hardwareExclusion(f, hostCpuid, modelCpuid);
    if (why) excluded.set(why, (excluded.get(why) ?? 0) + 1);
    return !why;
  });
  const probes = forms.map((f) => makeProbe(f, env));
  const hw = runWalk(kvm, env, probes);
  const soft = runWalk(softBackend, env, probes);
  const bad: string[] = [];
  const compared = probes.length;
  probes.forEach((p, k) => {
    // (INT n and INT3 through a DPL-0 gate: the vector only, EXCLUDED.intError)
    const code = p.f.mnemonic !== 'int' && p.f.mnemonic !== 'int3';
    const a = hw.failures.get(k) ?? outcomeName(hw.outcome[k]!) + (hw.outcome[k] === GP && code ? `(${hw.errcode[k]})` : '');
    const b = soft.failures.get(k) ?? outcomeName(soft.outcome[k]!) + (soft.outcome[k] === GP && code ? `(${soft.errcode[k]})` : '');
    if (a !== b) bad.push(`${describe(p.f)}: KVM ${a}, soft ${b}`);
  });
  for (const [why, n] of excluded) t.diagnostic(`left out: ${n} forms: ${why}`);
  t.diagnostic(`${compared} of ${all.length} forms compared`);
  assert.deepEqual(bad.slice(0, 200), [], `${bad.length} of ${compared} forms differ`);
  assert.ok(compared > all.length / 2, `only ${compared} of ${all.length} forms compared`);
});
