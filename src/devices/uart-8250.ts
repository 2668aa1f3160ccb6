/**
 * A National Semiconductor PC16550D-compatible UART (what Linux's 8250 driver detects as
 * "16550A"), as the eight registers a driver sees at offsets 0-7 of its port window.
 *
 * Model (after the PC16550D datasheet's register descriptions and the behaviour Linux's
 * 8250_port.c probes for):
 * - Transmit takes no time while the host's end of the line takes bytes: a byte written to THR
 *   goes straight to `tx` (or, in loopback, to the receiver), THR and the transmitter stay empty
 *   (LSR.THRE = LSR.TEMT = 1) and the THRE interrupt, cleared by the THR write, is at once
 *   pending again. When `tx` refuses a byte (the host cannot take more now), the byte waits in
 *   the transmit FIFO (16 bytes; THR alone in 16450 mode) and LSR.THRE and TEMT read 0 until
 *   the host makes room (txReady()) or the guest polls LSR and the line has room again; then
 *   THRE rises and, with ETBEI, interrupts. A byte written while the FIFO is full is lost, as on
 *   the chip. So a guest that writes faster than the host drains waits, as on a real line.
 * - Receive: a 16-byte FIFO (1 byte when FCR.0 is clear, the 16450 mode). The host pushes bytes
 *   with receive(); a byte arriving at a full FIFO is lost and sets LSR.OE (loopback, or a lossy
 *   receive()); a flow-controlled receive() refuses it instead.
 * - Baud rate, word length, parity and stop bits are stored, not timed; no byte is ever
 *   received with a parity/framing error or a break.
 * - The character-timeout interrupt is signalled at once (not after four character times)
 *   whenever the FIFO holds fewer bytes than the trigger level.
 * - Modem inputs outside loopback: CTS, DSR and DCD asserted, RI not (a terminal is attached).
 * - The IRQ pin is gated by MCR.OUT2 as on a PC (OUT2 enables the board's IRQ driver), and is
 *   off in loopback, where the datasheet forces the OUT pins inactive.
 */
import type { PortDevice } from './bus.js';
import type { IrqLine } from './irq.js';

// Register offsets (PC16550D table II).
export const UART_RBR = 0; // receiver buffer (read, DLAB=0)
export const UART_THR = 0; // transmitter holding (write, DLAB=0)
export const UART_DLL = 0; // divisor latch low (DLAB=1)
export const UART_IER = 1; // interrupt enable (DLAB=0)
export const UART_DLM = 1; // divisor latch high (DLAB=1)
export const UART_IIR = 2; // interrupt identification (read)
export const UART_FCR = 2; // FIFO control (write)
export const UART_LCR = 3; // line control
export const UART_MCR = 4; // modem control
export const UART_LSR = 5; // line status
export const UART_MSR = 6; // modem status
export const UART_SCR = 7; // scratch

// IER bits.
export const IER_ERBFI = 0x01; // enable received-data-available (and timeout) interrupt
export const IER_ETBEI = 0x02; // enable transmitter-holding-register-empty interrupt
export const IER_ELSI = 0x04; // enable receiver-line-status interrupt
export const IER_EDSSI = 0x08; // enable modem-status interrupt
const IER_WRITABLE = 0x0f; // bits 4-7 are always 0 on a 16550 (Linux's IER probe checks this)

// IIR values (bits 3-1 identify the source; bit 0 = 1 means nothing pending).
export const IIR_NO_INT = 0x01; // no interrupt pending
export const IIR_MSI = 0x00; // modem status (priority 4, lowest)
export const IIR_THRI = 0x02; // THR empty (priority 3)
export const IIR_RDI = 0x04; // received data available (priority 2)
export const IIR_RLSI = 0x06; // receiver line status (priority 1, highest)
export const IIR_CTI = 0x0c; // character timeout (priority 2)
export const IIR_FIFOS_ENABLED = 0xc0; // bits 7-6 set when FCR.0 = 1 (identifies a 16550A)

