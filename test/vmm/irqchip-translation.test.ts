// The translation between the board's interrupt devices (the soft backend's) and KVM's in-kernel
// irqchip and PIT (vmm/irqchip-translation.ts, backends/kvm/irqchip-state.ts), without /dev/kvm:
// a device's state goes to the kernel's struct bytes and back unchanged in what both models carry,
// and bytes the kernel could hand over that the devices cannot hold are refused with a code.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeIoapic, decodePic, decodePit, encodeIoapic, encodePic, encodePit,
} from '../../src/backends/kvm/irqchip-state.js';
import * as abi from '../../src/backends/kvm/abi.js';
import { TsvmmError } from '../../src/common/errors.js';
import { I8259Pic, type I8259ChipState } from '../../src/devices/i8259-pic.js';
import { IoApic, REDIR_LEVEL, REDIR_MASKED, type IoApicState } from '../../src/devices/ioapic.js';
import { I8254Pit, type I8254CounterState } from '../../src/devices/i8254-pit.js';
import { LocalApic, type LocalApicState } from '../../src/devices/local-apic.js';
import {
  APIC_BASE_ENABLE, APIC_BASE_X2APIC, APIC_LVT_LINT0, APIC_LVT_TIMER, APIC_SVR, APIC_TIMER_CURRENT, APIC_TIMER_DIVIDE, APIC_TIMER_INITIAL, APIC_TPR,
} from '../../src/x86/apic.js';
import {
  devicesToKernel, ioapicFromKernel, ioapicToKernel, lapicFromKernel, lapicToKernel, picChipFromKernel, picChipToKernel, pitFromKernel, pitToKernel,
  type ClockPair,
} from '../../src/vmm/irqchip-translation.js';
import { LAPIC_REGS_BYTES } from '../../src/nvmm/irqchip-state.js';

const isCode = (code: string) => (e: unknown) => e instanceof TsvmmError && e.code === code;

/** The soft chip → kvm_pic_state bytes → chip. */
function picRoundTrip(s: I8259ChipState, chip: 'master' | 'slave'): I8259ChipState {
  return picChipFromKernel(decodePic(encodePic(picChipToKernel(s, chip))), chip);
}

test('8259: a programmed pair (ICWs, IMR, rotation, special mask, requests, one in service) goes to kvm_pic_state and back unchanged', () => {
  const pic = new I8259Pic();
  const out = (port: 0 | 1, off: number, v: number) => pic.writePort(port, off, v);
  for (const [chip, base, icw3] of [[0, 0x20, 4], [1, 0x28, 2]] as const) {
    out(chip, 0, 0x11); // ICW1: cascade, ICW4 follows
    out(chip, 1, base);
    out(chip, 1, icw3);
    out(chip, 1, chip === 0 ? 0x03 : 0x01); // ICW4: 8086 mode, auto-EOI on the master
  }
  out(0, 1, 0xb8);
  out(1, 1, 0x3c);
  pic.elcr.write(1, 1, 0x0c); // IRQ 10 and 11 level-triggered
  out(0, 0, 0xc3); // OCW2: IR3 lowest priority
  out(1, 0, 0x6a); // OCW3: special mask mode, read ISR
  out(0, 0, 0x80); // OCW2: rotate in auto-EOI mode
  pic.setIrq(1, true);
  pic.setIrq(10, true);
  pic.setIrq(4, true);
  pic.acknowledge();
  pic.setIrq(6, true);
  const before = pic.getState();
  assert.notEqual(before.master.isr | before.slave.isr | before.master.irr, 0, 'the test has requests and in-service bits');
  assert.deepEqual(picRoundTrip(before.master, 'master'), before.master);
  assert.deepEqual(picRoundTrip(before.slave, 'slave'), before.slave);
  // An ICW sequence half-way, and poll mode.
  out(1, 0, 0x11);
  out(1, 1, 0x70);
  out(0, 0, 0x0c);
  const mid = pic.getState();
  assert.equal(mid.slave.initStep, 3);
  assert.deepEqual(picRoundTrip(mid.slave, 'slave'), mid.slave);
  assert.deepEqual(picRoundTrip(mid.master, 'master'), mid.master);
});

