import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBlockBackend, type BlockBackend, type BlockOutcome } from '../../../src/devices/virtio/block-backend.js';
import {
  VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES, BLK_SEG_MAX, BLK_MAX_DISCARD_SECTORS,
} from '../../../src/devices/virtio/virtio-blk.js';
import { featureBit } from '../../../src/devices/virtio/device.js';
import { STATUS_DEVICE_NEEDS_RESET, INTERRUPT_CONFIG_CHANGE } from '../../../src/devices/virtio/virtio-mmio.js';
import { BlkHarness, segment } from './blk.js';

const MiB = 1 << 20;

function pattern(n: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
}

function disk(opts: { readOnly?: boolean; contents?: Uint8Array } = {}) {
  const backend = new MemoryBlockBackend({ size: MiB, id: 'tsvmm-disk-0', ...opts });
  return { backend, h: new BlkHarness(backend).probe() };
}

test('configuration space: capacity, seg_max, blk_size, discard and write-zeroes limits', () => {
  const { h } = disk();
  assert.equal(h.driver.config(0, 4), MiB / 512);
  assert.equal(h.driver.config(4, 4), 0);
  assert.equal(h.driver.config(12, 4), BLK_SEG_MAX);
  // A 1 MiB buffer is 256 pages: with fewer segments Linux splits dd's 1 MiB writes in two.
  assert.ok(BLK_SEG_MAX >= 256, `seg_max ${BLK_SEG_MAX} lets a 1 MiB request of 4 KiB pages through whole`);
  assert.ok(h.driver.queues[0]!.size >= BLK_SEG_MAX + 2, 'the queue (and an indirect table, bounded by it) holds header, segments and status');
  assert.equal(h.driver.config(20, 4), 512);
  assert.equal(h.driver.config(36, 4), BLK_MAX_DISCARD_SECTORS);
  assert.equal(h.driver.config(56, 1), 1);
  const f = h.transport.features;
  for (const bit of [VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES]) {
    assert.notEqual(f & featureBit(bit), 0n, `feature ${bit}`);
  }
  assert.equal(f & featureBit(VIRTIO_BLK_F_RO), 0n);
});

test('write then read back, direct and indirect; used length counts data and status for reads', () => {
  const { h, backend } = disk();
  const data = pattern(4096);
  const w = h.request(VIRTIO_BLK_T_OUT, 8, data, 0);
  assert.deepEqual([w.status, w.len], [VIRTIO_BLK_S_OK, 1]);
  assert.deepEqual(backend.bytes.subarray(8 * 512, 8 * 512 + 4096), data);
  const r = h.request(VIRTIO_BLK_T_IN, 8, null, 4096, { indirect: true });
  assert.deepEqual([r.status, r.len], [VIRTIO_BLK_S_OK, 4097]);
  assert.deepEqual(r.data, data);
  assert.equal(h.irq.level, true);
});

test('a request spread over many small buffers (any layout): header split, data in 512-byte pieces', () => {
  const { h, backend } = disk();
  backend.bytes.set(pattern(2048, 3), 512 * 100);
  const hdr = h.header(VIRTIO_BLK_T_IN, 100);
  const pieces = [0, 1, 2, 3].map(() => h.ram.alloc(512));
  const status = h.ram.alloc(1);
  const r = h.submit([
    { addr: hdr, len: 5 }, { addr: hdr + 5, len: 11 },
    ...pieces.map((addr) => ({ addr, len: 512, write: true })),
    { addr: status, len: 1, write: true },
  ], { status });
  assert.equal(r.status, VIRTIO_BLK_S_OK);
  assert.deepEqual(Uint8Array.from(pieces.flatMap((p) => [...h.ram.get(p, 512)])), pattern(2048, 3));
});

test('FLUSH reaches the backend; GET_ID returns the serial, zero-padded to 20 bytes', () => {
  const { h, backend } = disk();
  assert.equal(h.request(VIRTIO_BLK_T_FLUSH, 0, null, 0).status, VIRTIO_BLK_S_OK);
  assert.equal(backend.flushes, 1);
  const id = h.request(VIRTIO_BLK_T_GET_ID, 0, null, 20);
  assert.deepEqual([id.status, id.len], [VIRTIO_BLK_S_OK, 21]);
  assert.equal(new TextDecoder().decode(id.data), 'tsvmm-disk-0\0\0\0\0\0\0\0\0');
});

