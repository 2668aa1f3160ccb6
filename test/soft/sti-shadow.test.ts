// The interrupt shadow of STI covers one instruction: an interrupt waiting for IF comes at the
// boundary after it (guests/soft/sti-shadow.asm). The soft CPU takes interrupts in its run loop,
// between blocks; compiled regions, and the dispatcher that runs them one after another, return
// to it only at some boundaries. Code that drops IF again soon after STI (Linux's scheduler
// waiting for another CPU: its runqueue lock taken and dropped with interrupts off) must still
// take the interrupt there, whether interpreted or compiled, and not only once the loop ends.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JitKind } from '../../src/backends/soft/exec.js';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import type { InlineDevices } from '../../src/nvmm/backend.js';
import { idtGuest, imageQword } from '../helpers/idt-guest.js';
import { withMachine } from '../helpers/machine.js';
import { guestImage, needsNasm } from '../helpers/nasm.js';

/** One interrupt line (vector 0x20) that writing 1 to port 0x41 raises; other port writes are recorded. */
class Line implements InlineDevices {
  line = false;
  readonly writes: [number, number][] = [];
  io(port: number, _size: number, isIn: boolean, value: number): number {
    if (isIn) return 0xff;
    if (port === 0x41) this.line ||= value === 1;
    else this.writes.push([port, value]);
    return 0;
  }
  interruptPending(): boolean { return this.line; }
  acknowledge(): number { this.line = false; return 0x20; }
  tick(): number { return Infinity; }
  ended(): boolean { return false; }
}

/** The round in which the guest raises the line (guests/soft/sti-shadow.asm). */
const WARM = 100;

const RUNS: [JitKind, number][] = [['wasm', -1], ['wasm', 0], ['wasm', 3], ['js', 0]];

for (const [kind, threshold] of RUNS) {
  const how = threshold < 0 ? 'interpreted' : `compiled (${kind}, threshold ${threshold})`;
  test(`soft, ${how}: an interrupt waiting for IF comes after the one instruction in STI's shadow, in a loop that clears IF again`, needsNasm, () => {
    const image = guestImage('soft/sti-shadow.asm');
    withMachine(SoftBackend.open({ jit: { kind, threshold } }), (machine) => {
      const vcpu = idtGuest(machine, image, [[0x20, imageQword(image, 8)]]);
      const dev = new Line();
      vcpu.setInlineDevices(dev);
      const exit = vcpu.run();
      assert.equal(exit.kind, 'halted', `ended with ${exit.kind}`);
      // R13 and the round when each part's interrupt came: after the first INC R13 (the STI's
      // shadow) of the round that raised the line.
      assert.deepEqual(dev.writes, [[0xe0, 1], [0xe0, WARM], [0xe0, 1], [0xe0, WARM]]);
    });
  });
}
