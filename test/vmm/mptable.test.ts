// The MP table's structure and checksums (MultiProcessor Specification 1.4), as Linux checks them,
// and where the board puts it: the floating pointer where guests search, the configuration table
// (20 bytes a processor) in an area that holds it for every vCPU count the board takes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TABLE_AREA } from '../../src/vmm/boot.js';
import { memoryMap } from '../../src/vmm/board.js';
import { MAX_CPUS } from '../../src/vmm/config.js';
import { E820_RESERVED } from '../../src/loader/boot-params.js';
import { buildMpTable } from '../../src/vmm/mptable.js';
import { buildAcpiTables } from '../../src/devices/acpi-tables.js';

const sum = (b: Uint8Array) => b.reduce((a, x) => (a + x) & 0xff, 0);

test('MP floating pointer and configuration table: signatures, lengths, checksums, entries', () => {
  const at = 0xf0000;
  const { pointer, table } = buildMpTable(at, 3);
  const pv = new DataView(pointer.buffer);
  assert.equal(pointer.length, 16);
  assert.equal(Buffer.from(pointer.subarray(0, 4)).toString(), '_MP_');
  assert.equal(sum(pointer), 0, 'floating pointer checksum');
  assert.equal(pv.getUint32(4, true), at, 'points at the table');
  const dv = new DataView(table.buffer);
  assert.equal(Buffer.from(table.subarray(0, 4)).toString(), 'PCMP');
  assert.equal(dv.getUint16(4, true), table.length);
  assert.equal(sum(table), 0, 'configuration table checksum');
  assert.equal(dv.getUint32(36, true), 0xfee00000, 'local APIC address');
  // Walk the entries: 3 processors (the first the BSP), one ISA bus, one I/O APIC, 16 ISA interrupts, 2 local.
  const count = dv.getUint16(34, true);
  const kinds: number[] = [];
  for (let off = 44, i = 0; i < count; i++) {
    kinds.push(table[off]!);
    if (table[off] === 0) assert.equal(table[off + 3]! & 3, table[off + 1] === 0 ? 3 : 1, `processor ${table[off + 1]} flags`);
    off += table[off] === 0 ? 20 : 8;
  }
  assert.deepEqual(kinds, [0, 0, 0, 1, 2, ...new Array(16).fill(3), 4, 4]);
});

test('the board\'s MP areas: the pointer in the EBDA\'s KiB, the table within a reserved range for 1 to MAX_CPUS vCPUs', () => {
  // The table used to follow the pointer in the EBDA's last KiB: past 40 vCPUs it ran over
  // 0xa0000, out of the area and of the reserved range the guest is told about.
  const reserved = memoryMap(256 << 20).filter((e) => e.type === E820_RESERVED);
  const inReserved = (gpa: number, length: number) => reserved.some((e) => gpa >= e.addr && gpa + length <= e.addr + e.size);
  assert.ok(TABLE_AREA.mpPointer.gpa >= 0x9fc00 && TABLE_AREA.mpPointer.gpa + 16 <= 0xa0000, 'the pointer is where the specification has guests search');
  assert.ok(inReserved(TABLE_AREA.mpPointer.gpa, TABLE_AREA.mpPointer.size));
  assert.ok(inReserved(TABLE_AREA.mpConfig.gpa, TABLE_AREA.mpConfig.size));
  for (let cpus = 1; cpus <= MAX_CPUS; cpus++) {
    const { pointer, table } = buildMpTable(TABLE_AREA.mpConfig.gpa, cpus);
    assert.ok(pointer.length <= TABLE_AREA.mpPointer.size);
    assert.ok(table.length <= TABLE_AREA.mpConfig.size, `${cpus} vCPUs: a table of ${table.length} bytes`);
  }
});

/** The I/O interrupt entries of an MP configuration table: [ISA IRQ, I/O APIC pin, MPS INTI flags]. */
function ioInterrupts(table: Uint8Array): [number, number, number][] {
  const dv = new DataView(table.buffer);
  const out: [number, number, number][] = [];
  for (let off = 44, i = 0; i < dv.getUint16(34, true); i++) {
    if (table[off] === 3) out.push([table[off + 5]!, table[off + 7]!, dv.getUint16(off + 2, true)]);
    off += table[off] === 0 ? 20 : 8;
  }
  return out;
}

test('the soft board\'s routing: ISA IRQ 0 on pin 2 and the SCI level-triggered, as its MADT overrides say', () => {
  const { table } = buildMpTable(0xf0000, 1, { irq0ToPin2: true, sciIrq: 9 });
  const entries = ioInterrupts(table);
  assert.deepEqual(entries.find(([irq]) => irq === 0), [0, 2, 0]);
  assert.equal(entries.find(([irq]) => irq === 2), undefined, 'pin 2 is IRQ 0\'s: no IRQ 2 entry');
  assert.deepEqual(entries.find(([irq]) => irq === 9), [9, 9, 0xd], 'active high (01), level (11)');
  for (const [irq, pin, flags] of entries) if (irq !== 0 && irq !== 9) assert.deepEqual([pin, flags], [irq, 0], `IRQ ${irq}`);
  // The MADT's interrupt source overrides (type 2: bus, source IRQ, GSI, flags) say the same.
  const at = 0xe0000;
  const acpi = buildAcpiTables(at, { cpus: 1, ioapicId: 1, pmBase: 0x600, sciIrq: 9, irq0ToGsi2: true });
  const madt = acpi.bytes.subarray(acpi.tables.APIC - at);
  const mv = new DataView(madt.buffer, madt.byteOffset);
  const overrides: [number, number, number][] = [];
  for (let off = 44; off < mv.getUint32(4, true); off += madt[off + 1]!) {
    if (madt[off] === 2) overrides.push([madt[off + 3]!, mv.getUint32(off + 4, true), mv.getUint16(off + 8, true)]);
  }
  for (const [irq, gsi, flags] of overrides) assert.deepEqual(entries.find(([i]) => i === irq), [irq, gsi, flags], `IRQ ${irq}: MP table and MADT agree`);
  assert.equal(overrides.length, 2);
  // Without the options (KVM's routing): IRQ n on pin n; the SCI flags follow sciIrq alone.
  assert.deepEqual(ioInterrupts(buildMpTable(0xf0000, 1).table).map(([irq, pin]) => [irq, pin]), Array.from({ length: 16 }, (_, i) => [i, i]));
});
