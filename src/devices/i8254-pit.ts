/**
 * The Intel 8254 programmable interval timer of the PC: three 16-bit down counters clocked at
 * 1.193182 MHz, at ports 0x40-0x43 (the device sees offsets 0-2 = counters 0-2, 3 = control word).
 * Counter 0's OUT drives ISA IRQ 0; counter 2's GATE and OUT are wired to port 0x61 (see
 * port-61.ts); counter 1 (DRAM refresh) is there for completeness.
 *
 * Model (Intel 8254 datasheet: control word format, "Modes", read-back command, status byte):
 * - Time is the `now()` collaborator in nanoseconds (a double; no timers inside the device).
 *   A counter's state is computed lazily from the time at which its count was loaded, so a port
 *   read costs a subtraction and a multiplication. The board asks `nextDeadline()` (the time of
 *   the next rising edge of OUT0, cached) and calls `tick()` once that time has passed; tick()
 *   signals IRQ 0 once per call however many edges passed (the PIC latches one edge anyway),
 *   unless `reinject` is on: then, in the periodic modes 2 and 3, every period is one IRQ 0 edge
 *   and an edge waits for the previous one's acknowledgement (ackIrq0), so a guest that kept
 *   interrupts off for several periods gets them all afterwards and its tick count keeps up
 *   (KVM's in-kernel PIT reinjects the same way). At most MAX_OWED periods are kept.
 * - A count is loaded into the counting element at the moment it is written (the real part loads
 *   it on the next CLK edge, up to 838 ns later): after a count N is written, the counter reads N
 *   and reaches 0 (mode 0's terminal count) N ticks later.
 * - Modes 0-5 with their OUT waveforms: 0 interrupt on terminal count (OUT low until the count
 *   reaches 0, then high), 1 retriggerable one-shot (GATE rising edge starts it), 2 rate
 *   generator (OUT low for the one tick where the count is 1), 3 square wave (high for
 *   ceil(N/2), low for floor(N/2) ticks; the count decrements by two), 4 software strobe and 5
 *   hardware strobe (OUT low for the one tick after the count reaches 0). Control-word modes
 *   6 and 7 are modes 2 and 3 (the status byte returns the bits as written).
 * - GATE: modes 0 and 4 pause while it is low; modes 2 and 3 stop with OUT high and restart
 *   from the full count when it rises; modes 1 and 5 trigger on its rising edge.
 *   Counters 0 and 1 have GATE tied high, as on a PC.
 * - A new count written while a mode 2 or 3 counter runs takes effect at the end of the
 *   current period (the datasheet says mode 3 reloads at the end of the current half-cycle;
 *   taken as the period here). Mode 0 restarts with the new count; writing the first byte of
 *   a two-byte count in mode 0 stops the count and drives OUT low, as the datasheet says.
 * - Binary and BCD counting, LSB / MSB / LSB-then-MSB access, the counter latch command and
 *   the read-back command (count and/or status, several counters at once); the status byte's
 *   NULL COUNT is set by a control word or count write and cleared when the count is loaded
 *   (at once, here). A count of 0 means 65536 (10000 in BCD).
 * - IRQ 0: in modes 0 and 1 the line is driven high at the terminal count and low again by a
 *   new control word or count; in the other modes each rising edge of OUT is a pulse().
 */
import type { NowNs } from '../common/clock.js';
import type { PortDevice } from './bus.js';
import type { IrqLine } from './irq.js';

/** The PIT's input clock (the PC's 14.31818 MHz crystal divided by 12). */
export const PIT_HZ = 1_193_182;
const TICKS_PER_NS = PIT_HZ / 1e9;
const NS_PER_TICK = 1e9 / PIT_HZ;

const CONTROL_OFFSET = 3; // port 0x43

// Control word (port 0x43) fields.
const CW_SELECT_SHIFT = 6; // SC1-SC0: counter 0-2, or 3 = read-back command
const CW_READ_BACK = 3;
export const CW_ACCESS_SHIFT = 4; // RW1-RW0
export const ACCESS_LATCH = 0; // counter latch command
export const ACCESS_LSB = 1; // read/write the least significant byte only
export const ACCESS_MSB = 2; // read/write the most significant byte only
export const ACCESS_WORD = 3; // LSB first, then MSB
export const CW_MODE_SHIFT = 1; // M2-M0
export const CW_BCD = 0x01; // BCD counting (4 decades)

