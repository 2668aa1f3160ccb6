/**
 * The 8042 keyboard controller of a PC/AT (ports 0x60 data, 0x64 status/command) with a PS/2
 * keyboard behind it that answers commands but has no keys, and no mouse behind the aux port.
 * The device is registered with a 5-port window at 0x60 and serves offsets 0 (data) and 4
 * (status/command); offsets 1-3 (0x61-0x63, system control port B and friends) are not the
 * controller's and read as all ones.
 *
 * Facts used (IBM PC/AT technical reference and the OSDev "8042 PS/2 Controller" and "PS/2
 * Keyboard" pages; Linux's i8042.c/atkbd.c as the driver to satisfy):
 * - The controller's one-byte output buffer is modelled as a short queue of bytes, each tagged
 *   with its source (keyboard or aux); status OBF/AUX_OBF describe the head. IRQ1 (IRQ12) is
 *   high while a keyboard (aux) byte waits and the command byte enables that interrupt.
 * - Writes are consumed at once, so IBF is never set.
 * - The system is reset through the output port's bit 0 (active low): command 0xD1 with bit 0
 *   clear, or a 0xF0-0xFF pulse command with bit 0 clear (0xFE, the usual "reboot").
 * - Bytes sent to the aux device (command 0xD4) find no mouse and are answered 0xFE.
 */
import type { PortDevice } from './bus.js';
import type { IrqLine } from './irq.js';

const DATA_OFFSET = 0; // port 0x60
const COMMAND_OFFSET = 4; // port 0x64

// Status register (read at 0x64).
export const STATUS_OBF = 0x01; // output buffer full: a byte waits at 0x60
export const STATUS_IBF = 0x02; // input buffer full (never: writes are consumed at once)
export const STATUS_SYS = 0x04; // system flag: set after a passed self-test / from command byte bit 2
export const STATUS_CMD = 0x08; // the last write was to 0x64 (command), not 0x60 (data)
export const STATUS_UNLOCKED = 0x10; // keyboard not inhibited by the key lock
export const STATUS_AUX_OBF = 0x20; // the waiting byte is from the aux (mouse) port
export const STATUS_TIMEOUT = 0x40; // timeout error
export const STATUS_PARITY = 0x80; // parity error

// Command byte ("controller configuration byte", internal RAM byte 0).
export const CTR_KBD_INT = 0x01; // raise IRQ1 when a keyboard byte is in the output buffer
export const CTR_AUX_INT = 0x02; // raise IRQ12 when an aux byte is in the output buffer
export const CTR_SYS = 0x04; // system flag, mirrored in status bit 2
export const CTR_KBD_DISABLE = 0x10; // keyboard clock disabled
export const CTR_AUX_DISABLE = 0x20; // aux clock disabled
export const CTR_XLATE = 0x40; // translate keyboard set 2 codes to set 1

// Output port (read 0xD0, write 0xD1).
export const OUT_RESET = 0x01; // system reset line, active low: 0 resets the CPU
export const OUT_A20 = 0x02; // A20 gate
export const OUT_AUX_CLOCK = 0x04; // aux clock line
export const OUT_AUX_DATA = 0x08; // aux data line
export const OUT_KBD_OBF = 0x10; // output buffer full with keyboard data (IRQ1)
export const OUT_AUX_OBF = 0x20; // output buffer full with aux data (IRQ12)
export const OUT_KBD_CLOCK = 0x40; // keyboard clock line
export const OUT_KBD_DATA = 0x80; // keyboard data line
const OUT_POWER_ON = OUT_RESET | OUT_A20 | OUT_AUX_CLOCK | OUT_AUX_DATA | OUT_KBD_CLOCK | OUT_KBD_DATA;

// Controller commands (written to 0x64).
export const CMD_READ_RAM = 0x20; // 0x20-0x3f: read internal RAM byte n (0x20 = command byte)
export const CMD_WRITE_RAM = 0x60; // 0x60-0x7f: next data byte -> internal RAM byte n (0x60 = command byte)
export const CMD_PASSWORD_TEST = 0xa4; // is a password installed? 0xf1 = no
export const CMD_AUX_DISABLE = 0xa7;
export const CMD_AUX_ENABLE = 0xa8;
export const CMD_AUX_TEST = 0xa9; // aux interface test: 0x00 = passed
export const CMD_SELF_TEST = 0xaa; // controller self-test: 0x55 = passed
export const CMD_KBD_TEST = 0xab; // keyboard interface test: 0x00 = passed
export const CMD_KBD_DISABLE = 0xad;
export const CMD_KBD_ENABLE = 0xae;
export const CMD_READ_INPUT_PORT = 0xc0;
export const CMD_READ_OUTPUT_PORT = 0xd0;
export const CMD_WRITE_OUTPUT_PORT = 0xd1; // next data byte -> output port
export const CMD_WRITE_KBD_BUFFER = 0xd2; // next data byte appears as if from the keyboard
export const CMD_WRITE_AUX_BUFFER = 0xd3; // next data byte appears as if from the aux device (loop)
export const CMD_WRITE_AUX = 0xd4; // next data byte goes to the aux device
export const CMD_READ_TEST_INPUTS = 0xe0;
export const CMD_PULSE = 0xf0; // 0xf0-0xff: pulse output port bits 0-3 where the command bit is 0

