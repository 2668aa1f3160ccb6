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

// ---- x2APIC mode (Intel SDM vol. 3A, "Extended XAPIC (x2APIC)") ----

const BASE = 0xfee0_0000;
const EN = 0x800, EXTD = 0x400, BSP = 0x100;
/** IA32_APIC_BASE with the default page and `flags` (a sum: `|` would make it a negative int32). */
const base = (flags: number) => BASE + flags;

function x2setup(id = 0, extra: Partial<ConstructorParameters<typeof LocalApic>[0]> = {}) {
  const s = setup({ id, x2apic: true, ...extra });
  assert.equal(s.apic.writeBaseMsr(base(EN | EXTD)), true);
  const rdmsr = (msr: number) => s.apic.readX2apicMsr(msr);
  const wrmsr = (msr: number, lo: number, hi = 0) => s.apic.writeX2apicMsr(msr, lo, hi);
  return { ...s, rdmsr, wrmsr };
}

test('x2APIC: IA32_APIC_BASE goes xAPIC -> x2APIC and x2APIC -> disabled only; the other transitions #GP', () => {
  const s = setup({ x2apic: true });
  assert.equal(s.apic.writeBaseMsr(base(EXTD)), false, 'EXTD without EN is the invalid state');
  assert.equal(s.apic.x2apicMode, false);
  assert.equal(s.apic.writeBaseMsr(base(EN | EXTD)), true, 'xAPIC -> x2APIC');
  assert.equal(s.apic.readBaseMsr(), base(BSP | EN | EXTD));
  assert.equal(s.apic.x2apicMode, true);
  assert.equal(s.apic.xapicMmio, false, 'the page does not respond in x2APIC mode');
  assert.equal(s.apic.writeBaseMsr(base(EN | EXTD)), true, 'x2APIC -> x2APIC');
  assert.equal(s.apic.writeBaseMsr(base(EN)), false, 'x2APIC -> xAPIC');
  assert.equal(s.apic.writeBaseMsr(base(EXTD)), false, 'x2APIC -> invalid');
  assert.equal(s.apic.readBaseMsr(), base(BSP | EN | EXTD), 'a refused write changes nothing');
  s.apic.writeX2apicMsr(0x80f, 0x1ff, 0);
  assert.equal(s.apic.writeBaseMsr(base(0)), true, 'x2APIC -> disabled');
  assert.equal(s.apic.x2apicMode, false);
  assert.equal(s.apic.readX2apicMsr(0x80f), undefined);
  assert.equal(s.apic.writeBaseMsr(base(EN | EXTD)), false, 'disabled -> x2APIC');
  assert.equal(s.apic.writeBaseMsr(base(EXTD)), false, 'disabled -> invalid');
  assert.equal(s.apic.writeBaseMsr(base(EN)), true, 'disabled -> xAPIC');
  assert.equal(s.apic.xapicMmio, true);
  assert.equal(s.rd(0xf0), 0xff, 'the registers were reset on the way through disabled');
  assert.equal(s.apic.writeBaseMsr(base(EN | EXTD)), true, 'xAPIC -> x2APIC again');
  const plain = setup();
  assert.equal(plain.apic.writeBaseMsr(base(EN | EXTD)), false, 'without the x2apic option bit 10 is reserved');
});

test('x2APIC: the MSRs #GP outside x2APIC mode', () => {
  const s = setup({ x2apic: true });
  for (const msr of [0x802, 0x803, 0x808, 0x80f, 0x830, 0x83f]) {
    assert.equal(s.apic.readX2apicMsr(msr), undefined, `RDMSR ${msr.toString(16)} in xAPIC mode`);
    assert.equal(s.apic.writeX2apicMsr(msr, 0, 0), false, `WRMSR ${msr.toString(16)} in xAPIC mode`);
  }
  s.wr(0x80, 0x20);
  assert.equal(s.rd(0x80), 0x20, 'nothing was written');
  assert.equal(s.apic.writeBaseMsr(base(0)), true);
  assert.equal(s.apic.readX2apicMsr(0x808), undefined, 'nor when disabled');
});

test('x2APIC: ID is the 32-bit x2APIC ID, LDR is derived from it, both read-only; no DFR', () => {
  const s = setup({ id: 0x23, x2apic: true });
  s.wr(0x20, 0x0500_0000); // software changes the xAPIC ID...
  assert.equal(s.apic.id, 5);
  assert.equal(s.apic.writeBaseMsr(base(EN | EXTD)), true);
  assert.deepEqual(s.apic.readX2apicMsr(0x802), [0x23, 0], '...the x2APIC ID is the hardware\'s, not shifted');
  assert.deepEqual(s.apic.readX2apicMsr(0x80d), [(2 << 16) | (1 << 3), 0], 'cluster 2, member bit 3');
  assert.equal(s.apic.writeX2apicMsr(0x802, 0x23, 0), false, 'ID is read-only');
  assert.equal(s.apic.writeX2apicMsr(0x80d, 0x10001, 0), false, 'LDR is read-only');
  assert.equal(s.apic.readX2apicMsr(0x80e), undefined, 'no DFR');
  assert.equal(s.apic.writeX2apicMsr(0x80e, 0xffff_ffff, 0), false, 'no DFR');
  assert.deepEqual(s.apic.readX2apicMsr(0x803), [0x0005_0014, 0]);
  assert.equal(s.apic.writeX2apicMsr(0x803, 0, 0), false, 'version is read-only');
});

