/**
 * PVH boot: a vmlinux (or any ELF) that carries the Xen note XEN_ELFNOTE_PHYS32_ENTRY is entered at
 * that 32-bit physical address in protected mode, paging off, with ebx pointing to struct
 * hvm_start_info. Layouts from Xen's public header arch-x86/hvm/start_info.h (facts only).
 */
import { TsvmmError } from '../common/errors.js';
import { validateE820, type E820Entry } from './boot-params.js';
import { elfNotes, parseElf, type ElfNote } from './elf.js';
import { hex, leView } from '../common/bits.js';
import type { EntryPoint } from './load-result.js';
import { writeU64 } from './u64-fields.js';

/** Owner name of Xen's ELF notes. */
export const XEN_NOTE_NAME = 'Xen';
/** XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit physical PVH entry point. */
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;

/** "xEn3" with the 0x80 bit of the "E" set. */
export const HVM_START_MAGIC = 0x336ec578;
/** Version 1 adds memmap_paddr/memmap_entries. */
export const HVM_START_INFO_VERSION = 1;

/** struct hvm_start_info (56 bytes for version 1). */
export const HVM_START_INFO = {
  MAGIC: 0, // u32
  VERSION: 4, // u32
  FLAGS: 8, // u32
  NR_MODULES: 12, // u32
  MODLIST_PADDR: 16, // u64
  CMDLINE_PADDR: 24, // u64
  RSDP_PADDR: 32, // u64
  MEMMAP_PADDR: 40, // u64 (version 1)
  MEMMAP_ENTRIES: 48, // u32 (version 1)
  RESERVED: 52, // u32
  SIZE: 56,
} as const;

/** struct hvm_modlist_entry: paddr, size, cmdline_paddr, reserved (u64 each). */
export const HVM_MODLIST_ENTRY_SIZE = 32;
/** struct hvm_memmap_table_entry: u64 addr, u64 size, u32 type, u32 reserved. */
export const HVM_MEMMAP_ENTRY_SIZE = 24;

/** Memory map types: the same numbers as e820's. */
export const HVM_MEMMAP_TYPE_RAM = 1;
export const HVM_MEMMAP_TYPE_RESERVED = 2;
export const HVM_MEMMAP_TYPE_ACPI = 3;
export const HVM_MEMMAP_TYPE_NVS = 4;
export const HVM_MEMMAP_TYPE_UNUSABLE = 5;
export const HVM_MEMMAP_TYPE_DISABLED = 6;
export const HVM_MEMMAP_TYPE_PMEM = 7;

/** The PVH entry point among an ELF's notes, or undefined when the image has none. */
export function pvhEntryFromNotes(notes: readonly ElfNote[]): number | undefined {
  const note = notes.find((n) => n.name === XEN_NOTE_NAME && n.type === XEN_ELFNOTE_PHYS32_ENTRY);
  if (!note) return undefined;
  const dv = leView(note.desc);
  // The kernel emits a pointer-sized value (8 bytes on x86-64), Xen reads the low 32 bits.
  let entry: number;
  if (note.desc.length === 4) entry = dv.getUint32(0, true);
  else if (note.desc.length === 8) {
    const v = dv.getBigUint64(0, true);
    if (v > 0xffffffffn) throw new TsvmmError('TSVMM_BAD_KERNEL', `PVH entry note value ${hex(v)} is not a 32-bit physical address`);
    entry = Number(v);
  } else {
    throw new TsvmmError('TSVMM_BAD_KERNEL', `PVH entry note has a ${note.desc.length}-byte value, expected 4 or 8`);
  }
  return entry;
}

/** The PVH entry point of an ELF image, or undefined. */
export function findPvhEntry(image: Uint8Array): number | undefined {
  return pvhEntryFromNotes(elfNotes(image, parseElf(image)));
}

/** The register state PVH prescribes: 32-bit protected mode, paging off, ebx = start info. */
export function pvhEntryPoint(entry: number, startInfoAddr: number): EntryPoint {
  return { mode: 'protected32', ip: entry, regs: { rbx: startInfoAddr } };
}

export interface HvmModule {
  addr: number;
  size: number;
  /** Physical address of the module's NUL-terminated command line, or 0. */
  cmdlineAddr?: number;
}

export interface HvmStartInfoOptions {
  /** Physical address of the NUL-terminated kernel command line, or 0. */
  cmdlineAddr: number;
  /** Physical address of the ACPI RSDP, or 0 (none). */
  rsdpAddr?: number;
  /** Modules (for Linux: the initrd is module 0). */
  modules?: readonly HvmModule[];
  /** The memory map (the e820 map the board uses). */
  memmap: readonly E820Entry[];
}

/**
 * Lays out, at guest physical `at`: struct hvm_start_info, then the module list, then the memory
 * map, with the pointers filled in. Returns the bytes to write at `at` (8-byte aligned pieces).
 */
export function buildHvmStartInfo(at: number, o: HvmStartInfoOptions): Uint8Array {
  if (at % 8 !== 0) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `hvm_start_info address ${hex(at)} is not 8-byte aligned`);
  const modules = o.modules ?? [];
  const memmap = validateE820(o.memmap, 0xffffffff);
  const modlistOff = HVM_START_INFO.SIZE;
  const memmapOff = modlistOff + modules.length * HVM_MODLIST_ENTRY_SIZE;
  const size = memmapOff + memmap.length * HVM_MEMMAP_ENTRY_SIZE;
  const out = new Uint8Array(size);
  const dv = leView(out);
  dv.setUint32(HVM_START_INFO.MAGIC, HVM_START_MAGIC, true);
  dv.setUint32(HVM_START_INFO.VERSION, HVM_START_INFO_VERSION, true);
  dv.setUint32(HVM_START_INFO.FLAGS, 0, true);
  dv.setUint32(HVM_START_INFO.NR_MODULES, modules.length, true);
  writeU64(dv, HVM_START_INFO.MODLIST_PADDR, modules.length ? at + modlistOff : 0);
  writeU64(dv, HVM_START_INFO.CMDLINE_PADDR, o.cmdlineAddr);
  writeU64(dv, HVM_START_INFO.RSDP_PADDR, o.rsdpAddr ?? 0);
  writeU64(dv, HVM_START_INFO.MEMMAP_PADDR, memmap.length ? at + memmapOff : 0);
  dv.setUint32(HVM_START_INFO.MEMMAP_ENTRIES, memmap.length, true);
  modules.forEach((m, i) => {
    const off = modlistOff + i * HVM_MODLIST_ENTRY_SIZE;
    writeU64(dv, off, m.addr);
    writeU64(dv, off + 8, m.size);
    writeU64(dv, off + 16, m.cmdlineAddr ?? 0);
  });
  memmap.forEach((e, i) => {
    const off = memmapOff + i * HVM_MEMMAP_ENTRY_SIZE;
    writeU64(dv, off, e.addr);
    writeU64(dv, off + 8, e.size);
    dv.setUint32(off + 16, e.type, true);
  });
  return out;
}
