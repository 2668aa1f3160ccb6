/**
 * A single-producer, single-consumer byte ring in a SharedArrayBuffer: how bytes cross between
 * a vCPU thread and the main thread without either blocking. The consumer can sleep on it
 * (Atomics.wait in a worker, Atomics.waitAsync on the main thread); the producer wakes it.
 */
const HEAD = 0; // next byte to read (consumer-owned)
const TAIL = 1; // next byte to write (producer-owned)
const DROPPED = 2; // bytes the producer dropped because the ring was full
const HEADER_INTS = 4;

export class ByteRing {
  readonly buffer: SharedArrayBuffer;
  private readonly header: Int32Array;
  private readonly data: Uint8Array;
  private readonly capacity: number;

  /** A new ring of `capacity` bytes (a power of two), or a view of an existing ring's buffer. */
  constructor(bufferOrCapacity: SharedArrayBuffer | number) {
    this.buffer = typeof bufferOrCapacity === 'number'
      ? new SharedArrayBuffer(HEADER_INTS * 4 + bufferOrCapacity)
      : bufferOrCapacity;
    this.header = new Int32Array(this.buffer, 0, HEADER_INTS);
    this.data = new Uint8Array(this.buffer, HEADER_INTS * 4);
    this.capacity = this.data.length;
    if (this.capacity & (this.capacity - 1)) throw new Error(`ring capacity ${this.capacity} is not a power of two`);
  }

  /** Bytes waiting to be read. */
  get length(): number {
    return (Atomics.load(this.header, TAIL) - Atomics.load(this.header, HEAD)) | 0;
  }

  get dropped(): number {
    return Atomics.load(this.header, DROPPED);
  }

  /** Producer: appends what fits, drops (and counts) the rest, wakes a sleeping consumer. Returns bytes written. */
  write(bytes: ArrayLike<number>): number {
    const tail = Atomics.load(this.header, TAIL);
    const free = this.capacity - ((tail - Atomics.load(this.header, HEAD)) | 0);
    const n = Math.min(free, bytes.length);
    for (let i = 0; i < n; i++) this.data[(tail + i) & (this.capacity - 1)] = bytes[i]!;
    if (n < bytes.length) Atomics.add(this.header, DROPPED, bytes.length - n);
    if (n > 0) {
      Atomics.store(this.header, TAIL, (tail + n) | 0);
      Atomics.notify(this.header, TAIL);
    }
    return n;
  }

  /** Producer: one byte (the UART's transmit path). */
  writeByte(byte: number): boolean {
    const tail = Atomics.load(this.header, TAIL);
    if (((tail - Atomics.load(this.header, HEAD)) | 0) >= this.capacity) {
      Atomics.add(this.header, DROPPED, 1);
      return false;
    }
    this.data[tail & (this.capacity - 1)] = byte;
    Atomics.store(this.header, TAIL, (tail + 1) | 0);
    Atomics.notify(this.header, TAIL);
    return true;
  }

  /** Consumer: takes up to `max` bytes. */
  read(max = Infinity): Uint8Array {
    const head = Atomics.load(this.header, HEAD);
    const n = Math.min(max, (Atomics.load(this.header, TAIL) - head) | 0);
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.data[(head + i) & (this.capacity - 1)]!;
    Atomics.store(this.header, HEAD, (head + n) | 0);
    return out;
  }

  /** Consumer: gives back up to `max` bytes without taking them (to feed a FIFO that may refuse some). */
  peek(max: number): Uint8Array {
    const head = Atomics.load(this.header, HEAD);
    const n = Math.min(max, (Atomics.load(this.header, TAIL) - head) | 0);
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.data[(head + i) & (this.capacity - 1)]!;
    return out;
  }

  /** Consumer: drops `n` bytes already peeked. */
  consume(n: number): void {
    Atomics.store(this.header, HEAD, (Atomics.load(this.header, HEAD) + n) | 0);
  }

  /** Consumer on the main thread: resolves at once if the ring holds bytes, else at the next write or wake(). */
  async whenReadable(): Promise<void> {
    const tail = Atomics.load(this.header, TAIL);
    if (tail !== Atomics.load(this.header, HEAD)) return;
    const r = Atomics.waitAsync(this.header, TAIL, tail);
    if (r.async) await r.value;
  }

  /** Wakes a consumer waiting in whenReadable() without writing (to make it re-check its own state). */
  wake(): void {
    Atomics.notify(this.header, TAIL);
  }
}
