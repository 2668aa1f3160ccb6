/**
 * virtio-console (virtio 1.2 §5.3) with VIRTIO_CONSOLE_F_MULTIPORT: port 0 is the guest's
 * console (Linux's hvc0) and further ports are named byte channels (Linux's /dev/vportNpM,
 * with the name in sysfs), e.g. one for a host agent.
 *
 * Queues: port 0 receive/transmit are 0 and 1, the control receive/transmit queues 2 and 3,
 * port n >= 1 uses 2(n+1) and 2(n+1)+1 (§5.3.2). Control messages are
 * { le32 id, le16 event, le16 value } (+ the name for PORT_NAME) (§5.3.6.2). The handshake:
 *   driver DEVICE_READY(1) -> device DEVICE_ADD(id) for each port
 *   driver PORT_READY(id, 1) -> device CONSOLE_PORT(0, 1) for port 0, PORT_NAME(id) for a named
 *                               port, PORT_OPEN(id, 1) when the host side is open
 *   driver PORT_OPEN(id, 0/1) when a guest program opens or closes the port (the console
 *                             driver opens port 0 itself)
 * Without MULTIPORT negotiated only port 0 exists, as the console, and it is open.
 *
 * Host side, per port (ConsolePort):
 * - Guest output goes to `output(bytes)` synchronously; the bytes are a view of guest memory,
 *   valid only during the call (copy to keep them). A port without `outputRoom` never holds
 *   output back (what port 0 needs: Linux's hvc busy-waits for each console write to be
 *   consumed). A port with it is flow-controlled: a transmit buffer the host has no room for
 *   stays in the queue, so the guest's writes wait as on a full pipe (Linux's port write blocks
 *   when no transmit buffer comes back), until the host calls `outputSpaceFreed()`.
 * - Host input goes through `input(bytes)`, which takes at most the free space of a bounded
 *   per-port buffer and returns how many bytes it took; nothing is dropped. The buffer drains
 *   into receive buffers the guest posts, and only while the guest has the port open (Linux
 *   discards data that reaches a port it has not opened). When space frees after input() took
 *   less than offered, `onInputSpace()` says so: the host's cue to offer the rest.
 *
 * Malformed traffic: a transmit or control-transmit chain with device-writable buffers, a
 * receive chain with device-readable ones, or a control buffer too small for a message is
 * DEVICE_NEEDS_RESET. Control messages for unknown ports or of unknown events are counted and
 * ignored. Every control message the device owes the driver is generated at most once per
 * handshake (PORT_OPEN changes replace a pending one), so the pending list stays bounded
 * whatever the driver does.
 */
import { TsvmmError } from '../../common/errors.js';
import { VIRTIO_ID_CONSOLE, featureBit, readConfigBytes, type VirtioDevice, type VirtioLink } from './device.js';
import { QueueFault, copyFromSegments, copyToSegments, type SplitQueue } from './queue.js';

// Feature bits (§5.3.3).
export const VIRTIO_CONSOLE_F_SIZE = 0n;
export const VIRTIO_CONSOLE_F_MULTIPORT = 1n;
export const VIRTIO_CONSOLE_F_EMERG_WRITE = 2n;

// Control events (§5.3.6.2).
export const VIRTIO_CONSOLE_DEVICE_READY = 0;
export const VIRTIO_CONSOLE_DEVICE_ADD = 1;
export const VIRTIO_CONSOLE_DEVICE_REMOVE = 2;
export const VIRTIO_CONSOLE_PORT_READY = 3;
export const VIRTIO_CONSOLE_CONSOLE_PORT = 4;
export const VIRTIO_CONSOLE_RESIZE = 5;
export const VIRTIO_CONSOLE_PORT_OPEN = 6;
export const VIRTIO_CONSOLE_PORT_NAME = 7;

export const CONSOLE_QUEUE_SIZE = 128;
export const CONSOLE_CONTROL_RX = 2;
export const CONSOLE_CONTROL_TX = 3;
/** Default bytes of host input buffered per port. */
export const CONSOLE_INPUT_LIMIT = 64 * 1024;
const CONTROL_SIZE = 8;
const MAX_NAME_BYTES = 255;
const MAX_PORTS = 31;

// Configuration space (struct virtio_console_config, §5.3.4).
const CFG_MAX_NR_PORTS = 4;
const CFG_SIZE = 12;

/** The receive queue of a port (its transmit queue is the next one). */
export function consoleRxQueue(port: number): number {
  return port === 0 ? 0 : 2 * (port + 1);
}

