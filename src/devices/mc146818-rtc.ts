/**
 * The Motorola MC146818A real-time clock and its CMOS RAM, at ports 0x70 (index) and 0x71
 * (data); the device is registered with a 2-port window and sees offsets 0 and 1.
 *
 * Model (MC146818A datasheet register descriptions; OSDev "CMOS" and "RTC" pages):
 * - The clock is the `now` collaborator (read as UTC, as Linux expects on a PC) plus an offset
 *   the guest sets by writing the time registers; nothing ticks inside the device.
 * - Register B's SET bit freezes the time registers so the guest can load them; clearing SET
 *   restarts the clock from what was loaded. A time register written with SET clear takes effect
 *   at once. The day of the week is derived from the date (a written value is not kept).
 * - Register A's UIP bit is derived from the clock: set during the last 2 ms of each second
 *   (the 244 us warning plus the ~2 ms update cycle), so it is never stuck and a guest that waits
 *   for an update edge sees one every second.
 * - Periodic, alarm and update-ended interrupts are not implemented: register C reads 0 and the
 *   IRQ8 line (optional) is never raised. The square-wave output is not modelled.
 * - Memory-size bytes follow the layout SeaBIOS reads (see setMemorySize).
 */
import type { PortDevice } from './bus.js';
import type { IrqLine } from './irq.js';

const INDEX_OFFSET = 0; // port 0x70
const DATA_OFFSET = 1; // port 0x71

export const INDEX_NMI_DISABLE = 0x80; // bit 7 of the index write masks NMI (kept, not acted on here)
const INDEX_MASK = 0x7f;

// Clock and control registers (CMOS bytes 0x00-0x0d).
export const RTC_SECONDS = 0x00;
export const RTC_SECONDS_ALARM = 0x01;
export const RTC_MINUTES = 0x02;
export const RTC_MINUTES_ALARM = 0x03;
export const RTC_HOURS = 0x04;
export const RTC_HOURS_ALARM = 0x05;
export const RTC_DAY_OF_WEEK = 0x06; // 1 = Sunday
export const RTC_DAY_OF_MONTH = 0x07;
export const RTC_MONTH = 0x08;
export const RTC_YEAR = 0x09; // year within the century
export const RTC_REG_A = 0x0a;
export const RTC_REG_B = 0x0b;
export const RTC_REG_C = 0x0c;
export const RTC_REG_D = 0x0d;
export const RTC_CENTURY = 0x32; // the PC/AT century byte (ACPI FADT "century" points here)

// Register A.
export const REG_A_UIP = 0x80; // update in progress (read-only)
export const REG_A_DV = 0x70; // divider chain select; 010 = 32.768 kHz time base, running
export const REG_A_RS = 0x0f; // periodic rate select
const REG_A_DV_NORMAL = 0x20;
const REG_A_POWER_ON = 0x26; // 32.768 kHz, 1024 Hz periodic rate (what PC firmware programs)

// Register B.
export const REG_B_SET = 0x80; // halt updates so the time can be loaded
export const REG_B_PIE = 0x40; // periodic interrupt enable
export const REG_B_AIE = 0x20; // alarm interrupt enable
export const REG_B_UIE = 0x10; // update-ended interrupt enable
export const REG_B_SQWE = 0x08; // square-wave enable
export const REG_B_DM = 0x04; // data mode: 1 = binary, 0 = BCD
export const REG_B_24H = 0x02; // 1 = 24-hour mode, 0 = 12-hour with bit 7 of the hour = PM
export const REG_B_DSE = 0x01; // daylight-saving enable (not acted on)
const REG_B_POWER_ON = REG_B_24H;
const HOUR_PM = 0x80; // 12-hour mode: PM flag in the hours byte

// Register D.
export const REG_D_VRT = 0x80; // valid RAM and time: the battery is good

