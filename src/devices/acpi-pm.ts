/**
 * The ACPI fixed-hardware registers a non-hardware-reduced FADT points at, as two port devices:
 *
 * AcpiPm: one window holding the PM1a event block, the PM1a control block and the PM timer
 * (offsets below; acpi-tables.ts builds the FADT from the same constants):
 * - 0x00 PM1_STS (16 bits, write 1 to clear), 0x02 PM1_EN (16 bits): the power button status
 *   (pressPowerButton()) and enable; SCI (IRQ 9 by the FADT) is asserted while STS & EN != 0.
 *   The timer overflow status (TMR_STS) is not generated.
 * - 0x04 PM1_CNT (16 bits): SCI_EN reads as set (there is no SMI command port, so the platform
 *   is always in ACPI mode); writing SLP_EN with SLP_TYP calls onSleep(slpTyp) (the board maps
 *   the DSDT's \_S5 type, 5, to power-off). SLP_EN reads 0.
 * - 0x08 PM_TMR (32-bit read): a 24-bit free-running counter at 3.579545 MHz from the clock.
 * (ACPI 6.x spec, "ACPI Hardware Specification": PM1 event/control registers, power management
 * timer.)
 *
 * AcpiResetRegister: the one-byte reset control register at port 0xCF9 (the PIIX/ICH "Reset
 * Control Register" the FADT's RESET_REG points at, with RESET_VALUE 0x06): bit 2 (RST_CPU)
 * going from 0 to 1 resets the system through onReset(); bits 1 (SYS_RST) and 3 (FULL_RST) are
 * kept and read back. Writing 0x06 or 0x0E from the reset state resets; so does Linux's CF9
 * method (0x02, then 0x06). NB: 0xCF9 lies inside the PCI configuration mechanism #1 window
 * (0xCF8-0xCFF); a board with a PCI host bridge there must route byte accesses to 0xCF9 here.
 */
import type { NowNs } from '../common/clock.js';
import type { PortDevice } from './bus.js';
import type { IrqLine } from './irq.js';

// Offsets inside the AcpiPm window.
export const PM1_STS_OFFSET = 0x00;
export const PM1_EN_OFFSET = 0x02;
export const PM1_CNT_OFFSET = 0x04;
export const PM_TMR_OFFSET = 0x08;
/** The window's length in ports. */
export const ACPI_PM_WINDOW = 0x0c;
/** FADT lengths of the blocks (PM1_EVT_LEN, PM1_CNT_LEN, PM_TMR_LEN). */
export const PM1_EVT_LEN = 4;
export const PM1_CNT_LEN = 2;
export const PM_TMR_LEN = 4;

// PM1 status / enable bits.
export const PM1_TMR = 0x0001; // timer carry (status) / enable
export const PM1_BM_STS = 0x0010; // bus master status
export const PM1_GBL = 0x0020; // global lock release
export const PM1_PWRBTN = 0x0100; // power button
export const PM1_SLPBTN = 0x0200; // sleep button
export const PM1_RTC = 0x0400; // RTC alarm
export const PM1_WAK_STS = 0x8000; // wake status
const PM1_EN_WRITABLE = PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC;

// PM1 control bits.
export const PM1_CNT_SCI_EN = 0x0001; // SCI (not SMI) routing: ACPI mode
export const PM1_CNT_BM_RLD = 0x0002;
export const PM1_CNT_GBL_RLS = 0x0004;
export const PM1_CNT_SLP_TYP_SHIFT = 10; // bits 12-10
export const PM1_CNT_SLP_TYP = 0x1c00;
export const PM1_CNT_SLP_EN = 0x2000; // write-only: enter the sleep state
const PM1_CNT_STORED = PM1_CNT_BM_RLD | PM1_CNT_SLP_TYP;

/** The PM timer's frequency (the ACPI spec's 3.579545 MHz). */
export const PM_TIMER_HZ = 3_579_545;
const PM_TIMER_MASK = 0xff_ffff; // 24 bits (FADT TMR_VAL_EXT clear)

// Reset control register (port 0xCF9).
export const RESET_SYS_RST = 0x02; // hard (system) reset when RST_CPU fires
export const RESET_RST_CPU = 0x04; // 0 -> 1 starts the reset
export const RESET_FULL_RST = 0x08; // full power cycle
const RESET_STORED = RESET_SYS_RST | RESET_FULL_RST | RESET_RST_CPU;
/** The value the FADT tells the OS to write (SYS_RST | RST_CPU). */
export const ACPI_RESET_VALUE = 0x06;
/** The PC's reset control port. */
export const ACPI_RESET_PORT = 0xcf9;

export interface AcpiPmOptions {
  /** SLP_EN written: sleep type from PM1_CNT.SLP_TYP (the \_S5 package's value for S5). */
  onSleep: (slpTyp: number) => void;
  /** The SCI (the FADT's SCI_INT, IRQ 9), level-triggered. */
  sci?: IrqLine;
  /** The machine's time in nanoseconds (its GuestClock's now), for the PM timer. */
  now: NowNs;
}

