import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { TsvmmError } from '../../src/common/errors.js';
import { E820_RAM, E820_RESERVED } from '../../src/loader/boot-params.js';
import { elfNotes, loadElf, parseElf } from '../../src/loader/elf.js';
import { findGuestKernel, FETCH_GUEST_KERNEL_SCRIPT } from '../../src/loader/guest-kernels.js';
import { ArrayGuestMemory } from '../../src/loader/guest-memory.js';
import { buildHvmStartInfo, findPvhEntry, pvhEntryPoint } from '../../src/loader/pvh.js';
import { loadVmlinux } from '../../src/loader/vmlinux.js';
import { hasTool, run } from '../helpers/tools.js';
import { craftElf64 } from './crafted.js';

interface SynthSegment {
  paddr: number;
  vaddr?: bigint;
  data: Uint8Array;
  memsz?: number;
}

/**
 * An ELF64 x86-64 executable: header, program headers (the PT_LOADs, then a PT_NOTE holding a Xen
 * PHYS32_ENTRY note with an 8-byte value when `pvh` is given), then the segment data.
 */
function synthElf64(segments: SynthSegment[], entry: bigint, pvh?: number): Uint8Array {
  const phnum = segments.length + (pvh !== undefined ? 1 : 0);
  const note = new Uint8Array(12 + 4 + 8);
  if (pvh !== undefined) {
    const n = new DataView(note.buffer);
    n.setUint32(0, 4, true); // namesz "Xen\0"
    n.setUint32(4, 8, true); // descsz
    n.setUint32(8, 18, true); // XEN_ELFNOTE_PHYS32_ENTRY
    note.set([0x58, 0x65, 0x6e, 0], 12);
    n.setBigUint64(16, BigInt(pvh), true);
  }
  let off = 64 + 56 * phnum;
  const noteOff = off;
  if (pvh !== undefined) off += note.length;
  const offsets = segments.map((s) => {
    const o = off;
    off += s.data.length;
    return o;
  });
  const img = new Uint8Array(off);
  const dv = new DataView(img.buffer);
  img.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, 62, true); // EM_X86_64
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, entry, true);
  dv.setBigUint64(32, 64n, true); // e_phoff
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, phnum, true);
  segments.forEach((s, i) => {
    const p = 64 + 56 * i;
    dv.setUint32(p, 1, true); // PT_LOAD
    dv.setUint32(p + 4, 5, true);
    dv.setBigUint64(p + 8, BigInt(offsets[i]!), true);
    dv.setBigUint64(p + 16, s.vaddr ?? BigInt(s.paddr), true);
    dv.setBigUint64(p + 24, BigInt(s.paddr), true);
    dv.setBigUint64(p + 32, BigInt(s.data.length), true);
    dv.setBigUint64(p + 40, BigInt(s.memsz ?? s.data.length), true);
    dv.setBigUint64(p + 48, 0x1000n, true);
    img.set(s.data, offsets[i]!);
  });
  if (pvh !== undefined) {
    const p = 64 + 56 * segments.length;
    dv.setUint32(p, 4, true); // PT_NOTE
    dv.setBigUint64(p + 8, BigInt(noteOff), true);
    dv.setBigUint64(p + 32, BigInt(note.length), true);
    dv.setBigUint64(p + 40, BigInt(note.length), true);
    dv.setBigUint64(p + 48, 4n, true);
    img.set(note, noteOff);
  }
  return img;
}

const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);

function rejects(fn: () => unknown, pattern: RegExp, code = 'TSVMM_BAD_KERNEL'): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TsvmmError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

