/**
 * The port-I/O bus and the MMIO bus: each maps an address range to a device and hands the
 * device the offset into its own window. Guest accesses to nothing are guest behaviour, not
 * errors: reads float to all ones (the ISA/PCI bus pulls the data lines high), writes are
 * dropped, and both are counted by address range and logged. A guest may touch every port and
 * every page of its address space, so both are bounded: at most UNKNOWN_RANGES ranges (past
 * that, the two closest merge) and UNKNOWN_LOGGED notes, then one line saying the rest is only
 * counted.
 *
 * An access is routed to the device whose window holds its first byte; a multi-byte access
 * that runs past the end of that window is still given whole to that device, which decides
 * (the legacy devices here split it into byte accesses).
 */
import { hex } from '../common/bits.js';
import { TsvmmError, assert } from '../common/errors.js';
import { PAGE_SIZE } from '../memory/page.js';

/** A device on the port-I/O bus; `offset` is relative to the base it was registered at. */
export interface PortDevice {
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

/** A device on the MMIO bus: reads fill `data`, writes consume it (little-endian bytes). */
export interface MmioDevice {
  read(offset: number, data: Uint8Array): void;
  write(offset: number, data: Uint8Array): void;
}

/** Accesses where nothing lives: addresses `first` to `last` (inclusive) took `count` of them. */
export interface UnknownRange {
  first: number;
  last: number;
  count: number;
}

/** The most ranges of unknown accesses a bus counts separately; past it, the two closest merge. */
export const UNKNOWN_RANGES = 32;
/** Unknown accesses a bus notes one by one in the log (each at an address no earlier note covers). */
export const UNKNOWN_LOGGED = 16;

/** Counts accesses to nothing by address range, in bounded memory, and logs the first few. */
class UnknownAccesses {
  /** Sorted by `first`, never overlapping. */
  private readonly counted: UnknownRange[] = [];
  private notes = 0;

  /** `granule`: addresses are counted in aligned blocks of this size (1 for ports, a page for MMIO). */
  constructor(private readonly granule: number, private readonly log: (message: string) => void, private readonly what: string) {}

  /** Counts an access at `addr`; `describe` words the log note for an address not seen before. */
  note(addr: number, describe: () => string): void {
    const first = addr - (addr % this.granule);
    const list = this.counted;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid]!.first <= first) lo = mid + 1;
      else hi = mid;
    }
    const holder = list[lo - 1];
    if (holder && first <= holder.last) {
      holder.count++;
      return;
    }
    list.splice(lo, 0, { first, last: first + this.granule - 1, count: 1 });
    if (list.length > UNKNOWN_RANGES) this.mergeClosest();
    if (this.notes < UNKNOWN_LOGGED) this.log(describe());
    else if (this.notes === UNKNOWN_LOGGED) this.log(`more ${this.what} with nothing there: counted by range, not logged`);
    else return;
    this.notes++;
  }

  /** Merges the two neighbouring ranges with the smallest gap between them. */
  private mergeClosest(): void {
    const list = this.counted;
    let best = 0;
    for (let i = 1; i + 1 < list.length; i++) {
      if (list[i + 1]!.first - list[i]!.last < list[best + 1]!.first - list[best]!.last) best = i;
    }
    const a = list[best]!;
    const b = list[best + 1]!;
    a.last = b.last;
    a.count += b.count;
    list.splice(best + 1, 1);
  }

  ranges(): UnknownRange[] {
    return this.counted.map((r) => ({ ...r }));
  }
}

/** One registered window, as listed by `ranges()`. */
export interface BusRange {
  base: number;
  length: number;
  name: string;
}

export interface BusOptions {
  /** Where the one-time "unknown port/page" notices go (default: nowhere). */
  log?: (message: string) => void;
}

/** All ones of an access size. */
const ALL_ONES: Record<1 | 2 | 4, number> = { 1: 0xff, 2: 0xffff, 4: 0xffff_ffff };

const PORT_SPACE = 0x1_0000;

function isAccessSize(size: number): size is 1 | 2 | 4 {
  return size === 1 || size === 2 || size === 4;
}

