import { test } from 'node:test';
import assert from 'node:assert/strict';
import { I8259Pic } from '../../src/devices/i8259-pic.js';
import { PortBus } from '../../src/devices/bus.js';

/** A PIC on a port bus at the PC addresses, initialized the way Linux's init_8259A does. */
function setup(opts: { autoEoi?: boolean } = {}) {
  const intr: boolean[] = [];
  const pic = new I8259Pic({ onIntr: (a) => intr.push(a) });
  const bus = new PortBus();
  bus.register(0x20, 2, 'pic1', pic.master);
  bus.register(0xa0, 2, 'pic2', pic.slave);
  bus.register(0x4d0, 2, 'elcr', pic.elcr);
  const out = (port: number, v: number) => bus.write(port, 1, v);
  const inb = (port: number) => bus.read(port, 1);
  out(0x21, 0xff); out(0xa1, 0xff); // mask everything
  out(0x20, 0x11); // ICW1: edge, cascade, ICW4 follows
  out(0x21, 0x30); // ICW2: IRQ 0-7 -> vectors 0x30-0x37
  out(0x21, 0x04); // ICW3: slave on IR2
  out(0x21, opts.autoEoi ? 0x03 : 0x01); // ICW4: 8086 mode (+AEOI)
  out(0xa0, 0x11);
  out(0xa1, 0x38); // IRQ 8-15 -> 0x38-0x3f
  out(0xa1, 0x02); // slave ID 2
  out(0xa1, 0x01);
  out(0x21, 0xfb); out(0xa1, 0xff); // everything masked except the cascade
  return { pic, out, inb, intr };
}

const EOI = 0x20;
const readIrr = (s: ReturnType<typeof setup>, port: number) => { s.out(port, 0x0a); return s.inb(port); };
const readIsr = (s: ReturnType<typeof setup>, port: number) => { s.out(port, 0x0b); return s.inb(port); };

test('after init the masks read back and nothing is pending', () => {
  const s = setup();
  assert.equal(s.inb(0x21), 0xfb);
  assert.equal(s.inb(0xa1), 0xff);
  assert.equal(s.pic.pendingInterrupt(), false);
  assert.equal(readIrr(s, 0x20), 0);
});

test('a masked edge is latched in IRR and delivered when unmasked; EOI clears ISR', () => {
  const s = setup();
  s.pic.line(0).pulse();
  assert.equal(readIrr(s, 0x20), 0x01);
  assert.equal(s.pic.pendingInterrupt(), false);
  s.out(0x21, 0xfa); // unmask IRQ 0
  assert.equal(s.pic.pendingInterrupt(), true);
  assert.deepEqual(s.intr, [true]);
  assert.equal(s.pic.acknowledge(), 0x30);
  assert.equal(s.pic.pendingInterrupt(), false);
  assert.deepEqual(s.intr, [true, false]);
  assert.equal(readIrr(s, 0x20), 0);
  assert.equal(readIsr(s, 0x20), 0x01);
  s.out(0x20, EOI);
  assert.equal(readIsr(s, 0x20), 0);
});

test('priority: a lower-priority request waits for EOI, a higher one nests', () => {
  const s = setup();
  s.out(0x21, 0xe8); // unmask 0, 1, 2(cascade), 4
  s.pic.line(4).pulse();
  assert.equal(s.pic.acknowledge(), 0x34);
  s.pic.line(4).pulse(); // same level again: blocked by ISR
  assert.equal(s.pic.pendingInterrupt(), false);
  s.pic.line(1).pulse(); // higher priority nests
  assert.equal(s.pic.pendingInterrupt(), true);
  assert.equal(s.pic.acknowledge(), 0x31);
  assert.equal(readIsr(s, 0x20), 0x12);
  s.out(0x20, EOI); // non-specific EOI clears the highest (IR1)
  assert.equal(readIsr(s, 0x20), 0x10);
  assert.equal(s.pic.pendingInterrupt(), false); // IR4 still in service
  s.out(0x20, 0x60 | 4); // specific EOI of IR4
  assert.equal(s.pic.acknowledge(), 0x34);
});

test('slave IRQ goes through the cascade; both chips need EOI', () => {
  const s = setup();
  s.out(0xa1, 0xef); // unmask IRQ 12
  s.pic.line(12).pulse();
  assert.equal(s.pic.pendingInterrupt(), true);
  assert.equal(s.pic.acknowledge(), 0x3c);
  assert.equal(readIsr(s, 0x20), 0x04);
  assert.equal(readIsr(s, 0xa0), 0x10);
  s.pic.line(12).pulse();
  assert.equal(s.pic.pendingInterrupt(), false);
  s.out(0xa0, EOI);
  assert.equal(s.pic.pendingInterrupt(), false); // master IR2 still in service
  s.out(0x20, EOI);
  assert.equal(s.pic.acknowledge(), 0x3c);
});

