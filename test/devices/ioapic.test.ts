import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IoApic } from '../../src/devices/ioapic.js';
import { LocalApic, deliverToApics, type ApicMessage } from '../../src/devices/local-apic.js';

function setup() {
  const sent: ApicMessage[] = [];
  const io = new IoApic({ id: 2, deliver: (m) => sent.push(m) });
  const w32 = (off: number, v: number) => io.write(off, new Uint8Array([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]));
  const r32 = (off: number) => { const d = new Uint8Array(4); io.read(off, d); return (d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24)) >>> 0; };
  const reg = (i: number) => { w32(0x00, i); return r32(0x10); };
  const setReg = (i: number, v: number) => { w32(0x00, i); w32(0x10, v); };
  return { io, sent, reg, setReg, r32 };
}

test('ID, version (0x11, 24 entries), arbitration; entries reset masked', () => {
  const s = setup();
  assert.equal(s.reg(0x00), 0x0200_0000);
  assert.equal(s.reg(0x01), 0x0017_0011);
  assert.equal(s.reg(0x02), 0x0200_0000);
  s.setReg(0x00, 0x0500_0000);
  assert.equal(s.reg(0x00), 0x0500_0000);
  s.setReg(0x01, 0);
  assert.equal(s.reg(0x01), 0x0017_0011);
  for (let n = 0; n < 24; n++) assert.equal(s.reg(0x10 + 2 * n), 0x10000);
  assert.equal(s.reg(0x10 + 2 * 24), 0); // past the table
  s.setReg(0x10, 0x0000_0000); s.setReg(0x00, 0x0a00_0000);
  assert.equal(s.r32(0x00), 0x00); // IOREGSEL reads back
});

test('edge entry: vector, physical destination; masked edges are lost', () => {
  const s = setup();
  s.setReg(0x10 + 2 * 2, 0x0000_0030); // pin 2 (timer via override), fixed, edge, vector 0x30
  s.setReg(0x11 + 2 * 2, 0x0100_0000); // destination APIC 1
  s.io.setIrq(2, true);
  s.io.setIrq(2, true); // no new edge
  s.io.setIrq(2, false);
  assert.deepEqual(s.sent, [{ destination: 1, destMode: 'physical', mode: 'fixed', vector: 0x30, shorthand: 'none', level: true, trigger: 'edge' }]);
  s.setReg(0x10 + 2 * 2, 0x0001_0030); // masked
  s.io.setIrq(2, true); s.io.setIrq(2, false);
  s.setReg(0x10 + 2 * 2, 0x0000_0030);
  assert.equal(s.sent.length, 1);
  assert.equal(s.reg(0x10 + 2 * 2), 0x30);
});

test('level entry: remote IRR until EOI, re-sent while still asserted', () => {
  const s = setup();
  s.setReg(0x10 + 2 * 9, 0x0000_a941); // pin 9 (SCI): level, active low, logical, lowest priority, vector 0x41
  s.setReg(0x11 + 2 * 9, 0xff00_0000);
  s.io.setIrq(9, true);
  assert.equal(s.sent.length, 1);
  assert.deepEqual(s.sent[0], { destination: 0xff, destMode: 'logical', mode: 'lowestPriority', vector: 0x41, shorthand: 'none', level: true, trigger: 'level' });
  assert.equal(s.reg(0x10 + 2 * 9), 0x0000_e941); // remote IRR set
  s.io.setIrq(9, true);
  assert.equal(s.sent.length, 1);
  s.io.eoi(0x42); // other vector: nothing
  assert.equal(s.sent.length, 1);
  s.io.eoi(0x41); // still asserted: sent again
  assert.equal(s.sent.length, 2);
  s.io.setIrq(9, false);
  s.io.eoi(0x41);
  assert.equal(s.sent.length, 2);
  assert.equal(s.reg(0x10 + 2 * 9), 0x0000_a941);
});

test('unmasking an asserted level input sends it', () => {
  const s = setup();
  s.setReg(0x10 + 2 * 11, 0x0001_8050);
  s.io.setIrq(11, true);
  assert.equal(s.sent.length, 0);
  s.setReg(0x10 + 2 * 11, 0x0000_8050);
  assert.equal(s.sent.length, 1);
  assert.equal(s.sent[0]!.vector, 0x50);
});

test('end to end: IOAPIC -> LAPIC, level EOI broadcast back to the IOAPIC', () => {
  const apics: LocalApic[] = [];
  const io: IoApic = new IoApic({ deliver: (m) => deliverToApics(apics, m) });
  apics.push(new LocalApic({ id: 0, bsp: true, now: () => 0, onEoi: (v) => io.eoi(v) }));
  const lapic = apics[0]!;
  lapic.write(0xf0, new Uint8Array([0xff, 0x01, 0, 0]));
  const setReg = (i: number, v: number) => {
    io.write(0, new Uint8Array([i, 0, 0, 0]));
    io.write(0x10, new Uint8Array([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]));
  };
  setReg(0x10 + 2 * 4, 0x0000_8061); // level, vector 0x61, physical dest 0
  io.setIrq(4, true);
  assert.equal(lapic.acknowledge(), 0x61);
  assert.equal(lapic.pendingInterrupt(), false);
  lapic.write(0xb0, new Uint8Array(4)); // EOI -> io.eoi(0x61) -> re-sent (still asserted)
  assert.equal(lapic.acknowledge(), 0x61);
  io.setIrq(4, false);
  lapic.write(0xb0, new Uint8Array(4));
  assert.equal(lapic.pendingInterrupt(), false);
});

test('state round-trips', () => {
  const s = setup();
  s.setReg(0x10 + 2 * 9, 0x0000_8041);
  s.io.setIrq(9, true);
  const saved = s.io.getState();
  const b = new IoApic({ deliver: () => {} });
  b.restore(saved);
  assert.deepEqual(b.getState(), saved);
});

test('routes() names an unmasked fixed entry\'s vector; onUnmask reports a mask bit cleared', () => {
  const unmasked: number[] = [];
  const io = new IoApic({ deliver: () => {}, onUnmask: (pin) => unmasked.push(pin) });
  const w32 = (off: number, v: number) => io.write(off, new Uint8Array([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]));
  const setReg = (i: number, v: number) => { w32(0x00, i); w32(0x10, v); };
  assert.equal(io.routes(2, 0x30), false, 'masked at reset');
  setReg(0x10 + 2 * 2, 0x1_0030); // still masked
  assert.deepEqual(unmasked, []);
  setReg(0x10 + 2 * 2, 0x30);
  assert.deepEqual(unmasked, [2]);
  assert.equal(io.routes(2, 0x30), true);
  assert.equal(io.routes(2, 0x31), false);
  setReg(0x10 + 2 * 2, 0x31); // unmasked already: not reported again
  assert.deepEqual(unmasked, [2]);
  setReg(0x10 + 2 * 2, 0x430); // SMI: not a vector
  assert.equal(io.routes(2, 0x30), false);
  assert.equal(io.routes(24, 0x30), false);
});
