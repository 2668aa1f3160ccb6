import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingIrqLine } from '../../../src/devices/irq.js';
import { VirtioMmio, STATUS_DEVICE_NEEDS_RESET } from '../../../src/devices/virtio/virtio-mmio.js';
import {
  VirtioConsole, VIRTIO_CONSOLE_F_MULTIPORT, VIRTIO_CONSOLE_DEVICE_READY, VIRTIO_CONSOLE_DEVICE_ADD, VIRTIO_CONSOLE_PORT_READY,
  VIRTIO_CONSOLE_CONSOLE_PORT, VIRTIO_CONSOLE_PORT_OPEN, VIRTIO_CONSOLE_PORT_NAME, type ConsolePortOptions,
} from '../../../src/devices/virtio/virtio-console.js';
import { featureBit } from '../../../src/devices/virtio/device.js';
import { TestDriver, TestRam, consoleControl } from './driver.js';

interface Msg { id: number; event: number; value: number; extra: string }

class ConsoleHarness {
  readonly ram = new TestRam(1 << 20);
  readonly irq = new RecordingIrqLine();
  readonly out: string[][] = [[], []];
  readonly opens: boolean[][] = [[], []];
  spaceCalls = 0;
  readonly device: VirtioConsole;
  readonly transport: VirtioMmio;
  readonly driver: TestDriver;

  constructor(port1: Partial<ConsolePortOptions> = {}, accept?: (f: bigint) => bigint) {
    this.device = new VirtioConsole({
      ports: [
        { output: (b) => this.out[0]!.push(new TextDecoder().decode(b)), onGuestOpen: (o) => this.opens[0]!.push(o) },
        {
          name: 'org.tsvmm.agent', output: (b) => this.out[1]!.push(new TextDecoder().decode(b)),
          onGuestOpen: (o) => this.opens[1]!.push(o), onInputSpace: () => this.spaceCalls++, ...port1,
        },
      ],
    });
    this.transport = new VirtioMmio({ device: this.device, memory: this.ram.mem, irq: this.irq });
    this.driver = new TestDriver(this.transport, this.ram);
    const multiport = accept ? (accept(~0n) & featureBit(VIRTIO_CONSOLE_F_MULTIPORT)) !== 0n : true;
    this.driver.probe(multiport ? 6 : 2, accept);
  }

  /** Posts `n` control receive buffers of `size` bytes (Linux posts pages). */
  postControlBuffers(n: number, size = 64): void {
    const q = this.driver.queues[2]!;
    for (let i = 0; i < n; i++) q.publish(q.addChain([{ addr: this.ram.alloc(size), len: size, write: true }]));
    this.driver.kick(2);
  }

  send(id: number, event: number, value: number): void {
    const q = this.driver.queues[3]!;
    q.publish(q.addChain([{ addr: this.ram.put(consoleControl(id, event, value)), len: 8 }]));
    this.driver.kick(3);
    q.takeUsed();
  }

  /** Control messages the device delivered since the last call. */
  received(): Msg[] {
    const q = this.driver.queues[2]!;
    return q.takeUsed().map(({ id, len }) => {
      const addr = this.ram.u32(q.desc + 16 * id); // the buffers live below 4 GiB
      const b = this.ram.get(addr, len);
      const v = new DataView(b.buffer);
      return { id: v.getUint32(0, true), event: v.getUint16(4, true), value: v.getUint16(6, true), extra: new TextDecoder().decode(b.subarray(8)) };
    });
  }

  /** Linux's handshake: DEVICE_READY, PORT_READY for each DEVICE_ADD, PORT_OPEN for the console. */
  handshake(controlBuffers = 16): Msg[] {
    this.postControlBuffers(controlBuffers);
    this.send(0xffff_ffff, VIRTIO_CONSOLE_DEVICE_READY, 1);
    const all: Msg[] = [];
    for (const m of this.received()) {
      all.push(m);
      if (m.event === VIRTIO_CONSOLE_DEVICE_ADD) this.send(m.id, VIRTIO_CONSOLE_PORT_READY, 1);
    }
    const more = this.received();
    all.push(...more);
    if (more.some((m) => m.event === VIRTIO_CONSOLE_CONSOLE_PORT)) this.send(0, VIRTIO_CONSOLE_PORT_OPEN, 1);
    return all;
  }

  /** The guest writes `text` to a port's transmit queue. */
  write(port: number, text: string): void {
    const qi = port === 0 ? 1 : 2 * (port + 1) + 1;
    const q = this.driver.queues[qi]!;
    const bytes = new TextEncoder().encode(text);
    q.publish(q.addChain([{ addr: this.ram.put(bytes), len: bytes.length }]));
    this.driver.kick(qi);
    q.takeUsed();
  }

