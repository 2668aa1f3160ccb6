/**
 * The snapshot file (docs/snapshot-format.md): a header, then sections, each with its type, its
 * length and the CRC32 of its payload. This file knows the bytes only; what goes into a snapshot
 * and how it is put back is snapshot.ts.
 *
 * A snapshot is untrusted input (a user's file, possibly damaged or made by someone else), so the
 * reader checks everything before anyone uses it: the magic and version, every section's type,
 * order, length and checksum, the machine description (through machineConfig, as any config),
 * that the vCPUs and RAM regions are exactly those that description implies, and that RAM's page
 * runs lie inside their region and account for the section's length. It reads small sections
 * whole (each has a bound) and RAM in chunks, so a hostile length costs neither memory nor time
 * beyond the file's size. RAM pages are put into guest memory afterwards (loadRam), run by run:
 * mapped copy-on-write from the file where the guest memory allows it (version 2 keeps them
 * page-aligned in the file for that), copied straight from the file otherwise.
 *
 * RAM's checksum is a full read of the file's pages: readSnapshot computes it the first time this
 * process reads a version of a file (its device, inode, size, modification and change times) and
 * remembers that version as checked, so restoring the same unchanged file again costs no read of
 * its RAM. loadRam refuses a file that is no longer the version readSnapshot checked.
 *
 * vCPU state is the libnvmm state groups (nvmm/state.ts), laid out at fixed offsets: whatever
 * backend saved it, any backend that implements the groups can load it. The FPU group is stored
 * as an XSAVE image (the FXSAVE legacy region, then the XSAVE header), so that a backend with
 * more extended state (AVX on KVM) can append its components later without a new layout.
 */
