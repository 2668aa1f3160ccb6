// The board's virtio devices on the fake backend: each in its slot of layout.ts (window on the MMIO
// bus, IRQ), described in the DSDT and on the command line; a driver reaching them through the
// board's MMIO bus and the board's RAM reads the disk, writes hvc0 into the host's ring and takes
// typed input; interrupts reach the 8259 (soft) or the backend's irqchip (KVM) as level lines;
// and a bad, missing or locked image is refused before the guest runs, releasing what was opened.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { hasNasm } from '../../src/common/nasm.js';
import { VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_SIZE, type VirtioMmio } from '../../src/devices/virtio/virtio-mmio.js';
import { VIRTIO_BLK_F_RO, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT } from '../../src/devices/virtio/virtio-blk.js';
import { VIRTIO_CONSOLE_F_MULTIPORT } from '../../src/devices/virtio/virtio-console.js';
import { FileBlockBackend } from '../../src/devices/virtio/block-file.js';
import { featureBit } from '../../src/devices/virtio/device.js';
import { PcBoard, type BoardRuntime } from '../../src/vmm/board.js';
import { createNetRings, FrameRing, NetBridgeHost } from '../../src/devices/net/frame-ring.js';
import { ETH_HLEN, MemoryNetBackend } from '../../src/devices/net/net-backend.js';
import { NET_QUEUE_SIZE, NET_RX_BUFFER_BYTES, NET_RX_QUEUE, NET_TX_QUEUE, VIRTIO_NET_HDR_SIZE } from '../../src/devices/virtio/virtio-net.js';
import { FrameCollector } from '../devices/net/frames.js';
import { ByteRing } from '../../src/vmm/byte-ring.js';
import { machineConfig, type MachineOptions } from '../../src/vmm/config.js';
import { BOOT, PORTS, VIRTIO_IRQS, VIRTIO_MMIO, VIRTIO_SLOT, virtioMmioSlot } from '../../src/vmm/layout.js';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { FakeBackend, type FakeBackendOptions, type FakeMachine } from '../helpers/fake-backend.js';
import { assembleSnippet } from '../helpers/nasm.js';
import { hasTool, withTempDirAsync } from '../helpers/tools.js';
import { TestDriver, TestRam, type DriverQueue } from '../devices/virtio/driver.js';

const LOAD32 = 0x100000;
const RAM = 16 << 20;
/** Where the test driver puts its rings and buffers in the board's RAM (above the guest image). */
const DRIVER_RAM = { base: 8 << 20, size: 4 << 20 };

interface Built {
  board: PcBoard;
  machine: FakeMachine;
  serialOut: ByteRing;
  serialIn: ByteRing;
  control: Int32Array;
  log: string[];
  dir: string;
  /** A test driver for the device in `slot`, through the board's MMIO bus and RAM. */
  driver(slot: number): TestDriver;
}

/** Images in a temp dir: `disk0.img` (sector n filled with n + 1), `disk1.img` (zeros). */
function writeImages(dir: string): { disk0: string; disk1: string } {
  const disk0 = join(dir, 'disk0.img');
  const bytes = new Uint8Array(64 * 512);
  for (let s = 0; s < 64; s++) bytes.fill(s + 1, s * 512, (s + 1) * 512);
  writeFileSync(disk0, bytes);
  const disk1 = join(dir, 'disk1.img');
  writeFileSync(disk1, new Uint8Array(8 * 512));
  return { disk0, disk1 };
}

