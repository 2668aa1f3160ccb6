/** A virtio-blk driver for the tests: builds requests as Linux's virtio_blk.c does (header, data, status). */
import { RecordingIrqLine } from '../../../src/devices/irq.js';
import { VirtioMmio } from '../../../src/devices/virtio/virtio-mmio.js';
import { VirtioBlk } from '../../../src/devices/virtio/virtio-blk.js';
import type { BlockBackend } from '../../../src/devices/virtio/block-backend.js';
import { TestDriver, TestRam, type Buf, type DriverQueue } from './driver.js';

export class BlkHarness {
  readonly ram: TestRam;
  readonly irq = new RecordingIrqLine();
  readonly device: VirtioBlk;
  readonly transport: VirtioMmio;
  readonly driver: TestDriver;
  queue!: DriverQueue;

  constructor(readonly backend: BlockBackend, ramSize = 4 << 20) {
    this.ram = new TestRam(ramSize);
    this.device = new VirtioBlk(backend);
    this.transport = new VirtioMmio({ device: this.device, memory: this.ram.mem, irq: this.irq });
    this.driver = new TestDriver(this.transport, this.ram);
  }

  probe(accept?: (offered: bigint) => bigint): this {
    this.queue = this.driver.probe(1, accept)[0]!;
    return this;
  }

  header(type: number, sector: number): number {
    const h = this.ram.alloc(16);
    this.ram.setU32(h, type);
    this.ram.setU32(h + 4, 0);
    this.ram.setU64(h + 8, sector);
    return h;
  }

  /** Submits a chain, kicks, and returns the used entry and the status byte. */
  submit(bufs: Buf[], opts: { indirect?: boolean; status?: number } = {}): { len: number; status: number } {
    const head = opts.indirect ? this.queue.addIndirect(bufs) : this.queue.addChain(bufs);
    this.queue.publish(head);
    this.driver.kick(0);
    const used = this.queue.takeUsed();
    if (used.length !== 1 || used[0]!.id !== head) throw new Error(`expected one completion for ${head}, got ${JSON.stringify(used)}`);
    return { len: used[0]!.len, status: opts.status === undefined ? -1 : this.ram.u8(opts.status) };
  }

  /** A request of `type` at `sector` with readable `out` data and `inLen` writable bytes before the status. */
  request(type: number, sector: number, out: Uint8Array | null, inLen: number, opts: { indirect?: boolean } = {}): { len: number; status: number; data: Uint8Array } {
    const bufs: Buf[] = [{ addr: this.header(type, sector), len: 16 }];
    if (out) bufs.push({ addr: this.ram.put(out), len: out.length });
    const data = inLen > 0 ? this.ram.alloc(inLen) : 0;
    if (inLen > 0) bufs.push({ addr: data, len: inLen, write: true });
    const status = this.ram.alloc(1);
    this.ram.bytes[status] = 0xee;
    bufs.push({ addr: status, len: 1, write: true });
    const r = this.submit(bufs, { ...opts, status });
    return { ...r, data: inLen > 0 ? this.ram.get(data, inLen) : new Uint8Array(0) };
  }
}

/** A discard / write-zeroes segment. */
export function segment(sector: number, sectors: number, flags = 0): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint32(0, sector % 2 ** 32, true);
  v.setUint32(4, Math.floor(sector / 2 ** 32), true);
  v.setUint32(8, sectors, true);
  v.setUint32(12, flags, true);
  return b;
}
