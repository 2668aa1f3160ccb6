/**
 * The zero page (struct boot_params, 4 KiB) for the 64-bit Linux boot protocol, the e820 memory
 * map it carries, the command line check and the initrd placement rule. Pure: these build bytes
 * and compute addresses; the caller writes them into guest RAM.
 * Offsets from the kernel's arch/x86/include/uapi/asm/bootparam.h and Documentation/arch/x86/boot.rst.
 */
import { TsvmmError } from '../common/errors.js';
import {
  BOOT_FLAG_MAGIC,
  CAN_USE_HEAP,
  HDR,
  HDRS_MAGIC,
  LOADED_HIGH,
  SETUP_HEADER_LIMIT,
  SETUP_HEADER_START,
} from './bzimage.js';
import { alignDown, hex, leView } from '../common/bits.js';
import { PAGE_SIZE } from '../memory/page.js';
import { writeU64 } from './u64-fields.js';

export const BOOT_PARAMS_SIZE = 4096;

/** Offsets in struct boot_params outside the setup header (which keeps its image offsets, HDR). */
export const BP = {
  SCREEN_INFO: 0x000, // struct screen_info, 0x40 bytes
  ACPI_RSDP_ADDR: 0x070, // u64 (protocol 2.14+)
  EXT_RAMDISK_IMAGE: 0x0c0, // u32: bits 63:32 of ramdisk_image
  EXT_RAMDISK_SIZE: 0x0c4, // u32: bits 63:32 of ramdisk_size
  EXT_CMD_LINE_PTR: 0x0c8, // u32: bits 63:32 of cmd_line_ptr
  E820_ENTRIES: 0x1e8, // u8
  SENTINEL: 0x1ef, // u8: a loader that copies the whole image sector leaves it nonzero
  E820_TABLE: 0x2d0, // struct boot_e820_entry[128], 20 bytes each
} as const;

export const E820_MAX_ENTRIES = 128;
export const E820_ENTRY_SIZE = 20; // u64 addr, u64 size, u32 type (packed)

/** e820 memory types (ACPI address range types). */
export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;
export const E820_NVS = 4;
export const E820_UNUSABLE = 5;
export const E820_PMEM = 7;

/** type_of_loader 0xff: "undefined" loader (no assigned ID). */
export const LOADER_TYPE_UNDEFINED = 0xff;
/** vid_mode 0xffff: "normal" (no mode change). */
export const VID_MODE_NORMAL = 0xffff;
/** The command line limit when there is no setup header (an ELF vmlinux): the kernel's COMMAND_LINE_SIZE - 1. */
export const DEFAULT_CMDLINE_SIZE = 2047;

export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

/** Checks a memory map: at most 128 entries, non-empty, within 2^53, no overlaps. Returns it sorted by address. */
export function validateE820(map: readonly E820Entry[], max = E820_MAX_ENTRIES): E820Entry[] {
  if (map.length > max) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `memory map has ${map.length} entries, at most ${max} fit`, { entries: map.length });
  const sorted = [...map].sort((a, b) => a.addr - b.addr);
  for (const [i, e] of sorted.entries()) {
    if (!Number.isSafeInteger(e.addr) || !Number.isSafeInteger(e.size) || e.addr < 0 || e.size <= 0 || !Number.isSafeInteger(e.addr + e.size)) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `memory map entry ${hex(e.addr)}+${hex(e.size)} is empty or out of range`, { entry: e });
    }
    if (!Number.isInteger(e.type) || e.type < 1 || e.type > 0xffffffff) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `memory map entry at ${hex(e.addr)} has bad type ${e.type}`, { entry: e });
    }
    const prev = sorted[i - 1];
    if (prev && prev.addr + prev.size > e.addr) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `memory map entries ${hex(prev.addr)}+${hex(prev.size)} and ${hex(e.addr)}+${hex(e.size)} overlap`, { prev, entry: e });
    }
  }
  return sorted;
}

/**
 * Encodes a kernel command line (NUL-terminated) after checking it against a limit without the
 * NUL: the header's cmdline_size, or what `limitName` says. Throws TSVMM_BAD_ARGUMENT naming the length.
 */
export function encodeCmdline(cmdline: string, cmdlineSize: number = DEFAULT_CMDLINE_SIZE, limitName = 'cmdline_size'): Uint8Array {
  const bytes = new TextEncoder().encode(cmdline);
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `kernel command line contains a NUL byte at offset ${nul} (length ${bytes.length})`, { offset: nul });
  if (bytes.length > cmdlineSize) {
    throw new TsvmmError('TSVMM_BAD_ARGUMENT', `kernel command line is ${bytes.length} bytes, the limit is ${cmdlineSize} (${limitName})`, {
      length: bytes.length,
      cmdlineSize,
    });
  }
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

export interface BootParamsOptions {
  /**
   * The bzImage's setup header bytes (image 0x1f1 up to the header's end). Absent for an ELF
   * vmlinux: a minimal header (boot_flag, "HdrS", kernel_alignment) is synthesized.
   */
  setupHeader?: Uint8Array;
  /** Guest physical address of the NUL-terminated command line (see encodeCmdline), 0 for none. */
  cmdlineAddr: number;
  /** The initrd, if one was placed (see placeInitrd). */
  ramdisk?: { addr: number; size: number };
  /** The guest's memory map. */
  e820: readonly E820Entry[];
  /** Physical address of the ACPI RSDP, if the board builds ACPI tables. */
  acpiRsdpAddr?: number;
  /** Real-mode entry only: heap_end_ptr (offset from the real-mode segment); sets CAN_USE_HEAP. */
  heapEndPtr?: number;
}

