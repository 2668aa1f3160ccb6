/**
 * The GDB remote protocol's framing (GDB manual, "Remote Protocol": Overview): `$data#cc`, where cc
 * is the sum of data's bytes modulo 256 in two hex digits; `}` escapes the next byte (XOR 0x20);
 * `X*n` repeats X n-29 more times (run-length encoding); `+`/`-` acknowledge; a lone 0x03 byte
 * outside a packet is the client's interrupt (Ctrl-C).
 *
 * Everything here is bounded: a packet longer than MAX_PACKET bytes (raw, or once expanded) is
 * dropped and answered with a NAK, whatever the client sends; bytes outside a packet are ignored.
 * Payloads are kept as binary strings (one char per byte, latin1), as the protocol is.
 */

/** The largest packet we accept and announce (qSupported PacketSize, in hex there). */
export const MAX_PACKET = 0x4000;

/** What the client sent, one event per frame. */
export type Incoming =
  | { kind: 'packet'; data: string }
  | { kind: 'interrupt' }
  | { kind: 'ack' }
  | { kind: 'nak' }
  /** A packet that could not be taken (bad checksum, too long, bad run length): answer with `-`. */
  | { kind: 'bad'; why: string };

const DOLLAR = 0x24, HASH = 0x23, ESCAPE = 0x7d, STAR = 0x2a, PLUS = 0x2b, MINUS = 0x2d, CTRL_C = 0x03;

const enum State { Idle, Data, Check1, Check2 }

/** A streaming parser: feed it the socket's bytes in any pieces; it returns the frames completed. */
export class PacketReader {
  private state = State.Idle;
  /** The raw bytes of the packet so far (escapes and run lengths not yet applied): raw[0, length). */
  private readonly raw = new Uint8Array(MAX_PACKET);
  private length = 0;
  private sum = 0;
  private check = 0;
  private tooLong = false;

  /** How many bytes of a partial packet it holds (at most MAX_PACKET). */
  get buffered(): number {
    return this.length;
  }

  feed(bytes: Uint8Array): Incoming[] {
    const out: Incoming[] = [];
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      switch (this.state) {
        case State.Idle:
          if (b === DOLLAR) this.begin();
          else if (b === CTRL_C) out.push({ kind: 'interrupt' });
          else if (b === PLUS) out.push({ kind: 'ack' });
          else if (b === MINUS) out.push({ kind: 'nak' });
          break; // anything else between packets is noise
        case State.Data:
          if (b === HASH) this.state = State.Check1;
          else if (b === DOLLAR) this.begin(); // a new packet before this one ended: the old one is lost
          else {
            this.sum = (this.sum + b) & 0xff;
            if (this.length < MAX_PACKET) this.raw[this.length++] = b;
            else this.tooLong = true;
          }
          break;
        case State.Check1:
          this.check = hexDigit(b) << 4;
          this.state = hexDigit(b) < 0 ? State.Idle : State.Check2;
          if (this.state === State.Idle) {
            this.length = 0;
            out.push({ kind: 'bad', why: 'bad checksum digit' });
          }
          break;
        case State.Check2: {
          this.state = State.Idle;
          const d = hexDigit(b);
          if (d < 0) out.push({ kind: 'bad', why: 'bad checksum digit' });
          else if ((this.check | d) !== this.sum) out.push({ kind: 'bad', why: `checksum 0x${(this.check | d).toString(16)}, computed 0x${this.sum.toString(16)}` });
          else if (this.tooLong) out.push({ kind: 'bad', why: `packet longer than ${MAX_PACKET} bytes` });
          else out.push(decodePayload(this.raw.subarray(0, this.length)));
          this.length = 0;
          break;
        }
      }
    }
    return out;
  }

  private begin(): void {
    this.state = State.Data;
    this.length = 0;
    this.sum = 0;
    this.tooLong = false;
  }
}

/** decodePayload's output, reused (it returns a string made from it). */
const expanded = new Uint8Array(MAX_PACKET);

/** Applies escapes and run lengths to a packet's raw bytes. */
function decodePayload(raw: Uint8Array): Incoming {
  const out = expanded;
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i]!;
    if (b === ESCAPE) {
      if (i + 1 >= raw.length) return { kind: 'bad', why: 'escape at the end of the packet' };
      out[n++] = raw[++i]! ^ 0x20;
    } else if (b === STAR) {
      if (n === 0 || i + 1 >= raw.length) return { kind: 'bad', why: 'run length without a byte to repeat' };
      const count = raw[++i]! - 29;
      if (count < 0) return { kind: 'bad', why: 'bad run length' };
      if (n + count > MAX_PACKET) return { kind: 'bad', why: `packet longer than ${MAX_PACKET} bytes once expanded` };
      out.fill(out[n - 1]!, n, n + count);
      n += count;
    } else out[n++] = b; // raw is at most MAX_PACKET bytes, so n stays within out
  }
  return { kind: 'packet', data: Buffer.from(out.buffer, 0, n).toString('latin1') };
}

function hexDigit(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x61 + 10;
  if (b >= 0x41 && b <= 0x46) return b - 0x41 + 10;
  return -1;
}

/** `$data#cc` with `$ # } *` escaped (the reply's data may be binary: qXfer). */
export function encodePacket(data: string): Uint8Array {
  const out: number[] = [DOLLAR];
  let sum = 0;
  const put = (b: number) => {
    out.push(b);
    sum = (sum + b) & 0xff;
  };
  for (let i = 0; i < data.length; i++) {
    const b = data.charCodeAt(i) & 0xff;
    if (b === DOLLAR || b === HASH || b === ESCAPE || b === STAR) {
      put(ESCAPE);
      put(b ^ 0x20);
    } else put(b);
  }
  out.push(HASH, ...Buffer.from(sum.toString(16).padStart(2, '0'), 'latin1'));
  return Uint8Array.from(out);
}

/** Bytes as lower-case hex. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Hex digits as bytes, or null when `hex` is not an even number of hex digits. */
export function fromHex(hex: string): Uint8Array | null {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return null;
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

/** A binary string (one char per byte) as bytes. */
export function binaryBytes(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s, 'latin1'));
}

/** A hex number of at most 16 digits as a bigint, or null. */
export function parseHex64(s: string): bigint | null {
  if (!/^[0-9a-fA-F]{1,16}$/.test(s)) return null;
  return BigInt(`0x${s}`);
}
