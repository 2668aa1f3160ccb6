/**
 * Frames between threads: the NIC's device lives on the boot vCPU's thread, whose run loop
 * never yields to its event loop, while a backend (passt's socket, a TAP's poll) needs an event
 * loop: the main thread's. A FrameRing is a single-producer, single-consumer ring of frames in a
 * SharedArrayBuffer, and two of them make a wire:
 *
 *   main thread                                      vCPU thread (the board)
 *   NetBackend <-> NetBridgeHost == rings ==> RingNetBackend <-> VirtioNet
 *                    (event loop)       kick() ->  poll() on the kick
 *
 * - Guest to host: the device's send() pushes into `toHost`; the host side waits on it
 *   (Atomics.waitAsync) and hands the frames to the backend, pausing while the backend is full.
 *   The device side keeps room for one more frame of NET_MAX_FRAME: when less is left, send()
 *   returns false and raises WAITING; the host side, once it has made that much room, sees
 *   WAITING and kicks, and poll() says writable() to the device. Nothing is dropped on this path.
 * - Host to guest: the host side pushes each received frame into `toGuest`, and kicks the vCPU
 *   unless a kick is already pending (KICK_PENDING); poll() clears KICK_PENDING first, then
 *   drains, so no frame waits for a kick that will not come. A full ring drops the frame and
 *   counts it, as the device drops when the guest posts no buffers.
 * - The backend ending (closed()) sets CLOSED and kicks; poll() tells the device once.
 * `kick` is the board's business (it interrupts vcpu.run(), as console input does).
 *
 * Records are a 4-byte little-endian length and the frame, wrapping at the end of the ring;
 * positions are free-running 32-bit counters. Both sides are this process's own code.
 */
import { NET_MAX_FRAME, type NetBackend, type NetReceiver } from './net-backend.js';

const HEAD = 0; // next byte to read (consumer-owned)
const TAIL = 1; // next byte to write (producer-owned)
const WAITING = 2; // the producer found too little room and wants to hear when there is more
const KICK_PENDING = 3; // toGuest: a kick was sent and poll() has not started draining since
const CLOSED = 4; // toGuest: the host's backend ended
const HEADER_INTS = 8;
const LENGTH_BYTES = 4;
/** Room for one largest record. */
const RECORD_MAX = LENGTH_BYTES + NET_MAX_FRAME;
/** Default capacity of each ring: room for 16 largest frames, or hundreds of ordinary ones. */
export const FRAME_RING_BYTES = 1 << 20;

export class FrameRing {
  readonly buffer: SharedArrayBuffer;
  readonly header: Int32Array;
  private readonly data: Uint8Array;
  private readonly mask: number;
  private readonly lengthBytes = new Uint8Array(LENGTH_BYTES);

  /** A new ring of `capacity` bytes (a power of two, room for at least two largest frames), or a view of an existing ring's buffer. */
  constructor(bufferOrCapacity: SharedArrayBuffer | number = FRAME_RING_BYTES) {
    this.buffer = typeof bufferOrCapacity === 'number' ? new SharedArrayBuffer(HEADER_INTS * 4 + bufferOrCapacity) : bufferOrCapacity;
    this.header = new Int32Array(this.buffer, 0, HEADER_INTS);
    this.data = new Uint8Array(this.buffer, HEADER_INTS * 4);
    const capacity = this.data.length;
    if (capacity & (capacity - 1) || capacity < 2 * RECORD_MAX) throw new RangeError(`frame ring capacity ${capacity} is not a power of two of at least ${2 * RECORD_MAX}`);
    this.mask = capacity - 1;
  }

  get capacity(): number {
    return this.data.length;
  }

  /** Bytes in use (records and their lengths). */
  get used(): number {
    return (Atomics.load(this.header, TAIL) - Atomics.load(this.header, HEAD)) | 0;
  }

  get free(): number {
    return this.capacity - this.used;
  }

  get empty(): boolean {
    return this.used === 0;
  }

