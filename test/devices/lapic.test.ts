import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalApic, deliverToApics, type ApicMessage } from '../../src/devices/local-apic.js';
import { I8259Pic } from '../../src/devices/i8259-pic.js';

function rw(apic: LocalApic) {
  const rd = (off: number) => { const d = new Uint8Array(4); apic.read(off, d); return (d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24)) >>> 0; };
  const wr = (off: number, v: number) => apic.write(off, new Uint8Array([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]));
  return { rd, wr };
}

function setup(extra: Partial<ConstructorParameters<typeof LocalApic>[0]> = {}) {
  const clock = { t: 0 };
  const sent: ApicMessage[] = [];
  const eois: number[] = [];
  const apic = new LocalApic({ id: 0, bsp: true, now: () => clock.t, sendIpi: (m) => sent.push(m), onEoi: (v) => eois.push(v), ...extra });
  const { rd, wr } = rw(apic);
  wr(0xf0, 0x1ff); // software enable, spurious vector 0xff
  return { clock, sent, eois, apic, rd, wr };
}

test('reset values: ID, version, SVR, DFR, masked LVTs, base MSR', () => {
  const apic = new LocalApic({ id: 3, bsp: true, now: () => 0 });
  const { rd } = rw(apic);
  assert.equal(rd(0x20), 0x0300_0000);
  assert.equal(rd(0x30), 0x0005_0014);
  assert.equal(rd(0xf0), 0xff);
  assert.equal(rd(0xe0), 0xffff_ffff);
  for (const off of [0x320, 0x330, 0x340, 0x350, 0x360, 0x370]) assert.equal(rd(off), 0x10000, `LVT ${off.toString(16)}`);
  assert.equal(apic.readBaseMsr(), 0xfee0_0900);
  assert.equal(new LocalApic({ id: 1, now: () => 0 }).readBaseMsr(), 0xfee0_0800);
});

test('LVT mask bits stay set while the APIC is software-disabled', () => {
  const apic = new LocalApic({ id: 0, now: () => 0 });
  const { rd, wr } = rw(apic);
  wr(0x350, 0x700);
  assert.equal(rd(0x350), 0x10700);
  wr(0xf0, 0x1ff);
  wr(0x350, 0x700);
  assert.equal(rd(0x350), 0x700);
  wr(0xf0, 0x0ff); // disable again: masks everything
  assert.equal(rd(0x350), 0x10700);
});

test('acknowledge moves the highest IRR above PPR to ISR; EOI order; TPR masks classes', () => {
  const s = setup();
  s.apic.acceptInterrupt(0x41);
  s.apic.acceptInterrupt(0x61);
  s.apic.acceptInterrupt(0x52);
  assert.equal(s.rd(0x200 + 0x20), (1 << 1) | (1 << 18)); // IRR word 2 (vectors 0x40-0x5f): 0x41, 0x52
  assert.equal(s.apic.acknowledge(), 0x61);
  assert.equal(s.rd(0xa0), 0x60); // PPR = ISR class
  assert.equal(s.apic.pendingInterrupt(), false); // 0x52 is below class 6
  s.wr(0xb0, 0);
  assert.equal(s.rd(0xa0), 0x00);
  s.wr(0x80, 0x50); // TPR class 5 blocks 0x52 and 0x41
  assert.equal(s.rd(0xa0), 0x50);
  assert.equal(s.apic.pendingInterrupt(), false);
  assert.equal(s.apic.acknowledge(), 0xff); // spurious vector, no ISR change
  assert.equal(s.rd(0x100 + 0x70), 0);
  s.apic.setCr8(4);
  assert.equal(s.rd(0x80), 0x40);
  assert.equal(s.apic.acknowledge(), 0x52);
  s.apic.setCr8(0);
  assert.equal(s.apic.pendingInterrupt(), false); // 0x41 below in-service 0x52
  s.wr(0xb0, 0);
  assert.equal(s.apic.acknowledge(), 0x41);
  assert.deepEqual(s.eois, []);
});

test('EOI of a level-triggered vector is broadcast', () => {
  const s = setup();
  s.apic.acceptInterrupt(0x30, true);
  assert.equal(s.rd(0x180 + 0x10), 1 << 16); // TMR bit 0x30
  assert.equal(s.apic.acknowledge(), 0x30);
  s.wr(0xb0, 0);
  assert.deepEqual(s.eois, [0x30]);
});

