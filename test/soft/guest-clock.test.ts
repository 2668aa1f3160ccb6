// One clock for guest time: the soft CPU's time-stamp counter and the timer devices read the
// machine's GuestClock, so given one clock over a fake host time they agree to the nanosecond,
// and nothing here depends on how much wall time passes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { GuestClock } from '../../src/common/clock.js';
import { PortBus } from '../../src/devices/bus.js';
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
