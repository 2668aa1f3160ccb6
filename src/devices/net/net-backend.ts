/**
 * The host side of a network card: what virtio-net (devices/virtio/virtio-net.ts) needs of the
 * network under it, so that passt (passt.ts), a TAP device (tap.ts) and an in-memory pair (here,
 * for tests) are interchangeable.
 *
 * A backend moves whole Ethernet frames (destination MAC first, no virtio header, no FCS), at
 * most NET_MAX_FRAME bytes each, both ways:
 * - Out (guest to host): `send(frame)`. The backend takes the frame, copying it if it keeps it
 *   past the call (the device passes views of guest RAM or a scratch buffer it reuses). It
 *   returns false when it holds as much as it will: the device then stops taking transmit
 *   buffers from the guest until the backend calls `writable()`, so the guest's transmit ring
 *   fills and its driver stops the queue. Nothing is buffered without bound on either side.
 * - In (host to guest): the backend calls `frame(bytes)` for each frame, with a view valid only
 *   during the call. The receiver never pushes back: a NIC with no room drops (the device counts
 *   it), and the protocols above retransmit.
 * - `closed(reason)` once, when the backend ends by itself (its peer went away, its child
 *   exited, a read failed); reason null for an orderly close(). No frames move after it.
 *
 * Backends are driven by the event loop of the thread that created them; the receiver's
 * callbacks run there.
 */

/** The largest Ethernet frame a virtio-net device carries: its largest receive buffer (65562 bytes, virtio 1.2 §5.1.6.3.1) less the 12-byte header. */
export const NET_MAX_FRAME = 65550;
/** Destination, source, EtherType: no frame is shorter. */
export const ETH_HLEN = 14;
/** The MTU a NIC has unless told otherwise (the device tells the guest, passt's DHCP says the same). */
export const NET_DEFAULT_MTU = 1500;

/** Where a backend delivers what it receives (the device, or a test). */
export interface NetReceiver {
  /** A frame from the host network; `frame` is valid only during the call. */
  frame(frame: Uint8Array): void;
  /** send() returned false earlier; the backend can take frames again. */
  writable(): void;
  /** The backend ended: null after close(), else why (it is already released). */
  closed(reason: string | null): void;
}

export interface NetBackend {
  /** What it is, for messages: "passt (pid 1234)", "tap tsvmm0". */
  readonly description: string;
  /** Sets where received frames and notices go (once; frames arriving before are dropped). */
  attach(receiver: NetReceiver): void;
  /** Takes one frame; false when it wants no more until `writable()`. Frames after close are dropped. */
  send(frame: Uint8Array): boolean;
  /** Ends the backend and releases what it holds (child process, descriptor, files). Idempotent. */
  close(): Promise<void>;
}

/**
 * Two ends of an in-memory wire, each a NetBackend: a frame sent on one is received by the
 * other (copied, synchronously). `limit` frames may be sent on an end before `drain()` is
 * called on it, which models a backend that fills up (for backpressure tests).
 */
export class MemoryNetBackend implements NetBackend {
  readonly description: string;
  /** Frames sent through this end, kept (copies) when `record` is set. */
  readonly sent: Uint8Array[] = [];
  private receiver: NetReceiver | null = null;
  private peer: MemoryNetBackend | null = null;
  private inFlight = 0;
  private full = false;
  private ended = false;
  private readonly limit: number;
  private readonly record: boolean;

  constructor(opts: { name?: string; limit?: number; record?: boolean } = {}) {
    this.description = `memory ${opts.name ?? 'wire'}`;
    this.limit = opts.limit ?? Infinity;
    this.record = opts.record ?? true;
  }

  /** A connected pair. */
  static pair(opts: { limit?: number; record?: boolean } = {}): [MemoryNetBackend, MemoryNetBackend] {
    const a = new MemoryNetBackend({ ...opts, name: 'a' });
    const b = new MemoryNetBackend({ ...opts, name: 'b' });
    a.peer = b;
    b.peer = a;
    return [a, b];
  }

  attach(receiver: NetReceiver): void {
    this.receiver = receiver;
  }

  /** Delivers a frame to this end's receiver as if it came from the network. */
  inject(frame: Uint8Array): void {
    if (!this.ended) this.receiver?.frame(frame);
  }

  send(frame: Uint8Array): boolean {
    if (this.ended) return true;
    if (this.record) this.sent.push(new Uint8Array(frame));
    this.peer?.inject(frame);
    this.inFlight++;
    if (this.inFlight >= this.limit) this.full = true;
    return !this.full;
  }

  /** The frames sent so far have left: room again (tells the receiver if send() had said no). */
  drain(): void {
    this.inFlight = 0;
    if (this.full) {
      this.full = false;
      this.receiver?.writable();
    }
  }

  /** Ends this end as if its peer had gone away. */
  fail(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.receiver?.closed(reason);
  }

  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.receiver?.closed(null);
  }
}
