// What bootImage writes stays in the board's boot areas (src/vmm/layout.ts BOOT, BOOT_AREA_BYTES),
// and no image loads over them: command lines are limited by the boot protocol (Linux: the
// header's cmdline_size) and by the board's command line area; boot data larger than its area is
// refused; ELF segments, bzImage runtime areas and flat images that would cover the MP table,
// the ACPI tables, the page tables or the boot data are refused; the initrd stays under
// initrd_addr_max and the top of RAM.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TsvmmError } from '../../src/common/errors.js';
import { E820_RAM, E820_RESERVED, type E820Entry } from '../../src/loader/boot-params.js';
import { loadElf } from '../../src/loader/elf.js';
import { ArrayGuestMemory } from '../../src/loader/guest-memory.js';
import type { EntryMode } from '../../src/loader/load-result.js';
import { bootImage, type BootInput } from '../../src/vmm/boot.js';
import { BOOT } from '../../src/vmm/layout.js';
import { craftBzImage, craftElf64, craftMultiboot } from './crafted.js';

const MiB = 1 << 20;
const RAM = 32 * MiB;
const E820: E820Entry[] = [
  { addr: 0, size: 0x9fc00, type: E820_RAM },
  { addr: 0x9fc00, size: 0x400, type: E820_RESERVED },
  { addr: 0xe0000, size: 0x20000, type: E820_RESERVED },
  { addr: 0x100000, size: RAM - 0x100000, type: E820_RAM },
];
const MP_MARK = 0x5a;
const ACPI_MARK = 0xa5;

/** Guest RAM as the board leaves it before loading: the MP and ACPI tables written (here: marks). */
function boardRam(size = RAM): ArrayGuestMemory {
  const ram = new ArrayGuestMemory(size);
  ram.bytes.fill(MP_MARK, BOOT.MPTABLE, 0xa0000);
  ram.bytes.fill(ACPI_MARK, BOOT.ACPI, 0x100000);
  return ram;
}

function tablesIntact(ram: ArrayGuestMemory): void {
  assert.ok(ram.read(BOOT.MPTABLE, 0xa0000 - BOOT.MPTABLE).every((b) => b === MP_MARK), 'the MP table is intact');
  assert.ok(ram.read(BOOT.ACPI, 0x100000 - BOOT.ACPI).every((b) => b === ACPI_MARK), 'the ACPI tables are intact');
}

function boot(ram: ArrayGuestMemory, input: Partial<BootInput> & { kernel: Uint8Array }) {
  return bootImage(ram, { cmdline: '', e820: E820, lowRamTop: ram.size, ...input });
}

