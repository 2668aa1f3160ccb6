import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TsvmmError } from '../../src/common/errors.js';
import { buildBootParams, E820_RAM, E820_RESERVED, encodeCmdline, placeInitrd, validateE820 } from '../../src/loader/boot-params.js';

function rejects(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof TsvmmError && e.code === code && pattern.test(e.message));
}

test('initrd placement: highest page-aligned address below min(initrd_addr_max + 1, RAM top)', () => {
  // RAM is the limit.
  assert.equal(placeInitrd({ size: 0x1800, initrdAddrMax: 0x7fffffff, ramTop: 0x8000000 }), 0x8000000 - 0x2000);
  assert.equal(placeInitrd({ size: 0x1000, initrdAddrMax: 0x7fffffff, ramTop: 0x8000000 }), 0x7fff000);
  // initrd_addr_max is the limit (the address of the highest byte the initrd may occupy).
  assert.equal(placeInitrd({ size: 0x20000, initrdAddrMax: 0x37ffffff, ramTop: 0x80000000 }), 0x37fe0000);
  assert.equal(placeInitrd({ size: 0x20001, initrdAddrMax: 0x37ffffff, ramTop: 0x80000000 }), 0x37fdf000);
  // Exactly filling the space above `lowest` is fine, one more byte is not.
  assert.equal(placeInitrd({ size: 0x100000, initrdAddrMax: 0x7fffffff, ramTop: 0x600000, lowest: 0x500000 }), 0x500000);
  rejects(() => placeInitrd({ size: 0x100001, initrdAddrMax: 0x7fffffff, ramTop: 0x600000, lowest: 0x500000 }), 'TSVMM_LIMIT', /1048577 bytes.*0x500000.*0x600000/);
  rejects(() => placeInitrd({ size: 0x10000000, initrdAddrMax: 0x7fffffff, ramTop: 0x8000000 }), 'TSVMM_LIMIT', /268435456 bytes/);
  assert.equal(placeInitrd({ size: 0, initrdAddrMax: 0x7fffffff, ramTop: 0x8000000 }), 0x8000000);
});

test('e820: at most 128 entries, no overlaps, no empty entries, written sorted', () => {
  const many = Array.from({ length: 129 }, (_, i) => ({ addr: i * 0x1000, size: 0x1000, type: E820_RAM }));
  rejects(() => buildBootParams({ cmdlineAddr: 0, e820: many }), 'TSVMM_BAD_ARGUMENT', /129 entries, at most 128/);
  const bp = buildBootParams({ cmdlineAddr: 0, e820: many.slice(0, 128) });
  assert.equal(bp[0x1e8], 128);
  const dv = new DataView(bp.buffer);
  assert.equal(dv.getBigUint64(0x2d0 + 127 * 20, true), 127n * 0x1000n);
  rejects(
    () => validateE820([{ addr: 0, size: 0x2000, type: E820_RAM }, { addr: 0x1000, size: 0x1000, type: E820_RESERVED }]),
    'TSVMM_BAD_ARGUMENT',
    /0x0\+0x2000 and 0x1000\+0x1000 overlap/,
  );
  rejects(() => validateE820([{ addr: 0x1000, size: 0, type: E820_RAM }]), 'TSVMM_BAD_ARGUMENT', /0x1000\+0x0 is empty/);
  // Entries above 4 GiB keep their high bits.
  const high = buildBootParams({ cmdlineAddr: 0, e820: [{ addr: 0x100000000, size: 0x40000000, type: E820_RAM }] });
  assert.equal(new DataView(high.buffer).getBigUint64(0x2d0, true), 0x100000000n);
});

test('ELF boot (no setup header): boot_flag, HdrS, kernel_alignment synthesized; 64-bit pointers split into ext_ fields', () => {
  const bp = buildBootParams({ cmdlineAddr: 0x1_2000_0000, ramdisk: { addr: 0x2_0000_0000, size: 0x1000 }, e820: [] });
  const dv = new DataView(bp.buffer);
  assert.equal(dv.getUint16(0x1fe, true), 0xaa55);
  assert.equal(dv.getUint32(0x202, true), 0x53726448);
  assert.equal(dv.getUint32(0x230, true), 0x1000000);
  assert.equal(bp[0x210], 0xff);
  assert.equal(dv.getUint32(0x228, true), 0x2000_0000);
  assert.equal(dv.getUint32(0x0c8, true), 1);
  assert.equal(dv.getUint32(0x218, true), 0);
  assert.equal(dv.getUint32(0x0c0, true), 2);
  assert.equal(dv.getBigUint64(0x070, true), 0n, 'no RSDP unless given');
  // heap_end_ptr is only written for real-mode entry, with CAN_USE_HEAP.
  const rm = buildBootParams({ cmdlineAddr: 0x20000, e820: [], heapEndPtr: 0xfe00 });
  assert.equal(new DataView(rm.buffer).getUint16(0x224, true), 0xfe00);
  assert.equal(rm[0x211]! & 0x80, 0x80);
  assert.equal(bp[0x211]! & 0x80, 0);
});

test('command line: NUL-terminated, limited by cmdline_size, no embedded NUL', () => {
  assert.deepEqual([...encodeCmdline('ab', 2)], [0x61, 0x62, 0]);
  rejects(() => encodeCmdline('abc', 2), 'TSVMM_BAD_ARGUMENT', /3 bytes, the limit is 2 \(cmdline_size\)/);
  rejects(() => encodeCmdline('a\0b'), 'TSVMM_BAD_ARGUMENT', /NUL byte at offset 1 \(length 3\)/);
  // UTF-8 length counts, not characters.
  rejects(() => encodeCmdline('é'.repeat(2), 3), 'TSVMM_BAD_ARGUMENT', /4 bytes/);
});
