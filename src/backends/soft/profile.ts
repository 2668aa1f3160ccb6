/**
 * A sampling profiler of the soft CPU (`tsvmm run --trace profile`): where the host's time goes,
 * by phase of the CPU's work (interpreter, compiled JS, compiled WebAssembly, compilation, block
 * decoding, the run loop's dispatch, page walks, device work, exits to the VMM, halted), and which
 * guest code it runs for, by RIP.
 *
 * How, and why this way: reading the clock at every phase boundary would cost more than a block
 * of guest code (a clock read is 30-100 ns, a compiled block a few ns). Instead the vCPU thread only
 * stores what it is doing into a few shared words (the phase, the RIP of the block it runs) at the
 * boundaries, and a sampler thread (profile-sampler.ts) reads them at a fixed rate, as perf's timer
 * interrupt reads the PC. Compiled WebAssembly regions run one after another without returning to
 * JS: for them the sampler reads the running region's entry RIP that jit-wasm.ts's dispatcher keeps
 * in the control block (C_BASE), in the shared arena. Each sample weighs the real time since the
 * previous one, so the phases add up to the time sampled. Everything is in fixed-size shared
 * tables (a RIP table of RIP_CAPACITY entries; samples that find it full are only counted), and
 * nothing runs when no profiler is attached: the executor tests one field per block.
 */
import { Worker } from 'node:worker_threads';
import { TsvmmError, assert } from '../../common/errors.js';
import type { InlineDevices } from '../../nvmm/backend.js';
import {
  DEFAULT_PROFILE_HZ, MAX_PROFILE_HZ, PHASES, PH_DEVICE, PH_EXIT, PH_HALT, PH_WALK, type ProfileOptions, type RipSamples, type SoftProfile,
} from '../../nvmm/profile.js';
import { ARENA_CTL, type Cpu } from './cpu.js';
import { C_BASE } from './jit-wasm.js';

// The profile's data types and phase codes are the API's; re-exported with the profiler that produces them.
export * from '../../nvmm/profile.js';

/**
 * The word the vCPU thread writes (W_STATE): the current phase in bits 0-7 and, in bits 8-15, the
 * kind of code whose RIP the sample takes (the interpreter's, a compiled region's...). A phase
 * nested in code (a page walk, an inline device access) changes the low byte only.
 */
export function phaseWord(phase: number): number {
  return phase | (phase << 8);
}

// ---- the shared layout (Int32 words, then Float64 phase times, then the RIP table) ----
/** Written by the vCPU thread: the state word, and the RIP (lo, hi) of the block it runs. */
export const W_STATE = 0, W_RIP_LO = 1, W_RIP_HI = 2;
/** Control: stop request (vCPU -> sampler), ready and done (sampler -> vCPU). */
export const W_STOP = 3, W_READY = 4, W_DONE = 5;
/** Samples taken while a phase other than none was current; samples the RIP table had no room for. */
export const W_SAMPLES = 6, W_DROPPED = 7;
export const CONTROL_WORDS = 8;
/** Float64 index: nanoseconds per phase (PHASES of them), then the time span sampled. */
export const F_PHASE_NS = 0, F_SPAN_NS = PHASES;
/**
 * The executor's counters, instructions and instructions interpreted, which the vCPU thread
 * copies here every few hundred blocks; and the first and last values the samples saw.
 */
export const F_INSNS = PHASES + 1, F_INTERPRETED = PHASES + 2, F_FIRST_INSNS = PHASES + 3, F_LAST_INSNS = PHASES + 4,
  F_FIRST_INTERPRETED = PHASES + 5, F_LAST_INTERPRETED = PHASES + 6;
const F_OFFSET = CONTROL_WORDS * 4;
const F_COUNT = PHASES + 7;
/** RIP table: entries of (lo, hi, used, samples per phase), open addressing. */
export const RIP_CAPACITY = 1 << 15;
export const RIP_STRIDE = 3 + PHASES;
/** Probes before a sample gives up on the table (counted in W_DROPPED). */
export const RIP_PROBES = 32;
const T_OFFSET = F_OFFSET + F_COUNT * 8;
const SHARED_BYTES = T_OFFSET + RIP_CAPACITY * RIP_STRIDE * 4;

