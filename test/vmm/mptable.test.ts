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
