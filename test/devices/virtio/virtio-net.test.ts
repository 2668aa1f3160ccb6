import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingIrqLine } from '../../../src/devices/irq.js';
import {
  VirtioMmio, STATUS_DEVICE_NEEDS_RESET, INTERRUPT_CONFIG_CHANGE, INTERRUPT_USED_BUFFER, VIRTIO_MMIO_CONFIG_GENERATION, VIRTIO_MMIO_DEVICE_ID,
} from '../../../src/devices/virtio/virtio-mmio.js';
import {
  VirtioNet, NET_MAX_BUFFER, NET_RX_QUEUE, NET_TX_QUEUE, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_SIZE, VIRTIO_NET_S_LINK_UP, type VirtioNetOptions,
} from '../../../src/devices/virtio/virtio-net.js';
import { VIRTIO_F_VERSION_1, featureBit } from '../../../src/devices/virtio/device.js';
import { MemoryNetBackend, NET_MAX_FRAME } from '../../../src/devices/net/net-backend.js';
import { TestDriver, TestRam, type Buf, type DriverQueue } from './driver.js';

const MAC = Uint8Array.from([0x02, 0x74, 0x73, 0x76, 0x6d, 0x00]);

/** An Ethernet frame of `length` bytes: broadcast destination, our source, a pattern after. */
function frame(length: number, seed = 0): Uint8Array {
  const f = new Uint8Array(length);
  for (let i = 0; i < length; i++) f[i] = (i * 7 + seed) & 0xff;
  f.fill(0xff, 0, 6);
  f.set(MAC, 6);
  return f;
}

function header(flags = 0, gsoType = 0): Uint8Array {
  const h = new Uint8Array(VIRTIO_NET_HDR_SIZE);
  h[0] = flags;
  h[1] = gsoType;
  return h;
}

class NetHarness {
  readonly ram = new TestRam(4 << 20);
  readonly irq = new RecordingIrqLine();
  readonly device: VirtioNet;
  readonly transport: VirtioMmio;
  readonly driver: TestDriver;
  /** The host's end of the wire: what the guest sends arrives in `host.sent`'s peer. */
  readonly wire: MemoryNetBackend;
  readonly host: MemoryNetBackend;
  readonly fromGuest: Uint8Array[] = [];
  logs: string[] = [];
  rx!: DriverQueue;
  tx!: DriverQueue;

  constructor(opts: Partial<VirtioNetOptions> & { limit?: number; noBackend?: boolean } = {}) {
    [this.wire, this.host] = MemoryNetBackend.pair({ limit: opts.limit, record: false });
    this.host.attach({ frame: (f) => this.fromGuest.push(new Uint8Array(f)), writable: () => {}, closed: () => {} });
    this.device = new VirtioNet({ mac: MAC, backend: opts.noBackend ? undefined : this.wire, log: (m) => this.logs.push(m), ...opts });
    this.transport = new VirtioMmio({ device: this.device, memory: this.ram.mem, irq: this.irq });
    this.driver = new TestDriver(this.transport, this.ram);
  }

  probe(accept?: (offered: bigint) => bigint): this {
    [this.rx, this.tx] = this.driver.probe(2, accept) as [DriverQueue, DriverQueue];
    return this;
  }

  /** The guest transmits a chain; returns its used entries. */
  transmit(bufs: Buf[], opts: { indirect?: boolean } = {}): { id: number; len: number }[] {
    this.tx.publish(opts.indirect ? this.tx.addIndirect(bufs) : this.tx.addChain(bufs));
    this.driver.kick(NET_TX_QUEUE);
    return this.tx.takeUsed();
  }

  /** Header and frame in one buffer, as Linux's xmit_skb lays out a linear skb. */
  send(f: Uint8Array, hdr = header()): { id: number; len: number }[] {
    const b = new Uint8Array(VIRTIO_NET_HDR_SIZE + f.length);
    b.set(hdr);
    b.set(f, VIRTIO_NET_HDR_SIZE);
    return this.transmit([{ addr: this.ram.put(b), len: b.length }]);
  }