test('x2APIC: reserved, write-only and read-only MSRs #GP; EOI and ESR take only 0; reserved bits #GP', () => {
  const s = x2setup();
  for (const msr of [0x800, 0x801, 0x804, 0x809, 0x80c, 0x80e, 0x831, 0x83a, 0x83d, 0x840, 0x8ff]) {
    assert.equal(s.rdmsr(msr), undefined, `RDMSR ${msr.toString(16)} is reserved`);
    assert.equal(s.wrmsr(msr, 0), false, `WRMSR ${msr.toString(16)} is reserved`);
  }
  for (const msr of [0x80b, 0x83f]) assert.equal(s.rdmsr(msr), undefined, `${msr.toString(16)} is write-only`);
  for (const msr of [0x80a, 0x810, 0x817, 0x818, 0x820, 0x827, 0x839]) {
    assert.notEqual(s.rdmsr(msr), undefined, `${msr.toString(16)} reads`);
    assert.equal(s.wrmsr(msr, 0), false, `${msr.toString(16)} is read-only`);
  }
  s.apic.acceptInterrupt(0x41);
  assert.deepEqual(s.rdmsr(0x822), [1 << 1, 0], 'IRR word 2 at 0x822');
  assert.equal(s.apic.acknowledge(), 0x41);
  assert.deepEqual(s.rdmsr(0x812), [1 << 1, 0], 'ISR word 2 at 0x812');
  assert.equal(s.wrmsr(0x80b, 1), false, 'EOI of a non-zero value');
  assert.deepEqual(s.rdmsr(0x812), [1 << 1, 0], 'the refused EOI did nothing');
  assert.equal(s.wrmsr(0x80b, 0), true);
  assert.deepEqual(s.rdmsr(0x812), [0, 0]);
  assert.equal(s.wrmsr(0x828, 1), false, 'ESR of a non-zero value');
  assert.equal(s.wrmsr(0x828, 0), true);
  assert.equal(s.wrmsr(0x808, 0x150), false, 'TPR bits 31-8');
  assert.equal(s.wrmsr(0x808, 0x50, 1), false, 'bits 63-32 of a 32-bit register');
  assert.equal(s.wrmsr(0x808, 0x50), true);
  assert.deepEqual(s.rdmsr(0x808), [0x50, 0]);
  assert.equal(s.apic.getCr8(), 5, 'CR8 is still the TPR');
  assert.equal(s.wrmsr(0x83e, 0x4), false, 'divide configuration bit 2');
  assert.equal(s.wrmsr(0x83e, 0xb), true);
  assert.equal(s.wrmsr(0x83f, 0x140), false, 'SELF IPI bits 31-8');
  assert.equal(s.wrmsr(0x830, 0x1040), false, 'ICR bit 12 (no delivery status in x2APIC mode)');
  assert.deepEqual(s.sent, [], 'no refused write sent anything');
});

test('x2APIC: the timer, LVTs and SVR through the MSRs', () => {
  const s = x2setup();
  assert.equal(s.wrmsr(0x80f, 0x1ff), true);
  assert.deepEqual(s.rdmsr(0x80f), [0x1ff, 0]);
  assert.equal(s.wrmsr(0x83e, 0xb), true); // divide by 1
  assert.equal(s.wrmsr(0x832, 0x20000 | 0x40), true); // periodic, vector 0x40
  assert.equal(s.wrmsr(0x838, 1000), true);
  assert.equal(s.apic.nextDeadline(), 1000);
  s.clock.t = 250;
  assert.deepEqual(s.rdmsr(0x839), [750, 0]);
  s.clock.t = 1000;
  s.apic.tick();
  assert.equal(s.apic.acknowledge(), 0x40);
  assert.equal(s.wrmsr(0x80b, 0), true);
  assert.deepEqual(s.rdmsr(0x832), [0x20040, 0]);
});

