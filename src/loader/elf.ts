/**
 * ELF executables for x86: parse the program headers, load PT_LOAD segments at their physical
 * addresses (p_paddr), read PT_NOTE notes. Used for a 64-bit vmlinux (entered in long mode with
 * boot_params, or through its PVH note, see pvh.ts) and for multiboot ELF kernels (32 or 64-bit
 * containers). Also the section headers of any x86 ELF file (parseElfSections), which is how a
 * Linux kernel module (a relocatable ELF, no program headers) is read: its .modinfo section.
 * Facts from the System V ABI's ELF chapters (gABI) and its x86-64 supplement.
 */
import { TsvmmError } from '../common/errors.js';
import { checkNotReserved, checkRamRange, zeroFill, type GuestMemoryWriter, type ReservedArea } from './guest-memory.js';
import { hex, leView, readU64, segmentsSpan, type LoadedSegment } from './load-result.js';

export const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const; // "\x7fELF"
const EI_CLASS = 4;
const EI_DATA = 5;
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
export const ET_EXEC = 2;
export const EM_386 = 3;
export const EM_X86_64 = 62;
export const PT_LOAD = 1;
export const PT_DYNAMIC = 2;
export const PT_INTERP = 3;
export const PT_NOTE = 4;
export const ET_REL = 1;
/** Section types (gABI): a section of this type occupies no file bytes (.bss). */
export const SHT_NOBITS = 8;
/** e_shnum/e_shstrndx escapes (the real values move to section 0): not for the files read here. */
const SHN_LORESERVE = 0xff00;
const SHN_XINDEX = 0xffff;
/** e_phnum escape for more than 0xfffe program headers (the count moves to section 0): not for kernels. */
const PN_XNUM = 0xffff;
/**
 * Bounds on what a file's counts may make the loader do (a vmlinux has about 5 PT_LOADs and 20
 * notes): work and memory stay proportional to a kernel's, not to e_phnum times the file.
 */
export const MAX_ELF_LOADS = 256;
export const MAX_ELF_NOTES = 1024;

export interface ElfProgramHeader {
  type: number;
  flags: number;
  offset: number;
  /** Virtual address: a bigint, since a kernel's are above 2^53. */
  vaddr: bigint;
  paddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

export interface ElfNote {
  name: string;
  type: number;
  desc: Uint8Array;
}

export interface ElfImage {
  elfClass: 32 | 64;
  machine: number;
  type: number;
  /** e_entry as written (may be a virtual address, above 2^53). */
  entry: bigint;
  programHeaders: ElfProgramHeader[];
}

function bad(message: string, detail?: Record<string, unknown>): TsvmmError {
  return new TsvmmError('TSVMM_BAD_KERNEL', message, detail);
}

/** True when the bytes start with the ELF magic. */
export function isElf(image: Uint8Array): boolean {
  return image.length >= 4 && ELF_MAGIC.every((b, i) => image[i] === b);
}

/** Checks the identification and the header size of a little-endian x86 ELF file; true for ELF64. */
function checkIdent(image: Uint8Array): boolean {
  if (image.length < 16) throw bad(`ELF truncated: ${image.length} bytes, the identification needs 16`, { length: image.length });
  if (!isElf(image)) {
    throw bad(`not an ELF file: magic is ${hex(leView(image).getUint32(0, false))}, expected 0x7f454c46`);
  }
  const cls = image[EI_CLASS]!;
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) throw bad(`ELF class ${cls} is neither 1 (32-bit) nor 2 (64-bit)`, { elfClass: cls });
  if (image[EI_DATA] !== ELFDATA2LSB) throw bad(`ELF data encoding ${image[EI_DATA]} is not 1 (little-endian)`, { data: image[EI_DATA] });
  const is64 = cls === ELFCLASS64;
  const ehsize = is64 ? 64 : 52;
  if (image.length < ehsize) throw bad(`ELF truncated: ${image.length} bytes, the ELF${is64 ? 64 : 32} header needs ${ehsize}`, { length: image.length });
  const machine = leView(image).getUint16(18, true);
  if (machine !== (is64 ? EM_X86_64 : EM_386) && !(is64 && machine === EM_386)) {
    throw bad(`ELF machine ${machine} is not x86 (${EM_386} or ${EM_X86_64})`, { machine });
  }
  return is64;
}

