/** A flat binary: copied as is to an address and entered at a given address in a given mode. */
import { TsvmmError } from '../common/errors.js';
import { checkNotReserved, checkRamRange, type GuestMemoryWriter, type ReservedArea } from './guest-memory.js';
import { hex } from '../common/bits.js';
import type { EntryMode, EntryPoint, LoadedSegment } from './load-result.js';

export interface FlatLoadOptions {
  /** Where the first byte goes. */
  loadAddr: number;
  /** Where execution starts; defaults to loadAddr. Must lie inside the image. */
  entry?: number;
  mode: EntryMode;
  /** Areas the board fills for this boot: the image may not cover them. */
  reserved?: readonly ReservedArea[];
}

export interface FlatImage {
  segments: LoadedSegment[];
  entry: EntryPoint;
  end: number;
}

export function loadFlat(mem: GuestMemoryWriter, image: Uint8Array, o: FlatLoadOptions): FlatImage {
  if (image.length === 0) throw new TsvmmError('TSVMM_BAD_KERNEL', 'flat image is empty');
  const entry = o.entry ?? o.loadAddr;
  if (entry < o.loadAddr || entry >= o.loadAddr + image.length) {
    throw new TsvmmError('TSVMM_BAD_ARGUMENT', `flat image entry ${hex(entry)} is outside the image ${hex(o.loadAddr)}..${hex(o.loadAddr + image.length)}`);
  }
  if (o.mode === 'real16' && o.loadAddr + image.length > 0x100000) {
    throw new TsvmmError('TSVMM_BAD_ARGUMENT', `real-mode flat image at ${hex(o.loadAddr)} (${image.length} bytes) extends past 1 MiB`);
  }
  checkNotReserved(o.reserved ?? [], o.loadAddr, image.length, `flat image at ${hex(o.loadAddr)} (${image.length} bytes)`, 'TSVMM_BAD_ARGUMENT');
  checkRamRange(mem, o.loadAddr, image.length, 'flat image');
  mem.write(o.loadAddr, image);
  return {
    segments: [{ gpa: o.loadAddr, fileSize: image.length, memSize: image.length }],
    entry: { mode: o.mode, ip: entry, regs: {} },
    end: o.loadAddr + image.length,
  };
}
