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
import { walkForms } from './opcode-forms.js';
import { bindEnv, describe, makeProbe, outcomeName, runWalk, walkEnv } from './opcode-walk.js';

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
