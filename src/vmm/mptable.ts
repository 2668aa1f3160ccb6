/**
 * The MP table (Intel MultiProcessor Specification 1.4, chapter 4): how a guest without ACPI
 * finds its processors, its I/O APIC and how ISA interrupts reach it. A floating pointer
 * structure ("_MP_"), which must be where guests search for it (the EBDA's first KiB, the last
 * KiB of base memory or the BIOS area), and the configuration table ("PCMP") it points at,
 * which may be anywhere: it grows by 20 bytes per processor.
 *
 * The ISA interrupts are described as the board's MADT describes them (acpi-tables.ts): IRQ n on
 * I/O APIC pin n, except IRQ 0 on pin 2 with `irq0ToPin2` (a PC's wiring, the MADT's override),
 * and the SCI level-triggered, active high (the MADT's override for it). The interrupt entry's
 * flags are the MADT's MPS INTI flags: polarity in bits 1-0, trigger mode in bits 3-2.
 */
import { IOAPIC_DEFAULT_BASE } from '../devices/ioapic.js';
import { APIC_DEFAULT_BASE } from '../x86/apic.js';

const MPF_SIZE = 16;
const MPC_HEADER_SIZE = 44;
const ENTRY_PROCESSOR = 0; // 20 bytes
const ENTRY_BUS = 1; // 8 bytes
const ENTRY_IOAPIC = 2; // 8 bytes
const ENTRY_IOINT = 3; // 8 bytes
const ENTRY_LINT = 4; // 8 bytes
const SPEC_REV = 4; // 1.4
const LAPIC_VERSION = 0x14;
const IOAPIC_VERSION = 0x11;
const CPU_ENABLED = 1;
const CPU_BSP = 2;
const INT_TYPE_INT = 0;
const INT_TYPE_NMI = 1;
const INT_TYPE_EXTINT = 3;
const INTI_ACTIVE_HIGH = 1;
const INTI_LEVEL = 3 << 2;
/** Signature, family/model/stepping and feature flags of the processor entries (a generic 686). */
const CPU_SIGNATURE = 0x600;
const CPU_FEATURES = 0x201; // FPU, APIC

function checksum(bytes: Uint8Array): number {
  return (0x100 - (bytes.reduce((a, b) => a + b, 0) & 0xff)) & 0xff;
}

export interface MpTableOptions {
  /** ISA IRQ 0 on I/O APIC pin 2 (default: pin 0). */
  irq0ToPin2?: boolean;
  /** The ACPI SCI's ISA IRQ, level-triggered active high (default: none, every IRQ conforming). */
  sciIrq?: number;
}

/**
 * The floating pointer and the configuration table for `cpus` processors (APIC ids 0..cpus-1),
 * the table to be written at guest-physical `tableGpa` (the pointer holds that address).
 */
export function buildMpTable(tableGpa: number, cpus: number, opts: MpTableOptions = {}): { pointer: Uint8Array; table: Uint8Array } {
  const ioapicId = cpus;
  const entries: number[][] = [];
  const u16 = (n: number) => [n & 0xff, (n >>> 8) & 0xff];
  const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
  for (let id = 0; id < cpus; id++) {
    entries.push([ENTRY_PROCESSOR, id, LAPIC_VERSION, CPU_ENABLED | (id === 0 ? CPU_BSP : 0), ...u32(CPU_SIGNATURE), ...u32(CPU_FEATURES), ...u32(0), ...u32(0)]);
  }
  entries.push([ENTRY_BUS, 0, ...'ISA   '.split('').map((c) => c.charCodeAt(0))]);
  entries.push([ENTRY_IOAPIC, ioapicId, IOAPIC_VERSION, 1, ...u32(IOAPIC_DEFAULT_BASE)]);
  // ISA IRQ n on I/O APIC pin n (KVM's default routing), conforming polarity and trigger; see above.
  for (let irq = 0; irq < 16; irq++) {
    if (irq === 2 && opts.irq0ToPin2) continue; // pin 2 is IRQ 0's (the cascade has no pin)
    const pin = irq === 0 && opts.irq0ToPin2 ? 2 : irq;
    const flags = irq === opts.sciIrq ? INTI_ACTIVE_HIGH | INTI_LEVEL : 0;
    entries.push([ENTRY_IOINT, INT_TYPE_INT, ...u16(flags), 0, irq, ioapicId, pin]);
  }
  // LINT0: the 8259 (ExtINT), LINT1: NMI, on every local APIC (destination 0xff).
  entries.push([ENTRY_LINT, INT_TYPE_EXTINT, ...u16(0), 0, 0, 0xff, 0]);
  entries.push([ENTRY_LINT, INT_TYPE_NMI, ...u16(0), 0, 0, 0xff, 1]);

  const body = entries.flat();
  // Floating pointer: "_MP_", physical address of the table, length in 16-byte units, revision.
  const pointer = new Uint8Array(MPF_SIZE);
  pointer.set([0x5f, 0x4d, 0x50, 0x5f]);
  new DataView(pointer.buffer).setUint32(4, tableGpa, true);
  pointer[8] = 1;
  pointer[9] = SPEC_REV;
  pointer[10] = checksum(pointer);
  // Configuration table header.
  const table = new Uint8Array(MPC_HEADER_SIZE + body.length);
  const dv = new DataView(table.buffer);
  table.set([0x50, 0x43, 0x4d, 0x50]); // "PCMP"
  dv.setUint16(4, table.length, true);
  table[6] = SPEC_REV;
  table.set([...'TSVMM   '].map((c) => c.charCodeAt(0)), 8); // OEM id, 8 bytes
  table.set([...'PC          '].map((c) => c.charCodeAt(0)), 16); // product id, 12 bytes
  dv.setUint16(34, entries.length, true);
  dv.setUint32(36, APIC_DEFAULT_BASE, true);
  table.set(body, MPC_HEADER_SIZE);
  table[7] = checksum(table);
  return { pointer, table };
}