/** kernel_alignment written into a synthesized header (an ELF vmlinux has none): 16 MiB, as Firecracker uses. */
const SYNTH_KERNEL_ALIGNMENT = 0x1000000;

/** Builds struct boot_params for the 64-bit boot protocol. */
export function buildBootParams(o: BootParamsOptions): Uint8Array {
  const bp = new Uint8Array(BOOT_PARAMS_SIZE);
  const dv = leView(bp);
  if (o.setupHeader) {
    if (o.setupHeader.length > SETUP_HEADER_LIMIT - SETUP_HEADER_START) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `setup header of ${o.setupHeader.length} bytes does not fit boot_params`, { length: o.setupHeader.length });
    }
    bp.set(o.setupHeader, SETUP_HEADER_START);
  } else {
    dv.setUint16(HDR.BOOT_FLAG, BOOT_FLAG_MAGIC, true);
    dv.setUint32(HDR.HEADER, HDRS_MAGIC, true);
    dv.setUint32(HDR.KERNEL_ALIGNMENT, SYNTH_KERNEL_ALIGNMENT, true);
  }
  dv.setUint16(HDR.VID_MODE, VID_MODE_NORMAL, true);
  // screen_info stays zero: no VGA text console (orig_video_isVGA = 0).
  bp[HDR.TYPE_OF_LOADER] = LOADER_TYPE_UNDEFINED;
  bp[HDR.EXT_LOADER_VER] = 0;
  bp[HDR.EXT_LOADER_TYPE] = 0;
  let loadflags = bp[HDR.LOADFLAGS]! | LOADED_HIGH;
  if (o.heapEndPtr !== undefined) {
    dv.setUint16(HDR.HEAP_END_PTR, o.heapEndPtr, true);
    loadflags |= CAN_USE_HEAP;
  } else {
    loadflags &= ~CAN_USE_HEAP;
  }
  bp[HDR.LOADFLAGS] = loadflags;

  setSplit64(dv, HDR.CMD_LINE_PTR, BP.EXT_CMD_LINE_PTR, o.cmdlineAddr, 'cmd_line_ptr');
  setSplit64(dv, HDR.RAMDISK_IMAGE, BP.EXT_RAMDISK_IMAGE, o.ramdisk?.addr ?? 0, 'ramdisk_image');
  setSplit64(dv, HDR.RAMDISK_SIZE, BP.EXT_RAMDISK_SIZE, o.ramdisk?.size ?? 0, 'ramdisk_size');
  if (o.acpiRsdpAddr !== undefined) writeU64(dv, BP.ACPI_RSDP_ADDR, o.acpiRsdpAddr);

  const map = validateE820(o.e820);
  bp[BP.E820_ENTRIES] = map.length;
  map.forEach((e, i) => {
    const off = BP.E820_TABLE + i * E820_ENTRY_SIZE;
    writeU64(dv, off, e.addr);
    writeU64(dv, off + 8, e.size);
    dv.setUint32(off + 16, e.type, true);
  });
  return bp;
}

/** Writes a 64-bit value as a low u32 in the header and a high u32 in an ext_ field. */
function setSplit64(dv: DataView, lowOff: number, highOff: number, value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `${what} ${value} is not a valid address or size`);
  dv.setUint32(lowOff, value % 0x1_0000_0000, true);
  dv.setUint32(highOff, Math.floor(value / 0x1_0000_0000), true);
}

export interface InitrdPlacementInput {
  /** The initrd's size in bytes. */
  size: number;
  /** The header's initrd_addr_max: the highest byte address the initrd may occupy. */
  initrdAddrMax: number;
  /** End (exclusive) of the RAM the initrd may use. */
  ramTop: number;
  /** Lowest address the initrd may start at (the end of the kernel's runtime area). */
  lowest?: number;
}

/**
 * The initrd goes at the highest page-aligned address where all of it lies below both
 * initrd_addr_max (inclusive) and the top of RAM, and not below `lowest`. Throws TSVMM_LIMIT when
 * it does not fit.
 */
export function placeInitrd(p: InitrdPlacementInput): number {
  if (!Number.isSafeInteger(p.size) || p.size < 0) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `initrd size ${p.size} is invalid`);
  const limit = Math.min(p.initrdAddrMax + 1, p.ramTop);
  const addr = alignDown(limit - p.size, PAGE_SIZE);
  const lowest = p.lowest ?? 0;
  if (limit - p.size < 0 || addr < lowest) {
    throw new TsvmmError(
      'TSVMM_LIMIT',
      `initrd of ${p.size} bytes does not fit between ${hex(lowest)} and ${hex(limit)} (min of initrd_addr_max ${hex(p.initrdAddrMax)} + 1 and RAM top ${hex(p.ramTop)})`,
      { size: p.size, lowest, limit },
    );
  }
  return addr;
}