test('illegal vectors and ESR write-then-read', () => {
  const s = setup();
  s.wr(0x370, 0xfe); // error LVT vector 0xfe
  s.apic.acceptInterrupt(0x05);
  assert.equal(s.rd(0x280), 0); // not visible until ESR is written
  s.wr(0x280, 0);
  assert.equal(s.rd(0x280), 0x40);
  assert.equal(s.apic.acknowledge(), 0xfe);
  s.wr(0x300, 0x0000_0003); // send fixed vector 3
  s.wr(0x280, 0);
  assert.equal(s.rd(0x280), 0x20);
  assert.equal(s.sent.length, 0);
});

test('timer one-shot with divide by 16: current count and expiry', () => {
  const s = setup(); // 1 GHz bus clock: 16 ns per count
  s.wr(0x3e0, 0x3); // divide by 16
  s.wr(0x320, 0x20); // one-shot, vector 0x20
  s.clock.t = 1000;
  s.wr(0x380, 1000);
  assert.equal(s.apic.nextDeadline(), 1000 + 16_000);
  s.clock.t = 1000 + 160;
  assert.equal(s.rd(0x390), 990);
  s.clock.t = 1000 + 15_999;
  s.apic.tick();
  assert.equal(s.apic.pendingInterrupt(), false);
  s.clock.t = 1000 + 16_000;
  s.apic.tick();
  assert.equal(s.apic.acknowledge(), 0x20);
  assert.equal(s.rd(0x390), 0);
  assert.equal(s.apic.nextDeadline(), undefined);
});

test('timer periodic with divide by 1 and 128; masked timer counts silently', () => {
  const s = setup({ timerHz: 100_000_000 }); // 10 ns per bus tick
  s.wr(0x3e0, 0xb); // divide by 1
  s.wr(0x320, 0x20000 | 0xec); // periodic, vector 0xec
  s.wr(0x380, 100); // 1 us period
  assert.equal(s.apic.nextDeadline(), 1000);
  s.clock.t = 2500;
  assert.equal(s.rd(0x390), 50);
  s.apic.tick();
  assert.equal(s.apic.acknowledge(), 0xec);
  assert.equal(s.apic.nextDeadline(), 3000);
  s.wr(0xb0, 0);
  s.wr(0x320, 0x30000 | 0xec); // masked
  s.clock.t = 3000;
  s.apic.tick();
  assert.equal(s.apic.pendingInterrupt(), false);
  assert.equal(s.apic.nextDeadline(), 4000);
  s.wr(0x3e0, 0xa); // divide by 128 while counting: count kept, slower
  assert.equal(s.rd(0x390), 100);
  s.clock.t = 3000 + 1280 * 10;
  assert.equal(s.rd(0x390), 90);
});

test('ICR: fixed IPI to a physical destination, shorthands, INIT/SIPI routed through deliverToApics', () => {
  const inits: number[] = [];
  const sipis: number[] = [];
  const apics: LocalApic[] = [];
  for (let id = 0; id < 3; id++) {
    apics.push(new LocalApic({
      id, bsp: id === 0, now: () => 0,
      sendIpi: (m) => deliverToApics(apics, m),
      onInit: () => inits.push(id), onSipi: (v) => sipis.push(id * 0x100 + v),
    }));
  }
  for (const a of apics) rw(a).wr(0xf0, 0x1ff);
  const bsp = rw(apics[0]!);
  bsp.wr(0x310, 2 << 24);
  bsp.wr(0x300, 0x4000 | 0x40); // fixed vector 0x40 to APIC 2
  assert.equal(apics[2]!.acknowledge(), 0x40);
  rw(apics[2]!).wr(0xb0, 0);
  assert.equal(apics[1]!.pendingInterrupt(), false);
  assert.equal(bsp.rd(0x300) & 0x1000, 0); // delivery status idle
  bsp.wr(0x300, 0x000c_4000 | 0x41); // all but self
  assert.deepEqual(apics.map((a) => a.pendingInterrupt()), [false, true, true]);
  bsp.wr(0x300, 0x0004_4000 | 0x42); // self
  assert.equal(apics[0]!.acknowledge(), 0x42);
  bsp.wr(0xb0, 0);
  bsp.wr(0x300, 0x0008_4000 | 0x43); // all including self
  assert.equal(apics[0]!.acknowledge(), 0x43);
  // The INIT-SIPI-SIPI sequence of Linux's wakeup_secondary_cpu_via_init.
  bsp.wr(0x310, 1 << 24);
  bsp.wr(0x300, 0xc500); // INIT, level, assert
  bsp.wr(0x300, 0x8500); // INIT, level, de-assert (ignored)
  bsp.wr(0x300, 0x0600 | 0x9a); // start-up, vector 0x9a
  bsp.wr(0x300, 0x0600 | 0x9a);
  assert.deepEqual(inits, [1]);
  assert.deepEqual(sipis, [0x19a, 0x19a]);
  assert.equal(apics[1]!.pendingInterrupt(), false); // INIT reset cleared its IRR
  assert.equal(rw(apics[1]!).rd(0xf0), 0xff);
});

