import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Chain, QueueFault, SplitQueue, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
  copyFromSegments, copyToSegments, sliceSegments, type QueueFaultKind,
} from '../../../src/devices/virtio/queue.js';
import { RegionGuestMemory } from '../../../src/devices/virtio/guest-memory.js';
import { DriverQueue, TestRam } from './driver.js';

const ALL = { indirect: true, eventIdx: true };

function setup(size = 8, features = ALL, ram = new TestRam(1 << 20)) {
  const dq = new DriverQueue(ram, size);
  const q = SplitQueue.open(ram.mem, { size, desc: dq.desc, driver: dq.avail, device: dq.used }, features, 256);
  assert.ok(q instanceof SplitQueue, q instanceof QueueFault ? q.message : 'opened');
  return { ram, dq, q };
}

function expectChain(r: Chain | QueueFault | null): Chain {
  assert.ok(r instanceof Chain, r instanceof QueueFault ? `fault ${r.kind}: ${r.message}` : 'a chain');
  return r;
}

function expectFault(r: Chain | QueueFault | null, kind: QueueFaultKind): void {
  assert.ok(r instanceof QueueFault, `expected fault ${kind}`);
  assert.equal(r.kind, kind, r.message);
}

test('direct chain: readable then writable buffers become views of guest RAM', () => {
  const { ram, dq, q } = setup();
  const a = ram.put(Uint8Array.from([1, 2, 3]));
  const b = ram.alloc(5);
  const c = ram.alloc(2);
  dq.publish(dq.addChain([{ addr: a, len: 3 }, { addr: b, len: 5, write: true }, { addr: c, len: 2, write: true }]));
  assert.equal(q.availableCount, 1);
  const chain = expectChain(q.pop());
  assert.equal(chain.readableLength, 3);
  assert.equal(chain.writableLength, 7);
  assert.deepEqual([...chain.readable[0]!], [1, 2, 3]);
  copyToSegments(chain.writable, 0, Uint8Array.from([9, 8, 7, 6, 5, 4, 3]));
  assert.deepEqual([...ram.get(b, 5), ...ram.get(c, 2)], [9, 8, 7, 6, 5, 4, 3]);
  assert.equal(q.pop(), null);
  q.push(chain.head, 7);
  assert.deepEqual(dq.takeUsed(), [{ id: chain.head, len: 7 }]);
});

test('indirect chain: the table is walked like a direct chain', () => {
  const { ram, dq, q } = setup();
  const hdr = ram.put(Uint8Array.from([0xaa, 0xbb]));
  const out = ram.alloc(4);
  dq.publish(dq.addIndirect([{ addr: hdr, len: 2 }, { addr: out, len: 4, write: true }]));
  const chain = expectChain(q.pop());
  assert.equal(chain.readableLength, 2);
  assert.equal(chain.writableLength, 4);
  assert.deepEqual([...chain.readable[0]!], [0xaa, 0xbb]);
});

test('indirect descriptor after direct ones: both parts count', () => {
  const { ram, dq, q } = setup();
  const first = ram.put(Uint8Array.from([1]));
  const table = ram.alloc(16);
  const w = ram.alloc(8);
  dq.writeDesc(0, { addr: table, len: 16, flags: 0 }, table);
  dq.writeDesc(0, { addr: w, len: 8, flags: VIRTQ_DESC_F_WRITE }, table);
  dq.writeDesc(3, { addr: first, len: 1, flags: VIRTQ_DESC_F_NEXT, next: 4 });
  dq.writeDesc(4, { addr: table, len: 16, flags: VIRTQ_DESC_F_INDIRECT });
  dq.publish(3);
  const chain = expectChain(q.pop());
  assert.deepEqual([chain.readableLength, chain.writableLength], [1, 8]);
});