export interface AcpiPmState {
  status: number;
  enable: number;
  control: number;
}

export class AcpiPm implements PortDevice {
  private readonly onSleep: (slpTyp: number) => void;
  private readonly sci: IrqLine | undefined;
  private readonly now: NowNs;
  private status = 0;
  private enable = 0;
  private control = 0;
  private sciLevel = false;

  constructor(opts: AcpiPmOptions) {
    this.onSleep = opts.onSleep;
    this.sci = opts.sci;
    this.now = opts.now;
  }

  /** The host presses the power button: PWRBTN_STS, and an SCI if enabled. */
  pressPowerButton(): void {
    this.status |= PM1_PWRBTN;
    this.updateSci();
  }

  private timer(): number {
    return Math.floor(this.now() * (PM_TIMER_HZ / 1e9)) % (PM_TIMER_MASK + 1);
  }

  private readByte(offset: number): number {
    switch (offset) {
      case PM1_STS_OFFSET: return this.status & 0xff;
      case PM1_STS_OFFSET + 1: return this.status >> 8;
      case PM1_EN_OFFSET: return this.enable & 0xff;
      case PM1_EN_OFFSET + 1: return this.enable >> 8;
      case PM1_CNT_OFFSET: return (this.control | PM1_CNT_SCI_EN) & 0xff;
      case PM1_CNT_OFFSET + 1: return this.control >> 8;
      default:
        if (offset >= PM_TMR_OFFSET && offset < PM_TMR_OFFSET + 4) return (this.timer() >>> (8 * (offset - PM_TMR_OFFSET))) & 0xff;
        return 0xff;
    }
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (offset === PM_TMR_OFFSET && size === 4) return this.timer();
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.readByte(offset + i) << (8 * i);
    return v >>> 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    // Split into the 16-bit registers touched; `mask` says which bytes the access covers.
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      const reg = at & ~1;
      const lane = at & 1;
      // Handle each register once, on its first byte in the access.
      if (i > 0 && lane === 1) continue;
      const both = lane === 0 && i + 1 < size;
      const mask = both ? 0xffff : lane === 0 ? 0x00ff : 0xff00;
      const v = ((value >>> (8 * i)) << (8 * lane)) & mask;
      this.writeRegister(reg, v, mask);
    }
  }

  private writeRegister(reg: number, value: number, mask: number): void {
    switch (reg) {
      case PM1_STS_OFFSET:
        this.status &= ~(value & mask); // write 1 to clear
        this.updateSci();
        return;
      case PM1_EN_OFFSET:
        this.enable = ((this.enable & ~mask) | (value & mask)) & PM1_EN_WRITABLE;
        this.updateSci();
        return;
      case PM1_CNT_OFFSET: {
        const merged = (this.control & ~mask) | (value & mask);
        this.control = merged & PM1_CNT_STORED;
        if (value & mask & PM1_CNT_SLP_EN) this.onSleep((merged & PM1_CNT_SLP_TYP) >> PM1_CNT_SLP_TYP_SHIFT);
        return;
      }
      default:
        return; // PM_TMR is read-only
    }
  }

  private updateSci(): void {
    const level = (this.status & this.enable) !== 0;
    if (level !== this.sciLevel) {
      this.sciLevel = level;
      this.sci?.set(level);
    }
  }

  getState(): AcpiPmState {
    return { status: this.status, enable: this.enable, control: this.control };
  }

  restore(state: AcpiPmState): void {
    this.status = state.status & 0xffff;
    this.enable = state.enable & PM1_EN_WRITABLE;
    this.control = state.control & PM1_CNT_STORED;
    this.sciLevel = false;
    this.sci?.set(false);
    this.updateSci();
  }
}

export interface AcpiResetRegisterOptions {
  onReset: () => void;
}

export interface AcpiResetRegisterState {
  value: number;
}

export class AcpiResetRegister implements PortDevice {
  private readonly onReset: () => void;
  private value = 0;

  constructor(opts: AcpiResetRegisterOptions) {
    this.onReset = opts.onReset;
  }

  read(_offset: number, size: 1 | 2 | 4): number {
    return size === 1 ? this.value : (this.value | (size === 2 ? 0xff00 : 0xffff_ff00)) >>> 0;
  }

  write(_offset: number, _size: 1 | 2 | 4, value: number): void {
    const rising = (value & RESET_RST_CPU) !== 0 && (this.value & RESET_RST_CPU) === 0;
    this.value = value & RESET_STORED;
    if (rising) {
      this.value = 0; // the reset clears the register
      this.onReset();
    }
  }

  getState(): AcpiResetRegisterState {
    return { value: this.value };
  }

  restore(state: AcpiResetRegisterState): void {
    this.value = state.value & RESET_STORED;
  }
}