export interface ConsolePortOptions {
  /** The name the guest sees (PORT_NAME), e.g. "org.tsvmm.agent"; port 0 usually has none. */
  name?: string;
  /** Guest output; `bytes` is valid only during the call. */
  output?: (bytes: Uint8Array) => void;
  /**
   * Flow control for guest output: whether output() takes `bytes` more bytes now. When it says
   * no, the transmit buffer waits in the queue until the host calls the port's
   * outputSpaceFreed() (which it must do once room has been made after a no).
   */
  outputRoom?: (bytes: number) => boolean;
  /** The guest opened (true) or closed (false) the port. */
  onGuestOpen?: (open: boolean) => void;
  /** Input space freed after input() took less than it was offered. */
  onInputSpace?: () => void;
  /** Bytes of host input buffered (default CONSOLE_INPUT_LIMIT). */
  inputLimit?: number;
  /** Whether the host side starts open (default true). */
  hostOpen?: boolean;
}

/** A port's migratable state. */
export interface ConsolePortState {
  ready: boolean;
  guestOpen: boolean;
  hostOpen: boolean;
  /** Host input taken and not yet delivered, base64. */
  input: string;
  bytesIn: number;
  bytesOut: number;
}

/** The console's migratable state (its queues are the transport's). */
export interface VirtioConsoleState {
  multiport: boolean;
  deviceReady: boolean;
  /** Control messages owed to the driver, oldest first, each base64. */
  controlOut: { id: number; event: number; bytes: string }[];
  ports: ConsolePortState[];
}

const corrupt = (what: string): never => {
  throw new TsvmmError('TSVMM_SNAPSHOT_CORRUPT', `virtio-console: ${what}`);
};
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
function fromBase64(v: unknown, max: number, what: string): Uint8Array {
  if (typeof v !== 'string' || v.length > Math.ceil(max / 3) * 4 + 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) return corrupt(`${what} is not base64 of at most ${max} bytes`);
  const b = Buffer.from(v, 'base64');
  if (b.length > max) corrupt(`${what} holds ${b.length} bytes, more than ${max}`);
  return new Uint8Array(b);
}

/** One port's host side. */
export class ConsolePort {
  /** Bytes of guest output delivered. */
  bytesOut = 0;
  /** Bytes of host input delivered to the guest. */
  bytesIn = 0;
  /** The guest has the port open (PORT_OPEN 1 from the driver). */
  guestOpen = false;
  /** The driver acknowledged the port (PORT_READY 1). */
  ready = false;
  private hostIsOpen: boolean;
  private readonly fifo: Uint8Array;
  private head = 0; // next byte to deliver
  private count = 0;
  private starved = false; // input() took less than it was offered since space last freed
  private outputHeld = false; // a transmit buffer waits for outputSpaceFreed()