// Memory-size bytes (IBM AT CMOS layout, extended by Bochs/QEMU for SeaBIOS).
export const CMOS_BASE_MEM_LOW = 0x15; // conventional memory in KiB (640)
export const CMOS_BASE_MEM_HIGH = 0x16;
export const CMOS_EXT_MEM_LOW = 0x17; // memory above 1 MiB in KiB, saturating at 0xffff (65535 KiB)
export const CMOS_EXT_MEM_HIGH = 0x18;
export const CMOS_CHECKSUM_HIGH = 0x2e; // sum of bytes 0x10-0x2d, big-endian
export const CMOS_CHECKSUM_LOW = 0x2f;
export const CMOS_EXT_MEM_COPY_LOW = 0x30; // the same extended-memory value again (POST's copy)
export const CMOS_EXT_MEM_COPY_HIGH = 0x31;
export const CMOS_MEM_ABOVE_16M_LOW = 0x34; // memory between 16 MiB and 4 GiB in 64 KiB units
export const CMOS_MEM_ABOVE_16M_HIGH = 0x35;
export const CMOS_MEM_ABOVE_4G_LOW = 0x5b; // memory above 4 GiB in 64 KiB units, 3 bytes little-endian
export const CMOS_MEM_ABOVE_4G_MID = 0x5c;
export const CMOS_MEM_ABOVE_4G_HIGH = 0x5d;
export const CMOS_CPU_COUNT = 0x5f; // number of CPUs minus one (read by SeaBIOS)

const CHECKSUM_FIRST = 0x10;
const CHECKSUM_LAST = 0x2d;
const CMOS_SIZE = 128;
const KIB = 1024;
const MIB = 1024 * KIB;
const UNIT_64K = 64 * KIB;
const UIP_WINDOW_MS = 2;
/** The RAM split used when the caller does not give one: at most 3 GiB below the 4 GiB hole. */
const DEFAULT_LOW_MEMORY_LIMIT = 0xc000_0000;

/** The RTC's migratable state. */
export interface Mc146818RtcState {
  index: number;
  nmiDisabled: boolean;
  /** All 128 bytes; the time registers hold meaningful values only while SET is on. */
  ram: number[];
  /** The guest's clock minus the host's, in milliseconds. */
  offsetMs: number;
  /**
   * The guest's clock when the state was taken (ms since the epoch): a restore continues it from
   * there, whatever `now` reads then (without it, the offset is kept).
   */
  timeMs?: number;
}

export interface Mc146818RtcOptions {
  /** The host clock (default: the system clock). */
  now?: () => Date;
  /** IRQ8; accepted for wiring, never raised (see the file comment). */
  irq8?: IrqLine;
}

/** Broken-down guest time. */
interface Fields {
  seconds: number;
  minutes: number;
  hours: number; // 0-23
  dayOfMonth: number;
  month: number; // 1-12
  year: number; // full year
  milliseconds: number;
}

function toBcd(v: number): number {
  return ((Math.floor(v / 10) % 10) << 4) | (v % 10);
}

function fromBcd(v: number): number {
  return (v >> 4) * 10 + (v & 0x0f);
}

export class Mc146818Rtc implements PortDevice {
  private readonly now: () => Date;
  private readonly irq8: IrqLine | undefined;
  private index = 0;
  private nmiDisabled = false;
  private readonly ram = new Uint8Array(CMOS_SIZE);
  private offsetMs = 0;
  /** Sub-second part of the time when the registers were last snapshotted (kept across a single-field write). */
  private pendingMilliseconds = 0;

  constructor(opts: Mc146818RtcOptions = {}) {
    this.now = opts.now ?? (() => new Date());
    this.irq8 = opts.irq8;
    this.ram[RTC_REG_A] = REG_A_POWER_ON;
    this.ram[RTC_REG_B] = REG_B_POWER_ON;
    this.ram[RTC_REG_D] = REG_D_VRT;
  }

  /** Whether the guest's last index write set the NMI-disable bit. */
  get nmiMasked(): boolean {
    return this.nmiDisabled;
  }

  // ---- board setup ----

  /**
   * Writes the memory-size bytes for `bytes` of RAM, `belowFourGiB` of it below the 4 GiB
   * hole (the board's split; default: up to 3 GiB). Conventional memory is 640 KiB.
   */
  setMemorySize(bytes: number, belowFourGiB = Math.min(bytes, DEFAULT_LOW_MEMORY_LIMIT)): void {
    const low = Math.min(bytes, belowFourGiB);
    const high = bytes - low;
    this.setWord(CMOS_BASE_MEM_LOW, 640);
    const extKib = Math.min(0xffff, Math.max(0, Math.floor(low / KIB) - 1024));
    this.setWord(CMOS_EXT_MEM_LOW, extKib);
    this.setWord(CMOS_EXT_MEM_COPY_LOW, extKib);
    this.setWord(CMOS_MEM_ABOVE_16M_LOW, low > 16 * MIB ? Math.min(0xffff, Math.floor((low - 16 * MIB) / UNIT_64K)) : 0);
    const highUnits = Math.min(0xff_ffff, Math.floor(high / UNIT_64K));
    this.ram[CMOS_MEM_ABOVE_4G_LOW] = highUnits & 0xff;
    this.ram[CMOS_MEM_ABOVE_4G_MID] = (highUnits >>> 8) & 0xff;
    this.ram[CMOS_MEM_ABOVE_4G_HIGH] = (highUnits >>> 16) & 0xff;
    this.updateChecksum();
  }

