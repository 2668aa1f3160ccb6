/**
 * The soft CPU's WebAssembly memory: one shared WebAssembly.Memory per process that holds what
 * compiled guest code (jit-wasm.ts) touches: each vCPU's registers, segment bases and TLB, and
 * guest RAM allocated through the soft backend. WebAssembly code reaches no other memory, so guest
 * RAM must live here for loads and stores to stay in compiled code.
 *
 * Shared, so its SharedArrayBuffer keeps its address when the memory grows (views made before a
 * grow stay valid) and other threads may attach to it by address like any HostMemory. The first
 * 64 KiB are never handed out: offset 0 means "not in the arena".
 *
 * Threads share it: a vCPU thread of the same machine is given the Memory object (adoptArenaMemory,
 * before it uses the arena), and the allocator's state (its top, the freed ranges) lives in the
 * arena's first page, so blocks that threads allocate never overlap.
 *
 * Which host memory is in the arena, and where, follows from its address (arenaOffsetOf): the
 * arena is one range of this process's addresses, so a HostMemory carries nothing of the soft
 * CPU's, and memory attached by address (HostMemory.attach) is found there like memory allocated here.
 *
 * Guest RAM here may have a file's pages mapped over it (HostMemory.mapFile: a snapshot's RAM,
 * copy-on-write), which is safe because of how V8 keeps a WebAssembly.Memory: it reserves the
 * whole range (up to the maximum, and guard pages) at once, PROT_NONE, and commits it as private
 * anonymous read-write memory as it grows (mprotect on the new pages only); it never moves,
 * decommits or discards pages below the current length, and frees the reservation whole (munmap)
 * when the Memory is collected. So a mapping placed inside a block stays until its HostMemory is
 * freed, which puts private anonymous zeroed memory back (what V8 had there) before the block
 * returns to this allocator. A block is one HostMemory's only.
 */
import * as libc from '../../common/libc.js';
import { HostMemory, MAX_HOST_MEMORY } from '../../memory/host-memory.js';
import { PAGE_SIZE } from '../../memory/page.js';

const WASM_PAGE = 65536;
/** wasm32's limit: 4 GiB. */
const MAX_PAGES = 65536;

let memory: WebAssembly.Memory | null = null;
/** The host address of the arena's first byte (it never moves: see above). */
let address = 0;
/** Words at the end of the arena's first page: the allocator's lock and its top (the first never-allocated 64 KiB page). */
const WORDS_AT = WASM_PAGE - 16; // the first page's last bytes
const W_LOCK = 0;
const W_TOP = 1;
/** The lock of LOCK-prefixed instructions that have no compare-and-exchange of their own (ops-lock.ts): 0 free, 1 held, 2 held with waiters. */
const W_INSN_LOCK = 2;
/** Entries in the table of freed ranges. */
const W_FREED = 3;
let words: Int32Array | null = null;
/**
 * Freed ranges, reused first-fit by every thread: pairs of (first 64 KiB page, pages) in the first
 * page's upper quarter. A range freed while the table is full is not reused (a bounded loss).
 */
const FREED_AT = 0xc000;
const FREED_MAX = 2000;
let freed: Int32Array | null = null;

function attachWords(mem: WebAssembly.Memory): void {
  words = new Int32Array(mem.buffer, WORDS_AT, 4);
  freed = new Int32Array(mem.buffer, FREED_AT, 2 * FREED_MAX);
}

/** The process's arena memory (created on first use). */
export function arenaMemory(): WebAssembly.Memory {
  if (memory === null) {
    memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    attachWords(memory);
    Atomics.store(words!, W_TOP, 1);
  }
  return memory;
}

/**
 * Makes `mem` (another thread's arenaMemory(), posted to this one) this thread's arena, before this
 * thread allocates from or compiles against it. A thread has one arena: adopting a second one is refused.
 */
export function adoptArenaMemory(mem: WebAssembly.Memory): void {
  if (memory === mem) return;
  if (memory !== null) throw new Error('this thread already has its own WebAssembly arena');
  memory = mem;
  attachWords(mem);
}

/**
 * Takes the arena's instruction lock (ops-lock.ts), shared by every thread of the arena: a
 * futex-style mutex on one word, waiting in Atomics.wait when it is contended.
 */
