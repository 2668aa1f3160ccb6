/**
 * The local APIC as the architecture defines it (Intel SDM vol. 3A, chapter "Advanced
 * Programmable Interrupt Controller (APIC)"): the flags of IA32_APIC_BASE, the register map of its
 * 4 KiB page in xAPIC mode ("Local APIC Register Address Map"), the same registers as MSRs in
 * x2APIC mode ("x2APIC Register Address Space"), and the bits of the registers software programs. devices/local-apic.ts models the device with them; the KVM backend programs
 * the in-kernel APIC's LINT pins with them.
 */

/** IA32_APIC_BASE (MSR_APIC_BASE): the page's address from bit 12 up, then these flags. */
export const APIC_DEFAULT_BASE = 0xfee0_0000; // the address after reset
export const APIC_BASE_BSP = 1 << 8; // this processor is the bootstrap processor
export const APIC_BASE_X2APIC = 1 << 10; // x2APIC mode
export const APIC_BASE_ENABLE = 1 << 11; // APIC global enable

// Register offsets in the page. Each register is the aligned 32-bit word at a 16-byte boundary.
export const APIC_ID = 0x020;
export const APIC_VERSION = 0x030;
export const APIC_TPR = 0x080;
export const APIC_APR = 0x090;
export const APIC_PPR = 0x0a0;
export const APIC_EOI = 0x0b0;
export const APIC_RRD = 0x0c0;
export const APIC_LDR = 0x0d0;
export const APIC_DFR = 0x0e0;
export const APIC_SVR = 0x0f0;
export const APIC_ISR = 0x100; // 8 words, 0x100-0x170
export const APIC_TMR = 0x180; // 8 words, 0x180-0x1f0
export const APIC_IRR = 0x200; // 8 words, 0x200-0x270
export const APIC_ESR = 0x280;
export const APIC_LVT_CMCI = 0x2f0;
export const APIC_ICR_LOW = 0x300;
export const APIC_ICR_HIGH = 0x310;
export const APIC_LVT_TIMER = 0x320;
export const APIC_LVT_THERMAL = 0x330;
export const APIC_LVT_PERF = 0x340;
export const APIC_LVT_LINT0 = 0x350;
export const APIC_LVT_LINT1 = 0x360;
export const APIC_LVT_ERROR = 0x370;
export const APIC_TIMER_INITIAL = 0x380;
export const APIC_TIMER_CURRENT = 0x390;
export const APIC_TIMER_DIVIDE = 0x3e0;
/** SELF IPI: x2APIC mode only (MSR 0x83F); the page has nothing there. */
export const APIC_SELF_IPI = 0x3f0;

/**
 * x2APIC mode: the register at page offset `off` is MSR 0x800 + off / 16, through RDMSR/WRMSR
 * (the page is not decoded then). Only the registers in X2APIC_REGISTERS exist there: APR, RRD,
 * DFR and the ICR's high word (the ICR is one 64-bit MSR, the destination in bits 63-32) do not,
 * and every other MSR of the range is reserved. All of them #GP outside x2APIC mode.
 */
export const X2APIC_MSR_FIRST = 0x800;
export const X2APIC_MSR_LAST = 0x8ff;
export type X2apicAccess = 'rw' | 'ro' | 'wo';
export function x2apicMsr(offset: number): number {
  return X2APIC_MSR_FIRST + (offset >> 4);
}
/** The page offset of x2APIC MSR `msr` (in X2APIC_MSR_FIRST..X2APIC_MSR_LAST). */
export function x2apicOffset(msr: number): number {
  return (msr - X2APIC_MSR_FIRST) << 4;
}
/**
 * The registers of x2APIC mode by page offset, and how they may be accessed: RDMSR of a
 * write-only one and WRMSR of a read-only one #GP, as does either of a register not listed. ID
 * (the 32-bit x2APIC ID) and LDR (derived from it) are read-only in this mode.
 */
