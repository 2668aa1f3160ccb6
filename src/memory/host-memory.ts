/**
 * Host memory that can back guest RAM: an anonymous shared mapping, seen from JavaScript as a
 * Uint8Array with no copying, and from the kernel (KVM) by its address (the HVA). libnvmm's
 * `nvmm_hva_map` takes such a range; here it is an object so its view and address travel together.
 *
 * One HostMemory is one typed array, so it holds at most MAX_HOST_MEMORY bytes (V8's limit for a
 * typed array); more guest RAM is several of them (the board maps RAM above 4 GiB in pieces).
 *
 * After free(), `bytes` throws TSVMM_DESTROYED. A view taken before (JavaScript cannot revoke a
 * typed array) still points at memory nobody else gets, never at unmapped memory or at memory
 * handed out again: mapped memory is replaced at once by a blank mapping at the same address (its
 * pages are released), which is unmapped when the last view of it has been garbage collected or
 * the thread ends; lent memory goes back to its owner only when its last view has been collected.
 * Reading such a view gives zeros, writing it reaches nobody.
 *
 * Memory allocated here (HostMemory.allocate: KVM's guest RAM) and memory its owner says may be
 * remapped (the soft CPU's arena, HostMemory.lent) can have a file's pages mapped privately over
 * parts of it (mapFile: a restored snapshot's RAM, copy-on-write from the page cache). KVM follows
 * such a change of the pages under a memory slot (its MMU notifiers): the slot keeps its address. free() puts zeroed anonymous memory back over all of it at once, before the
 * owner gets it back: nobody sees the file's pages after, and a file that shrinks later cannot
 * fault (SIGBUS) in memory handed out again.
 */
import { SyscallError, TsvmmError } from '../common/errors.js';
import * as libc from '../common/libc.js';
import { PAGE_SIZE } from './page.js';

/** The most one HostMemory holds: V8's largest typed array on 64-bit hosts (buffer.constants.MAX_LENGTH, Node 20). */
export const MAX_HOST_MEMORY = 2 ** 32;

/** What happens to a freed range once nothing can reach it. */
interface Reclaim {
  run: () => void;
  /** Also run when the thread ends (its views end with it); false: the range ends with the thread anyway. */
  atThreadExit: boolean;
}

const pending = new Map<number, Reclaim>();
let nextToken = 1;
let exitHookInstalled = false;
const reclaimer = new FinalizationRegistry<number>((token) => {
  const r = pending.get(token);
  pending.delete(token);
  r?.run();
});

/** Runs `reclaim.run` once `buffer` (and so every view of it) is garbage, or at thread exit. */
function reclaimWhenUnreachable(buffer: ArrayBufferLike, reclaim: Reclaim): void {
  const token = nextToken++;
  pending.set(token, reclaim);
  reclaimer.register(buffer, token);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // No JavaScript of this thread runs after 'exit', so no view of a range is used after this.
    process.once('exit', () => {
      for (const r of pending.values()) if (r.atThreadExit) r.run();
      pending.clear();
    });
  }
}

type Ownership = 'mapped' | 'lent' | 'attached';

export class HostMemory {
  /** Host virtual address of the first byte. */
  readonly hva: number;
  readonly size: number;
  private view: Uint8Array | null;
  private readonly ownership: Ownership;
  private readonly release: (() => void) | null;
  /** The owner allows file pages over this memory (mapFile). */
  readonly remappable: boolean;
  /** mapFile put file pages here: free() replaces them. */
  private fileMapped = false;

  private constructor(hva: number, view: Uint8Array, ownership: Ownership, release: (() => void) | null = null, remappable = false) {
    this.hva = hva;
    this.size = view.length;
    this.view = view;
    this.ownership = ownership;
    this.release = release;
    this.remappable = remappable;
  }

  /** The whole range, zero-copy. Throws TSVMM_DESTROYED after free(). */
  get bytes(): Uint8Array {
    if (this.view === null) throw new TsvmmError('TSVMM_DESTROYED', `host memory at 0x${this.hva.toString(16)} was freed`);
    return this.view;
  }

  get freed(): boolean {
    return this.view === null;
  }

  /**
   * Memory lent by an owner that keeps it alive in this thread, inside a SharedArrayBuffer (the
   * soft CPU's arena): `bytes` becomes a view of its own over the same memory, and `release` gives
   * it back to the owner once freed and no longer viewed. `remappable`: the owner keeps the range
   * committed private anonymous memory that it neither remaps nor discards while it is lent, so
   * that mapFile may map file pages over it (free() puts anonymous memory back).
   */
  static lent(bytes: Uint8Array, release: () => void, remappable = false): HostMemory {
    checkSize(bytes.length);
    if (remappable && (libc.addressOfBytes(bytes) % PAGE_SIZE !== 0)) throw new TsvmmError('TSVMM_BAD_ARGUMENT', 'remappable host memory must start on a page');
    return new HostMemory(libc.addressOfBytes(bytes), new Uint8Array(libc.viewOfBytes(bytes)), 'lent', release, remappable);
  }

