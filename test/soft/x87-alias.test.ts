// The reserved x87 register encodings (SDM vol. 2 appendix A.5 leaves them blank; CPUs execute
// them as FSTP1, FCOM2, FCOMP3, FXCH4, FCOMP5, FXCH7, FSTP8, FSTP9), FFREEP and the 8087/287
// leftovers FENI, FDISI, FSETPM: each must leave the x87 state (control and status words, tags,
// registers) the instruction it aliases leaves, from the same eight values
// (guests/soft/x87-alias.asm). Also run on KVM where KVM has VMX/SVM.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { backends, runGuest } from './guest-run.js';

const RESULT = 0x200000;
const ALIASES = ['FSTP1 (D9 D8+i)', 'FCOM2 (DC D0+i)', 'FCOMP3 (DC D8+i)', 'FXCH4 (DD C8+i)', 'FCOMP5 (DE D0+i)', 'FXCH7 (DF C8+i)',
  'FSTP8 (DF D0+i)', 'FSTP9 (DF D8+i)', 'FFREEP (DF C0+i)'];
const NOPS = ['FENI (DB E0)', 'FDISI (DB E1)', 'FSETPM (DB E4)'];

/** The architectural x87 state of FXSAVE image k: FCW, FSW, abridged FTW, ST0-ST7 (not FOP, FIP, FDP: the last instruction). */
function x87State(ram: Uint8Array, k: number): string {
  const a = RESULT + 512 * k;
  const hex = (from: number, to: number) => Array.from(ram.subarray(a + from, a + to), (x) => x.toString(16).padStart(2, '0')).join('');
  const st = [0, 1, 2, 3, 4, 5, 6, 7].map((r) => hex(32 + 16 * r, 42 + 16 * r));
  return `fcw ${hex(0, 2)} fsw ${hex(2, 4)} ftw ${hex(4, 5)} st ${st.join(' ')}`;
}

test('soft CPU: x87 reserved encodings execute as the instructions they alias (FSTP1 ... FSTP9, FFREEP, FENI/FDISI/FSETPM)', (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  const image = assemble('soft/x87-alias.asm');
  for (const [name, open] of backends()) {
    const run = runGuest(open(), image);
    assert.equal(run.end, 'end', name);
    const loaded = x87State(run.ram, 0);
    let k = 1;
    for (let i = 1; i <= 3; i++) {
      for (const alias of ALIASES) {
        const got = x87State(run.ram, k), want = x87State(run.ram, k + 1);
        assert.equal(got, want, `${name}: ${alias} with i = ${i}`);
        assert.notEqual(got, loaded, `${name}: ${alias} with i = ${i} changed nothing`);
        k += 2;
      }
    }
    for (const nop of NOPS) {
      assert.equal(x87State(run.ram, k), x87State(run.ram, k + 1), `${name}: ${nop} is FNOP`);
      assert.equal(x87State(run.ram, k), loaded, `${name}: ${nop} changes nothing`);
      k += 2;
    }
  }
});