test('zero-length buffers are accepted and ignored', () => {
  const { ram, dq, q } = setup();
  const w = ram.alloc(4);
  dq.publish(dq.addChain([{ addr: 0xdead_0000, len: 0 }, { addr: w, len: 4, write: true }]));
  const chain = expectChain(q.pop());
  assert.deepEqual([chain.readable.length, chain.writable.length, chain.writableLength], [0, 1, 4]);
});

test('16-bit indices wrap: 70000 chains through a queue of 4', () => {
  const { ram, dq, q } = setup(4, { indirect: false, eventIdx: false });
  const buf = ram.alloc(1);
  for (let i = 0; i < 70_000; i++) {
    dq.publish(dq.addChain([{ addr: buf, len: 1, write: true }]));
    const chain = expectChain(q.pop());
    q.push(chain.head, i & 0xff);
    const used = dq.takeUsed();
    assert.equal(used.length, 1);
    assert.equal(used[0]!.len, i & 0xff);
  }
  assert.deepEqual(q.indices, { lastAvail: 70_000 & 0xffff, usedIdx: 70_000 & 0xffff, signalledUsed: 0 });
});

test('event idx: used_event decides interrupts, avail_event asks for the next buffer', () => {
  const { ram, dq, q } = setup(8);
  const buf = ram.alloc(1);
  dq.setUsedEvent(1); // interrupt when the used index passes 1, i.e. at the second used entry
  for (let i = 0; i < 3; i++) dq.publish(dq.addChain([{ addr: buf, len: 1, write: true }]));
  let c = expectChain(q.pop());
  q.push(c.head, 1);
  assert.equal(q.needsNotification(), false, 'used idx 1 has not passed used_event 1');
  c = expectChain(q.pop());
  q.push(c.head, 1);
  assert.equal(q.needsNotification(), true, 'used idx 2 passed used_event 1');
  c = expectChain(q.pop());
  q.push(c.head, 1);
  assert.equal(q.needsNotification(), false, 'used_event 1 already passed in an earlier interval');
  assert.equal(q.pop(), null);
  assert.equal(dq.availEvent, 3, 'avail_event = the next index the device reads');
  assert.equal(q.needsNotification(), false, 'nothing new');
});

test('without event idx: VIRTQ_AVAIL_F_NO_INTERRUPT suppresses, avail_event is not written', () => {
  const { ram, dq, q } = setup(8, { indirect: false, eventIdx: false });
  const buf = ram.alloc(1);
  dq.publish(dq.addChain([{ addr: buf, len: 1, write: true }]));
  dq.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  q.push(expectChain(q.pop()).head, 1);
  assert.equal(q.needsNotification(), false);
  dq.setAvailFlags(0);
  dq.publish(dq.addChain([{ addr: buf, len: 1, write: true }]));
  q.push(expectChain(q.pop()).head, 1);
  assert.equal(q.needsNotification(), true);
  assert.equal(q.pop(), null);
  assert.equal(dq.availEvent, 0);
});

test('queue layouts refused: size not a power of two, too big, zero; misaligned; not in RAM', () => {
  const ram = new TestRam(1 << 16);
  const open = (size: number, desc = 0x1000, driver = 0x2000, device = 0x3000) =>
    SplitQueue.open(ram.mem, { size, desc, driver, device }, ALL, 256);
  const kind = (r: SplitQueue | QueueFault) => (r instanceof QueueFault ? r.kind : 'ok');
  assert.equal(kind(open(8)), 'ok');
  assert.equal(kind(open(0)), 'queue-size');
  assert.equal(kind(open(3)), 'queue-size');
  assert.equal(kind(open(512)), 'queue-size'); // above the device's 256
  assert.equal(kind(open(8, 0x1008)), 'queue-align');
  assert.equal(kind(open(8, 0x1000, 0x2001)), 'queue-align');
  assert.equal(kind(open(8, 0x1000, 0x2000, 0x3002)), 'queue-align');
  assert.equal(kind(open(256, 0xf800)), 'queue-out-of-ram'); // 4 KiB table runs past 64 KiB
  assert.equal(kind(open(8, 0x1000, 0x2000, 2 ** 52)), 'queue-out-of-ram');
  assert.equal(kind(open(8, 2 ** 64 - 16)), 'queue-out-of-ram');
});

