/**
 * Crafted guest images for the tests of tsvmm's bounds on untrusted files: the smallest bzImage,
 * ELF and multiboot images that pass the loaders' format checks, with the fields an attacker
 * controls left to the test. Offsets are spelled out from the specifications (boot.rst, the gABI,
 * multiboot 0.6.96), independently of the loaders.
 */
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { crc32 } from '../../src/loader/xz.js';

export interface CraftedBzImage {
  /** The compressed payload (protocol 2.08+), placed after a 0x100-byte stub. */
  payload?: Uint8Array;
  cmdlineSize?: number;
  prefAddress?: number;
  relocatable?: boolean;
  initrdAddrMax?: number;
  initSize?: number;
}

/** A protocol 2.15 bzImage with a 64-bit entry: boot sector, 1 setup sector, protected-mode code. */
export function craftBzImage(o: CraftedBzImage = {}): Uint8Array {
  const payload = o.payload ?? new Uint8Array(0x200);
  const kernelSize = Math.ceil((0x100 + payload.length) / 16) * 16;
  const img = new Uint8Array(1024 + kernelSize);
  const dv = new DataView(img.buffer);
  img[0x1f1] = 1; // setup_sects
  dv.setUint32(0x1f4, kernelSize / 16, true); // syssize
  dv.setUint16(0x1fe, 0xaa55, true); // boot_flag
  img[0x200] = 0xeb;
  img[0x201] = 0x264 - 0x202; // the header ends after init_size
  dv.setUint32(0x202, 0x53726448, true); // "HdrS"
  dv.setUint16(0x206, 0x020f, true); // version 2.15
  img[0x211] = 0x01; // loadflags: LOADED_HIGH
  dv.setUint32(0x22c, o.initrdAddrMax ?? 0x7fffffff, true);
  dv.setUint32(0x230, 0x200000, true); // kernel_alignment
  img[0x234] = o.relocatable === false ? 0 : 1;
  dv.setUint16(0x236, 0x3, true); // xloadflags: XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
  dv.setUint32(0x238, o.cmdlineSize ?? 2047, true);
  dv.setUint32(0x248, 0x100, true); // payload_offset
  dv.setUint32(0x24c, payload.length, true); // payload_length
  dv.setBigUint64(0x258, BigInt(o.prefAddress ?? 0x1000000), true);
  dv.setUint32(0x260, o.initSize ?? 0x400000, true);
  img.set(payload, 1024 + 0x100);
  return img;
}

export interface CraftedSegment {
  type?: number;
  paddr: number;
  data: Uint8Array;
  memsz?: number;
  offset?: number;
  align?: number;
}

/**
 * An ELF64 x86-64 executable: header, program headers, then the segments' data in order (a
 * segment with `offset` points at that file offset instead and adds no data). A Xen
 * PHYS32_ENTRY note (PVH) is added when `pvhEntry` is given.
 */