export function arenaLock(): void {
  arenaMemory();
  const w = words!;
  let c = Atomics.compareExchange(w, W_INSN_LOCK, 0, 1);
  if (c === 0) return;
  for (let spin = 0; spin < 100; spin++) {
    c = Atomics.compareExchange(w, W_INSN_LOCK, 0, 1);
    if (c === 0) return;
  }
  do {
    if (c === 2 || Atomics.compareExchange(w, W_INSN_LOCK, 1, 2) !== 0) Atomics.wait(w, W_INSN_LOCK, 2, 1);
    c = Atomics.compareExchange(w, W_INSN_LOCK, 0, 2);
  } while (c !== 0);
}

export function arenaUnlock(): void {
  const w = words!;
  if (Atomics.sub(w, W_INSN_LOCK, 1) !== 1) {
    Atomics.store(w, W_INSN_LOCK, 0);
    Atomics.notify(w, W_INSN_LOCK, 1);
  }
}

/** Holds the allocator's lock (shared by every thread of the arena) while `fn` runs. */
function locked<T>(fn: () => T): T {
  const w = words!;
  while (Atomics.compareExchange(w, W_LOCK, 0, 1) !== 0) Atomics.wait(w, W_LOCK, 1, 1);
  try {
    return fn();
  } finally {
    Atomics.store(w, W_LOCK, 0);
    Atomics.notify(w, W_LOCK);
  }
}

/** Reserves `size` bytes, zeroed, from a 64 KiB boundary; returns the offset, or -1 when the arena cannot hold them. */
export function arenaAllocate(size: number): number {
  const mem = arenaMemory();
  const need = Math.ceil(size / WASM_PAGE) * WASM_PAGE;
  const reused = locked(() => {
    const f = freed!, n = Atomics.load(words!, W_FREED), pages = need / WASM_PAGE;
    for (let k = 0; k < n; k++) {
      const first = f[2 * k]!, len = f[2 * k + 1]!;
      if (len < pages) continue;
      if (len === pages) {
        f[2 * k] = f[2 * (n - 1)]!; f[2 * k + 1] = f[2 * (n - 1) + 1]!;
        Atomics.store(words!, W_FREED, n - 1);
      } else {
        f[2 * k] = first + pages; f[2 * k + 1] = len - pages;
      }
      return first * WASM_PAGE;
    }
    return -1;
  });
  if (reused >= 0) {
    new Uint8Array(mem.buffer, reused, need).fill(0);
    return reused;
  }
  return locked(() => {
    const top = Atomics.load(words!, W_TOP) * WASM_PAGE;
    const end = top + need;
    if (end > MAX_PAGES * WASM_PAGE) return -1;
    const have = mem.buffer.byteLength;
    if (end > have) {
      try { mem.grow((end - have) / WASM_PAGE); } catch { return -1; }
    }
    Atomics.store(words!, W_TOP, end / WASM_PAGE);
    return top;
  });
}

/**
 * The offset in the arena of `mem`'s first byte, or -1 when `mem` is not (wholly) in it: compiled
 * code reaches guest RAM in place only there.
 */
export function arenaOffsetOf(mem: HostMemory): number {
  if (memory === null) return -1;
  const buffer = memory.buffer;
  address ||= libc.addressOfBytes(new Uint8Array(buffer, 0, 1));
  const off = mem.hva - address;
  return off >= WASM_PAGE && off + mem.size <= buffer.byteLength ? off : -1;
}

/** Gives back a block from arenaAllocate. */
export function arenaFree(offset: number, size: number): void {
  arenaMemory();
  locked(() => {
    const n = Atomics.load(words!, W_FREED);
    if (n >= FREED_MAX) return;
    freed![2 * n] = offset / WASM_PAGE;
    freed![2 * n + 1] = Math.ceil(size / WASM_PAGE);
    Atomics.store(words!, W_FREED, n + 1);
  });
}

/**
 * `size` bytes of zeroed guest RAM in the arena, or null when it cannot hold them (or `size` is
 * not something HostMemory takes: HostMemory.allocate then says why). The block comes back to
 * the arena once the memory is freed and no view of it is left (see HostMemory).
 */
export function arenaHostMemory(size: number): HostMemory | null {
  if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0 || size > MAX_HOST_MEMORY) return null;
  const off = arenaAllocate(size);
  if (off < 0) return null;
  const bytes = new Uint8Array(arenaMemory().buffer, off, size);
  return HostMemory.lent(bytes, () => arenaFree(off, size), true);
}