test('ELF64: PT_LOADs land at p_paddr, bss zeroed, high-half entry translated, PVH note found', () => {
  const img = synthElf64(
    [
      { paddr: 0x1000000, vaddr: 0xffffffff81000000n, data: bytes(0x3000, 1) },
      { paddr: 0x1400000, vaddr: 0xffffffff81400000n, data: bytes(0x100, 2), memsz: 0x2000 },
    ],
    0xffffffff81000040n,
    0x1000800,
  );
  const mem = new ArrayGuestMemory(32 << 20);
  mem.bytes.fill(0xaa);
  const k = loadVmlinux(mem, img);
  assert.deepEqual(k.segments, [
    { gpa: 0x1000000, fileSize: 0x3000, memSize: 0x3000 },
    { gpa: 0x1400000, fileSize: 0x100, memSize: 0x2000 },
  ]);
  assert.deepEqual(mem.read(0x1000000, 0x3000), bytes(0x3000, 1));
  assert.deepEqual(mem.read(0x1400000, 0x100), bytes(0x100, 2));
  assert.ok(mem.read(0x1400100, 0x1f00).every((b) => b === 0), 'bss zeroed');
  assert.equal(mem.bytes[0x1402000], 0xaa, 'nothing written past p_memsz');
  assert.equal(k.entry, 0x1000040);
  assert.deepEqual(k.entry64, { mode: 'long64', ip: 0x1000040, regs: {} });
  assert.equal(k.pvhEntry, 0x1000800);
  assert.equal(k.end, 0x1402000);
  assert.equal(findPvhEntry(img), 0x1000800);
  assert.deepEqual(pvhEntryPoint(0x1000800, 0x6000), { mode: 'protected32', ip: 0x1000800, regs: { rbx: 0x6000 } });
  // No note: no PVH entry.
  assert.equal(findPvhEntry(synthElf64([{ paddr: 0x100000, data: bytes(16, 0) }], 0x100000n)), undefined);
});

test('malformed ELF images are rejected naming the value', () => {
  const good = synthElf64([{ paddr: 0x200000, data: bytes(0x1000, 3) }], 0x200000n, 0x200010);
  const mem = new ArrayGuestMemory(8 << 20);
  const patched = (off: number, put: (dv: DataView) => void): Uint8Array => {
    const c = good.slice();
    put(new DataView(c.buffer, off));
    return c;
  };
  rejects(() => parseElf(good.subarray(0, 10)), /truncated: 10 bytes/);
  rejects(() => parseElf(good.subarray(0, 40)), /truncated: 40 bytes.*ELF64 header needs 64/);
  rejects(() => parseElf(patched(0, (d) => d.setUint8(0, 0x7e))), /magic is 0x7e454c46/);
  rejects(() => parseElf(patched(4, (d) => d.setUint8(0, 3))), /class 3/);
  rejects(() => parseElf(patched(5, (d) => d.setUint8(0, 2))), /data encoding 2/);
  rejects(() => parseElf(patched(18, (d) => d.setUint16(0, 40, true))), /machine 40/);
  rejects(() => parseElf(patched(16, (d) => d.setUint16(0, 3, true))), /ELF type 3 is not ET_EXEC/);
  rejects(() => parseElf(patched(56, (d) => d.setUint16(0, 0, true))), /no program headers/);
  rejects(() => parseElf(patched(54, (d) => d.setUint16(0, 32, true))), /e_phentsize 32/);
  rejects(() => parseElf(good.subarray(0, 100)), /program headers at 0x40 \(2 x 56\)/);
  rejects(() => parseElf(good.subarray(0, good.length - 1)), /program header 0 \(type 1\) needs file bytes/);
  rejects(() => parseElf(patched(64 + 40, (d) => d.setBigUint64(0, 0x10n, true))), /p_filesz 0x1000 exceeds p_memsz 0x10/);
  rejects(() => parseElf(patched(64 + 24, (d) => d.setBigUint64(0, 1n << 60n, true))), /p_paddr 0x1000000000000000 is beyond 2\^53/);
  rejects(() => loadElf(mem, patched(24, (d) => d.setBigUint64(0, 0x900000n, true))), /entry 0x900000 lies in no PT_LOAD/);
  rejects(() => loadElf(mem, synthElf64([{ paddr: 0x80000, data: bytes(16, 0) }], 0x80000n)), /p_paddr 0x80000 is below 0x100000/);
  rejects(() => loadElf(mem, synthElf64([{ paddr: 0x7ff000, data: bytes(0x2000, 0) }], 0x7ff000n)), /does not fit in guest RAM of 0x800000/, 'TSVMM_LIMIT');
  rejects(
    () => loadElf(mem, synthElf64([{ paddr: 0x200000, data: bytes(0x2000, 0) }, { paddr: 0x201000, data: bytes(16, 0) }], 0x200000n)),
    /0x200000\+0x2000 and 0x201000\+0x10 overlap/,
  );
  // A note whose descsz runs past its segment.
  const noteOff = Number(new DataView(good.buffer).getBigUint64(64 + 56 + 8, true));
  const badNote = patched(noteOff + 4, (d) => d.setUint32(0, 64, true));
  rejects(() => elfNotes(badNote, parseElf(badNote)), /descsz 64\) overruns/);
  // vmlinux must be ELF64 x86-64.
  rejects(() => loadVmlinux(mem, patched(18, (d) => d.setUint16(0, 3, true))), /machine 3, expected ELF64 x86-64/);
});

