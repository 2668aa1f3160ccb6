/**
 * A single-producer, single-consumer byte ring in a SharedArrayBuffer: how bytes cross between
 * a vCPU thread and the main thread without either blocking. Nothing is ever dropped: a producer
 * that finds the ring full keeps what did not fit and waits for room, as a UART holds a byte in
 * its transmitter while the line is busy.
 *
 * Waiting: the main thread waits with Atomics.waitAsync (on TAIL for bytes to read, on HEAD for
 * room to write), and every write or read notifies. A vCPU thread does not wait on the ring (it
 * runs the guest): as producer it raises WAITING when it finds the ring full, and the consumer,
 * seeing WAITING after a read, kicks the vCPU so that it writes again.
 */
const HEAD = 0; // next byte to read (consumer-owned)
const TAIL = 1; // next byte to write (producer-owned)
const WAITING = 2; // 1: the producer found the ring full and wants to hear when there is room
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

  /** Room for this many bytes. */
  get free(): number {
    return this.capacity - this.length;
  }

  /** Producer: appends what fits and wakes a waiting consumer. Returns how many bytes it took; the caller keeps the rest. */
  write(bytes: ArrayLike<number>): number {
    const tail = Atomics.load(this.header, TAIL);
    const n = Math.min(this.capacity - ((tail - Atomics.load(this.header, HEAD)) | 0), bytes.length);
    for (let i = 0; i < n; i++) this.data[(tail + i) & (this.capacity - 1)] = bytes[i]!;
    if (n > 0) {
      Atomics.store(this.header, TAIL, (tail + n) | 0);
      Atomics.notify(this.header, TAIL);
    }
    return n;
  }

  /**
   * Producer on a vCPU thread: one byte (the UART's transmit path). False when the ring is full:
   * WAITING is then raised, and the consumer reports the room it makes (see takeWaiting).
   */
  writeByte(byte: number): boolean {
    const tail = Atomics.load(this.header, TAIL);
    if (((tail - Atomics.load(this.header, HEAD)) | 0) >= this.capacity) {
      Atomics.store(this.header, WAITING, 1);
      // Look again: a read between the first look and raising WAITING would not have seen it.
      if (((tail - Atomics.load(this.header, HEAD)) | 0) >= this.capacity) return false;
    }
    this.data[tail & (this.capacity - 1)] = byte;
    Atomics.store(this.header, TAIL, (tail + 1) | 0);
    Atomics.notify(this.header, TAIL);
    return true;
  }

  /**
   * Producer on a vCPU thread: appends what fits, as write() does; when not all of `bytes` fits,
   * WAITING is raised as writeByte() raises it, so that the consumer reports the room it makes.
   */
  offer(bytes: Uint8Array): number {
    const n = this.write(bytes);
    if (n === bytes.length) return n;
    Atomics.store(this.header, WAITING, 1);
    // Room made between the write and raising WAITING would not have been reported: take it.
    return n + this.write(bytes.subarray(n));
  }

  /** Producer: asks the consumer to report the room its next read makes (see takeWaiting). */
  markWaiting(): void {
    Atomics.store(this.header, WAITING, 1);
  }

  /** Consumer: takes up to `max` bytes. */
  read(max = Infinity): Uint8Array {
    const head = Atomics.load(this.header, HEAD);
    const n = Math.min(max, (Atomics.load(this.header, TAIL) - head) | 0);
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.data[(head + i) & (this.capacity - 1)]!;
    this.consume(n);
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

  /** Consumer: drops `n` bytes already peeked, and wakes a producer waiting for room. */
  consume(n: number): void {
    if (n === 0) return;
    Atomics.store(this.header, HEAD, (Atomics.load(this.header, HEAD) + n) | 0);
    Atomics.notify(this.header, HEAD);
  }

  /** Consumer, after reading: whether the producer was waiting for room (and now hears of it: WAITING is cleared). */
  takeWaiting(): boolean {
    return Atomics.exchange(this.header, WAITING, 0) !== 0;
  }

  /** Consumer on the main thread: resolves at once if the ring holds bytes, else at the next write or wake(). */
  async whenReadable(): Promise<void> {
    const tail = Atomics.load(this.header, TAIL);
    if (tail !== Atomics.load(this.header, HEAD)) return;
    const r = Atomics.waitAsync(this.header, TAIL, tail);
    if (r.async) await r.value;
  }

  /** Producer on the main thread: resolves at once if the ring has room, else at the next read or wake(). */
  async whenWritable(): Promise<void> {
    const head = Atomics.load(this.header, HEAD);
    if (((Atomics.load(this.header, TAIL) - head) | 0) < this.capacity) return;
    const r = Atomics.waitAsync(this.header, HEAD, head);
    if (r.async) await r.value;
  }

  /** Wakes whoever waits in whenReadable() or whenWritable() without moving bytes (to make them re-check their own state). */
  wake(): void {
    Atomics.notify(this.header, TAIL);
    Atomics.notify(this.header, HEAD);
  }
}

/**
 * The producer side of a ring for a device that cannot hold its output back (a virtio console
 * port: Linux's hvc waits for each transmit buffer to come back): what the ring cannot take waits
 * here, up to `limit` bytes, and moves on at flush() (call it when the consumer reports room, see
 * takeWaiting); past the limit, output is dropped and counted, so memory stays bounded whatever
 * the guest writes while the host does not read. A device that can hold its output back (a
 * flow-controlled port) asks canTake() first and waits for the consumer's report instead.
 */
export class RingBacklog {
  private readonly waiting: Uint8Array[] = [];
  private bytes = 0;
  /** Bytes dropped because the backlog was full. */
  dropped = 0;

  constructor(private readonly ring: ByteRing, private readonly limit: number, private readonly onFirstDrop: () => void = () => {}) {}

  /** Bytes waiting for room in the ring. */
  get length(): number {
    return this.bytes;
  }

  /** Appends `bytes` (copied if they must wait: they may be a view of guest memory). */
  write(bytes: Uint8Array): void {
    if (this.waiting.length === 0) {
      const n = this.ring.offer(bytes);
      if (n === bytes.length) return;
      bytes = bytes.subarray(n);
    }
    const keep = Math.min(bytes.length, this.limit - this.bytes);
    if (keep > 0) {
      this.waiting.push(bytes.slice(0, keep));
      this.bytes += keep;
    }
    if (keep < bytes.length) {
      if (this.dropped === 0) this.onFirstDrop();
      this.dropped += bytes.length - keep;
    }
  }

  /**
   * Whether write() would take `n` bytes now without dropping any; when not, the consumer is
   * asked to report the room it makes (the producer's cue to flush() and ask again). With the
   * ring and the backlog both empty the answer is yes whatever `n` (nothing would ever make more
   * room): only output larger than the ring and the limit together is then dropped.
   */
  canTake(n: number): boolean {
    const room = () => (this.waiting.length === 0 ? this.ring.free + this.limit : this.limit - this.bytes);
    if (n <= room() || (this.waiting.length === 0 && this.ring.length === 0)) return true;
    this.ring.markWaiting();
    return n <= room(); // a read between the first look and the mark would not report its room
  }

  /** Moves waiting bytes into the ring as far as it has room. */
  flush(): void {
    while (this.waiting.length > 0) {
      const head = this.waiting[0]!;
      const n = this.ring.offer(head);
      this.bytes -= n;
      if (n < head.length) {
        this.waiting[0] = head.subarray(n);
        return;
      }
      this.waiting.shift();
    }
  }
}
