import { test } from 'node:test';
import assert from 'node:assert/strict';
import { I8254Pit, PIT_HZ } from '../../src/devices/i8254-pit.js';
import { Port61 } from '../../src/devices/port-61.js';
import { PortBus } from '../../src/devices/bus.js';
import { RecordingIrqLine } from '../../src/devices/irq.js';

/** Nanoseconds at which `ticks` PIT clocks have passed since a count written at time 0. */
const at = (ticks: number) => Math.ceil((ticks * 1e9) / PIT_HZ);

function setup(reinject = false) {
  const clock = { t: 0 };
  const irq = new RecordingIrqLine();
  const pit = new I8254Pit({ irq0: irq, now: () => clock.t, reinject });
  const port61 = new Port61({ pit, now: () => clock.t });
  const bus = new PortBus();
  bus.register(0x40, 4, 'pit', pit);
  bus.register(0x61, 1, 'port61', port61);
  const out = (port: number, v: number) => bus.write(port, 1, v);
  const inb = (port: number) => bus.read(port, 1);
  return { clock, irq, pit, out, inb };
}

/** Latches counter `n` and reads it as LSB then MSB. */
function latchRead(s: ReturnType<typeof setup>, n: number): number {
  s.out(0x43, n << 6);
  const lo = s.inb(0x40 + n);
  return lo | (s.inb(0x40 + n) << 8);
}

test('mode 2 (Linux periodic tick, HZ=250): IRQ 0 once per period, count and deadline exact', () => {
  const s = setup();
  const LATCH = 4773; // (1193182 + 125) / 250
  s.out(0x43, 0x34); // counter 0, LSB then MSB, mode 2, binary
  s.out(0x40, LATCH & 0xff);
  s.out(0x40, LATCH >> 8);
  assert.equal(s.pit.nextDeadline(), at(LATCH));
  s.clock.t = at(1000);
  assert.equal(latchRead(s, 0), LATCH - 1000);
  s.clock.t = at(LATCH) - 1;
  s.pit.tick();
  assert.equal(s.irq.pulses, 0);
  assert.equal(latchRead(s, 0), 1); // OUT low for this tick
  s.clock.t = at(LATCH);
  s.pit.tick();
  assert.equal(s.irq.pulses, 1);
  assert.equal(latchRead(s, 0), LATCH);
  assert.equal(s.pit.nextDeadline(), at(2 * LATCH));
  s.clock.t = at(10 * LATCH + 5); // many periods missed: one pulse
  s.pit.tick();
  assert.equal(s.irq.pulses, 2);
  assert.equal(s.pit.nextDeadline(), at(11 * LATCH));
  assert.equal(latchRead(s, 0), LATCH - 5);
});

test('reinjection: missed periods of mode 2 arrive one per acknowledgement; none while one is unacknowledged', () => {
  const s = setup(true);
  const LATCH = 4773;
  s.out(0x43, 0x34); s.out(0x40, LATCH & 0xff); s.out(0x40, LATCH >> 8);
  s.clock.t = at(5 * LATCH + 5); // interrupts off for five periods
  s.pit.tick();
  assert.equal(s.irq.pulses, 1);
  s.clock.t = at(6 * LATCH); // a sixth period while the first is not acknowledged
  s.pit.tick();
  assert.equal(s.irq.pulses, 1);
  for (let k = 2; k <= 6; k++) {
    s.pit.ackIrq0();
    assert.equal(s.irq.pulses, k);
  }
  s.pit.ackIrq0(); // nothing owed
  assert.equal(s.irq.pulses, 6);
  s.clock.t = at(7 * LATCH);
  s.pit.tick();
  assert.equal(s.irq.pulses, 7);
  s.clock.t = at(9 * LATCH);
  s.pit.tick();
  s.out(0x43, 0x34); // a new control word forgets what was owed
  s.pit.ackIrq0(); s.pit.ackIrq0();
  assert.equal(s.irq.pulses, 7);
});

test('mode 2: a new count takes effect at the end of the current period', () => {
  const s = setup();
  s.out(0x43, 0x34); s.out(0x40, 100); s.out(0x40, 0);
  s.clock.t = at(30);
  s.out(0x40, 50); s.out(0x40, 0);
  assert.equal(latchRead(s, 0), 70); // still counting the old period
  assert.equal(s.pit.nextDeadline(), at(100));
  s.clock.t = at(100);
  s.pit.tick();
  assert.equal(s.irq.pulses, 1);
  s.clock.t = at(120);
  assert.equal(latchRead(s, 0), 30);
  s.pit.tick();
  assert.equal(s.pit.nextDeadline(), at(150));
});

