/**
 * Multiboot (version 1, the 0.6.96 specification): find the header in the first 8192 bytes, load
 * the kernel (ELF, or the a.out kludge's address fields when flag bit 16 is set), place modules,
 * and build the multiboot_info structure. Entry: 32-bit protected mode, flat segments, paging off,
 * EIP = entry, EAX = 0x2BADB002, EBX = the info structure's address.
 */
import { TsvmmError } from '../common/errors.js';
import { E820_RAM, validateE820, type E820Entry } from './boot-params.js';
import { isElf, loadElf } from './elf.js';
import { checkNotReserved, checkRamRange, zeroFill, type GuestMemoryWriter, type ReservedArea } from './guest-memory.js';
import { alignUp, hex, leView } from '../common/bits.js';
import { PAGE_SIZE } from '../memory/page.js';
import type { EntryPoint, LoadedSegment } from './load-result.js';
import { writeU64 } from './u64-fields.js';

export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
/** In EAX at entry. */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
/** The header lies, 4-byte aligned, within this many bytes from the image's start. */
export const MULTIBOOT_SEARCH = 8192;

/** Header flags, bits 0-15 are requirements (a loader that cannot meet one must refuse). */
export const MB_PAGE_ALIGN = 1 << 0; // modules page-aligned
export const MB_MEMORY_INFO = 1 << 1; // mem_* (and the mmap) required
export const MB_VIDEO_MODE = 1 << 2; // video mode table requested
export const MB_AOUT_KLUDGE = 1 << 16; // header carries the load addresses
const MB_KNOWN_REQUIREMENTS = MB_PAGE_ALIGN | MB_MEMORY_INFO | MB_VIDEO_MODE;

/** multiboot_info flags (which fields are valid). */
export const MBI_MEMORY = 1 << 0; // mem_lower, mem_upper
export const MBI_BOOT_DEVICE = 1 << 1;
export const MBI_CMDLINE = 1 << 2;
export const MBI_MODS = 1 << 3;
export const MBI_MMAP = 1 << 6;
export const MBI_BOOT_LOADER_NAME = 1 << 9;

/** struct multiboot_info offsets. */
export const MBI = {
  FLAGS: 0,
  MEM_LOWER: 4, // KiB from 0 (at most 640)
  MEM_UPPER: 8, // KiB from 1 MiB to the first hole
  BOOT_DEVICE: 12,
  CMDLINE: 16,
  MODS_COUNT: 20,
  MODS_ADDR: 24,
  SYMS: 28, // 16 bytes (a.out symbols or ELF section headers)
  MMAP_LENGTH: 44,
  MMAP_ADDR: 48,
  DRIVES_LENGTH: 52,
  DRIVES_ADDR: 56,
  CONFIG_TABLE: 60,
  BOOT_LOADER_NAME: 64,
  APM_TABLE: 68,
  SIZE: 116, // through the framebuffer fields
} as const;
/** struct multiboot_mod_list: mod_start, mod_end, string, reserved (u32 each). */
export const MB_MOD_ENTRY_SIZE = 16;
/** An mmap entry: u32 size (of the rest, 20), u64 base_addr, u64 length, u32 type. */
export const MB_MMAP_ENTRY_SIZE = 24;

export interface MultibootHeader {
  /** File offset of the magic. */
  offset: number;
  flags: number;
  /** The a.out kludge fields, present when flag bit 16 is set. */
  aout?: { headerAddr: number; loadAddr: number; loadEndAddr: number; bssEndAddr: number; entryAddr: number };
}

function bad(message: string, detail?: Record<string, unknown>): TsvmmError {
  return new TsvmmError('TSVMM_BAD_KERNEL', message, detail);
}