import { closeSync, fstatSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { TsvmmError, type ErrorCode } from '../common/errors.js';
import type { BackendName } from '../nvmm/backend.js';
import { CR_COUNT, DR_COUNT, GPR_COUNT, MSR_COUNT, SEG_COUNT, emptyState, type Segment, type X64State } from '../nvmm/state.js';
import { FXSAVE, XSAVE_HEADER_XSTATE_BV, XSTATE_SSE, XSTATE_X87 } from '../x86/fxsave.js';
import { machineConfig, type MachineConfig } from './config.js';

/** The file's first 8 bytes. */
export const SNAPSHOT_MAGIC = 'TSVMSNAP';
/** The format version this code writes. */
export const SNAPSHOT_VERSION = 2;
/** The versions it reads: 1 (RAM pages unaligned in the file: always copied) and 2. */
export const SNAPSHOT_VERSIONS_READ: readonly number[] = [1, 2];
export const HEADER_BYTES = 16;
export const SECTION_HEADER_BYTES = 24;
export const PAGE = 4096;

/** Section types, in the order they must appear (RAM and VCPU repeat). */
export const SECTION = { MACHINE: 1, VCPU: 2, DEVICES: 3, RAM: 4, END: 0xff } as const;

/** The most bytes of the JSON sections (the machine description, the devices' state). */
export const MAX_MACHINE_BYTES = 1 << 20;
export const MAX_DEVICES_BYTES = 16 << 20;
/** An XSAVE image: the legacy region and the header at least, at most 64 KiB (CPUID leaf 0xD sizes are far below). */
export const XSAVE_MIN_BYTES = FXSAVE.size + 64;
export const XSAVE_MAX_BYTES = 64 * 1024;
/** RAM is read into guest memory in pieces of at most this size (bounded host memory for the checksum pass). */
const CHUNK = 1 << 20;

/** A drive as it was when the snapshot was taken: a restore refuses it if it changed since. */
export interface DriveStamp {
  file: string;
  size: number;
  mtimeMs: number;
}

/** The MACHINE section: what the machine was and what the host knew of it. */
export interface SnapshotMachine {
  config: MachineConfig;
  /** The backend it ran on (informational: any backend with the state groups restores it). */
  backend: BackendName;
  /** The guest clock (GuestClock.now) when the state was taken: the restored clock continues from it. */
  guestNs: number;
  drives: DriveStamp[];
  /** Guest RAM, as the board laid it out for config.memory. */
  ram: { gpa: number; size: number }[];
  /** The host had seen the exec agent's hello (and no command was in flight). */
  agentReady: boolean;
}

/** One vCPU's state: every libnvmm state group, and the XSAVE image's bytes beyond the FXSAVE region. */
export interface SavedVcpu {
  id: number;
  state: X64State;
  /** XSAVE components beyond x87 and SSE (empty: none). Backends that have none refuse a non-empty one. */
  xsaveExtended: Uint8Array;
}

/** A run of saved pages: `count` pages from page `first` of its region. */
export interface PageRun {
  first: number;
  count: number;
}

/** A RAM region as the reader found it: its runs and where their bytes are in the file. */
export interface RamSection {
  gpa: number;
  size: number;
  runs: PageRun[];
  /** File offset of the first run's first page; runs follow each other. */
  dataOffset: number;
  /** dataOffset is a multiple of the page size (version 2): the pages can be mapped from the file. */
  aligned: boolean;
  /** The CRC32 of the whole section payload (checked again while the pages are copied). */
  crc: number;
  /** Where the payload starts and how long it is. */
  payloadOffset: number;
  payloadLength: number;
}

export interface ParsedSnapshot {
  /** The file's version as read (fileStamp): loadRam refuses the file once it is another. */
  stamp: string;
  machine: SnapshotMachine;
  vcpus: SavedVcpu[];
  devices: Record<string, unknown>;
  ram: RamSection[];
}

/** What the writer takes: the machine, vCPUs, devices, and RAM as bytes by guest-physical address. */
export interface SnapshotContents {
  machine: SnapshotMachine;
  vcpus: SavedVcpu[];
  devices: Record<string, unknown>;
  ram: { gpa: number; bytes: Uint8Array }[];
}

function fail(code: ErrorCode, message: string, detail?: Record<string, unknown>): never {
  throw new TsvmmError(code, message, detail);
}

// ---- vCPU layout ----

/** Segment attributes packed in 16 bits: type 0-3, S 4, DPL 5-6, P 7, AVL 8, L 9, D/B 10, G 11. */
const ATTR = { S: 1 << 4, DPL_SHIFT: 5, P: 1 << 7, AVL: 1 << 8, L: 1 << 9, DEF: 1 << 10, G: 1 << 11 } as const;
const SEG_BYTES = 16;
const INTR_BITS = { SHADOW: 1, INT_WINDOW: 2, NMI_WINDOW: 4 } as const;
/** Fixed part of a VCPU section: id, groups, then each group, then the XSAVE image's length. */
const VCPU_OFF = {
  id: 0,
  groups: 4,
  segs: 8,
  gprs: 8 + SEG_COUNT * SEG_BYTES,
  crs: 8 + SEG_COUNT * SEG_BYTES + GPR_COUNT * 8,
  drs: 8 + SEG_COUNT * SEG_BYTES + (GPR_COUNT + CR_COUNT) * 8,
  msrs: 8 + SEG_COUNT * SEG_BYTES + (GPR_COUNT + CR_COUNT + DR_COUNT) * 8,
  intr: 8 + SEG_COUNT * SEG_BYTES + (GPR_COUNT + CR_COUNT + DR_COUNT + MSR_COUNT) * 8,
  xsaveLength: 12 + SEG_COUNT * SEG_BYTES + (GPR_COUNT + CR_COUNT + DR_COUNT + MSR_COUNT) * 8,
  xsave: 16 + SEG_COUNT * SEG_BYTES + (GPR_COUNT + CR_COUNT + DR_COUNT + MSR_COUNT) * 8,
} as const;
/** The state groups a VCPU section holds (all of nvmm/state.ts's STATE.ALL). */
const VCPU_GROUPS = 0x7f;

export function encodeVcpu(v: SavedVcpu): Uint8Array {
  const s = v.state;
  if (s.intr.evtPending) fail('TSVMM_BUSY', `vCPU ${v.id} has an event pending delivery: its state cannot be saved until it runs`);
  const xsaveLength = XSAVE_MIN_BYTES + v.xsaveExtended.length;
  const out = new Uint8Array(VCPU_OFF.xsave + xsaveLength);
  const d = new DataView(out.buffer);
  d.setUint32(VCPU_OFF.id, v.id, true);
  d.setUint32(VCPU_OFF.groups, VCPU_GROUPS, true);
  s.segs.forEach((seg, i) => {
    const at = VCPU_OFF.segs + i * SEG_BYTES;
    const a = seg.attrib;
    d.setUint16(at, seg.selector, true);
    d.setUint16(at + 2, (a.type & 0xf) | (a.s ? ATTR.S : 0) | ((a.dpl & 3) << ATTR.DPL_SHIFT) | (a.p ? ATTR.P : 0) |
      (a.avl ? ATTR.AVL : 0) | (a.l ? ATTR.L : 0) | (a.def ? ATTR.DEF : 0) | (a.g ? ATTR.G : 0), true);
    d.setUint32(at + 4, seg.limit >>> 0, true);
    d.setBigUint64(at + 8, seg.base, true);
  });
  const words = (off: number, arr: BigUint64Array) => arr.forEach((x, i) => d.setBigUint64(off + 8 * i, x, true));
  words(VCPU_OFF.gprs, s.gprs);
  words(VCPU_OFF.crs, s.crs);
  words(VCPU_OFF.drs, s.drs);
  words(VCPU_OFF.msrs, s.msrs);
  d.setUint32(VCPU_OFF.intr, (s.intr.intShadow ? INTR_BITS.SHADOW : 0) | (s.intr.intWindowExiting ? INTR_BITS.INT_WINDOW : 0) |
    (s.intr.nmiWindowExiting ? INTR_BITS.NMI_WINDOW : 0), true);
  d.setUint32(VCPU_OFF.xsaveLength, xsaveLength, true);
  const x = VCPU_OFF.xsave;
  const f = s.fpu;
  d.setUint16(x + FXSAVE.fcw, f.fcw, true);
  d.setUint16(x + FXSAVE.fsw, f.fsw, true);
  d.setUint8(x + FXSAVE.ftw, f.ftw);
  d.setUint16(x + FXSAVE.fop, f.fop, true);
  d.setBigUint64(x + FXSAVE.fip, f.fip, true);
  d.setBigUint64(x + FXSAVE.fdp, f.fdp, true);
  d.setUint32(x + FXSAVE.mxcsr, f.mxcsr, true);
  d.setUint32(x + FXSAVE.mxcsrMask, f.mxcsrMask, true);
  out.set(f.sts.subarray(0, 128), x + FXSAVE.st);
  out.set(f.xmms.subarray(0, 256), x + FXSAVE.xmm);
  d.setBigUint64(x + XSAVE_HEADER_XSTATE_BV, BigInt(XSTATE_X87 | XSTATE_SSE), true);
  out.set(v.xsaveExtended, x + XSAVE_MIN_BYTES);
  return out;
}

export function decodeVcpu(b: Uint8Array, expectId: number): SavedVcpu {
  if (b.length < VCPU_OFF.xsave + XSAVE_MIN_BYTES) fail('TSVMM_SNAPSHOT_CORRUPT', `vCPU section of ${b.length} bytes is shorter than ${VCPU_OFF.xsave + XSAVE_MIN_BYTES}`);
  const d = new DataView(b.buffer, b.byteOffset, b.length);
  const id = d.getUint32(VCPU_OFF.id, true);
  if (id !== expectId) fail('TSVMM_SNAPSHOT_CORRUPT', `vCPU section ${expectId} holds vCPU ${id}`);
  const groups = d.getUint32(VCPU_OFF.groups, true);
  if (groups !== VCPU_GROUPS) fail('TSVMM_SNAPSHOT_CORRUPT', `vCPU ${id} holds state groups 0x${groups.toString(16)}, not all of 0x${VCPU_GROUPS.toString(16)}`);
  const xsaveLength = d.getUint32(VCPU_OFF.xsaveLength, true);
  if (xsaveLength < XSAVE_MIN_BYTES || xsaveLength > XSAVE_MAX_BYTES || VCPU_OFF.xsave + xsaveLength !== b.length) {
    fail('TSVMM_SNAPSHOT_CORRUPT', `vCPU ${id}: an XSAVE image of ${xsaveLength} bytes in a section of ${b.length} (${XSAVE_MIN_BYTES} to ${XSAVE_MAX_BYTES} bytes, filling the section)`);
  }
  const s = emptyState();
  for (let i = 0; i < SEG_COUNT; i++) {
    const at = VCPU_OFF.segs + i * SEG_BYTES;
    const a = d.getUint16(at + 2, true);
    if (a >> 12) fail('TSVMM_SNAPSHOT_CORRUPT', `vCPU ${id}: segment ${i} has undefined attribute bits 0x${a.toString(16)}`);
    const seg: Segment = {
      selector: d.getUint16(at, true),
      attrib: { type: a & 0xf, s: (a & ATTR.S) !== 0, dpl: (a >> ATTR.DPL_SHIFT) & 3, p: (a & ATTR.P) !== 0, avl: (a & ATTR.AVL) !== 0, l: (a & ATTR.L) !== 0, def: (a & ATTR.DEF) !== 0, g: (a & ATTR.G) !== 0 },
      limit: d.getUint32(at + 4, true),
      base: d.getBigUint64(at + 8, true),
    };
    s.segs[i] = seg;
  }
  const words = (off: number, arr: BigUint64Array) => { for (let i = 0; i < arr.length; i++) arr[i] = d.getBigUint64(off + 8 * i, true); };
  words(VCPU_OFF.gprs, s.gprs);
  words(VCPU_OFF.crs, s.crs);
  words(VCPU_OFF.drs, s.drs);
  words(VCPU_OFF.msrs, s.msrs);
  const intr = d.getUint32(VCPU_OFF.intr, true);
  if (intr & ~(INTR_BITS.SHADOW | INTR_BITS.INT_WINDOW | INTR_BITS.NMI_WINDOW)) fail('TSVMM_SNAPSHOT_CORRUPT', `vCPU ${id}: undefined interrupt-state bits 0x${intr.toString(16)}`);
  s.intr = { intShadow: (intr & INTR_BITS.SHADOW) !== 0, intWindowExiting: (intr & INTR_BITS.INT_WINDOW) !== 0, nmiWindowExiting: (intr & INTR_BITS.NMI_WINDOW) !== 0, evtPending: false };
  const x = VCPU_OFF.xsave;
  const bv = d.getBigUint64(x + XSAVE_HEADER_XSTATE_BV, true);
  if ((bv & BigInt(XSTATE_X87 | XSTATE_SSE)) !== BigInt(XSTATE_X87 | XSTATE_SSE)) fail('TSVMM_SNAPSHOT_CORRUPT', `vCPU ${id}: the XSAVE image's XSTATE_BV 0x${bv.toString(16)} lacks x87 or SSE`);
  s.fpu = {
    fcw: d.getUint16(x + FXSAVE.fcw, true), fsw: d.getUint16(x + FXSAVE.fsw, true), ftw: d.getUint8(x + FXSAVE.ftw), fop: d.getUint16(x + FXSAVE.fop, true),
    fip: d.getBigUint64(x + FXSAVE.fip, true), fdp: d.getBigUint64(x + FXSAVE.fdp, true),
    mxcsr: d.getUint32(x + FXSAVE.mxcsr, true), mxcsrMask: d.getUint32(x + FXSAVE.mxcsrMask, true),
    sts: b.slice(x + FXSAVE.st, x + FXSAVE.st + 128), xmms: b.slice(x + FXSAVE.xmm, x + FXSAVE.xmm + 256),
  };
  return { id, state: s, xsaveExtended: b.slice(x + XSAVE_MIN_BYTES) };
}

// ---- writing ----

/** Runs of pages of `bytes` that are not all zero. */
export function nonZeroRuns(bytes: Uint8Array): PageRun[] {
  const runs: PageRun[] = [];
  const zero = Buffer.alloc(PAGE);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const pages = Math.ceil(bytes.length / PAGE);
  let open: PageRun | null = null;
  for (let p = 0; p < pages; p++) {
    const page = buf.subarray(p * PAGE, Math.min((p + 1) * PAGE, buf.length));
    const isZero = page.length === PAGE ? page.equals(zero) : page.equals(zero.subarray(0, page.length));
    if (isZero) open = null;
    else if (open) open.count++;
    else runs.push((open = { first: p, count: 1 }));
  }
  return runs;
}

class Output {
  private pos = 0;
  constructor(private readonly fd: number) {}
  write(bytes: Uint8Array, at = this.pos): void {
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done, at + done);
    if (at === this.pos) this.pos += bytes.length;
  }
  get offset(): number {
    return this.pos;
  }
  /** A section: its header, then the payload pieces, with the CRC computed as they go. */
  section(type: number, pieces: Iterable<Uint8Array>): void {
    const headerAt = this.pos;
    this.pos += SECTION_HEADER_BYTES;
    let crc = 0;
    let length = 0;
    for (const p of pieces) {
      crc = crc32(p, crc);
      length += p.length;
      this.write(p);
    }
    this.write(sectionHeader(type, length, crc), headerAt);
  }
}

