// System-level guest on the soft CPU: real -> protected -> long mode, #PF through the IDT with CR2
// and the error code, SYSCALL/SYSRET round trip through CPL 3, an injected interrupt waking HLT.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { GPR, STATE } from '../../src/nvmm/state.js';
import { enterReal16, showExit, stepOverIo, withRamMachine } from '../helpers/machine.js';
import { guestImage, needsNasm } from '../helpers/nasm.js';

test('soft CPU: modes, #PF, SYSCALL/SYSRET, interrupt wakes HLT', needsNasm, () => {
  const image = guestImage('soft/system.asm');
  withRamMachine(SoftBackend.open(), 4 << 20, ({ vcpu, ram }) => {
    ram.set(image, 0x8000);
    enterReal16(vcpu, 0x8000);
    vcpu.setState(STATE.ALL);
    const reports: number[] = [];
    let halts = 0;
    for (let n = 0; n < 100; n++) {
      const exit = vcpu.run();
      if (exit.kind === 'io' && !exit.in) {
        if (exit.port === 0xe1) break;
        assert.equal(exit.port, 0xe0);
        reports.push(Number(stepOverIo(vcpu, exit)[GPR.RAX]! & 0xffn));
        continue;
      }
      if (exit.kind === 'halted') {
        halts++;
        vcpu.inject({ type: 'interrupt', vector: 32 });
        continue;
      }
      assert.fail(`unexpected exit ${showExit(exit)} after reports ${reports}`);
    }
    assert.deepEqual(reports, [1, 2, 3, 0x44, 4, 5, 6, 7]);
    assert.equal(halts, 1);
  });
});