/** Finds and validates the multiboot header (magic, checksum, requirement bits), or throws TSVMM_BAD_KERNEL. */
export function findMultibootHeader(image: Uint8Array): MultibootHeader {
  const dv = leView(image);
  const limit = Math.min(MULTIBOOT_SEARCH, image.length) - 12;
  let badChecksumAt: number | undefined;
  for (let o = 0; o <= limit; o += 4) {
    if (dv.getUint32(o, true) !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = dv.getUint32(o + 4, true);
    const checksum = dv.getUint32(o + 8, true);
    if (((MULTIBOOT_HEADER_MAGIC + flags + checksum) >>> 0) !== 0) {
      badChecksumAt ??= o;
      continue;
    }
    const unknown = flags & 0xffff & ~MB_KNOWN_REQUIREMENTS;
    if (unknown) throw bad(`multiboot header at ${hex(o)} requires unsupported features: flags ${hex(flags)} (bits ${hex(unknown)})`, { flags });
    const header: MultibootHeader = { offset: o, flags };
    if (flags & MB_AOUT_KLUDGE) {
      if (o + 32 > image.length) throw bad(`multiboot header at ${hex(o)} truncated: the address fields need ${hex(o + 32)} bytes, the image has ${hex(image.length)}`);
      header.aout = {
        headerAddr: dv.getUint32(o + 12, true),
        loadAddr: dv.getUint32(o + 16, true),
        loadEndAddr: dv.getUint32(o + 20, true),
        bssEndAddr: dv.getUint32(o + 24, true),
        entryAddr: dv.getUint32(o + 28, true),
      };
    }
    return header;
  }
  if (badChecksumAt !== undefined) {
    throw bad(`multiboot magic at ${hex(badChecksumAt)} has a bad checksum (magic + flags + checksum != 0)`, { offset: badChecksumAt });
  }
  throw bad(`no multiboot header (magic 0x1badb002) in the first ${Math.min(MULTIBOOT_SEARCH, image.length)} bytes`);
}

/** True when the image has a valid multiboot v1 header. */
export function isMultiboot(image: Uint8Array): boolean {
  try {
    findMultibootHeader(image);
    return true;
  } catch {
    return false;
  }
}

export interface MultibootKernel {
  header: MultibootHeader;
  segments: LoadedSegment[];
  /** The kernel's entry EIP. */
  entryAddr: number;
  /** End (exclusive) of everything loaded, bss included: modules and boot data go above it. */
  end: number;
  /** The header asked for a video mode (flag bit 2); tsvmm provides none (no VBE/framebuffer info). */
  videoRequested: boolean;
}

export interface MultibootLoadOptions {
  /** Segments may not start below this address (default 1 MiB). */
  minGpa?: number;
  /** Areas the board fills (boot data, tables): the kernel may not load over them. */
  reserved?: readonly ReservedArea[];
}

/** Loads a multiboot v1 kernel image and returns the result record. */
export function loadMultiboot(mem: GuestMemoryWriter, image: Uint8Array, options: MultibootLoadOptions = {}): MultibootKernel {
  const header = findMultibootHeader(image);
  const minGpa = options.minGpa ?? 0x100000;
  const videoRequested = (header.flags & MB_VIDEO_MODE) !== 0;
  if (header.aout) {
    const a = header.aout;
    if (a.loadAddr > a.headerAddr) throw bad(`multiboot load_addr ${hex(a.loadAddr)} is above header_addr ${hex(a.headerAddr)}`);
    const fileStart = header.offset - (a.headerAddr - a.loadAddr);
    if (fileStart < 0) throw bad(`multiboot header_addr ${hex(a.headerAddr)} - load_addr ${hex(a.loadAddr)} exceeds the header's file offset ${hex(header.offset)}`);
    const loadSize = a.loadEndAddr === 0 ? image.length - fileStart : a.loadEndAddr - a.loadAddr;
    if (loadSize < 0) throw bad(`multiboot load_end_addr ${hex(a.loadEndAddr)} is below load_addr ${hex(a.loadAddr)}`);
    if (fileStart + loadSize > image.length) {
      throw bad(`multiboot image truncated: load_end_addr ${hex(a.loadEndAddr)} needs ${hex(fileStart + loadSize)} file bytes, the image has ${hex(image.length)}`);
    }
    const loadEnd = a.loadAddr + loadSize;
    const bssEnd = a.bssEndAddr === 0 ? loadEnd : a.bssEndAddr;
    if (bssEnd < loadEnd) throw bad(`multiboot bss_end_addr ${hex(a.bssEndAddr)} is below the load end ${hex(loadEnd)}`);
    checkNotReserved(options.reserved ?? [], a.loadAddr, bssEnd - a.loadAddr, `the multiboot kernel at ${hex(a.loadAddr)}..${hex(bssEnd)}`);
    if (a.loadAddr < minGpa) throw bad(`multiboot load_addr ${hex(a.loadAddr)} is below ${hex(minGpa)}`);
    if (a.entryAddr < a.loadAddr || a.entryAddr >= loadEnd) throw bad(`multiboot entry_addr ${hex(a.entryAddr)} is outside the loaded ${hex(a.loadAddr)}..${hex(loadEnd)}`);
    checkRamRange(mem, a.loadAddr, bssEnd - a.loadAddr, 'the multiboot kernel');
    mem.write(a.loadAddr, image.subarray(fileStart, fileStart + loadSize));
    zeroFill(mem, loadEnd, bssEnd - loadEnd);
    return {
      header,
      segments: [{ gpa: a.loadAddr, fileSize: loadSize, memSize: bssEnd - a.loadAddr }],
      entryAddr: a.entryAddr,
      end: bssEnd,
      videoRequested,
    };
  }
  if (!isElf(image)) throw bad(`multiboot header at ${hex(header.offset)} has no address fields (flag bit 16 clear) and the image is not ELF`);
  const k = loadElf(mem, image, { minGpa, reserved: options.reserved });
  if (k.entry > 0xffffffff) throw bad(`multiboot ELF entry ${hex(k.entry)} is above 4 GiB`);
  if (k.end > 0x100000000) throw bad(`multiboot ELF segments end at ${hex(k.end)}, above 4 GiB`);
  return { header, segments: k.segments, entryAddr: k.entry, end: k.end, videoRequested };
}

export interface MultibootModuleInput {
  data: Uint8Array;
  /** The module's string (its command line). */
  string: string;
}

export interface MultibootModule {
  addr: number;
  size: number;
  string: string;
}

/** Copies modules into RAM, each page-aligned, from `start` (at or above the kernel's end). */
export function loadMultibootModules(mem: GuestMemoryWriter, start: number, modules: readonly MultibootModuleInput[]): MultibootModule[] {
  let addr = alignUp(start, PAGE_SIZE);
  return modules.map((m, i) => {
    checkRamRange(mem, addr, m.data.length, `multiboot module ${i} (${m.data.length} bytes)`);
    mem.write(addr, m.data);
    const placed = { addr, size: m.data.length, string: m.string };
    addr = alignUp(addr + m.data.length, PAGE_SIZE);
    return placed;
  });
}

export interface MultibootInfoOptions {
  /** The kernel command line (flag MBI_CMDLINE), if any. */
  cmdline?: string;
  modules?: readonly MultibootModule[];
  /** The memory map; mem_lower/mem_upper are derived from it. */
  memoryMap: readonly E820Entry[];
  bootLoaderName?: string;
}

/**
 * Lays out, at guest physical `at`: multiboot_info, the module list, the mmap, then the strings.
 * Returns the bytes to write at `at`. Everything must lie below 4 GiB.
 */
export function buildMultibootInfo(at: number, o: MultibootInfoOptions): Uint8Array {
  const map = validateE820(o.memoryMap, 0xffff);
  const modules = o.modules ?? [];
  const modsOff = alignUp(MBI.SIZE, 8);
  const mmapOff = modsOff + modules.length * MB_MOD_ENTRY_SIZE;
  let strOff = mmapOff + map.length * MB_MMAP_ENTRY_SIZE;
  const enc = new TextEncoder();
  const strings: { off: number; bytes: Uint8Array }[] = [];
  const addString = (s: string, what: string): number => {
    const bytes = enc.encode(s);
    if (bytes.includes(0)) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `${what} contains a NUL byte (length ${bytes.length})`);
    const off = strOff;
    strings.push({ off, bytes });
    strOff += bytes.length + 1;
    return at + off;
  };
  let flags = MBI_MEMORY | MBI_MMAP;
  const cmdlineAddr = o.cmdline !== undefined ? ((flags |= MBI_CMDLINE), addString(o.cmdline, 'multiboot command line')) : 0;
  const modStrings = modules.map((m, i) => addString(m.string, `multiboot module ${i} string`));
  if (modules.length) flags |= MBI_MODS;
  const nameAddr = o.bootLoaderName !== undefined ? ((flags |= MBI_BOOT_LOADER_NAME), addString(o.bootLoaderName, 'boot loader name')) : 0;
  const size = strOff;
  if (at + size > 0x100000000) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `multiboot info at ${hex(at)} (${size} bytes) crosses 4 GiB`);

  const out = new Uint8Array(size);
  const dv = leView(out);
  const { lowerKiB, upperKiB } = memLowerUpper(map);
  dv.setUint32(MBI.FLAGS, flags, true);
  dv.setUint32(MBI.MEM_LOWER, lowerKiB, true);
  dv.setUint32(MBI.MEM_UPPER, upperKiB, true);
  dv.setUint32(MBI.CMDLINE, cmdlineAddr, true);
  dv.setUint32(MBI.MODS_COUNT, modules.length, true);
  dv.setUint32(MBI.MODS_ADDR, modules.length ? at + modsOff : 0, true);
  dv.setUint32(MBI.MMAP_LENGTH, map.length * MB_MMAP_ENTRY_SIZE, true);
  dv.setUint32(MBI.MMAP_ADDR, at + mmapOff, true);
  dv.setUint32(MBI.BOOT_LOADER_NAME, nameAddr, true);
  modules.forEach((m, i) => {
    const off = modsOff + i * MB_MOD_ENTRY_SIZE;
    if (m.addr + m.size > 0x100000000) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `multiboot module ${i} at ${hex(m.addr)} ends above 4 GiB`);
    dv.setUint32(off, m.addr, true);
    dv.setUint32(off + 4, m.addr + m.size, true); // mod_end: first byte after the module
    dv.setUint32(off + 8, modStrings[i]!, true);
  });
  map.forEach((e, i) => {
    const off = mmapOff + i * MB_MMAP_ENTRY_SIZE;
    dv.setUint32(off, MB_MMAP_ENTRY_SIZE - 4, true); // size of the entry, not counting this field
    writeU64(dv, off + 4, e.addr);
    writeU64(dv, off + 12, e.size);
    dv.setUint32(off + 20, e.type, true);
  });
  for (const s of strings) out.set(s.bytes, s.off); // the NUL is already there
  return out;
}

/** mem_lower: KiB of RAM from address 0 (at most 640); mem_upper: KiB of RAM contiguous from 1 MiB. */
export function memLowerUpper(map: readonly E820Entry[]): { lowerKiB: number; upperKiB: number } {
  const ram = map.filter((e) => e.type === E820_RAM).sort((a, b) => a.addr - b.addr);
  const low = ram.find((e) => e.addr === 0);
  const lowerKiB = low ? Math.min(Math.floor(low.size / 1024), 640) : 0;
  let end = 0x100000;
  for (const e of ram) {
    if (e.addr <= end && e.addr + e.size > end) end = e.addr + e.size;
  }
  const upperKiB = Math.min(Math.floor((end - 0x100000) / 1024), 0xffffffff);
  return { lowerKiB, upperKiB };
}

/** The entry state: 32-bit protected mode, EIP = entry, EAX = 0x2BADB002, EBX = info address. */
export function multibootEntryPoint(kernel: MultibootKernel, infoAddr: number): EntryPoint {
  return { mode: 'protected32', ip: kernel.entryAddr, regs: { rax: MULTIBOOT_BOOTLOADER_MAGIC, rbx: infoAddr } };
}