  private copyIn(at: number, bytes: Uint8Array): void {
    const start = at & this.mask;
    const first = Math.min(bytes.length, this.capacity - start);
    this.data.set(bytes.subarray(0, first), start);
    this.data.set(bytes.subarray(first), 0);
  }

  private copyOut(at: number, into: Uint8Array): void {
    const start = at & this.mask;
    const first = Math.min(into.length, this.capacity - start);
    into.set(this.data.subarray(start, start + first));
    into.set(this.data.subarray(0, into.length - first), first);
  }

  /** Producer: appends a frame (at most NET_MAX_FRAME bytes); false when it does not fit. */
  push(frame: Uint8Array): boolean {
    if (frame.length > NET_MAX_FRAME) throw new RangeError(`frame of ${frame.length} bytes is larger than ${NET_MAX_FRAME}`);
    const tail = Atomics.load(this.header, TAIL);
    if (LENGTH_BYTES + frame.length > this.capacity - ((tail - Atomics.load(this.header, HEAD)) | 0)) return false;
    new DataView(this.lengthBytes.buffer).setUint32(0, frame.length, true);
    this.copyIn(tail, this.lengthBytes);
    this.copyIn(tail + LENGTH_BYTES, frame);
    Atomics.store(this.header, TAIL, (tail + LENGTH_BYTES + frame.length) | 0);
    Atomics.notify(this.header, TAIL);
    return true;
  }

  /** Consumer: takes the oldest frame into `into` (NET_MAX_FRAME bytes at least); its length, or -1 when empty. */
  shift(into: Uint8Array): number {
    const head = Atomics.load(this.header, HEAD);
    if (head === Atomics.load(this.header, TAIL)) return -1;
    this.copyOut(head, this.lengthBytes);
    const length = new DataView(this.lengthBytes.buffer).getUint32(0, true);
    this.copyOut(head + LENGTH_BYTES, into.subarray(0, length));
    Atomics.store(this.header, HEAD, (head + LENGTH_BYTES + length) | 0);
    Atomics.notify(this.header, HEAD);
    return length;
  }

  /** Consumer on an event loop: resolves when the ring holds a frame (at once if it does), or at wake(). */
  async whenReadable(): Promise<void> {
    const tail = Atomics.load(this.header, TAIL);
    if (tail !== Atomics.load(this.header, HEAD)) return;
    const r = Atomics.waitAsync(this.header, TAIL, tail);
    if (r.async) await r.value;
  }

  /** Wakes a consumer waiting in whenReadable() without a frame (to make it look at its own state). */
  wake(): void {
    Atomics.notify(this.header, TAIL);
  }
}

/** Bytes the two rings of one NIC share, to create them on one side and view them on the other. */
export interface NetRings {
  toHost: SharedArrayBuffer;
  toGuest: SharedArrayBuffer;
}

export function createNetRings(capacity = FRAME_RING_BYTES): NetRings {
  return { toHost: new FrameRing(capacity).buffer, toGuest: new FrameRing(capacity).buffer };
}

/** The device's side of the wire: a NetBackend on the vCPU thread; the board calls poll() when kicked. */
export class RingNetBackend implements NetBackend {
  readonly description: string;
  private readonly toHost: FrameRing;
  private readonly toGuest: FrameRing;
  private receiver: NetReceiver | null = null;
  private blocked = false;
  private ended = false;
  private readonly frame = new Uint8Array(NET_MAX_FRAME);

  constructor(rings: NetRings, description = 'host network') {
    this.toHost = new FrameRing(rings.toHost);
    this.toGuest = new FrameRing(rings.toGuest);
    this.description = description;
  }

  attach(receiver: NetReceiver): void {
    this.receiver = receiver;
  }

  send(frame: Uint8Array): boolean {
    if (this.ended) return true;
    if (!this.toHost.push(frame)) throw new Error('frame ring full: send() after it returned false'); // a bug in the caller
    if (this.toHost.free >= RECORD_MAX) return true;
    Atomics.store(this.toHost.header, WAITING, 1);
    if (this.toHost.free >= RECORD_MAX) return true; // room made between the look and WAITING: the host may or may not kick
    this.blocked = true;
    return false;
  }

