// Snapshots of virtio devices: the transport's registers and queue indices and the device's own
// state, saved, carried through JSON (as the snapshot file carries them) and restored into a new
// transport and device over the same guest RAM, behave from there on exactly as the originals do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TsvmmError } from '../../../src/common/errors.js';
import { RecordingIrqLine } from '../../../src/devices/irq.js';
import type { BlockBackend, BlockOutcome } from '../../../src/devices/virtio/block-backend.js';
import { VirtioBlk } from '../../../src/devices/virtio/virtio-blk.js';
import {
  VirtioConsole, VIRTIO_CONSOLE_DEVICE_ADD, VIRTIO_CONSOLE_DEVICE_READY, VIRTIO_CONSOLE_PORT_OPEN, VIRTIO_CONSOLE_PORT_READY,
  VIRTIO_CONSOLE_PORT_NAME,
} from '../../../src/devices/virtio/virtio-console.js';
import { VirtioMmio, type VirtioMmioState } from '../../../src/devices/virtio/virtio-mmio.js';
import { VirtioRng } from '../../../src/devices/virtio/virtio-rng.js';
import { NET_RX_QUEUE, NET_TX_QUEUE, VIRTIO_NET_HDR_SIZE, VirtioNet } from '../../../src/devices/virtio/virtio-net.js';
import { MemoryNetBackend } from '../../../src/devices/net/net-backend.js';
import { TestDriver, TestRam, type DriverQueue, consoleControl } from './driver.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** A console on a transport, and a driver; the device and transport can be swapped for restored ones. */
class Console {
  readonly ram = new TestRam(1 << 20);
  readonly irq = new RecordingIrqLine();
  readonly out: string[] = [];
  device!: VirtioConsole;
  transport!: VirtioMmio;
  driver: TestDriver;

  constructor() {
    this.build();
    this.driver = new TestDriver(this.transport, this.ram);
    this.driver.probe(6);
  }

  private build(): void {
    this.device = new VirtioConsole({
      ports: [
        { output: (b) => this.out.push(`0:${dec(b)}`) },
        { name: 'org.tsvmm.agent', output: (b) => this.out.push(`1:${dec(b)}`) },
      ],
    });
    this.transport = new VirtioMmio({ device: this.device, memory: this.ram.mem, irq: this.irq });
  }

  /** Saves, drops the device and transport, and restores new ones from the saved state (through JSON). */
  snapshot(): void {
    const state = JSON.parse(JSON.stringify(this.transport.getState())) as VirtioMmioState;
    this.build();
    this.transport.restore(state);
    Object.assign(this.driver, { transport: this.transport });
  }

  send(id: number, event: number, value: number): void {
    const q = this.driver.queues[3]!;
    q.publish(q.addChain([{ addr: this.ram.put(consoleControl(id, event, value)), len: 8 }]));
    this.driver.kick(3);
    q.takeUsed();
  }

  received(): string[] {
    const q = this.driver.queues[2]!;
    return q.takeUsed().map(({ id, len }) => {
      const b = this.ram.get(this.ram.u32(q.desc + 16 * id), len);
      const v = new DataView(b.buffer);
      return `${v.getUint32(0, true)}/${v.getUint16(4, true)}/${v.getUint16(6, true)}`;
    });
  }

  postControl(n: number): void {
    const q = this.driver.queues[2]!;
    for (let i = 0; i < n; i++) q.publish(q.addChain([{ addr: this.ram.alloc(64), len: 64, write: true }]));
    this.driver.kick(2);
  }

  write(port: number, text: string): void {
    const qi = port === 0 ? 1 : 2 * (port + 1) + 1;
    const q = this.driver.queues[qi]!;
    q.publish(q.addChain([{ addr: this.ram.put(enc(text)), len: text.length }]));
    this.driver.kick(qi);
    q.takeUsed();
  }

