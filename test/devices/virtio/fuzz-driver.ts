/**
 * What the virtio fuzzers (fuzz.ts for virtio-blk, net-fuzz.ts for virtio-net) share: a hostile
 * driver over the virtio-mmio transport with fixed queue areas in a RAM array, a seeded PRNG, the
 * Linux probe sequence with junk features and queue sizes now and then, random descriptors and
 * register writes, and after each step the notify, the count of completions, the interrupt line
 * checked against InterruptStatus, and a reset when the device asks for one. A fuzzer supplies
 * its device's feature bits, its lengths and its plausible chains (act()).
 */
import { RecordingIrqLine } from '../../../src/devices/irq.js';
import type { VirtioDevice } from '../../../src/devices/virtio/device.js';
import { RegionGuestMemory } from '../../../src/devices/virtio/guest-memory.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../../src/devices/virtio/queue.js';
import {
  VirtioMmio, VIRTIO_MMIO_STATUS, VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_DEVICE_LOW,
  VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_INTERRUPT_ACK,
  STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_FEATURES_OK, STATUS_DRIVER_OK, STATUS_DEVICE_NEEDS_RESET,
} from '../../../src/devices/virtio/virtio-mmio.js';

export const QUEUE_SIZE = 16;

/** A queue's three areas in the fuzzer's RAM. */
export interface QueueArea {
  desc: number;
  avail: number;
  used: number;
}

export interface FuzzTally {
  chains: number;
  exceptions: number;
  firstException: string | null;
  resets: number;
  completions: number;
}