function sectionHeader(type: number, length: number, crc: number): Uint8Array {
  const h = new Uint8Array(SECTION_HEADER_BYTES);
  const d = new DataView(h.buffer);
  d.setUint32(0, type, true);
  d.setUint32(4, 0, true); // flags
  d.setBigUint64(8, BigInt(length), true);
  d.setUint32(16, crc >>> 0, true);
  d.setUint32(20, 0, true); // reserved
  return h;
}

function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

/** Zero bytes from `offset` up to the next page boundary of the file (version 2's padding before RAM pages). */
function alignPadding(offset: number): number {
  return (PAGE - (offset % PAGE)) % PAGE;
}

/** A RAM section's payload, which starts at file offset `payloadAt`: its header, the run table, padding to a page boundary, the pages. */
function* ramPieces(gpa: number, bytes: Uint8Array, payloadAt: number): Generator<Uint8Array> {
  const runs = nonZeroRuns(bytes);
  const tableEnd = 24 + 8 * runs.length;
  const head = new Uint8Array(tableEnd + alignPadding(payloadAt + tableEnd));
  const d = new DataView(head.buffer);
  d.setBigUint64(0, BigInt(gpa), true);
  d.setBigUint64(8, BigInt(bytes.length), true);
  d.setUint32(16, runs.length, true);
  runs.forEach((r, i) => {
    d.setUint32(24 + 8 * i, r.first, true);
    d.setUint32(28 + 8 * i, r.count, true);
  });
  yield head;
  for (const r of runs) {
    // In pieces: a write of more than 2 GiB at once is refused.
    for (let p = 0; p < r.count; p += CHUNK / PAGE) {
      const start = (r.first + p) * PAGE;
      const end = Math.min((r.first + r.count) * PAGE, start + CHUNK);
      const piece = bytes.subarray(start, end);
      if (piece.length === end - start) yield piece;
      else { const padded = new Uint8Array(end - start); padded.set(piece); yield padded; }
    }
  }
}