  postInput(port: number, size: number): void {
    const qi = port === 0 ? 0 : 2 * (port + 1);
    const q = this.driver.queues[qi]!;
    q.publish(q.addChain([{ addr: this.ram.alloc(size), len: size, write: true }]));
    this.driver.kick(qi);
  }

  readInput(port: number): string {
    const qi = port === 0 ? 0 : 2 * (port + 1);
    const q = this.driver.queues[qi]!;
    return q.takeUsed().map(({ id, len }) => dec(this.ram.get(this.ram.u32(q.desc + 16 * id), len))).join('');
  }
}

/** The same guest and host actions, with or without a snapshot in the middle; what each side saw. */
function consoleScenario(snapshot: boolean) {
  const c = new Console();
  const seen: unknown[] = [];
  // The handshake, with only enough control buffers for part of it.
  c.postControl(3);
  c.send(0xffff_ffff, VIRTIO_CONSOLE_DEVICE_READY, 1);
  const adds = c.received();
  seen.push(adds);
  c.send(0, VIRTIO_CONSOLE_PORT_READY, 1);
  c.send(1, VIRTIO_CONSOLE_PORT_READY, 1);
  seen.push(c.received());
  c.write(0, 'before');
  // Host input the guest has no buffer for yet, and control messages still owed.
  assert.equal(c.device.port(1).input(enc('pending-in')), 10);
  c.postInput(0, 32);
  seen.push({ irq: c.irq.level });
  if (snapshot) c.snapshot();
  c.device.port(0).input(enc('ls\n'));
  seen.push(c.readInput(0));
  c.postControl(8);
  seen.push(c.received());
  c.send(0, VIRTIO_CONSOLE_PORT_OPEN, 1);
  c.send(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  c.postInput(1, 64);
  seen.push(c.readInput(0), c.readInput(1));
  c.write(1, 'after');
  seen.push({ irq: c.irq.level, ack: c.driver.ackInterrupt(), out: c.out, bytesIn: c.device.port(1).bytesIn, opens: c.device.ports.map((p) => p.guestOpen) });
  return seen;
}

test('virtio-console: a snapshot mid-handshake with pending input and control messages behaves as the original', () => {
  const plain = consoleScenario(false);
  const restored = consoleScenario(true);
  assert.deepEqual(restored, plain);
  // The scenario did exercise what was pending at the snapshot.
  assert.equal(plain[3], '', 'hvc0 is not open yet');
  assert.ok((plain[4] as string[]).includes(`1/${VIRTIO_CONSOLE_PORT_NAME}/0`), 'a control message owed at the snapshot is delivered after it');
  assert.equal(plain[5], 'ls\n', 'a receive buffer posted before the snapshot is filled after it');
  assert.equal(plain[6], 'pending-in', 'input pending at the snapshot is delivered after it');
  assert.ok((plain[0] as string[]).includes(`0/${VIRTIO_CONSOLE_DEVICE_ADD}/1`));
});

test('virtio-rng: queue indices survive a snapshot (the next request lands in the next used slot)', () => {
  const ram = new TestRam(1 << 20);
  const irq = new RecordingIrqLine();
  let requests = 0;
  const fill = (into: Uint8Array) => { requests++; into.fill(0xab); };
  let transport = new VirtioMmio({ device: new VirtioRng({ source: fill }), memory: ram.mem, irq });
  const driver = new TestDriver(transport, ram);
  const [q] = driver.probe(1);
  for (let i = 0; i < 5; i++) {
    q!.publish(q!.addChain([{ addr: ram.alloc(16), len: 16, write: true }]));
    driver.kick(0);
  }
  assert.equal(q!.takeUsed().length, 5);
  const state = JSON.parse(JSON.stringify(transport.getState())) as VirtioMmioState;
  assert.deepEqual(state.queues[0]!.indices, { lastAvail: 5, usedIdx: 5, signalledUsed: 5 });
  transport = new VirtioMmio({ device: new VirtioRng({ source: fill }), memory: ram.mem, irq });
  transport.restore(state);
  Object.assign(driver, { transport });
  q!.publish(q!.addChain([{ addr: ram.alloc(16), len: 16, write: true }]));
  driver.kick(0);
  assert.deepEqual(q!.takeUsed().map((u) => u.len), [16]);
  assert.equal(requests, 6, 'the five requests served before the snapshot are not served again');
  assert.equal(driver.status, state.status, 'the status survived');
});

test('virtio-blk: a state with a request in flight is refused (TSVMM_BUSY), and saved once it completes', async () => {
  let settle!: (o: BlockOutcome) => void;
  const backend: BlockBackend = {
    size: 1 << 20, readOnly: false, id: 'slow',
    read: () => new Promise<BlockOutcome>((resolve) => (settle = resolve)),
    write: () => 'ok', flush: () => 'ok', discard: () => 'ok', writeZeroes: () => 'ok', close() {},
  };
  const ram = new TestRam(1 << 20);
  const transport = new VirtioMmio({ device: new VirtioBlk(backend), memory: ram.mem, irq: new RecordingIrqLine() });
  const driver = new TestDriver(transport, ram);
  const [q] = driver.probe(1);
  const header = new Uint8Array(16); // VIRTIO_BLK_T_IN, sector 0
  q!.publish(q!.addChain([{ addr: ram.put(header), len: 16 }, { addr: ram.alloc(512), len: 512, write: true }, { addr: ram.alloc(1), len: 1, write: true }]));
  driver.kick(0);
  assert.throws(() => transport.getState(), (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_BUSY');
  settle('ok');
  await new Promise((r) => setImmediate(r));
  assert.equal(transport.getState().queues[0]!.indices!.usedIdx, 1);
});

test('virtio transport: a malformed saved state is TSVMM_SNAPSHOT_CORRUPT', () => {
  const c = new Console();
  const good = JSON.parse(JSON.stringify(c.transport.getState())) as VirtioMmioState;
  const bad: [string, (s: VirtioMmioState) => void][] = [
    ['features not hex', (s) => { s.negotiated = 'zz'; }],
    ['features never offered', (s) => { s.negotiated = 'ffffffffffffffff'; }],
    ['a queue missing', (s) => { s.queues.pop(); }],
    ['a queue layout out of RAM', (s) => { s.queues[0]!.desc = [0, 0xffff]; }],
    ['indices not numbers', (s) => { (s.queues[0]!.indices as unknown as Record<string, unknown>).usedIdx = 'x'; }],
    ['status not a number', (s) => { (s as unknown as Record<string, unknown>).status = null; }],
    ['console ports missing', (s) => { (s.device as { ports: unknown[] }).ports = []; }],
    ['console input not base64', (s) => { (s.device as { ports: { input: string }[] }).ports[1]!.input = '!!'; }],
    ['console input too long', (s) => { (s.device as { ports: { input: string }[] }).ports[1]!.input = Buffer.alloc(70_000).toString('base64'); }],
  ];
  for (const [what, mutate] of bad) {
    const s = structuredClone(good);
    mutate(s);
    const fresh = new VirtioMmio({ device: new VirtioConsole({ ports: [{}, { name: 'x' }] }), memory: c.ram.mem, irq: new RecordingIrqLine() });
    assert.throws(() => fresh.restore(s), (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_SNAPSHOT_CORRUPT', what);
  }
});

test('virtio-net: a snapshot with receive buffers posted, restored over a new backend: the next frame lands in the next posted buffer, transmit goes on, counters continue', () => {
  const ram = new TestRam(1 << 20);
  const irq = new RecordingIrqLine();
  const mac = Uint8Array.from([0x02, 0x74, 0x73, 0x76, 0x6d, 0x00]);
  const [ours, peer] = MemoryNetBackend.pair();
  let transport = new VirtioMmio({ device: new VirtioNet({ mac, backend: ours }), memory: ram.mem, irq });
  const driver = new TestDriver(transport, ram);
  const [rx, tx] = driver.probe(2) as [DriverQueue, DriverQueue];
  const bufs = [0, 1, 2].map(() => ram.alloc(VIRTIO_NET_HDR_SIZE + 1514));
  for (const addr of bufs) rx.publish(rx.addChain([{ addr, len: VIRTIO_NET_HDR_SIZE + 1514, write: true }]));
  driver.kick(NET_RX_QUEUE);
  const eth = (n: number) => new Uint8Array(60).fill(n);
  peer.send(eth(1));
  assert.deepEqual(rx.takeUsed().map((u) => u.id), [0]);
  const state = JSON.parse(JSON.stringify(transport.getState())) as VirtioMmioState;
  assert.deepEqual(state.device, { mac: '027473766d00', mtu: 1500, failed: false, linkUp: true, counters: { ...(transport as unknown as { device: VirtioNet }).device.counters } });

  // Restored: a new device over a new backend (the old one is gone with the saved process).
  const [ours2, peer2] = MemoryNetBackend.pair();
  const device = new VirtioNet({ mac, backend: ours2 });
  transport = new VirtioMmio({ device, memory: ram.mem, irq });
  transport.restore(state);
  Object.assign(driver, { transport });
  peer2.send(eth(2));
  assert.deepEqual(rx.takeUsed().map((u) => u.id), [1], 'the next buffer the guest posted before the save');
  assert.deepEqual(ram.get(bufs[1]! + VIRTIO_NET_HDR_SIZE, 60), eth(2));
  const out = new Uint8Array(VIRTIO_NET_HDR_SIZE + 60);
  out.fill(7, VIRTIO_NET_HDR_SIZE);
  tx.publish(tx.addChain([{ addr: ram.put(out), len: out.length }]));
  driver.kick(NET_TX_QUEUE);
  assert.deepEqual(ours2.sent.map((f) => f.length), [60], 'the guest\'s frame reaches the new backend');
  assert.equal(device.counters.rxFrames, 2, 'counters continue from the saved ones');
  assert.equal(ours.sent.length, 0, 'nothing went to the old backend');

  // A card configured with another address (or MTU) refuses the state.
  for (const opts of [{ mac: Uint8Array.from([2, 0, 0, 0, 0, 1]) }, { mac, mtu: 9000 }]) {
    const other = new VirtioMmio({ device: new VirtioNet({ ...opts, backend: MemoryNetBackend.pair()[0] }), memory: ram.mem, irq });
    assert.throws(() => other.restore(state), (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_SNAPSHOT_CORRUPT' && /saved with (address|MTU)/.test(e.message));
  }
});

test('virtio-net: saved with the link down, restored over a working backend: the guest is told at its next notification', () => {
  const ram = new TestRam(1 << 20);
  const irq = new RecordingIrqLine();
  const mac = Uint8Array.from([0x02, 0x74, 0x73, 0x76, 0x6d, 0x00]);
  const [ours] = MemoryNetBackend.pair();
  const transport = new VirtioMmio({ device: new VirtioNet({ mac, backend: ours }), memory: ram.mem, irq });
  const driver = new TestDriver(transport, ram);
  driver.probe(2);
  ours.fail('passt exited');
  driver.ackInterrupt();
  const state = JSON.parse(JSON.stringify(transport.getState())) as VirtioMmioState;
  assert.equal((state.device as { linkUp: boolean }).linkUp, false);
  const restored = new VirtioMmio({ device: new VirtioNet({ mac, backend: MemoryNetBackend.pair()[0] }), memory: ram.mem, irq });
  restored.restore(state);
  Object.assign(driver, { transport: restored });
  assert.equal(driver.config(6, 2) & 1, 1, 'the status says up');
  assert.equal(driver.ackInterrupt() & 2, 0, 'no configuration interrupt yet');
  driver.kick(NET_RX_QUEUE);
  assert.equal(driver.ackInterrupt() & 2, 2, 'a configuration change interrupt');
});
