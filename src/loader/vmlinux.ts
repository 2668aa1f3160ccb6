/**
 * An uncompressed 64-bit Linux kernel (vmlinux ELF): loaded at its physical addresses, entered
 * either at e_entry in long mode with boot_params (the 64-bit boot protocol, with a synthesized
 * setup header) or at its PVH entry in 32-bit protected mode with hvm_start_info.
 */
import { TsvmmError } from '../common/errors.js';
import { EM_X86_64, loadElf, type ElfKernel } from './elf.js';
import type { GuestMemoryWriter } from './guest-memory.js';
import type { EntryPoint } from './load-result.js';
import { pvhEntryFromNotes } from './pvh.js';

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