test('logical destinations: flat and cluster models', () => {
  const a = new LocalApic({ id: 5, now: () => 0 });
  const { wr } = rw(a);
  wr(0xd0, 0x0400_0000); // logical ID 0x04
  const msg = (destination: number): ApicMessage => ({ destination, destMode: 'logical', mode: 'fixed', vector: 0x50, shorthand: 'none', level: true, trigger: 'edge' });
  assert.equal(a.isTarget(msg(0x06)), true);
  assert.equal(a.isTarget(msg(0x01)), false);
  wr(0xe0, 0x0fff_ffff); // cluster model
  wr(0xd0, 0x3200_0000); // cluster 3, member bit 1
  assert.equal(a.isTarget(msg(0x32)), true);
  assert.equal(a.isTarget(msg(0x22)), false);
  assert.equal(a.isTarget(msg(0x31)), false);
  assert.equal(a.isTarget({ ...msg(5), destMode: 'physical' }), true);
});

test('LINT0 ExtINT passes the 8259 through; hardware disable makes the PIC the INTR', () => {
  const pic = new I8259Pic();
  for (const [p, v] of [[0, 0x11], [1, 0x30], [1, 4], [1, 1]] as const) pic.writePort(0, p, v);
  pic.writePort(0, 1, 0xfe);
  const s = setup({ extInt: pic });
  pic.setIrq(0, true);
  assert.equal(s.apic.pendingInterrupt(), false); // LINT0 masked
  s.apic.setVirtualWireMode();
  assert.equal(s.apic.pendingInterrupt(), true);
  assert.equal(s.apic.acknowledge(), 0x30);
  pic.writePort(0, 0, 0x20);
  pic.setIrq(0, false); pic.setIrq(0, true);
  assert.equal(s.apic.writeBaseMsr(0xfee0_0000), true); // global disable
  assert.equal(s.apic.pendingInterrupt(), true);
  assert.equal(s.apic.acknowledge(), 0x30);
  assert.equal(s.apic.writeBaseMsr(0xfee0_0c00), false); // x2APIC refused
  assert.equal(s.apic.writeBaseMsr(0xfee0_0801), false); // reserved bit
  assert.equal(s.apic.writeBaseMsr(0xfed0_0800), true);
  assert.equal(s.apic.baseAddress, 0xfed0_0000);
  assert.equal(s.rd(0xf0), 0xff); // re-enabled in the power-up state
});

test('LINT1 as NMI fires on a rising edge', () => {
  let nmis = 0;
  const s = setup({ onNmi: () => nmis++ });
  s.wr(0x360, 0x400);
  s.apic.setLint(1, true);
  s.apic.setLint(1, true);
  s.apic.setLint(1, false);
  s.apic.setLint(1, true);
  assert.equal(nmis, 2);
});

test('state round-trips', () => {
  const s = setup();
  s.wr(0x320, 0x20030);
  s.wr(0x380, 5000);
  s.apic.acceptInterrupt(0x77, true);
  const saved = s.apic.getState();
  const b = new LocalApic({ id: 9, now: () => s.clock.t });
  b.restore(saved);
  assert.deepEqual(b.getState(), saved);
  assert.equal(b.nextDeadline(), s.apic.nextDeadline());
});

test('TSC-deadline mode: armed by the MSR, fires once and reads 0; initial count ignored; leaving the mode disarms', () => {
  const s = setup({ tscDeadline: true });
  s.wr(0x320, 0x40000 | 0x40); // TSC-deadline, vector 0x40
  assert.equal(s.rd(0x320), 0x40040);
  s.clock.t = 1000;
  s.wr(0x380, 5); // ignored in this mode
  assert.equal(s.rd(0x380), 0);
  assert.equal(s.rd(0x390), 0);
  assert.equal(s.apic.nextDeadline(), undefined);
  s.apic.writeTscDeadline(5000);
  assert.equal(s.apic.readTscDeadline(), 5000);
  assert.equal(s.apic.nextDeadline(), 5000);
  s.clock.t = 4999;
  s.apic.tick();
  assert.equal(s.apic.pendingInterrupt(), false);
  s.clock.t = 5000;
  s.apic.tick();
  assert.equal(s.apic.acknowledge(), 0x40);
  assert.equal(s.apic.readTscDeadline(), 0, 'the MSR clears when the timer fires');
  assert.equal(s.apic.nextDeadline(), undefined);
  s.apic.writeTscDeadline(9000);
  s.apic.writeTscDeadline(0); // disarms
  s.clock.t = 10_000;
  s.apic.tick();
  assert.equal(s.rd(0x200 + 0x20), 0, 'no vector 0x40 in the IRR');
  s.apic.writeTscDeadline(20_000);
  s.wr(0x320, 0x40); // one-shot: leaving the mode disarms
  assert.equal(s.apic.nextDeadline(), undefined);
  assert.equal(s.apic.readTscDeadline(), 0);
  s.apic.writeTscDeadline(30_000); // ignored outside the mode
  assert.equal(s.apic.nextDeadline(), undefined);
  s.wr(0x380, 100); // one-shot works again
  assert.equal(s.apic.nextDeadline(), 10_000 + 100 * 2 * 1); // divide by 2 (reset divide configuration 0)
});

