/**
 * Guest RAM as a virtio device reaches it: guest-physical ranges turned into zero-copy host views.
 *
 * A device never indexes RAM itself. The split-queue walker (queue.ts) asks `view()` once for
 * every ring and every descriptor buffer, and afterwards reads and writes only the views it got,
 * so a guest address or length is checked in exactly one place. `view()` answers null for any
 * range with a byte outside RAM, for negative or non-integer values, and for ranges whose end
 * does not fit in a double exactly (a 64-bit descriptor address near 2^64 lands there).
 *
 * A range must lie inside one region. On the PC board the regions are RAM below the 32-bit MMIO
 * hole and RAM from 4 GiB, which never touch, so a range across two is never all RAM. The board
 * builds it from its one host mapping:
 *   new RegionGuestMemory([{ gpa: 0, bytes: ram.subarray(0, low) }, { gpa: 4 GiB, bytes: ram.subarray(low) }])
 */
import { hex } from '../../common/bits.js';
import { TsvmmError } from '../../common/errors.js';

export interface GuestMemory {
  /** A zero-copy view of guest-physical [gpa, gpa + length), or null when any byte of it is not RAM. */
  view(gpa: number, length: number): Uint8Array | null;
}

/** One RAM region: guest-physical `gpa` is `bytes[0]`. */
export interface RamRegion {
  gpa: number;
  bytes: Uint8Array;
}

/** Guest RAM made of a few regions (the board's low and high RAM, or a test array). */
export class RegionGuestMemory implements GuestMemory {
  private readonly regions: readonly RamRegion[];

  constructor(regions: readonly RamRegion[]) {
    const sorted = [...regions].sort((a, b) => a.gpa - b.gpa);
    sorted.forEach((r, i) => {
      if (!Number.isSafeInteger(r.gpa) || r.gpa < 0 || !Number.isSafeInteger(r.gpa + r.bytes.length)) {
        throw new TsvmmError('TSVMM_BAD_ARGUMENT', `RAM region at ${hex(r.gpa)} of ${hex(r.bytes.length)} bytes is not a valid guest-physical range`);
      }
      const prev = sorted[i - 1];
      if (prev && prev.gpa + prev.bytes.length > r.gpa) {
        throw new TsvmmError('TSVMM_BAD_ARGUMENT', `RAM regions at ${hex(prev.gpa)} and ${hex(r.gpa)} overlap`);
      }
    });
    this.regions = sorted;
  }

  view(gpa: number, length: number): Uint8Array | null {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(length) || gpa < 0 || length < 0 || !Number.isSafeInteger(gpa + length)) {
      return null;
    }
    for (const r of this.regions) {
      if (gpa >= r.gpa && gpa + length <= r.gpa + r.bytes.length) {
        const at = gpa - r.gpa;
        return r.bytes.subarray(at, at + length);
      }
    }
    return null;
  }

  /** Copies guest bytes at `gpa` into `into`; false (nothing copied) when the range is not all RAM. */
  read(gpa: number, into: Uint8Array): boolean {
    const v = this.view(gpa, into.length);
    if (v === null) return false;
    into.set(v);
    return true;
  }

  /** Copies `data` to guest `gpa`; false (nothing written) when the range is not all RAM. */
  write(gpa: number, data: Uint8Array): boolean {
    const v = this.view(gpa, data.length);
    if (v === null) return false;
    v.set(data);
    return true;
  }
}