/** Reads a little-endian unsigned value of `size` bytes. */
export function readLe(data: Uint8Array, size: 1 | 2 | 4): number {
  switch (size) {
    case 1: return data[0]!;
    case 2: return data[0]! | (data[1]! << 8);
    case 4: return (data[0]! | (data[1]! << 8) | (data[2]! << 16) | (data[3]! << 24)) >>> 0;
  }
}

/** Writes `value` as `size` little-endian bytes. */
export function writeLe(data: Uint8Array, size: 1 | 2 | 4, value: number): void {
  data[0] = value & 0xff;
  if (size === 1) return;
  data[1] = (value >>> 8) & 0xff;
  if (size === 2) return;
  data[2] = (value >>> 16) & 0xff;
  data[3] = (value >>> 24) & 0xff;
}

interface PortEntry extends BusRange {
  device: PortDevice;
}

/**
 * The 64K x86 I/O port space. Lookup is one load from a 64K-entry table (port -> entry), since
 * the bus is hit on every I/O exit.
 */
export class PortBus {
  private readonly entries: (PortEntry | undefined)[] = [undefined]; // slot 0 = no device
  private readonly table = new Uint16Array(PORT_SPACE); // port -> index into entries
  private readonly unknownAccesses: UnknownAccesses;

  constructor(opts: BusOptions = {}) {
    this.unknownAccesses = new UnknownAccesses(1, opts.log ?? (() => {}), 'ports');
  }

  /** Ports the guest touched where no device lives, by range (at most UNKNOWN_RANGES). */
  get unknown(): UnknownRange[] {
    return this.unknownAccesses.ranges();
  }

  register(base: number, length: number, name: string, device: PortDevice): void {
    if (!Number.isInteger(base) || !Number.isInteger(length) || base < 0 || length < 1 || base + length > PORT_SPACE) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `port range ${hex(base)}+${length} for ${name} is not inside the 64K port space`);
    }
    for (let p = base; p < base + length; p++) {
      const other = this.entries[this.table[p]!];
      if (other) {
        throw new TsvmmError('TSVMM_BAD_ARGUMENT',
          `port range ${hex(base)}-${hex(base + length - 1)} for ${name} overlaps ${other.name} at ${hex(other.base)}-${hex(other.base + other.length - 1)}`);
      }
    }
    let slot = this.entries.indexOf(undefined, 1);
    if (slot < 0) slot = this.entries.length;
    assert(slot < PORT_SPACE, 'port bus entry table has room');
    this.entries[slot] = { base, length, name, device };
    this.table.fill(slot, base, base + length);
  }

  /** Removes the window registered at `base` (a PCI BAR moving, a device unplugged). */
  unregister(base: number): void {
    const slot = base >= 0 && base < PORT_SPACE ? this.table[base]! : 0;
    const entry = this.entries[slot];
    if (!entry || entry.base !== base) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `no port range registered at ${hex(base)}`);
    this.table.fill(0, entry.base, entry.base + entry.length);
    this.entries[slot] = undefined;
  }

  ranges(): BusRange[] {
    return this.entries
      .filter((e): e is PortEntry => e !== undefined)
      .map(({ base, length, name }) => ({ base, length, name }))
      .sort((a, b) => a.base - b.base);
  }

  read(port: number, size: 1 | 2 | 4): number {
    const entry = this.entries[this.table[port & 0xffff]!];
    if (!entry) {
      this.noteUnknown(port, 'read', size);
      return ALL_ONES[size];
    }
    return entry.device.read(port - entry.base, size);
  }

  write(port: number, size: 1 | 2 | 4, value: number): void {
    const entry = this.entries[this.table[port & 0xffff]!];
    if (!entry) {
      this.noteUnknown(port, 'write', size);
      return;
    }
    entry.device.write(port - entry.base, size, (value & ALL_ONES[size]) >>> 0);
  }

  /** Serves an IoAccess from nvmm/assist.ts: `data` holds `size` little-endian bytes. */
  access(io: { port: number; in: boolean; size: number; data: Uint8Array }): void {
    const size = io.size;
    assert(isAccessSize(size) && io.data.length >= size, `port access size ${size} with ${io.data.length} data bytes`);
    if (io.in) writeLe(io.data, size, this.read(io.port, size));
    else this.write(io.port, size, readLe(io.data, size));
  }

  private noteUnknown(port: number, what: 'read' | 'write', size: number): void {
    this.unknownAccesses.note(port, () => `port ${hex(port)}: ${what} of ${size} byte(s) with no device (further accesses counted, not logged)`);
  }
}

