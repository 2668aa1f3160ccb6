// The PC board's own logic on the fake backend, in this thread, without KVM: the devices at their
// ports, how each way of ending reaches run(), the host's kicks, unknown ports, pages and MSRs,
// the tables it writes for the guest, and its limits. The board is given its backend (PcBoard's
// BoardRuntime), so none of this needs /dev/kvm; the whole machine (worker threads, the real
// CPUs) is board.test.ts's.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { hasNasm } from '../../src/common/nasm.js';
import { TsvmmError } from '../../src/common/errors.js';
import { E820_RESERVED } from '../../src/loader/boot-params.js';
import type { VcpuExit } from '../../src/nvmm/exit.js';
import { GPR, SEG, STATE } from '../../src/nvmm/state.js';
import { KICK, PcBoard, memoryMap } from '../../src/vmm/board.js';
import { ByteRing } from '../../src/vmm/byte-ring.js';
import { machineConfig, type MachineOptions } from '../../src/vmm/config.js';
import { BOOT, IRQS, PORTS } from '../../src/vmm/layout.js';
import { FakeBackend, interpret, type FakeBackendOptions, type FakeMachine, type FakeVcpu } from '../helpers/fake-backend.js';
import { assembleSnippet } from '../helpers/nasm.js';
import { withTempDirAsync } from '../helpers/tools.js';

/** Where the flat images go: real-mode ones below the boot stack, protected-mode ones at 1 MiB (above the boot areas). */
const LOAD = 0x8000;
const LOAD32 = 0x100000;

interface Built {
  board: PcBoard;
  backend: FakeBackend;
  machine: FakeMachine;
  vcpu: FakeVcpu;
  serialOut: ByteRing;
  serialIn: ByteRing;
  control: Int32Array;
  log: string[];
}

/**
 * Builds a board on the fake backend with `source` (nasm, `bits`) as a flat image (at LOAD or
 * LOAD32), runs `fn` with it and closes it; skips `t` without nasm.
 */
async function withBoard(t: TestContext, source: string, fn: (b: Built) => void | Promise<void>, opts: { bits?: 16 | 32; config?: Partial<MachineOptions>; fake?: FakeBackendOptions } = {}): Promise<void> {
  if (!hasNasm()) return t.skip('nasm not installed');
  const bits = opts.bits ?? 16;
  await withTempDirAsync(async (dir) => {
    const kernel = join(dir, 'guest.bin');
    writeFileSync(kernel, assembleSnippet(source, bits));
    const config = machineConfig({ kernel, memory: 16 << 20, flat: bits === 16 ? { loadAddr: LOAD, mode: 'real16' } : { loadAddr: LOAD32, mode: 'protected32' }, ...opts.config });
    const backend = new FakeBackend(opts.fake);
    const rt = { backend, serialOut: new ByteRing(4096), serialIn: new ByteRing(4096), control: new Int32Array(new SharedArrayBuffer(4)), log: [] as string[] };
    const board = new PcBoard(config, { ...rt, log: (m) => rt.log.push(m) });
    try {
      const machine = backend.machines[0]!;
      await fn({ ...rt, board, machine, vcpu: machine.vcpus[0]! });
    } finally {
      await board.close();
    }
  });
}

/** `out` of AL (set to `al`, if given) to the debug-exit port: run() ends with (AL << 1) | 1. */
const debugExit = (al?: string) => `${al === undefined ? '' : `mov al, ${al}\n`}mov dx, ${PORTS.DEBUG_EXIT.base}\nout dx, al\nhlt`;

test('board: the debug-exit port ends run() with its status; the guest started at its entry, in real mode', async (t) => {
  await withBoard(t, debugExit('0x21'), ({ board, vcpu }) => {
    assert.equal(board.format, 'flat');
    assert.deepEqual(board.run(), { how: 'debug-exit', status: 0x43 });
    assert.equal(board.exits.get('io'), 1);
    assert.equal(vcpu.exits[0]!.kind, 'io');
  });
});

test('board: COM1 transmits into the host\'s ring', async (t) => {
  const source = `mov dx, ${PORTS.COM1.base}\nmov al, 'h'\nout dx, al\nmov al, 'i'\nout dx, al\n${debugExit('0')}`;
  await withBoard(t, source, ({ board, serialOut }) => {
    assert.deepEqual(board.run(), { how: 'debug-exit', status: 1 });
    assert.equal(Buffer.from(serialOut.read(100)).toString('latin1'), 'hi');
  });
});

test('board: a host kick moves typed bytes into COM1, where the guest reads them', async (t) => {
  // The first run() stops, as a kicked vCPU does; the guest then runs and reads the receive buffer.
  const source = `mov dx, ${PORTS.COM1.base}\nin al, dx\n${debugExit()}`;
  const run = (v: FakeVcpu): VcpuExit => (v.runs === 1 ? { kind: 'stopped' } : interpret(v));
  await withBoard(t, source, ({ board, serialIn }) => {
    serialIn.write(Uint8Array.of(0x2a));
    assert.deepEqual(board.run(), { how: 'debug-exit', status: (0x2a << 1) | 1 });
    assert.equal(serialIn.length, 0, 'the UART took the byte');
  }, { fake: { run } });
});