/** Parses and validates an x86 ELF file's header and program headers. Pure. */
export function parseElf(image: Uint8Array): ElfImage {
  const is64 = checkIdent(image);
  const dv = leView(image);
  const type = dv.getUint16(16, true);
  const machine = dv.getUint16(18, true);
  if (type !== ET_EXEC) throw bad(`ELF type ${type} is not ET_EXEC (2): only executables load at fixed addresses`, { type });
  const entry = is64 ? dv.getBigUint64(24, true) : BigInt(dv.getUint32(24, true));
  const phoff = is64 ? readU64(dv, 32, 'e_phoff') : dv.getUint32(28, true);
  const phentsize = dv.getUint16(is64 ? 54 : 42, true);
  const phnum = dv.getUint16(is64 ? 56 : 44, true);
  const expectedPhent = is64 ? 56 : 32;
  if (phnum === PN_XNUM) throw bad(`ELF e_phnum ${hex(phnum)} (extended numbering) is not supported`, { phnum });
  if (phnum === 0) throw bad('ELF has no program headers (e_phnum 0)', { phnum });
  if (phentsize !== expectedPhent) throw bad(`ELF e_phentsize ${phentsize} is not ${expectedPhent}`, { phentsize });
  if (phoff + phnum * phentsize > image.length) {
    throw bad(`ELF truncated: program headers at ${hex(phoff)} (${phnum} x ${phentsize}) end beyond the ${image.length}-byte file`, { phoff, phnum });
  }
  const programHeaders: ElfProgramHeader[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    const ph: ElfProgramHeader = is64
      ? {
          type: dv.getUint32(o, true),
          flags: dv.getUint32(o + 4, true),
          offset: readU64(dv, o + 8, `program header ${i} p_offset`),
          vaddr: dv.getBigUint64(o + 16, true),
          paddr: readU64(dv, o + 24, `program header ${i} p_paddr`),
          filesz: readU64(dv, o + 32, `program header ${i} p_filesz`),
          memsz: readU64(dv, o + 40, `program header ${i} p_memsz`),
          align: Number(dv.getBigUint64(o + 48, true) & 0xfffffffffffffn),
        }
      : {
          type: dv.getUint32(o, true),
          offset: dv.getUint32(o + 4, true),
          vaddr: BigInt(dv.getUint32(o + 8, true)),
          paddr: dv.getUint32(o + 12, true),
          filesz: dv.getUint32(o + 16, true),
          memsz: dv.getUint32(o + 20, true),
          flags: dv.getUint32(o + 24, true),
          align: dv.getUint32(o + 28, true),
        };
    if (ph.type === PT_LOAD || ph.type === PT_NOTE) {
      if (ph.offset + ph.filesz > image.length) {
        throw bad(`ELF truncated: program header ${i} (type ${ph.type}) needs file bytes ${hex(ph.offset)}..${hex(ph.offset + ph.filesz)}, the file has ${hex(image.length)}`, {
          index: i,
          offset: ph.offset,
          filesz: ph.filesz,
        });
      }
      if (ph.type === PT_LOAD && ph.filesz > ph.memsz) {
        throw bad(`ELF program header ${i}: p_filesz ${hex(ph.filesz)} exceeds p_memsz ${hex(ph.memsz)}`, { index: i });
      }
    }
    programHeaders.push(ph);
  }
  if (!programHeaders.some((p) => p.type === PT_LOAD && p.memsz > 0)) throw bad('ELF has no PT_LOAD segment to load');
  const loads = programHeaders.filter((p) => p.type === PT_LOAD).length;
  if (loads > MAX_ELF_LOADS) throw bad(`ELF has ${loads} PT_LOAD segments, at most ${MAX_ELF_LOADS} are loaded`, { loads });
  return { elfClass: is64 ? 64 : 32, machine, type, entry, programHeaders };
}

/**
 * The notes of every PT_NOTE segment, at most MAX_ELF_NOTES; each `desc` is a view into `image`
 * (PT_NOTE segments may all cover the same bytes: nothing is copied per note). Malformed notes
 * are a bad kernel.
 */
