/**
 * The PC/AT's cascaded pair of Intel 8259A programmable interrupt controllers: the master at
 * ports 0x20-0x21 drives the CPU's INTR pin, the slave at 0xA0-0xA1 drives the master's IR2,
 * plus the edge/level control registers (ELCR) at 0x4D0-0x4D1 that PIIX/ICH chipsets add.
 *
 * One object, three port windows (each a PortDevice seeing offsets from its own base):
 * - `.master`: 2 ports (offset 0 = command/status 0x20, offset 1 = data/IMR 0x21),
 * - `.slave`: 2 ports (offset 0 = 0xA0, offset 1 = 0xA1),
 * - `.elcr`: 2 ports (offset 0 = ELCR1 at 0x4D0 for IRQ 0-7, offset 1 = ELCR2 at 0x4D1 for IRQ 8-15).
 *
 * Model (Intel 8259A datasheet, "Programming the 8259A": ICW1-ICW4, OCW1-OCW3; the PIIX4/ICH
 * datasheets for the ELCR):
 * - Initialization: ICW1 (command port, bit 4 set) resets the chip (IMR, IRR, ISR cleared, IR7
 *   lowest priority, special mask mode off, status read = IRR) and starts the ICW2 (vector
 *   base, T7-T3), ICW3 (only when not single), ICW4 (only when ICW1.IC4) sequence on the data
 *   port. The 8080/85 call mode (ICW4.uPM = 0) and ICW1's interval/address bits are ignored:
 *   vectors are always base | IR, as in 8086 mode. ICW4.BUF/M.S are stored only.
 * - OCW1 = IMR. OCW2: non-specific and specific EOI, rotate on (non-)specific EOI, rotate in
 *   auto-EOI mode, set priority: all implemented (rotation changes which IR is lowest priority).
 *   OCW3: read IRR/ISR select, poll mode (the next read of either port is an acknowledge that
 *   returns 0x80 | IR, or 0 when nothing is pending), special mask mode.
 * - Special fully nested mode (ICW4.SFNM) is stored but not acted on: the master treats the
 *   cascade input like any other, so a higher-priority slave IRQ waits for the master's EOI of
 *   IR2 (Linux never uses SFNM).
 * - Triggering: an input is edge-triggered unless its ELCR bit (or ICW1.LTIM, for all eight) is
 *   set. Edge: a rising edge latches IRR, which stays set until acknowledged even if the input
 *   falls (so a device's pulse() is never lost; the datasheet asks devices to hold the line
 *   until INTA, which a pulse cannot). Level: IRR follows the input. The cascade input (master
 *   IR2) is always taken as the slave's INT output level, whatever ELCR1 bit 2 says.
 *   ELCR bits that the PIIX hard-wires to 0 (IRQ 0, 1, 2, 8, 13) read and stay 0.
 * - Spurious interrupts: if nothing is pending at INTA (the request went away), the chip
 *   answers with its IR7 vector and sets no ISR bit (IRQ 7, or IRQ 15 on the slave, in which
 *   case the master's IR2 in-service bit is set and needs an EOI, as on real hardware).
 * - Input 2 of setIrq/line() is the cascade: there is nothing to drive there (ISA IRQ 2 is
 *   wired to IRQ 9 on an AT), so writes to it are ignored.
 */
import type { PortDevice } from './bus.js';
import type { IrqLine } from './irq.js';

// Command port (offset 0) writes: which kind of word, by bits 4 and 3.
export const ICW1_SELECT = 0x10; // bit 4 set: ICW1 (starts initialization)
export const OCW3_SELECT = 0x08; // bit 4 clear, bit 3 set: OCW3; both clear: OCW2

// ICW1 bits.
export const ICW1_IC4 = 0x01; // ICW4 will follow
export const ICW1_SNGL = 0x02; // single 8259 (no ICW3)
export const ICW1_ADI = 0x04; // call address interval (8080 mode only; ignored)
export const ICW1_LTIM = 0x08; // level-triggered mode for all inputs

