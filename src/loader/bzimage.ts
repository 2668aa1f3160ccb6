/**
 * The Linux x86 boot protocol's bzImage: parse and validate the setup header at 0x1f1, then copy
 * the protected-mode kernel into guest RAM and say where to enter it (the 64-bit entry point).
 * Facts from the kernel's Documentation/arch/x86/boot.rst and arch/x86/include/uapi/asm/bootparam.h.
 */
import { TsvmmError } from '../common/errors.js';
import { checkNotReserved, checkRamRange, type GuestMemoryWriter, type ReservedArea } from './guest-memory.js';
import { alignUp, hex, leView } from '../common/bits.js';
import type { EntryPoint, LoadedSegment } from './load-result.js';
import { readU64 } from './u64-fields.js';

/** Offsets of setup header fields in the image (and in boot_params: the header sits at the same offset). */
export const HDR = {
  SETUP_SECTS: 0x1f1, // u8: size of the real-mode setup in 512-byte sectors; 0 means 4
  ROOT_FLAGS: 0x1f2, // u16
  SYSSIZE: 0x1f4, // u32: protected-mode size in 16-byte paragraphs (2.04+)
  RAM_SIZE: 0x1f8, // u16: obsolete
  VID_MODE: 0x1fa, // u16: video mode; 0xffff = normal
  ROOT_DEV: 0x1fc, // u16
  BOOT_FLAG: 0x1fe, // u16: 0xaa55
  JUMP: 0x200, // u16: short jmp; its displacement byte (0x201) gives the header's end
  HEADER: 0x202, // u32: "HdrS"
  VERSION: 0x206, // u16: boot protocol version, major << 8 | minor
  REALMODE_SWTCH: 0x208, // u32
  START_SYS_SEG: 0x20c, // u16
  KERNEL_VERSION: 0x20e, // u16: pointer to the version string, minus 0x200
  TYPE_OF_LOADER: 0x210, // u8: written by the loader
  LOADFLAGS: 0x211, // u8
  SETUP_MOVE_SIZE: 0x212, // u16
  CODE32_START: 0x214, // u32: 32-bit entry (the default load address, 0x100000)
  RAMDISK_IMAGE: 0x218, // u32: written by the loader
  RAMDISK_SIZE: 0x21c, // u32: written by the loader
  BOOTSECT_KLUDGE: 0x220, // u32
  HEAP_END_PTR: 0x224, // u16 (2.01+)
  EXT_LOADER_VER: 0x226, // u8 (2.02+)
  EXT_LOADER_TYPE: 0x227, // u8 (2.02+)
  CMD_LINE_PTR: 0x228, // u32 (2.02+)
  INITRD_ADDR_MAX: 0x22c, // u32: highest byte address the initrd may occupy (2.03+)
  KERNEL_ALIGNMENT: 0x230, // u32 (2.05+)
  RELOCATABLE_KERNEL: 0x234, // u8 (2.05+)
  MIN_ALIGNMENT: 0x235, // u8: log2 of the minimum alignment (2.10+)
  XLOADFLAGS: 0x236, // u16 (2.12+)
  CMDLINE_SIZE: 0x238, // u32: maximum command line length without the NUL (2.06+)
  HARDWARE_SUBARCH: 0x23c, // u32 (2.07+)
  HARDWARE_SUBARCH_DATA: 0x240, // u64 (2.07+)
  PAYLOAD_OFFSET: 0x248, // u32: compressed payload, from the start of the protected-mode code (2.08+)
  PAYLOAD_LENGTH: 0x24c, // u32 (2.08+)
  SETUP_DATA: 0x250, // u64 (2.09+)
  PREF_ADDRESS: 0x258, // u64 (2.10+)
  INIT_SIZE: 0x260, // u32: linear memory needed from the runtime start address (2.10+)
  HANDOVER_OFFSET: 0x264, // u32 (2.11+)
  KERNEL_INFO_OFFSET: 0x268, // u32 (2.15+)
} as const;

/** Where the setup header starts; it ends at 0x202 + the byte at 0x201. */
export const SETUP_HEADER_START = 0x1f1;
/** The setup header may not grow into boot_params' next field (edd_mbr_sig_buffer). */
export const SETUP_HEADER_LIMIT = 0x290;

export const BOOT_FLAG_MAGIC = 0xaa55;
/** "HdrS" read as a little-endian u32. */
export const HDRS_MAGIC = 0x53726448;

/** loadflags bits. */
export const LOADED_HIGH = 1 << 0; // protected-mode code loads at 0x100000 (a bzImage)
export const KASLR_FLAG = 1 << 1; // set by the kernel itself
export const QUIET_FLAG = 1 << 5; // loader: suppress early messages
export const KEEP_SEGMENTS = 1 << 6; // obsolete
export const CAN_USE_HEAP = 1 << 7; // loader: heap_end_ptr is valid