/**
 * Writes a snapshot to `path`: first to a temporary file beside it, renamed over `path` when
 * complete, so that `path` is never a half-written snapshot.
 */
export function writeSnapshot(path: string, c: SnapshotContents): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    const out = new Output(fd);
    const header = new Uint8Array(HEADER_BYTES);
    header.set(new TextEncoder().encode(SNAPSHOT_MAGIC));
    new DataView(header.buffer).setUint32(8, SNAPSHOT_VERSION, true);
    out.write(header);
    out.section(SECTION.MACHINE, [json(c.machine)]);
    for (const v of c.vcpus) out.section(SECTION.VCPU, [encodeVcpu(v)]);
    out.section(SECTION.DEVICES, [json(c.devices)]);
    for (const r of c.ram) out.section(SECTION.RAM, ramPieces(r.gpa, r.bytes, out.offset + SECTION_HEADER_BYTES));
    out.section(SECTION.END, []);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try { closeSync(fd); } catch { /* closed already */ }
    try { unlinkSync(tmp); } catch { /* nothing to remove */ }
    throw e;
  }
}

// ---- reading ----

class Input {
  readonly size: number;
  constructor(readonly fd: number) {
    this.size = fstatSync(fd).size;
  }
  /** Exactly `length` bytes at `at`, or TSVMM_SNAPSHOT_TRUNCATED. */
  read(at: number, length: number, what: string): Uint8Array {
    if (at + length > this.size) fail('TSVMM_SNAPSHOT_TRUNCATED', `the snapshot ends at byte ${this.size}, inside ${what} (bytes ${at} to ${at + length})`);
    const b = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, b, done, length - done, at + done);
      if (n === 0) fail('TSVMM_SNAPSHOT_TRUNCATED', `the snapshot ended while ${what} was read`);
      done += n;
    }
    return b;
  }
  /** The CRC32 of bytes [at, at + length), read in chunks. */
  crc(at: number, length: number, what: string): number {
    let crc = 0;
    for (let off = 0; off < length; off += CHUNK) crc = crc32(this.read(at + off, Math.min(CHUNK, length - off), what), crc);
    return crc >>> 0;
  }
}