test('8259: the priority and the ICW step are KVM\'s numbering (priority_add is one above the lowest priority; init_state one below)', () => {
  const s = new I8259Pic().getState().master;
  const k = picChipToKernel({ ...s, lowestPriority: 3, initStep: 4, icw1: 0x11, icw4: 0x13 }, 'master');
  const b = encodePic(k);
  assert.equal(b[abi.KVM_PIC_STATE.priority_add], 4);
  assert.equal(b[abi.KVM_PIC_STATE.init_state], 3);
  assert.equal(b[abi.KVM_PIC_STATE.auto_eoi], 1);
  assert.equal(b[abi.KVM_PIC_STATE.special_fully_nested_mode], 1);
  assert.equal(b[abi.KVM_PIC_STATE.elcr_mask], 0xf8);
});

test('8259: modes KVM does not have (single, level-triggered ICW1) do not go to it', () => {
  const s = new I8259Pic().getState().master;
  assert.throws(() => picChipToKernel({ ...s, icw1: 0x13 }, 'master'), isCode('TSVMM_SNAPSHOT_MISMATCH'));
  assert.throws(() => picChipToKernel({ ...s, icw1: 0x19 }, 'master'), isCode('TSVMM_SNAPSHOT_MISMATCH'));
});

function ioapicWithEntries(): IoApic {
  const io = new IoApic({ id: 1, deliver: () => {} });
  const w = (reg: number, v: number) => {
    io.write(0, Uint8Array.of(reg, 0, 0, 0));
    const d = new Uint8Array(4);
    new DataView(d.buffer).setUint32(0, v >>> 0, true);
    io.write(0x10, d);
  };
  w(0x10 + 2 * 2, 0x30); // pin 2: vector 0x30, edge, unmasked
  w(0x11 + 2 * 2, 0x0100_0000);
  w(0x10 + 2 * 9, 0x39 | REDIR_LEVEL | 0x2000); // pin 9: level, active low, unmasked
  w(0x10 + 2 * 20, 0x41 | REDIR_LEVEL | 0x800 | (1 << 8)); // pin 20: level, logical, lowest priority
  w(0x11 + 2 * 20, 0x0300_0000);
  io.setIrq(9, true); // sent: remote IRR set
  io.setIrq(20, true);
  io.write(0, Uint8Array.of(0x25, 0, 0, 0));
  return io;
}

test('I/O APIC: the redirection table, remote IRR, the ID, the selected register and the asserted level inputs go to kvm_ioapic_state and back unchanged', () => {
  const s = ioapicWithEntries().getState();
  assert.ok(s.low[9]! & 0x4000, 'pin 9 is in service (remote IRR)');
  const back = ioapicFromKernel(decodeIoapic(encodeIoapic(ioapicToKernel(s))));
  assert.deepEqual(back, s);
  // The entries' bits are the hardware's: KVM's bitfields (vector 0-7, ..., dest_id 56-63).
  const k = ioapicToKernel(s);
  assert.equal(k.redirtbl[20], (0x03n << 56n) | BigInt(s.low[20]!));
  assert.equal(k.irr, (1 << 9) | (1 << 20));
});

test('I/O APIC: an asserted edge-triggered input is not a pending request for KVM (it was sent)', () => {
  const io = ioapicWithEntries();
  io.setIrq(2, true);
  const s: IoApicState = io.getState();
  assert.equal(ioapicToKernel(s).irr & (1 << 2), 0);
});

/** The 8254 counter's state that both models carry, at guest time `now`. */
function carried(c: I8254CounterState, now: number) {
  return {
    control: c.control, countRegister: c.countRegister, reload: c.reload, loaded: c.loaded, gate: c.gate,
    ticks: c.loaded ? I8254Pit.ticks(c, now) : 0, writeMsbNext: c.writeMsbNext, writeLow: c.writeLow,
    readMsbNext: c.readMsbNext, latchedCount: c.latchedCount, latchedMsbNext: c.latchedMsbNext, latchedStatus: c.latchedStatus,
  };
}

