// The real CPU as the oracle of the opcode walk (test/soft/opcode-walk.ts): every 64-bit form of
// docs/soft-cpu-opcodes.md runs at CPL 3 on KVM (whose guests' user mode runs on the processor
// itself, kvm_pvm's included) and on the soft CPU, and each must end the same way on both: it
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
import { walkForms } from './opcode-forms.js';
import { bindEnv, describe, GP, hardwareExclusion, makeProbe, outcomeName, runWalk, walkEnv } from './opcode-walk.js';

test('opcode walk at CPL 3 in 64-bit mode: the soft CPU completes or faults where the real CPU does (KVM)', (t) => {
  const kvm = kvmOrSkip(t);
  if (!kvm) return;
  if (!hasNasm()) return t.skip('nasm not installed');
  const env = bindEnv(walkEnv(64, 3));
  const probes = walkForms(64).map((f) => makeProbe(f, env));
  const hw = runWalk(kvm, env, probes);
  const soft = runWalk(SoftBackend.open(), env, probes);
  const excluded = new Map<string, number>();
  const bad: string[] = [];
  let compared = 0;
  probes.forEach((p, k) => {
    const why = hardwareExclusion(p.f, hw.cpuid, soft.cpuid);
    if (why) { excluded.set(why, (excluded.get(why) ?? 0) + 1); return; }
    compared++;
    const a = hw.failures.get(k) ?? outcomeName(hw.outcome[k]!) + (hw.outcome[k] === GP ? `(${hw.errcode[k]})` : '');
    const b = soft.failures.get(k) ?? outcomeName(soft.outcome[k]!) + (soft.outcome[k] === GP ? `(${soft.errcode[k]})` : '');
    if (a !== b) bad.push(`${describe(p.f)}: KVM ${a}, soft ${b}`);
  });
  for (const [why, n] of excluded) t.diagnostic(`left out: ${n} forms: ${why}`);
  t.diagnostic(`${compared} of ${probes.length} forms compared`);
  assert.deepEqual(bad.slice(0, 200), [], `${bad.length} of ${compared} forms differ`);
  assert.ok(compared > probes.length / 2, `only ${compared} of ${probes.length} forms compared`);
});
