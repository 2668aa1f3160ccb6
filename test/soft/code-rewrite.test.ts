// Code the VMM rewrites between runs: the soft CPU sees the new bytes (each block re-checks its
// bytes once per run) and decodes the block again, and what it keeps per page to drop on a write
// stays one entry per block however often that happens. A guest gets there by itself: an INS into
// its own code page is completed by the VMM's assist, which writes guest memory from the host side.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend, type SoftMachine } from '../../src/backends/soft/soft-backend.js';
import { GPR, STATE } from '../../src/nvmm/state.js';
import { enterReal16, runToExit, showExit, stepOverIo, withRamMachine } from '../helpers/machine.js';

const LOOP_AT = 0x1000;
const CODE_AT = 0x2000;
/** At LOOP_AT, real mode: call CODE_AT; out 0xe0, al; jmp LOOP_AT. */
const LOOP = [0xe8, 0xfd, 0x0f, 0xe6, 0xe0, 0xeb, 0xf9];
const CLC = 0xf8;
const STC = 0xf9;
const RET = 0xc3;
const RFLAGS_CF = 1n;
const ROUNDS = 2000;

test('code rewritten by the VMM between runs is decoded again, and its page lists each block once (soft)', () => {
  withRamMachine(SoftBackend.open(), 1 << 20, ({ machine, vcpu, ram }) => {
    ram.set(LOOP, LOOP_AT);
    ram.set([CLC, RET], CODE_AT);
    const s = enterReal16(vcpu, LOOP_AT);
    s.gprs[GPR.RSP] = 0x8000n;
    vcpu.setState(STATE.ALL);
    const exec = (machine as unknown as { impl: SoftMachine }).impl.vcpuList()[0]!.exec;
    for (let n = 0; n < ROUNDS; n++) {
      const exit = runToExit(vcpu);
      assert.ok(exit.kind === 'io' && exit.port === 0xe0, showExit(exit));
      // The byte at CODE_AT as the host left it after the previous round: CLC, then STC, CLC...
      const cf = vcpu.getState(STATE.GPRS).gprs[GPR.RFLAGS]! & RFLAGS_CF;
      assert.equal(cf, n % 2 === 1 ? RFLAGS_CF : 0n, `round ${n}`);
      ram[CODE_AT] = n % 2 === 0 ? STC : CLC;
      stepOverIo(vcpu, exit);
    }
    assert.equal(exec.pageKeyCount, exec.blockCount, `${exec.blockCount} blocks, ${exec.pageKeyCount} keys listed by page`);
  });
});