interface SectionHeader {
  type: number;
  length: number;
  crc: number;
  payloadOffset: number;
}

function readSectionHeader(input: Input, at: number, index: number): SectionHeader {
  const h = input.read(at, SECTION_HEADER_BYTES, `the header of section ${index}`);
  const d = new DataView(h.buffer);
  const type = d.getUint32(0, true);
  const flags = d.getUint32(4, true);
  const length = d.getBigUint64(8, true);
  const reserved = d.getUint32(20, true);
  if (flags !== 0 || reserved !== 0) fail('TSVMM_SNAPSHOT_CORRUPT', `section ${index} has flags 0x${flags.toString(16)} and reserved 0x${reserved.toString(16)}: both must be 0`);
  const payloadOffset = at + SECTION_HEADER_BYTES;
  if (length > BigInt(input.size - payloadOffset)) {
    fail('TSVMM_SNAPSHOT_TRUNCATED', `section ${index} (type ${type}) declares ${length} bytes; the file has ${Math.max(0, input.size - payloadOffset)} after its header`);
  }
  return { type, length: Number(length), crc: d.getUint32(16, true), payloadOffset };
}

/** A small section's payload, read whole after its length is checked against `max`, with its checksum checked. */
function readSmall(input: Input, s: SectionHeader, max: number, what: string): Uint8Array {
  if (s.length > max) fail('TSVMM_SNAPSHOT_CORRUPT', `${what} section of ${s.length} bytes is larger than ${max}`);
  const b = input.read(s.payloadOffset, s.length, what);
  if ((crc32(b) >>> 0) !== s.crc) fail('TSVMM_SNAPSHOT_CORRUPT', `${what} section fails its checksum`);
  return b;
}

