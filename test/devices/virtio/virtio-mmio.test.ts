import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingIrqLine } from '../../../src/devices/irq.js';
import { MmioBus } from '../../../src/devices/bus.js';
import { VirtioRng } from '../../../src/devices/virtio/virtio-rng.js';
import {
  VirtioMmio, VIRTIO_MMIO_SIZE, virtioMmioCmdline, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK,
  STATUS_DEVICE_NEEDS_RESET, INTERRUPT_USED_BUFFER, INTERRUPT_CONFIG_CHANGE, VIRTIO_MMIO_STATUS, VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_VENDOR_ID, VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_CONFIG_GENERATION, VIRTIO_MMIO_SHM_LEN_LOW, VIRTIO_MMIO_SHM_LEN_HIGH,
  VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL,
} from '../../../src/devices/virtio/virtio-mmio.js';
import {
  VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1, featureBit, type VirtioDevice, type VirtioLink,
} from '../../../src/devices/virtio/device.js';
import { VIRTQ_DESC_F_NEXT } from '../../../src/devices/virtio/queue.js';
import { TestDriver, TestRam } from './driver.js';

const V1 = featureBit(VIRTIO_F_VERSION_1);

function rngSetup() {
  const ram = new TestRam(1 << 20);
  const irq = new RecordingIrqLine();
  const logs: string[] = [];
  const rng = new VirtioRng({ source: (b) => b.fill(0x5a) });
  const transport = new VirtioMmio({ device: rng, memory: ram.mem, irq, log: (m) => logs.push(m) });
  return { ram, irq, rng, transport, driver: new TestDriver(transport, ram), logs };
}

