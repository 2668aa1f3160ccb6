/**
 * An uncompressed 64-bit Linux kernel (vmlinux ELF): loaded at its physical addresses, entered
 * either at e_entry in long mode with boot_params (the 64-bit boot protocol, with a synthesized
 * setup header) or at its PVH entry in 32-bit protected mode with hvm_start_info.
 */
import { gunzipSync } from 'node:zlib';
import { TsvmmError } from '../common/errors.js';
import { parseBzImage } from './bzimage.js';
import { EM_X86_64, isElf, loadElf, type ElfKernel } from './elf.js';
import type { GuestMemoryWriter } from './guest-memory.js';
import type { EntryPoint } from './load-result.js';
import { pvhEntryFromNotes } from './pvh.js';
import { isXz, xzDecompress } from './xz.js';

export interface VmlinuxKernel extends ElfKernel {
  /** e_entry (startup_64) in long mode; the caller sets regs.rsi to boot_params. */
  entry64: EntryPoint;
  /** The XEN_ELFNOTE_PHYS32_ENTRY address, when the kernel was built with CONFIG_PVH. */
  pvhEntry: number | undefined;
}

export function loadVmlinux(mem: GuestMemoryWriter, image: Uint8Array): VmlinuxKernel {
  const k = loadElf(mem, image);
  if (k.elf.elfClass !== 64 || k.elf.machine !== EM_X86_64) {
    throw new TsvmmError('TSVMM_BAD_KERNEL', `vmlinux is ELF${k.elf.elfClass} machine ${k.elf.machine}, expected ELF64 x86-64 (${EM_X86_64})`);
  }
  return { ...k, entry64: { mode: 'long64', ip: k.entry, regs: {} }, pvhEntry: pvhEntryFromNotes(k.notes) };
}

/** Payload compressions Linux offers, by magic, for a clear error on the ones not decoded here. */
const OTHER_COMPRESSIONS: readonly { name: string; magic: readonly number[] }[] = [
  { name: 'zstd', magic: [0x28, 0xb5, 0x2f, 0xfd] },
  { name: 'lz4', magic: [0x02, 0x21, 0x4c, 0x18] },
  { name: 'bzip2', magic: [0x42, 0x5a, 0x68] },
  { name: 'lzo', magic: [0x89, 0x4c, 0x5a, 0x4f] },
  { name: 'lzma', magic: [0x5d, 0x00, 0x00] },
];

/**
 * The vmlinux ELF inside a bzImage: its payload (protocol 2.08+) decompressed, XZ (Debian's
 * choice) or gzip. The result may carry trailing relocation data after the ELF; ELF parsing
 * ignores it. Lets a board enter the kernel through PVH and skip the in-guest decompressor.
 */
export function vmlinuxFromBzImage(image: Uint8Array): Uint8Array {
  const { payload, header } = parseBzImage(image);
  if (!payload || payload.length < 8) {
    throw new TsvmmError('TSVMM_UNSUPPORTED', `bzImage (protocol ${header.version.toString(16)}) declares no payload (payload_length ${header.payloadLength})`);
  }
  let elf: Uint8Array;
  if (isXz(payload)) {
    // mkpiggy's payload is the compressed stream plus the decompressed size (u32 LE).
    const size = new DataView(payload.buffer, payload.byteOffset).getUint32(payload.length - 4, true);
    elf = xzDecompress(payload, size);
  } else if (payload[0] === 0x1f && payload[1] === 0x8b) {
    elf = new Uint8Array(gunzipSync(payload));
  } else {
    const known = OTHER_COMPRESSIONS.find((c) => c.magic.every((b, i) => payload[i] === b));
    const magic = [...payload.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new TsvmmError('TSVMM_UNSUPPORTED', `bzImage payload is ${known ? known.name : 'of unknown format'} (magic ${magic}): only xz and gzip are decoded`);
  }
  if (!isElf(elf)) throw new TsvmmError('TSVMM_BAD_KERNEL', 'bzImage payload decompressed to something that is not an ELF file');
  return elf;
}