function parseJson(b: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b)) as unknown;
  } catch (e) {
    return fail('TSVMM_SNAPSHOT_CORRUPT', `${what} section is not JSON: ${(e as Error).message}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function checkMachine(v: unknown, expectRam: (memory: number) => { gpa: number; size: number }[]): SnapshotMachine {
  if (!isObject(v)) fail('TSVMM_SNAPSHOT_CORRUPT', 'the machine section is not an object');
  let config: MachineConfig;
  try {
    config = machineConfig(v.config as MachineConfig);
  } catch (e) {
    return fail('TSVMM_SNAPSHOT_CORRUPT', `the snapshot's machine configuration is refused: ${(e as Error).message}`);
  }
  if (v.backend !== 'soft' && v.backend !== 'kvm') fail('TSVMM_SNAPSHOT_CORRUPT', `the snapshot's backend ${JSON.stringify(v.backend)} is neither soft nor kvm`);
  if (typeof v.guestNs !== 'number' || !Number.isFinite(v.guestNs) || v.guestNs < 0 || v.guestNs > Number.MAX_SAFE_INTEGER) fail('TSVMM_SNAPSHOT_CORRUPT', `the snapshot's guest time ${String(v.guestNs)} is not a time in nanoseconds`);
  if (typeof v.agentReady !== 'boolean') fail('TSVMM_SNAPSHOT_CORRUPT', 'the snapshot does not say whether the agent was ready');
  const drives = v.drives;
  const configured = config.drives ?? [];
  if (!Array.isArray(drives) || drives.length !== configured.length) fail('TSVMM_SNAPSHOT_CORRUPT', `the snapshot records ${Array.isArray(drives) ? drives.length : 'no list of'} drives for ${configured.length} configured`);
  drives.forEach((d: unknown, i) => {
    if (!isObject(d) || d.file !== configured[i]!.file || !isCount(d.size) || typeof d.mtimeMs !== 'number' || !Number.isFinite(d.mtimeMs)) {
      fail('TSVMM_SNAPSHOT_CORRUPT', `the snapshot's record of drive ${i} is malformed or names another file than its configuration`);
    }
  });
  const ram = v.ram;
  const expected = expectRam(config.memory);
  const same = Array.isArray(ram) && ram.length === expected.length &&
    ram.every((r: unknown, i) => isObject(r) && r.gpa === expected[i]!.gpa && r.size === expected[i]!.size);
  if (!same) fail('TSVMM_SNAPSHOT_CORRUPT', `the snapshot's RAM regions ${JSON.stringify(ram)} are not the board's for ${config.memory} bytes`);
  return { config, backend: v.backend, guestNs: v.guestNs, drives: drives as DriveStamp[], ram: expected, agentReady: v.agentReady };
}

function checkRamHeader(input: Input, s: SectionHeader, region: { gpa: number; size: number }, index: number, version: number): RamSection {
  const what = `RAM section ${index}`;
  const pages = Math.ceil(region.size / PAGE);
  if (s.length < 24) fail('TSVMM_SNAPSHOT_CORRUPT', `${what} of ${s.length} bytes is shorter than its header`);
  const head = input.read(s.payloadOffset, 24, what);
  const d = new DataView(head.buffer);
  const gpa = d.getBigUint64(0, true);
  const size = d.getBigUint64(8, true);
  const runCount = d.getUint32(16, true);
  if (gpa !== BigInt(region.gpa) || size !== BigInt(region.size)) fail('TSVMM_SNAPSHOT_CORRUPT', `${what} covers 0x${gpa.toString(16)}+0x${size.toString(16)}, not 0x${region.gpa.toString(16)}+0x${region.size.toString(16)}`);
  if (d.getUint32(20, true) !== 0) fail('TSVMM_SNAPSHOT_CORRUPT', `${what} has a non-zero reserved field`);
  // At most one run per two pages (runs are separated by at least one zero page).
  if (runCount > Math.ceil(pages / 2) || 24 + 8 * runCount > s.length) fail('TSVMM_SNAPSHOT_CORRUPT', `${what} declares ${runCount} page runs: more than ${pages} pages can have, or than its ${s.length} bytes hold`);
  const table = new DataView(input.read(s.payloadOffset + 24, 8 * runCount, what).buffer);
  const runs: PageRun[] = [];
  let next = 0;
  let saved = 0;
  for (let i = 0; i < runCount; i++) {
    const first = table.getUint32(8 * i, true);
    const count = table.getUint32(8 * i + 4, true);
    if (count === 0 || first < next || first + count > pages) fail('TSVMM_SNAPSHOT_CORRUPT', `${what}: page run ${i} (${first}+${count}) is empty, out of order, overlapping or past the region's ${pages} pages`);
    runs.push({ first, count });
    next = first + count;
    saved += count;
  }
  const tableEnd = s.payloadOffset + 24 + 8 * runCount;
  const padding = version >= 2 ? alignPadding(tableEnd) : 0;
  const dataOffset = tableEnd + padding;
  if (24 + 8 * runCount + padding + saved * PAGE !== s.length) fail('TSVMM_SNAPSHOT_CORRUPT', `${what}: ${saved} pages in ${runCount} runs (after ${padding} bytes of padding) do not fill its ${s.length} bytes`);
  if (input.read(tableEnd, padding, what).some((b) => b !== 0)) fail('TSVMM_SNAPSHOT_CORRUPT', `${what}: the padding before its pages is not zero`);
  return { gpa: region.gpa, size: region.size, runs, dataOffset, aligned: dataOffset % PAGE === 0, crc: s.crc, payloadOffset: s.payloadOffset, payloadLength: s.length };
}