async function withBoard(t: TestContext, options: (images: { disk0: string; disk1: string }) => Partial<MachineOptions>, fn: (b: Built) => void | Promise<void>, fake: FakeBackendOptions = {}, source = 'hlt', extra: Pick<BoardRuntime, 'nicRings'> = {}): Promise<void> {
  if (!hasNasm()) return t.skip('nasm not installed');
  await withTempDirAsync(async (dir) => {
    const kernel = join(dir, 'guest.bin');
    writeFileSync(kernel, assembleSnippet(source, 32));
    const config = machineConfig({ kernel, memory: RAM, flat: { loadAddr: LOAD32, mode: 'protected32' }, ...options(writeImages(dir)) });
    const backend = new FakeBackend(fake);
    const rt = { backend, serialOut: new ByteRing(4096), serialIn: new ByteRing(4096), control: new Int32Array(new SharedArrayBuffer(4)), log: [] as string[] };
    const board = new PcBoard(config, { ...rt, ...extra, log: (m) => rt.log.push(m) });
    try {
      const machine = backend.machines[0]!;
      const ram = new TestRam(DRIVER_RAM.size, DRIVER_RAM.base, machine.ram(DRIVER_RAM.base)!.subarray(0, DRIVER_RAM.size));
      const driver = (slot: number) => {
        const { base } = virtioMmioSlot(slot);
        const window = { read: (o: number, d: Uint8Array) => board.mmio.read(base + o, d), write: (o: number, d: Uint8Array) => board.mmio.write(base + o, d) };
        return new TestDriver(window as unknown as VirtioMmio, ram);
      };
      await fn({ ...rt, board, machine, dir, driver });
    } finally {
      await board.close();
    }
  });
}

/** Reads the 8259 pair's IRR (OCW3 read-IRR) for ISA IRQ `irq`. */
function picRequest(board: PcBoard, irq: number): boolean {
  const port = irq < 8 ? PORTS.PIC_MASTER.base : PORTS.PIC_SLAVE.base;
  board.ports.write(port, 1, 0x0a);
  return (board.ports.read(port, 1) & (1 << (irq & 7))) !== 0;
}

/** A read request of `sectors` at `sector` through `driver`'s queue 0: [status, data]. */
function readSectors(driver: TestDriver, sector: number, sectors: number, type = VIRTIO_BLK_T_IN): [number, Uint8Array] {
  const { ram } = driver;
  const q = driver.queues[0]!;
  const header = ram.alloc(16);
  ram.setU32(header, type);
  ram.setU64(header + 8, sector);
  const data = ram.alloc(sectors * 512);
  const status = ram.alloc(1);
  q.publish(q.addChain([{ addr: header, len: 16 }, { addr: data, len: sectors * 512, write: true }, { addr: status, len: 1, write: true }]));
  driver.kick(0);
  assert.equal(q.takeUsed().length, 1);
  return [ram.u8(status), ram.get(data, sectors * 512)];
}

test('board virtio: each device in its slot, the DSDT names each, the command line declares each', async (t) => {
  await withBoard(t, ({ disk0, disk1 }) => ({ drives: [{ file: disk0, readonly: true, serial: 'ro-disk' }, { file: disk1, readonly: false }], console: 'virtio', rng: true }), ({ board, machine, driver }) => {
    const windows = board.mmio.ranges().filter((r) => r.base >= VIRTIO_MMIO.base);
    assert.deepEqual(windows, [
      { base: 0xd0000000, length: VIRTIO_MMIO_SIZE, name: 'virtio-console' },
      { base: 0xd0001000, length: VIRTIO_MMIO_SIZE, name: 'virtio-rng' },
      { base: 0xd0002000, length: VIRTIO_MMIO_SIZE, name: 'virtio-blk0' },
      { base: 0xd0003000, length: VIRTIO_MMIO_SIZE, name: 'virtio-blk1' },
    ]);
    // The device IDs the guest reads there (virtio 1.2 §5: console 3, entropy 4, block 2).
    assert.deepEqual([0, 1, 2, 3].map((slot) => driver(slot).r32(VIRTIO_MMIO_DEVICE_ID)), [3, 4, 2, 2]);
    assert.deepEqual(board.virtio!.devices.map((d) => d.irq), [5, 6, 10, 11]);
    assert.equal(board.virtio!.cmdline('console=hvc0'),
      'console=hvc0 virtio_mmio.device=0x200@0xd0000000:5 virtio_mmio.device=0x200@0xd0001000:6 virtio_mmio.device=0x200@0xd0002000:10 virtio_mmio.device=0x200@0xd0003000:11');
    // The DSDT in the guest's ACPI area has one LNRO0005 device per window.
    const acpi = Buffer.from(machine.ram(BOOT.ACPI)!.subarray(0, 0x10000));
    assert.equal(acpi.toString('latin1').split('LNRO0005').length - 1, 4);
  });
});

