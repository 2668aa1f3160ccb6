/**
 * Control-register bits: CR0, CR4 and EFER (IA32_EFER, MSR 0xC0000080, which sits beside them in
 * choosing the CPU's mode). Intel SDM vol. 3A 2.5 "Control Registers" and 2.2.1; AMD APM vol. 2
 * 3.1. Every constant is an int32 mask over the low 32 bits: CR0_PG is bit 31, a negative number,
 * so test it with `!== 0`, and make a state group's bigint with `BigInt(mask >>> 0)`.
 */

export const CR0_PE = 1 << 0; // protection enable
export const CR0_MP = 1 << 1; // monitor coprocessor: WAIT/FWAIT raise #NM when TS is set
export const CR0_EM = 1 << 2; // no x87: x87 instructions raise #NM, SSE ones #UD
export const CR0_TS = 1 << 3; // task switched: the next x87/SSE instruction raises #NM
export const CR0_ET = 1 << 4; // extension type: hard-wired to 1
export const CR0_NE = 1 << 5; // x87 errors raise #MF (not FERR#/IRQ 13)
export const CR0_WP = 1 << 16; // supervisor writes honour R/W=0
export const CR0_AM = 1 << 18; // alignment checking (with EFLAGS.AC, at CPL 3)
export const CR0_NW = 1 << 29; // not write-through
export const CR0_CD = 1 << 30; // cache disable
export const CR0_PG = 1 << 31; // paging
/** CR0 after power-up, reset and INIT: 0x60000010 (SDM vol. 3A, "Processor State After Reset"). */
export const CR0_RESET = CR0_CD | CR0_NW | CR0_ET;

export const CR4_VME = 1 << 0; // virtual-8086 mode extensions
export const CR4_PVI = 1 << 1; // protected-mode virtual interrupts
export const CR4_TSD = 1 << 2; // RDTSC/RDTSCP at CPL > 0 raise #GP
export const CR4_DE = 1 << 3; // debug extensions
export const CR4_PSE = 1 << 4; // 4 MiB pages in 32-bit paging
export const CR4_PAE = 1 << 5; // PAE / long-mode page tables (64-bit entries)
export const CR4_MCE = 1 << 6; // machine-check enable
export const CR4_PGE = 1 << 7; // global pages (kept in the TLB across CR3 writes)
export const CR4_PCE = 1 << 8; // RDPMC at CPL > 0
export const CR4_OSFXSR = 1 << 9; // the OS saves SSE state with FXSAVE: SSE instructions are allowed
export const CR4_OSXMMEXCPT = 1 << 10; // unmasked SIMD floating-point exceptions raise #XM (else #UD)
export const CR4_LA57 = 1 << 12; // 5-level paging in long mode
export const CR4_SMEP = 1 << 20; // supervisor fetches from user pages fault
export const CR4_SMAP = 1 << 21; // supervisor data accesses to user pages fault (unless EFLAGS.AC)

export const EFER_SCE = 1 << 0; // SYSCALL/SYSRET enable
export const EFER_LME = 1 << 8; // long mode enable
export const EFER_LMA = 1 << 10; // long mode active (read only: set when paging turns on with LME)
export const EFER_NXE = 1 << 11; // the XD bit (63) of 64-bit page-table entries is honoured