// ICW2: the vector base (8086 mode uses T7-T3; T2-T0 come from the IR number).
export const ICW2_VECTOR_BASE = 0xf8;

// ICW4 bits.
export const ICW4_UPM = 0x01; // 8086/88 mode (else 8080/85; ignored here)
export const ICW4_AEOI = 0x02; // automatic end of interrupt
export const ICW4_MS = 0x04; // buffered mode: master (1) / slave (0)
export const ICW4_BUF = 0x08; // buffered mode
export const ICW4_SFNM = 0x10; // special fully nested mode (stored, not acted on)

// OCW2: R, SL, EOI in bits 7-5, the IR level in bits 2-0.
const OCW2_COMMAND = 0xe0;
const OCW2_LEVEL = 0x07;
export const OCW2_ROTATE_AEOI_CLEAR = 0x00; // rotate in automatic EOI mode (clear)
export const OCW2_NONSPECIFIC_EOI = 0x20; // non-specific EOI
export const OCW2_NOP = 0x40; // no operation
export const OCW2_SPECIFIC_EOI = 0x60; // specific EOI of IR level L
export const OCW2_ROTATE_AEOI_SET = 0x80; // rotate in automatic EOI mode (set)
export const OCW2_ROTATE_NONSPECIFIC_EOI = 0xa0; // rotate on non-specific EOI
export const OCW2_SET_PRIORITY = 0xc0; // make IR level L the lowest priority
export const OCW2_ROTATE_SPECIFIC_EOI = 0xe0; // specific EOI of L, and L becomes lowest priority

// OCW3 bits.
export const OCW3_RIS = 0x01; // read ISR (1) or IRR (0) on the next command-port read...
export const OCW3_RR = 0x02; // ...if this bit is set
export const OCW3_POLL = 0x04; // poll command
export const OCW3_SMM = 0x20; // special mask mode value...
export const OCW3_ESMM = 0x40; // ...applied only if this bit is set

/** Poll-mode answer: bit 7 = an interrupt was pending, bits 2-0 its IR level. */
const POLL_INTERRUPT = 0x80;

/** The master's input that the slave's INT output drives. */
export const CASCADE_IRQ = 2;
const SPURIOUS_IR = 7;

/** ELCR bits that cannot be set (PIIX4: IRQ 0, 1, 2 on ELCR1; IRQ 8, 13 on ELCR2). */
export const ELCR_WRITABLE = [0xf8, 0xde] as const;

/** One chip's migratable state. */
export interface I8259ChipState {
  irr: number;
  isr: number;
  imr: number;
  /** Input levels last seen (for edge detection). */
  inputs: number;
  elcr: number;
  vectorBase: number;
  icw1: number;
  icw3: number;
  icw4: number;
  /** Which ICW the data port expects next: 0 = initialized (OCW1), 2, 3 or 4. */
  initStep: number;
  /** The IR level with the lowest priority (7 after initialization). */
  lowestPriority: number;
  readIsr: boolean;
  poll: boolean;
  specialMask: boolean;
  rotateOnAutoEoi: boolean;
}

export interface I8259PicState {
  master: I8259ChipState;
  slave: I8259ChipState;
}

export interface I8259PicOptions {
  /** Called when the INTR output (to the CPU, or the LAPIC's LINT0) changes level. */
  onIntr?: (asserted: boolean) => void;
  /** Called after an INTA cycle with the ISA IRQ (0-15) it acknowledged. */
  onAck?: (irq: number) => void;
}

function bit(ir: number): number {
  return 1 << ir;
}

/** One 8259A. */
class Chip {
  irr = 0;
  isr = 0;
  imr = 0;
  inputs = 0;
  elcr = 0;
  vectorBase = 0;
  icw1 = 0;
  icw3 = 0;
  icw4 = 0;
  initStep = 0;
  lowestPriority = 7;
  readIsr = false;
  poll = false;
  specialMask = false;
  rotateOnAutoEoi = false;

  constructor(readonly elcrWritable: number, private readonly cascadeInput: number) {}