// Read-back command bits (SC = 3).
export const RB_NOT_COUNT = 0x20; // 0 = latch the count of the selected counters
export const RB_NOT_STATUS = 0x10; // 0 = latch the status of the selected counters
export const RB_COUNTER0 = 0x02; // bits 1-3 select counters 0-2
const RB_SELECT_SHIFT = 1;

// Status byte (read-back).
export const STATUS_OUT = 0x80; // the OUT pin
export const STATUS_NULL_COUNT = 0x40; // the last count written has not been loaded
// bits 5-0 are the counter's RW, M and BCD bits as last programmed

const COUNTERS = 3;

/** One counter's migratable state. All times are in the clock's nanoseconds. */
export interface I8254CounterState {
  /** RW, M2-M0 and BCD bits of the last control word (bits 5-0 of the status byte). */
  control: number;
  /** The count register: the last count written (1-65536 in binary terms). */
  countRegister: number;
  /** The count the counting element runs from. */
  reload: number;
  /** A counting sequence is in progress (count loaded, or triggered in modes 1 and 5). */
  loaded: boolean;
  gate: boolean;
  nullCount: boolean;
  /** Ticks counted before `segmentStart` (the counter was paused or is paused now). */
  elapsedBefore: number;
  /** When the current run of counting began (meaningful while it counts). */
  segmentStart: number;
  /** Whether the counter counts now (gate/trigger permitting). */
  counting: boolean;
  /** A count written during a mode 2/3 period, loaded at `pendingAt`. */
  pendingReload: number | null;
  pendingAt: number;
  /** Rising edges of OUT already signalled in this counting sequence. */
  edgesSeen: number;
  /** An edge from a finished sequence not yet signalled. */
  edgeOwed: boolean;
  writeMsbNext: boolean;
  writeLow: number;
  readMsbNext: boolean;
  latchedCount: number | null;
  latchedMsbNext: boolean;
  latchedStatus: number | null;
}

export interface I8254PitState {
  counters: I8254CounterState[];
}

export interface I8254PitOptions {
  /** IRQ 0, driven by counter 0's OUT. */
  irq0?: IrqLine;
  /** The machine's time in nanoseconds (its GuestClock's now). */
  now: NowNs;
  /** Deliver every period of modes 2 and 3, each after the previous was acknowledged (ackIrq0). */
  reinject?: boolean;
}

/** Periods a reinjecting PIT keeps owing at most (4 s at Linux's HZ=250). */
export const MAX_OWED = 1000;

function toBcd(v: number): number {
  return ((Math.floor(v / 1000) % 10) << 12) | ((Math.floor(v / 100) % 10) << 8) | ((Math.floor(v / 10) % 10) << 4) | (v % 10);
}

function fromBcd(v: number): number {
  return ((v >> 12) & 0xf) * 1000 + ((v >> 8) & 0xf) * 100 + ((v >> 4) & 0xf) * 10 + (v & 0xf);
}

export function newCounter(): I8254CounterState {
  return {
    control: (ACCESS_LSB << CW_ACCESS_SHIFT), countRegister: 0x10000, reload: 0x10000, loaded: false, gate: true,
    nullCount: false, elapsedBefore: 0, segmentStart: 0, counting: false, pendingReload: null, pendingAt: 0,
    edgesSeen: 0, edgeOwed: false, writeMsbNext: false, writeLow: 0, readMsbNext: false,
    latchedCount: null, latchedMsbNext: false, latchedStatus: null,
  };
}

export class I8254Pit implements PortDevice {
  private readonly irq0: IrqLine | undefined;
  private readonly now: NowNs;
  private counters: I8254CounterState[] = [newCounter(), newCounter(), newCounter()];
  private deadline: number | undefined;
  private readonly reinject: boolean;
  /** Reinjection: periods not yet signalled, and whether a signalled one awaits its acknowledgement. */
  private owed = 0;
  private inFlight = false;

  constructor(opts: I8254PitOptions) {
    this.irq0 = opts.irq0;
    this.now = opts.now;
    this.reinject = opts.reinject ?? false;
  }

  // ---- per-counter arithmetic (c = counter state, d = ticks since the count was loaded) ----

  static mode(c: I8254CounterState): number {
    const m = (c.control >> CW_MODE_SHIFT) & 7;
    return m >= 6 ? m - 4 : m;
  }

  private static access(c: I8254CounterState): number {
    return (c.control >> CW_ACCESS_SHIFT) & 3;
  }

