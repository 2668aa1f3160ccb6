/**
 * A fuzzer for virtio-net over the virtio-mmio transport: a driver that writes random and
 * half-formed receive and transmit chains (wrong directions, headers cut short, offload bits,
 * oversized frames, buffers outside RAM), random register writes, and a backend that injects
 * frames of any length, fills up and drains at random, and now and then goes away. Deterministic
 * for a seed; used by virtio-net-fuzz.test.ts.
 *
 * What must hold: no exception reaches the caller, host memory does not grow with the number of
 * chains, the backend only ever gets frames of an Ethernet frame's possible lengths, and the
 * device either completes a chain or sets DEVICE_NEEDS_RESET (after which the fuzzer resets it).
 */
import { RecordingIrqLine } from '../../../src/devices/irq.js';
import { RegionGuestMemory } from '../../../src/devices/virtio/guest-memory.js';
import { VirtioNet } from '../../../src/devices/virtio/virtio-net.js';
import { ETH_HLEN, NET_MAX_FRAME, type NetBackend, type NetReceiver } from '../../../src/devices/net/net-backend.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../../src/devices/virtio/queue.js';
import {
  VirtioMmio, VIRTIO_MMIO_STATUS, VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_DEVICE_LOW,
  VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_INTERRUPT_ACK,
  STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_FEATURES_OK, STATUS_DRIVER_OK, STATUS_DEVICE_NEEDS_RESET,
} from '../../../src/devices/virtio/virtio-mmio.js';

const RAM_SIZE = 512 * 1024;
const QUEUE_SIZE = 16;
/** Queue areas: rx at 0x1000.., tx at 0x4000.. */
const LAYOUT = [
  { desc: 0x1000, avail: 0x2000, used: 0x3000 },
  { desc: 0x4000, avail: 0x5000, used: 0x6000 },
] as const;
const DATA = 0x8000; // buffers live from here to the end of RAM
const RX_BUFFER_BYTES = 64 * 1024;

export interface NetFuzzResult {
  chains: number;
  exceptions: number;
  firstException: string | null;
  resets: number;
  completions: number;
  /** Frames the backend got with a length no Ethernet frame has (must stay 0). */
  badLengths: number;
  txFrames: number;
  txErrors: number;
  txOversize: number;
  txDropped: number;
  rxFrames: number;
  rxTooBig: number;
  rxDropped: number;
  rxErrors: number;
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

/** A backend that fills and drains when the fuzzer says. */
class FuzzBackend implements NetBackend {
  readonly description = 'fuzz';
  receiver: NetReceiver | null = null;
  full = false;
  badLengths = 0;

  attach(receiver: NetReceiver): void {
    this.receiver = receiver;
  }

  send(frame: Uint8Array): boolean {
    if (frame.length < ETH_HLEN || frame.length > NET_MAX_FRAME) this.badLengths++;
    return !this.full;
  }

  async close(): Promise<void> {}
}

export class NetFuzzer {
  readonly ram = new Uint8Array(RAM_SIZE);
  private readonly view = new DataView(this.ram.buffer);
  readonly irq = new RecordingIrqLine();
  readonly transport: VirtioMmio;
  readonly net: VirtioNet;
  private readonly backend = new FuzzBackend();
  private readonly rand: () => number;
  private readonly word = new Uint8Array(4);
  private readonly wordView = new DataView(this.word.buffer);
  private readonly availIdx = [0, 0];
  private readonly lastUsed = [0, 0];
  private readonly frames: Uint8Array[];
  readonly result = { chains: 0, exceptions: 0, firstException: null as string | null, resets: 0, completions: 0 };