  /** Inputs that are level-sensitive: ELCR, or all of them under ICW1.LTIM; the cascade input always. */
  private levelMask(): number {
    return ((this.icw1 & ICW1_LTIM ? 0xff : this.elcr) | this.cascadeInput) & 0xff;
  }

  setInput(ir: number, level: boolean): void {
    const m = bit(ir);
    const was = (this.inputs & m) !== 0;
    if (level) {
      this.inputs |= m;
      if (this.levelMask() & m || !was) this.irr |= m;
    } else {
      this.inputs &= ~m;
      if (this.levelMask() & m) this.irr &= ~m;
    }
  }

  /** Priority rank of an IR: 0 is highest. */
  private rank(ir: number): number {
    return (ir - this.lowestPriority - 1) & 7;
  }

  /** The highest-priority IR set in `mask`, or -1. */
  private highest(mask: number): number {
    if (mask === 0) return -1;
    for (let r = 0; r < 8; r++) {
      const ir = (this.lowestPriority + 1 + r) & 7;
      if (mask & bit(ir)) return ir;
    }
    return -1;
  }

  /** The IR the chip would present at INTA now, or -1 (nothing above the in-service level). */
  pending(): number {
    if (this.initStep !== 0) return -1;
    const requests = this.irr & ~this.imr;
    const ir = this.highest(requests);
    if (ir < 0) return -1;
    // In special mask mode, a masked in-service level does not block the others.
    const blocking = this.specialMask ? this.isr & ~this.imr : this.isr;
    const inService = this.highest(blocking);
    if (inService >= 0 && this.rank(inService) <= this.rank(ir)) return -1;
    return ir;
  }

  /** The INTA cycle for one chip: the IR served (its ISR bit set unless AEOI), or SPURIOUS_IR. */
  acknowledge(): number {
    const ir = this.pending();
    if (ir < 0) return SPURIOUS_IR;
    const m = bit(ir);
    // Edge requests are consumed; a level request stays while the input is high.
    if (!(this.levelMask() & m) || !(this.inputs & m)) this.irr &= ~m;
    if (this.icw4 & ICW4_AEOI) {
      if (this.rotateOnAutoEoi) this.lowestPriority = ir;
    } else {
      this.isr |= m;
    }
    return ir;
  }

  writeCommand(value: number): void {
    if (value & ICW1_SELECT) {
      this.icw1 = value;
      this.irr &= this.levelMask() & this.inputs; // the edge sense latches are reset
      this.isr = 0;
      this.imr = 0;
      this.lowestPriority = 7;
      this.readIsr = false;
      this.poll = false;
      this.specialMask = false;
      this.rotateOnAutoEoi = false;
      if (!(value & ICW1_IC4)) this.icw4 = 0;
      this.initStep = 2;
      return;
    }
    if (value & OCW3_SELECT) {
      if (value & OCW3_RR) this.readIsr = (value & OCW3_RIS) !== 0;
      if (value & OCW3_ESMM) this.specialMask = (value & OCW3_SMM) !== 0;
      this.poll = (value & OCW3_POLL) !== 0;
      return;
    }
    const level = value & OCW2_LEVEL;
    switch (value & OCW2_COMMAND) {
      case OCW2_ROTATE_AEOI_CLEAR: this.rotateOnAutoEoi = false; return;
      case OCW2_ROTATE_AEOI_SET: this.rotateOnAutoEoi = true; return;
      case OCW2_NOP: return;
      case OCW2_NONSPECIFIC_EOI:
      case OCW2_ROTATE_NONSPECIFIC_EOI: {
        const ir = this.highest(this.isr);
        if (ir < 0) return;
        this.isr &= ~bit(ir);
        if ((value & OCW2_COMMAND) === OCW2_ROTATE_NONSPECIFIC_EOI) this.lowestPriority = ir;
        return;
      }
      case OCW2_SPECIFIC_EOI: this.isr &= ~bit(level); return;
      case OCW2_ROTATE_SPECIFIC_EOI: this.isr &= ~bit(level); this.lowestPriority = level; return;
      case OCW2_SET_PRIORITY: this.lowestPriority = level; return;
    }
  }