// Controller replies.
const SELF_TEST_PASSED = 0x55;
const INTERFACE_TEST_PASSED = 0x00;
const NO_PASSWORD = 0xf1;
const INPUT_PORT = 0x80; // bit 7: keyboard not inhibited

// Keyboard commands (written to 0x60) and replies.
export const KBD_SET_LEDS = 0xed;
export const KBD_ECHO = 0xee;
export const KBD_SCANCODE_SET = 0xf0;
export const KBD_IDENTIFY = 0xf2;
export const KBD_TYPEMATIC = 0xf3;
export const KBD_ENABLE = 0xf4;
export const KBD_DISABLE = 0xf5; // disable scanning and restore defaults
export const KBD_SET_DEFAULTS = 0xf6;
export const KBD_RESEND = 0xfe;
export const KBD_RESET = 0xff;
export const KBD_ACK = 0xfa;
export const KBD_NAK = 0xfe; // "resend": also what a missing aux device yields
export const KBD_BAT_PASSED = 0xaa; // basic assurance test passed, sent after reset
const KBD_ID = 0xab; // first byte of an MF2 keyboard's ID
const KBD_ID_TRANSLATED = 0x41; // second byte as seen through translation
const KBD_ID_RAW = 0x83; // second byte untranslated
/** Keyboard commands that take one parameter byte (each byte is ACKed). */
const KBD_WITH_PARAMETER = new Set([KBD_SET_LEDS, KBD_SCANCODE_SET, KBD_TYPEMATIC]);

/** The most bytes waiting for the guest (a PS/2 keyboard buffers 16). */
const QUEUE_LIMIT = 16;

/** The controller's migratable state. */
export interface I8042State {
  /** Internal RAM; byte 0 is the command byte. */
  ram: number[];
  /** Latched status bits (SYS, CMD, TIMEOUT); OBF/AUX_OBF derive from `queue`. */
  status: number;
  outputPort: number;
  /** A controller command waiting for its data byte at 0x60 (0 = none). */
  pendingCommand: number;
  /** Bytes waiting for the guest, oldest first: [byte, fromAux]. */
  queue: [number, boolean][];
  /** What 0x60 reads when the queue is empty (the last byte delivered). */
  lastOutput: number;
  keyboard: {
    scanning: boolean;
    /** A keyboard command waiting for its parameter byte (0 = none). */
    pendingCommand: number;
    scancodeSet: number;
  };
}

export interface I8042Options {
  /** The output port's reset line was pulsed: reset the machine. */
  onReset: () => void;
  irq1?: IrqLine;
  irq12?: IrqLine;
  /** The output port's A20 gate changed. */
  onA20?: (enabled: boolean) => void;
}

export class I8042 implements PortDevice {
  private readonly onReset: () => void;
  private readonly onA20: ((enabled: boolean) => void) | undefined;
  private readonly irq1: IrqLine | undefined;
  private readonly irq12: IrqLine | undefined;
  private irq1Level = false;
  private irq12Level = false;
  private state: I8042State;

  /**
   * The command/status port as a window of its own, for boards that register 0x60 and 0x64
   * separately (so that 0x61, system control port B, can belong to another device).
   */
  readonly commandPort: PortDevice = {
    read: (_offset, size) => this.read(4, size),
    write: (_offset, size, value) => this.write(4, size, value),
  };

  constructor(opts: I8042Options) {
    this.onReset = opts.onReset;
    this.onA20 = opts.onA20;
    this.irq1 = opts.irq1;
    this.irq12 = opts.irq12;
    this.state = I8042.powerOnState();
  }

  private static powerOnState(): I8042State {
    const ram = new Array<number>(32).fill(0);
    // As firmware leaves it: keyboard interrupt on, system flag, translation.
    ram[0] = CTR_KBD_INT | CTR_SYS | CTR_XLATE;
    return {
      ram,
      status: STATUS_SYS,
      outputPort: OUT_POWER_ON,
      pendingCommand: 0,
      queue: [],
      lastOutput: 0,
      keyboard: { scanning: true, pendingCommand: 0, scancodeSet: 2 },
    };
  }

