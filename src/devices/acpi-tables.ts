/**
 * A builder for the minimal ACPI tables a PC board needs so Linux can find the interrupt
 * controllers, power off (\_S5) and reset (RESET_REG): RSDP 2.0, RSDT, XSDT, FADT (revision 6,
 * not hardware-reduced), FACS, DSDT (hand-assembled AML: only Name(_S5, Package() {5, 5, 0, 0})),
 * MADT (a local APIC per CPU, the I/O APIC, interrupt source overrides, local APIC NMI on LINT1).
 *
 * Layout (ACPI 6.x spec, chapter 5 "ACPI Software Programming Model": RSDP, system description
 * table header, FADT, FACS, MADT and its interrupt controller structures; chapter 20 "ACPI Machine
 * Language (AML) Specification" for DefinitionBlock, NameOp, PackageOp and PkgLength):
 * - Everything is placed in one blob meant for guest-physical address `at` (16-byte aligned;
 *   firmware regions such as 0xE0000-0xFFFFF where Linux scans for "RSD PTR ", or anywhere when
 *   the loader passes boot_params.acpi_rsdp_addr / the PVH start info's rsdp_paddr).
 * - The RSDP comes first; the FACS is placed on a 64-byte boundary as the spec requires.
 * - FADT: no SMI command port (SMI_CMD = 0: the platform is in ACPI mode from the start, PM1_CNT
 *   SCI_EN reads 1), SCI on IRQ 9, PM1a event block / control block / PM timer in one AcpiPm
 *   window at `pmBase` (offsets from acpi-pm.ts), no GPE blocks, no C2/C3, RESET_REG = the byte
 *   at I/O port 0xCF9 with RESET_VALUE 0x06 and the RESET_REG_SUP flag, IA-PC boot flags saying
 *   legacy devices and an 8042 are present and there is no VGA. Both the 32-bit and the 64-bit
 *   (X_) address fields are filled with the same values.
 * - MADT: PCAT_COMPAT (the 8259 pair is present), ISA IRQ 0 -> GSI 2 (the I/O APIC pin the PIT
 *   is wired to on a PC) when `irq0ToGsi2`, SCI IRQ -> same GSI, level-triggered active high.
 * - virtio-mmio devices (`virtioMmio`), when there are any, are described in the DSDT the way
 *   Linux's virtio_mmio driver finds them through ACPI (its match table has "LNRO0005"), since
 *   Debian's kernel is built without CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES:
 *     Scope (\_SB) { Device (VRnn) { Name (_HID, "LNRO0005") Name (_UID, n)
 *       Name (_CRS, ResourceTemplate () { Memory32Fixed (ReadWrite, base, size)
 *                                         Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) { irq } }) } }
 *   (ACPI 6.x §19.6 for the ASL, §6.4.3.4 and §6.4.3.6 for the two resource descriptors).
 *   The interrupt is level-triggered, as the transport drives its line (asserted while
 *   InterruptStatus is not 0), unless the board asks for edge. Without virtio devices the DSDT
 *   is byte for byte what it was before they existed.
 */
import {
  PM1_CNT_OFFSET, PM1_CNT_LEN, PM1_EVT_LEN, PM1_STS_OFFSET, PM_TMR_LEN, PM_TMR_OFFSET,
  ACPI_RESET_PORT, ACPI_RESET_VALUE,
} from './acpi-pm.js';
import { IOAPIC_DEFAULT_BASE } from './ioapic.js';
import { APIC_DEFAULT_BASE } from '../x86/apic.js';

export interface AcpiTableOptions {
  /** Number of CPUs; their APIC IDs are 0..cpus-1 unless `apicIds` says otherwise. */
  cpus: number;
  apicIds?: readonly number[];
  ioapicId: number;
  /** Default 0xFEC00000. */
  ioapicAddress?: number;
  /** Default 0xFEE00000. */
  localApicAddress?: number;
  /** I/O port base of the AcpiPm window (PM1a_EVT at +0, PM1a_CNT at +4, PM_TMR at +8). */
  pmBase: number;
  /** The SCI's ISA IRQ (default 9). */
  sciIrq?: number;
  /** Route ISA IRQ 0 to GSI 2 with an interrupt source override (default true). */
  irq0ToGsi2?: boolean;
  /** The \_S5 sleep type written to SLP_TYP (default 5). */
  s5SleepType?: number;
  /** CMOS index of the century byte (default 0x32; 0 for none). */
  centuryIndex?: number;
  /** virtio-mmio devices to describe in the DSDT (default none). */
  virtioMmio?: readonly VirtioMmioAcpi[];
}