test('board virtio: without virtio options there is no device, no DSDT entry and the command line is the user\'s', async (t) => {
  await withBoard(t, () => ({ cmdline: 'console=ttyS0' }), ({ board, machine }) => {
    assert.deepEqual(board.mmio.ranges(), []);
    assert.equal(board.virtio!.cmdline('console=ttyS0'), 'console=ttyS0');
    assert.ok(!Buffer.from(machine.ram(BOOT.ACPI)!.subarray(0, 0x10000)).includes('LNRO0005'));
  });
});

test('board virtio: a disk read through the board reads the image; a read-only disk says RO and refuses writes; its serial is GET_ID\'s', async (t) => {
  await withBoard(t, ({ disk0, disk1 }) => ({ drives: [{ file: disk0, readonly: true, serial: 'ro-disk' }, { file: disk1, readonly: false }] }), ({ board, driver, dir }) => {
    const vda = driver(VIRTIO_SLOT.DRIVE);
    const features = vda.negotiate()!;
    assert.ok(features & featureBit(VIRTIO_BLK_F_RO), 'a read-only disk offers VIRTIO_BLK_F_RO');
    vda.setupQueue(0);
    vda.driverOk();
    const [status, data] = readSectors(vda, 5, 2);
    assert.equal(status, 0);
    assert.deepEqual([data[0], data[511], data[512], data[1023]], [6, 6, 7, 7]);
    const [idStatus, id] = readSectors(vda, 0, 1, VIRTIO_BLK_T_GET_ID);
    assert.equal(idStatus, 0);
    assert.equal(Buffer.from(id.subarray(0, 7)).toString(), 'ro-disk');
    const before = readFileSync(join(dir, 'disk0.img'));
    const [writeStatus] = readSectors(vda, 0, 1, VIRTIO_BLK_T_OUT);
    assert.equal(writeStatus, 1, 'VIRTIO_BLK_S_IOERR');
    assert.deepEqual(readFileSync(join(dir, 'disk0.img')), before);
    // The second disk is writable and does not say RO.
    const vdb = driver(VIRTIO_SLOT.DRIVE + 1);
    assert.equal(vdb.negotiate()! & featureBit(VIRTIO_BLK_F_RO), 0n);
    void board;
  });
});

test('board virtio (8259): a completion raises the device\'s IRQ as a level the guest\'s acknowledgement lowers', async (t) => {
  await withBoard(t, ({ disk0 }) => ({ drives: [{ file: disk0, readonly: false }] }), ({ board, driver }) => {
    const irq = virtioMmioSlot(VIRTIO_SLOT.DRIVE).irq;
    assert.equal(irq, 10);
    board.ports.write(PORTS.PIC_ELCR.base + 1, 1, 1 << (irq - 8)); // level-triggered, as Linux sets it for an ACPI level IRQ
    const vda = driver(VIRTIO_SLOT.DRIVE);
    vda.probe(1, (f) => f & ~(1n << 29n)); // no EVENT_IDX: every completion interrupts
    assert.equal(picRequest(board, irq), false);
    readSectors(vda, 0, 1);
    assert.equal(picRequest(board, irq), true);
    assert.equal(vda.ackInterrupt(), 1);
    assert.equal(picRequest(board, irq), false);
  });
});

