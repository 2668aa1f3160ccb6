// One clock for guest time: the soft CPU's time-stamp counter and the timer devices read the
// machine's GuestClock, so given one clock over a fake host time they agree to the nanosecond,
// and nothing here depends on how much wall time passes. Stopped (a pause, a save) and started
// again, or saved and restored after a gap of host time, they all go on from where they were by
// the same guest time, none counting the gap.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { GuestClock } from '../../src/common/clock.js';
import { PortBus } from '../../src/devices/bus.js';
import { AcpiPm } from '../../src/devices/acpi-pm.js';
import { I8254Pit, PIT_HZ } from '../../src/devices/i8254-pit.js';
import { LocalApic } from '../../src/devices/local-apic.js';
import { PROT } from '../../src/nvmm/backend.js';
import { Machine, type Vcpu } from '../../src/nvmm/machine.js';
import { GPR, STATE } from '../../src/nvmm/state.js';
import { enterFlat32 } from '../../src/selftest/guest-x64.js';

const RAM = 1 << 20;
const LOAD = 0x1000;
/** rdtsc; out 0x80, al; rdtsc; out 0x80, al; hlt (flat 32-bit code). */
const CODE = [0x0f, 0x31, 0xe6, 0x80, 0x0f, 0x31, 0xe6, 0x80, 0xf4];

/** Runs to the next OUT to 0x80; returns EDX:EAX (the TSC the guest read) and steps past the OUT. */
function tscAtNextOut(vcpu: Vcpu): bigint {
  const exit = vcpu.run();
  assert.equal(exit.kind, 'io');
  if (exit.kind !== 'io') throw new Error('unreachable');
  assert.equal(exit.port, 0x80);
  const s = vcpu.getState(STATE.GPRS);
  s.gprs[GPR.RIP] = exit.npc!;
  vcpu.setState(STATE.GPRS);
  return ((s.gprs[GPR.RDX]! & 0xffff_ffffn) << 32n) | (s.gprs[GPR.RAX]! & 0xffff_ffffn);
}

test('the soft CPU\'s TSC and the timer devices given one fake clock see the same time', () => {
  const host = { ns: 7_000_000_000 }; // an arbitrary host time: guest time is 0 here
  const clock = new GuestClock({ host: () => host.ns });
  const machine = new Machine(SoftBackend.open(), { clock });
  const mem = machine.allocateMemory(RAM);
  try {
    machine.mapHva(mem);
    machine.mapGpa(0, mem.hva, RAM, PROT.ALL);
    mem.bytes.set(CODE, LOAD);
    const vcpu = machine.createVcpu(0);
    enterFlat32(vcpu, LOAD);
    vcpu.setState(STATE.ALL);

    // The devices, as a board builds them: their `now` is the machine's clock.
    const ports = new PortBus();
    const pit = new I8254Pit({ now: machine.clock.now });
    ports.register(0x40, 4, 'pit', pit);
    const apic = new LocalApic({ id: 0, bsp: true, now: machine.clock.now });
    const apicWrite = (off: number, v: number) => apic.write(off, new Uint8Array([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24]));
    const apicRead = (off: number) => { const d = new Uint8Array(4); apic.read(off, d); return new DataView(d.buffer).getUint32(0, true); };
    const pitCount = () => { ports.write(0x43, 1, 0x00); return ports.read(0x40, 1) | (ports.read(0x40, 1) << 8); };

    host.ns += 1234;
    assert.equal(tscAtNextOut(vcpu), 1234n, 'the TSC counts guest time from the machine\'s creation');
    // Both timers start now, at guest time 1234 ns.
    ports.write(0x43, 1, 0x34); // counter 0, LSB then MSB, mode 2
    ports.write(0x40, 1, 0);
    ports.write(0x40, 1, 0); // count 65536
    apicWrite(0xf0, 0x1ff); // software enable
    apicWrite(0x3e0, 0xb); // divide by 1: one count per ns at the default 1 GHz
    apicWrite(0x320, 0x30); // one-shot, vector 0x30
    apicWrite(0x380, 100_000_000);

    const STEP = 1_000_000;
    host.ns += STEP;
    assert.equal(tscAtNextOut(vcpu), 1234n + BigInt(STEP));
    assert.equal(apicRead(0x390), 100_000_000 - STEP, 'the APIC timer counted the same nanoseconds');
    assert.equal(pitCount(), 65536 - Math.floor((STEP * PIT_HZ) / 1e9), 'the PIT counted the same nanoseconds');
    assert.equal(clock.now(), 1234 + STEP);

    const end = vcpu.run();
    assert.equal(end.kind, 'halted');
  } finally {
    machine.destroy();
    mem.free();
  }
});

const PM_TIMER_HZ = 3_579_545;
/** rdtsc; out 0x80, al; jmp back to it (flat 32-bit code): each run to the OUT reads the TSC once. */
const TSC_LOOP = [0x0f, 0x31, 0xe6, 0x80, 0xeb, 0xfa];

