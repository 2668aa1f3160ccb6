/**
 * Stopping a vCPU from any thread (nvmm_vcpu_stop), through its StopHandle.
 *
 * The handle's shared words: STOP (a stop is requested; the run loop clears it), ALIVE (the
 * vCPU's kick target still exists) and LOCK (held while kicking, and by the owner while
 * retiring the vCPU, so that a kick never touches a kvm_run mapping that is going away).
 */
import * as libc from '../common/libc.js';
import { HostMemory } from '../memory/host-memory.js';
import type { StopHandle } from './backend.js';

export const STOP_WORD = { STOP: 0, ALIVE: 1, LOCK: 2 } as const;
const WORDS = 3;

/** kvm_run.immediate_exit: KVM_RUN returns EINTR at once while it is set. */
const IMMEDIATE_EXIT_OFFSET = 1;

/** The shared words of a new, live stop handle. */
export function newStopFlag(): SharedArrayBuffer {
  const flag = new SharedArrayBuffer(WORDS * 4);
  Atomics.store(new Int32Array(flag), STOP_WORD.ALIVE, 1);
  return flag;
}

function locked<T>(words: Int32Array, fn: () => T): T {
  while (Atomics.compareExchange(words, STOP_WORD.LOCK, 0, 1) !== 0) Atomics.wait(words, STOP_WORD.LOCK, 1, 1);
  try {
    return fn();
  } finally {
    Atomics.store(words, STOP_WORD.LOCK, 0);
    Atomics.notify(words, STOP_WORD.LOCK);
  }
}

export function stopVcpu(handle: StopHandle): void {
  const words = new Int32Array(handle.flag);
  // The flag first: a run loop that sees immediate_exit or the kick checks the flag after.
  Atomics.store(words, STOP_WORD.STOP, 1);
  Atomics.notify(words, STOP_WORD.STOP); // a VMM sleeping on the word (a halted software vCPU)
  const kick = handle.kick;
  if (!kick) return;
  locked(words, () => {
    if (Atomics.load(words, STOP_WORD.ALIVE) !== 1) return;
    HostMemory.attach(kick.runAddress, 4096).bytes[IMMEDIATE_EXIT_OFFSET] = 1;
    libc.tgkill(kick.pid, kick.tid, libc.KICK_SIGNAL);
  });
}

/** Called by a backend before the kick target goes away: later stopVcpu calls only set the flag. */
export function retireStopHandle(handle: StopHandle): void {
  const words = new Int32Array(handle.flag);
  locked(words, () => Atomics.store(words, STOP_WORD.ALIVE, 0));
}