test('8254: counters in modes 2, 0 and 3 (word, LSB and BCD access; a latched count half read, a status latched, a count half written) go to kvm_pit_state2 and back with their progress', () => {
  let now = 1_000_000;
  const pit = new I8254Pit({ now: () => now, reinject: true });
  pit.write(3, 1, 0x34); // counter 0: mode 2, LSB then MSB
  pit.write(0, 1, 0x9c);
  pit.write(0, 1, 0x2e); // 11932: 100 Hz
  pit.write(3, 1, 0x50); // counter 1: mode 0, MSB only
  pit.write(1, 1, 0x12);
  pit.write(3, 1, 0xb7); // counter 2: mode 3, word, BCD
  pit.write(2, 1, 0x00);
  pit.write(2, 1, 0x50); // 5000 BCD
  now += 7_654_321;
  pit.tick(now);
  pit.read(0, 1); // counter 0's LSB: its MSB is read next
  pit.write(3, 1, 0x80); // latch counter 2
  pit.read(2, 1); // its LSB
  pit.write(3, 1, 0xe2); // read-back: status of counter 0
  pit.write(0, 1, 0x10); // counter 0: first byte of a new count
  const state = pit.getState();
  const port61 = { value: 0x03 };
  const at: ClockPair = { guestNs: now, hostNs: 5e12 };
  const bytes = encodePit(pitToKernel(state, port61, at));
  const back = pitFromKernel(decodePit(bytes), at);
  assert.ok(state.counters[0]!.readMsbNext && state.counters[0]!.latchedStatus !== null && state.counters[2]!.latchedMsbNext, 'the test has reads half done');
  for (let i = 0; i < 3; i++) assert.deepEqual(carried(back.pit.counters[i]!, now), carried(state.counters[i]!, now), `counter ${i}`);
  assert.deepEqual(back.port61, port61);
  // The load time is the host's clock, as far back as the ticks counted.
  const dv = new DataView(bytes.buffer);
  const loadTime = dv.getBigInt64(abi.KVM_PIT_STATE2.channels + abi.KVM_PIT_CHANNEL_STATE.count_load_time, true);
  assert.ok(Math.abs(Number(loadTime) - (at.hostNs - 7_654_321)) < 1000, `count_load_time ${loadTime}`);
  // A restored device counts on from there: the same count read a while later.
  const restored = new I8254Pit({ now: () => now });
  restored.restore(back.pit);
  now += 123_456;
  pit.write(3, 1, 0x40); // latch counter 1 on both
  restored.write(3, 1, 0x40);
  assert.equal(restored.read(1, 1), pit.read(1, 1));
});

test('8254: counters never programmed stay so (KVM\'s mode 0xff), with channel 2\'s gate from port 0x61', () => {
  const pit = new I8254Pit({ now: () => 0 });
  const k = pitToKernel(pit.getState(), { value: 0 }, { guestNs: 0, hostNs: 1e9 });
  assert.deepEqual(k.channels.map((c) => c.mode), [0xff, 0xff, 0xff]);
  assert.equal(k.channels[2]!.gate, false);
  const back = pitFromKernel(decodePit(encodePit(k)), { guestNs: 0, hostNs: 1e9 });
  assert.deepEqual(back.pit.counters.slice(0, 2), pit.getState().counters.slice(0, 2));
});

function programmedApic(now: () => number): LocalApic {
  const apic = new LocalApic({ id: 3, bsp: true, now, x2apic: true });
  const w = (off: number, v: number) => {
    const d = new Uint8Array(4);
    new DataView(d.buffer).setUint32(0, v >>> 0, true);
    apic.write(off, d);
  };
  w(APIC_SVR, 0x1ff);
  w(APIC_TPR, 0x20);
  w(APIC_LVT_LINT0, 0x700);
  w(APIC_TIMER_DIVIDE, 0x3); // divide by 16
  w(APIC_LVT_TIMER, 0x2_00ef); // periodic, vector 0xef
  w(APIC_TIMER_INITIAL, 100_000);
  apic.receive({ destination: 3, destMode: 'physical', mode: 'fixed', vector: 0x51, shorthand: 'none', level: true, trigger: 'level' });
  apic.receive({ destination: 3, destMode: 'physical', mode: 'fixed', vector: 0x62, shorthand: 'none', level: true, trigger: 'edge' });
  apic.acknowledge(); // 0x62 in service
  return apic;
}

/** The local APIC's state both models carry. */
function apicCarried(s: LocalApicState) {
  const { esrPending: _e, lintLevels: _l, extIntRequested: _x, timerOwed: _o, timerInFlight: _f, tscDeadline: _t, ...rest } = s;
  return rest;
}