/** A version of a file: its device, inode, size, and modification and change times (the kernel sets the change time on every write or truncation). */
function fileStamp(fd: number): string {
  const st = fstatSync(fd, { bigint: true });
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** File versions (fileStamp) whose RAM checksums this process has verified, oldest first; at most VERIFIED_MAX. */
const verified = new Set<string>();
const VERIFIED_MAX = 256;
/**
 * A version is remembered only if it was last changed at least this long before it was checked:
 * file times have the kernel clock's coarse granularity (a few milliseconds), so a write in the
 * same tick as an earlier one could leave the same stamp; a later write cannot.
 */
const SETTLED_MS = 2000;

/**
 * Reads and checks a whole snapshot (everything but putting its RAM pages into guest memory,
 * which loadRam does): TSVMM_SNAPSHOT_CORRUPT, _VERSION or _TRUNCATED, with what was wrong.
 * `expectRam` is the RAM layout the board makes for an amount of memory. RAM's checksums are
 * verified once per version of the file in this process (see the file header).
 */
export function readSnapshot(path: string, expectRam: (memory: number) => { gpa: number; size: number }[]): ParsedSnapshot {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    return fail('TSVMM_BAD_ARGUMENT', `cannot open the snapshot ${path}: ${(e as Error).message}`, { path });
  }
  try {
    const input = new Input(fd);
    if (!fstatSync(fd).isFile()) fail('TSVMM_BAD_ARGUMENT', `the snapshot ${path} is not a regular file`);
    const header = input.read(0, HEADER_BYTES, 'the file header');
    if (new TextDecoder('latin1').decode(header.subarray(0, 8)) !== SNAPSHOT_MAGIC) fail('TSVMM_SNAPSHOT_CORRUPT', `${path} is not a tsvmm snapshot (no ${SNAPSHOT_MAGIC} magic)`);
    const hd = new DataView(header.buffer);
    const version = hd.getUint32(8, true);
    if (!SNAPSHOT_VERSIONS_READ.includes(version)) fail('TSVMM_SNAPSHOT_VERSION', `${path} is a snapshot of format version ${version}; this tsvmm reads versions ${SNAPSHOT_VERSIONS_READ.join(' and ')}`, { version });
    if (hd.getUint32(12, true) !== 0) fail('TSVMM_SNAPSHOT_CORRUPT', 'the file header has non-zero flags');

    let at = HEADER_BYTES;
    let index = 0;
    const next = (expect: number, what: string): SectionHeader => {
      const s = readSectionHeader(input, at, index);
      if (s.type !== expect) fail('TSVMM_SNAPSHOT_CORRUPT', `section ${index} has type ${s.type}; ${what} (type ${expect}) comes there`);
      at = s.payloadOffset + s.length;
      index++;
      return s;
    };
    const machine = checkMachine(parseJson(readSmall(input, next(SECTION.MACHINE, 'the machine'), MAX_MACHINE_BYTES, 'the machine'), 'the machine'), expectRam);
    const vcpus: SavedVcpu[] = [];
    for (let id = 0; id < machine.config.cpus; id++) {
      vcpus.push(decodeVcpu(readSmall(input, next(SECTION.VCPU, `vCPU ${id}`), VCPU_OFF.xsave + XSAVE_MAX_BYTES, `vCPU ${id}`), id));
    }
    const devices = parseJson(readSmall(input, next(SECTION.DEVICES, 'the devices'), MAX_DEVICES_BYTES, 'the devices'), 'the devices');
    if (!isObject(devices)) fail('TSVMM_SNAPSHOT_CORRUPT', 'the devices section is not an object');
    const stamp = fileStamp(fd);
    const checked = verified.has(stamp);
    const settled = Date.now() - fstatSync(fd).ctimeMs >= SETTLED_MS;
    const ram: RamSection[] = [];
    machine.ram.forEach((region, i) => {
      const s = next(SECTION.RAM, `RAM region ${i}`);
      const r = checkRamHeader(input, s, region, i, version);
      if (!checked && input.crc(s.payloadOffset, s.length, `RAM section ${i}`) !== s.crc) fail('TSVMM_SNAPSHOT_CORRUPT', `RAM section ${i} fails its checksum`);
      ram.push(r);
    });
    const end = next(SECTION.END, 'the end marker');
    if (end.length !== 0 || end.crc !== 0) fail('TSVMM_SNAPSHOT_CORRUPT', 'the end marker has a payload');
    if (at !== input.size) fail('TSVMM_SNAPSHOT_CORRUPT', `${input.size - at} bytes follow the end marker`);
    // Remembered only if the file did not change while it was read.
    if (!checked && settled && fileStamp(fd) === stamp) {
      verified.add(stamp);
      if (verified.size > VERIFIED_MAX) verified.delete(verified.values().next().value!);
    }
    return { stamp, machine, vcpus, devices, ram };
  } finally {
    closeSync(fd);
  }
}

/** Guest memory a RAM section goes into. */
export interface RamTarget {
  /** The region's bytes, zero-filled as a new machine's RAM is. */
  bytes: Uint8Array;
  /**
   * Maps `length` bytes of the open file `fd` from `fileOffset` copy-on-write (private) over bytes
   * [at, at + length) of `bytes` (all page-aligned); false when it cannot, and nothing changed.
   */
  mapFile?: (fd: number, fileOffset: number, at: number, length: number) => boolean;
}

