// The soft backend's tracing hook (--trace cpu): address, bytes, disassembly and changed registers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import type { TraceRecord } from '../../src/nvmm/trace.js';
import { PROT } from '../../src/nvmm/backend.js';
import { GPR, STATE } from '../../src/nvmm/state.js';
import { mapPage } from '../../src/selftest/guest-x64.js';
import { withMachine } from '../helpers/machine.js';

test('trace hook sees each instruction with its changed registers', () => {
  const seen: TraceRecord[] = [];
  withMachine(SoftBackend.open({ trace: (r) => seen.push(r) }), (machine) => {
    mapPage(machine, 0xffff0000, PROT.READ | PROT.EXEC).set([0x01, 0xc3, 0xf4]); // add %eax,%ebx; hlt (calc-vm)
    const vcpu = machine.createVcpu(0);
    const s = vcpu.getState(STATE.GPRS);
    s.gprs[GPR.RIP] = 0n; s.gprs[GPR.RAX] = 3n; s.gprs[GPR.RBX] = 5n;
    vcpu.setState(STATE.GPRS);
    assert.equal(vcpu.run().kind, 'halted');
    assert.equal(seen.length, 2);
    assert.equal(seen[0]!.rip, 0n);
    assert.deepEqual([...seen[0]!.bytes], [0x01, 0xc3]);
    assert.match(seen[0]!.text, /add\s+%ax,%bx/);
    assert.equal(seen[0]!.changed.rbx, 8n);
    assert.match(seen[1]!.text, /hlt/);
  });
});
