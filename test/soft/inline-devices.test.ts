// The soft CPU serving a VMM's devices inline (Vcpu.setInlineDevices): port I/O without exits,
// interrupts taken from the controller at block boundaries, timers ticked from the run loop.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { monotonicNs } from '../../src/common/clock.js';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { PROT, type InlineDevices } from '../../src/nvmm/backend.js';
import { Machine } from '../../src/nvmm/machine.js';
import { GPR, SEG, STATE } from '../../src/nvmm/state.js';
import { DATA_GPA, mapPage, mapStandardPages, resetX64 } from '../../src/selftest/guest-x64.js';

/** A one-shot timer on port 0x40 (due 20 µs after the write) in front of a one-line interrupt controller. */
class OneShot implements InlineDevices {
  due = Infinity;
  line = false;
  readonly writes: [number, number][] = [];
  io(port: number, _size: number, isIn: boolean, value: number): number {
    if (isIn) return 0xff;
    this.writes.push([port, value]);
    if (port === 0x40) this.due = monotonicNs() + 20_000;
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

test('soft: a one-shot timer armed by an inline port write fires (the CPU re-reads the deadline after I/O)', (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  const image = assemble('soft/inline-timer.asm');
  const machine = new Machine(SoftBackend.open());
  try {
    assert.equal(machine.capability.inlineDevices, true);
    mapStandardPages(machine).set(image);
    const data = mapPage(machine, DATA_GPA, PROT.READ | PROT.WRITE);
    const dv = new DataView(data.buffer, data.byteOffset);
    dv.setBigUint64(0x808, 0x00209a0000000000n, true); // GDT[1]: 64-bit code
    dv.setBigUint64(0x810, 0x00cf92000000ffffn, true); // GDT[2]: data (SS, which IRETQ reloads)
    const handler = Number(new DataView(image.buffer).getBigUint64(8, true));
    const gate = 0x20 * 16;
    dv.setUint16(gate, handler & 0xffff, true);
    dv.setUint16(gate + 2, 0x08, true);
    dv.setUint8(gate + 5, 0x8e);
    dv.setUint16(gate + 6, handler >>> 16, true);
    const vcpu = machine.createVcpu(0);
    resetX64(vcpu);
    const s = vcpu.state;
    s.segs[SEG.GDT] = { ...s.segs[SEG.GDT]!, base: 0x1800n, limit: 23 };
    s.segs[SEG.IDT] = { ...s.segs[SEG.IDT]!, base: 0x1000n, limit: 0x21 * 16 - 1 };
    s.gprs[GPR.RSP] = 0x1ff0n;
    vcpu.setState(STATE.ALL);
    const dev = new OneShot();
    vcpu.setInlineDevices(dev);
    const exit = vcpu.run();
    assert.equal(exit.kind, 'halted', `ended with ${exit.kind}`);
    assert.deepEqual(dev.writes, [[0x40, 1], [0x20, 0x20], [0x40, 1], [0x20, 0x20], [0x40, 1], [0x20, 0x20], [0xe0, 3]]);
  } finally {
    machine.destroy();
  }
});

test('setInlineDevices is refused by a backend without the capability', () => {
  const machine = new Machine(SoftBackend.open());
  try {
    const vcpu = machine.createVcpu(0);
    (machine.capability as { inlineDevices?: boolean }).inlineDevices = false;
    assert.throws(() => vcpu.setInlineDevices(null), { code: 'TSVMM_UNSUPPORTED' });
  } finally {
    machine.destroy();
  }
});