  /** Takes what the host side left: received frames, room to send again, the end. Call it when kicked. */
  poll(): void {
    if (this.ended) return;
    Atomics.store(this.toGuest.header, KICK_PENDING, 0);
    for (let n = this.toGuest.shift(this.frame); n >= 0; n = this.toGuest.shift(this.frame)) {
      this.receiver?.frame(this.frame.subarray(0, n));
    }
    if (this.blocked && this.toHost.free >= RECORD_MAX) {
      this.blocked = false;
      this.receiver?.writable();
    }
    if (Atomics.load(this.toGuest.header, CLOSED) !== 0) {
      this.ended = true;
      this.receiver?.closed('the host side of the network ended');
    }
  }

  /** The device side lets go (the host side owns the backend and closes it). */
  async close(): Promise<void> {
    this.ended = true;
  }
}

/** Counters of the host side. */
export interface NetBridgeCounters {
  toGuest: number;
  toHost: number;
  /** Frames from the backend dropped: the ring to the guest was full, or they were longer than NET_MAX_FRAME. */
  dropped: number;
}

/** The host's side of the wire: moves frames between a backend and the rings, on the main thread's event loop. */
export class NetBridgeHost {
  readonly counters: NetBridgeCounters = { toGuest: 0, toHost: 0, dropped: 0 };
  private readonly toHost: FrameRing;
  private readonly toGuest: FrameRing;
  private readonly frame = new Uint8Array(NET_MAX_FRAME);
  private backendFull = false;
  private stopped = false;
  private readonly done: Promise<void>;

  /** `kick` makes the vCPU thread call its RingNetBackend's poll() soon; `onClosed` hears why the backend ended. */
  constructor(
    private readonly backend: NetBackend,
    rings: NetRings,
    private readonly kick: () => void,
    private readonly onClosed: (reason: string | null) => void = () => {},
  ) {
    this.toHost = new FrameRing(rings.toHost);
    this.toGuest = new FrameRing(rings.toGuest);
    backend.attach({
      frame: (f) => this.toGuestFrame(f),
      writable: () => {
        this.backendFull = false;
        this.toHost.wake();
      },
      closed: (reason) => {
        Atomics.store(this.toGuest.header, CLOSED, 1);
        this.kick();
        this.stop();
        this.onClosed(reason);
      },
    });
    this.done = this.pump();
  }

  private toGuestFrame(f: Uint8Array): void {
    if (f.length > NET_MAX_FRAME || !this.toGuest.push(f)) {
      this.counters.dropped++;
      return;
    }
    this.counters.toGuest++;
    if (Atomics.exchange(this.toGuest.header, KICK_PENDING, 1) === 0) this.kick();
  }

  /** Guest frames to the backend, as fast as it takes them. */
  private async pump(): Promise<void> {
    while (!this.stopped) {
      while (!this.backendFull && !this.stopped) {
        const n = this.toHost.shift(this.frame);
        if (n < 0) break;
        this.counters.toHost++;
        if (!this.backend.send(this.frame.subarray(0, n))) this.backendFull = true;
      }
      // The device waits for room for a largest frame: kick once there is that much (not before,
      // or the kick would find too little and WAITING would be spent).
      if (this.toHost.free >= RECORD_MAX && Atomics.exchange(this.toHost.header, WAITING, 0) !== 0) this.kick();
      if (this.stopped) break;
      if (this.backendFull) await this.whileFull();
      else await this.toHost.whenReadable();
    }
  }

  /** Waits for the backend's writable() (which wakes the ring) or the end. */
  private async whileFull(): Promise<void> {
    while (this.backendFull && !this.stopped) {
      const tail = Atomics.load(this.toHost.header, TAIL);
      const r = Atomics.waitAsync(this.toHost.header, TAIL, tail);
      if (r.async) await r.value;
    }
  }

  /** Stops moving frames (the backend stays open: its owner closes it). */
  stop(): Promise<void> {
    this.stopped = true;
    this.toHost.wake();
    return this.done;
  }
}