/** What the sampler thread gets. */
export interface SamplerData {
  shared: SharedArrayBuffer;
  /**
   * The arena (null: the vCPU's state is not there, no WebAssembly regions) and the Int32 index of
   * the running region's entry RIP in it (jit-wasm.ts's C_BASE; the high half follows).
   */
  arena: SharedArrayBuffer | null;
  baseIndex: number;
  intervalMs: number;
  /** Samples start this long after the sampler (perf record's --delay). */
  delayMs: number;
  gate: SharedArrayBuffer | null;
}

export function sharedViews(shared: SharedArrayBuffer): { words: Int32Array; times: Float64Array; table: Int32Array } {
  return {
    words: new Int32Array(shared, 0, CONTROL_WORDS),
    times: new Float64Array(shared, F_OFFSET, F_COUNT),
    table: new Int32Array(shared, T_OFFSET, RIP_CAPACITY * RIP_STRIDE),
  };
}

/** How long attach() waits for the sampler thread to start, and stop() for it to finish. */
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

/** What the profiler needs of a vCPU: the executor's shared-word fields, its counters and its Cpu. */
export interface ProfiledExecutor {
  prof: Int32Array | null;
  /** Where the executor copies its counters (F_INSNS, F_INTERPRETED). */
  profCounts: Float64Array | null;
  readonly icount: number;
  readonly interpreted: number;
  readonly cpu: Cpu;
}

/** A profiled vCPU's run() returned: it is outside the CPU now (halted, or the VMM handles an exit); its counters are current. */
export function profileRunEnd(exec: ProfiledExecutor, halted: boolean): void {
  exec.prof![W_STATE] = phaseWord(halted ? PH_HALT : PH_EXIT);
  const f = exec.profCounts!;
  f[F_INSNS] = exec.icount;
  f[F_INTERPRETED] = exec.interpreted;
}

export class SoftProfiler {
  readonly hz: number;
  readonly delayMs: number;
  private readonly gate: SharedArrayBuffer | null;
  private readonly shared = new SharedArrayBuffer(SHARED_BYTES);
  private readonly views = sharedViews(this.shared);
  private worker: Worker | null = null;
  private result: SoftProfile | null = null;

