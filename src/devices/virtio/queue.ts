/**
 * The split virtqueue (virtio 1.2 §2.7), device side: the descriptor table, the available ring
 * the driver fills and the used ring the device fills, all in guest RAM.
 *
 * Every guest address and length is checked here and nowhere else:
 * - `SplitQueue.open()` checks the queue size (a power of two, at most what the device offers)
 *   and that the three areas are aligned (16, 2, 4 bytes, §2.7) and lie in RAM, and keeps
 *   views of them.
 * - `pop()` walks one descriptor chain and turns each buffer into a view of RAM; a device then
 *   reads and writes only those views (through the scatter-list functions below).
 * A malformed ring or chain is a `QueueFault`, returned, never thrown: the transport answers it
 * by setting DEVICE_NEEDS_RESET (§2.1.2). What the walker refuses:
 * - the available index moving ahead of the device by more than the queue size;
 * - a head or `next` index outside its table;
 * - a chain visiting more descriptors than its table holds (the only way to build a loop);
 * - an indirect descriptor (§2.7.5.3) when VIRTIO_F_INDIRECT_DESC was not negotiated, with
 *   NEXT also set, inside an indirect table, or whose table length is 0, not a multiple of 16,
 *   or longer than the queue size (the bound vhost uses as well);
 * - a buffer that is not all RAM (this includes lengths that overflow past 2^64);
 * - a device-readable buffer after a device-writable one (§2.7.4.2: the driver places all
 *   writable buffers after the readable ones).
 * Zero-length buffers are accepted and ignored. Which directions a request needs is the
 * device's business: it sees the readable and writable parts of a chain separately.
 *
 * Notification suppression (§2.7.7, §2.7.10): with VIRTIO_F_EVENT_IDX the device asks for a
 * notification at the next buffer (avail_event = the next index it will read, written when it
 * finds the ring empty) and interrupts only when used_event says the driver wants it; without
 * it, VIRTQ_USED_F_NO_NOTIFY stays clear and VIRTQ_AVAIL_F_NO_INTERRUPT is honoured.
 *
 * Memory: a chain holds at most 2 * size views (a direct part and one indirect table), so one
 * request costs O(queue size) host memory whatever the guest writes.
 *
 * Ordering: the driver publishes a ring entry before the index that covers it. Devices run on
 * the thread of the vCPU that notified; x86 keeps loads in order, and JavaScript does not
 * reorder these plain typed-array accesses across the calls that separate them.
 */
import { hex, leView } from '../../common/bits.js';

export const VIRTQ_DESC_F_NEXT = 1; // the chain continues in `next`
export const VIRTQ_DESC_F_WRITE = 2; // the buffer is device-writable (else device-readable)
export const VIRTQ_DESC_F_INDIRECT = 4; // the buffer is a table of descriptors
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1; // driver: no used-buffer notification wanted
export const VIRTQ_USED_F_NO_NOTIFY = 1; // device: no available-buffer notification wanted

/** The largest split queue (§2.7: Queue Size is at most 32768). */
export const MAX_QUEUE_SIZE = 32768;
const DESC_SIZE = 16;
const DESC_ALIGN = 16;
const AVAIL_ALIGN = 2;
const USED_ALIGN = 4;

/** Bytes of the three areas for a queue of `size` (§2.7). */
export const descTableSize = (size: number): number => DESC_SIZE * size;
export const availRingSize = (size: number): number => 6 + 2 * size;
export const usedRingSize = (size: number): number => 6 + 8 * size;

/** Why a queue or a chain was refused. */
export type QueueFaultKind =
  | 'queue-size'
  | 'queue-align'
  | 'queue-out-of-ram'
  | 'avail-idx'
  | 'desc-index'
  | 'chain-too-long'
  | 'indirect-not-negotiated'
  | 'indirect-with-next'
  | 'indirect-nested'
  | 'indirect-length'
  | 'buffer-out-of-ram'
  | 'readable-after-writable';

export class QueueFault {
  constructor(readonly kind: QueueFaultKind, readonly message: string) {}
}

/** The guest-physical layout of a queue, as the driver wrote it into the transport. */
export interface QueueLayout {
  size: number;
  desc: number;
  driver: number; // the available ring
  device: number; // the used ring
}

export interface QueueFeatures {
  indirect: boolean; // VIRTIO_F_INDIRECT_DESC negotiated
  eventIdx: boolean; // VIRTIO_F_EVENT_IDX negotiated
}

/** Something that turns guest-physical ranges into views (guest-memory.ts). */
export interface QueueMemory {
  view(gpa: number, length: number): Uint8Array | null;
}

/**
 * One descriptor chain taken from the available ring: its head (what goes back in the used
 * ring) and its buffers as views of guest RAM, readable ones first.
 */
