/**
 * Host memory that can back guest RAM: an anonymous shared mapping, seen from JavaScript as a
 * Uint8Array with no copying, and from the kernel (KVM) by its address (the HVA). libnvmm's
 * `nvmm_hva_map` takes such a range; here it is an object so its view and address travel together.
 */
import { SyscallError, TsvmmError } from '../common/errors.js';
import * as libc from '../common/libc.js';

export const PAGE_SIZE = 4096;

export class HostMemory {
  /** Host virtual address of the first byte. */
  readonly hva: number;
  readonly size: number;
  /** The whole range, zero-copy. */
  readonly bytes: Uint8Array;
  /**
   * Offset of the first byte in the soft CPU's WebAssembly memory (src/backends/soft/arena.ts),
   * -1 when the memory is not there. Compiled guest code reaches only memory that is.
   */
  readonly arenaOffset: number;
  private pointer: libc.HostPointer | null;
  private release: (() => void) | null = null;

  private constructor(pointer: libc.HostPointer, size: number, owned: boolean, bytes?: Uint8Array, arenaOffset = -1) {
    this.pointer = owned ? pointer : null;
    this.hva = libc.addressOf(pointer);
    this.size = size;
    this.bytes = bytes ?? new Uint8Array(libc.viewOf(pointer, size));
    this.arenaOffset = arenaOffset;
  }

  /**
   * Memory inside a SharedArrayBuffer this process keeps alive (the soft CPU's arena): `bytes`
   * views it, `arenaOffset` places it, and `release` gives it back when freed.
   */
  static inArena(bytes: Uint8Array, arenaOffset: number, release: () => void): HostMemory {
    const m = new HostMemory(libc.pointerOfBytes(bytes), bytes.length, false, bytes, arenaOffset);
    m.release = release;
    return m;
  }

  /** Maps `size` bytes (a multiple of the page size) of zeroed memory. */
  static allocate(size: number): HostMemory {
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `host memory size ${size} is not a positive multiple of ${PAGE_SIZE}`);
    }
    const p = libc.mmap(
      null,
      size,
      libc.PROT_READ | libc.PROT_WRITE,
      libc.MAP_SHARED | libc.MAP_ANONYMOUS | libc.MAP_NORESERVE,
      -1,
      0,
    );
    if (libc.isMapFailed(p)) throw new SyscallError(`mmap(${size})`, libc.lastErrno());
    return new HostMemory(p, size, true);
  }

  /** A view of memory allocated elsewhere in this process (for example by another worker thread). */
  static attach(hva: number, size: number): HostMemory {
    return new HostMemory(libc.pointerAt(hva), size, false);
  }

  /** Unmaps the memory if this object allocated it. The views become unusable. */
  free(): void {
    if (this.release !== null) {
      this.release();
      this.release = null;
    }
    if (this.pointer !== null) {
      libc.munmap(this.pointer, this.size);
      this.pointer = null;
    }
  }
}