  /** Posts receive buffers of `size` bytes (one descriptor each, or header + rest when `split`); returns their addresses. */
  postRx(n: number, size = 1526, split = false): number[] {
    const addrs: number[] = [];
    for (let i = 0; i < n; i++) {
      const a = this.ram.alloc(size);
      addrs.push(a);
      const bufs: Buf[] = split
        ? [{ addr: a, len: VIRTIO_NET_HDR_SIZE, write: true }, { addr: a + VIRTIO_NET_HDR_SIZE, len: size - VIRTIO_NET_HDR_SIZE, write: true }]
        : [{ addr: a, len: size, write: true }];
      this.rx.publish(this.rx.addChain(bufs));
    }
    this.driver.kick(NET_RX_QUEUE);
    return addrs;
  }

  /** What the guest received since the last call: each used buffer's header and frame. */
  received(): { header: Uint8Array; frame: Uint8Array }[] {
    return this.rx.takeUsed().map(({ id, len }) => {
      const addr = this.ram.u32(this.rx.desc + 16 * id); // buffers start below 4 GiB, header first
      const all = this.ram.get(addr, len);
      return { header: all.subarray(0, VIRTIO_NET_HDR_SIZE), frame: all.subarray(VIRTIO_NET_HDR_SIZE) };
    });
  }

  get needsReset(): boolean {
    return (this.driver.status & STATUS_DEVICE_NEEDS_RESET) !== 0;
  }
}

test('identity and configuration: network device, MAC, link up, MTU; offered features MAC, STATUS, MTU and no offload', () => {
  const h = new NetHarness({ mtu: 1400 });
  assert.equal(h.driver.r32(VIRTIO_MMIO_DEVICE_ID), 1);
  const offered = h.driver.deviceFeatures();
  const mine = featureBit(VIRTIO_NET_F_MAC) | featureBit(VIRTIO_NET_F_STATUS) | featureBit(VIRTIO_NET_F_MTU);
  assert.equal(offered & 0xff_ffffn, mine, 'device-type bits: exactly MAC, STATUS, MTU');
  assert.ok(offered & featureBit(VIRTIO_F_VERSION_1));
  h.probe();
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => h.driver.config(i, 1)), [...MAC]);
  assert.equal(h.driver.config(6, 2), VIRTIO_NET_S_LINK_UP);
  assert.equal(h.driver.config(8, 2), 1, 'max_virtqueue_pairs');
  assert.equal(h.driver.config(10, 2), 1400);
  assert.equal(new NetHarness({ noBackend: true }).driver.config(6, 2), 0, 'no backend: link down');
  assert.throws(() => new VirtioNet({ mac: Uint8Array.from([1, 2, 3, 4, 5, 6]) }), /unicast/);
  assert.throws(() => new VirtioNet({ mac: MAC, mtu: 67 }), /MTU/);
  assert.throws(() => new VirtioNet({ mac: MAC, mtu: 65533 }), /MTU/);
});

test('transmit: the frame after the 12-byte header reaches the backend, whatever the descriptor layout', () => {
  const h = new NetHarness().probe();
  const f1 = frame(60, 1);
  assert.deepEqual(h.send(f1), [{ id: 0, len: 0 }], 'used length 0');
  assert.equal(h.irq.level, true);
  assert.equal(h.driver.ackInterrupt(), INTERRUPT_USED_BUFFER);
  // Header alone, then the frame split across two descriptors at odd places.
  const f2 = frame(1514, 2);
  h.transmit([
    { addr: h.ram.put(header()), len: 12 },
    { addr: h.ram.put(f2.subarray(0, 5)), len: 5 },
    { addr: h.ram.put(f2.subarray(5)), len: 1509 },
  ]);
  // Header and the frame's first bytes in one descriptor, in an indirect table.
  const f3 = frame(100, 3);
  const both = new Uint8Array(12 + 30);
  both.set(f3.subarray(0, 30), 12);
  h.transmit([{ addr: h.ram.put(both), len: 42 }, { addr: h.ram.put(f3.subarray(30)), len: 70 }], { indirect: true });
  assert.deepEqual(h.fromGuest, [f1, f2, f3]);
  assert.deepEqual([h.device.counters.txFrames, h.device.counters.txBytes], [3, 60 + 1514 + 100]);
});