/** One virtio-mmio window and its interrupt, as the DSDT describes it. */
export interface VirtioMmioAcpi {
  /** Guest-physical base of the window (below 4 GiB). */
  base: number;
  /** Window size in bytes (virtio-mmio.ts VIRTIO_MMIO_SIZE). */
  size: number;
  /** The GSI (I/O APIC input) the device's line drives. */
  irq: number;
  /** How the line signals (default 'level'). */
  trigger?: 'level' | 'edge';
}

export interface AcpiTables {
  /** The blob to copy to guest-physical `at`. */
  bytes: Uint8Array;
  rsdpAddress: number;
  /** Guest-physical address of each table, by signature. */
  tables: Record<'RSDP' | 'RSDT' | 'XSDT' | 'FACP' | 'FACS' | 'DSDT' | 'APIC', number>;
}

const OEM_ID = 'TSVMM ';
const OEM_TABLE_ID = 'TSVMMPC ';
const CREATOR_ID = 'TSVM';
const CREATOR_REVISION = 1;
const HEADER_LENGTH = 36;

// RSDP.
const RSDP_SIGNATURE = 'RSD PTR ';
const RSDP_REVISION = 2; // ACPI 2.0+ (has the XSDT address)
const RSDP_LENGTH = 36;
const RSDP_V1_CHECKSUM_LENGTH = 20;

// Table revisions.
const RSDT_REVISION = 1;
const XSDT_REVISION = 1;
const FADT_REVISION = 6;
const FADT_MINOR_REVISION = 0;
const FADT_LENGTH = 276;
const DSDT_REVISION = 2; // 64-bit integers
const MADT_REVISION = 5;
const FACS_LENGTH = 64;
const FACS_VERSION = 2;

// FADT field offsets.
const FADT_FIRMWARE_CTRL = 36;
const FADT_DSDT = 40;
const FADT_SCI_INT = 46;
const FADT_PM1A_EVT_BLK = 56;
const FADT_PM1A_CNT_BLK = 64;
const FADT_PM_TMR_BLK = 76;
const FADT_PM1_EVT_LEN = 88;
const FADT_PM1_CNT_LEN = 89;
const FADT_PM_TMR_LEN = 91;
const FADT_P_LVL2_LAT = 96;
const FADT_P_LVL3_LAT = 98;
const FADT_CENTURY = 108;
const FADT_IAPC_BOOT_ARCH = 109;
const FADT_FLAGS = 112;
const FADT_RESET_REG = 116;
const FADT_RESET_VALUE = 128;
const FADT_MINOR_VERSION = 131;
const FADT_X_FIRMWARE_CTRL = 132;
const FADT_X_DSDT = 140;
const FADT_X_PM1A_EVT_BLK = 148;
const FADT_X_PM1A_CNT_BLK = 172;
const FADT_X_PM_TMR_BLK = 208;
const FADT_HYPERVISOR_ID = 268;

// FADT flags.
export const FADT_WBINVD = 1 << 0; // WBINVD works
export const FADT_PROC_C1 = 1 << 2; // C1 (HLT) supported on all processors
export const FADT_SLP_BUTTON = 1 << 5; // no fixed-feature sleep button
export const FADT_FIX_RTC = 1 << 6; // RTC wake status not in the fixed registers
export const FADT_RESET_REG_SUP = 1 << 10; // RESET_REG is supported
const FADT_FLAGS_VALUE = FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_FIX_RTC | FADT_RESET_REG_SUP;
// IA-PC boot architecture flags.
export const BOOT_ARCH_LEGACY_DEVICES = 1 << 0;
export const BOOT_ARCH_8042 = 1 << 1;
export const BOOT_ARCH_VGA_NOT_PRESENT = 1 << 2;
const BOOT_ARCH_VALUE = BOOT_ARCH_LEGACY_DEVICES | BOOT_ARCH_8042 | BOOT_ARCH_VGA_NOT_PRESENT;
const C2_NOT_SUPPORTED = 101; // P_LVL2_LAT > 100
const C3_NOT_SUPPORTED = 1001; // P_LVL3_LAT > 1000