/** xloadflags bits. */
export const XLF_KERNEL_64 = 1 << 0; // has the 64-bit entry at load address + 0x200
export const XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1;
export const XLF_EFI_HANDOVER_32 = 1 << 2;
export const XLF_EFI_HANDOVER_64 = 1 << 3;
export const XLF_EFI_KEXEC = 1 << 4;

/** The lowest protocol tsvmm loads (cmdline_size exists from 2.06), and the one with the 64-bit entry. */
export const MIN_PROTOCOL = 0x0206;
export const PROTOCOL_64BIT_ENTRY = 0x020c;
/** The classic load address of a bzImage's protected-mode code. */
export const BZIMAGE_LOAD_ADDRESS = 0x100000;
/** The 64-bit entry is this far into the protected-mode code. */
export const ENTRY_64_OFFSET = 0x200;
/** initrd_addr_max before protocol 2.03 (not reachable with MIN_PROTOCOL, kept for completeness). */
export const DEFAULT_INITRD_ADDR_MAX = 0x37ffffff;

/** The setup header fields, decoded. Fields a protocol version lacks read as their documented default. */
export interface SetupHeader {
  /** Boot protocol version, major << 8 | minor (2.15 = 0x020f). */
  version: number;
  setupSects: number;
  syssize: number;
  vidMode: number;
  loadflags: number;
  code32Start: number;
  kernelVersionString: string | undefined;
  initrdAddrMax: number;
  kernelAlignment: number;
  relocatable: boolean;
  minAlignment: number;
  xloadflags: number;
  cmdlineSize: number;
  payloadOffset: number;
  payloadLength: number;
  prefAddress: number;
  initSize: number;
  handoverOffset: number;
  kernelInfoOffset: number;
}

export interface ParsedBzImage {
  header: SetupHeader;
  /** The raw setup header (image bytes 0x1f1 up to the header's end), to copy into boot_params. */
  setupHeaderBytes: Uint8Array;
  /** The real-mode setup code size in bytes (sectors including the boot sector). */
  setupSize: number;
  /** The protected-mode kernel: image bytes from `setupSize` on. */
  kernel: Uint8Array;
  /** The compressed payload inside `kernel` (protocol 2.08+), or undefined. */
  payload: Uint8Array | undefined;
}

export function versionString(v: number): string {
  return `${v >> 8}.${(v & 0xff).toString().padStart(2, '0')}`;
}

function bad(message: string, detail?: Record<string, unknown>): TsvmmError {
  return new TsvmmError('TSVMM_BAD_KERNEL', message, detail);
}

