import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildAcpiTables, encodePkgLength, acpiSum } from '../../src/devices/acpi-tables.js';
import { AcpiPm, AcpiResetRegister } from '../../src/devices/acpi-pm.js';
import { PortBus } from '../../src/devices/bus.js';
import { RecordingIrqLine } from '../../src/devices/irq.js';
import { tempDir } from '../helpers/tools.js';

const AT = 0xe0000;
const built = buildAcpiTables(AT, { cpus: 2, ioapicId: 2, pmBase: 0x600 });
const dv = new DataView(built.bytes.buffer, built.bytes.byteOffset);
const off = (gpa: number) => gpa - AT;
const u8 = (gpa: number) => dv.getUint8(off(gpa));
const u16 = (gpa: number) => dv.getUint16(off(gpa), true);
const u32 = (gpa: number) => dv.getUint32(off(gpa), true);
const u64 = (gpa: number) => dv.getUint32(off(gpa), true) + dv.getUint32(off(gpa) + 4, true) * 2 ** 32;
const str = (gpa: number, n: number) => String.fromCharCode(...built.bytes.subarray(off(gpa), off(gpa) + n));
const table = (gpa: number) => built.bytes.subarray(off(gpa), off(gpa) + u32(gpa + 4));

test('RSDP: signature, alignment, both checksums, RSDT and XSDT addresses', () => {
  const r = built.rsdpAddress;
  assert.equal(r % 16, 0);
  assert.equal(str(r, 8), 'RSD PTR ');
  assert.equal(acpiSum(built.bytes.subarray(off(r), off(r) + 20)), 0);
  assert.equal(acpiSum(built.bytes.subarray(off(r), off(r) + 36)), 0);
  assert.equal(u8(r + 15), 2);
  assert.equal(u32(r + 20), 36);
  assert.equal(u32(r + 16), built.tables.RSDT);
  assert.equal(u64(r + 24), built.tables.XSDT);
});

test('every table has its signature, a valid checksum, and the XSDT/RSDT list FADT and MADT', () => {
  for (const sig of ['RSDT', 'XSDT', 'FACP', 'DSDT', 'APIC'] as const) {
    const a = built.tables[sig];
    assert.equal(str(a, 4), sig);
    assert.equal(acpiSum(table(a)), 0, `${sig} checksum`);
    assert.equal(str(a + 10, 6), 'TSVMM ');
  }
  const x = built.tables.XSDT;
  assert.deepEqual([u64(x + 36), u64(x + 44)], [built.tables.FACP, built.tables.APIC]);
  const r = built.tables.RSDT;
  assert.deepEqual([u32(r + 36), u32(r + 40)], [built.tables.FACP, built.tables.APIC]);
  assert.equal(str(built.tables.FACS, 4), 'FACS');
  assert.equal(built.tables.FACS % 64, 0);
  assert.equal(u32(built.tables.FACS + 4), 64);
});

test('FADT fields: revision 6, SCI 9, no SMI_CMD, PM blocks, reset register 0xCF9 = 6', () => {
  const f = built.tables.FACP;
  assert.equal(u32(f + 4), 276);
  assert.equal(u8(f + 8), 6);
  assert.equal(u32(f + 36), built.tables.FACS);
  assert.equal(u32(f + 40), built.tables.DSDT);
  assert.equal(u64(f + 140), built.tables.DSDT);
  assert.equal(u16(f + 46), 9);
  assert.equal(u32(f + 48), 0); // SMI_CMD
  assert.deepEqual([u32(f + 56), u32(f + 64), u32(f + 76)], [0x600, 0x604, 0x608]);
  assert.deepEqual([u8(f + 88), u8(f + 89), u8(f + 91)], [4, 2, 4]);
  assert.equal(u32(f + 112) & (1 << 10), 1 << 10); // RESET_REG_SUP
  assert.equal(u32(f + 112) & (1 << 20), 0); // not hardware-reduced
  assert.deepEqual([u8(f + 116), u8(f + 117), u8(f + 118), u8(f + 119), u64(f + 120), u8(f + 128)], [1, 8, 0, 1, 0xcf9, 6]);
  assert.deepEqual([u8(f + 148), u8(f + 149), u64(f + 152)], [1, 32, 0x600]); // X_PM1a_EVT_BLK
});