  /** Whether the A20 gate is open. */
  get a20(): boolean {
    return (this.state.outputPort & OUT_A20) !== 0;
  }

  /** Scancode bytes from the host keyboard, as the guest should read them at 0x60; dropped while the keyboard is not scanning. */
  keyboardInput(bytes: readonly number[]): void {
    if (!this.state.keyboard.scanning || this.state.ram[0]! & CTR_KBD_DISABLE) return;
    for (const b of bytes) this.enqueue(b, false);
    this.updateIrqs();
  }

  // ---- PortDevice ----

  read(offset: number, size: 1 | 2 | 4): number {
    const value = offset === DATA_OFFSET ? this.readData() : offset === COMMAND_OFFSET ? this.readStatus() : 0xff;
    // A wide read: the byte from the addressed register, all ones above it.
    return size === 1 ? value : (value | (size === 2 ? 0xff00 : 0xffff_ff00)) >>> 0;
  }

  write(offset: number, _size: 1 | 2 | 4, value: number): void {
    if (offset === DATA_OFFSET) this.writeData(value & 0xff);
    else if (offset === COMMAND_OFFSET) this.writeCommand(value & 0xff);
    this.updateIrqs();
  }

  private readStatus(): number {
    const s = this.state;
    const head = s.queue[0];
    return (s.status & (STATUS_SYS | STATUS_CMD | STATUS_TIMEOUT | STATUS_PARITY)) | STATUS_UNLOCKED
      | (head ? STATUS_OBF | (head[1] ? STATUS_AUX_OBF : 0) : 0);
  }

  private readData(): number {
    const s = this.state;
    const head = s.queue.shift();
    if (head) {
      s.lastOutput = head[0];
      s.status &= ~STATUS_TIMEOUT;
      // The read empties the output buffer, so the line drops even if another byte follows at
      // once: each byte is a fresh edge for the (edge-triggered) PIC.
      this.setIrqs(false, false);
      this.updateIrqs();
    }
    return s.lastOutput;
  }

