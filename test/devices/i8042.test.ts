import { test } from 'node:test';
import assert from 'node:assert/strict';
import { I8042 } from '../../src/devices/i8042.js';
import { RecordingIrqLine } from '../../src/devices/irq.js';

const DATA = 0, CMD = 4; // ports 0x60 and 0x64 as offsets into the 0x60 window

function setup() {
  const irq1 = new RecordingIrqLine();
  const irq12 = new RecordingIrqLine();
  let resets = 0;
  const a20: boolean[] = [];
  const kbc = new I8042({ onReset: () => resets++, irq1, irq12, onA20: (on) => a20.push(on) });
  const inb = (off: number): number => kbc.read(off, 1);
  const outb = (off: number, v: number): void => kbc.write(off, 1, v);
  /** Reads everything waiting, as Linux's i8042_flush does. */
  const drain = (): number[] => {
    const out: number[] = [];
    while (inb(CMD) & 0x01) out.push(inb(DATA));
    return out;
  };
  return { kbc, irq1, irq12, inb, outb, drain, resets: () => resets, a20 };
}

test('status register: empty buffer, system flag, command/data bit', () => {
  const { inb, outb } = setup();
  assert.equal(inb(CMD), 0x14); // SYS | UNLOCKED
  outb(CMD, 0xae);
  assert.equal(inb(CMD), 0x1c); // + CMD (last write was a command)
  outb(DATA, 0xf4);
  assert.equal(inb(CMD) & 0x09, 0x01); // a data write clears CMD; the ACK waits
});

test('command byte read/write through 0x20/0x60, SYS mirrored, IRQ1 gating', () => {
  const { inb, outb, irq1, drain } = setup();
  outb(CMD, 0x20);
  assert.equal(inb(CMD) & 0x21, 0x01); // keyboard-side byte waiting
  assert.equal(irq1.level, true); // the power-on command byte enables IRQ1
  assert.equal(inb(DATA), 0x45);
  assert.equal(irq1.level, false);
  outb(CMD, 0x60);
  outb(DATA, 0x30); // both ports disabled, no interrupts, SYS clear
  assert.equal(inb(CMD) & 0x04, 0);
  outb(CMD, 0x20);
  assert.equal(irq1.level, false); // IRQ1 disabled in the command byte
  assert.deepEqual(drain(), [0x30]);
  outb(CMD, 0x60);
  outb(DATA, 0x47);
  assert.equal(inb(CMD) & 0x04, 0x04);
  // Other internal RAM bytes.
  outb(CMD, 0x65);
  outb(DATA, 0x99);
  outb(CMD, 0x25);
  assert.deepEqual(drain(), [0x99]);
});

test('self-test, interface tests, enable/disable bits in the command byte', () => {
  const { outb, drain } = setup();
  outb(CMD, 0xaa);
  assert.deepEqual(drain(), [0x55]);
  outb(CMD, 0xab);
  outb(CMD, 0xa9);
  assert.deepEqual(drain(), [0x00, 0x00]);
  const ctr = (): number => { outb(CMD, 0x20); return drain()[0]!; };
  outb(CMD, 0xad);
  assert.equal(ctr() & 0x10, 0x10);
  outb(CMD, 0xae);
  assert.equal(ctr() & 0x10, 0);
  outb(CMD, 0xa7);
  assert.equal(ctr() & 0x20, 0x20);
  outb(CMD, 0xa8);
  assert.equal(ctr() & 0x20, 0);
});

test('reset: 0xFE pulse and an output-port write with bit 0 clear call onReset; 0xFF does not', () => {
  const { outb, inb, drain, resets, a20 } = setup();
  outb(CMD, 0xff);
  assert.equal(resets(), 0);
  outb(CMD, 0xfe);
  assert.equal(resets(), 1);
  outb(CMD, 0xd0);
  assert.deepEqual(drain(), [0xcf]);
  outb(CMD, 0xd1);
  outb(DATA, 0xcd); // A20 off, reset line high
  assert.equal(resets(), 1);
  assert.deepEqual(a20, [false]);
  outb(CMD, 0xd1);
  outb(DATA, 0xce); // bit 0 clear: reset
  assert.equal(resets(), 2);
  assert.deepEqual(a20, [false, true]);
  outb(CMD, 0xd0);
  assert.equal(inb(DATA), 0xcf); // the reset line comes back high
});

test('keyboard commands at 0x60 are ACKed; reset answers ACK then BAT passed', () => {
  const { outb, drain, irq1 } = setup();
  outb(DATA, 0xff);
  assert.equal(irq1.level, true);
  assert.deepEqual(drain(), [0xfa, 0xaa]);
  assert.equal(irq1.rises, 2); // the line dropped on the first read and rose for the second byte
  outb(DATA, 0xf5);
  outb(DATA, 0xed); // set LEDs: ACK, then ACK the parameter
  outb(DATA, 0x07);
  outb(DATA, 0xf4);
  assert.deepEqual(drain(), [0xfa, 0xfa, 0xfa, 0xfa]);
  outb(DATA, 0xf2); // identify, through translation
  outb(DATA, 0xee); // echo
  outb(DATA, 0xf0); // scancode set query
  outb(DATA, 0x00);
  assert.deepEqual(drain(), [0xfa, 0xab, 0x41, 0xee, 0xfa, 0xfa, 0x02]);
});

test('aux port: loopback data raises IRQ12 with AUX_OBF; a write to the absent mouse gets 0xFE', () => {
  const { outb, inb, irq1, irq12 } = setup();
  outb(CMD, 0x60);
  outb(DATA, 0x47); // both interrupts on
  outb(CMD, 0xd3);
  outb(DATA, 0x5a);
  assert.equal(inb(CMD) & 0x21, 0x21);
  assert.equal(irq12.level, true);
  assert.equal(irq1.level, false);
  assert.equal(inb(DATA), 0x5a);
  assert.equal(irq12.level, false);
  outb(CMD, 0xd4);
  outb(DATA, 0xf2);
  assert.equal(inb(CMD) & 0x21, 0x21);
  assert.equal(inb(DATA), 0xfe);
  // Empty buffer: 0x60 repeats the last byte.
  assert.equal(inb(DATA), 0xfe);
  outb(CMD, 0xd2);
  outb(DATA, 0x1c);
  assert.equal(inb(CMD) & 0x21, 0x01);
  assert.equal(irq1.level, true);
});

test('getState/restore round-trips the queue and the command byte', () => {
  const a = setup();
  a.outb(DATA, 0xff);
  a.outb(CMD, 0xa7);
  const state = a.kbc.getState();
  const b = setup();
  b.kbc.restore(state);
  assert.equal(b.irq1.level, true);
  assert.deepEqual(b.drain(), [0xfa, 0xaa]);
  b.outb(CMD, 0x20);
  assert.deepEqual(b.drain(), [0x65]);
  assert.deepEqual(a.drain(), [0xfa, 0xaa]); // the saved state was a copy
});
