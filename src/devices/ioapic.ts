/**
 * The I/O APIC (Intel 82093AA-compatible, version 0x11, 24 inputs) as an MmioDevice: the
 * register window at 0xFEC00000 (offset 0x00 = IOREGSEL, offset 0x10 = IOWIN; the window is
 * 0x20 bytes of a 4 KiB page, the rest reads 0).
 *
 * Not wired into a board yet: only tests build it (test/devices/ioapic.test.ts). The board uses
 * KVM's in-kernel I/O APIC; this model is for the soft backend's machines, with LocalApic.
 *
 * Model (82093AA datasheet: IOAPICID, IOAPICVER, IOAPICARB, IOREDTBL0-23):
 * - Registers: 0x00 ID (bits 27-24), 0x01 version (0x11, max redirection entry 23 in bits
 *   23-16), 0x02 arbitration ID (reads the ID; the arbitration protocol is not modelled),
 *   0x10 + 2n / 0x11 + 2n the low and high words of redirection entry n.
 * - IOREGSEL/IOWIN are 32-bit registers; a read of another size returns the bytes of the word,
 *   writes other than 4 bytes at offset 0 or 0x10 are ignored.
 * - Inputs: setIrq(pin, asserted) takes the logical level (true = the device requests), so the
 *   polarity bit (13) is stored and read back but not applied: the board hands over asserted
 *   levels whatever the wire's polarity is.
 * - Edge-triggered entries send a message on each rising edge while unmasked (an edge while
 *   masked is lost, as on the part). Level-triggered entries send while the input is asserted
 *   and remote IRR is clear, then set remote IRR; `eoi(vector)` (the local APIC's EOI broadcast)
 *   clears remote IRR of the level entries with that vector and re-sends if the input is still
 *   asserted. Unmasking an asserted level entry sends it.
 * - Delivery status (bit 12) always reads idle: messages are delivered at once through
 *   `deliver`, which the board routes to local APICs (see deliverToApics in local-apic.ts).
 *   Delivery modes: fixed, lowest priority, SMI, NMI, INIT, ExtINT (the message carries the
 *   mode; the reserved modes 3 and 6 send nothing).
 */
import type { MmioDevice } from './bus.js';
import { readLe } from './bus.js';
import { DELIVERY_MODES, type ApicMessage } from './local-apic.js';

/** The architectural default base of the first I/O APIC. */
export const IOAPIC_DEFAULT_BASE = 0xfec0_0000;
export const IOAPIC_PINS = 24;

// MMIO offsets.
export const IOREGSEL = 0x00;
export const IOWIN = 0x10;

// Indirect registers.
export const IOAPIC_REG_ID = 0x00;
export const IOAPIC_REG_VERSION = 0x01;
export const IOAPIC_REG_ARBITRATION = 0x02;
export const IOAPIC_REG_REDTBL = 0x10; // entry n: low word at 0x10 + 2n, high word at 0x11 + 2n
const ID_SHIFT = 24;
const ID_MASK = 0x0f00_0000; // bits 27-24
export const IOAPIC_VERSION_VALUE = 0x11 | ((IOAPIC_PINS - 1) << 16); // 0x00170011

// Redirection entry (low word) bits.
export const REDIR_VECTOR = 0xff;
export const REDIR_DELIVERY_MODE_SHIFT = 8; // bits 10-8
export const REDIR_DEST_LOGICAL = 0x800; // bit 11
export const REDIR_DELIVERY_STATUS = 0x1000; // bit 12 (read only)
export const REDIR_POLARITY_LOW = 0x2000; // bit 13 (stored only, see the file comment)
export const REDIR_REMOTE_IRR = 0x4000; // bit 14 (read only)
export const REDIR_LEVEL = 0x8000; // bit 15: level-triggered
export const REDIR_MASKED = 0x1_0000; // bit 16
export const REDIR_LOW_WRITABLE = 0x0001_afff; // all but delivery status and remote IRR
const REDIR_DEST_SHIFT = 24; // high word bits 31-24 (destination field, bits 63-56)

export interface IoApicOptions {
  /** The I/O APIC ID (the MP table / MADT entry's). */
  id?: number;
  /** Sends an interrupt message to the local APICs. */
  deliver: (msg: ApicMessage) => void;
  /** The guest cleared the mask bit of entry `pin` (a source that waits for acknowledgements starts over). */
  onUnmask?: (pin: number) => void;
}

export interface IoApicState {
  id: number;
  select: number;
  /** Low words of the redirection entries (remote IRR included). */
  low: number[];
  high: number[];
  /** Asserted inputs, one bit per pin. */
  levels: number;
}

export class IoApic implements MmioDevice {
  private readonly deliver: (msg: ApicMessage) => void;
  private readonly onUnmask: ((pin: number) => void) | undefined;
  private id: number;
  private select = 0;
  private readonly low = new Uint32Array(IOAPIC_PINS).fill(REDIR_MASKED);
  private readonly high = new Uint32Array(IOAPIC_PINS);
  private levels = 0;

  constructor(opts: IoApicOptions) {
    this.deliver = opts.deliver;
    this.onUnmask = opts.onUnmask;
    this.id = (opts.id ?? 0) & 0xf;
  }