test('without the tscDeadline option the mode bit is not writable and the MSR is ignored', () => {
  const s = setup();
  s.wr(0x320, 0x40000 | 0x40);
  assert.equal(s.rd(0x320), 0x40);
  s.apic.writeTscDeadline(5000);
  assert.equal(s.apic.readTscDeadline(), 0);
  assert.equal(s.apic.nextDeadline(), undefined);
});

test('acceptance by priority class: PPR from TPR and ISR; CR8 is TPR bits 7-4', () => {
  const acks: number[] = [];
  const s = setup({ onAcknowledge: (v) => acks.push(v) });
  s.apic.acceptInterrupt(0x41);
  assert.equal(s.apic.acknowledge(), 0x41); // 0x41 in service: PPR 0x40
  assert.equal(s.rd(0xa0), 0x40);
  s.apic.acceptInterrupt(0x4f); // same class as the one in service: held
  assert.equal(s.apic.pendingInterrupt(), false);
  assert.equal(s.apic.acknowledge(), 0xff, 'nothing deliverable: the spurious vector');
  s.apic.acceptInterrupt(0x50); // a higher class interrupts it
  assert.equal(s.apic.acknowledge(), 0x50);
  s.wr(0xb0, 0); // EOI 0x50
  s.wr(0xb0, 0); // EOI 0x41: 0x4f comes
  assert.equal(s.apic.acknowledge(), 0x4f);
  s.wr(0xb0, 0);
  assert.deepEqual(acks, [0x41, 0x50, 0x4f], 'onAcknowledge for each vector moved to the ISR, not for spurious');
  s.apic.setCr8(6);
  assert.equal(s.rd(0x80), 0x60);
  s.wr(0x80, 0x7f);
  assert.equal(s.apic.getCr8(), 7);
  assert.equal(s.rd(0xa0), 0x7f, 'PPR is the TPR when nothing is in service');
  s.apic.acceptInterrupt(0x7e); // class 7 = TPR class: held
  assert.equal(s.apic.pendingInterrupt(), false);
  s.apic.setCr8(6); // TPR 0x60: class 7 goes
  assert.equal(s.apic.acknowledge(), 0x7e);
});

test('periodic reinjection: missed periods arrive one per acknowledgement; a new count forgets them', () => {
  const s = setup({ reinjectPeriodic: true });
  s.wr(0x3e0, 0xb); // divide by 1: 1 ns per count
  s.wr(0x320, 0x20000 | 0x31); // periodic, vector 0x31
  s.wr(0x380, 1000);
  s.clock.t = 3500; // three periods went by between two ticks
  s.apic.tick();
  assert.equal(s.apic.acknowledge(), 0x31);
  assert.equal(s.apic.acknowledge(), 0xff, 'the second waits: the first is in service');
  s.wr(0xb0, 0);
  assert.equal(s.apic.acknowledge(), 0x31, 'raised when the first was taken, delivered after its EOI');
  s.wr(0xb0, 0);
  assert.equal(s.apic.acknowledge(), 0x31);
  s.wr(0xb0, 0);
  assert.equal(s.apic.pendingInterrupt(), false, 'three periods, three interrupts');
  assert.equal(s.apic.nextDeadline(), 4000);
  s.clock.t = 6500;
  s.apic.tick(); // two more owed...
  s.wr(0x380, 1000); // ...forgotten by a new count (the one raised stays in the IRR)
  assert.equal(s.apic.acknowledge(), 0x31);
  s.wr(0xb0, 0);
  assert.equal(s.apic.pendingInterrupt(), false);
  const plain = setup(); // without the option: one interrupt for the periods missed
  plain.wr(0x3e0, 0xb); plain.wr(0x320, 0x20000 | 0x31); plain.wr(0x380, 1000);
  plain.clock.t = 3500;
  plain.apic.tick();
  assert.equal(plain.apic.acknowledge(), 0x31);
  plain.wr(0xb0, 0);
  assert.equal(plain.apic.pendingInterrupt(), false);
});