test('mode 3 square wave: OUT high ceil(N/2), low floor(N/2); count decrements by two', () => {
  const s = setup();
  for (const [n, highTicks] of [[10, 5], [5, 3]] as const) {
    s.clock.t = 0;
    s.out(0x43, 0x36); s.out(0x40, n); s.out(0x40, 0); // mode 3
    const outs: number[] = [];
    for (let d = 0; d < 2 * n; d++) {
      s.clock.t = at(d);
      s.out(0x43, 0xe2); // read-back: status of counter 0 only
      outs.push(s.inb(0x40) >> 7);
    }
    const period = Array.from({ length: n }, (_, d) => (d < highTicks ? 1 : 0));
    assert.deepEqual(outs, [...period, ...period], `N=${n}`);
  }
  s.clock.t = 0;
  s.out(0x43, 0x36); s.out(0x40, 10); s.out(0x40, 0);
  const counts = [0, 1, 4, 5, 6, 9].map((d) => { s.clock.t = at(d); return latchRead(s, 0); });
  assert.deepEqual(counts, [10, 8, 2, 10, 8, 2]);
  s.clock.t = at(35);
  s.pit.tick();
  assert.equal(s.irq.pulses, 1);
  assert.equal(s.pit.nextDeadline(), at(40));
});

test('read-back: status (OUT, null count, mode bits) then count', () => {
  const s = setup();
  s.out(0x43, 0x34);
  s.out(0x43, 0xe2); // status of counter 0
  assert.equal(s.inb(0x40), 0x80 | 0x40 | 0x34); // OUT high, null count, RW=3 mode 2
  s.out(0x40, 0x00); s.out(0x40, 0x10); // 0x1000
  s.clock.t = at(0x100);
  s.out(0x43, 0xc2); // count and status
  assert.equal(s.inb(0x40), 0x80 | 0x34);
  assert.equal(s.inb(0x40), 0x00);
  assert.equal(s.inb(0x40), 0x0f); // 0x0f00
  // A second latch before reading is ignored: the first value sticks.
  s.out(0x43, 0x00);
  s.clock.t = at(0x200);
  s.out(0x43, 0x00);
  assert.equal(latchRead(s, 0), 0x0f00);
});

test('BCD counting and MSB-only / LSB-only access', () => {
  const s = setup();
  s.out(0x43, 0x31); // mode 0, BCD
  s.out(0x40, 0x34); s.out(0x40, 0x12); // 1234 decimal
  s.clock.t = at(34);
  assert.equal(latchRead(s, 0), 0x1200);
  s.clock.t = 0;
  s.out(0x43, 0x20); // MSB only, mode 0, binary
  s.out(0x40, 0x10);
  s.clock.t = at(0x10);
  s.out(0x43, 0x00);
  assert.equal(s.inb(0x40), 0x0f); // MSB of 0x0ff0
  s.clock.t = 0;
  s.out(0x43, 0x10); // LSB only
  s.out(0x40, 0x80);
  s.clock.t = at(0x30);
  s.out(0x43, 0x00);
  assert.equal(s.inb(0x40), 0x50);
});

test('mode 0 on counter 0 drives IRQ 0 high at terminal count; reprogramming drops it', () => {
  const s = setup();
  s.out(0x43, 0x30); s.out(0x40, 0xe8); s.out(0x40, 0x03); // 1000
  assert.equal(s.pit.nextDeadline(), at(1000));
  s.clock.t = at(999);
  s.pit.tick();
  assert.equal(s.irq.level, false);
  s.clock.t = at(1000);
  s.pit.tick();
  assert.equal(s.irq.level, true);
  assert.equal(s.pit.nextDeadline(), undefined);
  s.clock.t = at(1005);
  assert.equal(latchRead(s, 0), 0xfffb); // keeps counting, wraps
  s.out(0x43, 0x30);
  assert.equal(s.irq.level, false);
});

test('mode 4 one-shot (Linux oneshot clockevent): one pulse after the count', () => {
  const s = setup();
  s.out(0x43, 0x38); s.out(0x40, 100); s.out(0x40, 0);
  assert.equal(s.pit.nextDeadline(), at(101));
  s.clock.t = at(500);
  s.pit.tick();
  assert.equal(s.irq.pulses, 1);
  s.pit.tick();
  assert.equal(s.irq.pulses, 1);
  assert.equal(s.pit.nextDeadline(), undefined);
});

