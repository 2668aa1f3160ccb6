/**
 * From an image to an entry point: picks the loader by the image's format (bzImage, multiboot,
 * an ELF vmlinux with a PVH note, flat), loads it into RAM and writes the boot protocol's data
 * (boot_params, the command line, multiboot_info, hvm_start_info) at the layout's addresses.
 *
 * The image, the command line and the initrd are untrusted: what is written into a boot area
 * must fit in it (BOOT_AREA_BYTES), a command line must also fit the protocol's limit, and no
 * image may load over an area the board fills for its boot.
 */
import { TsvmmError, assert } from '../common/errors.js';
import { buildBootParams, DEFAULT_CMDLINE_SIZE, encodeCmdline, placeInitrd, type E820Entry } from '../loader/boot-params.js';
import { loadBzImage, HDRS_MAGIC, HDR } from '../loader/bzimage.js';
import { loadFlat } from '../loader/flat.js';
import type { GuestMemoryWriter, ReservedArea } from '../loader/guest-memory.js';
import { alignDown, hex } from '../common/bits.js';
import { PAGE_SIZE } from '../memory/page.js';
import type { EntryMode, EntryPoint } from '../loader/load-result.js';
import { isElf } from '../loader/elf.js';
import type { KernelCache } from '../loader/kernel-cache.js';
import { buildHvmStartInfo, findPvhEntry, pvhEntryPoint } from '../loader/pvh.js';
import { loadVmlinux, vmlinuxFromBzImage } from '../loader/vmlinux.js';
import { buildMultibootInfo, isMultiboot, loadMultiboot, loadMultibootModules, MULTIBOOT_BOOTLOADER_MAGIC } from '../loader/multiboot.js';
import type { MachineConfig } from './config.js';
import { BOOT, BOOT_AREA_BYTES, HIGH_RAM_START } from './layout.js';

const area = (what: string, gpa: number, size: number): ReservedArea => ({ what, gpa, size });

/** The boot areas, by what the board writes there. */
const AREA = {
  gdt: area('the GDT', BOOT.GDT, BOOT_AREA_BYTES.GDT),
  startInfo: area('hvm_start_info', BOOT.START_INFO, BOOT_AREA_BYTES.START_INFO),
  zeroPage: area('the zero page', BOOT.ZERO_PAGE, BOOT_AREA_BYTES.ZERO_PAGE),
  stack: area('the boot stack', alignDown(BOOT.STACK_TOP, PAGE_SIZE), BOOT_AREA_BYTES.STACK),
  pageTables: area('the page tables', BOOT.PML4, BOOT_AREA_BYTES.PAGE_TABLES),
  cmdline: area('the command line area', BOOT.CMDLINE, BOOT_AREA_BYTES.CMDLINE),
  multibootInfo: area('multiboot_info', BOOT.MULTIBOOT_INFO, BOOT_AREA_BYTES.MULTIBOOT_INFO),
  mpTable: area('the MP table', BOOT.MPTABLE, BOOT_AREA_BYTES.MPTABLE),
  /** The firmware's tables (ACPI, the MP configuration table: TABLE_AREA), to 1 MiB. */
  biosArea: area('the ACPI tables and BIOS area', BOOT.ACPI, HIGH_RAM_START - BOOT.ACPI),
} as const;

/** Where the board writes the firmware's tables (each within the areas above). */
export const TABLE_AREA = {
  /** The MP floating pointer, where guests look for it. */
  mpPointer: AREA.mpTable,
  mpConfig: area('the MP configuration table', BOOT.MP_CONFIG, BOOT_AREA_BYTES.MP_CONFIG),
  acpi: area('the ACPI tables', BOOT.ACPI, BOOT_AREA_BYTES.ACPI),
} as const;

/** Every area, in address order: a kernel (bzImage, multiboot, PVH) may load over none of them. */
export const BOOT_RESERVED: readonly ReservedArea[] = Object.values(AREA).sort((a, b) => a.gpa - b.gpa);

/**
 * A flat image may use low memory, except what the board writes for its entry mode: the MP and
 * ACPI tables always, the GDT, stack and page tables for a protected- or long-mode entry.
 */
function flatReserved(mode: EntryMode): ReservedArea[] {
  const tables = [AREA.mpTable, AREA.biosArea];
  return mode === 'real16' ? tables : [AREA.gdt, AREA.stack, AREA.pageTables, ...tables];
}

/** The longest command line the board's area holds (without the NUL). */
const CMDLINE_AREA_LIMIT = BOOT_AREA_BYTES.CMDLINE - 1;

/** A command line within the protocol's limit (if it has one) and the board's area. */
function cmdlineBytes(cmdline: string, protocolLimit?: { size: number; name: string }): Uint8Array {
  if (protocolLimit && protocolLimit.size <= CMDLINE_AREA_LIMIT) return encodeCmdline(cmdline, protocolLimit.size, protocolLimit.name);
  return encodeCmdline(cmdline, CMDLINE_AREA_LIMIT, "the board's command line area");
}

/** Writes boot data into its area, or throws TSVMM_LIMIT when it does not fit. */
export function writeArea(ram: GuestMemoryWriter, where: ReservedArea, bytes: Uint8Array): void {
  if (bytes.length > where.size) {
    throw new TsvmmError('TSVMM_LIMIT', `${where.what} of ${bytes.length} bytes does not fit its area at ${hex(where.gpa)} (${hex(where.size)} bytes)`, {
      length: bytes.length,
      size: where.size,
    });
  }
  ram.write(where.gpa, bytes);
}