  constructor(seed: number) {
    this.rand = prng(seed);
    this.net = new VirtioNet({ mac: Uint8Array.from([2, 0, 0, 0, 0, 1]), backend: this.backend, rxBufferBytes: RX_BUFFER_BYTES });
    this.transport = new VirtioMmio({ device: this.net, memory: new RegionGuestMemory([{ gpa: 0, bytes: this.ram }]), irq: this.irq });
    // Frames the backend injects: every interesting length, allocated once.
    this.frames = [0, 1, 13, 14, 60, 1514, 1515, 4000, NET_MAX_FRAME, NET_MAX_FRAME + 1].map((n) => new Uint8Array(n).fill(0x5a));
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

  /** The Linux probe sequence over a fixed layout; features sometimes include junk. */
  probe(): void {
    this.result.resets++;
    this.w32(VIRTIO_MMIO_STATUS, 0);
    this.ram.fill(0, 0, DATA);
    this.availIdx.fill(0);
    this.lastUsed.fill(0);
    this.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE);
    this.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES, this.int(8) === 0 ? this.int(2 ** 32) : 1); // VERSION_1
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    // INDIRECT_DESC, EVENT_IDX, MAC, MTU, STATUS; now and then bits the device never offered.
    this.w32(VIRTIO_MMIO_DRIVER_FEATURES, this.int(8) === 0 ? this.int(2 ** 32) : 0x3001_0028 & (this.int(2 ** 32) | 0x1000_0000));
    this.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    if (!(this.r32(VIRTIO_MMIO_STATUS) & STATUS_FEATURES_OK)) return; // refused: the next step probes again
    for (const q of [0, 1]) {
      this.w32(VIRTIO_MMIO_QUEUE_SEL, q);
      this.w32(VIRTIO_MMIO_QUEUE_NUM, this.int(16) === 0 ? this.int(300) : QUEUE_SIZE);
      this.w32(VIRTIO_MMIO_QUEUE_DESC_LOW, LAYOUT[q]!.desc);
      this.w32(VIRTIO_MMIO_QUEUE_DRIVER_LOW, LAYOUT[q]!.avail);
      this.w32(VIRTIO_MMIO_QUEUE_DEVICE_LOW, LAYOUT[q]!.used);
      this.w32(VIRTIO_MMIO_QUEUE_READY, 1);
    }
    this.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  }

  /** An address: mostly in the data area, sometimes at the edge of RAM, outside it, or huge. */
  private addr(): number {
    switch (this.int(8)) {
      case 0: return RAM_SIZE - this.int(64);
      case 1: return RAM_SIZE + this.int(1 << 20);
      case 2: return this.int(2 ** 32) + this.int(2 ** 21) * 2 ** 32;
      case 3: return this.int(DATA); // over the rings themselves
      default: return DATA + this.int(RAM_SIZE - DATA - 0x20000);
    }
  }