  /** Posts receive buffers on a port; returns their addresses. */
  postInput(port: number, n: number, size: number): number[] {
    const qi = port === 0 ? 0 : 2 * (port + 1);
    const q = this.driver.queues[qi]!;
    const addrs: number[] = [];
    for (let i = 0; i < n; i++) {
      const a = this.ram.alloc(size);
      addrs.push(a);
      q.publish(q.addChain([{ addr: a, len: size, write: true }]));
    }
    this.driver.kick(qi);
    return addrs;
  }

  /** What the guest received on a port since the last call. */
  readInput(port: number): string {
    const qi = port === 0 ? 0 : 2 * (port + 1);
    const q = this.driver.queues[qi]!;
    return q.takeUsed().map(({ id, len }) => new TextDecoder().decode(this.ram.get(this.ram.u32(q.desc + 16 * id), len))).join('');
  }
}

test('multiport handshake: DEVICE_ADD per port, CONSOLE_PORT for port 0, PORT_NAME and PORT_OPEN', () => {
  const h = new ConsoleHarness();
  assert.equal(h.driver.config(4, 4), 2, 'max_nr_ports');
  const msgs = h.handshake();
  assert.deepEqual(msgs, [
    { id: 0, event: VIRTIO_CONSOLE_DEVICE_ADD, value: 1, extra: '' },
    { id: 1, event: VIRTIO_CONSOLE_DEVICE_ADD, value: 1, extra: '' },
    { id: 0, event: VIRTIO_CONSOLE_CONSOLE_PORT, value: 1, extra: '' },
    { id: 0, event: VIRTIO_CONSOLE_PORT_OPEN, value: 1, extra: '' },
    { id: 1, event: VIRTIO_CONSOLE_PORT_NAME, value: 0, extra: 'org.tsvmm.agent' },
    { id: 1, event: VIRTIO_CONSOLE_PORT_OPEN, value: 1, extra: '' },
  ]);
  assert.deepEqual(h.opens, [[true], []]);
  // Repeats generate nothing new; unknown ports are counted.
  h.send(0xffff_ffff, VIRTIO_CONSOLE_DEVICE_READY, 1);
  h.send(1, VIRTIO_CONSOLE_PORT_READY, 1);
  h.send(7, VIRTIO_CONSOLE_PORT_OPEN, 1);
  assert.deepEqual(h.received(), []);
  assert.equal(h.device.counters.badControl, 1);
});

test('guest output reaches each port\'s sink', () => {
  const h = new ConsoleHarness();
  h.handshake();
  h.write(0, 'hello from hvc0\n');
  h.write(1, '{"agent":1}');
  assert.deepEqual(h.out, [['hello from hvc0\n'], ['{"agent":1}']]);
  assert.equal(h.device.port(0).bytesOut, 16);
});