// FCR bits.
export const FCR_ENABLE = 0x01; // enable both FIFOs; changing it clears them
export const FCR_CLEAR_RX = 0x02; // reset the receive FIFO (self-clearing)
export const FCR_CLEAR_TX = 0x04; // reset the transmit FIFO (self-clearing)
export const FCR_DMA_MODE = 0x08; // RXRDY/TXRDY pin mode; no effect here
export const FCR_TRIGGER = 0xc0; // receive FIFO interrupt trigger level: 1, 4, 8, 14 bytes
const TRIGGER_LEVELS = [1, 4, 8, 14] as const;

// LCR bits.
export const LCR_WORD_LENGTH = 0x03; // 5 + n data bits
export const LCR_DLAB = 0x80; // divisor latch access

// MCR bits.
export const MCR_DTR = 0x01; // data terminal ready
export const MCR_RTS = 0x02; // request to send
export const MCR_OUT1 = 0x04; // user output 1
export const MCR_OUT2 = 0x08; // user output 2: on a PC, enables the UART's IRQ onto the bus
export const MCR_LOOP = 0x10; // loopback diagnostic mode
const MCR_WRITABLE = 0x1f;

// LSR bits.
export const LSR_DR = 0x01; // data ready
export const LSR_OE = 0x02; // overrun error
export const LSR_PE = 0x04; // parity error
export const LSR_FE = 0x08; // framing error
export const LSR_BI = 0x10; // break interrupt
export const LSR_THRE = 0x20; // transmitter holding register empty
export const LSR_TEMT = 0x40; // transmitter empty
export const LSR_FIFO_ERROR = 0x80; // an error byte is in the receive FIFO (never, here)
const LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI; // cleared by reading LSR; raise the line-status interrupt

// MSR bits.
export const MSR_DCTS = 0x01; // CTS changed
export const MSR_DDSR = 0x02; // DSR changed
export const MSR_TERI = 0x04; // RI went from on to off
export const MSR_DDCD = 0x08; // DCD changed
export const MSR_CTS = 0x10; // clear to send
export const MSR_DSR = 0x20; // data set ready
export const MSR_RI = 0x40; // ring indicator
export const MSR_DCD = 0x80; // data carrier detect
const MSR_DELTAS = 0x0f;
/** The modem inputs outside loopback: a terminal is attached and ready. */
const MSR_LINE_INPUTS = MSR_CTS | MSR_DSR | MSR_DCD;

const FIFO_SIZE = 16;

/** The UART's migratable state. */
export interface Uart8250State {
  divisor: number;
  ier: number;
  /** FCR as it stands: enable, DMA mode and trigger bits (the clear bits self-clear). */
  fcr: number;
  lcr: number;
  mcr: number;
  /** OE/PE/FE/BI latched until LSR is read. */
  lsrErrors: number;
  /** MSR status and delta bits. */
  msr: number;
  scr: number;
  /** Receive FIFO contents, oldest first. */
  rx: number[];
  /** The THRE interrupt is pending (set on transmit/ETBEI enable, cleared by IIR read or THR write). */
  thrInterrupt: boolean;
  /** Transmit FIFO contents the host has not taken yet, oldest first. */
  tx: number[];
}

export interface Uart8250Options {
  irq: IrqLine;
  /**
   * A byte the guest transmitted (not called in loopback). Returns false when the host cannot
   * take it now: the UART keeps it and shows the transmitter busy until txReady().
   */
  tx: (byte: number) => boolean | void;
  /** Called when the guest empties the receive FIFO (or leaves loopback) so the host can push more. */
  onRxSpace?: () => void;
}

export class Uart8250 implements PortDevice {
  private readonly irq: IrqLine;
  private readonly tx: (byte: number) => boolean | void;
  /** Called when the guest empties the receive FIFO (or leaves loopback) so the host can push more. */
  onRxSpace: (() => void) | undefined;