test('counts in an ELF file bound the work: at most 256 PT_LOADs and 1024 notes, notes not copied', () => {
  const mem = new ArrayGuestMemory(8 << 20);
  // 300 one-page segments: e_phnum may say 65534, the overlap check must not take n^2 steps.
  const many = Array.from({ length: 300 }, (_, i) => ({ paddr: 0x100000 + i * 0x1000, data: bytes(16, i) }));
  rejects(() => loadElf(mem, craftElf64(many, 0x100000)), /300 PT_LOAD segments, at most 256/);
  assert.equal(loadElf(mem, craftElf64(many.slice(0, 256), 0x100000)).segments.length, 256);
  // `count` PT_NOTE headers that all cover the same notes, placed after the code.
  const code = { paddr: 0x100000, data: bytes(16, 1) };
  const withNotes = (count: number, notes: Uint8Array): Uint8Array => {
    const at = 64 + 56 * (1 + count) + code.data.length;
    const segment = { type: 4, paddr: 0, data: notes, offset: at, align: 4 }; // data only gives p_filesz
    const head = craftElf64([code, ...Array.from({ length: count }, () => segment)], 0x100000);
    const image = new Uint8Array(at + notes.length);
    image.set(head);
    image.set(notes, at);
    return image;
  };
  // 10 headers over 341 empty notes: 3410 notes.
  const spam = withNotes(10, new Uint8Array(341 * 12));
  rejects(() => elfNotes(spam, parseElf(spam)), /more than 1024 notes/);
  // 500 headers over one note with a 1 MiB value: the notes share the file's bytes.
  const big = new Uint8Array(12 + 4 + (1 << 20));
  const n = new DataView(big.buffer);
  n.setUint32(0, 4, true);
  n.setUint32(4, 1 << 20, true);
  big.set([0x42, 0x69, 0x67, 0], 12);
  const image = withNotes(500, big);
  const before = process.memoryUsage().arrayBuffers;
  const notes = elfNotes(image, parseElf(image));
  const grown = process.memoryUsage().arrayBuffers - before;
  assert.equal(notes.length, 500);
  assert.ok(notes.every((note) => note.name === 'Big' && note.desc.length === 1 << 20));
  assert.ok(grown < 64 << 20, `notes took ${grown} bytes`);
});

