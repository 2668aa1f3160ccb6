/**
 * A virtio driver written for the tests: guest RAM in an array, the driver side of split queues
 * laid out in it (as Linux's virtio_ring.c lays them out: descriptor table, then the available
 * ring, then the used ring on its own alignment), and the Linux virtio_mmio probe sequence
 * (reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK and its read-back, queue setup, DRIVER_OK).
 * It writes raw descriptors too, so tests can build every malformed shape.
 */
import { RegionGuestMemory } from '../../../src/devices/virtio/guest-memory.js';
import {
  VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, availRingSize, descTableSize, usedRingSize,
} from '../../../src/devices/virtio/queue.js';
import {
  VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_QUEUE_DESC_HIGH, VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_DEVICE_HIGH, VIRTIO_MMIO_QUEUE_DEVICE_LOW, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, VIRTIO_MMIO_QUEUE_DRIVER_LOW,
  VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_STATUS, VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_VERSION, VIRTIO_MMIO_DEVICE_ID,
  STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK, VIRTIO_MMIO_CONFIG,
  type VirtioMmio,
} from '../../../src/devices/virtio/virtio-mmio.js';

/** Guest RAM for tests: one region at `base` with a bump allocator. */
/** A virtio-console control message (struct virtio_console_control, virtio 1.2 §5.3.6.2): port id, event, value. */
export function consoleControl(id: number, event: number, value: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, id, true);
  v.setUint16(4, event, true);
  v.setUint16(6, value, true);
  return b;
}

export class TestRam {
  readonly bytes: Uint8Array;
  readonly mem: RegionGuestMemory;
  readonly view: DataView;
  private next: number;

  /** `bytes`: RAM someone else owns (a board's), `size` bytes of it seen at `base`. */
  constructor(readonly size = 4 << 20, readonly base = 0, bytes?: Uint8Array) {
    this.bytes = bytes ?? new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    this.mem = new RegionGuestMemory([{ gpa: base, bytes: this.bytes }]);
    this.next = base + 0x1000;
  }

  alloc(length: number, align = 16): number {
    const at = Math.ceil(this.next / align) * align;
    if (at + length > this.base + this.size) throw new Error('test RAM exhausted');
    this.next = at + length;
    return at;
  }

  /** Allocates and fills a buffer; returns its address. */
  put(data: Uint8Array, align = 16): number {
    const at = this.alloc(data.length, align);
    this.bytes.set(data, at - this.base);
    return at;
  }

  get(gpa: number, length: number): Uint8Array {
    return this.bytes.slice(gpa - this.base, gpa - this.base + length);
  }

  u8(gpa: number): number { return this.view.getUint8(gpa - this.base); }
  u16(gpa: number): number { return this.view.getUint16(gpa - this.base, true); }
  u32(gpa: number): number { return this.view.getUint32(gpa - this.base, true); }
  setU16(gpa: number, v: number): void { this.view.setUint16(gpa - this.base, v, true); }
  setU32(gpa: number, v: number): void { this.view.setUint32(gpa - this.base, v, true); }
  setU64(gpa: number, v: number): void {
    this.view.setUint32(gpa - this.base, v % 2 ** 32, true);
    this.view.setUint32(gpa - this.base + 4, Math.floor(v / 2 ** 32), true);
  }
}

/** One buffer of a chain the test driver builds. */
export interface Buf {
  addr: number;
  len: number;
  write?: boolean;
}

/** The driver side of one split queue. */
export class DriverQueue {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  private free: number[];
  private availIdx = 0;
  private lastUsed = 0;

  constructor(readonly ram: TestRam, readonly size: number, start = { availIdx: 0 }) {
    this.desc = ram.alloc(descTableSize(size), 16);
    this.avail = ram.alloc(availRingSize(size), 2);
    this.used = ram.alloc(usedRingSize(size), 4096);
    this.free = Array.from({ length: size }, (_, i) => i);
    this.availIdx = start.availIdx;
  }

