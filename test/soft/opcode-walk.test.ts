// The executing walk of docs/soft-cpu-opcodes.md (test/soft/opcode-walk.ts): every form of the
// table runs on the soft CPU in real mode (16-bit code), flat protected mode (32-bit) and long
// mode (64-bit), at CPL 0, and must end as the table claims: the instruction completes, or raises
// #UD (undefined, or a feature the model lacks), or the exception its rule names; never with an
// exit that ends the machine (TSVMM_GUEST "not implemented", a triple fault). The 64-bit forms also
// run at CPL 3 (the guest the real CPU runs in opcode-walk-kvm.test.ts), where privileged
// instructions and INT n through DPL-0 gates raise #GP.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { hasNasm } from '../../src/common/nasm.js';
import type { CpuMode } from '../../src/x86/decoder.js';
import { formOf, walkForms } from './opcode-forms.js';
import { bindEnv, describe, EXEC, makeProbe, outcomeName, runWalk, UD, walkEnv } from './opcode-walk.js';

const RUNS: [CpuMode, 0 | 3, string][] = [[16, 0, 'real mode'], [32, 0, 'protected mode, CPL 0'], [64, 0, 'long mode, CPL 0'], [64, 3, 'long mode, CPL 3']];

for (const [mode, cpl, where] of RUNS) {
  test(`opcode walk, ${mode}-bit code (${where}): every form ends as the table says (soft)`, (t) => {
    if (!hasNasm()) return t.skip('nasm not installed');
    const env = bindEnv(walkEnv(mode, cpl));
    const probes = walkForms(mode).map((f) => makeProbe(f, env));
    const r = runWalk(SoftBackend.open(), env, probes);
    const bad: string[] = [];
    probes.forEach((p, k) => {
      const why = r.failures.get(k);
      const got = r.outcome[k]!;
      if (why) bad.push(`${describe(p.f)}: ended the machine: ${why}`);
      else if (got !== p.expect) bad.push(`${describe(p.f)}: ${outcomeName(got)}, the table says ${outcomeName(p.expect)}${p.rule ? ` (${p.rule.what})` : ''}`);
      else if (p.errcode !== undefined && r.errcode[k] !== p.errcode) bad.push(`${describe(p.f)}: ${outcomeName(got)}(0x${r.errcode[k]!.toString(16)}), the table says error code 0x${p.errcode.toString(16)} (${p.rule!.what})`);
    });
    t.diagnostic(`${probes.length} forms, ${probes.filter((p) => p.rule?.setup).length} with a set-up`);
    assert.deepEqual(bad.slice(0, 300), [], `${bad.length} of ${probes.length} forms`);
  });
}

/** LOCK: #UD but before ADD ADC AND BTC BTR BTS CMPXCHG CMPXCHG8B/16B DEC INC NEG NOT OR SBB SUB XOR XADD XCHG with a memory destination. */
const LOCK_FORMS: [number[], number][] = [
  [[0xf0, 0x01, 0x03], EXEC], // lock add [rbx], eax
  [[0xf0, 0x87, 0x03], EXEC], // lock xchg [rbx], eax
  [[0xf0, 0x0f, 0xab, 0x03], EXEC], // lock bts [rbx], eax
  [[0xf0, 0x0f, 0xc7, 0x0b], EXEC], // lock cmpxchg8b [rbx]
  [[0xf0, 0xf7, 0x13], EXEC], // lock not dword [rbx]
  [[0xf0, 0x90], UD], // lock nop
  [[0xf0, 0x8b, 0x03], UD], // lock mov eax, [rbx]
  [[0xf0, 0x01, 0xc0], UD], // lock add eax, eax: a register destination
  [[0xf0, 0x0f, 0xa3, 0x03], UD], // lock bt [rbx], eax: BT only reads
  [[0xf0, 0x39, 0x03], UD], // lock cmp [rbx], eax
  [[0xf0, 0x0f, 0x22, 0xc0], UD], // lock mov cr0, eax (AMD's CR8 alias needs AltMovCr8)
];

test('soft CPU: LOCK raises #UD before anything but a locked read-modify-write of memory', (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  for (const mode of [32, 64] as CpuMode[]) {
    const env = bindEnv(walkEnv(mode));
    const probes = LOCK_FORMS.map(([b]) => makeProbe(formOf(mode, b), env));
    const r = runWalk(SoftBackend.open(), env, probes);
    assert.deepEqual(probes.map((p, k) => `${describe(p.f)}: ${outcomeName(r.outcome[k]!)}`),
      LOCK_FORMS.map(([, want], k) => `${describe(probes[k]!.f)}: ${outcomeName(want)}`));
  }
});