/** How loadRam put the pages back: bytes mapped from the file, bytes copied. */
export interface RamLoad {
  mapped: number;
  copied: number;
}

/**
 * Whether the pages of the file behind `fd` may be mapped: only a file no other user may write
 * (owned by this process's user, not writable by group or others). A mapped file that shrinks
 * kills the process (SIGBUS) when a page past its new end is touched: see docs/snapshot-format.md.
 */
function mayMap(fd: number): boolean {
  const st = fstatSync(fd);
  return st.isFile() && st.uid === process.geteuid?.() && (st.mode & 0o022) === 0;
}

/**
 * Puts the saved pages of each RAM section into guest memory (`target(gpa, size)`: the region's
 * memory, zero-filled as a new machine's RAM is); the pages it skips are the all-zero ones.
 *
 * The file must still be the version readSnapshot checked (`snapshot.stamp`): another one is
 * TSVMM_SNAPSHOT_TRUNCATED when it no longer holds the sections, TSVMM_SNAPSHOT_CORRUPT otherwise.
 * Page runs are mapped copy-on-write where the section is page-aligned (version 2), the target can
 * map (`mapFile`), `map` allows it and the file may be mapped (mayMap): the machine's writes stay
 * its own, and the pages it only reads are the page cache's, shared by every machine restored from
 * the file. Otherwise they are copied, and then their checksum is computed again on the way.
 */
export function loadRam(
  path: string,
  snapshot: Pick<ParsedSnapshot, 'stamp' | 'ram'>,
  target: (gpa: number, size: number) => RamTarget,
  options: { map?: boolean } = {},
): RamLoad {
  const fd = openSync(path, 'r');
  const done: RamLoad = { mapped: 0, copied: 0 };
  try {
    const input = new Input(fd);
    const end = Math.max(0, ...snapshot.ram.map((s) => s.payloadOffset + s.payloadLength));
    const changed = () => {
      if (fstatSync(fd).size < end) fail('TSVMM_SNAPSHOT_TRUNCATED', `the snapshot ${path} shrank since it was read: it no longer holds its RAM`);
      if (fileStamp(fd) !== snapshot.stamp) fail('TSVMM_SNAPSHOT_CORRUPT', `the snapshot ${path} changed since it was read`);
    };
    changed();
    const mapping = options.map !== false && mayMap(fd);
    for (const s of snapshot.ram) {
      const t = target(s.gpa, s.size);
      if (mapping && s.aligned && s.size % PAGE === 0 && t.mapFile) {
        mapRuns(input, s, t, done);
        // The file could have shrunk while it was mapped (before, changed() saw it whole): refused
        // now, before anything touches the pages. After this, see mayMap.
        changed();
      } else {
        copyRuns(input, s, t.bytes);
        done.copied += s.runs.reduce((n, r) => n + r.count * PAGE, 0);
      }
    }
    return done;
  } finally {
    closeSync(fd);
  }
}

/** Maps each run of `s` into `t`; a run the target cannot map is copied. */
function mapRuns(input: Input, s: RamSection, t: RamTarget, done: RamLoad): void {
  let off = s.dataOffset;
  for (const r of s.runs) {
    const length = r.count * PAGE;
    if (t.mapFile!(input.fd, off, r.first * PAGE, length)) done.mapped += length;
    else {
      readInto(input.fd, t.bytes.subarray(r.first * PAGE, r.first * PAGE + length), off);
      done.copied += length;
    }
    off += length;
  }
}

/** Fills `into` from the file at `at` (straight into it, no buffer between). */
function readInto(fd: number, into: Uint8Array, at: number): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, at + done);
    if (n === 0) fail('TSVMM_SNAPSHOT_TRUNCATED', 'the snapshot shrank while its RAM was loaded');
    done += n;
  }
}

/** Copies the runs of `s` into `bytes`, in pieces, computing the section's checksum again. */
function copyRuns(input: Input, s: RamSection, bytes: Uint8Array): void {
  let crc = crc32(input.read(s.payloadOffset, s.dataOffset - s.payloadOffset, 'a RAM section header'));
  let off = s.dataOffset;
  for (const r of s.runs) {
    const end = Math.min((r.first + r.count) * PAGE, s.size);
    for (let start = r.first * PAGE; start < (r.first + r.count) * PAGE; start += CHUNK) {
      const length = Math.min(CHUNK, (r.first + r.count) * PAGE - start);
      const into = bytes.subarray(start, Math.min(start + length, end));
      readInto(input.fd, into, off);
      crc = crc32(into, crc);
      if (into.length < length) crc = crc32(input.read(off + into.length, length - into.length, 'a RAM page'), crc);
      off += length;
    }
  }
  if ((crc >>> 0) !== s.crc) fail('TSVMM_SNAPSHOT_CORRUPT', `RAM at 0x${s.gpa.toString(16)} changed in the snapshot file while it was loaded`);
}