export const X2APIC_REGISTERS: ReadonlyMap<number, X2apicAccess> = new Map<number, X2apicAccess>([
  [APIC_ID, 'ro'], [APIC_VERSION, 'ro'], [APIC_TPR, 'rw'], [APIC_PPR, 'ro'], [APIC_EOI, 'wo'], [APIC_LDR, 'ro'],
  [APIC_SVR, 'rw'],
  ...[APIC_ISR, APIC_TMR, APIC_IRR].flatMap((base) => Array.from({ length: 8 }, (_, i): [number, X2apicAccess] => [base + 0x10 * i, 'ro'])),
  [APIC_ESR, 'rw'], [APIC_LVT_CMCI, 'rw'], [APIC_ICR_LOW, 'rw'], [APIC_LVT_TIMER, 'rw'], [APIC_LVT_THERMAL, 'rw'],
  [APIC_LVT_PERF, 'rw'], [APIC_LVT_LINT0, 'rw'], [APIC_LVT_LINT1, 'rw'], [APIC_LVT_ERROR, 'rw'], [APIC_TIMER_INITIAL, 'rw'],
  [APIC_TIMER_CURRENT, 'ro'], [APIC_TIMER_DIVIDE, 'rw'], [APIC_SELF_IPI, 'wo'],
]);
/**
 * Reserved bits of x2APIC registers that a WRMSR must leave 0 (#GP otherwise; SDM "Reserved Bit
 * Checking"), beside bits 63-32 of every register but the ICR: EOI and ESR take only 0, TPR and
 * SELF IPI a vector, the divide configuration bits 3, 1 and 0, the ICR's low word no delivery
 * status (gone in this mode), remote read status or bits 31-20.
 */
export const X2APIC_RESERVED: Readonly<Record<number, number>> = {
  [APIC_EOI]: 0xffff_ffff, [APIC_ESR]: 0xffff_ffff, [APIC_TPR]: 0xffff_ff00, [APIC_SELF_IPI]: 0xffff_ff00,
  [APIC_TIMER_DIVIDE]: 0xffff_fff4, [APIC_ICR_LOW]: 0xfff3_3000,
};
/** x2APIC physical destination 0xFFFFFFFF: broadcast; logical: all clusters, all members. */
export const X2APIC_BROADCAST = 0xffff_ffff;
/**
 * The logical x2APIC ID (LDR in x2APIC mode) of x2APIC ID `id`: the cluster (ID bits 19-4) in
 * bits 31-16, one bit for the member (ID bits 3-0) in bits 15-0.
 */
export function x2apicLogicalId(id: number): number {
  return (((id >>> 4) & 0xffff) << 16 | (1 << (id & 0xf))) >>> 0;
}

// SVR bits.
export const SVR_ENABLE = 0x100; // APIC software enable

/**
 * Delivery modes: the encoding in bits 10-8 of LVT entries and the ICR (and of I/O APIC
 * redirection entries). 3 is reserved.
 */
export const DELIVERY_MODE_SHIFT = 8;
export const DELIVERY_MODE_MASK = 7 << DELIVERY_MODE_SHIFT;
export const DM_FIXED = 0;
export const DM_LOWEST_PRIORITY = 1;
export const DM_SMI = 2;
export const DM_NMI = 4;
export const DM_INIT = 5;
export const DM_STARTUP = 6;
export const DM_EXTINT = 7;

// LVT bits.
export const LVT_VECTOR = 0xff;
export const LVT_DELIVERY_STATUS = 0x1000; // bit 12 (read only)
export const LVT_POLARITY = 0x2000; // bit 13: LINT active low
export const LVT_REMOTE_IRR = 0x4000; // bit 14: LINT level-triggered in service (read only)
export const LVT_LEVEL = 0x8000; // bit 15: LINT trigger mode level
export const LVT_MASKED = 0x1_0000; // bit 16
export const LVT_TIMER_PERIODIC = 0x2_0000; // bits 18-17 = 01: periodic (00 one-shot)

// ICR bits (the delivery mode in bits 10-8, see above).
export const ICR_VECTOR = 0xff;
export const ICR_DEST_LOGICAL = 0x800; // bit 11
export const ICR_DELIVERY_STATUS = 0x1000; // bit 12 (read only)
export const ICR_LEVEL_ASSERT = 0x4000; // bit 14
export const ICR_TRIGGER_LEVEL = 0x8000; // bit 15
export const ICR_SHORTHAND_SHIFT = 18; // bits 19-18: none, self, all, all but self
export const ICR_DEST_SHIFT = 24; // ICR high bits 31-24

// ESR bits.
export const ESR_SEND_ILLEGAL_VECTOR = 0x20;
export const ESR_RECEIVE_ILLEGAL_VECTOR = 0x40;
export const ESR_ILLEGAL_REGISTER = 0x80;

/** DFR bits 31-28: the flat model (the other value, 0000, is the cluster model). */
export const DFR_FLAT = 0xf;
/** Destination 0xFF: broadcast (physical), all APICs (logical flat). */
export const APIC_BROADCAST = 0xff;