function rejects(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TsvmmError, `TsvmmError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

const pvhKernel = (): Uint8Array => craftElf64([{ paddr: 0x1000000, data: new Uint8Array(0x1000).fill(0x90) }], 0x1000000, 0x1000000);

test('multiboot: a command line beyond the board area is refused (600 KB reached the MP/ACPI tables, 1.1 MB the kernel)', () => {
  const kernel = craftMultiboot();
  for (const length of [600_000, 1_100_000]) {
    const ram = boardRam();
    rejects(() => boot(ram, { kernel, cmdline: 'x'.repeat(length) }), 'TSVMM_BAD_ARGUMENT', new RegExp(`command line is ${length} bytes, the limit is 4095`));
    tablesIntact(ram);
  }
  const ram = boardRam();
  boot(ram, { kernel, cmdline: 'y'.repeat(4095) });
  tablesIntact(ram);
  assert.deepEqual(ram.read(0x100000, kernel.length), kernel, 'the kernel is intact');
  rejects(() => boot(boardRam(), { kernel, cmdline: 'y'.repeat(4096) }), 'TSVMM_BAD_ARGUMENT', /4096 bytes, the limit is 4095/);
});

test("bzImage: the command line is limited by the header's cmdline_size and by the board's area", () => {
  // A header that claims a 1 MiB command line does not make room for one.
  const generous = craftBzImage({ cmdlineSize: 0x100000 });
  const ram = boardRam();
  rejects(() => boot(ram, { kernel: generous, cmdline: 'x'.repeat(600_000) }), 'TSVMM_BAD_ARGUMENT', /600000 bytes, the limit is 4095 \(the board's command line area\)/);
  tablesIntact(ram);
  boot(boardRam(), { kernel: generous, cmdline: 'x'.repeat(4095) });
  // A header with a small cmdline_size is obeyed.
  const strict = craftBzImage({ cmdlineSize: 255 });
  boot(boardRam(), { kernel: strict, cmdline: 'x'.repeat(255) });
  rejects(() => boot(boardRam(), { kernel: strict, cmdline: 'x'.repeat(256) }), 'TSVMM_BAD_ARGUMENT', /256 bytes, the limit is 255 \(cmdline_size\)/);
});

test("PVH: the command line is limited to Linux's COMMAND_LINE_SIZE and the board's area", () => {
  boot(boardRam(), { kernel: pvhKernel(), cmdline: 'x'.repeat(2047) });
  for (const length of [2048, 600_000, 1_100_000]) {
    const ram = boardRam();
    rejects(() => boot(ram, { kernel: pvhKernel(), cmdline: 'x'.repeat(length) }), 'TSVMM_BAD_ARGUMENT', new RegExp(`${length} bytes, the limit is 2047`));
    tablesIntact(ram);
  }
});

test('ELF segments over the MP table, the ACPI tables or the boot data are refused, naming the area', () => {
  const code = new Uint8Array(0x1000).fill(0x90);
  for (const [paddr, area] of [[0x9f000, /the MP table/], [0xf0000, /the ACPI tables/], [0x20800, /the command line/]] as const) {
    const kernel = craftElf64([{ paddr: 0x1000000, data: code }, { paddr, data: new Uint8Array(0x2000) }], 0x1000000, 0x1000000);
    const ram = boardRam();
    rejects(() => boot(ram, { kernel }), 'TSVMM_BAD_KERNEL', new RegExp(`segment .*0x${paddr.toString(16)}.* overlaps ${area.source}`));
    tablesIntact(ram);
  }
  // The loader itself checks the areas it is given, whatever its floor.
  const low = craftElf64([{ paddr: 0x9f800, data: new Uint8Array(0x1000) }], 0x9f800);
  const reserved = [{ gpa: BOOT.MPTABLE, size: 0x400, what: 'the MP table' }];
  rejects(() => loadElf(boardRam(), low, { minGpa: 0, reserved }), 'TSVMM_BAD_KERNEL', /overlaps the MP table/);
  // And a segment past the end of RAM.
  const high = craftElf64([{ paddr: RAM - 0x1000, data: new Uint8Array(0x2000) }], RAM - 0x1000, RAM - 0x1000);
  rejects(() => boot(boardRam(), { kernel: high }), 'TSVMM_LIMIT', /does not fit in guest RAM/);
});

test('a bzImage whose runtime area (pref_address + init_size) covers the boot areas is refused', () => {
  const ram = boardRam();
  rejects(() => boot(ram, { kernel: craftBzImage({ relocatable: false, prefAddress: 0x80000 }) }), 'TSVMM_BAD_KERNEL', /runtime area 0x80000\.\.0x480000 .*overlaps the MP table/);
  tablesIntact(ram);
  boot(boardRam(), { kernel: craftBzImage({ relocatable: false, prefAddress: 0x100000 }) });
});

test('flat images may not cover the tables the board writes for their entry mode', () => {
  const image = new Uint8Array(0x1000).fill(0xf4);
  const flat = (loadAddr: number, mode: EntryMode) => ({ loadAddr, mode });
  rejects(() => boot(boardRam(), { kernel: image, flat: flat(0x9f800, 'real16') }), 'TSVMM_BAD_ARGUMENT', /flat image .* overlaps the MP table/);
  rejects(() => boot(boardRam(), { kernel: image, flat: flat(0xef000, 'real16') }), 'TSVMM_BAD_ARGUMENT', /overlaps the ACPI tables/);
  rejects(() => boot(boardRam(), { kernel: image, flat: flat(0xa000, 'long64') }), 'TSVMM_BAD_ARGUMENT', /overlaps the page tables/);
  rejects(() => boot(boardRam(), { kernel: image, flat: flat(0x0, 'protected32') }), 'TSVMM_BAD_ARGUMENT', /overlaps the GDT/);
  // Real mode: the board writes no GDT, page tables or boot data; low memory is the image's.
  const ram = boardRam();
  boot(ram, { kernel: image, flat: flat(0x8000, 'real16') });
  assert.deepEqual(ram.read(0x8000, image.length), image);
  boot(boardRam(), { kernel: image, flat: flat(0x100000, 'long64') });
});

test('boot data larger than its area is refused (an e820 map too long for hvm_start_info or multiboot_info)', () => {
  const many = (n: number): E820Entry[] => Array.from({ length: n }, (_, i) => ({ addr: 0x2000000 + i * 0x2000, size: 0x1000, type: E820_RESERVED }));
  const ram = boardRam();
  rejects(() => boot(ram, { kernel: pvhKernel(), e820: [...E820, ...many(200)] }), 'TSVMM_LIMIT', /hvm_start_info of 4\d{3} bytes does not fit .*0x1000/);
  assert.ok(ram.read(BOOT.ZERO_PAGE, 0x1000).every((b) => b === 0), 'nothing spilled into the next area');
  rejects(() => boot(boardRam(), { kernel: craftMultiboot(), e820: [...E820, ...many(400)] }), 'TSVMM_LIMIT', /multiboot_info of \d+ bytes does not fit/);
});

test('the initrd stays below initrd_addr_max and the top of RAM, above the kernel', () => {
  const initrd = new Uint8Array(3 * MiB).fill(0x11);
  // bzImage: initrd_addr_max 28 MiB - 1, RAM 32 MiB: the initrd ends at or below 28 MiB.
  const ram = boardRam();
  const kernel = craftBzImage({ initrdAddrMax: 28 * MiB - 1 });
  boot(ram, { kernel, initrd });
  const dv = new DataView(ram.bytes.buffer, BOOT.ZERO_PAGE);
  const addr = dv.getUint32(0x218, true);
  assert.equal(dv.getUint32(0x21c, true), initrd.length);
  assert.ok(addr >= 0x1400000 && addr + initrd.length <= 28 * MiB, `initrd at 0x${addr.toString(16)}`);
  assert.deepEqual(ram.read(addr, initrd.length), initrd);
  // initrd_addr_max below the kernel's runtime end, or an initrd larger than RAM: refused.
  rejects(() => boot(boardRam(), { kernel: craftBzImage({ initrdAddrMax: 0x13fffff }), initrd }), 'TSVMM_LIMIT', /initrd of 3145728 bytes does not fit/);
  rejects(() => boot(boardRam(), { kernel, initrd: new Uint8Array(RAM) }), 'TSVMM_LIMIT', /initrd of 33554432 bytes does not fit/);
  rejects(() => boot(boardRam(), { kernel: pvhKernel(), initrd: new Uint8Array(RAM) }), 'TSVMM_LIMIT', /initrd/);
  rejects(() => boot(boardRam(), { kernel: craftMultiboot(), initrd: new Uint8Array(RAM) }), 'TSVMM_LIMIT', /multiboot module 0/);
});