test('board virtio (irqchip, as on KVM): the device\'s line is the irqchip\'s GSI; devices sharing an IRQ are ORed', async (t) => {
  await withBoard(t, ({ disk0, disk1 }) => {
    // Slots 2 and 6 share IRQ 10 (VIRTIO_IRQS has 4 lines): disks 0 and 4.
    const extra = [2, 3, 4].map((k) => join(disk0, '..', `extra${k}.img`));
    for (const f of extra) writeFileSync(f, new Uint8Array(512));
    return { drives: [disk0, disk1, ...extra].map((file) => ({ file, readonly: false })) };
  }, ({ machine, driver }) => {
    assert.equal(virtioMmioSlot(VIRTIO_SLOT.DRIVE + 4).irq, virtioMmioSlot(VIRTIO_SLOT.DRIVE).irq);
    const a = driver(VIRTIO_SLOT.DRIVE);
    const b = driver(VIRTIO_SLOT.DRIVE + 4);
    for (const d of [a, b]) d.probe(1, (f) => f & ~(1n << 29n));
    machine.irqLines.length = 0;
    readSectors(a, 0, 1);
    readSectors(b, 0, 1);
    assert.deepEqual(machine.irqLines, [[10, true]], 'raised once while either device asserts it');
    a.ackInterrupt();
    assert.deepEqual(machine.irqLines, [[10, true]], 'still high: the other device asserts it');
    b.ackInterrupt();
    assert.deepEqual(machine.irqLines, [[10, true], [10, false]]);
    assert.ok(VIRTIO_IRQS.includes(10));
  }, { irqchip: true });
});

test('board virtio: hvc0 writes into the host\'s console ring; typed input goes to hvc0, not to COM1', async (t) => {
  const script = [{ kind: 'stopped' as const }, { kind: 'shutdown' as const }];
  await withBoard(t, () => ({ console: 'virtio' }), ({ board, driver, serialOut, serialIn }) => {
    const hvc = driver(VIRTIO_SLOT.CONSOLE);
    // Without MULTIPORT, port 0 is the console and open at DRIVER_OK (Linux's early virtio console).
    hvc.probe(2, (f) => f & ~featureBit(VIRTIO_CONSOLE_F_MULTIPORT));
    const [rx, tx] = hvc.queues;
    const text = hvc.ram.put(new TextEncoder().encode('hello from hvc0\n'));
    tx!.publish(tx!.addChain([{ addr: text, len: 16 }]));
    hvc.kick(1);
    assert.equal(Buffer.from(serialOut.read()).toString(), 'hello from hvc0\n');
    // Typed bytes, and a kick: the board moves them into the receive buffer the guest posted.
    const buf = hvc.ram.alloc(64);
    rx!.publish(rx!.addChain([{ addr: buf, len: 64, write: true }]));
    hvc.kick(0);
    serialIn.write(new TextEncoder().encode('ls\n'));
    assert.equal(board.run().how, 'triple-fault'); // the script: a kick, then the end
    const used = rx!.takeUsed();
    assert.deepEqual(used.map((u) => u.len), [3]);
    assert.equal(Buffer.from(hvc.ram.get(buf, 3)).toString(), 'ls\n');
    assert.equal(serialIn.length, 0);
  }, { run: (v) => script[v.runs - 1]! });
});

