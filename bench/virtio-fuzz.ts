/**
 * virtio-fuzz: 10^6 malformed and half-formed descriptor chains through virtio-mmio + virtio-blk
 * (test/devices/virtio/fuzz.ts), the long run of the fuzz test. Prints the tallies, host
 * exceptions (must be 0), RSS growth, the rate, and `ratio R`: the cost of one fuzzed chain
 * against one well-formed 4 KiB read through the same transport and device in the same run.
 * TSVMM_VIRTIO_FUZZ_CHAINS sets the count.
 */
import { performance } from 'node:perf_hooks';
import { fuzzVirtioBlk } from '../test/devices/virtio/fuzz.js';
import { BlkHarness } from '../test/devices/virtio/blk.js';
import { MemoryBlockBackend } from '../src/devices/virtio/block-backend.js';
import { VIRTIO_BLK_T_IN } from '../src/devices/virtio/virtio-blk.js';

const MiB = 1 << 20;

/** µs per well-formed 4 KiB read (header, data, status), buffers reused. */
function referenceRead(count: number): number {
  const h = new BlkHarness(new MemoryBlockBackend({ size: MiB }), 1 << 20).probe();
  const hdr = h.header(VIRTIO_BLK_T_IN, 8);
  const data = h.ram.alloc(4096);
  const status = h.ram.alloc(1);
  const bufs = [{ addr: hdr, len: 16 }, { addr: data, len: 4096, write: true }, { addr: status, len: 1, write: true }];
  const t = performance.now();
  for (let i = 0; i < count; i++) h.submit(bufs);
  return ((performance.now() - t) * 1000) / count;
}

export async function run(): Promise<void> {
  const chains = Number(process.env.TSVMM_VIRTIO_FUZZ_CHAINS ?? 1_000_000);
  referenceRead(20_000);
  fuzzVirtioBlk(20_000, 99);
  const rssBefore = process.memoryUsage().rss;
  const t = performance.now();
  const r = fuzzVirtioBlk(chains, 1);
  const s = (performance.now() - t) / 1000;
  const growth = (process.memoryUsage().rss - rssBefore) / MiB;
  const refUs = referenceRead(100_000);
  const fuzzUs = (s * 1e6) / chains;
  process.stdout.write(
    `virtio-fuzz: ${r.chains} chains in ${s.toFixed(1)} s (${fuzzUs.toFixed(2)} µs/chain): ` +
      `${r.ok} OK, ${r.ioerr} IOERR, ${r.unsupp} UNSUPP, ${r.resets} resets (DEVICE_NEEDS_RESET or refused setup); ` +
      `host exceptions ${r.exceptions}; RSS growth ${growth.toFixed(1)} MiB\n` +
      `reference: a well-formed 4 KiB read ${refUs.toFixed(2)} µs; ratio ${(fuzzUs / refUs).toFixed(2)}\n`,
  );
  if (r.exceptions > 0) {
    process.stdout.write(`first exception: ${r.firstException}\n`);
    process.exitCode = 1;
  }
}
