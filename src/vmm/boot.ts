/**
 * From an image to an entry point: picks the loader by the image's format (bzImage, multiboot,
 * an ELF vmlinux with a PVH note, flat), loads it into RAM and writes the boot protocol's data
 * (boot_params, the command line, multiboot_info, hvm_start_info) at the layout's addresses.
 */
import { TsvmmError } from '../common/errors.js';
import { buildBootParams, encodeCmdline, placeInitrd, type E820Entry } from '../loader/boot-params.js';
import { loadBzImage, HDRS_MAGIC, HDR } from '../loader/bzimage.js';
import { loadFlat } from '../loader/flat.js';
import type { GuestMemoryWriter } from '../loader/guest-memory.js';
import type { EntryMode, EntryPoint } from '../loader/load-result.js';
import { isElf } from '../loader/elf.js';
import { buildHvmStartInfo, findPvhEntry, pvhEntryPoint } from '../loader/pvh.js';
import { loadVmlinux, vmlinuxFromBzImage } from '../loader/vmlinux.js';
import { buildMultibootInfo, isMultiboot, loadMultiboot, loadMultibootModules, MULTIBOOT_BOOTLOADER_MAGIC } from '../loader/multiboot.js';
import { BOOT } from './layout.js';

export interface BootInput {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline: string;
  /** The guest's memory map. */
  e820: readonly E820Entry[];
  /** End of the RAM below 4 GiB (initrd and modules go below it). */
  lowRamTop: number;
  /** Load the kernel as a flat binary at this address, entered in this mode. */
  flat?: { loadAddr: number; mode: EntryMode };
  /** For a bzImage: decompress the kernel here and enter it through PVH (skips the in-guest decompressor). */
  pvh?: boolean;
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
    input = { ...input, kernel: vmlinuxFromBzImage(input.kernel, ram.size) };
    format = imageFormat(input.kernel, false);
  }
  switch (format) {
    case 'flat': {
      if (input.initrd) throw new TsvmmError('TSVMM_BAD_ARGUMENT', 'a flat binary takes no initrd');
      return { format, entry: loadFlat(ram, input.kernel, input.flat!).entry };
    }
    case 'multiboot': {
      const kernel = loadMultiboot(ram, input.kernel);
      const modules = input.initrd ? loadMultibootModules(ram, kernel.end, [{ data: input.initrd, string: 'initrd' }]) : [];
      const info = buildMultibootInfo(BOOT.MULTIBOOT_INFO, {
        cmdline: input.cmdline,
        modules,
        memoryMap: input.e820,
        bootLoaderName: 'tsvmm',
      });
      ram.write(BOOT.MULTIBOOT_INFO, info);
      return {
        format,
        entry: { mode: 'protected32', ip: kernel.entryAddr, regs: { rax: MULTIBOOT_BOOTLOADER_MAGIC, rbx: BOOT.MULTIBOOT_INFO } },
      };
    }
    case 'pvh': {
      const kernel = loadVmlinux(ram, input.kernel);
      ram.write(BOOT.CMDLINE, encodeCmdline(input.cmdline));
      const modules = [];
      if (input.initrd) {
        const addr = placeInitrd({ size: input.initrd.length, initrdAddrMax: 0xffffffff, ramTop: input.lowRamTop, lowest: kernel.end });
        ram.write(addr, input.initrd);
        modules.push({ addr, size: input.initrd.length });
      }
      ram.write(BOOT.START_INFO, buildHvmStartInfo(BOOT.START_INFO, { cmdlineAddr: BOOT.CMDLINE, modules, memmap: input.e820, rsdpAddr: input.acpiRsdp }));
      return { format, entry: pvhEntryPoint(kernel.pvhEntry!, BOOT.START_INFO) };
    }
    case 'bzimage': {
      const kernel = loadBzImage(ram, input.kernel);
      const cmdline = encodeCmdline(input.cmdline, kernel.header.cmdlineSize);
      ram.write(BOOT.CMDLINE, cmdline);
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
      ram.write(BOOT.ZERO_PAGE, bootParams);
      return { format, entry: { ...kernel.entry, regs: { rsi: BOOT.ZERO_PAGE } } };
    }
  }
}