  constructor(opts: ProfileOptions = {}) {
    const hz = opts.hz ?? DEFAULT_PROFILE_HZ;
    if (!Number.isInteger(hz) || hz < 1 || hz > MAX_PROFILE_HZ) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `profile rate ${hz} Hz is not 1 to ${MAX_PROFILE_HZ}`);
    this.hz = hz;
    const delay = opts.delayMs ?? 0;
    if (!Number.isFinite(delay) || delay < 0) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `profile delay ${delay} ms is not a duration`);
    this.delayMs = delay;
    this.gate = opts.gate ?? null;
  }

  /** Whether a vCPU is attached (a profiler follows one vCPU: the first it is given). */
  get attached(): boolean {
    return this.worker !== null;
  }

  /**
   * Starts sampling `exec`: the executor writes its phase and RIP into the shared words from now
   * on, and the Cpu's TLB fill (the page walk) marks its own phase. Waits until the sampler runs.
   */
  attach(exec: ProfiledExecutor): void {
    if (this.worker !== null) throw new TsvmmError('TSVMM_BUSY', 'this profiler already follows a vCPU');
    const cpu = exec.cpu;
    const arena = cpu.arenaBase >= 0 ? (cpu.ctl.buffer as SharedArrayBuffer) : null;
    const data: SamplerData = {
      shared: this.shared, arena, baseIndex: arena ? (cpu.arenaBase + ARENA_CTL) / 4 + C_BASE : -1, intervalMs: 1000 / this.hz,
      delayMs: this.delayMs, gate: this.gate,
    };
    const worker = new Worker(new URL('./profile-sampler.js', import.meta.url), { workerData: data });
    worker.unref();
    this.worker = worker;
    const words = this.views.words;
    // The sampler starts on its own thread; this one may block (a vCPU thread does not serve its event loop while it runs).
    if (Atomics.wait(words, W_READY, 0, START_TIMEOUT_MS) === 'timed-out' && Atomics.load(words, W_READY) === 0) {
      void worker.terminate();
      throw new TsvmmError('TSVMM_UNSUPPORTED', `the profiler's sampler thread did not start in ${START_TIMEOUT_MS / 1000} s`);
    }
    wrapPageWalk(cpu, words);
    exec.profCounts = this.views.times;
    exec.prof = words;
  }

  /** Samples so far (for tests that run a guest until the profile has enough). */
  get samples(): number {
    return Atomics.load(this.views.words, W_SAMPLES);
  }

  /** Ends sampling (once) and returns the profile. */
  stop(): SoftProfile {
    if (this.result !== null) return this.result;
    const { words, times, table } = this.views;
    if (this.worker !== null) {
      Atomics.store(words, W_STOP, 1);
      Atomics.notify(words, W_STOP);
      Atomics.wait(words, W_DONE, 0, STOP_TIMEOUT_MS);
      void this.worker.terminate();
    }
    const rips: RipSamples[] = [];
    for (let e = 0; e < RIP_CAPACITY; e++) {
      const at = e * RIP_STRIDE;
      if (table[at + 2] === 0) continue;
      rips.push({ rip: (BigInt(table[at + 1]! >>> 0) << 32n) | BigInt(table[at]! >>> 0), samples: Array.from(table.subarray(at + 3, at + 3 + PHASES)) });
    }
    const phaseSamples = new Array<number>(PHASES).fill(0);
    for (const r of rips) r.samples.forEach((n, p) => { phaseSamples[p]! += n; });
    this.result = {
      hz: this.hz, delayMs: this.delayMs, samples: words[W_SAMPLES]!, phaseNs: Array.from(times.subarray(F_PHASE_NS, F_PHASE_NS + PHASES)), phaseSamples,
      spanNs: times[F_SPAN_NS]!, rips, dropped: words[W_DROPPED]!,
      instructions: times[F_LAST_INSNS]! - times[F_FIRST_INSNS]!, interpreted: times[F_LAST_INTERPRETED]! - times[F_FIRST_INTERPRETED]!,
    };
    return this.result;
  }
}

/**
 * The page-walk phase: the Cpu's TLB fill (its miss path: the walk, the physical lookup and the
 * fill) marks it. The fill is replaced on this one Cpu object only, so an unprofiled CPU runs
 * the method of its class, untouched.
 */
function wrapPageWalk(cpu: Cpu, words: Int32Array): void {
  const target = cpu as unknown as { fill: (lo: number, hi: number, kind: number, idx: number, tag: number) => void };
  const fill = target.fill;
  assert(typeof fill === 'function', 'the soft CPU has a TLB fill method to profile');
  target.fill = function (this: Cpu, lo: number, hi: number, kind: number, idx: number, tag: number): void {
    const prev = words[W_STATE]!;
    words[W_STATE] = (prev & ~0xff) | PH_WALK;
    try {
      fill.call(this, lo, hi, kind, idx, tag);
    } finally {
      words[W_STATE] = prev;
    }
  };
}

/** The inline devices with their work marked as the device phase (interruptPending, called per block, is not: it only reads). */
export function profiledDevices(words: Int32Array, d: InlineDevices): InlineDevices {
  const enter = (): number => {
    const prev = words[W_STATE]!;
    words[W_STATE] = (prev & ~0xff) | PH_DEVICE;
    return prev;
  };
  return {
    io(port, size, isIn, value) {
      const prev = enter();
      try { return d.io(port, size, isIn, value); } finally { words[W_STATE] = prev; }
    },
    interruptPending: () => d.interruptPending(),
    acknowledge() {
      const prev = enter();
      try { return d.acknowledge(); } finally { words[W_STATE] = prev; }
    },
    tick(nowNs) {
      const prev = enter();
      try { return d.tick(nowNs); } finally { words[W_STATE] = prev; }
    },
    ended: () => d.ended(),
    mmio: d.mmio && ((gpa, data, write) => {
      const prev = enter();
      try { d.mmio!(gpa, data, write); } finally { words[W_STATE] = prev; }
    }),
    ...(d.apic ? { apic: d.apic } : {}),
  };
}