const ends: [string, string, object][] = [
  ['the i8042 reset pulse', `mov al, 0xfe\nout ${PORTS.I8042_COMMAND.base}, al\nhlt`, { how: 'reset' }],
  ['the ACPI reset register (0xcf9)', `mov dx, ${PORTS.ACPI_RESET.base}\nmov al, 0x06\nout dx, al\nhlt`, { how: 'reset' }],
  ['ACPI S5 through PM1 control', `mov dx, ${PORTS.ACPI_PM.base + 4}\nmov ax, (5 << 10) | 0x2000\nout dx, ax\nhlt`, { how: 'poweroff' }],
  ['an ACPI sleep state other than S5', `mov dx, ${PORTS.ACPI_PM.base + 4}\nmov ax, (3 << 10) | 0x2000\nout dx, ax\nhlt`, { how: 'error', code: 'TSVMM_GUEST', message: 'ACPI sleep type 3 is not supported' }],
];
for (const [what, source, end] of ends) {
  test(`board: ${what} ends run() with ${JSON.stringify(end)}`, async (t) => {
    await withBoard(t, source, ({ board }) => assert.deepEqual(board.run(), end));
  });
}

test('board: ports with no device read all ones, are counted by range and noted once', async (t) => {
  const source = `mov dx, 0x1234\nin al, dx\nin al, dx\nout dx, al\n${debugExit()}`;
  await withBoard(t, source, ({ board, log }) => {
    assert.deepEqual(board.run(), { how: 'debug-exit', status: 0x1ff });
    assert.deepEqual(board.ports.unknown.map((r) => [r.first, r.count]), [[0x1234, 3]]);
    assert.equal(log.filter((m) => /port 0x1234/.test(m)).length, 1, log.join('\n'));
  });
});

test('board: a read of a page with nothing mapped (above RAM) reads all ones and is counted', async (t) => {
  const source = `mov eax, [0xd0000000]\n${debugExit()}`;
  await withBoard(t, source, ({ board }) => {
    assert.deepEqual(board.run(), { how: 'debug-exit', status: 0x1ff });
    assert.equal(board.exits.get('memory'), 1);
    assert.deepEqual(board.mmio.unknown.map((r) => r.first), [0xd0000000]);
  }, { bits: 32 });
});

test('board: an unknown MSR gets #GP each time and one note; a triple fault ends with a report', async (t) => {
  const script: VcpuExit[] = [
    { kind: 'rdmsr', msr: 0xc0011234, npc: BigInt(LOAD + 2) },
    { kind: 'wrmsr', msr: 0xc0011234, value: 0n, npc: BigInt(LOAD + 2) },
    { kind: 'shutdown' },
  ];
  await withBoard(t, 'hlt', ({ board, vcpu, log }) => {
    const end = board.run();
    assert.equal(end.how, 'triple-fault');
    assert.match((end as { report: string }).report, new RegExp(`^triple fault at RIP 0x${LOAD.toString(16)} \\(CS 0x0`));
    assert.deepEqual(vcpu.events, [{ type: 'exception', vector: 13, errorCode: 0 }, { type: 'exception', vector: 13, errorCode: 0 }]);
    assert.deepEqual(log, ['rdmsr of unknown MSR 0xc0011234: #GP']);
  }, { fake: { run: (v) => script[v.runs - 1]! } });
});

test('board: an exit the backend cannot handle ends with TSVMM_GUEST and where the vCPU was', async (t) => {
  await withBoard(t, 'hlt', ({ board }) => {
    const end = board.run();
    assert.equal(end.how, 'error');
    assert.equal((end as { code: string }).code, 'TSVMM_GUEST');
    assert.match((end as { message: string }).message, /^no such instruction at RIP 0x8000/);
  }, { fake: { run: () => ({ kind: 'invalid', reason: 'no such instruction' }) } });
});

test('board: an end the host asked for before run() ends it before the guest runs', async (t) => {
  for (const [kick, how] of [[KICK.STOP, 'stopped'], [KICK.TIMEOUT, 'timeout']] as const) {
    await withBoard(t, debugExit('1'), ({ board, vcpu, control }) => {
      Atomics.store(control, 0, kick);
      const end = board.run();
      assert.equal(end.how, how);
      if (end.how === 'timeout') assert.match(end.report, /^timed out at RIP 0x8000/);
      assert.equal(vcpu.runs, 0, 'the guest never ran');
    });
  }
});

