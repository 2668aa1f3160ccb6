import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { TsvmmError } from '../../src/common/errors.js';
import { buildBootParams, E820_RAM, E820_RESERVED, encodeCmdline, placeInitrd } from '../../src/loader/boot-params.js';
import { loadBzImage, parseBzImage, XLF_KERNEL_64 } from '../../src/loader/bzimage.js';
import { findGuestKernel, FETCH_GUEST_KERNEL_SCRIPT } from '../../src/loader/guest-kernels.js';
import { ArrayGuestMemory } from '../../src/loader/guest-memory.js';

// Setup header offsets as boot.rst lists them, spelled out here independently of bzimage.ts.
const SETUP_SECTS = 0x1f1, SYSSIZE = 0x1f4, BOOT_FLAG = 0x1fe, JUMP = 0x200, HEADER = 0x202, VERSION = 0x206;
const TYPE_OF_LOADER = 0x210, LOADFLAGS = 0x211, RAMDISK_IMAGE = 0x218, RAMDISK_SIZE = 0x21c, CMD_LINE_PTR = 0x228;
const INITRD_ADDR_MAX = 0x22c, KERNEL_ALIGNMENT = 0x230, RELOCATABLE = 0x234, XLOADFLAGS = 0x236, CMDLINE_SIZE = 0x238;
const PAYLOAD_OFFSET = 0x248, PAYLOAD_LENGTH = 0x24c, PREF_ADDRESS = 0x258, INIT_SIZE = 0x260;
// boot_params offsets (bootparam.h).
const ACPI_RSDP = 0x070, EXT_CMD_LINE_PTR = 0x0c8, E820_ENTRIES = 0x1e8, SENTINEL = 0x1ef, E820_TABLE = 0x2d0;

interface SynthOptions {
  version?: number;
  xloadflags?: number;
  loadflags?: number;
  setupSects?: number;
  kernelSize?: number;
  relocatable?: boolean;
  bootFlag?: number;
  magic?: number;
}

/** A minimal bzImage: 1 setup sector after the boot sector, a header through init_size (0x264), a dummy kernel. */
function synthBzImage(o: SynthOptions = {}): Uint8Array {
  const setupSects = o.setupSects ?? 1;
  const kernelSize = o.kernelSize ?? 4096;
  const img = new Uint8Array(((setupSects || 4) + 1) * 512 + kernelSize);
  const dv = new DataView(img.buffer);
  img[SETUP_SECTS] = setupSects;
  dv.setUint32(SYSSIZE, kernelSize / 16, true);
  dv.setUint16(BOOT_FLAG, o.bootFlag ?? 0xaa55, true);
  img[JUMP] = 0xeb;
  img[JUMP + 1] = 0x264 - 0x202; // header ends after init_size
  dv.setUint32(HEADER, o.magic ?? 0x53726448, true);
  dv.setUint16(VERSION, o.version ?? 0x020f, true);
  img[LOADFLAGS] = o.loadflags ?? 0x01;
  dv.setUint32(INITRD_ADDR_MAX, 0x7fffffff, true);
  dv.setUint32(KERNEL_ALIGNMENT, 0x200000, true);
  img[RELOCATABLE] = o.relocatable === false ? 0 : 1;
  dv.setUint16(XLOADFLAGS, o.xloadflags ?? 0x3, true);
  dv.setUint32(CMDLINE_SIZE, 2047, true);
  dv.setUint32(PAYLOAD_OFFSET, 0x100, true);
  dv.setUint32(PAYLOAD_LENGTH, 0x200, true);
  dv.setBigUint64(PREF_ADDRESS, 0x1000000n, true);
  dv.setUint32(INIT_SIZE, 0x400000, true);
  for (let i = 0; i < kernelSize; i++) img[((setupSects || 4) + 1) * 512 + i] = (i * 7) & 0xff;
  return img;
}