// Generic Address Structure.
const GAS_SYSTEM_IO = 1;
const GAS_ACCESS_BYTE = 1;
const GAS_ACCESS_WORD = 2;
const GAS_ACCESS_DWORD = 3;

// MADT.
const MADT_PCAT_COMPAT = 1;
const MADT_LOCAL_APIC = 0;
const MADT_IO_APIC = 1;
const MADT_INTERRUPT_OVERRIDE = 2;
const MADT_LOCAL_APIC_NMI = 4;
const MADT_LAPIC_ENABLED = 1;
const MPS_INTI_ACTIVE_HIGH = 0x1; // polarity bits 1-0 = 01
const MPS_INTI_EDGE = 0x4; // trigger bits 3-2 = 01
const MPS_INTI_LEVEL = 0xc; // trigger bits 3-2 = 11
const ALL_PROCESSORS = 0xff;

// AML opcodes (ACPI spec, AML grammar).
export const AML_ZERO_OP = 0x00;
export const AML_ONE_OP = 0x01;
export const AML_NAME_OP = 0x08;
export const AML_BYTE_PREFIX = 0x0a;
export const AML_PACKAGE_OP = 0x12;
export const AML_STRING_PREFIX = 0x0d;
export const AML_BUFFER_OP = 0x11;
export const AML_SCOPE_OP = 0x10;
export const AML_EXT_OP_PREFIX = 0x5b;
export const AML_DEVICE_OP = 0x82; // after AML_EXT_OP_PREFIX
export const AML_ROOT_CHAR = 0x5c; // '\\'

// Resource descriptors (ACPI 6.x §6.4).
const RES_MEMORY32_FIXED = 0x86; // large item, 9 bytes of data
const RES_EXTENDED_IRQ = 0x89; // large item: flags, count, 32-bit interrupt numbers
const RES_END_TAG = 0x79; // small item, 1 byte: the checksum (0: none)
const RES_MEM_READ_WRITE = 0x01;
const RES_IRQ_CONSUMER = 0x01;
const RES_IRQ_EDGE = 0x02;
/** The _HID Linux's virtio_mmio driver matches. */
export const VIRTIO_MMIO_HID = 'LNRO0005';

/** The 8-bit sum of `bytes` (a table is valid when the sum over it is 0). */
export function acpiSum(bytes: Uint8Array): number {
  let s = 0;
  for (const b of bytes) s = (s + b) & 0xff;
  return s;
}

/**
 * Encodes an AML PkgLength for a package whose contents after the PkgLength are `contentLength`
 * bytes. The encoded length counts the PkgLength bytes themselves: one byte holds up to 63 in
 * bits 5-0; otherwise bits 7-6 of the lead byte give the number (1-3) of following bytes, bits
 * 3-0 the low nibble, and the following bytes the rest, least significant first.
 */
export function encodePkgLength(contentLength: number): number[] {
  for (let extra = 0; extra <= 3; extra++) {
    const total = contentLength + 1 + extra;
    if (extra === 0) {
      if (total <= 0x3f) return [total];
      continue;
    }
    if (total >= 2 ** (4 + 8 * extra)) continue;
    const out = [(extra << 6) | (total & 0x0f)];
    for (let i = 0; i < extra; i++) out.push((total >>> (4 + 8 * i)) & 0xff);
    return out;
  }
  throw new RangeError(`AML package of ${contentLength} bytes is too long for a PkgLength`);
}