  /** Writes descriptor `i` of a table at `table`. */
  writeDesc(i: number, d: { addr: number; len: number; flags: number; next?: number }, table = this.desc): void {
    const at = table + 16 * i;
    this.ram.setU64(at, d.addr);
    this.ram.setU32(at + 8, d.len);
    this.ram.setU16(at + 12, d.flags);
    this.ram.setU16(at + 14, d.next ?? 0);
  }

  /** Puts a chain of direct descriptors in free slots; returns the head. */
  addChain(bufs: Buf[]): number {
    if (bufs.length > this.free.length) throw new Error('test queue full');
    const slots = bufs.map(() => this.free.shift()!);
    bufs.forEach((b, i) => {
      const more = i + 1 < bufs.length;
      this.writeDesc(slots[i]!, { addr: b.addr, len: b.len, flags: (b.write ? VIRTQ_DESC_F_WRITE : 0) | (more ? VIRTQ_DESC_F_NEXT : 0), next: more ? slots[i + 1]! : 0 });
    });
    return slots[0]!;
  }

  /** Puts a chain in an indirect table (one slot in the ring's table); returns the head. */
  addIndirect(bufs: Buf[]): number {
    const table = this.ram.alloc(16 * bufs.length, 16);
    bufs.forEach((b, i) => {
      const more = i + 1 < bufs.length;
      this.writeDesc(i, { addr: b.addr, len: b.len, flags: (b.write ? VIRTQ_DESC_F_WRITE : 0) | (more ? VIRTQ_DESC_F_NEXT : 0), next: more ? i + 1 : 0 }, table);
    });
    const head = this.free.shift()!;
    this.writeDesc(head, { addr: table, len: 16 * bufs.length, flags: VIRTQ_DESC_F_INDIRECT });
    return head;
  }

  /** Makes `head` available (ring entry first, then the index). */
  publish(head: number): void {
    this.ram.setU16(this.avail + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.ram.setU16(this.avail + 2, this.availIdx);
  }

  /** Sets the available index directly (malformed-ring tests). */
  setAvailIdx(v: number): void {
    this.availIdx = v & 0xffff;
    this.ram.setU16(this.avail + 2, this.availIdx);
  }

  setAvailFlags(flags: number): void { this.ram.setU16(this.avail, flags); }
  setUsedEvent(v: number): void { this.ram.setU16(this.avail + 4 + 2 * this.size, v); }
  get availEvent(): number { return this.ram.u16(this.used + 4 + 8 * this.size); }
  get usedIdx(): number { return this.ram.u16(this.used + 2); }

  /** Used entries published since the last call; their descriptors go back to the free list. */
  takeUsed(recycle = true): { id: number; len: number }[] {
    const out: { id: number; len: number }[] = [];
    const idx = this.usedIdx;
    while (this.lastUsed !== idx) {
      const at = this.used + 4 + 8 * (this.lastUsed % this.size);
      const e = { id: this.ram.u32(at), len: this.ram.u32(at + 4) };
      out.push(e);
      if (recycle) this.recycle(e.id);
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  private recycle(head: number): void {
    let i = head;
    for (let n = 0; n < this.size; n++) {
      this.free.push(i);
      const flags = this.ram.u16(this.desc + 16 * i + 12);
      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      i = this.ram.u16(this.desc + 16 * i + 14);
    }
  }
}

/** Talks to a VirtioMmio the way Linux's virtio_mmio.c does. */
export class TestDriver {
  readonly queues: DriverQueue[] = [];

  constructor(readonly transport: VirtioMmio, readonly ram: TestRam) {}

  r32(offset: number): number {
    const d = new Uint8Array(4);
    this.transport.read(offset, d);
    return new DataView(d.buffer).getUint32(0, true);
  }

  w32(offset: number, v: number): void {
    const d = new Uint8Array(4);
    new DataView(d.buffer).setUint32(0, v >>> 0, true);
    this.transport.write(offset, d);
  }

  config(offset: number, length: 1 | 2 | 4): number {
    const d = new Uint8Array(length);
    this.transport.read(VIRTIO_MMIO_CONFIG + offset, d);
    const v = new DataView(d.buffer);
    return length === 1 ? v.getUint8(0) : length === 2 ? v.getUint16(0, true) : v.getUint32(0, true);
  }

  get status(): number {
    return this.r32(VIRTIO_MMIO_STATUS);
  }

  deviceFeatures(): bigint {
    this.w32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    const high = BigInt(this.r32(VIRTIO_MMIO_DEVICE_FEATURES));
    this.w32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    return (high << 32n) | BigInt(this.r32(VIRTIO_MMIO_DEVICE_FEATURES));
  }

  writeDriverFeatures(f: bigint): void {
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES, Number((f >> 32n) & 0xffff_ffffn));
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES, Number(f & 0xffff_ffffn));
  }

  /**
   * Reset, ACKNOWLEDGE, DRIVER, accept `accept(offered)` (default: everything offered),
   * FEATURES_OK and check it stuck. Returns the accepted features, or null when the device refused.
   */
  negotiate(accept: (offered: bigint) => bigint = (f) => f): bigint | null {
    if (this.r32(VIRTIO_MMIO_MAGIC_VALUE) !== 0x74726976 || this.r32(VIRTIO_MMIO_VERSION) !== 2 || this.r32(VIRTIO_MMIO_DEVICE_ID) === 0) {
      throw new Error('not a modern virtio-mmio device');
    }
    this.w32(VIRTIO_MMIO_STATUS, 0);
    this.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE);
    this.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    const f = accept(this.deviceFeatures());
    this.writeDriverFeatures(f);
    this.w32(VIRTIO_MMIO_STATUS, this.status | STATUS_FEATURES_OK);
    return this.status & STATUS_FEATURES_OK ? f : null;
  }

