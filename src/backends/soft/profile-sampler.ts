/**
 * The profiler's sampler thread (profile.ts): wakes every intervalMs, reads what the vCPU thread
 * is doing (its phase word and the RIP of its block, or the running WebAssembly region's entry RIP
 * in the arena), and counts it, weighted by the real time since the previous sample, while the
 * gate (if there is one) is open. Runs until the stop word is set, then sets the done word. Only
 * shared memory: the vCPU thread's event loop is busy running the guest.
 */
import { workerData } from 'node:worker_threads';
import {
  F_FIRST_INSNS, F_FIRST_INTERPRETED, F_INSNS, F_INTERPRETED, F_LAST_INSNS, F_LAST_INTERPRETED, F_PHASE_NS, F_SPAN_NS, PHASES,
  PH_NONE, PH_WASM, RIP_CAPACITY, RIP_PROBES, RIP_STRIDE, W_DONE, W_DROPPED, W_READY, W_RIP_HI, W_RIP_LO, W_SAMPLES, W_STATE,
  W_STOP, sharedViews, type SamplerData,
} from './profile.js';

const data = workerData as SamplerData;
const { words, times, table } = sharedViews(data.shared);
const arena = data.arena ? new Int32Array(data.arena) : null;
const gate = data.gate ? new Int32Array(data.gate, 0, 1) : null;
const MASK = RIP_CAPACITY - 1;

/** Counts one sample of `phase` at RIP (lo, hi); false when the table has no room for a new RIP. */
function count(lo: number, hi: number, phase: number): boolean {
  let e = (Math.imul(lo ^ (lo >>> 15), 0x2c1b3c6d) ^ hi) & MASK;
  for (let probe = 0; probe < RIP_PROBES; probe++, e = (e + 1) & MASK) {
    const at = e * RIP_STRIDE;
    if (table[at + 2] === 0) {
      table[at] = lo; table[at + 1] = hi; table[at + 2] = 1;
    } else if (table[at] !== lo || table[at + 1] !== hi) continue;
    table[at + 3 + phase]!++;
    return true;
  }
  return false;
}

const now = (): number => Number(process.hrtime.bigint());
Atomics.store(words, W_READY, 1);
Atomics.notify(words, W_READY);
// The delay: one wait (a stop ends it early).
Atomics.wait(words, W_STOP, 0, data.delayMs);
let last = now();
while (Atomics.load(words, W_STOP) === 0) {
  Atomics.wait(words, W_STOP, 0, data.intervalMs);
  const t = now();
  const dt = t - last;
  last = t;
  if (gate !== null && Atomics.load(gate, 0) === 0) continue;
  const state = Atomics.load(words, W_STATE);
  const phase = state & 0xff;
  if (phase === PH_NONE || phase >= PHASES) continue;
  const code = (state >> 8) & 0xff;
  const inWasm = code === PH_WASM && arena !== null;
  const lo = inWasm ? arena[data.baseIndex]! : words[W_RIP_LO]!;
  const hi = inWasm ? arena[data.baseIndex + 1]! : words[W_RIP_HI]!;
  times[F_PHASE_NS + phase]! += dt;
  times[F_SPAN_NS]! += dt;
  if (words[W_SAMPLES] === 0) { times[F_FIRST_INSNS] = times[F_INSNS]!; times[F_FIRST_INTERPRETED] = times[F_INTERPRETED]!; }
  times[F_LAST_INSNS] = times[F_INSNS]!;
  times[F_LAST_INTERPRETED] = times[F_INTERPRETED]!;
  words[W_SAMPLES]!++;
  if (!count(lo, hi, phase)) words[W_DROPPED]!++;
}
Atomics.store(words, W_DONE, 1);
Atomics.notify(words, W_DONE);