function rejects(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TsvmmError, `TsvmmError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

test('synthetic bzImage: header fields, load at 1 MiB, entry at +0x200, runtime area', () => {
  const img = synthBzImage();
  const p = parseBzImage(img);
  assert.equal(p.header.version, 0x020f);
  assert.equal(p.header.setupSects, 1);
  assert.equal(p.setupSize, 1024);
  assert.equal(p.kernel.length, 4096);
  assert.equal(p.setupHeaderBytes.length, 0x264 - 0x1f1);
  assert.equal(p.payload?.length, 0x200);
  const mem = new ArrayGuestMemory(32 << 20);
  const k = loadBzImage(mem, img);
  assert.equal(k.loadAddress, 0x100000);
  assert.deepEqual(k.entry, { mode: 'long64', ip: 0x100200, regs: {} });
  assert.deepEqual(mem.read(0x100000, 4096), img.subarray(1024));
  // Relocatable: runs at max(align_up(1 MiB, 2 MiB), pref_address 16 MiB), needing init_size from there.
  assert.equal(k.runtimeStart, 0x1000000);
  assert.equal(k.runtimeEnd, 0x1400000);
  // setup_sects 0 means 4.
  assert.equal(parseBzImage(synthBzImage({ setupSects: 0 })).setupSize, 5 * 512);
});

test('placement: preferred address, aligned explicit addresses, non-relocatable kernels stay at 1 MiB', () => {
  const img = synthBzImage();
  assert.equal(loadBzImage(new ArrayGuestMemory(32 << 20), img, { placement: 'preferred' }).loadAddress, 0x1000000);
  const k = loadBzImage(new ArrayGuestMemory(64 << 20), img, { placement: 0x2200000 });
  assert.equal(k.entry.ip, 0x2200200);
  assert.equal(k.runtimeStart, 0x2200000);
  rejects(() => loadBzImage(new ArrayGuestMemory(64 << 20), img, { placement: 0x1100000 }), 'TSVMM_BAD_ARGUMENT', /0x1100000.*kernel_alignment 0x200000/);
  rejects(
    () => loadBzImage(new ArrayGuestMemory(64 << 20), synthBzImage({ relocatable: false }), { placement: 0x2000000 }),
    'TSVMM_BAD_ARGUMENT',
    /not relocatable.*0x2000000/,
  );
  // RAM too small for init_size.
  rejects(() => loadBzImage(new ArrayGuestMemory(16 << 20), img), 'TSVMM_LIMIT', /init_size 0x400000/);
});

test('malformed bzImages are rejected with TSVMM_BAD_KERNEL naming the value', () => {
  const good = synthBzImage();
  // Truncated at several points: inside the boot sector, before the version, inside the header,
  // before the protected-mode kernel, inside the kernel (syssize says more).
  rejects(() => parseBzImage(good.subarray(0, 0x100)), 'TSVMM_BAD_KERNEL', /truncated: 256 bytes/);
  rejects(() => parseBzImage(good.subarray(0, 0x205)), 'TSVMM_BAD_KERNEL', /truncated: 517 bytes/);
  rejects(() => parseBzImage(good.subarray(0, 0x240)), 'TSVMM_BAD_KERNEL', /truncated: 576 bytes.*header ends at 0x264/);
  rejects(() => parseBzImage(good.subarray(0, 0x300)), 'TSVMM_BAD_KERNEL', /truncated: 768 bytes.*setup_sects 1/);
  rejects(() => parseBzImage(good.subarray(0, 0x800)), 'TSVMM_BAD_KERNEL', /truncated: syssize 0x100 declares 4096 bytes.*holds 1024/);
  rejects(() => parseBzImage(synthBzImage({ bootFlag: 0x1234 })), 'TSVMM_BAD_KERNEL', /boot_flag.*0x1234/);
  rejects(() => parseBzImage(synthBzImage({ magic: 0x12345678 })), 'TSVMM_BAD_KERNEL', /header magic.*0x12345678/);
  rejects(() => parseBzImage(synthBzImage({ version: 0x0205 })), 'TSVMM_BAD_KERNEL', /version 2\.05 \(0x205\) is too old/);
  rejects(() => parseBzImage(synthBzImage({ loadflags: 0 })), 'TSVMM_BAD_KERNEL', /loadflags 0x0 lacks LOADED_HIGH/);
  // Parsable, but without a 64-bit entry.
  const mem = new ArrayGuestMemory(32 << 20);
  rejects(() => loadBzImage(mem, synthBzImage({ version: 0x020b })), 'TSVMM_BAD_KERNEL', /2\.11 \(0x20b\) has no 64-bit entry/);
  rejects(() => loadBzImage(mem, synthBzImage({ xloadflags: 0x2 })), 'TSVMM_BAD_KERNEL', /xloadflags 0x2 lacks XLF_KERNEL_64/);
  // A payload beyond the kernel.
  const badPayload = synthBzImage();
  new DataView(badPayload.buffer).setUint32(PAYLOAD_LENGTH, 0x10000, true);
  rejects(() => parseBzImage(badPayload), 'TSVMM_BAD_KERNEL', /payload_length 0x10000/);
});

test('boot_params from a bzImage header: fields boot.rst asks the loader to fill', () => {
  const img = synthBzImage();
  const p = parseBzImage(img);
  const cmdline = encodeCmdline('console=ttyS0 panic=-1', p.header.cmdlineSize);
  assert.equal(cmdline.at(-1), 0);
  const e820 = [
    { addr: 0x100000, size: 0x7f00000, type: E820_RAM },
    { addr: 0, size: 0x9fc00, type: E820_RAM },
    { addr: 0x9fc00, size: 0x60400, type: E820_RESERVED },
  ];
  const bp = buildBootParams({
    setupHeader: p.setupHeaderBytes,
    cmdlineAddr: 0x20000,
    ramdisk: { addr: 0x7000000, size: 0x123456 },
    e820,
    acpiRsdpAddr: 0xe0000,
  });
  const dv = new DataView(bp.buffer);
  assert.equal(bp.length, 4096);
  // The header is copied verbatim, then the loader's fields.
  assert.deepEqual(bp.subarray(0x1fe, 0x210), img.subarray(0x1fe, 0x210));
  assert.deepEqual(bp.subarray(INITRD_ADDR_MAX, 0x264), img.subarray(INITRD_ADDR_MAX, 0x264));
  assert.equal(dv.getUint16(0x1fa, true), 0xffff); // vid_mode: normal
  assert.equal(dv.getUint16(BOOT_FLAG, true), 0xaa55);
  assert.equal(dv.getUint32(HEADER, true), 0x53726448);
  assert.equal(bp[TYPE_OF_LOADER], 0xff);
  assert.equal(bp[LOADFLAGS]! & 0x01, 0x01);
  assert.equal(dv.getUint32(CMD_LINE_PTR, true), 0x20000);
  assert.equal(dv.getUint32(EXT_CMD_LINE_PTR, true), 0);
  assert.equal(dv.getUint32(RAMDISK_IMAGE, true), 0x7000000);
  assert.equal(dv.getUint32(RAMDISK_SIZE, true), 0x123456);
  assert.equal(dv.getBigUint64(ACPI_RSDP, true), 0xe0000n);
  assert.equal(dv.getUint32(KERNEL_ALIGNMENT, true), 0x200000);
  assert.equal(bp[SENTINEL], 0);
  // e820, sorted by address.
  assert.equal(bp[E820_ENTRIES], 3);
  const entry = (i: number) => ({
    addr: Number(dv.getBigUint64(E820_TABLE + 20 * i, true)),
    size: Number(dv.getBigUint64(E820_TABLE + 20 * i + 8, true)),
    type: dv.getUint32(E820_TABLE + 20 * i + 16, true),
  });
  assert.deepEqual([entry(0), entry(1), entry(2)], [e820[1], e820[2], e820[0]]);
  // The zero page is zero elsewhere (for example the EDD buffer after the e820 table).
  assert.ok(bp.subarray(E820_TABLE + 3 * 20, 4096).every((b) => b === 0));
});

test('the real Debian bzImage (fetched by scripts/fetch-guest-kernel.sh)', (t) => {
  const kernel = findGuestKernel();
  if (!kernel) {
    t.skip(`no cached guest kernel: run ${FETCH_GUEST_KERNEL_SCRIPT}`);
    return;
  }
  const img = new Uint8Array(readFileSync(kernel.vmlinuz));
  const p = parseBzImage(img);
  assert.ok(p.header.version >= 0x020f, `protocol ${p.header.version.toString(16)} >= 2.15`);
  assert.ok(p.header.xloadflags & XLF_KERNEL_64, 'XLF_KERNEL_64');
  assert.ok(p.header.relocatable, 'relocatable');
  assert.equal(p.header.loadflags & 0x01, 0x01, 'LOADED_HIGH');
  assert.ok(p.header.kernelVersionString?.startsWith(kernel.version), p.header.kernelVersionString);
  assert.equal(p.setupHeaderBytes.length, 0x202 + img[0x201]! - 0x1f1);
  assert.ok(p.header.cmdlineSize >= 255);
  assert.ok(p.header.initSize > p.kernel.length);
  // The payload is XZ (Debian's CONFIG_KERNEL_XZ): magic FD 37 7A 58 5A 00.
  assert.deepEqual([...p.payload!.subarray(0, 6)], [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);

  const mem = new ArrayGuestMemory(128 << 20);
  const k = loadBzImage(mem, img);
  assert.equal(k.entry.ip, 0x100200);
  assert.equal(k.runtimeStart, p.header.prefAddress);
  assert.equal(k.runtimeEnd, p.header.prefAddress + p.header.initSize);
  assert.deepEqual(mem.read(0x100000, 4096), img.subarray(p.setupSize, p.setupSize + 4096));
  assert.deepEqual(mem.read(0x100000 + p.kernel.length - 16, 16), img.subarray(img.length - 16));

  // initrd at the top of RAM (below initrd_addr_max, above the kernel), then boot_params.
  const initrd = placeInitrd({ size: 1_055_574, initrdAddrMax: p.header.initrdAddrMax, ramTop: mem.size, lowest: k.runtimeEnd });
  assert.equal(initrd % 4096, 0);
  assert.ok(initrd + 1_055_574 <= mem.size && initrd + 4096 + 1_055_574 > mem.size);
  const bp = buildBootParams({
    setupHeader: p.setupHeaderBytes,
    cmdlineAddr: 0x20000,
    ramdisk: { addr: initrd, size: 1_055_574 },
    e820: [
      { addr: 0, size: 0x9fc00, type: E820_RAM },
      { addr: 0x100000, size: mem.size - 0x100000, type: E820_RAM },
    ],
  });
  const dv = new DataView(bp.buffer);
  assert.equal(dv.getUint16(VERSION, true), p.header.version);
  assert.equal(dv.getUint32(CMDLINE_SIZE, true), p.header.cmdlineSize);
  assert.equal(dv.getUint16(XLOADFLAGS, true), p.header.xloadflags);
  assert.equal(bp[TYPE_OF_LOADER], 0xff);
  assert.equal(dv.getUint32(RAMDISK_IMAGE, true), initrd);
  assert.equal(bp[E820_ENTRIES], 2);
  // A command line at the kernel's limit passes, one byte more does not.
  encodeCmdline('x'.repeat(p.header.cmdlineSize), p.header.cmdlineSize);
  rejects(() => encodeCmdline('x'.repeat(p.header.cmdlineSize + 1), p.header.cmdlineSize), 'TSVMM_BAD_ARGUMENT', new RegExp(`${p.header.cmdlineSize + 1} bytes`));
  // Truncations of the real image.
  for (const cut of [0x1f0, 0x250, p.setupSize - 1, p.setupSize + 1000]) {
    assert.throws(() => parseBzImage(img.subarray(0, cut)), (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_BAD_KERNEL' && /truncated/.test(e.message));
  }
});