/** Parses and validates a bzImage's setup header (protocol 2.06 or later). Pure: no memory is touched. */
export function parseBzImage(image: Uint8Array): ParsedBzImage {
  if (image.length < HDR.VERSION + 2) {
    throw bad(`bzImage truncated: ${image.length} bytes, the setup header needs at least ${HDR.VERSION + 2}`, { length: image.length });
  }
  const dv = leView(image);
  const bootFlag = dv.getUint16(HDR.BOOT_FLAG, true);
  if (bootFlag !== BOOT_FLAG_MAGIC) throw bad(`not a bzImage: boot_flag at 0x1fe is ${hex(bootFlag)}, expected 0xaa55`, { bootFlag });
  const magic = dv.getUint32(HDR.HEADER, true);
  if (magic !== HDRS_MAGIC) throw bad(`not a bzImage: header magic at 0x202 is ${hex(magic)}, expected 0x53726448 ("HdrS")`, { magic });
  const version = dv.getUint16(HDR.VERSION, true);
  if (version < MIN_PROTOCOL) {
    throw bad(`boot protocol version ${versionString(version)} (${hex(version)}) is too old: tsvmm needs ${versionString(MIN_PROTOCOL)} or later`, { version });
  }
  const headerEnd = 0x202 + image[0x201]!;
  if (headerEnd > SETUP_HEADER_LIMIT) {
    throw bad(`setup header end ${hex(headerEnd)} (from the jump at 0x200) is beyond boot_params' header area (${hex(SETUP_HEADER_LIMIT)})`, { headerEnd });
  }
  if (image.length < headerEnd) {
    throw bad(`bzImage truncated: ${image.length} bytes, the setup header ends at ${hex(headerEnd)}`, { length: image.length, headerEnd });
  }
  /** Reads a field when the header is long enough to hold it, else the default. */
  const has = (off: number, size: number): boolean => off + size <= headerEnd;
  const u8 = (off: number, dflt: number): number => (has(off, 1) ? dv.getUint8(off) : dflt);
  const u16 = (off: number, dflt: number): number => (has(off, 2) ? dv.getUint16(off, true) : dflt);
  const u32 = (off: number, dflt: number): number => (has(off, 4) ? dv.getUint32(off, true) : dflt);
  const atLeast = (v: number): boolean => version >= v;

  const setupSectsRaw = dv.getUint8(HDR.SETUP_SECTS);
  const setupSects = setupSectsRaw === 0 ? 4 : setupSectsRaw;
  const kernelVersionPtr = u16(HDR.KERNEL_VERSION, 0);
  const header: SetupHeader = {
    version,
    setupSects,
    syssize: u32(HDR.SYSSIZE, 0),
    vidMode: u16(HDR.VID_MODE, 0xffff),
    loadflags: u8(HDR.LOADFLAGS, 0),
    code32Start: u32(HDR.CODE32_START, BZIMAGE_LOAD_ADDRESS),
    kernelVersionString: kernelVersionPtr ? readCString(image, kernelVersionPtr + 0x200, 256) : undefined,
    initrdAddrMax: atLeast(0x0203) ? u32(HDR.INITRD_ADDR_MAX, DEFAULT_INITRD_ADDR_MAX) : DEFAULT_INITRD_ADDR_MAX,
    kernelAlignment: atLeast(0x0205) ? u32(HDR.KERNEL_ALIGNMENT, 0) : 0,
    relocatable: atLeast(0x0205) ? u8(HDR.RELOCATABLE_KERNEL, 0) !== 0 : false,
    minAlignment: atLeast(0x020a) ? u8(HDR.MIN_ALIGNMENT, 0) : 0,
    xloadflags: atLeast(0x020c) ? u16(HDR.XLOADFLAGS, 0) : 0,
    cmdlineSize: u32(HDR.CMDLINE_SIZE, 255),
    payloadOffset: atLeast(0x0208) ? u32(HDR.PAYLOAD_OFFSET, 0) : 0,
    payloadLength: atLeast(0x0208) ? u32(HDR.PAYLOAD_LENGTH, 0) : 0,
    prefAddress: atLeast(0x020a) && has(HDR.PREF_ADDRESS, 8) ? readU64(dv, HDR.PREF_ADDRESS, 'pref_address') : BZIMAGE_LOAD_ADDRESS,
    initSize: atLeast(0x020a) ? u32(HDR.INIT_SIZE, 0) : 0,
    handoverOffset: atLeast(0x020b) ? u32(HDR.HANDOVER_OFFSET, 0) : 0,
    kernelInfoOffset: atLeast(0x020f) ? u32(HDR.KERNEL_INFO_OFFSET, 0) : 0,
  };
  if (!(header.loadflags & LOADED_HIGH)) {
    throw bad(`loadflags ${hex(header.loadflags)} lacks LOADED_HIGH: a zImage (loaded at 0x10000) is not supported`, { loadflags: header.loadflags });
  }
  if (header.kernelAlignment !== 0 && (header.kernelAlignment & (header.kernelAlignment - 1)) !== 0) {
    throw bad(`kernel_alignment ${hex(header.kernelAlignment)} is not a power of two`, { kernelAlignment: header.kernelAlignment });
  }

  const setupSize = (setupSects + 1) * 512;
  if (image.length <= setupSize) {
    throw bad(`bzImage truncated: ${image.length} bytes, but setup_sects ${setupSectsRaw} puts the protected-mode kernel at ${hex(setupSize)}`, {
      length: image.length,
      setupSects: setupSectsRaw,
    });
  }
  const kernel = image.subarray(setupSize);
  const sysBytes = header.syssize * 16;
  if (sysBytes > kernel.length) {
    throw bad(`bzImage truncated: syssize ${hex(header.syssize)} declares ${sysBytes} bytes of protected-mode kernel, the image holds ${kernel.length}`, {
      syssize: header.syssize,
      available: kernel.length,
    });
  }
  let payload: Uint8Array | undefined;
  if (header.payloadLength !== 0) {
    if (header.payloadOffset + header.payloadLength > kernel.length) {
      throw bad(
        `bzImage truncated: payload_offset ${hex(header.payloadOffset)} + payload_length ${hex(header.payloadLength)} exceeds the ${kernel.length}-byte protected-mode kernel`,
        { payloadOffset: header.payloadOffset, payloadLength: header.payloadLength },
      );
    }
    payload = kernel.subarray(header.payloadOffset, header.payloadOffset + header.payloadLength);
  }
  return { header, setupHeaderBytes: image.slice(SETUP_HEADER_START, headerEnd), setupSize, kernel, payload };
}

function readCString(image: Uint8Array, offset: number, max: number): string | undefined {
  if (offset >= image.length) return undefined;
  let end = offset;
  while (end < image.length && end - offset < max && image[end] !== 0) end++;
  return new TextDecoder('latin1').decode(image.subarray(offset, end));
}