test('DISCARD and WRITE_ZEROES: ranges read back as zeros; flags and limits as the spec says', () => {
  const { h, backend } = disk({ contents: pattern(MiB) });
  const seg = (s: number, n: number, f = 0) => segment(s, n, f);
  assert.equal(h.request(VIRTIO_BLK_T_DISCARD, 0, seg(8, 8), 0).status, VIRTIO_BLK_S_OK);
  assert.ok(backend.bytes.subarray(8 * 512, 16 * 512).every((b) => b === 0));
  const two = new Uint8Array(32);
  two.set(seg(32, 1, 1), 0);
  two.set(seg(40, 2), 16);
  assert.equal(h.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, two, 0).status, VIRTIO_BLK_S_OK);
  assert.ok(backend.bytes.subarray(32 * 512, 33 * 512).every((b) => b === 0));
  assert.ok(backend.bytes.subarray(40 * 512, 42 * 512).every((b) => b === 0));
  assert.notEqual(backend.bytes[42 * 512 + 1], 0);
  // UNMAP on a DISCARD and unknown flags: UNSUPP, nothing done.
  assert.equal(h.request(VIRTIO_BLK_T_DISCARD, 0, seg(64, 1, 1), 0).status, VIRTIO_BLK_S_UNSUPP);
  assert.equal(h.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, seg(64, 1, 2), 0).status, VIRTIO_BLK_S_UNSUPP);
  assert.notEqual(backend.bytes[64 * 512 + 1], 0);
  // Past the end, too many sectors, a torn segment, writable data: IOERR.
  assert.equal(h.request(VIRTIO_BLK_T_DISCARD, 0, seg(MiB / 512, 1), 0).status, VIRTIO_BLK_S_IOERR);
  assert.equal(h.request(VIRTIO_BLK_T_DISCARD, 0, seg(0, BLK_MAX_DISCARD_SECTORS + 1), 0).status, VIRTIO_BLK_S_IOERR);
  assert.equal(h.request(VIRTIO_BLK_T_DISCARD, 0, seg(0, 1).subarray(0, 12), 0).status, VIRTIO_BLK_S_IOERR);
  assert.equal(h.request(VIRTIO_BLK_T_DISCARD, 0, seg(0, 1), 16).status, VIRTIO_BLK_S_IOERR);
  // One bad segment refuses the whole request before any is done.
  const mixed = new Uint8Array(32);
  mixed.set(seg(80, 1), 0);
  mixed.set(seg(MiB / 512, 1), 16);
  assert.equal(h.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, mixed, 0).status, VIRTIO_BLK_S_IOERR);
  assert.notEqual(backend.bytes[80 * 512 + 1], 0);
});

test('DISCARD and WRITE_ZEROES not negotiated: UNSUPP', () => {
  const backend = new MemoryBlockBackend({ size: MiB, contents: pattern(MiB) });
  const h = new BlkHarness(backend).probe((f) => f & ~(featureBit(VIRTIO_BLK_F_DISCARD) | featureBit(VIRTIO_BLK_F_WRITE_ZEROES)));
  assert.equal(h.request(VIRTIO_BLK_T_DISCARD, 0, segment(0, 1), 0).status, VIRTIO_BLK_S_UNSUPP);
  assert.equal(h.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, segment(0, 1), 0).status, VIRTIO_BLK_S_UNSUPP);
  assert.notEqual(backend.bytes[1], 0);
});

test('read-only disk: RO offered, DISCARD/WRITE_ZEROES not; writes fail with IOERR and change nothing', () => {
  const { h, backend } = disk({ readOnly: true, contents: pattern(MiB) });
  const f = h.transport.features;
  assert.notEqual(f & featureBit(VIRTIO_BLK_F_RO), 0n);
  assert.equal(f & featureBit(VIRTIO_BLK_F_DISCARD), 0n);
  assert.equal(h.request(VIRTIO_BLK_T_OUT, 0, new Uint8Array(512), 0).status, VIRTIO_BLK_S_IOERR);
  assert.equal(backend.bytes[1], pattern(2)[1]);
  assert.equal(h.request(VIRTIO_BLK_T_DISCARD, 0, segment(0, 1), 0).status, VIRTIO_BLK_S_UNSUPP);
  assert.equal(h.request(VIRTIO_BLK_T_IN, 0, null, 512).status, VIRTIO_BLK_S_OK);
  assert.equal(h.request(VIRTIO_BLK_T_FLUSH, 0, null, 0).status, VIRTIO_BLK_S_OK);
});

