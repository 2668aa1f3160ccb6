/**
 * x86 register numbering and names (AT&T spelling, without the `%`).
 *
 * A register operand is a pair (RegClass, number). GPRs are numbered 0-15 in encoding order
 * (rax rcx rdx rbx rsp rbp rsi rdi r8..r15) whatever their width; the width is the operand size.
 * The legacy high-byte registers AH CH DH BH (byte size, no REX, numbers 4-7) have their own class
 * `Gpr8High` with numbers 0-3 (ah=0 ... bh=3), so a byte GPR operand never needs a REX check.
 */

/** Register classes of a register operand (`Operand.regClass`). */
export const RegClass = {
  Gpr: 0, // 0-15; size 1/2/4/8 from Operand.size
  Gpr8High: 1, // ah ch dh bh as 0-3
  Seg: 2, // es cs ss ds fs gs = 0-5 (encoding order)
  Cr: 3, // cr0-cr15
  Dr: 4, // dr0-dr15
  Mmx: 5, // mm0-mm7
  Xmm: 6, // xmm0-xmm15
  Ymm: 7, // ymm0-ymm15
  X87: 8, // st(0)-st(7)
  Bnd: 9, // MPX bnd0-bnd3
  Tr: 10, // test registers (386), unused by 64-bit code
  Mask: 11, // AVX-512 opmask registers k0-k7
} as const;
export type RegClass = (typeof RegClass)[keyof typeof RegClass];

/** Segment register numbers in encoding order (also `Operand.seg`). */
export const Seg = { ES: 0, CS: 1, SS: 2, DS: 3, FS: 4, GS: 5 } as const;
export type Seg = (typeof Seg)[keyof typeof Seg];

/** GPR numbers. */
export const Gpr = {
  RAX: 0, RCX: 1, RDX: 2, RBX: 3, RSP: 4, RBP: 5, RSI: 6, RDI: 7,
  R8: 8, R9: 9, R10: 10, R11: 11, R12: 12, R13: 13, R14: 14, R15: 15,
  /** Pseudo base register of a RIP-relative memory operand (EIP-relative with a 67 prefix). */
  RIP: 16,
} as const;

export const GPR64_NAMES: readonly string[] = [
  'rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
];
export const GPR32_NAMES: readonly string[] = [
  'eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi',
  'r8d', 'r9d', 'r10d', 'r11d', 'r12d', 'r13d', 'r14d', 'r15d',
];
export const GPR16_NAMES: readonly string[] = [
  'ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di',
  'r8w', 'r9w', 'r10w', 'r11w', 'r12w', 'r13w', 'r14w', 'r15w',
];
/** Byte registers with a REX prefix present (spl bpl sil dil). */
export const GPR8_NAMES: readonly string[] = [
  'al', 'cl', 'dl', 'bl', 'spl', 'bpl', 'sil', 'dil',
  'r8b', 'r9b', 'r10b', 'r11b', 'r12b', 'r13b', 'r14b', 'r15b',
];
export const GPR8_HIGH_NAMES: readonly string[] = ['ah', 'ch', 'dh', 'bh'];
export const SEG_NAMES: readonly string[] = ['es', 'cs', 'ss', 'ds', 'fs', 'gs', '?', '?'];

/** The AT&T name of a general-purpose register of `size` bytes. */
export function gprName(num: number, size: number): string {
  switch (size) {
    case 1: return GPR8_NAMES[num] ?? '?';
    case 2: return GPR16_NAMES[num] ?? '?';
    case 4: return GPR32_NAMES[num] ?? '?';
    default: return GPR64_NAMES[num] ?? '?';
  }
}

/** The AT&T name (no `%`) of any register operand. */
export function regName(cls: RegClass, num: number, size: number): string {
  switch (cls) {
    case RegClass.Gpr: return gprName(num, size);
    case RegClass.Gpr8High: return GPR8_HIGH_NAMES[num] ?? '?';
    case RegClass.Seg: return SEG_NAMES[num] ?? '?';
    case RegClass.Cr: return `cr${num}`;
    case RegClass.Dr: return `db${num}`;
    case RegClass.Mmx: return `mm${num & 7}`;
    case RegClass.Xmm: return `xmm${num}`;
    case RegClass.Ymm: return `ymm${num}`;
    case RegClass.X87: return `st(${num})`;
    case RegClass.Bnd: return `bnd${num}`;
    case RegClass.Tr: return `tr${num}`;
    case RegClass.Mask: return `k${num}`;
  }
}