test('hvm_start_info: magic, version 1, modules and memory map laid out after it', () => {
  const memmap = [
    { addr: 0x100000, size: 0x7f00000, type: E820_RAM },
    { addr: 0, size: 0x9fc00, type: E820_RAM },
    { addr: 0x9fc00, size: 0x60400, type: E820_RESERVED },
  ];
  const si = buildHvmStartInfo(0x6000, { cmdlineAddr: 0x20000, rsdpAddr: 0xe0000, modules: [{ addr: 0x7000000, size: 0x12345 }], memmap });
  const dv = new DataView(si.buffer);
  assert.equal(dv.getUint32(0, true), 0x336ec578);
  assert.equal(dv.getUint32(4, true), 1);
  assert.equal(dv.getUint32(8, true), 0);
  assert.equal(dv.getUint32(12, true), 1);
  assert.equal(dv.getBigUint64(16, true), 0x6000n + 56n); // modlist right after the 56-byte struct
  assert.equal(dv.getBigUint64(24, true), 0x20000n);
  assert.equal(dv.getBigUint64(32, true), 0xe0000n);
  assert.equal(dv.getBigUint64(40, true), 0x6000n + 56n + 32n); // memmap after one 32-byte module entry
  assert.equal(dv.getUint32(48, true), 3);
  assert.equal(dv.getBigUint64(56, true), 0x7000000n);
  assert.equal(dv.getBigUint64(64, true), 0x12345n);
  assert.equal(dv.getBigUint64(72, true), 0n);
  const mm = (i: number) => [dv.getBigUint64(88 + 24 * i, true), dv.getBigUint64(96 + 24 * i, true), dv.getUint32(104 + 24 * i, true), dv.getUint32(108 + 24 * i, true)];
  assert.deepEqual(mm(0), [0n, 0x9fc00n, 1, 0]);
  assert.deepEqual(mm(1), [0x9fc00n, 0x60400n, 2, 0]);
  assert.deepEqual(mm(2), [0x100000n, 0x7f00000n, 1, 0]);
  assert.equal(si.length, 56 + 32 + 3 * 24);
  // No modules: modlist_paddr is 0 (absent).
  const bare = new DataView(buildHvmStartInfo(0x6000, { cmdlineAddr: 0, memmap }).buffer);
  assert.equal(bare.getBigUint64(16, true), 0n);
  assert.equal(bare.getBigUint64(40, true), 0x6000n + 56n);
  assert.throws(() => buildHvmStartInfo(0x6004, { cmdlineAddr: 0, memmap }), /not 8-byte aligned/);
});

test('the real Debian vmlinux: segments and PVH entry agree with readelf', (t) => {
  const kernel = findGuestKernel();
  if (!kernel?.vmlinux) {
    t.skip(`no cached vmlinux: run ${FETCH_GUEST_KERNEL_SCRIPT} (needs xz)`);
    return;
  }
  const img = new Uint8Array(readFileSync(kernel.vmlinux));
  const mem = new ArrayGuestMemory(128 << 20);
  const k = loadVmlinux(mem, img);
  assert.equal(k.entry64.ip, 0x1000000);
  assert.ok(k.pvhEntry !== undefined, 'CONFIG_PVH=y: the PHYS32_ENTRY note is there');
  assert.ok(k.segments.some((s) => k.pvhEntry! >= s.gpa && k.pvhEntry! < s.gpa + s.memSize), 'PVH entry inside a loaded segment');
  assert.ok(k.notes.some((n) => n.name === 'Linux'), 'Linux notes are read too');
  if (!hasTool('readelf')) {
    t.diagnostic('readelf absent: not cross-checked');
    return;
  }
  const phdrs = run('readelf', ['-lW', kernel.vmlinux]);
  const loads = [...phdrs.matchAll(/^\s*LOAD\s+\S+\s+\S+\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)/gm)].map((m) => ({
    gpa: Number(m[1]),
    fileSize: Number(m[2]),
    memSize: Number(m[3]),
  }));
  assert.deepEqual(k.segments, loads);
  const notes = run('readelf', ['-nW', kernel.vmlinux]);
  const pvh = /Xen\s+0x00000008\s+.*\(0x00000012\)\s+description data: ((?:[0-9a-f]{2} ?){8})/.exec(notes);
  assert.ok(pvh, 'readelf shows the Xen note type 0x12');
  const value = pvh[1]!.trim().split(' ').reverse().join('');
  assert.equal(k.pvhEntry, Number.parseInt(value, 16));
});
