/**
 * RFLAGS bit constants, the parity table and condition-code evaluation over a materialized
 * flags word (Intel SDM vol. 1 §3.4.3, vol. 2 appendix B "Condition codes").
 */

export const FLAG_CF = 1 << 0; // carry (unsigned overflow, borrow)
export const FLAG_FIXED1 = 1 << 1; // reserved, always reads as 1
export const FLAG_PF = 1 << 2; // parity: set when the low byte of the result has an even number of 1 bits
export const FLAG_AF = 1 << 4; // auxiliary carry: carry/borrow out of bit 3
export const FLAG_ZF = 1 << 6; // zero result
export const FLAG_SF = 1 << 7; // sign: most significant bit of the result
export const FLAG_TF = 1 << 8; // trap (single step)
export const FLAG_IF = 1 << 9; // maskable interrupts enabled
export const FLAG_DF = 1 << 10; // string instructions decrement
export const FLAG_OF = 1 << 11; // signed overflow
export const FLAG_IOPL_MASK = 3 << 12; // I/O privilege level (2 bits)
export const FLAG_IOPL_SHIFT = 12; // bit position of IOPL
export const FLAG_NT = 1 << 14; // nested task
export const FLAG_RF = 1 << 16; // resume (suppress instruction breakpoints once)
export const FLAG_VM = 1 << 17; // virtual-8086 mode
export const FLAG_AC = 1 << 18; // alignment check / SMAP override
export const FLAG_VIF = 1 << 19; // virtual interrupt flag
export const FLAG_VIP = 1 << 20; // virtual interrupt pending
export const FLAG_ID = 1 << 21; // CPUID available (software-toggleable)

/** The six arithmetic status flags written by ALU instructions. */
export const STATUS_FLAGS = FLAG_CF | FLAG_PF | FLAG_AF | FLAG_ZF | FLAG_SF | FLAG_OF;

/** PARITY[b] is FLAG_PF when byte b has an even number of set bits, else 0. */
export const PARITY: Uint8Array = (() => {
  const t = new Uint8Array(256);
  for (let i = 0; i < 256; i++) {
    let n = 0;
    for (let v = i; v !== 0; v >>= 1) n += v & 1;
    t[i] = (n & 1) === 0 ? FLAG_PF : 0;
  }
  return t;
})();

// Condition codes: the low nibble of Jcc (0x70+cc, 0x0f 0x80+cc), SETcc and CMOVcc.
export const CC_O = 0; // OF=1
export const CC_NO = 1; // OF=0
export const CC_B = 2; // CF=1 (below, carry, NAE)
export const CC_AE = 3; // CF=0 (above or equal, NB, NC)
export const CC_E = 4; // ZF=1 (equal, zero)
export const CC_NE = 5; // ZF=0
export const CC_BE = 6; // CF=1 or ZF=1 (below or equal, NA)
export const CC_A = 7; // CF=0 and ZF=0 (above, NBE)
export const CC_S = 8; // SF=1
export const CC_NS = 9; // SF=0
export const CC_P = 10; // PF=1 (parity even)
export const CC_NP = 11; // PF=0 (parity odd)
export const CC_L = 12; // SF!=OF (less, NGE)
export const CC_GE = 13; // SF=OF
export const CC_LE = 14; // ZF=1 or SF!=OF
export const CC_G = 15; // ZF=0 and SF=OF

/** Evaluate condition code `cc` (0..15) against a materialized RFLAGS value. */
export function evalCondition(cc: number, flags: number): boolean {
  let t: boolean;
  switch (cc >> 1) {
    case 0: t = (flags & FLAG_OF) !== 0; break;
    case 1: t = (flags & FLAG_CF) !== 0; break;
    case 2: t = (flags & FLAG_ZF) !== 0; break;
    case 3: t = (flags & (FLAG_CF | FLAG_ZF)) !== 0; break;
    case 4: t = (flags & FLAG_SF) !== 0; break;
    case 5: t = (flags & FLAG_PF) !== 0; break;
    case 6: t = ((flags & FLAG_SF) !== 0) !== ((flags & FLAG_OF) !== 0); break;
    default: t = (flags & FLAG_ZF) !== 0 || ((flags & FLAG_SF) !== 0) !== ((flags & FLAG_OF) !== 0); break;
  }
  return (cc & 1) === 0 ? t : !t;
}