  writeData(value: number): void {
    switch (this.initStep) {
      case 2:
        this.vectorBase = value & ICW2_VECTOR_BASE;
        this.initStep = this.icw1 & ICW1_SNGL ? (this.icw1 & ICW1_IC4 ? 4 : 0) : 3;
        return;
      case 3:
        this.icw3 = value;
        this.initStep = this.icw1 & ICW1_IC4 ? 4 : 0;
        return;
      case 4:
        this.icw4 = value & 0x1f;
        this.initStep = 0;
        return;
      default:
        this.imr = value;
    }
  }

  readCommand(): number {
    return this.readIsr ? this.isr : this.irr;
  }

  getState(): I8259ChipState {
    return {
      irr: this.irr, isr: this.isr, imr: this.imr, inputs: this.inputs, elcr: this.elcr,
      vectorBase: this.vectorBase, icw1: this.icw1, icw3: this.icw3, icw4: this.icw4, initStep: this.initStep,
      lowestPriority: this.lowestPriority, readIsr: this.readIsr, poll: this.poll,
      specialMask: this.specialMask, rotateOnAutoEoi: this.rotateOnAutoEoi,
    };
  }

  restore(s: I8259ChipState): void {
    this.irr = s.irr & 0xff; this.isr = s.isr & 0xff; this.imr = s.imr & 0xff; this.inputs = s.inputs & 0xff;
    this.elcr = s.elcr & this.elcrWritable; this.vectorBase = s.vectorBase & ICW2_VECTOR_BASE;
    this.icw1 = s.icw1 & 0xff; this.icw3 = s.icw3 & 0xff; this.icw4 = s.icw4 & 0x1f;
    this.initStep = [0, 2, 3, 4].includes(s.initStep) ? s.initStep : 0;
    this.lowestPriority = s.lowestPriority & 7; this.readIsr = s.readIsr; this.poll = s.poll;
    this.specialMask = s.specialMask; this.rotateOnAutoEoi = s.rotateOnAutoEoi;
  }
}

/** A 2-port window onto one chip. */
class ChipWindow implements PortDevice {
  constructor(private readonly pic: I8259Pic, private readonly which: 0 | 1) {}

  read(offset: number, size: 1 | 2 | 4): number {
    const v = this.pic.readPort(this.which, offset & 1);
    return size === 1 ? v : (v | (size === 2 ? 0xff00 : 0xffff_ff00)) >>> 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    this.pic.writePort(this.which, offset & 1, value & 0xff);
    // A word write to the command port also writes the data port (byte lanes of the ISA bus).
    if (size > 1 && offset === 0) this.pic.writePort(this.which, 1, (value >>> 8) & 0xff);
  }
}

export class I8259Pic {
  private readonly chips: [Chip, Chip] = [new Chip(ELCR_WRITABLE[0], bit(CASCADE_IRQ)), new Chip(ELCR_WRITABLE[1], 0)];
  private readonly onIntr: ((asserted: boolean) => void) | undefined;
  private readonly onAck: ((irq: number) => void) | undefined;
  private intr = false;
  private readonly lines: IrqLine[];
  private readonly masterWindow = new ChipWindow(this, 0);
  private readonly slaveWindow = new ChipWindow(this, 1);
  private readonly elcrWindow: PortDevice;

  constructor(opts: I8259PicOptions = {}) {
    this.onIntr = opts.onIntr;
    this.onAck = opts.onAck;
    this.lines = Array.from({ length: 16 }, (_, irq) => ({
      set: (level: boolean) => this.setIrq(irq, level),
      pulse: () => { this.setIrq(irq, true); this.setIrq(irq, false); },
    }));
    this.elcrWindow = {
      read: (offset, size) => {
        const v = this.chips[offset & 1]!.elcr;
        return size === 1 ? v : (v | (this.chips[1].elcr << 8)) >>> 0;
      },
      write: (offset, size, value) => {
        this.writeElcr(offset & 1, value & 0xff);
        if (size > 1 && offset === 0) this.writeElcr(1, (value >>> 8) & 0xff);
      },
    };
  }