  constructor(
    readonly id: number,
    private readonly opts: ConsolePortOptions,
    private readonly owner: VirtioConsole,
  ) {
    const limit = opts.inputLimit ?? CONSOLE_INPUT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`console port input limit ${limit} must be a positive integer`);
    this.fifo = new Uint8Array(limit);
    this.hostIsOpen = opts.hostOpen ?? true;
  }

  get name(): string | undefined {
    return this.opts.name;
  }

  get hostOpen(): boolean {
    return this.hostIsOpen;
  }

  /** Bytes input() would take now. */
  get inputSpace(): number {
    return this.fifo.length - this.count;
  }

  /** Bytes taken by input() and not yet delivered to the guest. */
  get inputPending(): number {
    return this.count;
  }

  /** Queues host input for the guest; returns how many bytes were taken (the rest: try again after onInputSpace). */
  input(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.inputSpace);
    if (n < bytes.length) this.starved = true;
    const size = this.fifo.length;
    const tail = (this.head + this.count) % size;
    const first = Math.min(n, size - tail);
    this.fifo.set(bytes.subarray(0, first), tail);
    this.fifo.set(bytes.subarray(first, n), 0);
    this.count += n;
    if (n > 0) this.owner.deliverInput(this);
    return n;
  }

  /** Opens or closes the host side; the guest is told with PORT_OPEN. */
  setHostOpen(open: boolean): void {
    if (open === this.hostIsOpen) return;
    this.hostIsOpen = open;
    this.owner.hostOpenChanged(this);
  }

  /** Moves buffered input into `queue`'s receive buffers; returns false on a malformed chain. */
  drainInto(queue: SplitQueue, link: VirtioLink): boolean {
    let moved = false;
    while (this.count > 0) {
      const chain = queue.pop();
      if (chain === null) break;
      if (chain instanceof QueueFault) {
        link.fail(chain);
        return false;
      }
      if (chain.readableLength > 0) {
        link.fail(`receive buffer at descriptor ${chain.head} of port ${this.id} is device-readable`);
        return false;
      }
      const n = Math.min(this.count, chain.writableLength);
      const first = Math.min(n, this.fifo.length - this.head);
      copyToSegments(chain.writable, 0, this.fifo.subarray(this.head, this.head + first));
      copyToSegments(chain.writable, first, this.fifo.subarray(0, n - first));
      this.head = (this.head + n) % this.fifo.length;
      this.count -= n;
      this.bytesIn += n;
      queue.push(chain.head, n);
      moved = true;
    }
    if (moved && this.starved) {
      this.starved = false;
      this.opts.onInputSpace?.();
    }
    return true;
  }

  /** Whether the host takes `bytes` of output now; a no holds the port's output until outputSpaceFreed(). */
  outputFits(bytes: number): boolean {
    const room = this.opts.outputRoom;
    if (room === undefined || room(bytes)) return true;
    this.outputHeld = true;
    return false;
  }

  /** The host made room for output after outputRoom said no: the transmit buffers waiting move on. */
  outputSpaceFreed(): void {
    if (!this.outputHeld) return;
    this.outputHeld = false;
    this.owner.resumeOutput(this);
  }

  /** A transmit buffer waits for room on the host side. */
  get outputWaiting(): boolean {
    return this.outputHeld;
  }

  /** Hands guest output to the host. */
  emit(bytes: Uint8Array): void {
    this.bytesOut += bytes.length;
    this.opts.output?.(bytes);
  }

  setGuestOpen(open: boolean): void {
    if (open === this.guestOpen) return;
    this.guestOpen = open;
    this.opts.onGuestOpen?.(open);
  }

  getState(): ConsolePortState {
    const pending = new Uint8Array(this.count);
    const first = Math.min(this.count, this.fifo.length - this.head);
    pending.set(this.fifo.subarray(this.head, this.head + first));
    pending.set(this.fifo.subarray(0, this.count - first), first);
    return { ready: this.ready, guestOpen: this.guestOpen, hostOpen: this.hostIsOpen, input: Buffer.from(pending).toString('base64'), bytesIn: this.bytesIn, bytesOut: this.bytesOut };
  }

  restore(s: ConsolePortState): void {
    if (typeof s !== 'object' || s === null || typeof s.ready !== 'boolean' || typeof s.guestOpen !== 'boolean' || typeof s.hostOpen !== 'boolean' || !isCount(s.bytesIn) || !isCount(s.bytesOut)) {
      corrupt(`port ${this.id}'s state is malformed`);
    }
    const input = fromBase64(s.input, this.fifo.length, `port ${this.id}'s pending input`);
    this.ready = s.ready;
    this.setGuestOpen(s.guestOpen);
    this.hostIsOpen = s.hostOpen;
    this.fifo.set(input);
    this.head = 0;
    this.count = input.length;
    this.starved = false;
    this.bytesIn = s.bytesIn;
    this.bytesOut = s.bytesOut;
  }
}

export interface VirtioConsoleOptions {
  /** The ports, port 0 first (the console). At least one, at most 31. */
  ports: ConsolePortOptions[];
}

/** Driver misbehaviour the device met. */
export interface VirtioConsoleCounters {
  badControl: number; // control messages too short, for unknown ports, or of unknown events
}