  private writeCommand(cmd: number): void {
    const s = this.state;
    s.status |= STATUS_CMD;
    s.pendingCommand = 0;
    if (cmd >= CMD_READ_RAM && cmd < CMD_READ_RAM + 0x20) {
      this.reply(s.ram[cmd & 0x1f]!);
      return;
    }
    if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + 0x20) {
      s.pendingCommand = cmd;
      return;
    }
    if (cmd >= CMD_PULSE) {
      // Bits 0-3 of the command select the lines to pulse low; bit 0 is the reset line.
      if (!(cmd & OUT_RESET)) this.onReset();
      return;
    }
    switch (cmd) {
      case CMD_PASSWORD_TEST: this.reply(NO_PASSWORD); return;
      case CMD_AUX_DISABLE: s.ram[0]! |= CTR_AUX_DISABLE; return;
      case CMD_AUX_ENABLE: s.ram[0]! &= ~CTR_AUX_DISABLE; return;
      case CMD_AUX_TEST: this.reply(INTERFACE_TEST_PASSED); return;
      case CMD_SELF_TEST:
        s.status |= STATUS_SYS;
        this.reply(SELF_TEST_PASSED);
        return;
      case CMD_KBD_TEST: this.reply(INTERFACE_TEST_PASSED); return;
      case CMD_KBD_DISABLE: s.ram[0]! |= CTR_KBD_DISABLE; return;
      case CMD_KBD_ENABLE: s.ram[0]! &= ~CTR_KBD_DISABLE; return;
      case CMD_READ_INPUT_PORT: this.reply(INPUT_PORT); return;
      case CMD_READ_OUTPUT_PORT: this.reply(this.outputPortValue()); return;
      case CMD_READ_TEST_INPUTS: this.reply(0); return;
      case CMD_WRITE_OUTPUT_PORT:
      case CMD_WRITE_KBD_BUFFER:
      case CMD_WRITE_AUX_BUFFER:
      case CMD_WRITE_AUX:
        s.pendingCommand = cmd;
        return;
      default:
        return; // an unknown command does nothing
    }
  }

  private writeData(value: number): void {
    const s = this.state;
    s.status &= ~STATUS_CMD;
    const cmd = s.pendingCommand;
    s.pendingCommand = 0;
    if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + 0x20) {
      const index = cmd & 0x1f;
      s.ram[index] = value;
      if (index === 0) s.status = value & CTR_SYS ? s.status | STATUS_SYS : s.status & ~STATUS_SYS;
      return;
    }
    switch (cmd) {
      case CMD_WRITE_OUTPUT_PORT: this.writeOutputPort(value); return;
      case CMD_WRITE_KBD_BUFFER: this.enqueue(value, false); return;
      case CMD_WRITE_AUX_BUFFER: this.enqueue(value, true); return;
      case CMD_WRITE_AUX: this.enqueue(KBD_NAK, true); return; // no mouse answers
      default: this.keyboardCommand(value); return;
    }
  }

  private writeOutputPort(value: number): void {
    const s = this.state;
    const old = s.outputPort;
    // The OBF bits are inputs from the buffer state, not latched.
    s.outputPort = value & ~(OUT_KBD_OBF | OUT_AUX_OBF);
    if ((old ^ value) & OUT_A20) this.onA20?.((value & OUT_A20) !== 0);
    if (!(value & OUT_RESET)) {
      s.outputPort |= OUT_RESET; // the line is pulsed: reset, and the machine comes back with it high
      this.onReset();
    }
  }

  private outputPortValue(): number {
    const head = this.state.queue[0];
    return this.state.outputPort | (head ? (head[1] ? OUT_AUX_OBF : OUT_KBD_OBF) : 0);
  }

  /** A byte the keyboard receives from the host (port 0x60 with no controller command pending). */
  private keyboardCommand(byte: number): void {
    const kbd = this.state.keyboard;
    const param = kbd.pendingCommand;
    if (param) {
      kbd.pendingCommand = 0;
      this.reply(KBD_ACK);
      if (param === KBD_SCANCODE_SET) {
        if (byte === 0) this.reply(kbd.scancodeSet); // query
        else if (byte <= 3) kbd.scancodeSet = byte;
      }
      return;
    }
    if (KBD_WITH_PARAMETER.has(byte)) {
      kbd.pendingCommand = byte;
      this.reply(KBD_ACK);
      return;
    }
    switch (byte) {
      case KBD_ECHO: this.reply(KBD_ECHO); return;
      case KBD_IDENTIFY:
        this.reply(KBD_ACK);
        this.reply(KBD_ID);
        this.reply(this.state.ram[0]! & CTR_XLATE ? KBD_ID_TRANSLATED : KBD_ID_RAW);
        return;
      case KBD_ENABLE:
        kbd.scanning = true;
        this.reply(KBD_ACK);
        return;
      case KBD_DISABLE:
        kbd.scanning = false;
        kbd.scancodeSet = 2;
        this.reply(KBD_ACK);
        return;
      case KBD_SET_DEFAULTS:
        kbd.scancodeSet = 2;
        this.reply(KBD_ACK);
        return;
      case KBD_RESET:
        kbd.scanning = true;
        kbd.scancodeSet = 2;
        this.reply(KBD_ACK);
        this.reply(KBD_BAT_PASSED);
        return;
      default:
        // 0xf7-0xfe (set-3 key types, resend) are acknowledged; anything below 0xed is not a command.
        this.reply(byte >= KBD_SET_LEDS ? KBD_ACK : KBD_NAK);
        return;
    }
  }

  /** A controller or keyboard reply (keyboard-side, IRQ1). */
  private reply(byte: number): void {
    this.enqueue(byte, false);
  }

  private enqueue(byte: number, aux: boolean): void {
    if (this.state.queue.length < QUEUE_LIMIT) this.state.queue.push([byte & 0xff, aux]);
  }

  private updateIrqs(): void {
    const head = this.state.queue[0];
    const ctr = this.state.ram[0]!;
    const l1 = head !== undefined && !head[1] && (ctr & CTR_KBD_INT) !== 0;
    const l12 = head !== undefined && head[1] && (ctr & CTR_AUX_INT) !== 0;
    this.setIrqs(l1, l12);
  }

  private setIrqs(l1: boolean, l12: boolean): void {
    if (l1 !== this.irq1Level) {
      this.irq1Level = l1;
      this.irq1?.set(l1);
    }
    if (l12 !== this.irq12Level) {
      this.irq12Level = l12;
      this.irq12?.set(l12);
    }
  }

  // ---- snapshot ----

  getState(): I8042State {
    return structuredClone(this.state);
  }

  restore(state: I8042State): void {
    this.state = structuredClone(state);
    // Re-drive both lines unconditionally: the board's lines may not be at the saved levels.
    const head = this.state.queue[0];
    const ctr = this.state.ram[0]!;
    this.irq1Level = head !== undefined && !head[1] && (ctr & CTR_KBD_INT) !== 0;
    this.irq12Level = head !== undefined && head[1] && (ctr & CTR_AUX_INT) !== 0;
    this.irq1?.set(this.irq1Level);
    this.irq12?.set(this.irq12Level);
  }
}