test('local APIC: registers, IRR/ISR/TMR, the base MSR and a periodic timer part-way through its period go to kvm_lapic_state and back unchanged', () => {
  let now = 5_000_000;
  const apic = programmedApic(() => now);
  now += 16 * 12_345; // 12345 counts of the period
  apic.tick(now);
  const s = apic.getState();
  assert.equal(s.id, 3);
  assert.ok(s.isr[0x62 >> 5]! & (1 << (0x62 & 31)) && s.irr[0x51 >> 5]! & (1 << (0x51 & 31)) && s.tmr[0x51 >> 5]! & (1 << (0x51 & 31)), 'one vector in service, a level one requested');
  const at: ClockPair = { guestNs: now, hostNs: 9e12 };
  const k = lapicToKernel(s, at);
  const dv = new DataView(k.regs.buffer);
  assert.equal(dv.getUint32(APIC_TIMER_CURRENT, true), 100_000 - 12_345, 'TMCCT carries the count left');
  assert.equal(dv.getUint32(APIC_TIMER_INITIAL, true), 100_000);
  const back = lapicFromKernel({ regs: Uint8Array.from(k.regs), apicBase: k.apicBase }, at);
  assert.deepEqual(apicCarried(back), apicCarried(s));
  // x2APIC mode: the same ID (bits 31-24, KVM's format without its x2APIC ID option).
  assert.equal(apic.writeBaseMsr(0xfee0_0000 + APIC_BASE_ENABLE + APIC_BASE_X2APIC + 0x100), true);
  const x = apic.getState();
  assert.deepEqual(apicCarried(lapicFromKernel(lapicToKernel(x, at), at)), apicCarried(x));
});

test('local APIC: an armed TSC-deadline timer is not carried (refused), a TSC-deadline timer from KVM neither', () => {
  const apic = new LocalApic({ id: 0, now: () => 0, tscDeadline: true });
  const s = { ...apic.getState(), lvt: { ...apic.getState().lvt, [APIC_LVT_TIMER]: 0x4_00ef }, tscDeadline: 5000 };
  assert.throws(() => lapicToKernel(s, { guestNs: 0, hostNs: 0 }), isCode('TSVMM_SNAPSHOT_MISMATCH'));
  const k = lapicToKernel({ ...s, tscDeadline: 0 }, { guestNs: 0, hostNs: 0 });
  assert.throws(() => lapicFromKernel(k, { guestNs: 0, hostNs: 0 }), isCode('TSVMM_UNSUPPORTED'));
});