  /** Sets up queue `index` as vm_setup_vq does; `size` defaults to QueueNumMax. */
  setupQueue(index: number, size?: number): DriverQueue {
    this.w32(VIRTIO_MMIO_QUEUE_SEL, index);
    if (this.r32(VIRTIO_MMIO_QUEUE_READY) !== 0) throw new Error(`queue ${index} already set up`);
    const max = this.r32(VIRTIO_MMIO_QUEUE_NUM_MAX);
    if (max === 0) throw new Error(`queue ${index} does not exist`);
    const q = new DriverQueue(this.ram, size ?? max);
    this.w32(VIRTIO_MMIO_QUEUE_NUM, q.size);
    this.w32(VIRTIO_MMIO_QUEUE_DESC_LOW, q.desc % 2 ** 32);
    this.w32(VIRTIO_MMIO_QUEUE_DESC_HIGH, Math.floor(q.desc / 2 ** 32));
    this.w32(VIRTIO_MMIO_QUEUE_DRIVER_LOW, q.avail % 2 ** 32);
    this.w32(VIRTIO_MMIO_QUEUE_DRIVER_HIGH, Math.floor(q.avail / 2 ** 32));
    this.w32(VIRTIO_MMIO_QUEUE_DEVICE_LOW, q.used % 2 ** 32);
    this.w32(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, Math.floor(q.used / 2 ** 32));
    this.w32(VIRTIO_MMIO_QUEUE_READY, 1);
    this.queues[index] = q;
    return q;
  }

  driverOk(): void {
    this.w32(VIRTIO_MMIO_STATUS, this.status | STATUS_DRIVER_OK);
  }

  /** The whole probe: negotiate everything offered, set up `queues` queues, DRIVER_OK. */
  probe(queues: number, accept?: (offered: bigint) => bigint): DriverQueue[] {
    if (this.negotiate(accept) === null) throw new Error('device refused FEATURES_OK');
    for (let i = 0; i < queues; i++) this.setupQueue(i);
    this.driverOk();
    return this.queues;
  }

  kick(index: number): void {
    this.w32(VIRTIO_MMIO_QUEUE_NOTIFY, index);
  }

  /** Reads and acknowledges InterruptStatus, as vm_interrupt does. */
  ackInterrupt(): number {
    const s = this.r32(VIRTIO_MMIO_INTERRUPT_STATUS);
    this.w32(VIRTIO_MMIO_INTERRUPT_ACK, s);
    return s;
  }
}
