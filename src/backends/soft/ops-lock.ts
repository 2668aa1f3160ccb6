/**
 * LOCK-prefixed instructions and XCHG with memory, atomic across vCPUs in other threads (SMP:
 * guest RAM is one shared memory, vmm/soft-ap.ts).
 *
 * compileInsn wraps such an instruction's handler (lockedHandler); the wrapped handler runs as
 * usual, with its one memory write turned into a compare-and-exchange:
 * - Aligned destinations of 1, 2, 4 or 8 bytes (the common case, and everything Linux's atomics
 *   and spinlocks use): the value in memory is loaded atomically, the handler computes from it,
 *   and its write is Atomics.compareExchange against that value (Cpu.casWrite). If the location
 *   changed in between (any other vCPU's store, locked or plain: an x86 spin_unlock is a plain
 *   MOV), nothing is written, registers and flags are put back and the instruction runs again.
 *   So no store of another vCPU is ever lost, as with the hardware's locked read-modify-write.
 *   (An ABA change between the load and the handler's own read, two stores in a few hundred
 *   nanoseconds that leave the old value, is not detected.)
 * - Everything else (misaligned or page-crossing destinations, BT* with a register bit offset,
 *   CMPXCHG8B and CMPXCHG16B): a global lock, shared by every thread of the arena, held while
 *   the handler runs with plain accesses. Atomic against every other locked instruction (which
 *   all take the same lock), not against a plain store to the same bytes in that window.
 * Both paths hold the global lock, so the two never interleave on the same bytes. Compiled code
 * does not inline these instructions (the block compilers recognise handlers by identity, and
 * the wrapper is none they know): it calls the wrapped handler, so they are atomic there too.
 */
import { arenaLock, arenaMemory, arenaUnlock } from './arena.js';
import { TLB_WRITE } from './cpu.js';
import { ea, IMM, MEM, type Handler, type Insn } from './insn.js';

/** How a locked instruction is made atomic (see the file comment). */
export const LOCK_KIND = { CAS: 0, GLOBAL: 1 } as const;

/**
 * Runs again at most this many times: a guest that stores to the location without pause from
 * another vCPU could otherwise keep this one in one instruction for good (and its thread deaf to
 * the host's stop). Past it the instruction runs once with plain accesses, as the global-lock path does.
 */
export const MAX_CAS_RETRIES = 10_000;

/** Scratch for the state an instruction that must run again puts back. */
const savedRegs = new Int32Array(34);

/** The handler `fn` of an instruction that must be atomic (LOCK prefix, or XCHG with memory). */
export function lockedHandler(fn: Handler, kind: number): Handler {
  if (kind === LOCK_KIND.GLOBAL) {
    return (c, i) => {
      arenaLock();
      try {
        fn(c, i);
      } finally {
        arenaUnlock();
      }
    };
  }
  return (c, i) => {
    const size = i.size;
    ea(c, i);
    const lo = c.eaLo, hi = c.eaHi;
    // Faults (and MMIO) show here, before anything changes.
    c.translate(lo, hi, TLB_WRITE, size);
    // Through the arena's SharedArrayBuffer (RAM's views may be plain ArrayBuffers over the
    // same memory, on which Atomics need not be atomic).
    const m = c.tMmio ? undefined : c.phys.find(c.tGpa);
    const base = m === undefined ? -1 : c.phys.mappingView(m).arena;
    const at = base < 0 ? -1 : base + (c.tGpa - m!.gpa);
    if (at < 0 || at % size !== 0 || (lo & 0xfff) + size > 0x1000) {
      c.tMmio = false;
      arenaLock();
      try {
        fn(c, i);
      } finally {
        arenaUnlock();
      }
      return;
    }
    const R = c.regs, buffer = arenaMemory().buffer;
    arenaLock();
    try {
      for (let tries = 0; tries < MAX_CAS_RETRIES; tries++) {
        savedRegs.set(R);
        const flags = c.lz.get();
        c.casLoad(buffer, at, size);
        c.casOn = true;
        c.casFailed = false;
        try {
          fn(c, i);
        } finally {
          c.casOn = false;
        }
        if (!c.casFailed) return;
        R.set(savedRegs.subarray(0, R.length));
        c.lz.setEager(flags);
      }
      fn(c, i);
    } finally {
      arenaUnlock();
    }
  };
}

/** The kind of atomicity an instruction of this mnemonic and operands needs (compileInsn). */
export function lockKind(name: string, i: Insn): number {
  if (i.o0 !== MEM && !(name === 'xchg' && i.o1 === MEM)) return LOCK_KIND.GLOBAL;
  if (name === 'cmpxchg8b' || name === 'cmpxchg16b') return LOCK_KIND.GLOBAL;
  if ((name === 'bt' || name === 'bts' || name === 'btr' || name === 'btc') && i.o1 !== IMM) return LOCK_KIND.GLOBAL;
  return LOCK_KIND.CAS;
}