/**
 * The options of the machine's configuration the loaders read (the board passes its config):
 * a boot option is a field of MachineConfig, named here.
 */
type BootOptions = Pick<MachineConfig, 'cmdline' | 'flat'> & Partial<Pick<MachineConfig, 'pvh'>>;

export interface BootInput extends BootOptions {
  /** The kernel image's bytes (MachineConfig.kernel names its file). */
  kernel: Uint8Array;
  initrd?: Uint8Array;
  /** The guest's memory map. */
  e820: readonly E820Entry[];
  /** End of the RAM below 4 GiB (initrd and modules go below it). */
  lowRamTop: number;
  /** With `pvh`: where decompressed kernels are kept between boots (none: decompress every time). */
  kernelCache?: KernelCache;
  /** Where the board put the ACPI RSDP, to pass to Linux. */
  acpiRsdp?: number;
}

export type ImageFormat = 'bzimage' | 'multiboot' | 'pvh' | 'flat';

export function imageFormat(kernel: Uint8Array, flat: boolean): ImageFormat {
  if (flat) return 'flat';
  if (kernel.length > HDR.HEADER + 4 && new DataView(kernel.buffer, kernel.byteOffset).getUint32(HDR.HEADER, true) === HDRS_MAGIC) {
    return 'bzimage';
  }
  if (isMultiboot(kernel)) return 'multiboot';
  if (isElf(kernel) && findPvhEntry(kernel) !== undefined) return 'pvh';
  throw new TsvmmError('TSVMM_BAD_KERNEL', 'the kernel is not a bzImage (no "HdrS" at 0x202), a multiboot image (no header in its first 8 KiB) or an ELF with a PVH entry note; for a flat binary give its load address');
}

export function bootImage(ram: GuestMemoryWriter, input: BootInput): { format: ImageFormat; entry: EntryPoint } {
  let format = imageFormat(input.kernel, input.flat !== undefined);
  if (format === 'bzimage' && input.pvh) {
    // The inflated kernel must fit in guest RAM: that bounds the host memory it may take.
    input = { ...input, kernel: vmlinuxFromBzImage(input.kernel, ram.size, { cache: input.kernelCache }) };
    format = imageFormat(input.kernel, false);
  }
  switch (format) {
    case 'flat': {
      assert(!input.initrd, 'the machine config refuses an initrd with a flat binary');
      const { loadAddr, mode } = input.flat!;
      return { format, entry: loadFlat(ram, input.kernel, { loadAddr, mode, reserved: flatReserved(mode) }).entry };
    }
    case 'multiboot': {
      // Multiboot sets no limit: the board's command line area does (the string itself goes
      // into multiboot_info's area).
      cmdlineBytes(input.cmdline);
      const kernel = loadMultiboot(ram, input.kernel, { reserved: BOOT_RESERVED });
      const modules = input.initrd ? loadMultibootModules(ram, kernel.end, [{ data: input.initrd, string: 'initrd' }]) : [];
      const info = buildMultibootInfo(BOOT.MULTIBOOT_INFO, {
        cmdline: input.cmdline,
        modules,
        memoryMap: input.e820,
        bootLoaderName: 'tsvmm',
      });
      writeArea(ram, AREA.multibootInfo, info);
      return {
        format,
        entry: { mode: 'protected32', ip: kernel.entryAddr, regs: { rax: MULTIBOOT_BOOTLOADER_MAGIC, rbx: BOOT.MULTIBOOT_INFO } },
      };
    }
    case 'pvh': {
      const kernel = loadVmlinux(ram, input.kernel, { reserved: BOOT_RESERVED });
      // No setup header: Linux's COMMAND_LINE_SIZE is the limit.
      writeArea(ram, AREA.cmdline, cmdlineBytes(input.cmdline, { size: DEFAULT_CMDLINE_SIZE, name: "Linux's COMMAND_LINE_SIZE - 1" }));
      const modules = [];
      if (input.initrd) {
        const addr = placeInitrd({ size: input.initrd.length, initrdAddrMax: 0xffffffff, ramTop: input.lowRamTop, lowest: kernel.end });
        ram.write(addr, input.initrd);
        modules.push({ addr, size: input.initrd.length });
      }
      writeArea(ram, AREA.startInfo, buildHvmStartInfo(BOOT.START_INFO, { cmdlineAddr: BOOT.CMDLINE, modules, memmap: input.e820, rsdpAddr: input.acpiRsdp }));
      return { format, entry: pvhEntryPoint(kernel.pvhEntry!, BOOT.START_INFO) };
    }
    case 'bzimage': {
      const kernel = loadBzImage(ram, input.kernel, { reserved: BOOT_RESERVED });
      writeArea(ram, AREA.cmdline, cmdlineBytes(input.cmdline, { size: kernel.header.cmdlineSize, name: 'cmdline_size' }));
      let ramdisk: { addr: number; size: number } | undefined;
      if (input.initrd) {
        const addr = placeInitrd({
          size: input.initrd.length,
          initrdAddrMax: kernel.header.initrdAddrMax,
          ramTop: input.lowRamTop,
          lowest: kernel.runtimeEnd,
        });
        ram.write(addr, input.initrd);
        ramdisk = { addr, size: input.initrd.length };
      }
      const bootParams = buildBootParams({ setupHeader: kernel.setupHeaderBytes, cmdlineAddr: BOOT.CMDLINE, ramdisk, e820: input.e820, acpiRsdpAddr: input.acpiRsdp });
      writeArea(ram, AREA.zeroPage, bootParams);
      return { format, entry: { ...kernel.entry, regs: { rsi: BOOT.ZERO_PAGE } } };
    }
  }
}