  /** The master's window (ports 0x20-0x21). */
  get master(): PortDevice { return this.masterWindow; }
  /** The slave's window (ports 0xA0-0xA1). */
  get slave(): PortDevice { return this.slaveWindow; }
  /** The edge/level control registers (ports 0x4D0-0x4D1). */
  get elcr(): PortDevice { return this.elcrWindow; }

  /** The IrqLine for ISA IRQ 0-15 (IRQ 2 is the cascade and ignores its input). */
  line(irq: number): IrqLine {
    const l = this.lines[irq];
    if (!l) throw new RangeError(`8259 IRQ ${irq} is not 0-15`);
    return l;
  }

  /** Drives ISA IRQ `irq` (0-15) to `level`. */
  setIrq(irq: number, level: boolean): void {
    if (irq === CASCADE_IRQ || irq < 0 || irq > 15) return;
    this.chips[irq >> 3]!.setInput(irq & 7, level);
    this.update();
  }

  // ---- CPU side ----

  /** Whether INTR is asserted (the master has an unmasked request above its in-service level). */
  pendingInterrupt(): boolean {
    return this.intr;
  }

  /**
   * The INTA cycle: returns the vector of the highest-priority request and moves it from IRR to
   * ISR (through the cascade when it comes from the slave). With nothing pending it returns the
   * spurious IR7 vector of the chip concerned (IRQ 7 or IRQ 15).
   */
  acknowledge(): number {
    const [master, slave] = this.chips;
    const ir = master.acknowledge();
    let vector: number, irq: number;
    if (ir === CASCADE_IRQ && !(master.icw1 & ICW1_SNGL)) {
      const sir = slave.acknowledge();
      vector = slave.vectorBase | sir;
      irq = 8 + sir;
    } else {
      vector = master.vectorBase | ir;
      irq = ir;
    }
    this.update();
    this.onAck?.(irq);
    return vector;
  }

  // ---- ports ----

  /** A read of port offset 0 (command/status) or 1 (data) of chip 0 (master) or 1 (slave). */
  readPort(which: 0 | 1, offset: number): number {
    const chip = this.chips[which];
    if (chip.poll) {
      chip.poll = false;
      return this.pollChip(which);
    }
    return offset === 0 ? chip.readCommand() : chip.imr;
  }

  writePort(which: 0 | 1, offset: number, value: number): void {
    const chip = this.chips[which];
    if (offset === 0) chip.writeCommand(value);
    else chip.writeData(value);
    this.update();
  }

  /** A poll read: acknowledges like INTA but returns 0x80 | IR (or 0 when nothing is pending). */
  private pollChip(which: 0 | 1): number {
    const chip = this.chips[which];
    const ir = chip.pending();
    if (ir < 0) return 0;
    chip.acknowledge();
    this.update();
    return POLL_INTERRUPT | ir;
  }

  private writeElcr(which: number, value: number): void {
    const chip = this.chips[which]!;
    chip.elcr = value & chip.elcrWritable;
    // Re-evaluate inputs whose mode changed: a level input's IRR follows its line.
    for (let ir = 0; ir < 8; ir++) chip.setInput(ir, (chip.inputs & bit(ir)) !== 0);
    this.update();
  }

  /** Propagates the slave's INT to the master's IR2, then the master's INT to INTR. */
  private update(): void {
    const [master, slave] = this.chips;
    master.setInput(CASCADE_IRQ, slave.pending() >= 0);
    const intr = master.pending() >= 0;
    if (intr !== this.intr) {
      this.intr = intr;
      this.onIntr?.(intr);
    }
  }

  // ---- snapshot ----

  getState(): I8259PicState {
    return { master: this.chips[0].getState(), slave: this.chips[1].getState() };
  }

  restore(state: I8259PicState): void {
    this.chips[0].restore(state.master);
    this.chips[1].restore(state.slave);
    this.intr = false;
    this.update();
    if (!this.intr) this.onIntr?.(false);
  }
}
