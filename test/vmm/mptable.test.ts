// The MP table's structure and checksums (MultiProcessor Specification 1.4), as Linux checks them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildMpTable } from '../../src/vmm/mptable.js';

const sum = (b: Uint8Array) => b.reduce((a, x) => (a + x) & 0xff, 0);

test('MP floating pointer and configuration table: signatures, lengths, checksums, entries', () => {
  const at = 0x9fc00;
  const t = buildMpTable(at, 3);
  const dv = new DataView(t.buffer);
  assert.equal(Buffer.from(t.subarray(0, 4)).toString(), '_MP_');
  assert.equal(sum(t.subarray(0, 16)), 0, 'floating pointer checksum');
  assert.equal(dv.getUint32(4, true), at + 16, 'points at the table');
  assert.equal(Buffer.from(t.subarray(16, 20)).toString(), 'PCMP');
  const length = dv.getUint16(16 + 4, true);
  assert.equal(16 + length, t.length);
  assert.equal(sum(t.subarray(16)), 0, 'configuration table checksum');
  assert.equal(dv.getUint32(16 + 36, true), 0xfee00000, 'local APIC address');
  // Walk the entries: 3 processors (the first the BSP), one ISA bus, one I/O APIC, 16 ISA interrupts, 2 local.
  const count = dv.getUint16(16 + 34, true);
  const kinds: number[] = [];
  for (let off = 16 + 44, i = 0; i < count; i++) {
    kinds.push(t[off]!);
    if (t[off] === 0) assert.equal(t[off + 3]! & 3, t[off + 1] === 0 ? 3 : 1, `processor ${t[off + 1]} flags`);
    off += t[off] === 0 ? 20 : 8;
  }
  assert.deepEqual(kinds, [0, 0, 0, 1, 2, ...new Array(16).fill(3), 4, 4]);
});