test('counter 2 is gated by port 0x61 bit 0 and its OUT reads back in bit 5', () => {
  const s = setup();
  s.out(0x61, 0x00);
  s.out(0x43, 0xb0); s.out(0x42, 100); s.out(0x42, 0); // counter 2, mode 0
  s.clock.t = at(500);
  assert.equal(s.inb(0x61) & 0x20, 0); // gate low: not counting
  s.out(0x43, 0x80);
  assert.equal(s.inb(0x42) | (s.inb(0x42) << 8), 100);
  s.out(0x61, 0x01); // gate on at tick 500
  s.clock.t = at(599);
  assert.equal(s.inb(0x61) & 0x23, 0x01);
  s.clock.t = at(600) + 1;
  assert.equal(s.inb(0x61) & 0x20, 0x20);
  assert.equal(s.inb(0x61) & 0x0f, 0x01);
});

test('port 0x61 refresh bit toggles every 15.085 us', () => {
  const s = setup();
  s.clock.t = 1000;
  const a = s.inb(0x61) & 0x10;
  s.clock.t = 1000 + 15_085;
  assert.equal(s.inb(0x61) & 0x10, a ^ 0x10);
});

test("Linux's PIT TSC calibration loop: 10 ms of counter 2 in mode 0, polling OUT2", () => {
  const s = setup();
  s.clock.t = 123_456_789;
  const start = s.clock.t;
  s.out(0x61, (s.inb(0x61) & ~0x02) | 0x01); // gate high, speaker off
  s.out(0x43, 0xb0); // counter 2, LSB/MSB, mode 0, binary
  const latch = Math.floor(PIT_HZ / (1000 / 10)); // 11931
  s.out(0x42, latch & 0xff);
  s.out(0x42, latch >> 8);
  let loops = 0;
  while ((s.inb(0x61) & 0x20) === 0) {
    s.clock.t += 1000; // each poll costs 1 us of "TSC"
    loops++;
    assert.ok(loops < 1_000_000, 'OUT2 never went high');
  }
  const expected = Math.ceil(Math.ceil((latch * 1e9) / PIT_HZ) / 1000);
  assert.equal(loops, expected);
  const elapsedMs = (s.clock.t - start) / 1e6;
  assert.ok(Math.abs(elapsedMs - 10) < 0.01, `elapsed ${elapsedMs} ms`);
});

test("Linux's quick PIT calibration: count 0xffff in mode 0, MSB read unlatched decreases every 256 ticks", () => {
  const s = setup();
  s.out(0x61, (s.inb(0x61) & ~0x02) | 0x01);
  s.out(0x43, 0xb0);
  s.out(0x42, 0xff); s.out(0x42, 0xff);
  const msbs: number[] = [];
  for (let i = 0; i < 5; i++) {
    s.clock.t = at(i * 256 + 3);
    s.inb(0x42); // LSB (discarded, as the driver does)
    msbs.push(s.inb(0x42));
  }
  assert.deepEqual(msbs, [0xff, 0xfe, 0xfd, 0xfc, 0xfb]);
});

test('state round-trips through getState/restore', () => {
  const s = setup();
  s.out(0x43, 0x34); s.out(0x40, 0x00); s.out(0x40, 0x10);
  s.clock.t = at(0x123);
  const saved = s.pit.getState();
  const copy = new I8254Pit({ now: () => s.clock.t });
  copy.restore(saved);
  assert.deepEqual(copy.getState(), saved);
  assert.equal(copy.nextDeadline(), s.pit.nextDeadline());
});

test('reinjection: resetReinject forgets an edge that will never be acknowledged (IRQ 0 unmasked elsewhere)', () => {
  const s = setup(true);
  const LATCH = 4773;
  s.out(0x43, 0x34); s.out(0x40, LATCH & 0xff); s.out(0x40, LATCH >> 8);
  s.clock.t = at(LATCH);
  s.pit.tick();
  assert.equal(s.irq.pulses, 1); // taken by a controller that has IRQ 0 masked: no acknowledgement
  s.clock.t = at(3 * LATCH);
  s.pit.tick();
  assert.equal(s.irq.pulses, 1, 'held back behind the unacknowledged edge');
  s.pit.resetReinject();
  s.clock.t = at(4 * LATCH);
  s.pit.tick();
  assert.equal(s.irq.pulses, 2, 'the next period is signalled; the owed ones are dropped');
  s.pit.ackIrq0();
  assert.equal(s.irq.pulses, 2);
});
