/**
 * Exception vectors (Intel SDM vol. 3A 6.3.1, table "Protected-Mode Exceptions and Interrupts";
 * AMD APM vol. 2 8.2) and which of them push an error code.
 */

export const EXC_DE = 0; // divide error
export const EXC_DB = 1; // debug
export const EXC_NMI = 2; // non-maskable interrupt
export const EXC_BP = 3; // breakpoint (INT3)
export const EXC_OF = 4; // overflow (INTO)
export const EXC_BR = 5; // BOUND range exceeded
export const EXC_UD = 6; // invalid opcode
export const EXC_NM = 7; // device not available (x87/SSE with CR0.EM or TS)
export const EXC_DF = 8; // double fault
export const EXC_TS = 10; // invalid TSS
export const EXC_NP = 11; // segment not present
export const EXC_SS = 12; // stack-segment fault
export const EXC_GP = 13; // general protection
export const EXC_PF = 14; // page fault
export const EXC_MF = 16; // x87 floating-point error
export const EXC_AC = 17; // alignment check
export const EXC_MC = 18; // machine check
export const EXC_XM = 19; // SIMD floating-point exception
export const EXC_VE = 20; // virtualization exception
export const EXC_CP = 21; // control protection
export const EXC_SX = 30; // security exception (AMD)

/** The exceptions that push an error code. */
const ERROR_CODE_VECTORS: ReadonlySet<number> = new Set([EXC_DF, EXC_TS, EXC_NP, EXC_SS, EXC_GP, EXC_PF, EXC_AC, EXC_CP, EXC_SX]);

export function exceptionHasErrorCode(vector: number): boolean {
  return ERROR_CODE_VECTORS.has(vector);
}
