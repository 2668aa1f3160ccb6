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
import { MemoryBlockBackend } from '../../../src/devices/virtio/block-backend.js';
import { VirtioBlk } from '../../../src/devices/virtio/virtio-blk.js';
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../../src/devices/virtio/queue.js';
import { FuzzDriver, QUEUE_SIZE, type FuzzTally } from './fuzz-driver.js';

const RAM_SIZE = 256 * 1024;
const DATA = 0x4000; // requests' buffers live from here to the end of RAM
const DISK_SIZE = 64 * 1024;

export interface FuzzResult extends FuzzTally {
  /** The block device's tallies: requests completed OK, with IOERR, with UNSUPP. */
  ok: number;
  ioerr: number;
  unsupp: number;
}

export class BlkFuzzer extends FuzzDriver {
  private readonly blk: VirtioBlk;

  constructor(seed: number) {
    super(seed, RAM_SIZE, [{ desc: 0x1000, avail: 0x2000, used: 0x3000 }], DATA, RAM_SIZE - DATA);
    this.blk = new VirtioBlk(new MemoryBlockBackend({ size: DISK_SIZE, id: 'fuzz' }));
    this.attach(this.blk);
  }

  /** INDIRECT_DESC, EVENT_IDX, the block features; now and then bits the device never offered. */
  protected featuresLow(): number {
    return (0x3000_0000 | 0x6244) & (this.int(2 ** 32) | 0x0000_4244);
  }

  protected len(): number {
    switch (this.int(8)) {
      case 0: return 0;
      case 1: return 0xffff_ffff - this.int(16);
      case 2: return 16 * (1 + this.int(20)); // an indirect table's length
      case 3: return 1;
      case 4: return 16;
      default: return 512 * this.int(9) + (this.int(4) === 0 ? this.int(512) : 0);
    }
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

  /** A register poke, random descriptors, or a plausible request (header, data, status); the queue is 0. */
  protected act(): number {
    const mode = this.int(10);
    if (mode === 0) {
      this.poke();
    } else if (mode <= 2) {
      this.randomChain(0);
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
        this.writeDesc(this.queues[0]!.desc, i, addr, len, (write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT), next);
        i = next;
      }
      this.publish(0, head);
    }
    return 0;
  }

  /** The tallies, with the device's counters folded in. */
  finish(): FuzzResult {
    const { ok, ioerr, unsupp } = this.blk.counters;
    return { ...this.result, ok, ioerr, unsupp };
  }
}

/** Runs `chains` published chains from `seed`; returns the tallies. */
export function fuzzVirtioBlk(chains: number, seed = 1): FuzzResult {
  const f = new BlkFuzzer(seed);
  while (f.result.chains < chains) f.step();
  return f.finish();
}