  /** Records the number of CPUs (byte 0x5f = count - 1). */
  setCpuCount(count: number): void {
    this.ram[CMOS_CPU_COUNT] = Math.max(0, count - 1) & 0xff;
  }

  /** Sets a plain CMOS RAM byte (equipment, disk types, boot order...); keeps the checksum right. */
  setRam(index: number, value: number): void {
    this.ram[index & INDEX_MASK] = value & 0xff;
    if (index >= CHECKSUM_FIRST && index <= CHECKSUM_LAST) this.updateChecksum();
  }

  /** A CMOS RAM byte as stored (not the live clock). */
  getRam(index: number): number {
    return this.ram[index & INDEX_MASK]!;
  }

  private setWord(lowIndex: number, value: number): void {
    this.ram[lowIndex] = value & 0xff;
    this.ram[lowIndex + 1] = (value >>> 8) & 0xff;
  }

  private updateChecksum(): void {
    let sum = 0;
    for (let i = CHECKSUM_FIRST; i <= CHECKSUM_LAST; i++) sum += this.ram[i]!;
    this.ram[CMOS_CHECKSUM_HIGH] = (sum >>> 8) & 0xff;
    this.ram[CMOS_CHECKSUM_LOW] = sum & 0xff;
  }

  // ---- PortDevice ----

  read(offset: number, size: 1 | 2 | 4): number {
    // The index register is write-only; reads of it float.
    const value = offset === DATA_OFFSET ? this.readRegister(this.index) : 0xff;
    return size === 1 ? value : (value | (size === 2 ? 0xff00 : 0xffff_ff00)) >>> 0;
  }

  write(offset: number, _size: 1 | 2 | 4, value: number): void {
    if (offset === INDEX_OFFSET) {
      this.index = value & INDEX_MASK;
      this.nmiDisabled = (value & INDEX_NMI_DISABLE) !== 0;
    } else if (offset === DATA_OFFSET) {
      this.writeRegister(this.index, value & 0xff);
    }
  }

  private frozen(): boolean {
    return (this.ram[RTC_REG_B]! & REG_B_SET) !== 0;
  }

  private isTimeRegister(index: number): boolean {
    return index === RTC_SECONDS || index === RTC_MINUTES || index === RTC_HOURS || index === RTC_DAY_OF_WEEK
      || index === RTC_DAY_OF_MONTH || index === RTC_MONTH || index === RTC_YEAR || index === RTC_CENTURY;
  }

  private readRegister(index: number): number {
    if (this.isTimeRegister(index)) {
      return this.frozen() ? this.ram[index]! : this.encodeField(index, this.liveFields(), this.liveDate());
    }
    switch (index) {
      case RTC_REG_A: {
        const a = this.ram[RTC_REG_A]! & ~REG_A_UIP;
        const running = !this.frozen() && (a & REG_A_DV) === REG_A_DV_NORMAL;
        const ms = this.liveDate().getUTCMilliseconds();
        return running && ms >= 1000 - UIP_WINDOW_MS ? a | REG_A_UIP : a;
      }
      case RTC_REG_C: {
        const c = this.ram[RTC_REG_C]!;
        this.ram[RTC_REG_C] = 0; // reading C acknowledges all flags
        return c;
      }
      case RTC_REG_D:
        return REG_D_VRT;
      default:
        return this.ram[index]!;
    }
  }

  private writeRegister(index: number, value: number): void {
    if (this.isTimeRegister(index)) {
      if (this.frozen()) {
        this.ram[index] = value;
      } else {
        // Load one field into the running clock: re-read the others, substitute, re-base.
        this.snapshotTime();
        this.ram[index] = value;
        this.rebase();
      }
      return;
    }
    switch (index) {
      case RTC_REG_A:
        this.ram[RTC_REG_A] = value & ~REG_A_UIP;
        return;
      case RTC_REG_B: {
        const wasFrozen = this.frozen();
        if (value & REG_B_SET) value &= ~REG_B_UIE; // SET clears UIE (datasheet)
        if (!wasFrozen && value & REG_B_SET) this.snapshotTime(); // freeze in the old mode
        this.ram[RTC_REG_B] = value;
        if (wasFrozen && !(value & REG_B_SET)) this.rebase();
        return;
      }
      case RTC_REG_C:
      case RTC_REG_D:
        return; // read-only
      default:
        this.ram[index] = value;
        return;
    }
  }