  private divisor = 12; // 9600 baud from the PC's 1.8432 MHz clock, as firmware leaves it
  private ier = 0;
  private fcr = 0;
  private lcr = 0x03; // 8N1
  private mcr = 0;
  private lsrErrors = 0;
  private msr = MSR_LINE_INPUTS;
  private scr = 0;
  private thrInterrupt = false;
  private readonly rxRing = new Uint8Array(FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  private readonly txRing = new Uint8Array(FIFO_SIZE);
  private txHead = 0;
  private txCount = 0;
  private irqLevel = false;

  constructor(opts: Uart8250Options) {
    this.irq = opts.irq;
    this.tx = opts.tx;
    this.onRxSpace = opts.onRxSpace;
  }

  // ---- host side ----

  /** Bytes the receive FIFO can take now (0 in loopback, where the serial input is disconnected). */
  rxSpace(): number {
    return this.mcr & MCR_LOOP ? 0 : this.rxCapacity() - this.rxCount;
  }

  /**
   * Bytes from the host's end of the line. Returns how many were taken: with flow control (the
   * default) it stops at a full FIFO and the caller keeps the rest for onRxSpace; with
   * `lossy`, bytes beyond the FIFO are lost with an overrun, as on a real line.
   */
  receive(bytes: Uint8Array | readonly number[], opts: { lossy?: boolean } = {}): number {
    if (this.mcr & MCR_LOOP) return 0;
    let taken = 0;
    const n = bytes.length;
    while (taken < n && this.rxCount < this.rxCapacity()) this.pushRx(bytes[taken++]! & 0xff);
    if (taken < n && opts.lossy) {
      this.lsrErrors |= LSR_OE;
      taken = n;
    }
    this.updateIrq();
    return taken;
  }

  /** The host's end of the line has room again: bytes waiting in the transmit FIFO move on. */
  txReady(): void {
    this.drainTx();
  }

  /** Bytes waiting in the transmit FIFO for the host to take them. */
  get txPending(): number {
    return this.txCount;
  }

  // ---- guest side (PortDevice) ----

  read(offset: number, size: 1 | 2 | 4): number {
    if (size === 1) return this.readRegister(offset);
    let value = 0;
    for (let i = 0; i < size; i++) value |= this.readRegister(offset + i) << (8 * i);
    return value >>> 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size === 1) {
      this.writeRegister(offset, value & 0xff);
      return;
    }
    for (let i = 0; i < size; i++) this.writeRegister(offset + i, (value >>> (8 * i)) & 0xff);
  }

  /** The interrupt source IIR would report now (IIR_NO_INT if none), by the 16550 priorities. */
  private pendingSource(): number {
    if (this.ier & IER_ELSI && this.lsrErrors & LSR_ERRORS) return IIR_RLSI;
    if (this.ier & IER_ERBFI && this.rxCount > 0) {
      return this.fifoEnabled() && this.rxCount < this.triggerLevel() ? IIR_CTI : IIR_RDI;
    }
    if (this.ier & IER_ETBEI && this.thrInterrupt) return IIR_THRI;
    if (this.ier & IER_EDSSI && this.msr & MSR_DELTAS) return IIR_MSI;
    return IIR_NO_INT;
  }

  private readRegister(offset: number): number {
    switch (offset) {
      case UART_RBR: {
        if (this.lcr & LCR_DLAB) return this.divisor & 0xff;
        if (this.rxCount === 0) return 0;
        const byte = this.rxRing[this.rxHead]!;
        this.rxHead = (this.rxHead + 1) % FIFO_SIZE;
        this.rxCount--;
        this.updateIrq();
        if (this.rxCount === 0) this.onRxSpace?.();
        return byte;
      }
      case UART_IER:
        return this.lcr & LCR_DLAB ? this.divisor >>> 8 : this.ier;
      case UART_IIR: {
        const source = this.pendingSource();
        if (source === IIR_THRI) {
          this.thrInterrupt = false; // reading IIR with THRE as the source clears it
          this.updateIrq();
        }
        return source | (this.fifoEnabled() ? IIR_FIFOS_ENABLED : 0);
      }
      case UART_LCR:
        return this.lcr;
      case UART_MCR:
        return this.mcr;
      case UART_LSR: {
        this.drainTx(); // a polling guest sees the line move on without a word from the host
        const value = (this.rxCount > 0 ? LSR_DR : 0) | this.lsrErrors | (this.txCount === 0 ? LSR_THRE | LSR_TEMT : 0);
        if (this.lsrErrors) {
          this.lsrErrors = 0;
          this.updateIrq();
        }
        return value;
      }
      case UART_MSR: {
        const value = this.msr;
        if (value & MSR_DELTAS) {
          this.msr &= ~MSR_DELTAS;
          this.updateIrq();
        }
        return value;
      }
      case UART_SCR:
        return this.scr;
      default:
        return 0xff; // past the eight registers (a wide access running off the window)
    }
  }

