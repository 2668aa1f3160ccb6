import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingIrqLine } from '../../../src/devices/irq.js';
import { VirtioMmio, STATUS_DEVICE_NEEDS_RESET } from '../../../src/devices/virtio/virtio-mmio.js';
import { VirtioRng, RNG_MAX_BYTES_PER_REQUEST } from '../../../src/devices/virtio/virtio-rng.js';
import { RegionGuestMemory } from '../../../src/devices/virtio/guest-memory.js';
import { TestDriver, TestRam } from './driver.js';

function setup(ram = new TestRam(1 << 20)) {
  const rng = new VirtioRng();
  const transport = new VirtioMmio({ device: rng, memory: ram.mem, irq: new RecordingIrqLine() });
  const driver = new TestDriver(transport, ram);
  const [q] = driver.probe(1);
  return { ram, rng, driver, q: q! };
}

test('entropy from the host CSPRNG fills device-writable buffers, across descriptors', () => {
  const { ram, rng, driver, q } = setup();
  const a = ram.alloc(32);
  const b = ram.alloc(32);
  q.publish(q.addChain([{ addr: a, len: 32, write: true }, { addr: b, len: 32, write: true }]));
  driver.kick(0);
  assert.deepEqual(q.takeUsed(), [{ id: 0, len: 64 }]);
  const bytes = [...ram.get(a, 32), ...ram.get(b, 32)];
  assert.ok(new Set(bytes).size > 8, 'not a constant fill');
  assert.equal(rng.bytesServed, 64);
});

test('bounded per request: a huge buffer gets RNG_MAX_BYTES_PER_REQUEST bytes', () => {
  const { ram, driver, q } = setup();
  const big = ram.alloc(256 * 1024);
  q.publish(q.addChain([{ addr: big, len: 256 * 1024, write: true }]));
  driver.kick(0);
  assert.deepEqual(q.takeUsed(), [{ id: 0, len: RNG_MAX_BYTES_PER_REQUEST }]);
  assert.ok(ram.get(big + RNG_MAX_BYTES_PER_REQUEST, 1024).every((x) => x === 0));
});

test('a device-readable buffer is not an entropy request: DEVICE_NEEDS_RESET', () => {
  const { ram, driver, q } = setup();
  q.publish(q.addChain([{ addr: ram.alloc(8), len: 8 }, { addr: ram.alloc(8), len: 8, write: true }]));
  driver.kick(0);
  assert.equal(q.usedIdx, 0);
  assert.equal(driver.status & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET);
});

test('guest RAM in a SharedArrayBuffer (the soft CPU arena) is filled in place', () => {
  const shared = new Uint8Array(new SharedArrayBuffer(1 << 20));
  const ram = new TestRam(1 << 20);
  const mem = new RegionGuestMemory([{ gpa: 0, bytes: shared }]);
  const rng = new VirtioRng();
  const transport = new VirtioMmio({ device: rng, memory: mem, irq: new RecordingIrqLine() });
  // Lay the queue out in the test RAM object, then mirror it into the shared buffer before each step.
  const driver = new TestDriver(transport, ram);
  driver.negotiate();
  const q = driver.setupQueue(0);
  const buf = ram.alloc(16);
  q.publish(q.addChain([{ addr: buf, len: 16, write: true }]));
  shared.set(ram.bytes);
  driver.driverOk();
  assert.equal(new DataView(shared.buffer).getUint16(q.used + 2, true), 1);
  assert.ok(shared.subarray(buf, buf + 16).some((x) => x !== 0));
});
