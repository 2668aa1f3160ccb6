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
import { VirtioNet } from '../../../src/devices/virtio/virtio-net.js';
import { ETH_HLEN, NET_MAX_FRAME, type NetBackend, type NetReceiver } from '../../../src/devices/net/net-backend.js';
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../../src/devices/virtio/queue.js';
import { FuzzDriver, QUEUE_SIZE, type FuzzTally } from './fuzz-driver.js';

const RAM_SIZE = 512 * 1024;
const DATA = 0x8000; // buffers live from here to the end of RAM
const RX_BUFFER_BYTES = 64 * 1024;

export interface NetFuzzResult extends FuzzTally {
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

export class NetFuzzer extends FuzzDriver {
  readonly net: VirtioNet;
  private readonly backend = new FuzzBackend();
  private readonly frames: Uint8Array[];

  constructor(seed: number) {
    // Queue areas: rx at 0x1000.., tx at 0x4000..
    super(seed, RAM_SIZE, [{ desc: 0x1000, avail: 0x2000, used: 0x3000 }, { desc: 0x4000, avail: 0x5000, used: 0x6000 }], DATA, RAM_SIZE - DATA - 0x20000);
    this.net = new VirtioNet({ mac: Uint8Array.from([2, 0, 0, 0, 0, 1]), backend: this.backend, rxBufferBytes: RX_BUFFER_BYTES });
    // Frames the backend injects: every interesting length, allocated once.
    this.frames = [0, 1, 13, 14, 60, 1514, 1515, 4000, NET_MAX_FRAME, NET_MAX_FRAME + 1].map((n) => new Uint8Array(n).fill(0x5a));
    this.attach(this.net);
  }

  /** INDIRECT_DESC, EVENT_IDX, MAC, MTU, STATUS; now and then bits the device never offered. */
  protected featuresLow(): number {
    return 0x3001_0028 & (this.int(2 ** 32) | 0x1000_0000);
  }

  /** A length: header-sized, frame-sized, around the limits, or wild. */
  protected len(): number {
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

  /** A register poke, random or plausible chains on either queue, a frame from the host, or an old chain again. */
  protected act(): number {
    const mode = this.int(12);
    const q = this.int(2);
    if (mode === 0) {
      this.poke();
    } else if (mode <= 2) {
      this.randomChain(q);
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
        this.writeDesc(this.queues[q]!.desc, i, addr, len, (write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT), next);
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
    return q;
  }

  /** The tallies, with the device's counters folded in. */
  finish(): NetFuzzResult {
    const c = this.net.counters;
    return {
      ...this.result, badLengths: this.backend.badLengths, txFrames: c.txFrames, txErrors: c.txErrors, txOversize: c.txOversize,
      txDropped: c.txDropped, rxFrames: c.rxFrames, rxTooBig: c.rxTooBig, rxDropped: c.rxDropped, rxErrors: c.rxErrors,
    };
  }
}

/** Runs `chains` published chains from `seed`; returns the tallies. */
export function fuzzVirtioNet(chains: number, seed = 1): NetFuzzResult {
  const f = new NetFuzzer(seed);
  while (f.result.chains < chains) f.step();
  return f.finish();
}
