import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MmioBus, PortBus, UNKNOWN_LOGGED, UNKNOWN_RANGES, type MmioDevice, type PortDevice } from '../../src/devices/bus.js';
import { TsvmmError } from '../../src/common/errors.js';

/** A port device that records accesses and answers reads with offset-derived values. */
class Probe implements PortDevice {
  log: string[] = [];
  read(offset: number, size: 1 | 2 | 4): number {
    this.log.push(`r${offset}/${size}`);
    return size === 4 ? 0x8765_4321 : size === 2 ? 0xbeef : 0x40 + offset;
  }
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    this.log.push(`w${offset}/${size}=${value.toString(16)}`);
  }
}

test('port bus routes by offset into the window', () => {
  const bus = new PortBus();
  const a = new Probe();
  bus.register(0x3f8, 8, 'com1', a);
  assert.equal(bus.read(0x3fd, 1), 0x45);
  bus.write(0x3f8, 1, 0x41);
  bus.write(0x3f9, 2, 0x1_2345); // masked to 16 bits
  assert.deepEqual(a.log, ['r5/1', 'w0/1=41', 'w1/2=2345']);
  assert.deepEqual(bus.ranges(), [{ base: 0x3f8, length: 8, name: 'com1' }]);
});

test('port bus: unknown ports read all ones, are counted and logged once per port', () => {
  const messages: string[] = [];
  const bus = new PortBus({ log: (m) => messages.push(m) });
  assert.equal(bus.read(0x278, 1), 0xff);
  assert.equal(bus.read(0x278, 2), 0xffff);
  assert.equal(bus.read(0x278, 4), 0xffff_ffff);
  bus.write(0x278, 1, 0);
  bus.write(0x2f8, 1, 0);
  assert.deepEqual(bus.unknown, [{ first: 0x278, last: 0x278, count: 4 }, { first: 0x2f8, last: 0x2f8, count: 1 }]);
  assert.equal(messages.length, 2);
  assert.match(messages[0]!, /0x278/);
  assert.match(messages[1]!, /0x2f8/);
});