export function elfNotes(image: Uint8Array, elf: ElfImage): ElfNote[] {
  const notes: ElfNote[] = [];
  const dv = leView(image);
  for (const ph of elf.programHeaders) {
    if (ph.type !== PT_NOTE) continue;
    // Notes are padded to 4 bytes, or 8 when the segment says so (gABI).
    const pad = ph.align === 8 ? 8 : 4;
    const end = ph.offset + ph.filesz;
    let o = ph.offset;
    while (o + 12 <= end) {
      const namesz = dv.getUint32(o, true);
      const descsz = dv.getUint32(o + 4, true);
      const type = dv.getUint32(o + 8, true);
      const nameOff = o + 12;
      const descOff = nameOff + roundUp(namesz, pad);
      const next = descOff + roundUp(descsz, pad);
      if (descOff + descsz > end) throw bad(`ELF note at ${hex(o)} (namesz ${namesz}, descsz ${descsz}) overruns its PT_NOTE segment ending at ${hex(end)}`);
      if (notes.length === MAX_ELF_NOTES) throw bad(`ELF has more than ${MAX_ELF_NOTES} notes`);
      const nameBytes = image.subarray(nameOff, nameOff + namesz);
      const nul = nameBytes.indexOf(0);
      const name = new TextDecoder('latin1').decode(nul >= 0 ? nameBytes.subarray(0, nul) : nameBytes);
      notes.push({ name, type, desc: image.subarray(descOff, descOff + descsz) });
      o = next;
    }
  }
  return notes;
}

export interface ElfSection {
  name: string;
  type: number;
  /** File offset of the section's bytes (meaningless for SHT_NOBITS). */
  offset: number;
  /** Bytes in the file (0 for SHT_NOBITS, whose sh_size is memory only). */
  size: number;
}

export interface ElfSections {
  elfClass: 32 | 64;
  /** e_type: ET_REL for a kernel module, ET_EXEC for a kernel. */
  type: number;
  machine: number;
  sections: ElfSection[];
}

/**
 * The section headers of an x86 ELF file of any type, each checked to lie inside the file, with
 * names from the section-name string table. A file with no section headers has none. Pure; work is
 * bounded by the file (e_shnum < 0xff00 entries of e_shentsize bytes, all inside it).
 */
export function parseElfSections(image: Uint8Array): ElfSections {
  const is64 = checkIdent(image);
  const dv = leView(image);
  const type = dv.getUint16(16, true);
  const machine = dv.getUint16(18, true);
  const shoff = is64 ? readU64(dv, 0x28, 'e_shoff') : dv.getUint32(0x20, true);
  const shentsize = dv.getUint16(is64 ? 0x3a : 0x2e, true);
  const shnum = dv.getUint16(is64 ? 0x3c : 0x30, true);
  const shstrndx = dv.getUint16(is64 ? 0x3e : 0x32, true);
  const elfClass = is64 ? 64 : 32;
  if (shoff === 0 || shnum === 0) {
    if (shoff !== 0) throw bad(`ELF e_shnum 0 with e_shoff ${hex(shoff)} (extended section numbering) is not supported`);
    return { elfClass, type, machine, sections: [] };
  }
  const expected = is64 ? 64 : 40;
  if (shentsize !== expected) throw bad(`ELF e_shentsize ${shentsize} is not ${expected}`, { shentsize });
  if (shnum >= SHN_LORESERVE) throw bad(`ELF e_shnum ${hex(shnum)} is a reserved value`, { shnum });
  if (shoff + shnum * shentsize > image.length) {
    throw bad(`ELF truncated: section headers at ${hex(shoff)} (${shnum} x ${shentsize}) end beyond the ${image.length}-byte file`, { shoff, shnum });
  }
  if (shstrndx === SHN_XINDEX || shstrndx >= shnum) throw bad(`ELF e_shstrndx ${shstrndx} names no section (e_shnum ${shnum})`, { shstrndx });
  const raw: { nameOffset: number; type: number; offset: number; size: number }[] = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    const stype = dv.getUint32(o + 4, true);
    const offset = is64 ? readU64(dv, o + 0x18, `section ${i} sh_offset`) : dv.getUint32(o + 0x10, true);
    const memSize = is64 ? readU64(dv, o + 0x20, `section ${i} sh_size`) : dv.getUint32(o + 0x14, true);
    const size = stype === SHT_NOBITS ? 0 : memSize;
    if (offset + size > image.length) {
      throw bad(`ELF truncated: section ${i} needs file bytes ${hex(offset)}..${hex(offset + size)}, the file has ${hex(image.length)}`, { index: i, offset, size });
    }
    raw.push({ nameOffset: dv.getUint32(o, true), type: stype, offset, size });
  }
  const strtab = raw[shstrndx]!;
  const latin1 = new TextDecoder('latin1');
  const sections = raw.map((s, i) => {
    if (s.nameOffset >= strtab.size) throw bad(`ELF section ${i}: name offset ${hex(s.nameOffset)} is outside the ${strtab.size}-byte section-name table`);
    const start = strtab.offset + s.nameOffset;
    const end = image.subarray(start, strtab.offset + strtab.size).indexOf(0);
    if (end < 0) throw bad(`ELF section ${i}: its name is not NUL-terminated inside the section-name table`);
    return { name: latin1.decode(image.subarray(start, start + end)), type: s.type, offset: s.offset, size: s.size };
  });
  return { elfClass, type, machine, sections };
}

function roundUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Translates e_entry to a physical address: through the PT_LOAD that contains it as a virtual address, if any. */
export function elfPhysicalEntry(elf: ElfImage): number {
  const loads = elf.programHeaders.filter((p) => p.type === PT_LOAD);
  const e = elf.entry;
  if (loads.some((p) => e >= BigInt(p.paddr) && e < BigInt(p.paddr + p.memsz))) return Number(e);
  const seg = loads.find((p) => e >= p.vaddr && e < p.vaddr + BigInt(p.memsz));
  if (seg) return Number(e - seg.vaddr) + seg.paddr;
  throw bad(`ELF entry ${hex(elf.entry)} lies in no PT_LOAD segment`, { entry: elf.entry });
}

export interface ElfLoadOptions {
  /** Segments may not start below this address (default 1 MiB: the low megabyte is the board's). */
  minGpa?: number;
  /** Areas the board fills (boot data, tables): no segment may overlap them. */
  reserved?: readonly ReservedArea[];
}

export interface ElfKernel {
  elf: ElfImage;
  segments: LoadedSegment[];
  /** e_entry as a physical address. */
  entry: number;
  /** End (exclusive) of the highest segment. */
  end: number;
  notes: ElfNote[];
}

/** Copies every PT_LOAD segment to p_paddr (zeroing p_memsz beyond p_filesz) and returns the result record. */
export function loadElf(mem: GuestMemoryWriter, image: Uint8Array, options: ElfLoadOptions = {}): ElfKernel {
  const elf = parseElf(image);
  const minGpa = options.minGpa ?? 0x100000;
  const loads = elf.programHeaders.filter((p) => p.type === PT_LOAD && p.memsz > 0);
  for (const [i, p] of loads.entries()) {
    const what = `ELF segment ${i} (p_paddr ${hex(p.paddr)}, p_memsz ${hex(p.memsz)})`;
    checkNotReserved(options.reserved ?? [], p.paddr, p.memsz, what);
    if (p.paddr < minGpa) throw bad(`ELF segment at p_paddr ${hex(p.paddr)} is below ${hex(minGpa)}`, { paddr: p.paddr });
    checkRamRange(mem, p.paddr, p.memsz, what);
  }
  // Overlaps, in address order: each segment against the one before it.
  const sorted = [...loads].sort((a, b) => a.paddr - b.paddr);
  for (let i = 1; i < sorted.length; i++) {
    const q = sorted[i - 1]!;
    const p = sorted[i]!;
    if (p.paddr < q.paddr + q.memsz) throw bad(`ELF segments at ${hex(q.paddr)}+${hex(q.memsz)} and ${hex(p.paddr)}+${hex(p.memsz)} overlap`);
  }
  const entry = elfPhysicalEntry(elf);
  const segments: LoadedSegment[] = [];
  for (const p of loads) {
    mem.write(p.paddr, image.subarray(p.offset, p.offset + p.filesz));
    zeroFill(mem, p.paddr + p.filesz, p.memsz - p.filesz);
    segments.push({ gpa: p.paddr, fileSize: p.filesz, memSize: p.memsz });
  }
  return { elf, segments, entry, end: segmentsSpan(segments).end, notes: elfNotes(image, elf) };
}