  private static bcd(c: I8254CounterState): boolean {
    return (c.control & CW_BCD) !== 0;
  }

  /** Ticks counted by `now` in the current sequence. */
  static ticks(c: I8254CounterState, now: number): number {
    if (!c.counting) return c.elapsedBefore;
    return c.elapsedBefore + Math.max(0, Math.floor((now - c.segmentStart) * TICKS_PER_NS));
  }

  /** The earliest time at which the current run has counted `k` ticks (k > elapsedBefore). */
  private static timeOfTick(c: I8254CounterState, k: number): number {
    let t = c.segmentStart + Math.ceil((k - c.elapsedBefore) * NS_PER_TICK);
    while (I8254Pit.ticks(c, t) < k) t += 1;
    return t;
  }

  /** The counting element's value after d ticks (binary; 0-65535 or 0-9999). */
  static value(c: I8254CounterState, d: number): number {
    const n = c.reload;
    const range = I8254Pit.bcd(c) ? 10000 : 0x10000;
    if (!c.loaded) return n % range;
    switch (I8254Pit.mode(c)) {
      case 2:
        return (n - (d % n)) % range;
      case 3: {
        const p = d % n;
        const high = Math.ceil(n / 2);
        const start = n & 1 ? n - 1 : n; // odd counts load N-1 each half
        const q = p < high ? p : p - high;
        return Math.max(0, start - 2 * q) % range;
      }
      default: // 0, 1, 4, 5: count down and wrap
        return (((n - d) % range) + range) % range;
    }
  }

  /** The OUT pin after d ticks. */
  private static out(c: I8254CounterState, d: number): boolean {
    const n = c.reload;
    const mode = I8254Pit.mode(c);
    if (!c.loaded) return mode !== 0;
    switch (mode) {
      case 0: case 1: return d >= n;
      case 2: return !c.counting && !c.gate ? true : d % n !== n - 1;
      case 3: return !c.counting && !c.gate ? true : d % n < Math.ceil(n / 2);
      default: return d !== n; // 4, 5
    }
  }

  /** Rising edges of OUT in the first d ticks of a sequence. */
  static edges(c: I8254CounterState, d: number): number {
    if (!c.loaded) return 0;
    const n = c.reload;
    switch (I8254Pit.mode(c)) {
      case 0: case 1: return d >= n ? 1 : 0;
      case 2: case 3: return Math.floor(d / n);
      default: return d > n ? 1 : 0;
    }
  }

  /** The tick count at which the next rising edge after d happens, or undefined. */
  private static nextEdgeTick(c: I8254CounterState, d: number): number | undefined {
    if (!c.loaded || !c.counting) return undefined;
    const n = c.reload;
    switch (I8254Pit.mode(c)) {
      case 0: case 1: return d < n ? n : undefined;
      case 2: case 3: return (Math.floor(d / n) + 1) * n;
      default: return d <= n ? n + 1 : undefined;
    }
  }

  /** Starts a new counting sequence from `reload` at time `at`. */
  private static start(c: I8254CounterState, reload: number, at: number, counting: boolean): void {
    c.reload = reload;
    c.loaded = true;
    c.elapsedBefore = 0;
    c.segmentStart = at;
    c.counting = counting;
    c.edgesSeen = 0;
    c.pendingReload = null;
  }

  /** Applies a mode 2/3 reload that fell due, keeping an owed edge from the old sequence. */
  private static sync(c: I8254CounterState, now: number): void {
    if (c.pendingReload === null || now < c.pendingAt) return;
    const at = c.pendingAt;
    if (I8254Pit.edges(c, I8254Pit.ticks(c, at)) > c.edgesSeen) c.edgeOwed = true;
    I8254Pit.start(c, c.pendingReload, at, c.counting);
  }

  // ---- the gate (port 0x61 for counter 2) ----

  /** Drives counter `channel`'s GATE input. */
  setGate(channel: number, level: boolean): void {
    const c = this.counters[channel];
    if (!c || c.gate === level) return;
    const now = this.now();
    I8254Pit.sync(c, now);
    c.gate = level;
    const mode = I8254Pit.mode(c);
    if (mode === 1 || mode === 5) {
      if (level) {
        I8254Pit.start(c, c.countRegister, now, true);
        if (channel === 0) this.irq0?.set(false);
      }
    } else if (mode === 2 || mode === 3) {
      if (c.loaded) {
        if (level) I8254Pit.start(c, c.reload, now, true);
        else { c.elapsedBefore = I8254Pit.ticks(c, now); c.counting = false; }
      }
    } else if (c.loaded) { // modes 0 and 4 pause and resume
      if (level) { c.segmentStart = now; c.counting = true; }
      else { c.elapsedBefore = I8254Pit.ticks(c, now); c.counting = false; }
    }
    if (channel === 0) this.recomputeDeadline(now);
  }