  /** Drives input `pin` (0-23); `asserted` is the logical request level. */
  setIrq(pin: number, asserted: boolean): void {
    if (pin < 0 || pin >= IOAPIC_PINS) return;
    const bit = 1 << pin;
    const was = (this.levels & bit) !== 0;
    this.levels = asserted ? this.levels | bit : this.levels & ~bit;
    const entry = this.low[pin]!;
    if (entry & REDIR_LEVEL) {
      if (asserted) this.service(pin);
    } else if (asserted && !was && !(entry & REDIR_MASKED)) {
      this.send(pin);
    }
  }

  /** An EOI broadcast from a local APIC for `vector`. */
  eoi(vector: number): void {
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const entry = this.low[pin]!;
      if ((entry & REDIR_VECTOR) !== vector || !(entry & REDIR_LEVEL) || !(entry & REDIR_REMOTE_IRR)) continue;
      this.low[pin] = entry & ~REDIR_REMOTE_IRR;
      this.service(pin);
    }
  }

  /** Whether unmasked entry `pin` sends fixed / lowest-priority interrupts with `vector`. */
  routes(pin: number, vector: number): boolean {
    const entry = this.low[pin];
    if (entry === undefined || entry & REDIR_MASKED || (entry & REDIR_VECTOR) !== vector) return false;
    const mode = DELIVERY_MODES[(entry >> REDIR_DELIVERY_MODE_SHIFT) & 7];
    return mode === 'fixed' || mode === 'lowestPriority';
  }

  /** Sends a level-triggered pin's message if asserted, unmasked and not already in service. */
  private service(pin: number): void {
    const entry = this.low[pin]!;
    if (!(entry & REDIR_LEVEL) || entry & REDIR_MASKED || entry & REDIR_REMOTE_IRR || !(this.levels & (1 << pin))) return;
    if (this.send(pin)) this.low[pin] = entry | REDIR_REMOTE_IRR;
  }

  private send(pin: number): boolean {
    const entry = this.low[pin]!;
    const mode = DELIVERY_MODES[(entry >> REDIR_DELIVERY_MODE_SHIFT) & 7];
    if (mode === undefined || (entry >> REDIR_DELIVERY_MODE_SHIFT & 7) === 6) return false; // reserved modes
    this.deliver({
      destination: this.high[pin]! >>> REDIR_DEST_SHIFT,
      destMode: entry & REDIR_DEST_LOGICAL ? 'logical' : 'physical',
      mode,
      vector: entry & REDIR_VECTOR,
      shorthand: 'none',
      level: true,
      trigger: entry & REDIR_LEVEL ? 'level' : 'edge',
    });
    return true;
  }

  private readRegister(index: number): number {
    switch (index) {
      case IOAPIC_REG_ID: return this.id << ID_SHIFT;
      case IOAPIC_REG_VERSION: return IOAPIC_VERSION_VALUE;
      case IOAPIC_REG_ARBITRATION: return this.id << ID_SHIFT;
    }
    const n = (index - IOAPIC_REG_REDTBL) >> 1;
    if (index < IOAPIC_REG_REDTBL || n >= IOAPIC_PINS) return 0;
    return index & 1 ? this.high[n]! : this.low[n]!;
  }

  private writeRegister(index: number, value: number): void {
    if (index === IOAPIC_REG_ID) { this.id = (value & ID_MASK) >>> ID_SHIFT; return; }
    const n = (index - IOAPIC_REG_REDTBL) >> 1;
    if (index < IOAPIC_REG_REDTBL || n >= IOAPIC_PINS) return; // version, arbitration: read-only
    if (index & 1) {
      this.high[n] = value & 0xff00_0000;
      return;
    }
    const old = this.low[n]!;
    let entry = (old & REDIR_REMOTE_IRR) | (value & REDIR_LOW_WRITABLE);
    if (!(entry & REDIR_LEVEL)) entry &= ~REDIR_REMOTE_IRR; // remote IRR is meaningless for edge
    this.low[n] = entry;
    if (old & REDIR_MASKED && !(entry & REDIR_MASKED)) this.onUnmask?.(n);
    this.service(n); // an asserted level input unmasked (or switched to level) is sent now
  }

  // ---- MmioDevice ----

  read(offset: number, data: Uint8Array): void {
    let value = 0;
    if ((offset & ~3) === IOREGSEL) value = this.select;
    else if ((offset & ~3) === IOWIN) value = this.readRegister(this.select);
    for (let i = 0; i < data.length; i++) {
      const b = (offset & 3) + i;
      data[i] = b < 4 ? (value >>> (8 * b)) & 0xff : 0;
    }
  }

  write(offset: number, data: Uint8Array): void {
    if (data.length !== 4) {
      if (offset === IOREGSEL && data.length >= 1) this.select = data[0]!; // byte writes of IOREGSEL
      return;
    }
    const value = readLe(data, 4);
    if (offset === IOREGSEL) this.select = value & 0xff;
    else if (offset === IOWIN) this.writeRegister(this.select, value);
  }

  // ---- snapshot ----

  getState(): IoApicState {
    return { id: this.id, select: this.select, low: [...this.low], high: [...this.high], levels: this.levels };
  }

  restore(s: IoApicState): void {
    this.id = s.id & 0xf;
    this.select = s.select & 0xff;
    this.low.set(s.low.slice(0, IOAPIC_PINS));
    this.high.set(s.high.slice(0, IOAPIC_PINS));
    this.levels = s.levels & ((1 << IOAPIC_PINS) - 1);
  }
}