export class Chain {
  constructor(
    readonly head: number,
    readonly readable: readonly Uint8Array[],
    readonly writable: readonly Uint8Array[],
    readonly readableLength: number,
    readonly writableLength: number,
  ) {}
}

/**
 * The views covering bytes [offset, offset + length) of a scatter list (a chain's readable or
 * writable part seen as one byte string). The caller checks the range against the total first.
 */
export function sliceSegments(segments: readonly Uint8Array[], offset: number, length: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = offset;
  let left = length;
  for (const s of segments) {
    if (left === 0) break;
    if (skip >= s.length) {
      skip -= s.length;
      continue;
    }
    const n = Math.min(s.length - skip, left);
    out.push(s.subarray(skip, skip + n));
    left -= n;
    skip = 0;
  }
  return out;
}

/** Copies bytes from a scatter list at `offset` into `into`; returns how many were copied. */
export function copyFromSegments(segments: readonly Uint8Array[], offset: number, into: Uint8Array): number {
  let done = 0;
  for (const s of sliceSegments(segments, offset, into.length)) {
    into.set(s, done);
    done += s.length;
  }
  return done;
}

/** Copies `data` into a scatter list at `offset`; returns how many bytes fitted. */
export function copyToSegments(segments: readonly Uint8Array[], offset: number, data: Uint8Array): number {
  let done = 0;
  for (const s of sliceSegments(segments, offset, data.length)) {
    s.set(data.subarray(done, done + s.length));
    done += s.length;
  }
  return done;
}

/** The device's positions in the rings (what a snapshot keeps of a queue beside its layout). */
export interface QueueIndices {
  lastAvail: number;
  usedIdx: number;
  signalledUsed: number;
}

export class SplitQueue {
  /** The next available-ring index the device will read (free-running, 16 bits). */
  private lastAvail = 0;
  /** The used index the device has published (free-running, 16 bits). */
  private usedIdx = 0;
  /** The used index at the last notification decision. */
  private signalledUsed = 0;

  private constructor(
    readonly size: number,
    private readonly mem: QueueMemory,
    private readonly features: QueueFeatures,
    private readonly desc: DataView,
    private readonly avail: DataView,
    private readonly used: DataView,
  ) {}

  /** Checks a layout the driver set up and returns the queue over it, or why it is refused. */
  static open(mem: QueueMemory, layout: QueueLayout, features: QueueFeatures, maxSize: number): SplitQueue | QueueFault {
    const { size, desc, driver, device } = layout;
    if (!Number.isInteger(size) || size < 1 || size > maxSize || size > MAX_QUEUE_SIZE || (size & (size - 1)) !== 0) {
      return new QueueFault('queue-size', `queue size ${size} is not a power of two from 1 to ${Math.min(maxSize, MAX_QUEUE_SIZE)}`);
    }
    if (desc % DESC_ALIGN !== 0 || driver % AVAIL_ALIGN !== 0 || device % USED_ALIGN !== 0) {
      return new QueueFault('queue-align', `queue areas desc ${hex(desc)}, driver ${hex(driver)}, device ${hex(device)} are not aligned to 16, 2, 4`);
    }
    const d = mem.view(desc, descTableSize(size));
    const a = mem.view(driver, availRingSize(size));
    const u = mem.view(device, usedRingSize(size));
    if (d === null || a === null || u === null) {
      return new QueueFault('queue-out-of-ram', `queue of ${size} at desc ${hex(desc)}, driver ${hex(driver)}, device ${hex(device)} is not all in RAM`);
    }
    return new SplitQueue(size, mem, features, leView(d), leView(a), leView(u));
  }

  /** Chains the driver has made available and the device has not taken (at most `size` on a sane ring). */
  get availableCount(): number {
    return (this.avail.getUint16(2, true) - this.lastAvail) & 0xffff;
  }

  /**
   * Takes the next available chain: null when the ring is empty, a QueueFault when the ring or
   * the chain is malformed (the queue is then unusable until the device is reset).
   */
  pop(): Chain | QueueFault | null {
    const pending = this.availableCount;
    if (pending === 0) {
      if (this.features.eventIdx) this.used.setUint16(4 + 8 * this.size, this.lastAvail, true); // avail_event
      return null;
    }
    if (pending > this.size) {
      return new QueueFault('avail-idx', `available index ${this.avail.getUint16(2, true)} is ${pending} ahead of the device's ${this.lastAvail}, more than the queue size ${this.size}`);
    }
    const head = this.avail.getUint16(4 + 2 * (this.lastAvail & (this.size - 1)), true);
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    return this.walk(head);
  }