test('x2APIC: the ICR is one 64-bit MSR with a 32-bit destination; SELF IPI', () => {
  const s = x2setup(7);
  assert.equal(s.wrmsr(0x830, 0x4000 | 0x800 | 0x61, 0x0003_0004), true); // fixed, logical, to cluster 3 members 2
  assert.deepEqual(s.sent, [{
    source: 7, destination: 0x0003_0004, destMode: 'logical', mode: 'fixed', vector: 0x61, shorthand: 'none',
    level: true, trigger: 'edge', x2apic: true,
  }]);
  assert.deepEqual(s.rdmsr(0x830), [0x4861, 0x0003_0004]);
  s.sent.length = 0;
  assert.equal(s.wrmsr(0x83f, 0x45), true);
  assert.equal(s.sent.length, 1);
  assert.equal(s.sent[0]!.shorthand, 'self');
  const selfOnly = new LocalApic({ id: 7, x2apic: true, now: () => 0 }); // its default sendIpi delivers to itself
  assert.equal(selfOnly.writeBaseMsr(base(EN | EXTD)), true);
  assert.equal(selfOnly.writeX2apicMsr(0x80f, 0x1ff, 0), true);
  assert.equal(selfOnly.writeX2apicMsr(0x83f, 0x45, 0), true);
  assert.equal(selfOnly.acknowledge(), 0x45, 'SELF IPI: a fixed vector to this APIC');
  assert.equal(selfOnly.writeX2apicMsr(0x80b, 0, 0), true);
  assert.equal(selfOnly.writeX2apicMsr(0x837, 0xfe, 0), true); // error LVT
  assert.equal(selfOnly.writeX2apicMsr(0x83f, 0x05, 0), true);
  assert.equal(selfOnly.writeX2apicMsr(0x828, 0, 0), true);
  assert.deepEqual(selfOnly.readX2apicMsr(0x828), [0x20, 0], 'SELF IPI of an illegal vector: send illegal vector');
});

test('x2APIC: destinations of x2APIC messages (physical 32-bit, logical cluster, broadcast) and of 8-bit ones', () => {
  const a = x2setup(0x23).apic;
  const msg = (destination: number, destMode: 'physical' | 'logical', x2apic = true): ApicMessage =>
    ({ destination, destMode, mode: 'fixed', vector: 0x50, shorthand: 'none', level: true, trigger: 'edge', ...(x2apic ? { x2apic } : {}) });
  assert.equal(a.isTarget(msg(0x23, 'physical')), true);
  assert.equal(a.isTarget(msg(0x123, 'physical')), false, 'all 32 bits compared');
  assert.equal(a.isTarget(msg(0xffff_ffff, 'physical')), true);
  assert.equal(a.isTarget(msg(0x0002_0008, 'logical')), true);
  assert.equal(a.isTarget(msg(0x0002_0007, 'logical')), false, 'another member');
  assert.equal(a.isTarget(msg(0x0003_0008, 'logical')), false, 'another cluster');
  assert.equal(a.isTarget(msg(0x23, 'physical', false)), true, 'an I/O APIC message by physical ID');
  assert.equal(a.isTarget(msg(0xff, 'physical', false)), true, 'an 8-bit broadcast');
  assert.equal(a.isTarget(msg(0x08, 'logical', false)), false, 'no 8-bit logical destinations in x2APIC mode');
});

test('x2APIC: INIT keeps x2APIC mode (LDR still derived); the state round-trips', () => {
  const s = x2setup(3);
  s.apic.receive({ destination: 3, destMode: 'physical', mode: 'init', vector: 0, shorthand: 'none', level: true, trigger: 'edge', x2apic: true });
  assert.equal(s.apic.x2apicMode, true);
  assert.deepEqual(s.rdmsr(0x80d), [1 << 3, 0]);
  assert.deepEqual(s.rdmsr(0x80f), [0xff, 0], 'the other registers were reset');
  s.wrmsr(0x80f, 0x1ff);
  s.wrmsr(0x808, 0x30);
  const saved = s.apic.getState();
  const b = new LocalApic({ id: 3, x2apic: true, now: () => 0 });
  b.restore(saved);
  assert.equal(b.x2apicMode, true);
  assert.deepEqual(b.readX2apicMsr(0x808), [0x30, 0]);
  assert.deepEqual(b.getState(), saved);
});

test('restore keeps only the base MSR flags the APIC has, never EXTD without EN', () => {
  const plain = new LocalApic({ id: 0, now: () => 0 });
  plain.restore({ ...plain.getState(), baseMsr: base(BSP | EN | EXTD) });
  assert.equal(plain.x2apicMode, false, 'no x2APIC mode without the option');
  assert.equal(plain.readBaseMsr(), base(BSP | EN));
  const a = new LocalApic({ id: 0, x2apic: true, now: () => 0 });
  a.restore({ ...a.getState(), baseMsr: base(EXTD | 0x1) });
  assert.equal(a.readBaseMsr(), base(0), 'the invalid state and a reserved bit dropped');
});
