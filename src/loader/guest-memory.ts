/**
 * What a loader needs from guest RAM: a writer and the size of RAM it may load into. The board backs
 * it with its RAM; tests back it with an ArrayGuestMemory. Loaders never read files, KVM or the CPU.
 */
import { TsvmmError } from '../common/errors.js';

export interface GuestMemoryWriter {
  /**
   * Bytes of RAM usable for loading: guest physical [0, size). On a board with a 32-bit MMIO hole
   * this is the end of the RAM below the hole; loaders place nothing at or above it.
   */
  readonly size: number;
  /** Copies `bytes` to guest physical address `gpa`. Throws for addresses outside RAM. */
  write(gpa: number, bytes: Uint8Array): void;
}

/** Throws TSVMM_LIMIT unless [gpa, gpa + length) lies inside the writer's RAM. */
export function checkRamRange(mem: GuestMemoryWriter, gpa: number, length: number, what: string): void {
  if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(length) || gpa < 0 || length < 0 || gpa + length > mem.size) {
    throw new TsvmmError(
      'TSVMM_LIMIT',
      `${what} at 0x${gpa.toString(16)}..0x${(gpa + length).toString(16)} does not fit in guest RAM of 0x${mem.size.toString(16)} bytes`,
      { gpa, length, ramSize: mem.size },
    );
  }
}

/**
 * A range of guest RAM the board fills itself (tables, boot data): no image may load over it.
 * `what` names it in errors ("the MP table").
 */
export interface ReservedArea {
  gpa: number;
  size: number;
  what: string;
}

/**
 * Throws `code` (TSVMM_BAD_KERNEL for an image's own addresses, TSVMM_BAD_ARGUMENT for a caller's)
 * when [gpa, gpa + length) overlaps one of the reserved areas, naming the first it overlaps.
 */
export function checkNotReserved(
  reserved: readonly ReservedArea[],
  gpa: number,
  length: number,
  what: string,
  code: 'TSVMM_BAD_KERNEL' | 'TSVMM_BAD_ARGUMENT' = 'TSVMM_BAD_KERNEL',
): void {
  const area = reserved.find((a) => gpa < a.gpa + a.size && a.gpa < gpa + length);
  if (area) {
    throw new TsvmmError(code, `${what} overlaps ${area.what} (0x${area.gpa.toString(16)}..0x${(area.gpa + area.size).toString(16)})`, {
      gpa,
      length,
      area: area.what,
    });
  }
}

const ZERO_CHUNK = new Uint8Array(64 * 1024);

/** Writes `length` zero bytes at `gpa` (a segment's bss), in bounded chunks. */
export function zeroFill(mem: GuestMemoryWriter, gpa: number, length: number): void {
  for (let done = 0; done < length; done += ZERO_CHUNK.length) {
    const n = Math.min(ZERO_CHUNK.length, length - done);
    mem.write(gpa + done, n === ZERO_CHUNK.length ? ZERO_CHUNK : ZERO_CHUNK.subarray(0, n));
  }
}

/** Guest RAM as a plain byte array (tests, tools): RAM is [0, size). */
export class ArrayGuestMemory implements GuestMemoryWriter {
  readonly bytes: Uint8Array;

  constructor(readonly size: number) {
    this.bytes = new Uint8Array(size);
  }

  write(gpa: number, bytes: Uint8Array): void {
    if (gpa < 0 || gpa + bytes.length > this.size) {
      throw new TsvmmError('TSVMM_GPA_UNMAPPED', `write of ${bytes.length} bytes at 0x${gpa.toString(16)} is outside RAM [0, 0x${this.size.toString(16)})`);
    }
    this.bytes.set(bytes, gpa);
  }

  read(gpa: number, length: number): Uint8Array {
    return this.bytes.subarray(gpa, gpa + length);
  }
}

/** A GuestMemoryWriter over an existing byte view (for example HostMemory.bytes): RAM is [0, view.length). */
export function viewGuestMemory(view: Uint8Array): GuestMemoryWriter {
  return {
    size: view.length,
    write(gpa, bytes) {
      if (gpa < 0 || gpa + bytes.length > view.length) {
        throw new TsvmmError('TSVMM_GPA_UNMAPPED', `write of ${bytes.length} bytes at 0x${gpa.toString(16)} is outside RAM [0, 0x${view.length.toString(16)})`);
      }
      view.set(bytes, gpa);
    },
  };
}
