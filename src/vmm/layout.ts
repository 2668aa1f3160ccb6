/**
 * The PC layout: every fixed port, address and IRQ the boards use, in one place.
 * Sources: the IBM PC/AT conventions as Linux and QEMU's `pc` machine expect them.
 */

/** Legacy I/O ports (base, length). */
export const PORTS = {
  COM1: { base: 0x3f8, length: 8 },
  I8042_DATA: { base: 0x60, length: 1 },
  I8042_COMMAND: { base: 0x64, length: 1 }, // status on read
  SYSTEM_CONTROL_B: { base: 0x61, length: 1 }, // PIT channel 2 gate and speaker
  RTC: { base: 0x70, length: 2 },
  POST: { base: 0x80, length: 1 },
  DEBUG_EXIT: { base: 0x501, length: 1 }, // QEMU's isa-debug-exit default
  PIC_MASTER: { base: 0x20, length: 2 },
  PIC_SLAVE: { base: 0xa0, length: 2 },
  PIC_ELCR: { base: 0x4d0, length: 2 },
  PIT: { base: 0x40, length: 4 },
  ACPI_PM: { base: 0x600, length: 12 }, // PM1 event, PM1 control, PM timer (as on a PIIX4)
  ACPI_RESET: { base: 0xcf9, length: 1 }, // the FADT's reset register
} as const;

/** ISA IRQ lines. */
export const IRQS = {
  PIT: 0,
  COM1: 4,
  KEYBOARD: 1,
  MOUSE: 12,
  RTC: 8,
  SCI: 9, // ACPI system control interrupt
} as const;

/** Real-mode interrupt vector of an ISA IRQ with the BIOS's default 8259 mapping (IRQ0-7 at 8, IRQ8-15 at 0x70). */
export function realModeVector(irq: number): number {
  return irq < 8 ? 0x08 + irq : 0x70 + irq - 8;
}

/** Guest-physical addresses of what the board writes into low memory before entry. */
export const BOOT = {
  /** GDT: null, 64-bit code (0x08), flat 32-bit code (0x10), data (0x18). */
  GDT: 0x500,
  /** PVH's hvm_start_info. */
  START_INFO: 0x6000,
  /** Linux's boot_params (the zero page). */
  ZERO_PAGE: 0x7000,
  /** Initial stack top for protected and long mode entries. */
  STACK_TOP: 0x8ff0,
  /** Identity page tables for long-mode entry: PML4, PDPT, then 4 PDs (4 GiB with 2 MiB pages). */
  PML4: 0x9000,
  PDPT: 0xa000,
  PD: 0xb000,
  /** The kernel command line, and multiboot's info area after it. */
  CMDLINE: 0x20000,
  MULTIBOOT_INFO: 0x21000,
  /**
   * The MP floating pointer, in the last KiB of base memory (the EBDA), where the MP
   * specification has guests look; it points at the configuration table (MP_CONFIG).
   */
  MPTABLE: 0x9fc00,
  /** ACPI tables (RSDP first), in the BIOS area where Linux also looks for the RSDP. */
  ACPI: 0xe0000,
  /**
   * The MP configuration table, in the BIOS area: 20 bytes per processor do not fit in the
   * EBDA's KiB beyond 40 of them (the specification lets the table be anywhere).
   */
  MP_CONFIG: 0xf0000,
} as const;

/**
 * How far each area at a BOOT address extends, in bytes. What the board writes into an area must
 * fit in it (a longer command line or memory map is refused), and no image may load over an
 * area its boot uses.
 */
export const BOOT_AREA_BYTES = {
  GDT: 0x100,
  START_INFO: 0x1000,
  ZERO_PAGE: 0x1000,
  /** The page that holds STACK_TOP (the stack grows down through it). */
  STACK: 0x1000,
  /** PML4, PDPT and the 4 PDs, from BOOT.PML4. */
  PAGE_TABLES: 0x6000,
  /** A command line of at most 4095 bytes and its NUL. */
  CMDLINE: 0x1000,
  MULTIBOOT_INFO: 0x2000,
  /** To the end of base memory. */
  MPTABLE: 0x400,
  /** To MP_CONFIG. */
  ACPI: 0x10000,
  /** To 1 MiB (the table's length is a 16-bit field: it could not be longer). */
  MP_CONFIG: 0x10000,
} as const;

/** The MP table and the I/O APIC's id (one above the last processor's APIC id) leave room for this many processors. */
export const MAX_CPUS = 64;

/** Base memory ends where the EBDA begins; RAM resumes at 1 MiB. */
export const LOW_RAM_END = 0x9fc00;
export const HIGH_RAM_START = 0x100000;

/** The 32-bit MMIO hole: RAM above this moves above 4 GiB. */
export const MMIO_HOLE_START = 0xc0000000;
export const FOUR_GIB = 0x100000000;

/**
 * virtio-mmio devices: slot n's window is at VIRTIO_MMIO.base + n * VIRTIO_MMIO.stride (one page
 * each, so that a window is never in a page with another device), inside the 32-bit MMIO hole
 * below the I/O APIC, where Firecracker puts its own. Slot order is the guest's probe order:
 * the console and the entropy device first (their windows do not move with the number of
 * disks), then the disks, so that the first --drive is /dev/vda, then the network cards, so
 * that the first --nic is eth0 (their windows do not move with the number of disks either).
 */
export const VIRTIO_MMIO = {
  base: 0xd000_0000,
  stride: 0x1000,
  /** Slots: the console, the entropy device, up to MAX_DRIVES disks and up to MAX_BOARD_NICS network cards. */
  slots: 2 + 16 + 8,
} as const;

/** The most disks (--drive) a machine takes. */
export const MAX_DRIVES = 16;

/** The most network cards (--nic) a machine takes. */
export const MAX_BOARD_NICS = 8;

/** The slot of each kind of virtio device (disk i is in slot VIRTIO_SLOT.DRIVE + i, NIC i in VIRTIO_SLOT.NIC + i). */
export const VIRTIO_SLOT = { CONSOLE: 0, RNG: 1, DRIVE: 2, NIC: 2 + MAX_DRIVES } as const;

/**
 * The ISA IRQs virtio-mmio devices use: ones a PC leaves free (3 is COM2's, 7 and 15 are the
 * 8259s' spurious vectors, 14 the IDE controller's). They must be below 16 because the soft
 * backend's guests have only the 8259 pair; KVM's in-kernel irqchip routes them to the PIC and
 * the I/O APIC alike. Devices share them round-robin (slot n takes VIRTIO_IRQS[n % length]):
 * the lines are level-triggered, the board ORs the devices on one line (WiredOrIrq), and Linux's
 * virtio_mmio asks for shared interrupts.
 */
export const VIRTIO_IRQS: readonly number[] = [5, 6, 10, 11];

/** The window and IRQ of virtio-mmio slot `slot`. */
export function virtioMmioSlot(slot: number): { base: number; irq: number } {
  if (!Number.isInteger(slot) || slot < 0 || slot >= VIRTIO_MMIO.slots) throw new RangeError(`virtio-mmio slot ${slot} does not exist (0 to ${VIRTIO_MMIO.slots - 1})`);
  return { base: VIRTIO_MMIO.base + slot * VIRTIO_MMIO.stride, irq: VIRTIO_IRQS[slot % VIRTIO_IRQS.length]! };
}

/** Four pages the backend may use for itself (KVM: identity map + TSS), below the BIOS area. */
export const BACKEND_RESERVED = { gpa: 0xfffbc000, size: 0x4000 } as const;