  private writeRegister(offset: number, value: number): void {
    switch (offset) {
      case UART_THR:
        if (this.lcr & LCR_DLAB) {
          this.divisor = (this.divisor & 0xff00) | value;
          return;
        }
        this.transmit(value & ((1 << (5 + (this.lcr & LCR_WORD_LENGTH))) - 1));
        return;
      case UART_IER: {
        if (this.lcr & LCR_DLAB) {
          this.divisor = (this.divisor & 0x00ff) | (value << 8);
          return;
        }
        const old = this.ier;
        this.ier = value & IER_WRITABLE;
        // Enabling ETBEI while THR is empty raises THRE at once (Linux's startup test relies on it).
        if (this.ier & IER_ETBEI && !(old & IER_ETBEI) && this.txCount === 0) this.thrInterrupt = true;
        this.updateIrq();
        return;
      }
      case UART_FCR:
        this.writeFcr(value);
        return;
      case UART_LCR:
        this.lcr = value;
        return;
      case UART_MCR: {
        const wasLoop = this.mcr & MCR_LOOP;
        this.mcr = value & MCR_WRITABLE;
        this.updateModemStatus();
        this.updateIrq();
        if (wasLoop && !(this.mcr & MCR_LOOP) && this.rxSpace() > 0) this.onRxSpace?.();
        return;
      }
      case UART_LSR:
      case UART_MSR:
        return; // read-only status registers (factory test writes ignored)
      case UART_SCR:
        this.scr = value;
        return;
      default:
        return;
    }
  }

  private transmit(byte: number): void {
    this.thrInterrupt = false; // writing THR clears THRE...
    if (this.mcr & MCR_LOOP) {
      if (this.rxCount < this.rxCapacity()) this.pushRx(byte);
      else this.lsrErrors |= LSR_OE;
      this.thrInterrupt = true; // ...and the byte leaves at once, so THR is empty again
    } else {
      this.drainTx();
      if (this.txCount === 0 && this.tx(byte) !== false) {
        this.thrInterrupt = true; // (as in loopback)
      } else {
        this.thrInterrupt = false; // (drainTx may have raised it) the byte waits: THRE stays clear
        if (this.txCount < this.txCapacity()) {
          this.txRing[(this.txHead + this.txCount) % FIFO_SIZE] = byte;
          this.txCount++;
        }
        // else: written over a full FIFO; the chip loses it too
      }
    }
    this.updateIrq();
  }

  /** Hands waiting transmit bytes to the host while it takes them; THR empty again raises THRE. */
  private drainTx(): void {
    if (this.txCount === 0) return;
    while (this.txCount > 0 && this.tx(this.txRing[this.txHead]!) !== false) {
      this.txHead = (this.txHead + 1) % FIFO_SIZE;
      this.txCount--;
    }
    if (this.txCount === 0) {
      this.thrInterrupt = true;
      this.updateIrq();
    }
  }

  private clearTx(): void {
    if (this.txCount === 0) return;
    this.txHead = 0;
    this.txCount = 0;
    this.thrInterrupt = true;
  }

  private writeFcr(value: number): void {
    const enable = value & FCR_ENABLE;
    const hadRx = this.rxCount > 0;
    // Switching FIFO mode empties both FIFOs; FCR_CLEAR_RX and FCR_CLEAR_TX empty one each.
    const modeChange = enable !== (this.fcr & FCR_ENABLE);
    if (modeChange || (enable && value & FCR_CLEAR_RX)) {
      this.rxHead = 0;
      this.rxCount = 0;
    }
    if (modeChange || (enable && value & FCR_CLEAR_TX)) this.clearTx();
    // The other FCR bits are only programmed while FCR.0 is written as 1.
    this.fcr = enable ? value & (FCR_ENABLE | FCR_DMA_MODE | FCR_TRIGGER) : 0;
    this.updateIrq();
    if (hadRx && this.rxCount === 0) this.onRxSpace?.();
  }

