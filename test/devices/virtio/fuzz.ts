/**
 * A fuzzer for the virtio-mmio transport and virtio-blk: a driver that writes random and
 * half-formed descriptor chains, random request headers and random register writes, as a
 * hostile or broken guest would. Deterministic for a seed. Used by virtio-fuzz.test.ts (a
 * CI-sized count) and bench/virtio-fuzz.ts (10^6 chains).
 *
 * What must hold: no exception reaches the caller, host memory does not grow with the number
 * of chains, and the device either completes a chain or sets DEVICE_NEEDS_RESET (after which
 * the fuzzer resets it and goes on, as a driver would).
 */
import { RecordingIrqLine } from '../../../src/devices/irq.js';
import { RegionGuestMemory } from '../../../src/devices/virtio/guest-memory.js';
import { MemoryBlockBackend } from '../../../src/devices/virtio/block-backend.js';
import { VirtioBlk } from '../../../src/devices/virtio/virtio-blk.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../../src/devices/virtio/queue.js';
import {
  VirtioMmio, VIRTIO_MMIO_STATUS, VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_DEVICE_LOW,
  VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_INTERRUPT_ACK,
  STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_FEATURES_OK, STATUS_DRIVER_OK, STATUS_DEVICE_NEEDS_RESET,
} from '../../../src/devices/virtio/virtio-mmio.js';

const RAM_SIZE = 256 * 1024;
const QUEUE_SIZE = 16;
const DESC = 0x1000;
const AVAIL = 0x2000;
const USED = 0x3000;
const DATA = 0x4000; // requests' buffers live from here to the end of RAM
const DISK_SIZE = 64 * 1024;

export interface FuzzResult {
  chains: number;
  exceptions: number;
  firstException: string | null;
  resets: number;
  completions: number;
  /** The block device's tallies: requests completed OK, with IOERR, with UNSUPP. */
  ok: number;
  ioerr: number;
  unsupp: number;
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

export class BlkFuzzer {
  readonly ram = new Uint8Array(RAM_SIZE);
  private readonly view = new DataView(this.ram.buffer);
  readonly irq = new RecordingIrqLine();
  readonly transport: VirtioMmio;
  private readonly rand: () => number;
  private readonly blk: VirtioBlk;
  private readonly word = new Uint8Array(4);
  private readonly wordView = new DataView(this.word.buffer);
  private availIdx = 0;
  private lastUsed = 0;
  readonly result: FuzzResult = { chains: 0, exceptions: 0, firstException: null, resets: 0, completions: 0, ok: 0, ioerr: 0, unsupp: 0 };

  constructor(seed: number) {
    this.rand = prng(seed);
    const backend = new MemoryBlockBackend({ size: DISK_SIZE, id: 'fuzz' });
    this.blk = new VirtioBlk(backend);
    this.transport = new VirtioMmio({ device: this.blk, memory: new RegionGuestMemory([{ gpa: 0, bytes: this.ram }]), irq: this.irq });
    this.probe();
  }

  private int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  private w32(offset: number, v: number): void {
    this.wordView.setUint32(0, v >>> 0, true);
    this.transport.write(offset, this.word);
  }

  private r32(offset: number): number {
    this.transport.read(offset, this.word);
    return this.wordView.getUint32(0, true);
  }