test('port bus rejects overlapping and out-of-space ranges', () => {
  const bus = new PortBus();
  bus.register(0x60, 5, 'i8042', new Probe());
  for (const [base, len] of [[0x64, 1], [0x5c, 5], [0x60, 1], [0x50, 0x100]] as const) {
    assert.throws(() => bus.register(base, len, 'x', new Probe()),
      (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_BAD_ARGUMENT' && /i8042/.test(e.message));
  }
  assert.throws(() => bus.register(0xfffe, 4, 'x', new Probe()), (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_BAD_ARGUMENT');
  assert.throws(() => bus.register(0x10, 0, 'x', new Probe()), (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_BAD_ARGUMENT');
  bus.register(0x5b, 5, 'below', new Probe()); // adjacent is fine
  bus.register(0x65, 1, 'above', new Probe());
  bus.unregister(0x60);
  bus.register(0x62, 1, 'middle', new Probe());
  assert.deepEqual(bus.ranges().map((r) => r.name), ['below', 'middle', 'above']);
  assert.equal(bus.read(0x60, 1), 0xff);
});

test('port bus access() serves IoAccess records little-endian at sizes 1, 2 and 4', () => {
  const bus = new PortBus();
  const p = new Probe();
  bus.register(0xcf8, 8, 'pci', p);
  const d1 = new Uint8Array(1);
  bus.access({ port: 0xcfa, in: true, size: 1, data: d1 });
  assert.deepEqual([...d1], [0x42]);
  const d2 = new Uint8Array(2);
  bus.access({ port: 0xcfc, in: true, size: 2, data: d2 });
  assert.deepEqual([...d2], [0xef, 0xbe]);
  const d4 = new Uint8Array(4);
  bus.access({ port: 0xcf8, in: true, size: 4, data: d4 });
  assert.deepEqual([...d4], [0x21, 0x43, 0x65, 0x87]);
  bus.access({ port: 0xcf8, in: false, size: 4, data: Uint8Array.of(0x00, 0x08, 0x00, 0x80) });
  bus.access({ port: 0xcfe, in: false, size: 2, data: Uint8Array.of(0x34, 0x12) });
  bus.access({ port: 0xcff, in: false, size: 1, data: Uint8Array.of(0x99) });
  assert.deepEqual(p.log.slice(3), ['w0/4=80000800', 'w6/2=1234', 'w7/1=99']);
  // Unknown port through access(): all ones of the size.
  const u = new Uint8Array(4);
  bus.access({ port: 0x1234, in: true, size: 2, data: u.subarray(0, 2) });
  assert.deepEqual([...u], [0xff, 0xff, 0, 0]);
});

class Ram implements MmioDevice {
  bytes = new Uint8Array(0x100);
  read(offset: number, data: Uint8Array): void {
    data.set(this.bytes.subarray(offset, offset + data.length));
  }
  write(offset: number, data: Uint8Array): void {
    this.bytes.set(data, offset);
  }
}

test('MMIO bus: binary-search routing, overlap rejection, unmapped pages counted and logged once', () => {
  const messages: string[] = [];
  const bus = new MmioBus({ log: (m) => messages.push(m) });
  const a = new Ram();
  const b = new Ram();
  const c = new Ram();
  bus.register(0xd000_0000, 0x100, 'b', b);
  bus.register(0xfee0_0000, 0x100, 'c', c);
  bus.register(0x1_0000_0000, 0x100, 'above4g', a);
  assert.throws(() => bus.register(0xd000_00ff, 2, 'x', new Ram()),
    (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_BAD_ARGUMENT' && /overlaps b/.test(e.message));
  assert.throws(() => bus.register(0xcfff_ff00, 0x101, 'x', new Ram()), (e: unknown) => e instanceof TsvmmError);
  bus.register(0xcfff_ff00, 0x100, 'adjacent', new Ram());

  bus.access({ gpa: 0xd000_0010, write: true, size: 4, data: Uint8Array.of(1, 2, 3, 4) });
  bus.access({ gpa: 0x1_0000_0004, write: true, size: 2, data: Uint8Array.of(9, 8) });
  assert.deepEqual([...b.bytes.subarray(0x10, 0x14)], [1, 2, 3, 4]);
  assert.deepEqual([...a.bytes.subarray(4, 6)], [9, 8]);
  const d = new Uint8Array(4);
  bus.access({ gpa: 0xd000_0011, write: false, size: 4, data: d });
  assert.deepEqual([...d], [2, 3, 4, 0]);

  const u = new Uint8Array(4);
  bus.access({ gpa: 0xd000_0100, write: false, size: 4, data: u });
  assert.deepEqual([...u], [0xff, 0xff, 0xff, 0xff]);
  bus.access({ gpa: 0xd000_0ffc, write: true, size: 4, data: u });
  bus.access({ gpa: 0xd000_1000, write: true, size: 1, data: u.subarray(0, 1) });
  assert.deepEqual(bus.unknown, [{ first: 0xd000_0000, last: 0xd000_0fff, count: 2 }, { first: 0xd000_1000, last: 0xd000_1fff, count: 1 }]);
  assert.equal(messages.length, 2);
});

test('a guest touching every port and every MMIO page: counts stay exact, bounded by range, and the log stops', () => {
  const messages: string[] = [];
  const ports = new PortBus({ log: (m) => messages.push(m) });
  ports.register(0x3f8, 8, 'com1', new Probe());
  for (let round = 0; round < 2; round++) for (let port = 0; port < 0x1_0000; port++) ports.read(port, 1);
  const portRanges = ports.unknown;
  assert.ok(portRanges.length <= UNKNOWN_RANGES, `${portRanges.length} port ranges`);
  assert.equal(portRanges.reduce((n, r) => n + r.count, 0), 2 * (0x1_0000 - 8));
  assert.equal(portRanges[0]!.first, 0);
  assert.equal(portRanges.at(-1)!.last, 0xffff);
  for (const r of portRanges) assert.ok(r.last < 0x3f8 || r.first > 0x3ff, 'no range covers the UART');
  assert.equal(messages.length, UNKNOWN_LOGGED + 1);
  assert.match(messages.at(-1)!, /more ports with nothing there: counted by range, not logged/);

  messages.length = 0;
  const mmio = new MmioBus({ log: (m) => messages.push(m) });
  const data = new Uint8Array(4);
  const pages = 1 << 20; // 4 GiB of guest-physical space, page by page, above 4 GiB
  for (let page = 0; page < pages; page++) mmio.access({ gpa: 0x1_0000_0000 + page * 4096 + 8, write: page % 2 === 0, size: 4, data });
  const mmioRanges = mmio.unknown;
  assert.ok(mmioRanges.length <= UNKNOWN_RANGES);
  assert.equal(mmioRanges.reduce((n, r) => n + r.count, 0), pages);
  assert.equal(mmioRanges[0]!.first, 0x1_0000_0000);
  assert.equal(mmioRanges.at(-1)!.last, 0x1_0000_0000 + pages * 4096 - 1);
  assert.equal(messages.length, UNKNOWN_LOGGED + 1);
});

test('unknown accesses: ranges merge where the gaps are smallest, counts follow', () => {
  const bus = new PortBus();
  // UNKNOWN_RANGES + 1 ports, the last two closest together: they are the ones merged.
  const ports = Array.from({ length: UNKNOWN_RANGES }, (_, i) => i * 0x100);
  ports.push(ports.at(-1)! + 2);
  for (const p of ports) bus.write(p, 1, 0);
  bus.write(ports.at(-1)!, 1, 0);
  const ranges = bus.unknown;
  assert.equal(ranges.length, UNKNOWN_RANGES);
  assert.deepEqual(ranges.at(-1), { first: ports.at(-2)!, last: ports.at(-1)!, count: 3 });
  assert.deepEqual(ranges[0], { first: 0, last: 0, count: 1 });
});
