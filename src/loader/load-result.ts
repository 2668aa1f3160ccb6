/**
 * The result records loaders return (rust-vmm linux-loader's model): what was copied where and how
 * the CPU must enter the image. Setting up registers, page tables and boot data is the caller's step.
 */
/** A range of guest physical memory a loader filled: `fileSize` bytes from the image, then zeros up to `memSize`. */
export interface LoadedSegment {
  gpa: number;
  fileSize: number;
  memSize: number;
}

/** CPU mode at entry. `protected32`: flat 4 GiB segments, paging off. `long64`: paging on, identity-mapped. */
export type EntryMode = 'real16' | 'protected32' | 'long64';

/** How to start the image: mode, instruction pointer, and the registers the boot protocol defines. */
export interface EntryPoint {
  mode: EntryMode;
  ip: number;
  /** Registers with protocol-defined values (for example multiboot's eax/ebx, the 64-bit Linux rsi). */
  regs: Partial<Record<'rax' | 'rbx' | 'rsi', number>>;
}

/** Lowest start and highest end over a segment list (end exclusive); [0, 0] for none. */
export function segmentsSpan(segments: readonly LoadedSegment[]): { start: number; end: number } {
  if (segments.length === 0) return { start: 0, end: 0 };
  return {
    start: Math.min(...segments.map((s) => s.gpa)),
    end: Math.max(...segments.map((s) => s.gpa + s.memSize)),
  };
}
