/**
 * Port 0x61, the PC/AT's "system control port B" (NMI status and control register on PIIX/ICH):
 * the gate of PIT counter 2, the speaker data enable, the refresh toggle and OUT2 read back.
 * One-port window (offset 0).
 *
 * Model (IBM PC/AT technical reference, port 61h; PIIX4 datasheet, NMI status and control):
 * - Bits 0-3 are read/write (counter 2 gate, speaker data, parity and channel check enables;
 *   the two enables are kept, no NMI source exists here).
 * - Bit 4 toggles every 15.085 us (the DRAM refresh request, derived from the clock), which old
 *   delay loops poll.
 * - Bit 5 is counter 2's OUT pin, read from the PIT at each access (Linux's TSC calibration
 *   polls it).
 * - Bits 6 and 7 (I/O channel check, parity error) read 0: no NMI source.
 * No sound is produced.
 */
import type { NowNs } from '../common/clock.js';
import type { PortDevice } from './bus.js';

export const PORT61_GATE2 = 0x01; // PIT counter 2 gate
export const PORT61_SPEAKER = 0x02; // speaker data enable (ANDed with OUT2 to drive the speaker)
export const PORT61_PARITY_CHECK_DISABLE = 0x04; // (PIIX: PCI SERR# enable, inverted)
export const PORT61_CHANNEL_CHECK_DISABLE = 0x08; // (PIIX: IOCHK# NMI enable, inverted)
export const PORT61_REFRESH = 0x10; // refresh cycle toggle (read only)
export const PORT61_OUT2 = 0x20; // PIT counter 2 OUT (read only)
export const PORT61_CHANNEL_CHECK = 0x40; // I/O channel check NMI source (read only; always 0)
export const PORT61_PARITY_ERROR = 0x80; // parity / SERR# NMI source (read only; always 0)
const WRITABLE = 0x0f;

/** The refresh request period of the PC/AT (PIT counter 1 at its BIOS count of 18). */
const REFRESH_PERIOD_NS = 15_085;

/** What port 0x61 needs from the PIT (I8254Pit provides it). */
export interface Pit2Gate {
  setGate(channel: number, level: boolean): void;
  output(channel: number): boolean;
}

export interface Port61Options {
  pit: Pit2Gate;
  /** The machine's time in nanoseconds (its GuestClock's now), for the refresh toggle. */
  now: NowNs;
}

export interface Port61State {
  value: number;
}

export class Port61 implements PortDevice {
  private readonly pit: Pit2Gate;
  private readonly now: NowNs;
  private value = 0;

  constructor(opts: Port61Options) {
    this.pit = opts.pit;
    this.now = opts.now;
    this.pit.setGate(2, false);
  }

  /** Whether the speaker is enabled (gate and data bits both set). */
  get speakerOn(): boolean {
    return (this.value & (PORT61_GATE2 | PORT61_SPEAKER)) === (PORT61_GATE2 | PORT61_SPEAKER);
  }

  read(_offset: number, size: 1 | 2 | 4): number {
    const refresh = Math.floor(this.now() / REFRESH_PERIOD_NS) & 1 ? PORT61_REFRESH : 0;
    const v = this.value | refresh | (this.pit.output(2) ? PORT61_OUT2 : 0);
    return size === 1 ? v : (v | (size === 2 ? 0xff00 : 0xffff_ff00)) >>> 0;
  }

  write(_offset: number, _size: 1 | 2 | 4, value: number): void {
    this.value = value & WRITABLE;
    this.pit.setGate(2, (value & PORT61_GATE2) !== 0);
  }

  getState(): Port61State {
    return { value: this.value };
  }

  restore(state: Port61State): void {
    this.value = state.value & WRITABLE;
    this.pit.setGate(2, (this.value & PORT61_GATE2) !== 0);
  }
}