test('board: the devices and their lines are where layout.ts puts them', async (t) => {
  await withBoard(t, 'hlt', ({ board }) => {
    const ranges = board.ports.ranges();
    const names = (port: number) => ranges.find((r) => port >= r.base && port < r.base + r.length)?.name;
    assert.equal(names(PORTS.COM1.base), 'com1');
    assert.equal(names(PORTS.I8042_DATA.base), 'i8042');
    assert.equal(names(PORTS.RTC.base), 'rtc');
    assert.equal(names(PORTS.DEBUG_EXIT.base), 'debug-exit');
    assert.equal(names(PORTS.ACPI_PM.base), 'acpi-pm');
    assert.equal(names(PORTS.ACPI_RESET.base), 'acpi-reset');
    // No irqchip in the backend: the board's own 8259 pair and 8254.
    assert.equal(names(PORTS.PIC_MASTER.base), 'pic-master');
    assert.equal(names(PORTS.PIT.base), 'pit');
    assert.equal(IRQS.COM1, 4);
  });
});

test('board: 64 vCPUs: the MP pointer in the EBDA leads to a table of 64 processors inside a reserved range', async (t) => {
  // The table used to follow the pointer in the EBDA's last KiB, and ran past 0xa0000 above 40 vCPUs.
  await withBoard(t, 'hlt', ({ machine }) => {
    const ram = (gpa: number, n: number) => machine.ram(gpa)!.subarray(0, n);
    const pointer = ram(BOOT.MPTABLE, 16);
    assert.equal(Buffer.from(pointer.subarray(0, 4)).toString(), '_MP_');
    const tableGpa = new DataView(pointer.buffer, pointer.byteOffset).getUint32(4, true);
    const header = ram(tableGpa, 44);
    const dv = new DataView(header.buffer, header.byteOffset);
    assert.equal(Buffer.from(header.subarray(0, 4)).toString(), 'PCMP');
    const length = dv.getUint16(4, true);
    const table = ram(tableGpa, length);
    assert.equal(table.reduce((a, b) => (a + b) & 0xff, 0), 0, 'checksum');
    let processors = 0;
    for (let off = 44, i = 0; i < dv.getUint16(34, true); i++) {
      if (table[off] === 0) processors++;
      off += table[off] === 0 ? 20 : 8;
    }
    assert.equal(processors, 64);
    const reserved = memoryMap(16 << 20).filter((e) => e.type === E820_RESERVED);
    assert.ok(reserved.some((e) => tableGpa >= e.addr && tableGpa + length <= e.addr + e.size), `table at 0x${tableGpa.toString(16)}+0x${length.toString(16)}`);
    assert.ok(ram(BOOT.ACPI, 8).every((b, i) => b === 'RSD PTR '.charCodeAt(i)), 'the ACPI tables are there too');
  }, { config: { cpus: 64 }, fake: { capability: { maxVcpus: 64 } } });
});

test('board: more vCPUs or RAM than the backend takes: TSVMM_LIMIT, and the machine is released', async (t) => {
  const isLimit = (re: RegExp) => (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_LIMIT' && re.test(e.message);
  if (!hasNasm()) return t.skip('nasm not installed');
  await withTempDirAsync(async (dir) => {
    const kernel = join(dir, 'guest.bin');
    writeFileSync(kernel, assembleSnippet('hlt', 16));
    const rt = { serialOut: new ByteRing(64), serialIn: new ByteRing(64), control: new Int32Array(new SharedArrayBuffer(4)), log: () => {} };
    const config = (o: Partial<MachineOptions>) => machineConfig({ kernel, memory: 16 << 20, flat: { loadAddr: LOAD, mode: 'real16' }, ...o });
    const cpus = new FakeBackend();
    assert.throws(() => new PcBoard(config({ cpus: 5 }), { ...rt, backend: cpus }), isLimit(/^5 vCPUs: the soft backend takes at most 4/));
    assert.equal(cpus.machines[0]!.mappings.length, 0, 'RAM unmapped');
    const ram = new FakeBackend({ capability: { maxRam: 8 << 20 } });
    assert.throws(() => new PcBoard(config({}), { ...rt, backend: ram }), isLimit(/above the soft backend's guest-physical limit/));
  });
});

test('board: the kernel is read from the configuration\'s path; a missing one is TSVMM_BAD_KERNEL', async () => {
  const rt = { backend: new FakeBackend(), serialOut: new ByteRing(64), serialIn: new ByteRing(64), control: new Int32Array(new SharedArrayBuffer(4)), log: () => {} };
  assert.throws(() => new PcBoard(machineConfig({ kernel: '/nonexistent/kernel' }), rt), (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_BAD_KERNEL');
  assert.equal(rt.backend.machines.length, 0, 'no machine was made');
});

test('board: the vCPU enters a flat image at its load address with the state its mode asks for', async (t) => {
  await withBoard(t, 'hlt', ({ board }) => {
    const s = board.vcpu.getState(STATE.GPRS | STATE.SEGS);
    assert.equal(s.gprs[GPR.RIP], BigInt(LOAD));
    assert.equal(s.segs[SEG.CS]!.base, 0n);
  });
});