test('Linux probe sequence on the MMIO bus: identity, features, queue, DRIVER_OK, a request, the interrupt', () => {
  const { ram, irq, transport, driver } = rngSetup();
  const bus = new MmioBus();
  bus.register(0xd000_0000, VIRTIO_MMIO_SIZE, 'virtio-rng', transport);
  const busDriver = new TestDriver({ read: (o: number, d: Uint8Array) => bus.read(0xd000_0000 + o, d), write: (o: number, d: Uint8Array) => bus.write(0xd000_0000 + o, d) } as VirtioMmio, ram);
  assert.equal(busDriver.r32(VIRTIO_MMIO_DEVICE_ID), 4);
  assert.equal(busDriver.r32(VIRTIO_MMIO_VENDOR_ID), 0x4d565354);
  const offered = busDriver.deviceFeatures();
  assert.equal(offered, V1 | featureBit(VIRTIO_F_INDIRECT_DESC) | featureBit(VIRTIO_F_EVENT_IDX));
  const [q] = busDriver.probe(1);
  assert.equal(driver.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  assert.equal(transport.features, offered);
  assert.equal(q!.size, 64);
  const buf = ram.alloc(16);
  q!.publish(q!.addChain([{ addr: buf, len: 16, write: true }]));
  assert.equal(irq.level, false);
  busDriver.kick(0);
  assert.deepEqual(q!.takeUsed(), [{ id: 0, len: 16 }]);
  assert.deepEqual([...ram.get(buf, 16)], new Array(16).fill(0x5a));
  assert.equal(irq.level, true);
  assert.equal(busDriver.ackInterrupt(), INTERRUPT_USED_BUFFER);
  assert.equal(irq.level, false);
});

test('FEATURES_OK is refused for unoffered features, without VERSION_1, or before ACKNOWLEDGE|DRIVER', () => {
  const { driver, transport } = rngSetup();
  assert.equal(driver.negotiate((f) => f | 1n), null, 'bit 0 is not offered by virtio-rng');
  assert.equal(driver.status & STATUS_FEATURES_OK, 0);
  assert.equal(driver.negotiate((f) => f & ~V1), null);
  assert.equal(driver.negotiate((f) => f | (1n << 40n)), null);
  // A write through a selector past the 64 feature bits is unoffered too.
  driver.w32(VIRTIO_MMIO_STATUS, 0);
  driver.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  driver.writeDriverFeatures(V1);
  driver.w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
  driver.w32(VIRTIO_MMIO_DRIVER_FEATURES, 1);
  driver.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
  assert.equal(driver.status & STATUS_FEATURES_OK, 0);
  // FEATURES_OK straight after reset, without ACKNOWLEDGE and DRIVER.
  driver.w32(VIRTIO_MMIO_STATUS, 0);
  driver.writeDriverFeatures(V1);
  driver.w32(VIRTIO_MMIO_STATUS, STATUS_FEATURES_OK);
  assert.equal(driver.status, 0);
  assert.ok(transport.counters.refusedStatus >= 5);
  assert.equal(driver.negotiate((f) => f & V1), V1, 'VERSION_1 alone is fine');
});

test('a device used before FEATURES_OK: DRIVER_OK refused, QueueReady ignored, notifies ignored', () => {
  const { driver, transport, ram } = rngSetup();
  driver.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  driver.w32(VIRTIO_MMIO_QUEUE_SEL, 0);
  driver.w32(VIRTIO_MMIO_QUEUE_READY, 1);
  assert.equal(driver.r32(VIRTIO_MMIO_QUEUE_READY), 0);
  driver.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
  assert.equal(driver.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  driver.kick(0);
  assert.equal(transport.counters.ignoredNotifies, 1);
  assert.equal(ram.u8(0x1000), 0);
});

test('buffers made available before DRIVER_OK are served at DRIVER_OK; notifies before it are ignored', () => {
  const { driver, ram, transport } = rngSetup();
  driver.negotiate();
  const q = driver.setupQueue(0);
  const buf = ram.alloc(4);
  q.publish(q.addChain([{ addr: buf, len: 4, write: true }]));
  driver.kick(0);
  assert.equal(q.usedIdx, 0);
  assert.equal(transport.counters.ignoredNotifies, 1);
  driver.driverOk();
  assert.deepEqual(q.takeUsed(), [{ id: 0, len: 4 }]);
});

test('a bad queue layout sets DEVICE_NEEDS_RESET; the interrupt comes once DRIVER_OK is set', () => {
  const { driver, irq, transport } = rngSetup();
  driver.negotiate();
  driver.w32(VIRTIO_MMIO_QUEUE_SEL, 0);
  driver.w32(VIRTIO_MMIO_QUEUE_NUM, 48); // not a power of two
  driver.w32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
  driver.w32(VIRTIO_MMIO_QUEUE_READY, 1);
  assert.equal(driver.r32(VIRTIO_MMIO_QUEUE_READY), 0);
  assert.equal(driver.status & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET);
  assert.equal(irq.level, false);
  assert.match(transport.lastFault!, /queue size 48/);
  driver.driverOk();
  assert.equal(driver.r32(VIRTIO_MMIO_INTERRUPT_STATUS), INTERRUPT_CONFIG_CHANGE);
  assert.equal(irq.level, true);
});

test('a malformed chain after DRIVER_OK: NEEDS_RESET, config interrupt, the device stops until reset', () => {
  const { driver, irq, ram, transport } = rngSetup();
  const [q] = driver.probe(1);
  const buf = ram.alloc(8);
  q!.writeDesc(0, { addr: buf, len: 8, flags: VIRTQ_DESC_F_NEXT, next: 0 }); // a self-loop
  q!.publish(0);
  driver.kick(0);
  assert.equal(driver.status & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET);
  assert.equal(driver.ackInterrupt(), INTERRUPT_CONFIG_CHANGE);
  assert.equal(irq.level, false);
  assert.equal(transport.counters.faults, 1);
  // Further notifies are ignored, status writes keep NEEDS_RESET.
  q!.publish(q!.addChain([{ addr: buf, len: 8, write: true }]));
  driver.kick(0);
  assert.equal(q!.usedIdx, 0);
  driver.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  assert.equal(driver.status & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET);
  // Reset and probe again: the device works.
  driver.queues.length = 0;
  const [fresh] = driver.probe(1);
  assert.equal(driver.status & STATUS_DEVICE_NEEDS_RESET, 0);
  fresh!.publish(fresh!.addChain([{ addr: buf, len: 8, write: true }]));
  driver.kick(0);
  assert.equal(fresh!.takeUsed().length, 1);
});

test('status writes that clear bits are ignored; write 0 resets queues, features and the interrupt', () => {
  const { driver, ram, irq } = rngSetup();
  const [q] = driver.probe(1);
  driver.w32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE);
  assert.equal(driver.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  q!.publish(q!.addChain([{ addr: ram.alloc(4), len: 4, write: true }]));
  driver.kick(0);
  assert.equal(irq.level, true);
  driver.w32(VIRTIO_MMIO_STATUS, 0);
  assert.equal(driver.status, 0);
  assert.equal(irq.level, false);
  driver.w32(VIRTIO_MMIO_QUEUE_SEL, 0);
  assert.equal(driver.r32(VIRTIO_MMIO_QUEUE_READY), 0);
  assert.equal(driver.deviceFeatures() & V1, V1);
});

test('queue registers: read-only while ready, QueueReady 0 tears the queue down, unknown queues read 0', () => {
  const { driver, transport } = rngSetup();
  const [q] = driver.probe(1);
  driver.w32(VIRTIO_MMIO_QUEUE_SEL, 0);
  driver.w32(VIRTIO_MMIO_QUEUE_NUM, 2);
  assert.equal(transport.counters.ignoredWrites, 1);
  driver.w32(VIRTIO_MMIO_QUEUE_READY, 0);
  assert.equal(driver.r32(VIRTIO_MMIO_QUEUE_READY), 0);
  driver.kick(0);
  assert.equal(transport.counters.ignoredNotifies, 1);
  assert.equal(q!.usedIdx, 0);
  driver.w32(VIRTIO_MMIO_QUEUE_SEL, 5);
  assert.equal(driver.r32(VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
  driver.w32(VIRTIO_MMIO_QUEUE_READY, 1);
  assert.equal(driver.r32(VIRTIO_MMIO_QUEUE_READY), 0);
});

test('driver features written after FEATURES_OK are ignored', () => {
  const { driver, transport } = rngSetup();
  driver.negotiate((f) => f & V1);
  driver.writeDriverFeatures(V1 | featureBit(VIRTIO_F_EVENT_IDX));
  assert.equal(transport.features, V1);
});

test('control registers take only aligned 32-bit accesses; SHM registers say there is no region', () => {
  const { transport, driver } = rngSetup();
  const two = new Uint8Array(2);
  transport.read(0, two);
  assert.deepEqual([...two], [0, 0]);
  transport.write(VIRTIO_MMIO_STATUS, Uint8Array.from([1]));
  assert.equal(driver.status, 0);
  const four = new Uint8Array(4);
  transport.read(2, four);
  assert.deepEqual([...four], [0, 0, 0, 0]);
  assert.equal(transport.counters.badAccesses, 3);
  assert.equal(driver.r32(VIRTIO_MMIO_SHM_LEN_LOW), 0xffff_ffff);
  assert.equal(driver.r32(VIRTIO_MMIO_SHM_LEN_HIGH), 0xffff_ffff);
});

test('configuration change: generation moves, the interrupt only once the driver is live; a link dies at reset', () => {
  let link: VirtioLink | null = null;
  const device: VirtioDevice = {
    deviceId: 99, features: 0n, queueMaxSizes: [4],
    readConfig: (o, d) => d.fill(o), writeConfig: () => {},
    activate: (l) => { link = l; }, notify: () => {}, reset: () => {},
  };
  const ram = new TestRam(1 << 16);
  const irq = new RecordingIrqLine();
  const transport = new VirtioMmio({ device, memory: ram.mem, irq });
  const driver = new TestDriver(transport, ram);
  assert.equal(driver.config(3, 1), 3);
  driver.probe(1);
  const gen = driver.r32(VIRTIO_MMIO_CONFIG_GENERATION);
  link!.configChanged();
  assert.equal(driver.r32(VIRTIO_MMIO_CONFIG_GENERATION), gen + 1);
  assert.equal(driver.ackInterrupt(), INTERRUPT_CONFIG_CHANGE);
  const stale = link!;
  driver.w32(VIRTIO_MMIO_STATUS, 0);
  stale.configChanged();
  stale.fail('late');
  assert.equal(stale.queue(0), null);
  assert.equal(irq.level, false);
  assert.equal(driver.status, 0);
});

test('kernel command-line fragment for CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES kernels', () => {
  assert.equal(virtioMmioCmdline(0xd000_0000, 5), 'virtio_mmio.device=0x200@0xd0000000:5');
  assert.equal(virtioMmioCmdline(0xfeb0_0000, 12, 0x1000), 'virtio_mmio.device=0x1000@0xfeb00000:12');
});