  /**
   * Gives back the chain the last pop() returned, unused: the next pop() walks it again. For a
   * device that finds the buffer unfit for what it holds (a receive buffer too small for the
   * frame at hand) and keeps it for the next one. Only after a pop() that returned a chain.
   */
  unpop(): void {
    this.lastAvail = (this.lastAvail - 1) & 0xffff;
  }

  private walk(head: number): Chain | QueueFault {
    const readable: Uint8Array[] = [];
    const writable: Uint8Array[] = [];
    let readableLength = 0;
    let writableLength = 0;
    let sawWritable = false;
    let table = this.desc;
    let tableSize = this.size;
    let indirect = false;
    let index = head;
    let visited = 0;
    if (index >= tableSize) return new QueueFault('desc-index', `chain head ${index} is outside the descriptor table of ${tableSize}`);
    for (;;) {
      if (++visited > tableSize) {
        return new QueueFault('chain-too-long', `chain from head ${head} visits more than the ${tableSize} descriptors of its ${indirect ? 'indirect ' : ''}table (a loop)`);
      }
      const at = index * DESC_SIZE;
      const addr = table.getUint32(at, true) + table.getUint32(at + 4, true) * 2 ** 32;
      const len = table.getUint32(at + 8, true);
      const flags = table.getUint16(at + 12, true);
      const next = table.getUint16(at + 14, true);
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        if (!this.features.indirect) return new QueueFault('indirect-not-negotiated', `descriptor ${index} is indirect but VIRTIO_F_INDIRECT_DESC was not negotiated`);
        if (indirect) return new QueueFault('indirect-nested', `descriptor ${index} of an indirect table is itself indirect`);
        if (flags & VIRTQ_DESC_F_NEXT) return new QueueFault('indirect-with-next', `indirect descriptor ${index} also has NEXT set`);
        if (len === 0 || len % DESC_SIZE !== 0 || len / DESC_SIZE > this.size) {
          return new QueueFault('indirect-length', `indirect table of ${len} bytes is empty, not a multiple of ${DESC_SIZE}, or longer than the queue size ${this.size}`);
        }
        const v = this.mem.view(addr, len);
        if (v === null) return new QueueFault('buffer-out-of-ram', `indirect table at ${hex(addr)}+${hex(len)} is not all in RAM`);
        table = leView(v);
        tableSize = len / DESC_SIZE;
        indirect = true;
        index = 0;
        visited = 0;
        continue;
      }
      const isWritable = (flags & VIRTQ_DESC_F_WRITE) !== 0;
      if (!isWritable && sawWritable) return new QueueFault('readable-after-writable', `descriptor ${index} is device-readable after a device-writable one`);
      sawWritable ||= isWritable;
      if (len > 0) {
        const v = this.mem.view(addr, len);
        if (v === null) return new QueueFault('buffer-out-of-ram', `buffer at ${hex(addr)}+${hex(len)} is not all in RAM`);
        if (isWritable) {
          writable.push(v);
          writableLength += len;
        } else {
          readable.push(v);
          readableLength += len;
        }
      }
      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      if (next >= tableSize) return new QueueFault('desc-index', `descriptor ${index} chains to ${next}, outside its table of ${tableSize}`);
      index = next;
    }
    return new Chain(head, readable, writable, readableLength, writableLength);
  }

  /** Returns a chain to the driver: `written` bytes were written into its writable buffers. */
  push(head: number, written: number): void {
    const at = 4 + 8 * (this.usedIdx & (this.size - 1));
    this.used.setUint32(at, head, true);
    this.used.setUint32(at + 4, written, true);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    this.used.setUint16(2, this.usedIdx, true); // after the element (§2.7.8)
  }

  /**
   * Whether the driver wants a used-buffer notification for what was pushed since the last
   * call (§2.7.10); each call starts a new interval.
   */
  needsNotification(): boolean {
    const old = this.signalledUsed;
    const now = this.usedIdx;
    this.signalledUsed = now;
    if (old === now) return false;
    if (this.features.eventIdx) {
      const event = this.avail.getUint16(4 + 2 * this.size, true); // used_event
      return ((now - event - 1) & 0xffff) < ((now - old) & 0xffff);
    }
    return (this.avail.getUint16(0, true) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /** The indices, for snapshots and tests. */
  get indices(): QueueIndices {
    return { lastAvail: this.lastAvail, usedIdx: this.usedIdx, signalledUsed: this.signalledUsed };
  }

  /** Puts back indices a snapshot saved (each a 16-bit free-running index). */
  restoreIndices(i: QueueIndices): void {
    this.lastAvail = i.lastAvail & 0xffff;
    this.usedIdx = i.usedIdx & 0xffff;
    this.signalledUsed = i.signalledUsed & 0xffff;
  }
}