export function craftElf64(segments: CraftedSegment[], entry: number, pvhEntry?: number): Uint8Array {
  const all = [...segments];
  if (pvhEntry !== undefined) {
    const note = new Uint8Array(24);
    const n = new DataView(note.buffer);
    n.setUint32(0, 4, true); // namesz "Xen\0"
    n.setUint32(4, 8, true); // descsz
    n.setUint32(8, 18, true); // XEN_ELFNOTE_PHYS32_ENTRY
    note.set([0x58, 0x65, 0x6e, 0], 12);
    n.setBigUint64(16, BigInt(pvhEntry), true);
    all.push({ type: 4, paddr: 0, data: note, memsz: 0, align: 4 });
  }
  let off = 64 + 56 * all.length;
  const offsets = all.map((s) => {
    if (s.offset !== undefined) return s.offset;
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
  dv.setBigUint64(24, BigInt(entry), true);
  dv.setBigUint64(32, 64n, true); // e_phoff
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, all.length, true);
  all.forEach((s, i) => {
    const p = 64 + 56 * i;
    dv.setUint32(p, s.type ?? 1, true); // PT_LOAD by default
    dv.setUint32(p + 4, 5, true);
    dv.setBigUint64(p + 8, BigInt(offsets[i]!), true);
    dv.setBigUint64(p + 16, BigInt(s.paddr), true);
    dv.setBigUint64(p + 24, BigInt(s.paddr), true);
    dv.setBigUint64(p + 32, BigInt(s.data.length), true);
    dv.setBigUint64(p + 40, BigInt(s.memsz ?? s.data.length), true);
    dv.setBigUint64(p + 48, BigInt(s.align ?? 0x1000), true);
    if (s.offset === undefined) img.set(s.data, offsets[i]!);
  });
  return img;
}

/** A multiboot a.out-kludge kernel of `size` bytes loaded at `loadAddr`, entered right after its header. */
export function craftMultiboot(loadAddr = 0x100000, size = 4096): Uint8Array {
  const img = new Uint8Array(size);
  const dv = new DataView(img.buffer);
  const flags = 0x10002; // address fields present, memory information required
  dv.setUint32(0, 0x1badb002, true);
  dv.setUint32(4, flags, true);
  dv.setUint32(8, -(0x1badb002 + flags) >>> 0, true);
  dv.setUint32(12, loadAddr, true); // header_addr
  dv.setUint32(16, loadAddr, true); // load_addr
  dv.setUint32(20, 0, true); // load_end_addr: the whole file
  dv.setUint32(24, 0, true); // bss_end_addr: no bss
  dv.setUint32(28, loadAddr + 32, true); // entry_addr
  img[32] = 0xf4; // hlt
  return img;
}

/** A gzip file of `copies` members of `memberBytes` zero bytes each: small on disk, huge inflated. */
export function gzipZeros(memberBytes: number, copies: number): Uint8Array {
  const member = gzipSync(new Uint8Array(memberBytes), { level: 9 });
  const out = new Uint8Array(member.length * copies);
  for (let i = 0; i < copies; i++) out.set(member, i * member.length);
  return out;
}

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/**
 * A valid .xz stream of `copies` identical blocks of `blockBytes` zero bytes each: the xz tool
 * compresses one block; its bytes are repeated and the index written for all of them (the .xz
 * file format specification, sections 2 and 4). Needs the xz tool.
 */
export function xzZeros(blockBytes: number, copies: number): Uint8Array {
  const one = new Uint8Array(execFileSync('xz', ['-c', '-T1', '-1', '--check=crc32'], { input: new Uint8Array(blockBytes), maxBuffer: 1 << 26 }));
  const footer = one.subarray(one.length - 12);
  const indexSize = (new DataView(footer.buffer, footer.byteOffset).getUint32(4, true) + 1) * 4;
  const block = one.subarray(12, one.length - 12 - indexSize);
  // The index's only record: unpadded size, uncompressed size (after the indicator and the count).
  const index = one.subarray(one.length - 12 - indexSize);
  let p = 2;
  const read = (): number => {
    let v = 0;
    for (let i = 0; ; i++) {
      const b = index[p++]!;
      v += (b & 0x7f) * 2 ** (7 * i);
      if (!(b & 0x80)) return v;
    }
  };
  const unpadded = read();
  const uncompressed = read();
  const records: number[] = [0x00, ...varint(copies)];
  for (let i = 0; i < copies; i++) records.push(...varint(unpadded), ...varint(uncompressed));
  while (records.length % 4 !== 0) records.push(0);
  const newIndex = new Uint8Array(records.length + 4);
  newIndex.set(records);
  new DataView(newIndex.buffer).setUint32(records.length, crc32(newIndex, 0, records.length), true);
  const newFooter = new Uint8Array(12);
  const fdv = new DataView(newFooter.buffer);
  fdv.setUint32(4, newIndex.length / 4 - 1, true); // backward size
  newFooter.set(one.subarray(6, 8), 8); // stream flags, as in the header
  newFooter.set([0x59, 0x5a], 10); // "YZ"
  fdv.setUint32(0, crc32(newFooter, 4, 10), true);
  const out = new Uint8Array(12 + block.length * copies + newIndex.length + 12);
  out.set(one.subarray(0, 12));
  for (let i = 0; i < copies; i++) out.set(block, 12 + i * block.length);
  out.set(newIndex, 12 + block.length * copies);
  out.set(newFooter, out.length - 12);
  return out;
}

/** A bzImage payload as mkpiggy sees it: the compressed stream, then the inflated size (u32 LE). */
export function withSizeTrailer(stream: Uint8Array, declared: number): Uint8Array {
  const out = new Uint8Array(stream.length + 4);
  out.set(stream);
  new DataView(out.buffer).setUint32(stream.length, declared >>> 0, true);
  return out;
}

export interface CraftedModule {
  /** .modinfo strings, e.g. ['name=a', 'depends=b,c', 'vermagic=6.1.0-1-amd64 SMP ']; undefined: no .modinfo. */
  modinfo?: string[];
  /** e_type (default 1, ET_REL) and e_machine (default 62, EM_X86_64). */
  type?: number;
  machine?: number;
}

/**
 * A Linux kernel module as far as its section headers go (gABI): an ELF64 relocatable file with
 * a null section, .modinfo (the NUL-terminated strings) and .shstrtab, headers at the end.
 */
export function craftModule(o: CraftedModule): Uint8Array {
  const enc = new TextEncoder();
  const modinfo = enc.encode((o.modinfo ?? []).map((s) => `${s}\0`).join(''));
  const names = enc.encode('\0.modinfo\0.shstrtab\0.text\0');
  const withInfo = o.modinfo !== undefined;
  const shnum = 3;
  const modinfoOff = 64;
  const namesOff = modinfoOff + modinfo.length;
  const shoff = Math.ceil((namesOff + names.length) / 8) * 8;
  const img = new Uint8Array(shoff + shnum * 64);
  const dv = new DataView(img.buffer);
  img.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]); // ELFCLASS64, little-endian, EV_CURRENT
  dv.setUint16(16, o.type ?? 1, true);
  dv.setUint16(18, o.machine ?? 62, true);
  dv.setUint32(20, 1, true); // e_version
  dv.setBigUint64(0x28, BigInt(shoff), true);
  dv.setUint16(0x34, 64, true); // e_ehsize
  dv.setUint16(0x3a, 64, true); // e_shentsize
  dv.setUint16(0x3c, shnum, true);
  dv.setUint16(0x3e, 2, true); // e_shstrndx
  img.set(modinfo, modinfoOff);
  img.set(names, namesOff);
  const section = (i: number, name: number, type: number, offset: number, size: number): void => {
    const s = shoff + i * 64;
    dv.setUint32(s, name, true);
    dv.setUint32(s + 4, type, true);
    dv.setBigUint64(s + 0x18, BigInt(offset), true);
    dv.setBigUint64(s + 0x20, BigInt(size), true);
  };
  // Without .modinfo the section is called .text (name offset 20).
  section(1, withInfo ? 1 : 20, 1, modinfoOff, modinfo.length); // SHT_PROGBITS
  section(2, 10, 3, namesOff, names.length); // SHT_STRTAB
  return img;
}
