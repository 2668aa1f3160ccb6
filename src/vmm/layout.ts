/**
 * The PC layout: every fixed port, address and IRQ the boards use, in one place.
 * Sources: the IBM PC/AT conventions as Linux and QEMU's `pc` machine expect them.
 */

/** Legacy I/O ports (base, length). */
export const PORTS = {
  COM1: { base: 0x3f8, length: 8 },
  I8042: { base: 0x60, length: 5 }, // data 0x60, command/status 0x64
  RTC: { base: 0x70, length: 2 },
  POST: { base: 0x80, length: 1 },
  DEBUG_EXIT: { base: 0x501, length: 1 }, // QEMU's isa-debug-exit default
} as const;

/** ISA IRQ lines. */
export const IRQS = {
  COM1: 4,
  KEYBOARD: 1,
  MOUSE: 12,
  RTC: 8,
} as const;

/** Real-mode interrupt vector of an ISA IRQ with the BIOS's default 8259 mapping (IRQ0-7 at 8, IRQ8-15 at 0x70). */
export function realModeVector(irq: number): number {
  return irq < 8 ? 0x08 + irq : 0x70 + irq - 8;
}
