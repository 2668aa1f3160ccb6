import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TsvmmError } from '../../src/common/errors.js';
import { E820_RAM, E820_RESERVED } from '../../src/loader/boot-params.js';
import { loadFlat } from '../../src/loader/flat.js';
import { ArrayGuestMemory } from '../../src/loader/guest-memory.js';
import {
  buildMultibootInfo,
  findMultibootHeader,
  loadMultiboot,
  loadMultibootModules,
  multibootEntryPoint,
} from '../../src/loader/multiboot.js';
import { guestImage, needsNasm } from '../helpers/nasm.js';

const MEMMAP = [
  { addr: 0, size: 0x9fc00, type: E820_RAM },
  { addr: 0x9fc00, size: 0x60400, type: E820_RESERVED },
  { addr: 0x100000, size: 0x3f00000, type: E820_RAM },
];

function rejects(fn: () => unknown, pattern: RegExp, code = 'TSVMM_BAD_KERNEL'): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TsvmmError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

/** A header-only multiboot image: `flags`, a checksum (correct unless told), and a.out fields. */
function headerImage(flags: number, fields: number[] = [], at = 0, badChecksum = false): Uint8Array {
  const img = new Uint8Array(Math.max(at + 12 + 4 * fields.length, 64));
  const dv = new DataView(img.buffer);
  dv.setUint32(at, 0x1badb002, true);
  dv.setUint32(at + 4, flags, true);
  dv.setUint32(at + 8, (-(0x1badb002 + flags) + (badChecksum ? 1 : 0)) >>> 0, true);
  fields.forEach((f, i) => dv.setUint32(at + 12 + 4 * i, f, true));
  return img;
}

test('multiboot a.out kludge kernel (guests/loader/multiboot-aout.asm): header searched, loaded, bss zeroed', needsNasm, () => {
  const img = guestImage('loader/multiboot-aout.asm');
  const h = findMultibootHeader(img);
  assert.equal(h.offset, 64);
  assert.equal(h.flags, 0x10003);
  assert.equal(h.aout?.loadAddr, 0x100000);
  assert.equal(h.aout?.headerAddr, 0x100040);
  const mem = new ArrayGuestMemory(64 << 20);
  mem.bytes.fill(0xaa);
  const k = loadMultiboot(mem, img);
  assert.equal(k.entryAddr, 0x100060);
  assert.equal(k.end, 0x100000 + img.length + 4096);
  assert.deepEqual(mem.read(0x100000, img.length), img);
  assert.ok(mem.read(0x100000 + img.length, 4096).every((b) => b === 0), 'bss zeroed');
  assert.equal(mem.bytes[k.end], 0xaa);
  assert.equal(k.videoRequested, false);

  // Modules above the kernel, page-aligned, then the info structure.
  const mods = loadMultibootModules(mem, k.end, [
    { data: new Uint8Array(100).fill(1), string: 'initrd.img root=/dev/ram0' },
    { data: new Uint8Array(5000).fill(2), string: 'second' },
  ]);
  assert.deepEqual(
    mods.map((m) => [m.addr, m.size]),
    [
      [0x102000, 100],
      [0x103000, 5000],
    ],
  );
  assert.deepEqual(mem.read(0x103000, 5000), new Uint8Array(5000).fill(2));
  const infoAddr = 0x9000;
  const info = buildMultibootInfo(infoAddr, { cmdline: 'console=ttyS0', modules: mods, memoryMap: MEMMAP, bootLoaderName: 'tsvmm' });
  mem.write(infoAddr, info);
  const dv = new DataView(mem.bytes.buffer);
  const u32 = (a: number) => dv.getUint32(a, true);
  const cstr = (a: number) => new TextDecoder().decode(mem.bytes.subarray(a, mem.bytes.indexOf(0, a)));
  // flags: mem (0), cmdline (2), mods (3), mmap (6), boot_loader_name (9).
  assert.equal(u32(infoAddr), 0x1 | 0x4 | 0x8 | 0x40 | 0x200);
  assert.equal(u32(infoAddr + 4), 639); // mem_lower: 0x9fc00 bytes = 639 KiB
  assert.equal(u32(infoAddr + 8), 0x3f00000 / 1024); // mem_upper: KiB from 1 MiB
  assert.equal(cstr(u32(infoAddr + 16)), 'console=ttyS0');
  assert.equal(u32(infoAddr + 20), 2);
  const modsAddr = u32(infoAddr + 24);
  assert.deepEqual([u32(modsAddr), u32(modsAddr + 4)], [0x102000, 0x102000 + 100]);
  assert.equal(cstr(u32(modsAddr + 8)), 'initrd.img root=/dev/ram0');
  assert.deepEqual([u32(modsAddr + 16), u32(modsAddr + 20)], [0x103000, 0x103000 + 5000]);
  assert.equal(cstr(u32(modsAddr + 24)), 'second');
  // mmap: entries of size 20 (+ the size field), walked as the spec describes.
  const mmapLength = u32(infoAddr + 44);
  const mmapAddr = u32(infoAddr + 48);
  const walked: { addr: number; size: number; type: number }[] = [];
  for (let p = mmapAddr; p < mmapAddr + mmapLength; p += u32(p) + 4) {
    walked.push({ addr: Number(dv.getBigUint64(p + 4, true)), size: Number(dv.getBigUint64(p + 12, true)), type: u32(p + 20) });
  }
  assert.deepEqual(walked, MEMMAP);
  assert.equal(cstr(u32(infoAddr + 64)), 'tsvmm');
  assert.deepEqual(multibootEntryPoint(k, infoAddr), { mode: 'protected32', ip: 0x100060, regs: { rax: 0x2badb002, rbx: infoAddr } });
});