test('host input waits for the guest to open the port and to post buffers; nothing is dropped', () => {
  const h = new ConsoleHarness({ inputLimit: 16 });
  h.handshake();
  const agent = h.device.port(1);
  assert.equal(agent.input(new TextEncoder().encode('0123456789abcdefXYZ')), 16, 'the bounded buffer takes 16 bytes');
  assert.equal(agent.inputSpace, 0);
  assert.equal(agent.input(new TextEncoder().encode('more')), 0, 'full: the host must wait');
  h.postInput(1, 2, 5);
  assert.equal(h.readInput(1), '', 'the guest has not opened the port');
  h.send(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  assert.deepEqual(h.opens[1], [true]);
  assert.equal(h.readInput(1), '0123456789');
  assert.equal(h.spaceCalls, 1, 'space freed after a refusal is announced');
  assert.equal(agent.inputPending, 6);
  assert.equal(agent.input(new TextEncoder().encode('XYZ')), 3);
  h.postInput(1, 1, 64);
  assert.equal(h.readInput(1), 'abcdefXYZ');
  assert.equal(agent.inputPending, 0);
  assert.equal(agent.bytesIn, 19);
  // The guest closes the port: input stays buffered.
  h.send(1, VIRTIO_CONSOLE_PORT_OPEN, 0);
  agent.input(new TextEncoder().encode('later'));
  h.postInput(1, 1, 64);
  assert.equal(h.readInput(1), '');
  h.send(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  assert.equal(h.readInput(1), 'later');
});

test('console port input goes to queue 0 once the console is open', () => {
  const h = new ConsoleHarness();
  h.handshake();
  h.postInput(0, 1, 32);
  h.device.port(0).input(new TextEncoder().encode('ls\n'));
  assert.equal(h.readInput(0), 'ls\n');
  assert.equal(h.irq.level, true);
});

test('host side closing and opening a port sends PORT_OPEN; a pending one is replaced, not added', () => {
  const h = new ConsoleHarness();
  h.handshake(7);
  const agent = h.device.port(1);
  agent.setHostOpen(false);
  assert.deepEqual(h.received(), [{ id: 1, event: VIRTIO_CONSOLE_PORT_OPEN, value: 0, extra: '' }]);
  // No control receive buffers left: the changes wait as one message.
  for (let i = 0; i < 1000; i++) agent.setHostOpen(i % 2 === 0);
  assert.deepEqual(h.received(), []);
  h.postControlBuffers(4);
  assert.deepEqual(h.received(), [{ id: 1, event: VIRTIO_CONSOLE_PORT_OPEN, value: 0, extra: '' }]);
});

test('without MULTIPORT: port 0 only, open from the start', () => {
  const h = new ConsoleHarness({}, (f) => f & ~featureBit(VIRTIO_CONSOLE_F_MULTIPORT));
  assert.deepEqual(h.opens[0], [true]);
  h.postInput(0, 1, 16);
  h.device.port(0).input(new TextEncoder().encode('x'));
  assert.equal(h.readInput(0), 'x');
  h.write(0, 'y');
  assert.deepEqual(h.out[0], ['y']);
  h.device.port(1).input(new TextEncoder().encode('nowhere'));
  assert.equal(h.device.port(1).inputPending, 7);
});

test('malformed: a device-writable transmit buffer, a control receive buffer too small: DEVICE_NEEDS_RESET', () => {
  let h = new ConsoleHarness();
  h.handshake();
  const q = h.driver.queues[1]!;
  q.publish(q.addChain([{ addr: h.ram.alloc(4), len: 4, write: true }]));
  h.driver.kick(1);
  assert.equal(h.driver.status & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET);

  h = new ConsoleHarness();
  h.postControlBuffers(1, 4);
  h.send(0xffff_ffff, VIRTIO_CONSOLE_DEVICE_READY, 1);
  assert.equal(h.driver.status & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET);
});

test('a control flood without receive buffers leaves the pending list bounded', () => {
  const h = new ConsoleHarness();
  h.send(0xffff_ffff, VIRTIO_CONSOLE_DEVICE_READY, 1);
  for (let i = 0; i < 500; i++) {
    h.send(0xffff_ffff, VIRTIO_CONSOLE_DEVICE_READY, 1);
    h.send(i & 1, VIRTIO_CONSOLE_PORT_READY, 1);
    h.device.port(1).setHostOpen(i % 2 === 0);
  }
  h.postControlBuffers(64);
  const msgs = h.received();
  assert.ok(msgs.length <= 7, `${msgs.length} messages`);
  assert.deepEqual(msgs.slice(0, 2).map((m) => m.event), [VIRTIO_CONSOLE_DEVICE_ADD, VIRTIO_CONSOLE_DEVICE_ADD]);
});

test('a flow-controlled port leaves transmit buffers the host has no room for in the queue, in order, until outputSpaceFreed()', () => {
  let room = 100; // what the host side takes before it must be drained
  const asked: number[] = [];
  const got: string[] = [];
  const h = new ConsoleHarness({
    output: (b) => { got.push(new TextDecoder().decode(b)); room -= b.length; },
    outputRoom: (n) => { asked.push(n); return n <= room; },
  });
  h.out[1] = got;
  h.handshake();
  const port = h.device.port(1);
  const q = h.driver.queues[5]!; // port 1's transmit queue
  for (const text of ['0123', 'abcdefgh', 'XY']) {
    const bytes = new TextEncoder().encode(text);
    q.publish(q.addChain([{ addr: h.ram.put(bytes), len: bytes.length }]));
  }
  h.driver.kick(5);
  assert.deepEqual(h.out[1], ['0123', 'abcdefgh', 'XY'], 'room enough for each: all taken');
  assert.equal(q.takeUsed().length, 3);

  room = 3;
  for (const text of ['hold', 'me']) {
    const bytes = new TextEncoder().encode(text);
    q.publish(q.addChain([{ addr: h.ram.put(bytes), len: bytes.length }]));
  }
  h.driver.kick(5);
  h.driver.kick(5); // a second notification changes nothing
  assert.deepEqual(h.out[1], ['0123', 'abcdefgh', 'XY'], 'no room for 4 bytes: nothing taken');
  assert.deepEqual(q.takeUsed(), [], 'the guest gets no buffer back: its writes wait');
  assert.equal(port.outputWaiting, true);
  port.outputSpaceFreed(); // room still 3: held again
  assert.deepEqual(q.takeUsed(), []);
  room = 5;
  port.outputSpaceFreed();
  assert.deepEqual(h.out[1], ['0123', 'abcdefgh', 'XY', 'hold'], 'room for "hold", then 1 byte left: "me" waits behind it');
  assert.equal(q.takeUsed().length, 1);
  room = 100;
  port.outputSpaceFreed();
  assert.deepEqual(h.out[1], ['0123', 'abcdefgh', 'XY', 'hold', 'me']);
  assert.equal(q.takeUsed().length, 1);
  assert.equal(port.outputWaiting, false);
  port.outputSpaceFreed(); // nothing held: nothing happens
  assert.equal(h.out[1]!.length, 5);
  // Port 0 has no flow control: its output is never held.
  h.write(0, 'console');
  assert.deepEqual(h.out[0], ['console']);
  assert.ok(asked.every((n) => n > 0));
});
