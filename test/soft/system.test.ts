// System-level guest on the soft CPU: real -> protected -> long mode, #PF through the IDT with CR2
// and the error code, SYSCALL/SYSRET round trip through CPL 3, an injected interrupt waking HLT.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { PROT } from '../../src/nvmm/backend.js';
import { Machine } from '../../src/nvmm/machine.js';
import { GPR, SEG, STATE } from '../../src/nvmm/state.js';

test('soft CPU: modes, #PF, SYSCALL/SYSRET, interrupt wakes HLT', (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  const image = assemble('soft/system.asm');
  const machine = new Machine(SoftBackend.open());
  const mem = machine.allocateMemory(4 << 20);
  try {
    machine.mapHva(mem);
    machine.mapGpa(0, mem.hva, 4 << 20, PROT.ALL);
    mem.bytes.set(image, 0x8000);
    const vcpu = machine.createVcpu(0);
    const s = vcpu.getState(STATE.ALL);
    s.segs[SEG.CS]!.base = 0n;
    s.segs[SEG.CS]!.selector = 0;
    s.gprs[GPR.RIP] = 0x8000n;
    vcpu.setState(STATE.ALL);
    const reports: number[] = [];
    let halts = 0;
    for (let n = 0; n < 100; n++) {
      const exit = vcpu.run();
      if (exit.kind === 'io' && !exit.in) {
        const g = vcpu.getState(STATE.GPRS).gprs;
        if (exit.port === 0xe1) break;
        assert.equal(exit.port, 0xe0);
        reports.push(Number(g[GPR.RAX]! & 0xffn));
        g[GPR.RIP] = exit.npc!;
        vcpu.setState(STATE.GPRS);
        continue;
      }
      if (exit.kind === 'halted') {
        halts++;
        vcpu.inject({ type: 'interrupt', vector: 32 });
        continue;
      }
      assert.fail(`unexpected exit ${JSON.stringify(exit, (_k, v) => (typeof v === 'bigint' ? v.toString(16) : v))} after reports ${reports}`);
    }
    assert.deepEqual(reports, [1, 2, 3, 0x44, 4, 5, 6, 7]);
    assert.equal(halts, 1);
  } finally {
    machine.destroy();
    mem.free();
  }
});
