/**
 * The host side of a virtio-blk disk: what the device (virtio-blk.ts) needs of the storage
 * under it, so that files (block-file.ts), memory (here) and later other engines are
 * interchangeable and the device is testable without files.
 *
 * The device checks every request before the backend sees it: offsets and lengths are whole
 * 512-byte sectors inside `size`, and nothing that writes reaches a read-only backend.
 *
 * Completion: each operation returns its outcome, either at once (a synchronous engine: the
 * file backend uses readSync/writeSync/fdatasync today) or as a Promise that settles when the
 * I/O has finished (an engine on a worker thread or io_uring later). The device posts the used
 * buffer and interrupts only when the outcome is known, so the same device serves both; a
 * Promise keeps the guest buffers (views of guest RAM) until it settles.
 */

export const SECTOR_SIZE = 512;

export type BlockOutcome = 'ok' | 'io-error' | 'unsupported';
export type BlockCompletion = BlockOutcome | Promise<BlockOutcome>;

export interface BlockBackend {
  /** The disk's serial number, as GET_ID returns it (at most 20 bytes are used). */
  readonly id: string;
  /** Size in bytes (a multiple of SECTOR_SIZE). */
  readonly size: number;
  readonly readOnly: boolean;
  /** Fills `buffers`, in order, from byte `offset`. */
  read(offset: number, buffers: readonly Uint8Array[]): BlockCompletion;
  /** Writes `buffers`, in order, at byte `offset`. */
  write(offset: number, buffers: readonly Uint8Array[]): BlockCompletion;
  /** Makes every completed write durable. */
  flush(): BlockCompletion;
  /** A hint that [offset, offset + length) is unused (its contents become unspecified). */
  discard(offset: number, length: number): BlockCompletion;
  /** Makes [offset, offset + length) read as zeros; `mayUnmap` allows deallocating it. */
  writeZeroes(offset: number, length: number, mayUnmap: boolean): BlockCompletion;
  close(): void;
}

export interface MemoryBlockOptions {
  size: number;
  id?: string;
  readOnly?: boolean;
  /** Initial contents (copied; the rest is zero). */
  contents?: Uint8Array;
}

/** A disk in host memory (tests, scratch disks). */
export class MemoryBlockBackend implements BlockBackend {
  readonly id: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly bytes: Uint8Array;
  /** How many flushes were asked for. */
  flushes = 0;

  constructor(opts: MemoryBlockOptions) {
    if (!Number.isSafeInteger(opts.size) || opts.size < 0 || opts.size % SECTOR_SIZE !== 0) {
      throw new RangeError(`memory disk size ${opts.size} is not a whole number of ${SECTOR_SIZE}-byte sectors`);
    }
    this.id = opts.id ?? '';
    this.size = opts.size;
    this.readOnly = opts.readOnly ?? false;
    this.bytes = new Uint8Array(opts.size);
    if (opts.contents) this.bytes.set(opts.contents.subarray(0, opts.size));
  }

  read(offset: number, buffers: readonly Uint8Array[]): BlockOutcome {
    for (const b of buffers) {
      b.set(this.bytes.subarray(offset, offset + b.length));
      offset += b.length;
    }
    return 'ok';
  }

  write(offset: number, buffers: readonly Uint8Array[]): BlockOutcome {
    if (this.readOnly) return 'io-error';
    for (const b of buffers) {
      this.bytes.set(b, offset);
      offset += b.length;
    }
    return 'ok';
  }

  flush(): BlockOutcome {
    this.flushes++;
    return 'ok';
  }

  discard(offset: number, length: number): BlockOutcome {
    return this.writeZeroes(offset, length);
  }

  writeZeroes(offset: number, length: number): BlockOutcome {
    if (this.readOnly) return 'io-error';
    this.bytes.fill(0, offset, offset + length);
    return 'ok';
  }

  close(): void {}
}