/** Where to put the protected-mode kernel. */
export type BzImagePlacement =
  /** 0x100000, the classic address; every bzImage accepts it (the kernel moves itself where it runs). */
  | 'low'
  /** pref_address (2.10+): where the kernel runs without moving itself; 0x100000 on older protocols. */
  | 'preferred'
  /** An explicit address: 0x100000, or for a relocatable kernel any multiple of kernel_alignment. */
  | number;

export interface BzImageLoadOptions {
  placement?: BzImagePlacement;
  /** Areas the board fills (boot data, tables): neither the image nor its runtime area may cover them. */
  reserved?: readonly ReservedArea[];
}

export interface BzImageKernel extends ParsedBzImage {
  /** Where the protected-mode kernel was copied. */
  loadAddress: number;
  segments: LoadedSegment[];
  /** The 64-bit entry: load address + 0x200, long mode, rsi = boot_params (the caller fills regs.rsi). */
  entry: EntryPoint;
  /**
   * Where the kernel runs after it moves itself (the aligned load address, never below pref_address
   * for a relocatable kernel; pref_address otherwise), and the end of the init_size bytes it needs
   * from there. Nothing else (initrd, boot data) may be placed in [loadAddress, runtimeEnd).
   */
  runtimeStart: number;
  runtimeEnd: number;
}

/** Resolves a placement to a load address, or throws TSVMM_BAD_ARGUMENT. */
export function bzImageLoadAddress(header: SetupHeader, placement: BzImagePlacement = 'low'): number {
  if (placement === 'low') return BZIMAGE_LOAD_ADDRESS;
  if (placement === 'preferred') return header.version >= 0x020a ? header.prefAddress : BZIMAGE_LOAD_ADDRESS;
  if (placement === BZIMAGE_LOAD_ADDRESS) return placement;
  const align = header.kernelAlignment || 1;
  if (!header.relocatable) {
    throw new TsvmmError('TSVMM_BAD_ARGUMENT', `kernel is not relocatable: it loads at 0x100000, not ${hex(placement)}`, { placement });
  }
  if (!Number.isSafeInteger(placement) || placement < BZIMAGE_LOAD_ADDRESS || placement % align !== 0) {
    throw new TsvmmError('TSVMM_BAD_ARGUMENT', `load address ${hex(placement)} is below 1 MiB or not a multiple of kernel_alignment ${hex(align)}`, { placement });
  }
  return placement;
}

/**
 * Loads a bzImage for the 64-bit boot protocol: validates it (protocol 2.12+ with XLF_KERNEL_64),
 * copies the protected-mode kernel and returns the result record. boot_params is built separately
 * (boot-params.ts) from `setupHeaderBytes`.
 */
export function loadBzImage(mem: GuestMemoryWriter, image: Uint8Array, options: BzImageLoadOptions = {}): BzImageKernel {
  const parsed = parseBzImage(image);
  const { header } = parsed;
  if (header.version < PROTOCOL_64BIT_ENTRY) {
    throw bad(`boot protocol ${versionString(header.version)} (${hex(header.version)}) has no 64-bit entry (needs ${versionString(PROTOCOL_64BIT_ENTRY)})`, {
      version: header.version,
    });
  }
  if (!(header.xloadflags & XLF_KERNEL_64)) {
    throw bad(`xloadflags ${hex(header.xloadflags)} lacks XLF_KERNEL_64: the kernel has no 64-bit entry`, { xloadflags: header.xloadflags });
  }
  const loadAddress = bzImageLoadAddress(header, options.placement);
  const align = header.kernelAlignment || 1;
  const runtimeStart = header.relocatable ? Math.max(alignUp(loadAddress, align), header.prefAddress) : header.prefAddress;
  const runtimeEnd = Math.max(loadAddress + parsed.kernel.length, runtimeStart + header.initSize);
  const reserved = options.reserved ?? [];
  checkNotReserved(reserved, loadAddress, parsed.kernel.length, `the protected-mode kernel at ${hex(loadAddress)}..${hex(loadAddress + parsed.kernel.length)}`);
  checkNotReserved(reserved, runtimeStart, header.initSize, `the kernel's runtime area ${hex(runtimeStart)}..${hex(runtimeStart + header.initSize)} (pref_address, init_size)`);
  checkRamRange(mem, loadAddress, runtimeEnd - loadAddress, `the kernel (loaded at ${hex(loadAddress)}, needing init_size ${hex(header.initSize)} from ${hex(runtimeStart)})`);
  mem.write(loadAddress, parsed.kernel);
  return {
    ...parsed,
    loadAddress,
    segments: [{ gpa: loadAddress, fileSize: parsed.kernel.length, memSize: parsed.kernel.length }],
    entry: { mode: 'long64', ip: loadAddress + ENTRY_64_OFFSET, regs: {} },
    runtimeStart,
    runtimeEnd,
  };
}
