/**
 * An uncompressed 64-bit Linux kernel (vmlinux ELF): loaded at its physical addresses, entered
 * either at e_entry in long mode with boot_params (the 64-bit boot protocol, with a synthesized
 * setup header) or at its PVH entry in 32-bit protected mode with hvm_start_info.
 */
import { gunzipSync } from 'node:zlib';
import { TsvmmError } from '../common/errors.js';
import { parseBzImage } from './bzimage.js';
import { EM_X86_64, isElf, loadElf, type ElfKernel, type ElfLoadOptions } from './elf.js';
import type { GuestMemoryWriter } from './guest-memory.js';
import type { EntryPoint } from './load-result.js';
import { KernelCache } from './kernel-cache.js';
import { pvhEntryFromNotes } from './pvh.js';
import { isXz, XZ_DECODER_ID, xzDecompress } from './xz.js';

export interface VmlinuxKernel extends ElfKernel {
  /** e_entry (startup_64) in long mode; the caller sets regs.rsi to boot_params. */
  entry64: EntryPoint;
  /** The XEN_ELFNOTE_PHYS32_ENTRY address, when the kernel was built with CONFIG_PVH. */
  pvhEntry: number | undefined;
}

export function loadVmlinux(mem: GuestMemoryWriter, image: Uint8Array, options: ElfLoadOptions = {}): VmlinuxKernel {
  const k = loadElf(mem, image, options);
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
 *
 * The payload is untrusted: its last 4 bytes declare the inflated size (mkpiggy appends it after
 * an xz stream; gzip's ISIZE is there already). A payload that declares more than `maxBytes`
 * (the guest RAM the kernel must fit in) is refused before inflating, and inflating stops with
 * TSVMM_LIMIT as soon as the output passes the declared size: the host holds at most that much.
 *
 * With a `cache`, a payload inflated before is read back from it (verified, and no longer than
 * the declared size) instead of inflated again, and a payload inflated now is stored in it.
 */
export function vmlinuxFromBzImage(image: Uint8Array, maxBytes: number, options: { cache?: KernelCache } = {}): Uint8Array {
  const { payload, header } = parseBzImage(image);
  if (!payload || payload.length < 8) {
    throw new TsvmmError('TSVMM_UNSUPPORTED', `bzImage (protocol ${header.version.toString(16)}) declares no payload (payload_length ${header.payloadLength})`);
  }
  const declared = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(payload.length - 4, true);
  if (declared > maxBytes) {
    throw new TsvmmError('TSVMM_LIMIT', `bzImage payload declares ${declared} bytes inflated, more than the ${maxBytes} bytes of guest RAM`, { declared, maxBytes });
  }
  const { cache } = options;
  const decoder = payloadDecoder(payload);
  const key = cache && decoder && KernelCache.key(decoder, payload);
  const cached = key === undefined ? undefined : cache!.lookup(key, declared);
  if (cached && isElf(cached)) return cached;
  const elf = inflatePayload(payload, declared);
  if (!isElf(elf)) throw new TsvmmError('TSVMM_BAD_KERNEL', 'bzImage payload decompressed to something that is not an ELF file');
  if (key !== undefined) cache!.store(key, elf);
  return elf;
}

/** Which decoder (and which version of it) inflates this payload: part of its cache key. */
function payloadDecoder(payload: Uint8Array): string | undefined {
  if (isXz(payload)) return XZ_DECODER_ID;
  if (isGzip(payload)) return `zlib ${process.versions.zlib}`;
  return undefined;
}

const isGzip = (data: Uint8Array): boolean => data[0] === 0x1f && data[1] === 0x8b;

/** Inflates an xz or gzip bzImage payload into at most `maxBytes`, or throws (TSVMM_LIMIT beyond it). */
export function inflatePayload(payload: Uint8Array, maxBytes: number): Uint8Array {
  const beyond = (): TsvmmError =>
    new TsvmmError('TSVMM_LIMIT', `bzImage payload inflates beyond ${maxBytes} bytes (the size it declares, within guest RAM)`, { maxBytes });
  if (isXz(payload)) {
    try {
      return xzDecompress(payload, { maxBytes, sizeHint: maxBytes });
    } catch (e) {
      throw e instanceof TsvmmError && e.code === 'TSVMM_LIMIT' ? beyond() : e;
    }
  }
  if (isGzip(payload)) {
    try {
      // zlib stops and throws as soon as its output passes maxOutputLength (at least 1).
      const out = gunzipSync(payload, { maxOutputLength: Math.max(maxBytes, 1) });
      if (out.length > maxBytes) throw beyond();
      return new Uint8Array(out.buffer, out.byteOffset, out.length);
    } catch (e) {
      if (e instanceof TsvmmError) throw e;
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw beyond();
      throw new TsvmmError('TSVMM_BAD_KERNEL', `bzImage payload: gzip: ${(e as Error).message}`);
    }
  }
  const known = OTHER_COMPRESSIONS.find((c) => c.magic.every((b, i) => payload[i] === b));
  const magic = [...payload.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new TsvmmError('TSVMM_UNSUPPORTED', `bzImage payload is ${known ? known.name : 'of unknown format'} (magic ${magic}): only xz and gzip are decoded`);
}
