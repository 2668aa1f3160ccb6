/**
 * Ethernet frames over a byte stream, as passt speaks to QEMU (QEMU's `-netdev stream`): each
 * frame is preceded by its length, 4 bytes big-endian. StreamNetBackend is a NetBackend over
 * any such Node stream socket (passt.ts hands it one end of a socket pair).
 *
 * The peer is trusted no more than a guest: a length above NET_MAX_FRAME is a protocol error
 * that ends the connection, decided from the 4 length bytes before anything is allocated; a
 * frame is gathered in one reused buffer of NET_MAX_FRAME bytes (or delivered straight from the
 * chunk that holds it whole), so reading costs bounded memory whatever the peer sends.
 *
 * Writing: `send()` queues the length and the frame on the socket and returns false once Node's
 * buffer is above its high-water mark; the socket's 'drain' is the receiver's `writable()`. At
 * most one frame past the mark is held, so a stalled peer costs bounded memory too.
 */
import type { Socket } from 'node:net';
import { NET_MAX_FRAME, type NetBackend, type NetReceiver } from './net-backend.js';

const LENGTH_BYTES = 4;

/** The bytes that carry `frame` on the stream: its length (big-endian), then the frame. */
export function encodeFrame(frame: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(LENGTH_BYTES + frame.length);
  out.writeUInt32BE(frame.length, 0);
  out.set(frame, LENGTH_BYTES);
  return out;
}

/** Splits a byte stream into frames; bounded memory whatever arrives. */
export class FrameDecoder {
  private readonly length = new Uint8Array(LENGTH_BYTES);
  private lengthFill = 0;
  /** The frame being gathered: its length, and how much of it has arrived (-1: reading a length). */
  private want = -1;
  private fill = 0;
  private readonly buffer: Uint8Array;

  /** `onFrame` gets each frame as a view valid only during the call. */
  constructor(private readonly onFrame: (frame: Uint8Array) => void, private readonly max = NET_MAX_FRAME) {
    this.buffer = new Uint8Array(max);
  }

  /** Bytes of a frame or length received but not yet delivered. */
  get partial(): number {
    return this.want < 0 ? this.lengthFill : LENGTH_BYTES + this.fill;
  }

  /** Takes the next chunk of the stream; returns an error message when the peer broke the framing (the stream is then unusable). */
  push(chunk: Uint8Array): string | null {
    let at = 0;
    while (at < chunk.length) {
      if (this.want < 0) {
        const n = Math.min(LENGTH_BYTES - this.lengthFill, chunk.length - at);
        this.length.set(chunk.subarray(at, at + n), this.lengthFill);
        this.lengthFill += n;
        at += n;
        if (this.lengthFill < LENGTH_BYTES) break;
        this.lengthFill = 0;
        const want = new DataView(this.length.buffer).getUint32(0, false);
        if (want > this.max) return `frame length ${want} from the peer is larger than ${this.max}`;
        this.want = want;
        this.fill = 0;
      }
      if (this.fill === 0 && chunk.length - at >= this.want) {
        this.onFrame(chunk.subarray(at, at + this.want)); // whole in this chunk: no copy
        at += this.want;
        this.want = -1;
        continue;
      }
      const n = Math.min(this.want - this.fill, chunk.length - at);
      this.buffer.set(chunk.subarray(at, at + n), this.fill);
      this.fill += n;
      at += n;
      if (this.fill === this.want) {
        this.onFrame(this.buffer.subarray(0, this.want));
        this.want = -1;
      }
    }
    return null;
  }
}

/** A NetBackend over a connected stream socket speaking the length-prefixed framing. */
export class StreamNetBackend implements NetBackend {
  private receiver: NetReceiver | null = null;
  private readonly decoder: FrameDecoder;
  private blocked = false;
  private ended = false;

  constructor(
    private readonly socket: Socket,
    readonly description: string,
  ) {
    this.decoder = new FrameDecoder((frame) => this.receiver?.frame(frame));
    socket.on('data', (chunk: Buffer) => {
      if (this.ended) return;
      const error = this.decoder.push(chunk);
      if (error !== null) this.end(error);
    });
    socket.on('drain', () => {
      if (!this.blocked || this.ended) return;
      this.blocked = false;
      this.receiver?.writable();
    });
    socket.on('error', (e) => this.end(`${description}: ${e.message}`));
    socket.on('close', () => this.end(`${description} closed the connection`));
  }

  attach(receiver: NetReceiver): void {
    this.receiver = receiver;
  }

  send(frame: Uint8Array): boolean {
    if (this.ended) return true; // dropped: the receiver was told the link is gone
    const below = this.socket.write(encodeFrame(frame));
    if (!below) this.blocked = true;
    return below;
  }

  /** Ends the connection (the receiver is told with closed(null)). */
  async close(): Promise<void> {
    this.end(null);
  }

  private end(reason: string | null): void {
    if (this.ended) return;
    this.ended = true;
    this.socket.destroy();
    this.receiver?.closed(reason);
  }
}