test('MADT: local APICs, I/O APIC, overrides IRQ0->GSI2 and SCI level, LINT1 NMI', () => {
  const m = built.tables.APIC;
  assert.equal(u32(m + 36), 0xfee00000);
  assert.equal(u32(m + 40), 1);
  const entries: number[][] = [];
  for (let p = m + 44; p < m + u32(m + 4); p += u8(p + 1)) {
    entries.push([...built.bytes.subarray(off(p), off(p) + u8(p + 1))]);
  }
  assert.deepEqual(entries, [
    [0, 8, 0, 0, 1, 0, 0, 0],
    [0, 8, 1, 1, 1, 0, 0, 0],
    [1, 12, 2, 0, 0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0],
    [2, 10, 0, 0, 2, 0, 0, 0, 0, 0],
    [2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0],
    [4, 6, 0xff, 0x05, 0x00, 1],
  ]);
});

/** An independent reader of the DSDT: header, then NameOp NameSeg PackageOp PkgLength NumElements elements. */
function parseDsdt(bytes: Uint8Array): { signature: string; revision: number; name: string; elements: number[] } {
  const signature = String.fromCharCode(...bytes.subarray(0, 4));
  const length = bytes[4]! | (bytes[5]! << 8) | (bytes[6]! << 16) | (bytes[7]! << 24);
  assert.equal(length, bytes.length);
  let p = 36;
  assert.equal(bytes[p++], 0x08, 'NameOp');
  const name = String.fromCharCode(...bytes.subarray(p, p + 4));
  p += 4;
  assert.equal(bytes[p++], 0x12, 'PackageOp');
  const start = p;
  const lead = bytes[p++]!;
  const follow = lead >> 6;
  let pkgLength = follow === 0 ? lead & 0x3f : lead & 0x0f;
  for (let i = 0; i < follow; i++) pkgLength |= bytes[p++]! << (4 + 8 * i);
  const end = start + pkgLength;
  const count = bytes[p++]!;
  const elements: number[] = [];
  while (p < end) {
    const op = bytes[p++]!;
    if (op === 0x00) elements.push(0);
    else if (op === 0x01) elements.push(1);
    else if (op === 0xff) elements.push(-1);
    else if (op === 0x0a) elements.push(bytes[p++]!);
    else if (op === 0x0b) { elements.push(bytes[p]! | (bytes[p + 1]! << 8)); p += 2; }
    else assert.fail(`unexpected AML opcode 0x${op.toString(16)}`);
  }
  assert.equal(p, end, 'package ends where PkgLength says');
  assert.equal(end, bytes.length, 'nothing after the package');
  assert.equal(elements.length, count);
  return { signature, revision: bytes[8]!, name, elements };
}

test('DSDT AML parses back to Name(_S5_, Package(){5, 5, 0, 0})', () => {
  const d = parseDsdt(table(built.tables.DSDT));
  assert.deepEqual(d, { signature: 'DSDT', revision: 2, name: '_S5_', elements: [5, 5, 0, 0] });
  assert.deepEqual([...table(built.tables.DSDT).subarray(36)], [0x08, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00]);
});

test('PkgLength encodings: 1 to 4 bytes, lengths counting themselves', () => {
  assert.deepEqual(encodePkgLength(7), [0x08]);
  assert.deepEqual(encodePkgLength(62), [0x3f]);
  assert.deepEqual(encodePkgLength(63), [0x41, 0x04]); // 65 = 0x041
  assert.deepEqual(encodePkgLength(0xffd), [0x4f, 0xff]); // 0xfff: the largest 2-byte length
  assert.deepEqual(encodePkgLength(0x1000), [0x83, 0x00, 0x01]); // 0x1003 needs 20 bits
  assert.deepEqual(encodePkgLength(0x100000), [0xc4, 0x00, 0x00, 0x01]); // 0x100004
});