  private updateModemStatus(): void {
    let status: number;
    if (this.mcr & MCR_LOOP) {
      // Loopback wires the outputs back to the inputs: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
      status = (this.mcr & MCR_RTS ? MSR_CTS : 0) | (this.mcr & MCR_DTR ? MSR_DSR : 0)
        | (this.mcr & MCR_OUT1 ? MSR_RI : 0) | (this.mcr & MCR_OUT2 ? MSR_DCD : 0);
    } else {
      status = MSR_LINE_INPUTS;
    }
    const old = this.msr;
    const changed = (old ^ status) & 0xf0;
    let deltas = old & MSR_DELTAS;
    if (changed & MSR_CTS) deltas |= MSR_DCTS;
    if (changed & MSR_DSR) deltas |= MSR_DDSR;
    if (changed & MSR_DCD) deltas |= MSR_DDCD;
    if (old & MSR_RI && !(status & MSR_RI)) deltas |= MSR_TERI; // trailing edge of RI only
    this.msr = status | deltas;
  }

  private pushRx(byte: number): void {
    this.rxRing[(this.rxHead + this.rxCount) % FIFO_SIZE] = byte;
    this.rxCount++;
  }

  private fifoEnabled(): boolean {
    return (this.fcr & FCR_ENABLE) !== 0;
  }

  private rxCapacity(): number {
    return this.fifoEnabled() ? FIFO_SIZE : 1;
  }

  private txCapacity(): number {
    return this.fifoEnabled() ? FIFO_SIZE : 1;
  }

  private triggerLevel(): number {
    return TRIGGER_LEVELS[(this.fcr & FCR_TRIGGER) >>> 6]!;
  }

  private updateIrq(): void {
    const level = this.computeIrqLevel();
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }

  private computeIrqLevel(): boolean {
    return (this.mcr & (MCR_OUT2 | MCR_LOOP)) === MCR_OUT2 && this.pendingSource() !== IIR_NO_INT;
  }

  // ---- snapshot ----

  getState(): Uart8250State {
    const rx: number[] = [];
    for (let i = 0; i < this.rxCount; i++) rx.push(this.rxRing[(this.rxHead + i) % FIFO_SIZE]!);
    const tx: number[] = [];
    for (let i = 0; i < this.txCount; i++) tx.push(this.txRing[(this.txHead + i) % FIFO_SIZE]!);
    return {
      divisor: this.divisor, ier: this.ier, fcr: this.fcr, lcr: this.lcr, mcr: this.mcr,
      lsrErrors: this.lsrErrors, msr: this.msr, scr: this.scr, rx, thrInterrupt: this.thrInterrupt, tx,
    };
  }

  restore(state: Uart8250State): void {
    this.divisor = state.divisor & 0xffff;
    this.ier = state.ier & IER_WRITABLE;
    this.fcr = state.fcr & (FCR_ENABLE | FCR_DMA_MODE | FCR_TRIGGER);
    this.lcr = state.lcr & 0xff;
    this.mcr = state.mcr & MCR_WRITABLE;
    this.lsrErrors = state.lsrErrors & LSR_ERRORS;
    this.msr = state.msr & 0xff;
    this.scr = state.scr & 0xff;
    this.thrInterrupt = state.thrInterrupt;
    this.rxHead = 0;
    this.rxCount = Math.min(state.rx.length, this.rxCapacity());
    for (let i = 0; i < this.rxCount; i++) this.rxRing[i] = state.rx[i]! & 0xff;
    this.txHead = 0;
    this.txCount = Math.min(state.tx.length, this.txCapacity());
    for (let i = 0; i < this.txCount; i++) this.txRing[i] = state.tx[i]! & 0xff;
    this.irqLevel = this.computeIrqLevel();
    this.irq.set(this.irqLevel);
  }
}
