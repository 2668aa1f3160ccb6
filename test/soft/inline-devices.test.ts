// The soft CPU serving a VMM's devices inline (Vcpu.setInlineDevices): port I/O without exits,
// interrupts taken from the controller at block boundaries, timers ticked from the run loop.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import type { NowNs } from '../../src/common/clock.js';
import type { InlineDevices } from '../../src/nvmm/backend.js';
import { idtGuest, imageQword } from '../helpers/idt-guest.js';
import { withMachine } from '../helpers/machine.js';
import { guestImage, needsNasm } from '../helpers/nasm.js';

/** A one-shot timer on port 0x40 (due 20 µs after the write) in front of a one-line interrupt controller. */
class OneShot implements InlineDevices {
  constructor(private readonly now: NowNs) {}
  due = Infinity;
  line = false;
  readonly writes: [number, number][] = [];
  io(port: number, _size: number, isIn: boolean, value: number): number {
    if (isIn) return 0xff;
    this.writes.push([port, value]);
    if (port === 0x40) this.due = this.now() + 20_000;
    return 0;
  }
  interruptPending(): boolean { return this.line; }
  acknowledge(): number { this.line = false; return 0x20; }
  tick(now: number): number {
    if (now >= this.due) { this.due = Infinity; this.line = true; }
    return this.due;
  }
  ended(): boolean { return false; }
}

test('soft: a one-shot timer armed by an inline port write fires (the CPU re-reads the deadline after I/O)', needsNasm, () => {
  const image = guestImage('soft/inline-timer.asm');
  withMachine(SoftBackend.open(), (machine) => {
    assert.equal(machine.capability.inlineDevices, true);
    const vcpu = idtGuest(machine, image, [[0x20, imageQword(image, 8)]]);
    const dev = new OneShot(machine.clock.now);
    vcpu.setInlineDevices(dev);
    const exit = vcpu.run();
    assert.equal(exit.kind, 'halted', `ended with ${exit.kind}`);
    assert.deepEqual(dev.writes, [[0x40, 1], [0x20, 0x20], [0x40, 1], [0x20, 0x20], [0x40, 1], [0x20, 0x20], [0xe0, 3]]);
  });
});

test('setInlineDevices is refused by a backend without the capability', () => {
  withMachine(SoftBackend.open(), (machine) => {
    const vcpu = machine.createVcpu(0);
    (machine.capability as { inlineDevices?: boolean }).inlineDevices = false;
    assert.throws(() => vcpu.setInlineDevices(null), { code: 'TSVMM_UNSUPPORTED' });
  });
});
