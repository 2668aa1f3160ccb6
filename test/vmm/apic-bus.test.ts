// The APIC bus of the soft CPU's SMP (src/vmm/apic-bus.ts): who a message is for, from each
// APIC's published identity (physical, logical flat and cluster, shorthands, hardware disable),
// lowest priority to one APIC, fixed interrupts coalescing in the inbox like an IRR, INIT before
// the start-up vector, NMI and INIT stopping the target's run loop, and fixed ones only waking it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalApic, type ApicMessage } from '../../src/devices/local-apic.js';
import { newStopFlag } from '../../src/nvmm/stop.js';
import { ApicBus, newApicBus } from '../../src/vmm/apic-bus.js';

function word(v: number): Uint8Array {
  return new Uint8Array([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]);
}

function machine(cpus: number) {
  const stops = Array.from({ length: cpus }, () => ({ flag: newStopFlag() }));
  const buffer = newApicBus(cpus);
  const bus = new ApicBus(buffer, stops);
  const events: string[] = [];
  const apics = Array.from({ length: cpus }, (_, id) => {
    const apic = new LocalApic({
      id, bsp: id === 0, now: () => 0, x2apic: true,
      onInit: () => events.push(`init ${id}`), onSipi: (v) => events.push(`sipi ${id} ${v}`), onNmi: () => events.push(`nmi ${id}`),
    });
    apic.write(0xf0, word(0x1ff)); // software-enabled
    bus.publish(id, apic);
    return apic;
  });
  const stopped = (id: number) => Atomics.load(new Int32Array(stops[id]!.flag), 0) === 1;
  return { bus, apics, events, stopped };
}

const fixed = (destination: number, vector: number, extra: Partial<ApicMessage> = {}): ApicMessage => ({
  source: 0, destination, destMode: 'physical', mode: 'fixed', vector, shorthand: 'none', level: true, trigger: 'edge', ...extra,
});

test('APIC bus: physical, logical flat and cluster destinations and the shorthands, from published identities', () => {
  const { bus, apics } = machine(4);
  assert.deepEqual([0, 1, 2, 3].map((i) => bus.isTarget(i, fixed(2, 0x40))), [false, false, true, false]);
  assert.deepEqual([0, 1, 2, 3].map((i) => bus.isTarget(i, fixed(0xff, 0x40))), [true, true, true, true]);
  // Logical flat: LDR bit per CPU.
  apics.forEach((a, i) => { a.write(0xd0, word((1 << i) << 24)); bus.publish(i, a); });
  assert.deepEqual([0, 1, 2, 3].map((i) => bus.isTarget(i, fixed(0b0110, 0x40, { destMode: 'logical' }))), [false, true, true, false]);
  // Cluster model: cluster 1, members 1 and 2 (APIC 3 in cluster 2).
  apics.forEach((a, i) => { a.write(0xe0, word(0x0fff_ffff)); a.write(0xd0, word(((i === 3 ? 0x20 : 0x10) | (1 << (i % 3))) << 24)); bus.publish(i, a); });
  assert.deepEqual([0, 1, 2, 3].map((i) => bus.isTarget(i, fixed(0x13, 0x40, { destMode: 'logical' }))), [true, true, false, false]);
  assert.deepEqual([0, 1, 2, 3].map((i) => bus.isTarget(i, fixed(0, 0x40, { shorthand: 'allButSelf', source: 1 }))), [true, false, true, true]);
  // A hardware-disabled APIC takes nothing.
  apics[3]!.writeBaseMsr(0xfee0_0000);
  bus.publish(3, apics[3]!);
  assert.equal(bus.isTarget(3, fixed(0, 0x40, { shorthand: 'all' })), false);
});