test('multiboot ELF kernel (guests/loader/multiboot-elf.asm): loaded through its program header', needsNasm, () => {
  const img = guestImage('loader/multiboot-elf.asm');
  const h = findMultibootHeader(img);
  assert.equal(h.aout, undefined);
  const mem = new ArrayGuestMemory(8 << 20);
  mem.bytes.fill(0xaa);
  const k = loadMultiboot(mem, img);
  assert.equal(k.entryAddr, 0x200000 + 0x60);
  assert.deepEqual(k.segments, [{ gpa: 0x200000, fileSize: img.length, memSize: img.length + 4096 }]);
  assert.deepEqual(mem.read(0x200000, img.length), img);
  assert.ok(mem.read(0x200000 + img.length, 4096).every((b) => b === 0));
});

test('multiboot header validation', () => {
  const mem = new ArrayGuestMemory(8 << 20);
  rejects(() => findMultibootHeader(new Uint8Array(9000)), /no multiboot header \(magic 0x1badb002\) in the first 8192 bytes/);
  rejects(() => findMultibootHeader(headerImage(0x3, [], 0, true)), /magic at 0x0 has a bad checksum/);
  rejects(() => findMultibootHeader(headerImage(0x8)), /requires unsupported features: flags 0x8 \(bits 0x8\)/);
  // Beyond 8192 bytes it is not searched.
  const far = new Uint8Array(8300);
  far.set(headerImage(0x3), 8192);
  rejects(() => findMultibootHeader(far), /no multiboot header/);
  // At 8176 it still is.
  const near = new Uint8Array(8300);
  near.set(headerImage(0x3).subarray(0, 12), 8176);
  assert.equal(findMultibootHeader(near).offset, 8176);
  // a.out fields: entry outside the image, load_addr above header_addr, a truncated image.
  const A = 0x100000;
  rejects(() => loadMultiboot(mem, headerImage(0x10000, [A, A, A + 64, 0, A + 0x1000])), /entry_addr 0x101000 is outside/);
  rejects(() => loadMultiboot(mem, headerImage(0x10000, [A, A + 4, 0, 0, A])), /load_addr 0x100004 is above header_addr 0x100000/);
  rejects(() => loadMultiboot(mem, headerImage(0x10000, [A, A, A + 0x1000, 0, A])), /truncated: load_end_addr 0x101000/);
  rejects(() => loadMultiboot(mem, headerImage(0x10000, [A, A, A + 64, A + 32, A])), /bss_end_addr 0x100020 is below/);
  rejects(() => loadMultiboot(mem, headerImage(0x10000, [0x1000, 0x1000, 0, 0, 0x1000])), /load_addr 0x1000 is below 0x100000/);
  rejects(() => loadMultiboot(mem, headerImage(0x3)), /flag bit 16 clear\) and the image is not ELF/);
  // load_end_addr 0: the rest of the file; bss_end_addr 0: no bss.
  const k = loadMultiboot(mem, headerImage(0x10004, [A, A, 0, 0, A + 8]));
  assert.deepEqual(k.segments, [{ gpa: A, fileSize: 64, memSize: 64 }]);
  assert.equal(k.videoRequested, true);
});

test('flat binaries', () => {
  const mem = new ArrayGuestMemory(2 << 20);
  const img = Uint8Array.of(0xf4, 0xeb, 0xfd);
  const f = loadFlat(mem, img, { loadAddr: 0x7c00, mode: 'real16' });
  assert.deepEqual(f.entry, { mode: 'real16', ip: 0x7c00, regs: {} });
  assert.deepEqual(mem.read(0x7c00, 3), img);
  assert.equal(loadFlat(mem, img, { loadAddr: 0x100000, entry: 0x100001, mode: 'long64' }).entry.ip, 0x100001);
  rejects(() => loadFlat(mem, img, { loadAddr: 0x1000, entry: 0x1003, mode: 'protected32' }), /entry 0x1003 is outside/, 'TSVMM_BAD_ARGUMENT');
  rejects(() => loadFlat(mem, img, { loadAddr: 0xffffe, mode: 'real16' }), /extends past 1 MiB/, 'TSVMM_BAD_ARGUMENT');
  rejects(() => loadFlat(mem, img, { loadAddr: 0x1ffffe, mode: 'long64' }), /does not fit in guest RAM/, 'TSVMM_LIMIT');
  rejects(() => loadFlat(mem, new Uint8Array(0), { loadAddr: 0x1000, mode: 'long64' }), /empty/);
});