  /** The Linux probe sequence over a fixed queue layout; features sometimes include junk. */
  probe(): void {
    this.result.resets++;
    this.w32(VIRTIO_MMIO_STATUS, 0);
    this.ram.fill(0, 0, DATA);
    this.availIdx = 0;
    this.lastUsed = 0;
    this.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE);
    this.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES, this.int(8) === 0 ? this.int(2 ** 32) : 1); // VERSION_1
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    // INDIRECT_DESC, EVENT_IDX, the block features; now and then bits the device never offered.
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES, this.int(8) === 0 ? this.int(2 ** 32) : (0x3000_0000 | 0x6244) & (this.int(2 ** 32) | 0x0000_4244));
    this.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    if (!(this.r32(VIRTIO_MMIO_STATUS) & STATUS_FEATURES_OK)) return; // refused: the next step probes again
    this.w32(VIRTIO_MMIO_QUEUE_SEL, 0);
    this.w32(VIRTIO_MMIO_QUEUE_NUM, this.int(16) === 0 ? this.int(300) : QUEUE_SIZE);
    this.w32(VIRTIO_MMIO_QUEUE_DESC_LOW, DESC);
    this.w32(VIRTIO_MMIO_QUEUE_DRIVER_LOW, AVAIL);
    this.w32(VIRTIO_MMIO_QUEUE_DEVICE_LOW, USED);
    this.w32(VIRTIO_MMIO_QUEUE_READY, 1);
    this.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  }

  /** An address: mostly in the data area, sometimes at the edge of RAM, outside it, or huge. */
  private addr(): number {
    switch (this.int(8)) {
      case 0: return RAM_SIZE - this.int(64);
      case 1: return RAM_SIZE + this.int(1 << 20);
      case 2: return this.int(2 ** 32) + this.int(2 ** 21) * 2 ** 32;
      case 3: return this.int(DATA); // over the rings themselves
      default: return DATA + this.int(RAM_SIZE - DATA);
    }
  }

  private len(): number {
    switch (this.int(8)) {
      case 0: return 0;
      case 1: return 0xffff_ffff - this.int(16);
      case 2: return 16 * (1 + this.int(20)); // an indirect table's length
      case 3: return 1;
      case 4: return 16;
      default: return 512 * this.int(9) + (this.int(4) === 0 ? this.int(512) : 0);
    }
  }

  private flags(): number {
    const r = this.int(16);
    if (r === 0) return this.int(0x10000);
    return (r & 1 ? VIRTQ_DESC_F_NEXT : 0) | (r & 2 ? VIRTQ_DESC_F_WRITE : 0) | (r === 4 || r === 12 ? VIRTQ_DESC_F_INDIRECT : 0);
  }

  private writeDesc(table: number, i: number, addr: number, len: number, flags: number, next: number): void {
    const at = table + 16 * i;
    if (at < 0 || at + 16 > RAM_SIZE) return;
    this.view.setUint32(at, addr % 2 ** 32, true);
    this.view.setUint32(at + 4, Math.floor(addr / 2 ** 32) % 2 ** 32, true);
    this.view.setUint32(at + 8, len >>> 0, true);
    this.view.setUint16(at + 12, flags, true);
    this.view.setUint16(at + 14, next, true);
  }

  /** A request header at a random in-RAM place: a valid or random type and sector. */
  private header(): number {
    const at = DATA + this.int(RAM_SIZE - DATA - 16);
    const types = [0, 1, 4, 8, 11, 13, 10, 14, this.int(2 ** 32)];
    this.view.setUint32(at, types[this.int(types.length)]!, true);
    this.view.setUint32(at + 8, this.int(4) === 0 ? this.int(2 ** 32) : this.int(DISK_SIZE / 512 + 4), true);
    this.view.setUint32(at + 12, this.int(16) === 0 ? this.int(2 ** 32) : 0, true);
    return at;
  }

  /** One step: write a chain (random or plausible), publish it, notify; sometimes poke a register. */
  step(): void {
    try {
      const mode = this.int(10);
      if (mode === 0) {
        // A random register write (any width, any offset in the window).
        const data = new Uint8Array([1, 2, 4, 8][this.int(4)]!);
        for (let i = 0; i < data.length; i++) data[i] = this.int(256);
        const offset = this.int(0x200);
        if (offset === VIRTIO_MMIO_STATUS) data.fill(0, 1); // keep status writes meaningful
        this.transport.write(offset, data);
      } else if (mode <= 2) {
        // Random descriptors anywhere in the table (and in a random indirect table).
        const n = 1 + this.int(QUEUE_SIZE + 2);
        for (let k = 0; k < n; k++) this.writeDesc(DESC, this.int(QUEUE_SIZE), this.addr(), this.len(), this.flags(), this.int(QUEUE_SIZE + 2));
        if (this.int(3) === 0) {
          const table = DATA + 16 * this.int((RAM_SIZE - DATA) / 16 - 32);
          for (let k = 0; k < 1 + this.int(20); k++) this.writeDesc(table, this.int(20), this.addr(), this.len(), this.flags(), this.int(22));
          this.writeDesc(DESC, this.int(QUEUE_SIZE), table, this.len(), VIRTQ_DESC_F_INDIRECT | (this.int(4) === 0 ? VIRTQ_DESC_F_NEXT : 0), this.int(QUEUE_SIZE));
        }
        this.publish(this.int(QUEUE_SIZE + 2));
      } else {
        // A plausible request: header, data, status, with random directions and lengths.
        const head = this.int(QUEUE_SIZE);
        const parts = 2 + this.int(4);
        const dataWrite = this.int(2) === 0;
        const mixed = this.int(4) === 0; // data directions at random (order violations)
        let i = head;
        for (let k = 0; k < parts; k++) {
          const last = k === parts - 1;
          const next = (i + 1 + this.int(3)) % QUEUE_SIZE;
          const addr = k === 0 ? this.header() : this.int(6) === 0 ? this.addr() : DATA + this.int(RAM_SIZE - DATA - 4096);
          const len = k === 0 ? (this.int(6) === 0 ? this.int(20) : 16) : last ? (this.int(6) === 0 ? this.len() : 1) : this.len() & 0x1fff;
          const write = k === 0 ? this.int(8) === 0 : last ? this.int(8) !== 0 : mixed ? this.int(2) === 0 : dataWrite;
          this.writeDesc(DESC, i, addr, len, (write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT), next);
          i = next;
        }
        this.publish(head);
      }
      if (this.int(50) === 0) this.availIdx = (this.availIdx + this.int(0x10000)) & 0xffff; // a wild index
      this.view.setUint16(AVAIL + 2, this.availIdx, true);
      this.w32(VIRTIO_MMIO_QUEUE_NOTIFY, this.int(20) === 0 ? this.int(4) : 0);
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

  /** The tallies, with the device's counters folded in. */
  finish(): FuzzResult {
    const { ok, ioerr, unsupp } = this.blk.counters;
    return { ...this.result, ok, ioerr, unsupp };
  }

  private publish(head: number): void {
    this.view.setUint16(AVAIL + 4 + 2 * (this.availIdx % QUEUE_SIZE), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.result.chains++;
  }

  /** Counts what the device completed. */
  private collect(): void {
    const usedIdx = this.view.getUint16(USED + 2, true);
    for (let n = 0; this.lastUsed !== usedIdx && n < QUEUE_SIZE * 2; n++) {
      this.result.completions++;
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    this.lastUsed = usedIdx;
  }
}

/** Runs `chains` published chains from `seed`; returns the tallies. */
export function fuzzVirtioBlk(chains: number, seed = 1): FuzzResult {
  const f = new BlkFuzzer(seed);
  while (f.result.chains < chains) f.step();
  return f.finish();
}