test('board virtio: a network card in the first slot after the disks, in the DSDT and on the command line with its IRQ; frames cross its rings both ways, one for the guest taken on the host\'s kick', async (t) => {
  const rings = createNetRings();
  const [hostEnd, wire] = MemoryNetBackend.pair();
  const peer = new FrameCollector();
  wire.attach(peer);
  let kicks = 0;
  const bridge = new NetBridgeHost(hostEnd, rings, () => kicks++);
  t.after(() => bridge.stop());
  const script = [{ kind: 'stopped' as const }, { kind: 'shutdown' as const }];
  await withBoard(t, ({ disk0 }) => ({ drives: [{ file: disk0, readonly: false }], nics: [{ kind: 'user' }] }), async ({ board, machine, driver }) => {
    const { base, irq } = virtioMmioSlot(VIRTIO_SLOT.NIC);
    assert.deepEqual({ base, irq }, { base: 0xd0012000, irq: 10 });
    assert.deepEqual(board.mmio.ranges().filter((r) => r.base >= VIRTIO_MMIO.base).map((r) => [r.base, r.name]), [[0xd0002000, 'virtio-blk0'], [base, 'virtio-net0']]);
    assert.equal(board.virtio!.cmdline(''), 'virtio_mmio.device=0x200@0xd0002000:10 virtio_mmio.device=0x200@0xd0012000:10');
    // The DSDT's _CRS for the card: its window (Memory32Fixed), then its interrupt (Extended IRQ) 10.
    const acpi = Buffer.from(machine.ram(BOOT.ACPI)!.subarray(0, 0x10000));
    assert.equal(acpi.toString('latin1').split('LNRO0005').length - 1, 2);
    const window = Buffer.from([0x00, 0x20, 0x01, 0xd0, 0x00, 0x02, 0x00, 0x00]); // 0xd0012000, 0x200
    const at = acpi.indexOf(window);
    assert.ok(at > 0, 'the window is described');
    assert.equal(acpi[at + 8], 0x89, 'an Extended IRQ descriptor follows');
    assert.equal(acpi.readUInt32LE(at + 13), irq);

    board.ports.write(PORTS.PIC_ELCR.base + 1, 1, 1 << (irq - 8)); // level-triggered
    const eth0 = driver(VIRTIO_SLOT.NIC);
    assert.equal(eth0.r32(VIRTIO_MMIO_DEVICE_ID), 1, 'a network device');
    const [rx, tx] = eth0.probe(2, (f) => f & ~(1n << 29n)) as [DriverQueue, DriverQueue];
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => eth0.config(i, 1)), [0x02, 0x74, 0x73, 0x76, 0x6d, 0x00], 'NIC 0\'s default MAC');
    const buf = eth0.ram.alloc(1526);
    rx.publish(rx.addChain([{ addr: buf, len: 1526, write: true }]));
    eth0.kick(NET_RX_QUEUE);

    // Guest to host: the frame goes into the ring at once; the host side hands it to the backend.
    const out = new Uint8Array(VIRTIO_NET_HDR_SIZE + 60);
    out.fill(0xab, VIRTIO_NET_HDR_SIZE);
    tx.publish(tx.addChain([{ addr: eth0.ram.put(out), len: out.length }]));
    eth0.kick(NET_TX_QUEUE);
    assert.equal(tx.takeUsed().length, 1);
    const got = await peer.waitFor((f) => f.length === 60, 'the guest\'s frame');
    assert.ok(got.every((b) => b === 0xab));

    // Host to guest: into the ring and a kick; the frame reaches the guest's buffer when the board takes the kick.
    const frame = new Uint8Array(60).fill(0xcd);
    wire.send(frame);
    assert.equal(kicks, 1);
    assert.equal(rx.takeUsed().length, 0, 'not before the kick is taken');
    assert.equal(board.run().how, 'triple-fault'); // the script: a kick, then the end
    const used = rx.takeUsed();
    assert.deepEqual(used.map((u) => u.len), [VIRTIO_NET_HDR_SIZE + 60]);
    assert.deepEqual(eth0.ram.get(buf + VIRTIO_NET_HDR_SIZE, 60), frame);
    assert.equal(picRequest(board, irq), true, 'the used-buffer interrupt');
    assert.deepEqual(board.virtio!.nicCounters().map((c) => [c.txFrames, c.rxFrames]), [[1, 1]]);
    assert.deepEqual(bridge.counters, { toGuest: 1, toHost: 1, dropped: 0 });
  }, { run: (v) => script[v.runs - 1]! }, 'hlt', { nicRings: [rings] });
});