/** A soft machine over `clock` running TSC_LOOP, and the timer devices a board gives the same clock. */
function clockedMachine(clock: GuestClock) {
  const machine = new Machine(SoftBackend.open(), { clock });
  const mem = machine.allocateMemory(RAM);
  machine.mapHva(mem);
  machine.mapGpa(0, mem.hva, RAM, PROT.ALL);
  mem.bytes.set(TSC_LOOP, LOAD);
  const vcpu = machine.createVcpu(0);
  const ports = new PortBus();
  const pit = new I8254Pit({ now: clock.now });
  ports.register(0x40, 4, 'pit', pit);
  const pm = new AcpiPm({ onSleep: () => {}, now: clock.now });
  ports.register(0x600, 12, 'acpi-pm', pm);
  const apic = new LocalApic({ id: 0, bsp: true, now: clock.now });
  const le = (v: number) => new Uint8Array([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24]);
  const counts = () => {
    ports.write(0x43, 1, 0x00); // latch counter 0
    const pitCount = ports.read(0x40, 1) | (ports.read(0x40, 1) << 8);
    const d = new Uint8Array(4);
    apic.read(0x390, d);
    return { tsc: tscAtNextOut(vcpu), pm: ports.read(0x608, 4), pit: pitCount, apic: new DataView(d.buffer).getUint32(0, true) };
  };
  const startTimers = () => {
    ports.write(0x43, 1, 0x34); ports.write(0x40, 1, 0); ports.write(0x40, 1, 0); // counter 0, mode 2, 65536
    apic.write(0xf0, le(0x1ff));
    apic.write(0x3e0, le(0xb)); // divide by 1
    apic.write(0x320, le(0x30)); // one-shot
    apic.write(0x380, le(1_000_000_000));
  };
  const close = () => { machine.destroy(); mem.free(); };
  return { machine, vcpu, pit, pm, apic, counts, startTimers, close };
}

/** The guest-time nanoseconds between two readings, as each counter saw them (each in its own units, converted). */
function advanced(a: ReturnType<ReturnType<typeof clockedMachine>['counts']>, b: typeof a) {
  return {
    tsc: Number(b.tsc - a.tsc),
    pm: ((b.pm - a.pm) & 0xff_ffff) / PM_TIMER_HZ * 1e9,
    pit: ((a.pit - b.pit) & 0xffff) / PIT_HZ * 1e9,
    apic: a.apic - b.apic,
  };
}

/** Every counter advanced by `ns` of guest time, within its own resolution (one tick each side). */
function assertAdvanced(a: Parameters<typeof advanced>[0], b: Parameters<typeof advanced>[0], ns: number, what: string) {
  const d = advanced(a, b);
  assert.equal(d.tsc, ns, `${what}: the TSC`);
  assert.equal(d.apic, ns, `${what}: the local APIC timer`);
  assert.ok(Math.abs(d.pm - ns) <= 1e9 / PM_TIMER_HZ, `${what}: the ACPI PM timer moved ${d.pm} ns, not ${ns}`);
  assert.ok(Math.abs(d.pit - ns) <= 1e9 / PIT_HZ, `${what}: the PIT moved ${d.pit} ns, not ${ns}`);
}

test('stopped and started (a pause), the TSC, PM timer, PIT and APIC timer skip the stopped host time together', () => {
  const host = { ns: 5_000_000_000 };
  const clock = new GuestClock({ host: () => host.ns });
  const m = clockedMachine(clock);
  try {
    enterFlat32(m.vcpu, LOAD);
    m.vcpu.setState(STATE.ALL);
    host.ns += 1_000_000;
    m.startTimers();
    host.ns += 3_000_000;
    const before = m.counts();
    clock.stop();
    assert.equal(clock.running, false);
    host.ns += 7_000_000_000; // paused for 7 s of host time
    const paused = m.counts();
    assertAdvanced(before, paused, 0, 'while stopped');
    clock.start();
    host.ns += 20_000_000;
    assertAdvanced(before, m.counts(), 20_000_000, 'after the pause');
  } finally {
    m.close();
  }
});

test('saved and restored after a gap of host time, the TSC, PM timer, PIT and APIC timer continue from their saved values together', () => {
  const host = { ns: 9_000_000_000 };
  const clock = new GuestClock({ host: () => host.ns });
  const a = clockedMachine(clock);
  let saved: { guestNs: number; vcpu: ReturnType<Vcpu['getState']>; pit: ReturnType<I8254Pit['getState']>; pm: ReturnType<AcpiPm['getState']>; apic: ReturnType<LocalApic['getState']> };
  let before: ReturnType<typeof a.counts>;
  try {
    enterFlat32(a.vcpu, LOAD);
    a.vcpu.setState(STATE.ALL);
    host.ns += 2_000_000;
    a.startTimers();
    host.ns += 123_457;
    before = a.counts();
    // A save, as the board takes it: guest time stands still while the state is read, however
    // long that takes on the host.
    clock.stop();
    host.ns += 4_000_000;
    saved = { guestNs: clock.now(), vcpu: structuredClone(a.vcpu.getState(STATE.ALL)), pit: a.pit.getState(), pm: a.pm.getState(), apic: a.apic.getState() };
  } finally {
    a.close();
  }
  // Restored 30 s of host time later, and built for another 50 ms before it runs.
  host.ns += 30_000_000_000;
  const restored = new GuestClock({ host: () => host.ns, stoppedAt: saved.guestNs });
  const b = clockedMachine(restored);
  try {
    const s = b.vcpu.getState(STATE.ALL);
    Object.assign(s, structuredClone(saved.vcpu));
    // Committed while guest time stands still (PcBoard.applySnapshot): committed at the first
    // run instead, after start(), the TSC would be the saved value at a later guest time.
    b.vcpu.setState(STATE.ALL);
    b.vcpu.commitState();
    b.pit.restore(saved.pit);
    b.pm.restore(saved.pm);
    b.apic.restore(saved.apic);
    host.ns += 50_000_000;
    restored.start();
    host.ns += 10_000_000;
    assertAdvanced(before, b.counts(), 10_000_000, 'restored and run 10 ms');
  } finally {
    b.close();
  }
});
