// The soft board's APIC-mode wiring (BoardInterrupts with `apic`), with a fake clock: each line
// reaches both its 8259 input and its I/O APIC pin, ISA IRQ 0 (the PIT) on pin 2 as the MADT
// says, and the reinjecting PIT is acknowledged through the local APIC and restarted when pin 2
// is unmasked after an edge the masked 8259 latched.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GuestClock } from '../../src/common/clock.js';
import { MmioBus, PortBus } from '../../src/devices/bus.js';
import { IOAPIC_DEFAULT_BASE } from '../../src/devices/ioapic.js';
import { BoardInterrupts } from '../../src/vmm/interrupts.js';
import { IRQS } from '../../src/vmm/layout.js';

const LATCH = 4773; // Linux's HZ=250 period in PIT ticks
const periodNs = (n: number) => Math.ceil((n * LATCH * 1e9) / 1_193_182);

function setup() {
  const t = { ns: 0 };
  const clock = new GuestClock({ host: () => t.ns, origin: 0 });
  const ports = new PortBus();
  const mmio = new MmioBus();
  const board = new BoardInterrupts(ports, clock, { apic: { mmio, ioapicId: 1 } });
  const apic = board.createApic(0); // what attach() gives the boot vCPU (in virtual wire mode)
  ports.write(0x21, 1, 0xff); // the 8259 masked, as Linux masks it in APIC mode (else its ExtINT comes first)
  const le = (v: number) => new Uint8Array([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]);
  const redirect = (pin: number, low: number) => {
    mmio.write(IOAPIC_DEFAULT_BASE, le(0x10 + 2 * pin));
    mmio.write(IOAPIC_DEFAULT_BASE + 0x10, le(low));
  };
  const startPit = () => { ports.write(0x43, 1, 0x34); ports.write(0x40, 1, LATCH & 0xff); ports.write(0x40, 1, LATCH >> 8); };
  return { t, ports, board, apic, redirect, startPit };
}

test('APIC mode: the PIT reaches I/O APIC pin 2, COM1\'s line pin 4; the 8259 gets them too', () => {
  const s = setup();
  s.redirect(2, 0x30); // edge, fixed, vector 0x30, destination 0
  s.redirect(4, 0x44);
  s.startPit();
  s.t.ns = periodNs(1);
  s.board.pit.tick(s.t.ns);
  assert.equal(s.apic.acknowledge(), 0x30, 'IRQ 0 through pin 2');
  s.board.line(IRQS.COM1).set(true);
  assert.equal(s.apic.acknowledge(), 0x44, 'IRQ 4 through pin 4');
  // The 8259 saw both too (latched in its IRR, masked).
  assert.equal(s.board.pic.getState().master.irr & 0x11, 0x11);
});

test('APIC mode: a reinjected PIT period waits for the local APIC to take the one before', () => {
  const s = setup();
  s.redirect(2, 0x30);
  s.startPit();
  s.t.ns = periodNs(3) + 1; // three periods with interrupts off
  s.board.pit.tick(s.t.ns);
  assert.equal(s.apic.acknowledge(), 0x30);
  s.apic.write(0xb0, new Uint8Array(4)); // EOI
  assert.equal(s.apic.acknowledge(), 0x30, 'the second, signalled when the first was taken');
  s.apic.write(0xb0, new Uint8Array(4));
  assert.equal(s.apic.acknowledge(), 0x30);
  s.apic.write(0xb0, new Uint8Array(4));
  assert.equal(s.apic.pendingInterrupt(), false);
});

test('APIC mode: unmasking pin 2 restarts a PIT whose edge the masked 8259 took (Linux\'s check_timer)', () => {
  const s = setup();
  // the 8259 masked, pin 2 masked: an edge goes nowhere
  s.startPit();
  s.t.ns = periodNs(1);
  s.board.pit.tick(s.t.ns);
  s.redirect(2, 0x30); // unmasked now
  s.t.ns = periodNs(2);
  s.board.pit.tick(s.t.ns);
  assert.equal(s.apic.acknowledge(), 0x30, 'the next period comes through');
});