test('hostile kernel bytes: fields out of the devices\' range are refused with TSVMM_UNSUPPORTED, never another exception', () => {
  const at: ClockPair = { guestNs: 1e9, hostNs: 2e12 };
  const pic = encodePic(picChipToKernel(new I8259Pic().getState().master, 'master'));
  const bad = (b: Uint8Array, off: number, v: number) => { const c = Uint8Array.from(b); c[off] = v; return c; };
  assert.throws(() => picChipFromKernel(decodePic(bad(pic, abi.KVM_PIC_STATE.init_state, 7)), 'master'), isCode('TSVMM_UNSUPPORTED'));
  assert.throws(() => picChipFromKernel(decodePic(bad(pic, abi.KVM_PIC_STATE.priority_add, 8)), 'master'), isCode('TSVMM_UNSUPPORTED'));
  assert.throws(() => picChipFromKernel(decodePic(bad(pic, abi.KVM_PIC_STATE.irq_base, 0x21)), 'master'), isCode('TSVMM_UNSUPPORTED'));
  assert.throws(() => picChipFromKernel(decodePic(bad(pic, abi.KVM_PIC_STATE.elcr, 0x01)), 'master'), isCode('TSVMM_UNSUPPORTED'));
  const io = encodeIoapic(ioapicToKernel(new IoApic({ deliver: () => {} }).getState()));
  const ioDv = (b: Uint8Array) => new DataView(b.buffer);
  const moved = Uint8Array.from(io);
  ioDv(moved).setBigUint64(abi.KVM_IOAPIC_STATE.base_address, 0xfec01000n, true);
  assert.throws(() => ioapicFromKernel(decodeIoapic(moved)), isCode('TSVMM_UNSUPPORTED'));
  const id = Uint8Array.from(io);
  ioDv(id).setUint32(abi.KVM_IOAPIC_STATE.id, 0x10, true);
  assert.throws(() => ioapicFromKernel(decodeIoapic(id)), isCode('TSVMM_UNSUPPORTED'));
  // Reserved bits a guest wrote into an entry are dropped, as the device drops them.
  const reserved = Uint8Array.from(io);
  ioDv(reserved).setBigUint64(abi.KVM_IOAPIC_STATE.redirtbl, 0x00ff_0000_fffe_0030n | BigInt(REDIR_MASKED), true);
  assert.equal(ioapicFromKernel(decodeIoapic(reserved)).low[0], 0x30 | REDIR_MASKED);
  const pit = encodePit(pitToKernel(new I8254Pit({ now: () => 0 }).getState(), { value: 0 }, at));
  const C = abi.KVM_PIT_CHANNEL_STATE;
  const mode = bad(pit, C.mode, 6);
  assert.throws(() => pitFromKernel(decodePit(mode), at), isCode('TSVMM_UNSUPPORTED'));
  const rw = bad(bad(pit, C.mode, 2), C.rw_mode, 0);
  assert.throws(() => pitFromKernel(decodePit(rw), at), isCode('TSVMM_UNSUPPORTED'));
  const future = bad(pit, C.mode, 2);
  new DataView(future.buffer).setBigInt64(C.count_load_time, BigInt(3e12), true);
  assert.throws(() => pitFromKernel(decodePit(future), at), isCode('TSVMM_UNSUPPORTED'));
  const hpet = Uint8Array.from(pit);
  new DataView(hpet.buffer).setUint32(abi.KVM_PIT_STATE2.flags, 1, true);
  assert.throws(() => pitFromKernel(decodePit(hpet), at), isCode('TSVMM_UNSUPPORTED'));
  const regs = new Uint8Array(LAPIC_REGS_BYTES);
  assert.throws(() => lapicFromKernel({ regs, apicBase: 0xfee0_0000n + BigInt(APIC_BASE_X2APIC) }, at), isCode('TSVMM_UNSUPPORTED'));
  const counting = Uint8Array.from(regs);
  new DataView(counting.buffer).setUint32(APIC_TIMER_CURRENT, 10, true);
  assert.throws(() => lapicFromKernel({ regs: counting, apicBase: 0xfee0_0800n }, at), isCode('TSVMM_UNSUPPORTED'));

  // Random bytes: a state, or a TsvmmError; nothing else.
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  const random = (n: number) => Uint8Array.from({ length: n }, rnd);
  let refused = 0;
  for (let i = 0; i < 2000; i++) {
    for (const f of [
      () => picChipFromKernel(decodePic(random(abi.KVM_PIC_STATE.size)), 'slave'),
      () => ioapicFromKernel(decodeIoapic(random(abi.KVM_IOAPIC_STATE.size))),
      () => pitFromKernel(decodePit(random(abi.KVM_PIT_STATE2.size)), at),
      () => lapicFromKernel({ regs: random(LAPIC_REGS_BYTES), apicBase: BigInt(rnd()) << 32n | 0xfee0_0800n }, at),
    ]) {
      try {
        f();
      } catch (e) {
        assert.ok(isCode('TSVMM_UNSUPPORTED')(e), `${(e as Error).stack}`);
        refused++;
      }
    }
  }
  assert.ok(refused > 0);
});

test('a snapshot\'s malformed device state is TSVMM_SNAPSHOT_CORRUPT on its way to KVM', () => {
  const at: ClockPair = { guestNs: 1e9, hostNs: 2e12 };
  const pic = new I8259Pic().getState();
  const good = {
    pic, pit: new I8254Pit({ now: () => 0 }).getState(), 'port-61': { value: 0 }, ioapic: new IoApic({ deliver: () => {} }).getState(),
    'lapic-0': new LocalApic({ id: 0, now: () => 0 }).getState(),
  };
  assert.doesNotThrow(() => devicesToKernel(structuredClone(good), at));
  const broken: ((d: typeof good) => void)[] = [
    (d) => { (d.pic.master as unknown as Record<string, unknown>).irr = 'x'; },
    (d) => { d.pic.slave.initStep = 1; },
    (d) => { d.pit.counters.pop(); },
    (d) => { (d.pit.counters[0] as unknown as Record<string, unknown>).segmentStart = null; },
    (d) => { d.ioapic.low = [1, 2, 3]; },
    (d) => { d['lapic-0'].isr = [0]; },
    (d) => { d['lapic-0'].id = 256; },
    (d) => { (d as Record<string, unknown>)['port-61'] = undefined; },
  ];
  for (const [i, breakIt] of broken.entries()) {
    const d = structuredClone(good);
    breakIt(d);
    assert.throws(() => devicesToKernel(d, at), isCode('TSVMM_SNAPSHOT_CORRUPT'), `case ${i}`);
  }
});