test('APIC bus: an APIC in x2APIC mode is addressed as LocalApic addresses it: 32-bit physical and cluster destinations, 8-bit messages by ID or broadcast only', () => {
  const { bus, apics } = machine(4);
  // APICs 1 and 2 switch to x2APIC mode (EN | EXTD, the BSP bit kept as it was); 0 and 3 stay xAPIC.
  for (const i of [1, 2]) {
    assert.equal(apics[i]!.writeBaseMsr(0xfee0_0000 + 0x800 + 0x400), true);
    bus.publish(i, apics[i]!);
  }
  const x2 = (destination: number, extra: Partial<ApicMessage> = {}) => fixed(destination, 0x40, { x2apic: true, ...extra });
  const messages: ApicMessage[] = [
    x2(2), // physical, 32-bit
    x2(0xffff_ffff), // x2APIC broadcast
    x2((0 << 16) | (1 << 1), { destMode: 'logical' }), // cluster 0, member bit 1: APIC 1 (LDR derived from the ID)
    x2((0 << 16) | (1 << 2), { destMode: 'logical' }), // cluster 0, member bit 2: APIC 2
    fixed(2, 0x40), // an 8-bit physical message (the I/O APIC's)
    fixed(0xff, 0x40), // 8-bit broadcast
    fixed(0b0110, 0x40, { destMode: 'logical' }), // 8-bit logical: not for x2APIC-mode APICs
  ];
  for (const msg of messages) {
    const local = [1, 2].map((i) => apics[i]!.isTarget(msg));
    const published = [1, 2].map((i) => bus.isTarget(i, msg));
    assert.deepEqual(published, local, JSON.stringify(msg));
  }
  assert.deepEqual([1, 2].map((i) => bus.isTarget(i, x2(2))), [false, true]);
  assert.deepEqual([1, 2].map((i) => bus.isTarget(i, x2(2, { destMode: 'logical' }))), [true, false]);
  assert.deepEqual([1, 2].map((i) => bus.isTarget(i, fixed(0b0110, 0x40, { destMode: 'logical' }))), [false, false]);
});

test('APIC bus: fixed interrupts wait in the inbox (coalescing) until the target drains it; lowest priority reaches one APIC', () => {
  const { bus, apics, stopped } = machine(3);
  bus.deliver(fixed(1, 0x50), { index: 0, apic: apics[0]! });
  bus.deliver(fixed(1, 0x50), { index: 0, apic: apics[0]! });
  bus.deliver(fixed(1, 0x60, { trigger: 'level' }), { index: 0, apic: apics[0]! });
  assert.equal(apics[1]!.pendingInterrupt(), false, 'nothing reaches the APIC before its thread drains');
  assert.equal(bus.pending(1), true);
  assert.equal(stopped(1), false, 'a fixed interrupt wakes the target, it does not stop its run loop');
  bus.drain(1, apics[1]!);
  assert.equal(bus.pending(1), false);
  assert.equal(apics[1]!.acknowledge(), 0x60);
  const tmr = new Uint8Array(4);
  apics[1]!.read(0x180 + 0x30, tmr); // TMR bits 96-127: vector 0x60 is level-triggered
  assert.equal(tmr[0], 1);
  apics[1]!.write(0xb0, word(0)); // EOI
  assert.equal(apics[1]!.acknowledge(), 0x50);
  apics[1]!.write(0xb0, word(0));
  assert.equal(apics[1]!.acknowledge(), 0xff, 'the two 0x50s were one IRR bit');
  // To the sender itself: at once.
  bus.deliver(fixed(0, 0x70), { index: 0, apic: apics[0]! });
  assert.equal(apics[0]!.acknowledge(), 0x70);
  bus.deliver(fixed(0xff, 0x80, { mode: 'lowestPriority', source: 2 }), { index: 2, apic: apics[2]! });
  assert.deepEqual([0, 1, 2].map((i) => bus.pending(i) || apics[i]!.pendingInterrupt()), [true, false, false]);
});

test('APIC bus: INIT, then the start-up vector, in that order from one drain; NMI and INIT stop the target', () => {
  const { bus, apics, events, stopped } = machine(2);
  const from0 = { index: 0, apic: apics[0]! };
  bus.deliver({ ...fixed(1, 0), mode: 'init' }, from0);
  assert.equal(stopped(1), true);
  bus.deliver({ ...fixed(1, 0x08), mode: 'startup' }, from0);
  bus.deliver({ ...fixed(1, 0), mode: 'init', level: false, trigger: 'level' }, from0); // de-assert: nothing
  bus.drain(1, apics[1]!);
  assert.deepEqual(events, ['init 1', 'sipi 1 8']);
  bus.deliver({ ...fixed(1, 0), mode: 'nmi' }, from0);
  bus.deliver({ ...fixed(1, 0), mode: 'nmi' }, from0);
  bus.drain(1, apics[1]!);
  assert.deepEqual(events.slice(2), ['nmi 1', 'nmi 1']);
});