  /** Counter `channel`'s OUT pin now. */
  output(channel: number): boolean {
    const c = this.counters[channel];
    if (!c) return false;
    const now = this.now();
    I8254Pit.sync(c, now);
    return I8254Pit.out(c, I8254Pit.ticks(c, now));
  }

  // ---- the clock interface for the board / CPU loop ----

  /** When OUT0 next rises (ns, the clock's time base), or undefined if it will not. Cached. */
  nextDeadline(): number | undefined {
    return this.deadline;
  }

  /** Signals IRQ 0 if OUT0 rose since the last call, and moves the deadline on. */
  tick(now: number = this.now()): void {
    const c = this.counters[0]!;
    I8254Pit.sync(c, now);
    const edges = I8254Pit.edges(c, I8254Pit.ticks(c, now));
    if (edges > c.edgesSeen || c.edgeOwed) {
      const fresh = Math.max(0, edges - c.edgesSeen) + (c.edgeOwed ? 1 : 0);
      c.edgesSeen = Math.max(c.edgesSeen, edges);
      c.edgeOwed = false;
      const mode = I8254Pit.mode(c);
      if (mode === 0 || mode === 1) this.irq0?.set(true);
      else if (this.reinject && (mode === 2 || mode === 3)) {
        this.owed = Math.min(this.owed + fresh, MAX_OWED);
        this.signalOwed();
      } else this.irq0?.pulse();
    }
    this.recomputeDeadline(now);
  }

  /** The interrupt controller acknowledged IRQ 0: with `reinject`, the next owed period is signalled. */
  ackIrq0(): void {
    this.inFlight = false;
    this.signalOwed();
  }

  /**
   * IRQ 0 was unmasked at an interrupt controller: with `reinject`, owed periods are dropped and
   * none is awaited, so that an edge signalled while it was masked (never to be acknowledged)
   * does not hold the following ones back (KVM's PIT does the same on unmask).
   */
  resetReinject(): void {
    this.owed = 0;
    this.inFlight = false;
  }

  private signalOwed(): void {
    if (this.inFlight || this.owed === 0) return;
    this.owed--;
    this.inFlight = true;
    this.irq0?.pulse();
  }

  private recomputeDeadline(now: number): void {
    const c = this.counters[0]!;
    if (c.edgeOwed) { this.deadline = now; return; }
    const d = I8254Pit.ticks(c, now);
    let next = I8254Pit.nextEdgeTick(c, d);
    if (next !== undefined && I8254Pit.edges(c, d) > c.edgesSeen) next = d; // an edge is due now
    let t = next === undefined ? undefined : next <= d ? now : I8254Pit.timeOfTick(c, next);
    if (c.pendingReload !== null && (t === undefined || c.pendingAt < t)) t = c.pendingAt;
    this.deadline = t;
  }

  // ---- PortDevice ----

  read(offset: number, size: 1 | 2 | 4): number {
    const v = offset < COUNTERS ? this.readCounter(offset) : 0xff; // the control word is write-only
    return size === 1 ? v : (v | (size === 2 ? 0xff00 : 0xffff_ff00)) >>> 0;
  }

  write(offset: number, _size: 1 | 2 | 4, value: number): void {
    value &= 0xff;
    if (offset === CONTROL_OFFSET) this.writeControl(value);
    else if (offset < COUNTERS) this.writeCounter(offset, value);
  }

  private status(c: I8254CounterState, now: number): number {
    return (I8254Pit.out(c, I8254Pit.ticks(c, now)) ? STATUS_OUT : 0) | (c.nullCount ? STATUS_NULL_COUNT : 0) | (c.control & 0x3f);
  }

  private latchCount(c: I8254CounterState, now: number): void {
    if (c.latchedCount !== null) return; // a second latch before the read is ignored
    const v = I8254Pit.value(c, I8254Pit.ticks(c, now));
    c.latchedCount = I8254Pit.bcd(c) ? toBcd(v) : v;
    c.latchedMsbNext = false;
  }