test('a request that goes away before INTA gives spurious IRQ 7 / IRQ 15', () => {
  const s = setup();
  s.out(0x4d0, 0x80); s.out(0x4d1, 0x02); // IRQ 7 and 9 level-triggered
  assert.equal(s.inb(0x4d0), 0x80);
  s.out(0x21, 0x7a); // unmask 0, 2, 7
  s.out(0xa1, 0xfd); // unmask 9
  s.pic.setIrq(9, true);
  assert.equal(s.pic.pendingInterrupt(), true);
  s.pic.setIrq(9, false); // line drops; IRR follows
  assert.equal(s.pic.pendingInterrupt(), false);
  assert.equal(s.pic.acknowledge(), 0x37); // master has nothing: its IR7
  assert.equal(readIsr(s, 0x20), 0); // spurious: no ISR bit
  // The slave's INT feeds the master's IR2 as a level, so masking at the slave withdraws it too.
  s.pic.setIrq(9, true);
  s.out(0xa1, 0xff);
  assert.equal(s.pic.pendingInterrupt(), false);
  assert.equal(s.pic.acknowledge(), 0x37);
  assert.equal(readIsr(s, 0xa0), 0);
});

test('level-triggered input re-requests after EOI while still high', () => {
  const s = setup();
  s.out(0x4d1, 0x02); // IRQ 9 level
  s.out(0xa1, 0xfd);
  s.pic.setIrq(9, true);
  assert.equal(s.pic.acknowledge(), 0x39);
  assert.equal(s.pic.pendingInterrupt(), false);
  s.out(0xa0, EOI); s.out(0x20, EOI);
  assert.equal(s.pic.pendingInterrupt(), true);
  assert.equal(s.pic.acknowledge(), 0x39);
  s.pic.setIrq(9, false);
  s.out(0xa0, EOI); s.out(0x20, EOI);
  assert.equal(s.pic.pendingInterrupt(), false);
});

test('ELCR bits hard-wired to edge stay 0', () => {
  const s = setup();
  s.out(0x4d0, 0xff); s.out(0x4d1, 0xff);
  assert.equal(s.inb(0x4d0), 0xf8);
  assert.equal(s.inb(0x4d1), 0xde);
});

test('auto-EOI leaves ISR clear', () => {
  const s = setup({ autoEoi: true });
  s.out(0x21, 0xfa);
  s.pic.line(0).pulse();
  assert.equal(s.pic.acknowledge(), 0x30);
  assert.equal(readIsr(s, 0x20), 0);
  s.pic.line(0).pulse();
  assert.equal(s.pic.acknowledge(), 0x30);
});

test('poll command acknowledges and reports the level', () => {
  const s = setup();
  s.out(0x21, 0xf2); // unmask 0, 2, 3
  s.pic.line(3).pulse();
  s.out(0x20, 0x0c); // OCW3 poll
  assert.equal(s.inb(0x20), 0x83);
  assert.equal(readIsr(s, 0x20), 0x08);
  s.out(0x20, 0x0c);
  assert.equal(s.inb(0x20), 0x00); // nothing pending (IR3 in service)
});

test('rotation: set priority makes IR5 lowest, so IR6 beats IR1', () => {
  const s = setup();
  s.out(0x21, 0x00);
  s.out(0x20, 0xc0 | 5); // set priority: lowest = IR5
  s.pic.line(1).pulse();
  s.pic.line(6).pulse();
  assert.equal(s.pic.acknowledge(), 0x36);
  s.out(0x20, 0xa0); // rotate on non-specific EOI: IR6 becomes lowest
  assert.equal(s.pic.acknowledge(), 0x31);
});

test('special mask mode lets lower levels through a masked in-service level', () => {
  const s = setup();
  s.out(0x21, 0x00);
  s.pic.line(1).pulse();
  assert.equal(s.pic.acknowledge(), 0x31);
  s.pic.line(5).pulse();
  assert.equal(s.pic.pendingInterrupt(), false);
  s.out(0x21, 0x02); // mask IR1 (in service)
  s.out(0x20, 0x68); // OCW3: set special mask mode
  assert.equal(s.pic.acknowledge(), 0x35);
});

test('re-initialization clears ISR/IMR; state round-trips', () => {
  const s = setup();
  s.out(0x21, 0xfa);
  s.pic.line(0).pulse();
  s.pic.acknowledge();
  const saved = s.pic.getState();
  const other = new I8259Pic();
  other.restore(saved);
  assert.deepEqual(other.getState(), saved);
  s.out(0x20, 0x11);
  assert.equal(s.inb(0x21), 0);
  s.out(0x21, 0x08); s.out(0x21, 0x04); s.out(0x21, 0x01);
  assert.equal(readIsr(s, 0x20), 0);
});