  // ---- the clock ----

  private liveDate(): Date {
    return new Date(this.now().getTime() + this.offsetMs);
  }

  private liveFields(): Fields {
    const d = this.liveDate();
    return {
      seconds: d.getUTCSeconds(), minutes: d.getUTCMinutes(), hours: d.getUTCHours(),
      dayOfMonth: d.getUTCDate(), month: d.getUTCMonth() + 1, year: d.getUTCFullYear(),
      milliseconds: d.getUTCMilliseconds(),
    };
  }

  private encode(v: number): number {
    return this.ram[RTC_REG_B]! & REG_B_DM ? v & 0xff : toBcd(v);
  }

  private decode(v: number): number {
    return this.ram[RTC_REG_B]! & REG_B_DM ? v : fromBcd(v);
  }

  private encodeField(index: number, f: Fields, date: Date): number {
    switch (index) {
      case RTC_SECONDS: return this.encode(f.seconds);
      case RTC_MINUTES: return this.encode(f.minutes);
      case RTC_HOURS: {
        if (this.ram[RTC_REG_B]! & REG_B_24H) return this.encode(f.hours);
        return this.encode(f.hours % 12 || 12) | (f.hours >= 12 ? HOUR_PM : 0);
      }
      case RTC_DAY_OF_WEEK: return this.encode(date.getUTCDay() + 1);
      case RTC_DAY_OF_MONTH: return this.encode(f.dayOfMonth);
      case RTC_MONTH: return this.encode(f.month);
      case RTC_YEAR: return this.encode(f.year % 100);
      case RTC_CENTURY: return this.encode(Math.floor(f.year / 100) % 100);
      default: return this.ram[index]!;
    }
  }

  /** Copies the running time into the time registers, in the current data mode. */
  private snapshotTime(): void {
    const date = this.liveDate();
    const f = this.liveFields();
    for (const index of [RTC_SECONDS, RTC_MINUTES, RTC_HOURS, RTC_DAY_OF_WEEK, RTC_DAY_OF_MONTH, RTC_MONTH, RTC_YEAR, RTC_CENTURY]) {
      this.ram[index] = this.encodeField(index, f, date);
    }
    this.pendingMilliseconds = f.milliseconds;
  }

  /** Restarts the clock from the time registers. */
  private rebase(): void {
    const r = this.ram;
    let hours: number;
    if (r[RTC_REG_B]! & REG_B_24H) {
      hours = this.decode(r[RTC_HOURS]!);
    } else {
      const h12 = this.decode(r[RTC_HOURS]! & ~HOUR_PM);
      hours = (h12 % 12) + (r[RTC_HOURS]! & HOUR_PM ? 12 : 0);
    }
    const year = this.decode(r[RTC_CENTURY]!) * 100 + this.decode(r[RTC_YEAR]!);
    const guest = Date.UTC(year, this.decode(r[RTC_MONTH]!) - 1, this.decode(r[RTC_DAY_OF_MONTH]!),
      hours, this.decode(r[RTC_MINUTES]!), this.decode(r[RTC_SECONDS]!), this.pendingMilliseconds);
    this.pendingMilliseconds = 0;
    this.offsetMs = guest - this.now().getTime();
  }

  // ---- snapshot ----

  getState(): Mc146818RtcState {
    return { index: this.index, nmiDisabled: this.nmiDisabled, ram: [...this.ram], offsetMs: this.offsetMs, timeMs: this.liveDate().getTime() };
  }

  restore(state: Mc146818RtcState): void {
    this.index = state.index & INDEX_MASK;
    this.nmiDisabled = state.nmiDisabled;
    this.ram.fill(0);
    this.ram.set(state.ram.slice(0, CMOS_SIZE).map((b) => b & 0xff));
    this.offsetMs = state.timeMs === undefined ? state.offsetMs : state.timeMs - this.now().getTime();
    if (!Number.isFinite(this.offsetMs)) throw new RangeError(`the RTC's saved time ${String(state.timeMs ?? state.offsetMs)} is not a time`);
    this.pendingMilliseconds = 0;
    this.irq8?.set(false); // no RTC interrupt source is modelled
  }
}
