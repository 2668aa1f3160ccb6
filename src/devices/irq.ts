/**
 * Interrupt request lines as devices see them. A device drives its line's level (the ISA
 * devices drive a level the PIC samples on its rising edge); a device that only ever signals
 * an event calls pulse(). What the line is wired to (a PIC input, a KVM irqfd, an IOAPIC pin)
 * is the board's business.
 */

/** An interrupt request line as a device sees it (level-triggered; edge devices call pulse()). */
export interface IrqLine {
  set(level: boolean): void;
  pulse(): void;
}

/** A line that records its level, for tests and simple boards. */
export class RecordingIrqLine implements IrqLine {
  /** The level last set (a pulse leaves it low). */
  level = false;
  /** How many pulses were signalled. */
  pulses = 0;
  /** How many times the level went from low to high through set(). */
  rises = 0;

  set(level: boolean): void {
    if (level && !this.level) this.rises++;
    this.level = level;
  }

  pulse(): void {
    this.pulses++;
    this.level = false;
  }
}

/** A line wired to nothing (the device's IRQ is not connected on this board). */
export const NO_IRQ: IrqLine = Object.freeze({ set(): void {}, pulse(): void {} });

/**
 * One level-triggered line driven by several devices, as on a PCI INTx line shared by several
 * functions (wired-OR): the line is high while any input is. `input()` gives each device its own
 * IrqLine; the shared one sees a level change only when the OR changes.
 */
export class WiredOrIrq {
  private high = 0; // inputs currently high
  constructor(private readonly line: IrqLine) {}

  /** A new input of the line. */
  input(): IrqLine {
    let level = false;
    const set = (on: boolean): void => {
      if (on === level) return;
      level = on;
      const before = this.high;
      this.high += on ? 1 : -1;
      if ((before === 0) !== (this.high === 0)) this.line.set(this.high !== 0);
    };
    return { set, pulse: () => { set(true); set(false); } };
  }
}