  private writeControl(value: number): void {
    const now = this.now();
    const select = value >> CW_SELECT_SHIFT;
    if (select === CW_READ_BACK) {
      for (let i = 0; i < COUNTERS; i++) {
        if (!(value & (1 << (RB_SELECT_SHIFT + i)))) continue;
        const c = this.counters[i]!;
        I8254Pit.sync(c, now);
        if (!(value & RB_NOT_STATUS) && c.latchedStatus === null) c.latchedStatus = this.status(c, now);
        if (!(value & RB_NOT_COUNT)) this.latchCount(c, now);
      }
      return;
    }
    const c = this.counters[select]!;
    I8254Pit.sync(c, now);
    if (((value >> CW_ACCESS_SHIFT) & 3) === ACCESS_LATCH) {
      this.latchCount(c, now);
      return;
    }
    c.control = value & 0x3f;
    c.loaded = false;
    c.counting = false;
    c.elapsedBefore = 0;
    c.pendingReload = null;
    c.edgeOwed = false;
    c.nullCount = true;
    c.writeMsbNext = false;
    c.readMsbNext = false;
    c.latchedCount = null;
    c.latchedStatus = null;
    if (select === 0) {
      this.irq0?.set(false);
      this.owed = 0;
      this.inFlight = false;
      this.recomputeDeadline(now);
    }
  }

  private writeCounter(index: number, byte: number): void {
    const c = this.counters[index]!;
    const now = this.now();
    I8254Pit.sync(c, now);
    let raw: number;
    switch (I8254Pit.access(c)) {
      case ACCESS_LSB: raw = byte; break;
      case ACCESS_MSB: raw = byte << 8; break;
      default:
        if (!c.writeMsbNext) {
          c.writeLow = byte;
          c.writeMsbNext = true;
          if (I8254Pit.mode(c) === 0) { // the first byte stops the count; OUT goes low
            c.loaded = false;
            c.counting = false;
            if (index === 0) { this.irq0?.set(false); this.recomputeDeadline(now); }
          }
          return;
        }
        c.writeMsbNext = false;
        raw = c.writeLow | (byte << 8);
    }
    let count = I8254Pit.bcd(c) ? fromBcd(raw) : raw;
    if (count === 0) count = I8254Pit.bcd(c) ? 10000 : 0x10000;
    c.countRegister = count;
    c.nullCount = false;
    switch (I8254Pit.mode(c)) {
      case 0:
      case 4:
        if (index === 0) this.irq0?.set(false);
        I8254Pit.start(c, count, now, c.gate);
        break;
      case 2:
      case 3:
        if (c.loaded && c.counting) {
          const d = I8254Pit.ticks(c, now);
          c.pendingReload = count;
          c.pendingAt = I8254Pit.timeOfTick(c, (Math.floor(d / c.reload) + 1) * c.reload);
        } else {
          I8254Pit.start(c, count, now, c.gate);
        }
        break;
      default: // 1 and 5 wait for a gate trigger
        break;
    }
    if (index === 0) this.recomputeDeadline(now);
  }

  private readCounter(index: number): number {
    const c = this.counters[index]!;
    if (c.latchedStatus !== null) {
      const s = c.latchedStatus;
      c.latchedStatus = null;
      return s;
    }
    const access = I8254Pit.access(c);
    if (c.latchedCount !== null) {
      const v = c.latchedCount;
      if (access === ACCESS_WORD && !c.latchedMsbNext) {
        c.latchedMsbNext = true;
        return v & 0xff;
      }
      c.latchedCount = null;
      return access === ACCESS_LSB ? v & 0xff : (v >> 8) & 0xff;
    }
    const now = this.now();
    I8254Pit.sync(c, now);
    const bin = I8254Pit.value(c, I8254Pit.ticks(c, now));
    const v = I8254Pit.bcd(c) ? toBcd(bin) : bin;
    switch (access) {
      case ACCESS_LSB: return v & 0xff;
      case ACCESS_MSB: return (v >> 8) & 0xff;
      default:
        c.readMsbNext = !c.readMsbNext;
        return c.readMsbNext ? v & 0xff : (v >> 8) & 0xff;
    }
  }

  // ---- snapshot ----

  /** State with times in the clock's nanoseconds; restore it under the same clock base. */
  getState(): I8254PitState {
    return { counters: this.counters.map((c) => ({ ...c })) };
  }

  restore(state: I8254PitState): void {
    this.counters = [0, 1, 2].map((i) => ({ ...newCounter(), ...state.counters[i] }));
    this.recomputeDeadline(this.now());
  }
}