test('the available index running more than a queue ahead is refused', () => {
  const { dq, q } = setup(8);
  dq.setAvailIdx(9);
  expectFault(q.pop(), 'avail-idx');
});

test('head and next outside the table are refused', () => {
  const { ram, dq, q } = setup(8);
  const b = ram.alloc(4);
  dq.publish(8);
  expectFault(q.pop(), 'desc-index');
  dq.writeDesc(0, { addr: b, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 8 });
  dq.publish(0);
  expectFault(q.pop(), 'desc-index');
});

test('loops are refused: a direct cycle, a self-loop, a cycle inside an indirect table', () => {
  const { ram, dq, q } = setup(8);
  const b = ram.alloc(4);
  dq.writeDesc(0, { addr: b, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 1 });
  dq.writeDesc(1, { addr: b, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 0 });
  dq.publish(0);
  expectFault(q.pop(), 'chain-too-long');
  dq.writeDesc(2, { addr: b, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 2 });
  dq.publish(2);
  expectFault(q.pop(), 'chain-too-long');
  const table = ram.alloc(32);
  dq.writeDesc(0, { addr: b, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 1 }, table);
  dq.writeDesc(1, { addr: b, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 0 }, table);
  dq.writeDesc(3, { addr: table, len: 32, flags: VIRTQ_DESC_F_INDIRECT });
  dq.publish(3);
  expectFault(q.pop(), 'chain-too-long');
});

test('indirect descriptors refused: not negotiated, nested, with NEXT, bad length, not in RAM', () => {
  const { ram, dq, q } = setup(8);
  const b = ram.alloc(4);
  const table = ram.alloc(64);
  dq.writeDesc(0, { addr: b, len: 4, flags: VIRTQ_DESC_F_INDIRECT }, table);
  dq.writeDesc(0, { addr: table, len: 16, flags: VIRTQ_DESC_F_INDIRECT });
  dq.publish(0);
  expectFault(q.pop(), 'indirect-nested');
  dq.writeDesc(1, { addr: table, len: 16, flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, next: 2 });
  dq.publish(1);
  expectFault(q.pop(), 'indirect-with-next');
  for (const len of [0, 24, 16 * 9]) {
    dq.writeDesc(2, { addr: table, len, flags: VIRTQ_DESC_F_INDIRECT });
    dq.publish(2);
    expectFault(q.pop(), 'indirect-length');
  }
  dq.writeDesc(3, { addr: 0xfff_fff0, len: 16, flags: VIRTQ_DESC_F_INDIRECT });
  dq.publish(3);
  expectFault(q.pop(), 'buffer-out-of-ram');

  const plain = setup(8, { indirect: false, eventIdx: false });
  plain.dq.writeDesc(0, { addr: table, len: 16, flags: VIRTQ_DESC_F_INDIRECT });
  plain.dq.publish(0);
  expectFault(plain.q.pop(), 'indirect-not-negotiated');
});

test('buffers outside RAM and lengths that overflow are refused', () => {
  const { ram, dq, q } = setup(8);
  const cases: [number, number][] = [
    [ram.size - 2, 4], // runs off the end of RAM
    [ram.size, 1], // starts at the end
    [2 ** 53, 1], // beyond exact doubles
    [0x1000, 0xffff_ffff], // 4 GiB from inside RAM
  ];
  for (const [addr, len] of cases) {
    dq.writeDesc(0, { addr, len, flags: 0 });
    dq.publish(0);
    expectFault(q.pop(), 'buffer-out-of-ram');
  }
  // 0xffff_ffff_ffff_fffc + 8 wraps to 4 in 64-bit arithmetic (not representable as a double: written as two words).
  dq.writeDesc(0, { addr: 0, len: 8, flags: 0 });
  ram.setU32(dq.desc, 0xffff_fffc);
  ram.setU32(dq.desc + 4, 0xffff_ffff);
  dq.publish(0);
  expectFault(q.pop(), 'buffer-out-of-ram');
});