  /** A length: header-sized, frame-sized, around the limits, or wild. */
  private len(): number {
    switch (this.int(10)) {
      case 0: return 0;
      case 1: return 0xffff_ffff - this.int(16);
      case 2: return 16 * (1 + this.int(20)); // an indirect table's length
      case 3: return 11 + this.int(4);
      case 4: return 65562 + this.int(3) - 1;
      case 5: return this.int(0x20000);
      default: return 12 + 14 + this.int(1600);
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

  /** One step: a chain on a queue (random or plausible), a frame from the host, or a register poke; then notify. */
  step(): void {
    try {
      const mode = this.int(12);
      const q = this.int(2);
      const desc = LAYOUT[q]!.desc;
      if (mode === 0) {
        const data = new Uint8Array([1, 2, 4, 8][this.int(4)]!);
        for (let i = 0; i < data.length; i++) data[i] = this.int(256);
        const offset = this.int(0x200);
        if (offset === VIRTIO_MMIO_STATUS) data.fill(0, 1); // keep status writes meaningful
        this.transport.write(offset, data);
      } else if (mode <= 2) {
        // Random descriptors anywhere in the table (and in a random indirect table).
        const n = 1 + this.int(QUEUE_SIZE + 2);
        for (let k = 0; k < n; k++) this.writeDesc(desc, this.int(QUEUE_SIZE), this.addr(), this.len(), this.flags(), this.int(QUEUE_SIZE + 2));
        if (this.int(3) === 0) {
          const table = DATA + 16 * this.int((RAM_SIZE - DATA) / 16 - 32);
          for (let k = 0; k < 1 + this.int(20); k++) this.writeDesc(table, this.int(20), this.addr(), this.len(), this.flags(), this.int(22));
          this.writeDesc(desc, this.int(QUEUE_SIZE), table, this.len(), VIRTQ_DESC_F_INDIRECT | (this.int(4) === 0 ? VIRTQ_DESC_F_NEXT : 0), this.int(QUEUE_SIZE));
        }
        this.publish(q, this.int(QUEUE_SIZE + 2));
      } else if (mode <= 7) {
        // A plausible chain: 1-3 buffers, the right direction mostly; on tx a header with random offload bits.
        const head = this.int(QUEUE_SIZE);
        const parts = 1 + this.int(3);
        const tx = q === 1;
        const wrongWay = this.int(8) === 0 ? this.int(parts) : -1; // one buffer in the direction the queue does not take
        let i = head;
        for (let k = 0; k < parts; k++) {
          const last = k === parts - 1;
          const next = (i + 1 + this.int(3)) % QUEUE_SIZE;
          const addr = this.int(8) === 0 ? this.addr() : DATA + this.int(RAM_SIZE - DATA - 0x20000);
          const len = this.int(6) === 0 ? this.len() : k === 0 && parts > 1 ? 12 : tx ? 14 + this.int(1500) : 1526;
          const write = tx !== (k !== wrongWay);
          if (tx && k === 0 && addr + 2 <= RAM_SIZE) {
            this.view.setUint8(addr, this.int(8) === 0 ? this.int(256) : 0); // flags
            this.view.setUint8(addr + 1, this.int(8) === 0 ? this.int(256) : 0); // gso_type
          }
          this.writeDesc(desc, i, addr, len, (write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT), next);
          i = next;
        }
        this.publish(q, head);
      } else if (mode <= 10) {
        // The host network: a frame of any length, a backend that fills, drains or goes away.
        this.backend.receiver?.frame(this.frames[this.int(this.frames.length)]!);
        const r = this.int(20);
        if (r === 0) this.backend.full = true;
        else if (r <= 4 && this.backend.full) {
          this.backend.full = false;
          this.backend.receiver?.writable();
        } else if (r === 5 && this.int(10) === 0) {
          this.backend.receiver?.closed('fuzz: backend gone');
          this.net.setLinkUp(true);
        }
      } else {
        this.publish(q, this.int(QUEUE_SIZE)); // an old chain made available again
      }
      if (this.int(50) === 0) this.availIdx[q] = (this.availIdx[q]! + this.int(0x10000)) & 0xffff; // a wild index
      this.view.setUint16(LAYOUT[q]!.avail + 2, this.availIdx[q]!, true);
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

  /** The tallies, with the device's counters folded in. */
  finish(): NetFuzzResult {
    const c = this.net.counters;
    return {
      ...this.result, badLengths: this.backend.badLengths, txFrames: c.txFrames, txErrors: c.txErrors, txOversize: c.txOversize,
      txDropped: c.txDropped, rxFrames: c.rxFrames, rxTooBig: c.rxTooBig, rxDropped: c.rxDropped, rxErrors: c.rxErrors,
    };
  }

  private publish(q: number, head: number): void {
    this.view.setUint16(LAYOUT[q]!.avail + 4 + 2 * (this.availIdx[q]! % QUEUE_SIZE), head, true);
    this.availIdx[q] = (this.availIdx[q]! + 1) & 0xffff;
    this.result.chains++;
  }

  /** Counts what the device completed on both queues. */
  private collect(): void {
    for (const q of [0, 1]) {
      const usedIdx = this.view.getUint16(LAYOUT[q]!.used + 2, true);
      this.result.completions += (usedIdx - this.lastUsed[q]!) & 0xffff;
      this.lastUsed[q] = usedIdx;
    }
  }
}

/** Runs `chains` published chains from `seed`; returns the tallies. */
export function fuzzVirtioNet(chains: number, seed = 1): NetFuzzResult {
  const f = new NetFuzzer(seed);
  while (f.result.chains < chains) f.step();
  return f.finish();
}