test('board virtio: a guest that stops reading while the host floods its card: the ring and the device hold what their bounds allow, the rest is dropped and counted; reading again, the guest gets the held frames in order, then new traffic', async (t) => {
  const rings = createNetRings();
  const [hostEnd, wire] = MemoryNetBackend.pair({ record: false });
  let kicked = false;
  const bridge = new NetBridgeHost(hostEnd, rings, () => { kicked = true; });
  t.after(() => bridge.stop());
  await withBoard(t, () => ({ nics: [{ kind: 'user' }] }), async ({ board, driver }) => {
    const eth0 = driver(VIRTIO_SLOT.NIC);
    const [rx] = eth0.probe(2, (f) => f & ~(1n << 29n)) as [DriverQueue, DriverQueue];
    const nic = () => board.virtio!.nicCounters()[0]!;
    /** What the board does on the host's kick (its 'stopped' exit): the card takes what the ring holds. */
    const takeKick = () => {
      if (!kicked) return;
      kicked = false;
      board.virtio!.pollNics();
    };
    const SIZE = 1514;
    const FLOOD = 6000; // about 9 MB, many times both bounds
    const frame = (n: number) => {
      const f = new Uint8Array(SIZE);
      new DataView(f.buffer).setUint32(ETH_HLEN, n);
      return f;
    };
    // The driver is up but posts no receive buffer. The vCPU takes kicks for the first half of the
    // flood (the device holds up to its bound, then drops), then is busy (the ring fills, the host side drops).
    for (let n = 0; n < FLOOD; n++) {
      wire.send(frame(n));
      if (n < FLOOD / 2 && n % 50 === 49) takeKick();
    }
    const ring = new FrameRing(rings.toGuest);
    assert.ok(ring.used > ring.capacity - (SIZE + 4), 'the ring is full');
    takeKick();
    const c = nic();
    assert.equal(bridge.counters.toGuest + bridge.counters.dropped, FLOOD, 'each frame is in the ring or counted dropped by the host side');
    assert.ok(bridge.counters.dropped > 0, 'the host side dropped while the vCPU was busy');
    assert.ok(c.rxDropped > 0, 'the device dropped past its bound');
    assert.equal(c.rxFrames, 0);
    const held = bridge.counters.toGuest - c.rxDropped;
    assert.ok(held * SIZE <= NET_RX_BUFFER_BYTES, `the device holds ${held} frames of ${SIZE} bytes, within its ${NET_RX_BUFFER_BYTES}`);

    // The guest reads again: buffers posted and recycled until a frame sent after the flood arrives.
    const BUF = VIRTIO_NET_HDR_SIZE + SIZE;
    const bufs = Array.from({ length: NET_QUEUE_SIZE }, () => eth0.ram.alloc(BUF));
    const byHead = new Map<number, number>();
    for (const addr of bufs) {
      const head = rx.addChain([{ addr, len: BUF, write: true }]);
      byHead.set(head, addr);
      rx.publish(head);
    }
    eth0.kick(NET_RX_QUEUE);
    const got: number[] = [];
    const MARK = 0x7fff_0000;
    let marked = false;
    for (let round = 0; round < 100 && !got.includes(MARK); round++) {
      if (round === 2) {
        wire.send(frame(MARK));
        marked = true;
      }
      for (const u of rx.takeUsed()) {
        const addr = byHead.get(u.id)!;
        assert.equal(u.len, BUF);
        got.push(new DataView(eth0.ram.get(addr + VIRTIO_NET_HDR_SIZE + ETH_HLEN, 4).buffer).getUint32(0));
        const head = rx.addChain([{ addr, len: BUF, write: true }]);
        byHead.set(head, addr);
        rx.publish(head);
      }
      eth0.kick(NET_RX_QUEUE);
      takeKick();
    }
    assert.ok(marked);
    assert.equal(got.at(-1), MARK, 'traffic flows again');
    const stale = got.slice(0, -1);
    assert.deepEqual(stale, [...stale].sort((a, b) => a - b), 'held frames arrive in order');
    // The last kick moved the ring's frames into the device, which kept what its bound allows.
    assert.ok(stale.length * SIZE <= NET_RX_BUFFER_BYTES, `${stale.length} frames were held for the guest; the bound allows ${Math.floor(NET_RX_BUFFER_BYTES / SIZE)}`);
    assert.equal(stale.length, held, 'what the device held, and nothing more');
    assert.equal(nic().rxFrames, got.length);
  }, {}, 'hlt', { nicRings: [rings] });
});

test('board virtio: a network card without its rings is refused (a board misbuilt, not a guest\'s doing)', async (t) => {
  await assert.rejects(withBoard(t, () => ({ nics: [{ kind: 'user' }] }), () => {}), { code: 'TSVMM_BAD_ARGUMENT', message: /1 network cards and the board was given 0 pairs of rings/ });
});