test('a device-readable buffer after a device-writable one is refused (even a zero-length one)', () => {
  const { ram, dq, q } = setup(8);
  const b = ram.alloc(4);
  dq.publish(dq.addChain([{ addr: b, len: 4, write: true }, { addr: b, len: 4 }]));
  expectFault(q.pop(), 'readable-after-writable');
  dq.publish(dq.addChain([{ addr: b, len: 0, write: true }, { addr: b, len: 4 }]));
  expectFault(q.pop(), 'readable-after-writable');
});

test('a queue over the second of two RAM regions, and a buffer across the gap refused', () => {
  const low = new Uint8Array(0x10000);
  const high = new Uint8Array(0x10000);
  const mem = new RegionGuestMemory([{ gpa: 0, bytes: low }, { gpa: 2 ** 32, bytes: high }]);
  assert.equal(mem.view(0xfff0, 0x20), null);
  assert.equal(mem.view(2 ** 32 - 8, 16), null);
  assert.equal(mem.view(2 ** 32 + 4, 4)?.byteOffset, 4);
  const q = SplitQueue.open(mem, { size: 4, desc: 2 ** 32, driver: 2 ** 32 + 0x100, device: 2 ** 32 + 0x200 }, ALL, 256);
  assert.ok(q instanceof SplitQueue);
  assert.equal(mem.write(2 ** 32 + 0x1000, Uint8Array.from([5])), true);
  assert.equal(high[0x1000], 5);
  assert.equal(mem.write(0xffff, Uint8Array.from([1, 2])), false);
  assert.throws(() => new RegionGuestMemory([{ gpa: 0, bytes: low }, { gpa: 0x8000, bytes: high }]), /overlap/);
});

test('scatter-list functions: slice, copy in, copy out', () => {
  const a = new Uint8Array(3);
  const b = new Uint8Array(4);
  assert.deepEqual(sliceSegments([a, b], 2, 3).map((s) => s.length), [1, 2]);
  assert.equal(copyToSegments([a, b], 1, Uint8Array.from([1, 2, 3, 4, 5, 6, 7])), 6);
  assert.deepEqual([...a, ...b], [0, 1, 2, 3, 4, 5, 6]);
  const into = new Uint8Array(4);
  assert.equal(copyFromSegments([a, b], 5, into), 2);
  assert.deepEqual([...into], [5, 6, 0, 0]);
});

test('unpop: the chain given back is walked again by the next pop, across the 16-bit wrap', () => {
  const { ram, dq, q } = setup(4);
  const a = ram.alloc(8);
  const b = ram.alloc(16);
  for (let i = 0; i < 0xffff; i++) {
    dq.publish(dq.addChain([{ addr: a, len: 8, write: true }]));
    const c = expectChain(q.pop());
    q.push(c.head, 0);
    dq.takeUsed();
  }
  assert.equal(q.indices.lastAvail, 0xffff);
  dq.publish(dq.addChain([{ addr: a, len: 8, write: true }]));
  dq.publish(dq.addChain([{ addr: b, len: 16, write: true }]));
  const first = expectChain(q.pop());
  assert.equal(q.availableCount, 1);
  q.unpop();
  assert.equal(q.availableCount, 2);
  assert.equal(q.indices.lastAvail, 0xffff);
  const again = expectChain(q.pop());
  assert.deepEqual([again.head, again.writableLength], [first.head, 8]);
  assert.equal(expectChain(q.pop()).writableLength, 16);
  assert.equal(q.pop(), null);
});