  /**
   * Maps `length` bytes of the open file `fd` from `fileOffset` privately (copy-on-write) over
   * bytes [at, at + length) of this memory, all page-aligned: reads see the file's pages (shared
   * with every other private mapping of them), writes stay here. False when this memory cannot
   * take them (its owner did not allow it, or mmap failed; the range is then zeroed anonymous
   * memory as before). The caller keeps the file from shrinking under the mapping (a page past
   * its end faults with SIGBUS when touched).
   */
  mapFile(fd: number, fileOffset: number, at: number, length: number): boolean {
    const view = this.bytes;
    if (!this.remappable || at % PAGE_SIZE !== 0 || length % PAGE_SIZE !== 0 || fileOffset % PAGE_SIZE !== 0 ||
      !Number.isSafeInteger(at) || length <= 0 || at < 0 || at + length > view.length) return false;
    const p = libc.mmapAt(this.hva + at, length, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_FIXED, fd, fileOffset);
    if (!libc.isMapFailed(p)) {
      this.fileMapped = true;
      return true;
    }
    // A failed MAP_FIXED may have unmapped the range already: never leave a hole in the owner's memory.
    this.blank(at, length);
    return false;
  }

  /** Zeroed private anonymous memory over [at, at + length) (what the arena's committed memory is), in one step. */
  private blank(at: number, length: number): void {
    const p = libc.mmapAt(this.hva + at, length, libc.PROT_READ | libc.PROT_WRITE,
      libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | libc.MAP_NORESERVE | libc.MAP_FIXED, -1, 0);
    if (libc.isMapFailed(p)) throw new SyscallError(`mmap(MAP_FIXED, ${length})`, libc.lastErrno());
  }

  /** Maps `size` bytes (a multiple of the page size, at most MAX_HOST_MEMORY) of zeroed memory. */
  static allocate(size: number): HostMemory {
    checkSize(size);
    const p = libc.mmap(
      null,
      size,
      libc.PROT_READ | libc.PROT_WRITE,
      libc.MAP_SHARED | libc.MAP_ANONYMOUS | libc.MAP_NORESERVE,
      -1,
      0,
    );
    if (libc.isMapFailed(p)) throw new SyscallError(`mmap(${size})`, libc.lastErrno());
    return new HostMemory(libc.addressOf(p), new Uint8Array(libc.viewOf(p, size)), 'mapped', null, true);
  }

  /** A view of memory allocated elsewhere in this process (for example by another worker thread), valid while its owner keeps it. */
  static attach(hva: number, size: number): HostMemory {
    checkSize(size);
    return new HostMemory(hva, new Uint8Array(libc.viewOf(libc.pointerAt(hva), size)), 'attached');
  }

  /** Gives the memory back if this object allocated it; `bytes` throws from now on (see the file header). */
  free(): void {
    const view = this.view;
    if (view === null) return;
    this.view = null;
    switch (this.ownership) {
      case 'mapped': {
        // A blank private mapping replaces the memory in one step: its pages are released, and the
        // address stays taken until no view can reach it.
        const p = libc.mmapAt(this.hva, this.size, libc.PROT_READ | libc.PROT_WRITE,
          libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | libc.MAP_NORESERVE | libc.MAP_FIXED, -1, 0);
        if (libc.isMapFailed(p)) throw new SyscallError(`mmap(MAP_FIXED, ${this.size})`, libc.lastErrno());
        const { hva, size } = this;
        reclaimWhenUnreachable(view.buffer, { run: () => void libc.munmap(libc.pointerAt(hva), size), atThreadExit: true });
        return;
      }
      case 'lent':
        if (this.fileMapped) this.blank(0, this.size);
        reclaimWhenUnreachable(view.buffer, { run: this.release!, atThreadExit: false });
        return;
      case 'attached':
        return;
    }
  }
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) {
    throw new TsvmmError('TSVMM_BAD_ARGUMENT', `host memory size ${size} is not a positive multiple of ${PAGE_SIZE}`);
  }
  if (size > MAX_HOST_MEMORY) {
    throw new TsvmmError('TSVMM_LIMIT', `host memory of ${size} bytes is more than one HostMemory holds (${MAX_HOST_MEMORY} bytes, 4 GiB: a typed array's limit); allocate it in pieces`);
  }
}