test('board virtio: a locked image stops the board before the guest runs, and the disks it had opened are let go', async (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  await withTempDirAsync(async (dir) => {
    const { disk0, disk1 } = writeImages(dir);
    const kernel = join(dir, 'guest.bin');
    writeFileSync(kernel, assembleSnippet('hlt', 32));
    const holder = FileBlockBackend.open({ path: disk1 });
    try {
      const config = machineConfig({ kernel, memory: RAM, flat: { loadAddr: LOAD32, mode: 'protected32' }, drives: [{ file: disk0, readonly: false }, { file: disk1, readonly: false }] });
      const backend = new FakeBackend();
      assert.throws(() => new PcBoard(config, { backend, serialOut: new ByteRing(4096), serialIn: new ByteRing(4096), control: new Int32Array(new SharedArrayBuffer(4)), log: () => {} }), { code: 'TSVMM_BUSY', message: /disk1.img is in use by another process/ });
      assert.equal(backend.machines[0]!.vcpus.length, 0, 'no vCPU was made');
      // disk0 was opened first, then let go: it can be locked again.
      FileBlockBackend.open({ path: disk0 }).close();
    } finally {
      holder.close();
    }
  });
});

test('VirtualMachine.create checks each drive before the machine starts: missing, not whole sectors, locked', async () => {
  await withTempDirAsync(async (dir) => {
    const kernel = join(dir, 'kernel');
    writeFileSync(kernel, new Uint8Array(4096));
    const odd = join(dir, 'odd.img');
    writeFileSync(odd, new Uint8Array(1000));
    const { disk0 } = writeImages(dir);
    await assert.rejects(VirtualMachine.create({ kernel, drives: [{ file: join(dir, 'missing.img'), readonly: false }] }), { code: 'TSVMM_BAD_DISK', message: /missing.img cannot be opened/ });
    await assert.rejects(VirtualMachine.create({ kernel, drives: [{ file: odd, readonly: true }] }), { code: 'TSVMM_BAD_DISK', message: /1000 bytes, not a whole number of 512-byte sectors/ });
    await assert.rejects(VirtualMachine.create({ kernel, drives: [{ file: dir, readonly: true }] }), { code: 'TSVMM_BAD_DISK' });
    const holder = FileBlockBackend.open({ path: disk0 });
    try {
      await assert.rejects(VirtualMachine.create({ kernel, drives: [{ file: disk0, readonly: false }] }), { code: 'TSVMM_BUSY' });
      // A reader is refused too while another process writes it.
      await assert.rejects(VirtualMachine.create({ kernel, drives: [{ file: disk0, readonly: true }] }), { code: 'TSVMM_BUSY' });
    } finally {
      holder.close();
    }
    const vm = await VirtualMachine.create({ kernel, drives: [{ file: disk0, readonly: false }] });
    assert.deepEqual(vm.config.drives, [{ file: disk0, readonly: false }]);
    await vm.stop();
  });
});

test('VirtualMachine.create starts each network card\'s passt: without passt, TSVMM_TOOL_MISSING names its package; a machine stopped before it ran ends its passt', async (t) => {
  await withTempDirAsync(async (dir) => {
    const kernel = join(dir, 'kernel');
    writeFileSync(kernel, new Uint8Array(4096));
    const path = process.env['PATH'];
    process.env['PATH'] = dir; // no passt there
    try {
      await assert.rejects(VirtualMachine.create({ kernel, nics: [{ kind: 'user' }] }), { code: 'TSVMM_TOOL_MISSING', message: /Debian package passt/ });
    } finally {
      process.env['PATH'] = path;
    }
    if (!hasTool('passt')) return t.skip('passt is not installed (Debian package passt)');
    const vm = await VirtualMachine.create({ kernel, nics: [{ kind: 'user' }] });
    const exited = await vm.stop();
    assert.equal(exited.nics.length, 1);
    const pid = Number(/passt \(pid (\d+)\)/.exec(exited.nics[0]!.backend)?.[1]);
    assert.ok(pid > 0, exited.nics[0]!.backend);
    assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'passt has ended');
    assert.deepEqual(exited.nics[0]!.host, { toGuest: 0, toHost: 0, dropped: 0 });
    assert.equal(exited.nics[0]!.device, undefined, 'the machine never ran');
  });
});
