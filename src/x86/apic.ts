/** Local APIC registers (Intel SDM vol. 3A, 11.4.1, table 11-1): byte offsets in the 4 KiB page. */
export const APIC_REG = {
  ID: 0x20,
  VERSION: 0x30,
  TPR: 0x80,
  EOI: 0xb0,
  SVR: 0xf0,
  LVT_LINT0: 0x350,
  LVT_LINT1: 0x360,
} as const;

/** LVT delivery modes (bits 10:8). */
export const APIC_DM_NMI = 4 << 8;
export const APIC_DM_EXTINT = 7 << 8;
export const APIC_DM_MASK = 7 << 8;
/** LVT mask bit. */
export const APIC_LVT_MASKED = 1 << 16;