interface MmioEntry extends BusRange {
  device: MmioDevice;
}

/** Guest-physical MMIO windows, kept sorted by base and found by binary search. */
export class MmioBus {
  private readonly entries: MmioEntry[] = [];
  private readonly unknownAccesses: UnknownAccesses;

  constructor(opts: BusOptions = {}) {
    this.unknownAccesses = new UnknownAccesses(PAGE_SIZE, opts.log ?? (() => {}), 'MMIO pages');
  }

  /** Guest-physical pages the guest touched where nothing is mapped, by range of whole pages (at most UNKNOWN_RANGES). */
  get unknown(): UnknownRange[] {
    return this.unknownAccesses.ranges();
  }

  register(base: number, length: number, name: string, device: MmioDevice): void {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(length) || base < 0 || length < 1 || !Number.isSafeInteger(base + length)) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `MMIO range ${hex(base)}+${hex(length)} for ${name} is not a valid guest-physical range`);
    }
    const at = this.upperBound(base); // first entry with entry.base > base
    const before = this.entries[at - 1];
    const after = this.entries[at];
    for (const other of [before, after]) {
      if (other && base < other.base + other.length && other.base < base + length) {
        throw new TsvmmError('TSVMM_BAD_ARGUMENT',
          `MMIO range ${hex(base)}-${hex(base + length - 1)} for ${name} overlaps ${other.name} at ${hex(other.base)}-${hex(other.base + other.length - 1)}`);
      }
    }
    this.entries.splice(at, 0, { base, length, name, device });
  }

  unregister(base: number): void {
    const i = this.entries.findIndex((e) => e.base === base);
    if (i < 0) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `no MMIO range registered at ${hex(base)}`);
    this.entries.splice(i, 1);
  }

  ranges(): BusRange[] {
    return this.entries.map(({ base, length, name }) => ({ base, length, name }));
  }

  /** The entry whose window holds `gpa`, if any. */
  private find(gpa: number): MmioEntry | undefined {
    const e = this.entries[this.upperBound(gpa) - 1];
    return e && gpa < e.base + e.length ? e : undefined;
  }

  /** Index of the first entry whose base is greater than `gpa`. */
  private upperBound(gpa: number): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.entries[mid]!.base <= gpa) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  read(gpa: number, data: Uint8Array): void {
    const entry = this.find(gpa);
    if (!entry) {
      this.noteUnknown(gpa, 'read', data.length);
      data.fill(0xff);
      return;
    }
    entry.device.read(gpa - entry.base, data);
  }

  write(gpa: number, data: Uint8Array): void {
    const entry = this.find(gpa);
    if (!entry) {
      this.noteUnknown(gpa, 'write', data.length);
      return;
    }
    entry.device.write(gpa - entry.base, data);
  }

  /** Serves a MemAccess from nvmm/assist.ts. */
  access(mem: { gpa: number; write: boolean; size: number; data: Uint8Array }): void {
    assert(mem.size >= 1 && mem.data.length >= mem.size, `MMIO access size ${mem.size} with ${mem.data.length} data bytes`);
    const data = mem.data.length === mem.size ? mem.data : mem.data.subarray(0, mem.size);
    if (mem.write) this.write(mem.gpa, data);
    else this.read(mem.gpa, data);
  }

  private noteUnknown(gpa: number, what: 'read' | 'write', size: number): void {
    this.unknownAccesses.note(gpa, () => `MMIO ${hex(gpa)}: ${what} of ${size} byte(s) with nothing mapped (further accesses to page ${hex(gpa - (gpa % PAGE_SIZE))} counted, not logged)`);
  }
}