test('iasl -d disassembles the tables without complaint (external oracle)', (t) => {
  if (spawnSync('iasl', ['-v']).error) {
    t.skip('iasl not installed (Debian package acpica-tools)');
    return;
  }
  const dir = tempDir(t);
  const outputs: Record<string, string> = {};
  for (const sig of ['DSDT', 'FACP', 'APIC', 'XSDT'] as const) {
    const file = join(dir, `${sig}.dat`);
    writeFileSync(file, table(built.tables[sig]));
    const log = execFileSync('iasl', ['-d', file], { cwd: dir, encoding: 'utf8' });
    assert.doesNotMatch(log, /warning|error/i, `${sig}: ${log}`);
    outputs[sig] = readFileSync(join(dir, `${sig}.dsl`), 'utf8');
  }
  assert.match(outputs.DSDT!, /Name \(_S5, Package \(0x04\)[^{]*\{\s*0x05,\s*0x05,\s*Zero,\s*Zero\s*\}\)/);
  assert.match(outputs.FACP!, /Reset Register Supported \(V2\) : 1/);
  assert.match(outputs.FACP!, /Value to cause reset : 06/);
  assert.match(outputs.FACP!, /SCI Interrupt : 0009/);
  assert.match(outputs.APIC!, /Subtable Type : 02 \[Interrupt Source Override\][\s\S]*?Interrupt : 00000002/);
  assert.doesNotMatch(Object.values(outputs).join('\n'), /Invalid|Incorrect checksum|should be/i);
});

test('tables must be placed 16-byte aligned', () => {
  assert.throws(() => buildAcpiTables(0xe0008, { cpus: 1, ioapicId: 1, pmBase: 0x600 }), RangeError);
});

function pmSetup() {
  const sleeps: number[] = [];
  const sci = new RecordingIrqLine();
  const clock = { t: 0 };
  const pm = new AcpiPm({ onSleep: (s) => sleeps.push(s), sci, now: () => clock.t });
  let resets = 0;
  const reset = new AcpiResetRegister({ onReset: () => resets++ });
  const bus = new PortBus();
  bus.register(0x600, 12, 'acpi-pm', pm);
  bus.register(0xcf9, 1, 'reset', reset);
  return { pm, bus, sleeps, sci, clock, resets: () => resets };
}

test('PM1_CNT: SCI_EN reads set; SLP_TYP 5 with SLP_EN calls onSleep(5) (what ACPICA does for S5)', () => {
  const s = pmSetup();
  assert.equal(s.bus.read(0x604, 2) & 1, 1);
  s.bus.write(0x600, 2, 0x8000); // clear WAK_STS
  s.bus.write(0x604, 2, (5 << 10) | 1); // SLP_TYP first
  assert.deepEqual(s.sleeps, []);
  s.bus.write(0x604, 2, (5 << 10) | 0x2000 | 1);
  assert.deepEqual(s.sleeps, [5]);
  assert.equal(s.bus.read(0x604, 2), (5 << 10) | 1); // SLP_EN reads 0
  s.bus.write(0x605, 1, 0x20 | (3 << 2)); // byte write of the high half: SLP_TYP 3 + SLP_EN
  assert.deepEqual(s.sleeps, [5, 3]);
});

test('PM1 status/enable: power button raises SCI while enabled; write 1 to clear', () => {
  const s = pmSetup();
  s.pm.pressPowerButton();
  assert.equal(s.sci.level, false);
  assert.equal(s.bus.read(0x600, 2), 0x0100);
  s.bus.write(0x602, 2, 0x0100);
  assert.equal(s.sci.level, true);
  assert.equal(s.bus.read(0x600, 4), 0x0100_0100);
  s.bus.write(0x600, 2, 0x0100);
  assert.equal(s.sci.level, false);
  assert.equal(s.bus.read(0x600, 2), 0);
});

test('PM timer: 24 bits at 3.579545 MHz', () => {
  const s = pmSetup();
  s.clock.t = 1e9;
  assert.equal(s.bus.read(0x608, 4), 3_579_545);
  s.clock.t = 5e9;
  assert.equal(s.bus.read(0x608, 4), (5 * 3_579_545) % 2 ** 24);
});

test('reset register: 0x06 resets; 0x02 then 0x06 resets once; 0x0E resets', () => {
  const s = pmSetup();
  s.bus.write(0xcf9, 1, 0x02);
  assert.equal(s.resets(), 0);
  assert.equal(s.bus.read(0xcf9, 1), 0x02);
  s.bus.write(0xcf9, 1, 0x06);
  assert.equal(s.resets(), 1);
  s.bus.write(0xcf9, 1, 0x06);
  assert.equal(s.resets(), 2);
  s.bus.write(0xcf9, 1, 0x0e);
  assert.equal(s.resets(), 3);
});

test('no virtio-mmio devices: the tables are byte for byte those built without the option', () => {
  const plain = buildAcpiTables(AT, { cpus: 2, ioapicId: 2, pmBase: 0x600 });
  const empty = buildAcpiTables(AT, { cpus: 2, ioapicId: 2, pmBase: 0x600, virtioMmio: [] });
  assert.deepEqual(empty.bytes, plain.bytes);
});

test('virtio-mmio devices in the DSDT: iasl shows Device (VRnn) with _HID LNRO0005, _UID, window and interrupt', (t) => {
  if (spawnSync('iasl', ['-v']).error) {
    t.skip('iasl not installed (Debian package acpica-tools)');
    return;
  }
  const withVirtio = buildAcpiTables(AT, {
    cpus: 1, ioapicId: 1, pmBase: 0x600,
    virtioMmio: [{ base: 0xd000_0000, size: 0x200, irq: 5 }, { base: 0xd000_0200, size: 0x200, irq: 6, trigger: 'edge' }],
  });
  const dsdtAt = withVirtio.tables.DSDT - AT;
  const dsdtLength = new DataView(withVirtio.bytes.buffer).getUint32(dsdtAt + 4, true);
  const dsdt = withVirtio.bytes.subarray(dsdtAt, dsdtAt + dsdtLength);
  assert.equal(acpiSum(dsdt), 0);
  const dir = tempDir(t);
  writeFileSync(join(dir, 'DSDT.dat'), dsdt);
  const log = execFileSync('iasl', ['-d', join(dir, 'DSDT.dat')], { cwd: dir, encoding: 'utf8' });
  assert.doesNotMatch(log, /warning|error/i, log);
  const dsl = readFileSync(join(dir, 'DSDT.dsl'), 'utf8');
  assert.match(dsl, /Name \(_S5, Package \(0x04\)/);
  const devices = [...dsl.matchAll(/Device \((VR0\d)\)\s*\{([\s\S]*?)\n {8}\}/g)].map((m) => ({ name: m[1]!, body: m[2]! }));
  assert.deepEqual(devices.map((d) => d.name), ['VR00', 'VR01']);
  const expect = [
    { uid: 'Zero', base: '0xD0000000', mode: 'Level', irq: '0x00000005' },
    { uid: 'One', base: '0xD0000200', mode: 'Edge', irq: '0x00000006' },
  ];
  devices.forEach((d, i) => {
    const e = expect[i]!;
    assert.match(d.body, /Name \(_HID, "LNRO0005"\)/);
    assert.match(d.body, new RegExp(`Name \\(_UID, ${e.uid}\\)`));
    assert.match(d.body, new RegExp(`Memory32Fixed \\(ReadWrite,\\s*${e.base},\\s*// Address Base\\s*0x00000200,`));
    assert.match(d.body, new RegExp(`Interrupt \\(ResourceConsumer, ${e.mode}, ActiveHigh, Exclusive, ,, \\)\\s*\\{\\s*${e.irq},`));
  });
  assert.match(dsl, /Scope \(\\_SB\)\s*\{\s*Device \(VR00\)/);
});