/** An AML integer constant: ZeroOp, OneOp, or BytePrefix/WordPrefix/DWordPrefix data. */
function amlInteger(v: number): number[] {
  if (v === 0) return [AML_ZERO_OP];
  if (v === 1) return [AML_ONE_OP];
  if (v <= 0xff) return [AML_BYTE_PREFIX, v];
  if (v <= 0xffff) return [0x0b, v & 0xff, v >> 8];
  return [0x0c, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

function ascii(s: string): number[] {
  return [...s].map((c) => c.charCodeAt(0));
}

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

/** The _CRS buffer of a virtio-mmio device: its window and its interrupt. */
function virtioMmioResources(d: VirtioMmioAcpi): number[] {
  const flags = RES_IRQ_CONSUMER | (d.trigger === 'edge' ? RES_IRQ_EDGE : 0); // active high, exclusive
  return [
    RES_MEMORY32_FIXED, 9, 0, RES_MEM_READ_WRITE, ...le32(d.base), ...le32(d.size),
    RES_EXTENDED_IRQ, 6, 0, flags, 1, ...le32(d.irq),
    RES_END_TAG, 0,
  ];
}

/** Device (VRnn) { _HID "LNRO0005", _UID n, _CRS } for virtio-mmio device number n. */
function virtioMmioDevice(n: number, d: VirtioMmioAcpi): number[] {
  if (!Number.isInteger(d.base) || d.base < 0 || d.base + d.size > 2 ** 32 || !Number.isInteger(d.size) || d.size < 1 || !Number.isInteger(d.irq) || d.irq < 0) {
    throw new RangeError(`virtio-mmio device ${n}: window 0x${d.base.toString(16)}+0x${d.size.toString(16)} IRQ ${d.irq} cannot be described`);
  }
  const resources = virtioMmioResources(d);
  const buffer = [...amlInteger(resources.length), ...resources];
  const body = [
    AML_NAME_OP, ...ascii('_HID'), AML_STRING_PREFIX, ...ascii(VIRTIO_MMIO_HID), 0,
    AML_NAME_OP, ...ascii('_UID'), ...amlInteger(n),
    AML_NAME_OP, ...ascii('_CRS'), AML_BUFFER_OP, ...encodePkgLength(buffer.length), ...buffer,
  ];
  const name = ascii(`VR${n.toString(16).toUpperCase().padStart(2, '0')}`);
  return [AML_EXT_OP_PREFIX, AML_DEVICE_OP, ...encodePkgLength(name.length + body.length), ...name, ...body];
}

/**
 * The DSDT's AML body: Name (_S5, Package () { typ, typ, 0, 0 }), then, when there are
 * virtio-mmio devices, Scope (\_SB) with one Device each.
 */
export function buildDsdtBody(s5SleepType: number, virtioMmio: readonly VirtioMmioAcpi[] = []): Uint8Array {
  const elements = [...amlInteger(s5SleepType), ...amlInteger(s5SleepType), ...amlInteger(0), ...amlInteger(0)];
  const content = [4, ...elements]; // NumElements, then the elements
  const s5 = [AML_NAME_OP, ...ascii('_S5_'), AML_PACKAGE_OP, ...encodePkgLength(content.length), ...content];
  if (virtioMmio.length === 0) return Uint8Array.from(s5);
  if (virtioMmio.length > 256) throw new RangeError(`${virtioMmio.length} virtio-mmio devices: at most 256 can be named`);
  const devices = virtioMmio.flatMap((d, n) => virtioMmioDevice(n, d));
  const scope = [AML_ROOT_CHAR, ...ascii('_SB_'), ...devices];
  return Uint8Array.from([...s5, AML_SCOPE_OP, ...encodePkgLength(scope.length), ...scope]);
}

/** Little-endian writer over a growing blob. */
class Blob {
  readonly bytes: Uint8Array;
  readonly view: DataView;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }

  u8(at: number, v: number): void { this.view.setUint8(at, v); }
  u16(at: number, v: number): void { this.view.setUint16(at, v, true); }
  u32(at: number, v: number): void { this.view.setUint32(at, v >>> 0, true); }
  u64(at: number, v: number): void {
    this.view.setUint32(at, v % 2 ** 32, true);
    this.view.setUint32(at + 4, Math.floor(v / 2 ** 32), true);
  }
  str(at: number, s: string): void { ascii(s).forEach((c, i) => this.u8(at + i, c)); }
  gas(at: number, bitWidth: number, accessSize: number, address: number): void {
    this.u8(at, GAS_SYSTEM_IO);
    this.u8(at + 1, bitWidth);
    this.u8(at + 2, 0);
    this.u8(at + 3, accessSize);
    this.u64(at + 4, address);
  }

  /** Writes a system description table header (checksum filled by `seal`). */
  header(at: number, signature: string, length: number, revision: number): void {
    this.str(at, signature);
    this.u32(at + 4, length);
    this.u8(at + 8, revision);
    this.str(at + 10, OEM_ID);
    this.str(at + 16, OEM_TABLE_ID);
    this.u32(at + 24, 1); // OEM revision
    this.str(at + 28, CREATOR_ID);
    this.u32(at + 32, CREATOR_REVISION);
  }

  /** Sets the checksum byte at `at + checksumOffset` so `length` bytes from `at` sum to 0. */
  seal(at: number, length: number, checksumOffset = 9): void {
    this.u8(at + checksumOffset, 0);
    this.u8(at + checksumOffset, (0x100 - acpiSum(this.bytes.subarray(at, at + length))) & 0xff);
  }
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Builds the tables for guest-physical address `at` (must be 16-byte aligned). */
export function buildAcpiTables(at: number, opts: AcpiTableOptions): AcpiTables {
  if (at % 16 !== 0) throw new RangeError(`ACPI tables at 0x${at.toString(16)}: the RSDP must be 16-byte aligned`);
  const apicIds = opts.apicIds ?? Array.from({ length: opts.cpus }, (_, i) => i);
  if (apicIds.length !== opts.cpus || opts.cpus < 1 || opts.cpus > 255) throw new RangeError(`ACPI tables: ${opts.cpus} CPUs with APIC IDs [${apicIds.join(', ')}]`);
  const sciIrq = opts.sciIrq ?? 9;
  const irq0ToGsi2 = opts.irq0ToGsi2 ?? true;
  const dsdtBody = buildDsdtBody(opts.s5SleepType ?? 5, opts.virtioMmio);
  const overrides: [number, number, number][] = []; // [isa irq, gsi, flags]
  if (irq0ToGsi2) overrides.push([0, 2, 0]); // conforming (edge, active high on ISA)
  overrides.push([sciIrq, sciIrq, MPS_INTI_LEVEL | MPS_INTI_ACTIVE_HIGH]);

  // Offsets within the blob.
  const rsdp = 0;
  const facs = align(at + RSDP_LENGTH, 64) - at;
  const rsdt = facs + FACS_LENGTH;
  const rsdtLength = HEADER_LENGTH + 4 * 3;
  const xsdt = align(rsdt + rsdtLength, 8);
  const xsdtLength = HEADER_LENGTH + 8 * 3;
  const fadt = align(xsdt + xsdtLength, 8);
  const dsdt = align(fadt + FADT_LENGTH, 8);
  const dsdtLength = HEADER_LENGTH + dsdtBody.length;
  const madt = align(dsdt + dsdtLength, 8);
  const madtLength = HEADER_LENGTH + 8 + 8 * opts.cpus + 12 + 10 * overrides.length + 6;
  const total = align(madt + madtLength, 16);

  const b = new Blob(total);
  const addr = (off: number) => at + off;

  // RSDP.
  b.str(rsdp, RSDP_SIGNATURE);
  b.str(rsdp + 9, OEM_ID);
  b.u8(rsdp + 15, RSDP_REVISION);
  b.u32(rsdp + 16, addr(rsdt));
  b.u32(rsdp + 20, RSDP_LENGTH);
  b.u64(rsdp + 24, addr(xsdt));
  b.seal(rsdp, RSDP_V1_CHECKSUM_LENGTH, 8);
  b.seal(rsdp, RSDP_LENGTH, 32);

  // FACS (no checksum).
  b.str(facs, 'FACS');
  b.u32(facs + 4, FACS_LENGTH);
  b.u8(facs + 32, FACS_VERSION);

  // RSDT and XSDT: FADT, MADT... (the DSDT is reached through the FADT).
  const entries = [fadt, madt];
  b.header(rsdt, 'RSDT', HEADER_LENGTH + 4 * entries.length, RSDT_REVISION);
  entries.forEach((e, i) => b.u32(rsdt + HEADER_LENGTH + 4 * i, addr(e)));
  b.seal(rsdt, HEADER_LENGTH + 4 * entries.length);
  b.header(xsdt, 'XSDT', HEADER_LENGTH + 8 * entries.length, XSDT_REVISION);
  entries.forEach((e, i) => b.u64(xsdt + HEADER_LENGTH + 8 * i, addr(e)));
  b.seal(xsdt, HEADER_LENGTH + 8 * entries.length);

  // FADT.
  b.header(fadt, 'FACP', FADT_LENGTH, FADT_REVISION);
  b.u32(fadt + FADT_FIRMWARE_CTRL, addr(facs));
  b.u32(fadt + FADT_DSDT, addr(dsdt));
  b.u16(fadt + FADT_SCI_INT, sciIrq);
  b.u32(fadt + FADT_PM1A_EVT_BLK, opts.pmBase + PM1_STS_OFFSET);
  b.u32(fadt + FADT_PM1A_CNT_BLK, opts.pmBase + PM1_CNT_OFFSET);
  b.u32(fadt + FADT_PM_TMR_BLK, opts.pmBase + PM_TMR_OFFSET);
  b.u8(fadt + FADT_PM1_EVT_LEN, PM1_EVT_LEN);
  b.u8(fadt + FADT_PM1_CNT_LEN, PM1_CNT_LEN);
  b.u8(fadt + FADT_PM_TMR_LEN, PM_TMR_LEN);
  b.u16(fadt + FADT_P_LVL2_LAT, C2_NOT_SUPPORTED);
  b.u16(fadt + FADT_P_LVL3_LAT, C3_NOT_SUPPORTED);
  b.u8(fadt + FADT_CENTURY, opts.centuryIndex ?? 0x32);
  b.u16(fadt + FADT_IAPC_BOOT_ARCH, BOOT_ARCH_VALUE);
  b.u32(fadt + FADT_FLAGS, FADT_FLAGS_VALUE);
  b.gas(fadt + FADT_RESET_REG, 8, GAS_ACCESS_BYTE, ACPI_RESET_PORT);
  b.u8(fadt + FADT_RESET_VALUE, ACPI_RESET_VALUE);
  b.u8(fadt + FADT_MINOR_VERSION, FADT_MINOR_REVISION);
  b.u64(fadt + FADT_X_FIRMWARE_CTRL, addr(facs));
  b.u64(fadt + FADT_X_DSDT, addr(dsdt));
  b.gas(fadt + FADT_X_PM1A_EVT_BLK, 8 * PM1_EVT_LEN, GAS_ACCESS_WORD, opts.pmBase + PM1_STS_OFFSET);
  b.gas(fadt + FADT_X_PM1A_CNT_BLK, 8 * PM1_CNT_LEN, GAS_ACCESS_WORD, opts.pmBase + PM1_CNT_OFFSET);
  b.gas(fadt + FADT_X_PM_TMR_BLK, 8 * PM_TMR_LEN, GAS_ACCESS_DWORD, opts.pmBase + PM_TMR_OFFSET);
  b.str(fadt + FADT_HYPERVISOR_ID, 'TSVMM\0\0\0');
  b.seal(fadt, FADT_LENGTH);

  // DSDT.
  b.header(dsdt, 'DSDT', dsdtLength, DSDT_REVISION);
  b.bytes.set(dsdtBody, dsdt + HEADER_LENGTH);
  b.seal(dsdt, dsdtLength);

  // MADT.
  b.header(madt, 'APIC', madtLength, MADT_REVISION);
  b.u32(madt + 36, opts.localApicAddress ?? APIC_DEFAULT_BASE);
  b.u32(madt + 40, MADT_PCAT_COMPAT);
  let p = madt + 44;
  apicIds.forEach((id, uid) => {
    b.u8(p, MADT_LOCAL_APIC); b.u8(p + 1, 8); b.u8(p + 2, uid); b.u8(p + 3, id); b.u32(p + 4, MADT_LAPIC_ENABLED);
    p += 8;
  });
  b.u8(p, MADT_IO_APIC); b.u8(p + 1, 12); b.u8(p + 2, opts.ioapicId); b.u8(p + 3, 0);
  b.u32(p + 4, opts.ioapicAddress ?? IOAPIC_DEFAULT_BASE); b.u32(p + 8, 0); // GSI base 0
  p += 12;
  for (const [irq, gsi, flags] of overrides) {
    b.u8(p, MADT_INTERRUPT_OVERRIDE); b.u8(p + 1, 10); b.u8(p + 2, 0); // bus 0 = ISA
    b.u8(p + 3, irq); b.u32(p + 4, gsi); b.u16(p + 8, flags);
    p += 10;
  }
  b.u8(p, MADT_LOCAL_APIC_NMI); b.u8(p + 1, 6); b.u8(p + 2, ALL_PROCESSORS);
  b.u16(p + 3, MPS_INTI_EDGE | MPS_INTI_ACTIVE_HIGH); b.u8(p + 5, 1); // LINT1
  b.seal(madt, madtLength);

  return {
    bytes: b.bytes,
    rsdpAddress: addr(rsdp),
    tables: { RSDP: addr(rsdp), RSDT: addr(rsdt), XSDT: addr(xsdt), FACP: addr(fadt), FACS: addr(facs), DSDT: addr(dsdt), APIC: addr(madt) },
  };
}