/** mulberry32: a small deterministic PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export abstract class FuzzDriver {
  readonly ram: Uint8Array;
  protected readonly view: DataView;
  readonly irq = new RecordingIrqLine();
  readonly result: FuzzTally = { chains: 0, exceptions: 0, firstException: null, resets: 0, completions: 0 };
  protected transport!: VirtioMmio;
  private readonly rand: () => number;
  private readonly word = new Uint8Array(4);
  private readonly wordView = new DataView(this.word.buffer);
  protected readonly availIdx: number[];
  private readonly lastUsed: number[];

  /** `data`: where buffers start (the queue areas lie below it); `dataSpan`: how much of RAM from there plausible buffers use. */
  constructor(seed: number, ramSize: number, protected readonly queues: readonly QueueArea[], protected readonly data: number, protected readonly dataSpan: number) {
    this.ram = new Uint8Array(ramSize);
    this.view = new DataView(this.ram.buffer);
    this.rand = prng(seed);
    this.availIdx = queues.map(() => 0);
    this.lastUsed = queues.map(() => 0);
  }

  /** Puts the device on the transport and probes it; the subclass's constructor calls it last. */
  protected attach(device: VirtioDevice): void {
    this.transport = new VirtioMmio({ device, memory: new RegionGuestMemory([{ gpa: 0, bytes: this.ram }]), irq: this.irq });
    this.probe();
  }

  /** The low 32 feature bits the driver accepts (it sometimes writes junk instead). */
  protected abstract featuresLow(): number;
  /** A descriptor length, as this device's chains use them. */
  protected abstract len(): number;
  /** Writes and publishes chains (or does something else a guest or host would); returns the queue to notify. */
  protected abstract act(): number;

  protected int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  protected w32(offset: number, v: number): void {
    this.wordView.setUint32(0, v >>> 0, true);
    this.transport.write(offset, this.word);
  }

  protected r32(offset: number): number {
    this.transport.read(offset, this.word);
    return this.wordView.getUint32(0, true);
  }

  /** The Linux probe sequence over the fixed layout; features and queue sizes sometimes junk. */
  probe(): void {
    this.result.resets++;
    this.w32(VIRTIO_MMIO_STATUS, 0);
    this.ram.fill(0, 0, this.data);
    this.availIdx.fill(0);
    this.lastUsed.fill(0);
    this.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE);
    this.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES, this.int(8) === 0 ? this.int(2 ** 32) : 1); // VERSION_1
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES, this.int(8) === 0 ? this.int(2 ** 32) : this.featuresLow());
    this.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    if (!(this.r32(VIRTIO_MMIO_STATUS) & STATUS_FEATURES_OK)) return; // refused: the next step probes again
    this.queues.forEach((q, i) => {
      this.w32(VIRTIO_MMIO_QUEUE_SEL, i);
      this.w32(VIRTIO_MMIO_QUEUE_NUM, this.int(16) === 0 ? this.int(300) : QUEUE_SIZE);
      this.w32(VIRTIO_MMIO_QUEUE_DESC_LOW, q.desc);
      this.w32(VIRTIO_MMIO_QUEUE_DRIVER_LOW, q.avail);
      this.w32(VIRTIO_MMIO_QUEUE_DEVICE_LOW, q.used);
      this.w32(VIRTIO_MMIO_QUEUE_READY, 1);
    });
    this.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  }

  /** An address: mostly in the data area, sometimes at the edge of RAM, outside it, or huge. */
  protected addr(): number {
    const size = this.ram.length;
    switch (this.int(8)) {
      case 0: return size - this.int(64);
      case 1: return size + this.int(1 << 20);
      case 2: return this.int(2 ** 32) + this.int(2 ** 21) * 2 ** 32;
      case 3: return this.int(this.data); // over the rings themselves
      default: return this.data + this.int(this.dataSpan);
    }
  }

  protected flags(): number {
    const r = this.int(16);
    if (r === 0) return this.int(0x10000);
    return (r & 1 ? VIRTQ_DESC_F_NEXT : 0) | (r & 2 ? VIRTQ_DESC_F_WRITE : 0) | (r === 4 || r === 12 ? VIRTQ_DESC_F_INDIRECT : 0);
  }

  protected writeDesc(table: number, i: number, addr: number, len: number, flags: number, next: number): void {
    const at = table + 16 * i;
    if (at < 0 || at + 16 > this.ram.length) return;
    this.view.setUint32(at, addr % 2 ** 32, true);
    this.view.setUint32(at + 4, Math.floor(addr / 2 ** 32) % 2 ** 32, true);
    this.view.setUint32(at + 8, len >>> 0, true);
    this.view.setUint16(at + 12, flags, true);
    this.view.setUint16(at + 14, next, true);
  }

  /** A random register write (any width, any offset in the window). */
  protected poke(): void {
    const data = new Uint8Array([1, 2, 4, 8][this.int(4)]!);
    for (let i = 0; i < data.length; i++) data[i] = this.int(256);
    const offset = this.int(0x200);
    if (offset === VIRTIO_MMIO_STATUS) data.fill(0, 1); // keep status writes meaningful
    this.transport.write(offset, data);
  }

  /** Random descriptors anywhere in queue `q`'s table (and in a random indirect table), published. */
  protected randomChain(q: number): void {
    const desc = this.queues[q]!.desc;
    const n = 1 + this.int(QUEUE_SIZE + 2);
    for (let k = 0; k < n; k++) this.writeDesc(desc, this.int(QUEUE_SIZE), this.addr(), this.len(), this.flags(), this.int(QUEUE_SIZE + 2));
    if (this.int(3) === 0) {
      const table = this.data + 16 * this.int((this.ram.length - this.data) / 16 - 32);
      for (let k = 0; k < 1 + this.int(20); k++) this.writeDesc(table, this.int(20), this.addr(), this.len(), this.flags(), this.int(22));
      this.writeDesc(desc, this.int(QUEUE_SIZE), table, this.len(), VIRTQ_DESC_F_INDIRECT | (this.int(4) === 0 ? VIRTQ_DESC_F_NEXT : 0), this.int(QUEUE_SIZE));
    }
    this.publish(q, this.int(QUEUE_SIZE + 2));
  }

  protected publish(q: number, head: number): void {
    this.view.setUint16(this.queues[q]!.avail + 4 + 2 * (this.availIdx[q]! % QUEUE_SIZE), head, true);
    this.availIdx[q] = (this.availIdx[q]! + 1) & 0xffff;
    this.result.chains++;
  }

  /** One step: act(), a wild available index now and then, notify, count, check the line, maybe reset. */
  step(): void {
    try {
      const q = this.act();
      if (this.int(50) === 0) this.availIdx[q] = (this.availIdx[q]! + this.int(0x10000)) & 0xffff; // a wild index
      this.view.setUint16(this.queues[q]!.avail + 2, this.availIdx[q]!, true);
      this.w32(VIRTIO_MMIO_QUEUE_NOTIFY, this.int(20) === 0 ? this.int(4) : q);
      this.collect();
      const pending = this.r32(VIRTIO_MMIO_INTERRUPT_STATUS);
      if (this.irq.level !== (pending !== 0)) throw new Error(`IRQ line ${this.irq.level} with InterruptStatus ${pending}`);
      if (this.int(4) === 0) this.w32(VIRTIO_MMIO_INTERRUPT_ACK, pending);
      const status = this.r32(VIRTIO_MMIO_STATUS);
      if (status & STATUS_DEVICE_NEEDS_RESET || !(status & STATUS_DRIVER_OK) || this.int(5000) === 0) this.probe();
    } catch (e) {
      this.result.exceptions++;
      this.result.firstException ??= e instanceof Error ? `${e.stack}` : String(e);
      this.probe();
    }
  }

  /**
   * Counts what the device completed on every queue since the last step: at most two rings'
   * worth per queue, since rings the fuzzer pointed over each other can make the used index jump.
   */
  private collect(): void {
    this.queues.forEach((q, i) => {
      const usedIdx = this.view.getUint16(q.used + 2, true);
      this.result.completions += Math.min((usedIdx - this.lastUsed[i]!) & 0xffff, QUEUE_SIZE * 2);
      this.lastUsed[i] = usedIdx;
    });
  }
}