test('receive: header zero but num_buffers 1, the frame after it; used length 12 + frame', () => {
  const h = new NetHarness().probe();
  const [a] = h.postRx(2, 1526);
  h.ram.bytes.fill(0xee, a!, a! + 1526);
  const f = frame(98, 4);
  h.host.send(f);
  const [got, ...rest] = h.received();
  assert.equal(rest.length, 0);
  assert.deepEqual([...got!.header], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
  assert.deepEqual(got!.frame, f);
  assert.equal(h.irq.level, true);
  // Header in its own descriptor, as Linux lays out big-packet buffers.
  h.postRx(1, 4096, true);
  const g = frame(1514, 5);
  h.host.send(g);
  h.host.send(frame(60, 6));
  assert.deepEqual(h.received().map((r) => r.frame), [g, frame(60, 6)]);
  assert.deepEqual([h.device.counters.rxFrames, h.device.counters.rxBytes], [3, 98 + 1514 + 60]);
});

test('receive without guest buffers: held up to the bound, then dropped and counted; delivered in order once posted', () => {
  const h = new NetHarness({ rxBufferBytes: 3 * 1000 }).probe();
  for (let i = 0; i < 5; i++) h.host.send(frame(1000, i));
  assert.equal(h.device.rxPending, 3);
  assert.equal(h.device.counters.rxDropped, 2);
  h.postRx(2);
  assert.deepEqual(h.received().map((r) => r.frame), [frame(1000, 0), frame(1000, 1)]);
  h.host.send(frame(500, 9)); // after the held one, not before
  h.postRx(4);
  assert.deepEqual(h.received().map((r) => r.frame), [frame(1000, 2), frame(500, 9)]);
  assert.equal(h.device.rxPending, 0);
  h.host.send(frame(70, 10));
  assert.deepEqual(h.received().map((r) => r.frame), [frame(70, 10)], 'posted buffers are used at once');
});

test('receive before DRIVER_OK and frames held at a reset are dropped, as a NIC without a driver', () => {
  const h = new NetHarness();
  h.host.send(frame(60));
  assert.equal(h.device.counters.rxDropped, 1);
  h.probe();
  h.host.send(frame(60));
  h.host.send(frame(61));
  assert.equal(h.device.rxPending, 2);
  h.driver.w32(0x070, 0); // status 0: reset
  assert.equal(h.device.rxPending, 0);
  assert.equal(h.device.counters.rxDropped, 3);
});

test('a frame longer than the buffer at the head is dropped; the buffer serves the next frame', () => {
  const h = new NetHarness().probe();
  h.postRx(1, 12 + 100);
  h.host.send(frame(101));
  assert.equal(h.device.counters.rxTooBig, 1);
  assert.deepEqual(h.received(), []);
  h.host.send(frame(100, 7));
  assert.deepEqual(h.received().map((r) => r.frame), [frame(100, 7)]);
  assert.equal(h.needsReset, false);
});

test('frames from the backend shorter than an Ethernet header or longer than NET_MAX_FRAME are counted errors', () => {
  const h = new NetHarness().probe();
  h.postRx(4, 70000);
  h.host.send(new Uint8Array(13));
  h.host.send(new Uint8Array(NET_MAX_FRAME + 1));
  h.host.send(frame(NET_MAX_FRAME));
  assert.equal(h.device.counters.rxErrors, 2);
  assert.deepEqual(h.received().map((r) => r.frame.length), [NET_MAX_FRAME]);
});

test('backpressure: a full backend stops the device taking transmit chains until it is writable again', () => {
  const h = new NetHarness({ limit: 2 }).probe();
  for (let i = 0; i < 5; i++) {
    const b = new Uint8Array(12 + 60);
    b.set(frame(60, i), 12);
    h.tx.publish(h.tx.addChain([{ addr: h.ram.put(b), len: b.length }]));
  }
  h.driver.kick(NET_TX_QUEUE);
  assert.equal(h.fromGuest.length, 2);
  assert.equal(h.tx.takeUsed().length, 2, 'the other chains stay in the ring');
  h.driver.kick(NET_TX_QUEUE);
  assert.equal(h.fromGuest.length, 2, 'a notify while full takes nothing');
  h.wire.drain();
  assert.equal(h.fromGuest.length, 4);
  h.wire.drain();
  assert.deepEqual(h.fromGuest, [0, 1, 2, 3, 4].map((i) => frame(60, i)));
  assert.equal(h.tx.takeUsed().length, 3);
});

test('untrusted transmit chains: too short, offloads not negotiated, oversized: dropped, counted, returned', () => {
  const h = new NetHarness().probe();
  assert.deepEqual(h.transmit([{ addr: h.ram.alloc(11), len: 11 }]), [{ id: 0, len: 0 }], 'shorter than the header');
  h.send(frame(13)); // a header, then less than an Ethernet header
  h.send(frame(60), header(VIRTIO_NET_HDR_F_NEEDS_CSUM));
  h.send(frame(60), header(0, 1)); // GSO_TCPV4
  assert.equal(h.device.counters.txErrors, 4);
  // 65562 bytes in all is the largest chain; one byte more is oversized.
  const big = h.ram.alloc(NET_MAX_BUFFER + 1);
  h.ram.bytes.set(frame(NET_MAX_FRAME + 1), big + 12);
  assert.equal(h.transmit([{ addr: big, len: NET_MAX_BUFFER + 1 }]).length, 1);
  assert.equal(h.device.counters.txOversize, 1);
  assert.equal(h.transmit([{ addr: big, len: NET_MAX_BUFFER }]).length, 1);
  assert.deepEqual(h.fromGuest.map((f) => f.length), [NET_MAX_FRAME]);
  assert.equal(h.needsReset, false);
});

test('wrong direction: a writable transmit buffer, a readable receive buffer, a receive buffer shorter than the header: DEVICE_NEEDS_RESET', () => {
  let h = new NetHarness().probe();
  h.transmit([{ addr: h.ram.put(header()), len: 12 }, { addr: h.ram.alloc(60), len: 60, write: true }]);
  assert.equal(h.needsReset, true);
  assert.equal(h.fromGuest.length, 0);
  assert.equal(h.driver.ackInterrupt() & INTERRUPT_CONFIG_CHANGE, INTERRUPT_CONFIG_CHANGE);

  h = new NetHarness().probe();
  h.rx.publish(h.rx.addChain([{ addr: h.ram.alloc(16), len: 16 }, { addr: h.ram.alloc(1500), len: 1500, write: true }]));
  h.driver.kick(NET_RX_QUEUE);
  h.host.send(frame(60));
  assert.equal(h.needsReset, true);

  h = new NetHarness().probe();
  h.postRx(1, 11);
  h.host.send(frame(60));
  assert.equal(h.needsReset, true);
  assert.equal(h.rx.usedIdx, 0);
});

test('link status: the backend ending takes the link down with a configuration interrupt; frames are dropped after', () => {
  const h = new NetHarness({ limit: 1 }).probe();
  const gen = h.driver.r32(VIRTIO_MMIO_CONFIG_GENERATION);
  h.send(frame(60)); // fills the backend
  h.tx.publish(h.tx.addChain([{ addr: h.ram.put(new Uint8Array(12 + 60)), len: 72 }]));
  h.driver.kick(NET_TX_QUEUE);
  assert.equal(h.tx.takeUsed().length, 0, 'held while the backend is full');
  h.driver.ackInterrupt();
  h.wire.fail('peer went away');
  assert.equal(h.driver.config(6, 2), 0);
  assert.notEqual(h.driver.r32(VIRTIO_MMIO_CONFIG_GENERATION), gen);
  assert.equal(h.driver.ackInterrupt() & INTERRUPT_CONFIG_CHANGE, INTERRUPT_CONFIG_CHANGE);
  assert.equal(h.tx.takeUsed().length, 1, 'the held chain is returned');
  assert.equal(h.device.counters.txDropped, 1);
  h.send(frame(60));
  assert.equal(h.device.counters.txDropped, 2);
  assert.match(h.logs.join('\n'), /peer went away; link down/);
  h.device.setLinkUp(true);
  assert.equal(h.driver.config(6, 2), VIRTIO_NET_S_LINK_UP);
});

test('a driver that accepts only VERSION_1 (no MAC, STATUS, MTU) still moves frames', () => {
  const h = new NetHarness().probe(() => featureBit(VIRTIO_F_VERSION_1));
  h.postRx(1);
  h.send(frame(60, 1));
  h.host.send(frame(60, 2));
  assert.deepEqual(h.fromGuest, [frame(60, 1)]);
  assert.deepEqual(h.received().map((r) => r.frame), [frame(60, 2)]);
});

test('a held frame is the device\'s own copy, also when the backend passes a Node Buffer view it reuses', () => {
  const h = new NetHarness().probe();
  // A stream backend delivers views into its read chunk (a Buffer, whose slice() does not copy).
  const chunk = Buffer.alloc(4096, 0xab);
  const f = frame(60, 8);
  chunk.set(f, 100);
  h.device.frame(chunk.subarray(100, 160));
  chunk.fill(0); // the chunk is reused for the next read
  h.postRx(1);
  assert.deepEqual(h.received().map((r) => [...r.frame]), [[...f]]);
});

test('after DEVICE_NEEDS_RESET the device leaves the rings alone until the driver resets it', () => {
  const h = new NetHarness().probe();
  h.rx.publish(h.rx.addChain([{ addr: h.ram.alloc(8), len: 8, write: true }])); // too short for the header
  h.postRx(2); // good buffers after it
  h.host.send(frame(60));
  assert.equal(h.needsReset, true);
  const used = h.rx.usedIdx;
  h.host.send(frame(60, 1)); // frames from the host after the failure touch no buffer
  h.host.send(frame(60, 2));
  assert.equal(h.rx.usedIdx, used);
  assert.equal(h.device.counters.rxDropped, 2);
  h.send(frame(60, 3)); // the transport ignores the notify; nothing is sent
  assert.equal(h.fromGuest.length, 0);
  h.probe(); // reset and set up again: frames flow
  h.postRx(1);
  h.host.send(frame(60, 4));
  assert.deepEqual(h.received().map((r) => r.frame), [frame(60, 4)]);
});

test('a failure while held frames drain drops the frame at hand too', () => {
  const h = new NetHarness().probe();
  h.host.send(frame(60, 1)); // held: no buffer yet
  // A bad buffer, then a good one, posted without a notify: the next frame finds them.
  h.rx.publish(h.rx.addChain([{ addr: h.ram.alloc(8), len: 8, write: true }]));
  h.rx.publish(h.rx.addChain([{ addr: h.ram.alloc(1526), len: 1526, write: true }]));
  h.host.send(frame(60, 2));
  assert.equal(h.needsReset, true);
  assert.equal(h.rx.usedIdx, 0, 'the good buffer is not used by a failed device');
  assert.equal(h.device.counters.rxDropped, 2);
});