export class VirtioConsole implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_CONSOLE;
  readonly features = featureBit(VIRTIO_CONSOLE_F_MULTIPORT);
  readonly queueMaxSizes: readonly number[];
  readonly ports: readonly ConsolePort[];
  readonly counters: VirtioConsoleCounters = { badControl: 0 };
  private readonly config = new Uint8Array(CFG_SIZE);
  private link: VirtioLink | null = null;
  private multiport = false;
  private deviceReady = false;
  /** Control messages owed to the driver, oldest first. */
  private readonly controlOut: { id: number; event: number; bytes: Uint8Array }[] = [];
  private readonly message = new Uint8Array(CONTROL_SIZE);

  constructor(opts: VirtioConsoleOptions) {
    if (opts.ports.length < 1 || opts.ports.length > MAX_PORTS) throw new RangeError(`a console has 1 to ${MAX_PORTS} ports, not ${opts.ports.length}`);
    this.ports = opts.ports.map((p, i) => new ConsolePort(i, p, this));
    this.queueMaxSizes = Array.from({ length: 2 * (opts.ports.length + 1) }, () => CONSOLE_QUEUE_SIZE);
    new DataView(this.config.buffer).setUint32(CFG_MAX_NR_PORTS, opts.ports.length, true);
    for (const p of this.ports) {
      if (p.name !== undefined && new TextEncoder().encode(p.name).length > MAX_NAME_BYTES) throw new RangeError(`console port name ${p.name} is longer than ${MAX_NAME_BYTES} bytes`);
    }
  }

  port(id: number): ConsolePort {
    const p = this.ports[id];
    if (!p) throw new RangeError(`console port ${id} does not exist`);
    return p;
  }

  readConfig(offset: number, data: Uint8Array): void {
    readConfigBytes(this.config, offset, data);
  }

  writeConfig(): void {} // emerg_wr is not offered

  activate(link: VirtioLink): void {
    this.link = link;
    this.multiport = link.hasFeature(VIRTIO_CONSOLE_F_MULTIPORT);
    if (!this.multiport) {
      this.ports[0]!.ready = true;
      this.ports[0]!.setGuestOpen(true);
    }
  }

  reset(): void {
    this.link = null;
    this.multiport = false;
    this.deviceReady = false;
    this.controlOut.length = 0;
    for (const p of this.ports) {
      p.ready = false;
      p.setGuestOpen(false);
    }
  }

  notify(index: number): void {
    const link = this.link;
    const queue = link?.queue(index);
    if (!link || !queue) return;
    if (index === CONSOLE_CONTROL_RX || index === CONSOLE_CONTROL_TX) {
      if (!this.multiport) return;
      if (index === CONSOLE_CONTROL_TX) this.readControl(link, queue);
      this.flushControl();
      return;
    }
    const port = this.ports[index < 2 ? 0 : (index >> 1) - 1];
    if (!port || (!this.multiport && port.id !== 0)) return;
    if (index & 1) this.readOutput(link, queue, port);
    else this.deliverInput(port);
  }

  /** Called by a port when it has input: delivers what the guest has room for. */
  deliverInput(port: ConsolePort): void {
    const link = this.link;
    if (!link || !port.guestOpen) return;
    const queue = link.queue(consoleRxQueue(port.id));
    if (!queue) return;
    if (port.drainInto(queue, link)) link.usedBuffers(consoleRxQueue(port.id));
  }

  /** Called by a port whose host side opened or closed. */
  hostOpenChanged(port: ConsolePort): void {
    if (!this.link || !this.multiport || !port.ready) return;
    this.queueControl(port.id, VIRTIO_CONSOLE_PORT_OPEN, port.hostOpen ? 1 : 0);
    this.flushControl();
  }

  /** Called by a flow-controlled port when the host has made room: takes the transmit buffers that waited. */
  resumeOutput(port: ConsolePort): void {
    const link = this.link;
    const queue = link?.queue(consoleRxQueue(port.id) + 1);
    if (!link || !queue || (!this.multiport && port.id !== 0)) return;
    this.readOutput(link, queue, port);
  }

  private readOutput(link: VirtioLink, queue: SplitQueue, port: ConsolePort): void {
    for (;;) {
      const chain = queue.pop();
      if (chain === null) break;
      if (chain instanceof QueueFault) {
        link.fail(chain);
        return;
      }
      if (chain.writableLength > 0) {
        link.fail(`transmit buffer at descriptor ${chain.head} of port ${port.id} is device-writable`);
        return;
      }
      if (!port.outputFits(chain.readableLength)) {
        queue.unpop(); // taken again at outputSpaceFreed()
        break;
      }
      for (const b of chain.readable) port.emit(b);
      queue.push(chain.head, 0);
    }
    link.usedBuffers(consoleRxQueue(port.id) + 1);
  }

  private readControl(link: VirtioLink, queue: SplitQueue): void {
    const v = new DataView(this.message.buffer);
    for (;;) {
      const chain = queue.pop();
      if (chain === null) break;
      if (chain instanceof QueueFault) {
        link.fail(chain);
        return;
      }
      if (chain.writableLength > 0) {
        link.fail(`control message at descriptor ${chain.head} is device-writable`);
        return;
      }
      if (copyFromSegments(chain.readable, 0, this.message) < CONTROL_SIZE) this.counters.badControl++;
      else this.handleControl(v.getUint32(0, true), v.getUint16(4, true), v.getUint16(6, true));
      queue.push(chain.head, 0);
    }
    link.usedBuffers(CONSOLE_CONTROL_TX);
  }

  private handleControl(id: number, event: number, value: number): void {
    if (event === VIRTIO_CONSOLE_DEVICE_READY) {
      if (value !== 1 || this.deviceReady) return; // 0: the driver failed to set up; nothing to send
      this.deviceReady = true;
      for (const p of this.ports) this.queueControl(p.id, VIRTIO_CONSOLE_DEVICE_ADD, 1);
      return;
    }
    const port = this.ports[id];
    if (!port) {
      this.counters.badControl++;
      return;
    }
    switch (event) {
      case VIRTIO_CONSOLE_PORT_READY:
        if (value !== 1 || port.ready) return;
        port.ready = true;
        if (port.id === 0) this.queueControl(0, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
        if (port.name !== undefined) this.queueControl(port.id, VIRTIO_CONSOLE_PORT_NAME, 0, new TextEncoder().encode(port.name));
        if (port.hostOpen) this.queueControl(port.id, VIRTIO_CONSOLE_PORT_OPEN, 1);
        return;
      case VIRTIO_CONSOLE_PORT_OPEN:
        port.setGuestOpen(value !== 0);
        if (port.guestOpen) this.deliverInput(port);
        return;
      default:
        this.counters.badControl++;
    }
  }

  private queueControl(id: number, event: number, value: number, extra?: Uint8Array): void {
    const bytes = new Uint8Array(CONTROL_SIZE + (extra?.length ?? 0));
    const v = new DataView(bytes.buffer);
    v.setUint32(0, id, true);
    v.setUint16(4, event, true);
    v.setUint16(6, value, true);
    if (extra) bytes.set(extra, CONTROL_SIZE);
    if (event === VIRTIO_CONSOLE_PORT_OPEN) {
      const pending = this.controlOut.findIndex((m) => m.id === id && m.event === event);
      if (pending >= 0) this.controlOut.splice(pending, 1);
    }
    this.controlOut.push({ id, event, bytes });
  }

  // ---- snapshot ----

  getState(): VirtioConsoleState {
    return {
      multiport: this.multiport, deviceReady: this.deviceReady,
      controlOut: this.controlOut.map((m) => ({ id: m.id, event: m.event, bytes: Buffer.from(m.bytes).toString('base64') })),
      ports: this.ports.map((p) => p.getState()),
    };
  }

  /** After the transport activated the device again (if the driver had): the handshake's state, the ports' pending input. */
  restore(state: unknown): void {
    const s = state as VirtioConsoleState;
    if (typeof s !== 'object' || s === null || typeof s.multiport !== 'boolean' || typeof s.deviceReady !== 'boolean') corrupt('the state is malformed');
    if (!Array.isArray(s.ports) || s.ports.length !== this.ports.length) corrupt(`${Array.isArray(s.ports) ? s.ports.length : 'no'} ports saved for ${this.ports.length}`);
    // Bounded as queueControl bounds it: a few messages per port and handshake.
    if (!Array.isArray(s.controlOut) || s.controlOut.length > 4 * (this.ports.length + 1)) corrupt('the pending control messages are malformed or too many');
    const controlOut = s.controlOut.map((m, i) => {
      if (typeof m !== 'object' || m === null || !isCount(m.id) || !isCount(m.event)) corrupt(`pending control message ${i} is malformed`);
      const bytes = fromBase64(m.bytes, CONTROL_SIZE + MAX_NAME_BYTES, `pending control message ${i}`);
      if (bytes.length < CONTROL_SIZE) corrupt(`pending control message ${i} is shorter than ${CONTROL_SIZE} bytes`);
      return { id: m.id, event: m.event, bytes };
    });
    this.multiport = s.multiport;
    this.deviceReady = s.deviceReady;
    this.controlOut.length = 0;
    this.controlOut.push(...controlOut);
    this.ports.forEach((p, i) => p.restore(s.ports[i]!));
  }

  /** Sends pending control messages into the driver's control receive buffers. */
  private flushControl(): void {
    const link = this.link;
    const queue = link?.queue(CONSOLE_CONTROL_RX);
    if (!link || !queue || this.controlOut.length === 0) return;
    let sent = false;
    while (this.controlOut.length > 0) {
      const chain = queue.pop();
      if (chain === null) break;
      if (chain instanceof QueueFault) {
        link.fail(chain);
        return;
      }
      const msg = this.controlOut[0]!.bytes;
      if (chain.readableLength > 0 || chain.writableLength < msg.length) {
        link.fail(`control receive buffer at descriptor ${chain.head} is device-readable or shorter than a ${msg.length}-byte message`);
        return;
      }
      copyToSegments(chain.writable, 0, msg);
      queue.push(chain.head, msg.length);
      this.controlOut.shift();
      sent = true;
    }
    if (sent) link.usedBuffers(CONSOLE_CONTROL_RX);
  }
}