test('wrong directions, torn headers, partial sectors, out-of-range sectors, unknown types', () => {
  const { h, backend } = disk();
  // Readable data on a read, writable data on a write.
  assert.equal(h.request(VIRTIO_BLK_T_IN, 0, new Uint8Array(512), 512).status, VIRTIO_BLK_S_IOERR);
  assert.equal(h.request(VIRTIO_BLK_T_OUT, 0, pattern(512), 512).status, VIRTIO_BLK_S_IOERR);
  assert.equal(backend.bytes[1], 0);
  // The header in device-writable memory: only 0 readable bytes.
  const hdr = h.header(VIRTIO_BLK_T_IN, 0);
  const st = h.ram.alloc(1);
  assert.equal(h.submit([{ addr: hdr, len: 16, write: true }, { addr: st, len: 1, write: true }], { status: st }).status, VIRTIO_BLK_S_IOERR);
  // A header cut short.
  assert.equal(h.submit([{ addr: hdr, len: 10 }, { addr: st, len: 1, write: true }], { status: st }).status, VIRTIO_BLK_S_IOERR);
  assert.equal(h.request(VIRTIO_BLK_T_IN, 0, null, 100).status, VIRTIO_BLK_S_IOERR);
  assert.equal(h.request(VIRTIO_BLK_T_IN, MiB / 512 - 1, null, 1024).status, VIRTIO_BLK_S_IOERR);
  assert.equal(h.request(VIRTIO_BLK_T_IN, 2 ** 52, null, 512).status, VIRTIO_BLK_S_IOERR);
  assert.equal(h.request(VIRTIO_BLK_T_OUT, 2 ** 40, pattern(512), 0).status, VIRTIO_BLK_S_IOERR);
  assert.equal(h.request(VIRTIO_BLK_T_IN, MiB / 512 - 1, null, 512).status, VIRTIO_BLK_S_OK, 'the last sector');
  assert.equal(h.request(99, 0, null, 0).status, VIRTIO_BLK_S_UNSUPP);
  assert.equal(h.request(10, 0, null, 0).status, VIRTIO_BLK_S_UNSUPP); // GET_LIFETIME: not offered
  assert.deepEqual(h.device.counters, { requests: 11, ok: 1, ioerr: 8, unsupp: 2 });
  assert.equal(h.driver.status & STATUS_DEVICE_NEEDS_RESET, 0);
});

test('a request with no device-writable status byte cannot complete: DEVICE_NEEDS_RESET', () => {
  const { h } = disk();
  h.queue.publish(h.queue.addChain([{ addr: h.header(VIRTIO_BLK_T_FLUSH, 0), len: 16 }]));
  h.driver.kick(0);
  assert.equal(h.queue.usedIdx, 0);
  assert.equal(h.driver.status & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET);
  assert.equal(h.driver.ackInterrupt() & INTERRUPT_CONFIG_CHANGE, INTERRUPT_CONFIG_CHANGE);
});

/** A backend whose operations complete when the test says. */
class DeferredBackend implements BlockBackend {
  readonly inner = new MemoryBlockBackend({ size: MiB, id: 'async' });
  readonly id = 'async';
  readonly size = MiB;
  readonly readOnly = false;
  readonly pending: (() => void)[] = [];
  private later(run: () => BlockOutcome): Promise<BlockOutcome> {
    return new Promise((resolve) => this.pending.push(() => resolve(run())));
  }
  read(o: number, b: readonly Uint8Array[]) { return this.later(() => this.inner.read(o, b)); }
  write(o: number, b: readonly Uint8Array[]) { return this.later(() => this.inner.write(o, b)); }
  flush() { return this.later(() => this.inner.flush()); }
  discard(o: number, l: number) { return this.later(() => this.inner.discard(o, l)); }
  writeZeroes(o: number, l: number) { return this.later(() => this.inner.writeZeroes(o, l)); }
  close() {}
}

test('asynchronous backend: completions are posted when they settle, in any order; none after a reset', async () => {
  const backend = new DeferredBackend();
  const h = new BlkHarness(backend).probe();
  const st1 = h.ram.alloc(1);
  const st2 = h.ram.alloc(1);
  const head1 = h.queue.addChain([{ addr: h.header(VIRTIO_BLK_T_OUT, 0), len: 16 }, { addr: h.ram.put(pattern(512)), len: 512 }, { addr: st1, len: 1, write: true }]);
  const head2 = h.queue.addChain([{ addr: h.header(VIRTIO_BLK_T_FLUSH, 0), len: 16 }, { addr: st2, len: 1, write: true }]);
  h.ram.bytes[st1] = 0xee;
  h.ram.bytes[st2] = 0xee;
  h.queue.publish(head1);
  h.queue.publish(head2);
  h.driver.kick(0);
  assert.equal(h.queue.usedIdx, 0, 'nothing completes before the backend does');
  assert.equal(h.irq.level, false);
  backend.pending[1]!();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(h.queue.takeUsed(), [{ id: head2, len: 1 }]);
  assert.equal(h.ram.u8(st2), VIRTIO_BLK_S_OK);
  assert.equal(h.ram.u8(st1), 0xee);
  assert.equal(h.irq.level, true);
  backend.pending[0]!();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(h.queue.takeUsed(), [{ id: head1, len: 1 }]);
  // A request still in flight at reset is dropped.
  const st3 = h.ram.alloc(1);
  h.ram.bytes[st3] = 0xee;
  h.queue.publish(h.queue.addChain([{ addr: h.header(VIRTIO_BLK_T_FLUSH, 0), len: 16 }, { addr: st3, len: 1, write: true }]));
  h.driver.kick(0);
  h.driver.w32(0x70, 0);
  backend.pending[2]!();
  await new Promise((r) => setImmediate(r));
  assert.equal(h.ram.u8(st3), 0xee);
  assert.equal(h.queue.usedIdx, 2);
});
