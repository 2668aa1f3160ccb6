/**
 * Profiling, a capability of the soft backend (SoftOptions.profile, the CLI's `--trace profile`):
 * what the VMM asks for (ProfileOptions) and what it gets back (SoftProfile, plain data that
 * crosses threads), with the phases of the soft CPU's work the profile is divided into. The
 * profiler itself is the backend's (backends/soft/profile.ts); the VMM formats the result
 * (vmm/profile.ts). KVM refuses it (backends/open.ts).
 */

/** The phases, by code (0: not running guest code: before the first run, after the last). */
export const PHASE_NAMES = [
  'none', 'interpreter', 'compiled JS', 'compiled wasm', 'compile', 'decode', 'dispatch', 'page walk', 'device (inline)', 'VMM exits', 'halted',
] as const;
export type PhaseName = (typeof PHASE_NAMES)[number];
export const PH_NONE = 0, PH_INTERP = 1, PH_JS = 2, PH_WASM = 3, PH_COMPILE = 4, PH_DECODE = 5, PH_DISPATCH = 6, PH_WALK = 7,
  PH_DEVICE = 8, PH_EXIT = 9, PH_HALT = 10;
export const PHASES = PHASE_NAMES.length;

/** One guest RIP (the start of a block or of a compiled region) and its samples by phase. */
export interface RipSamples {
  rip: bigint;
  /** Samples by phase code (PHASE_NAMES). */
  samples: number[];
}

/** A finished profile: plain data (it crosses threads). */
export interface SoftProfile {
  /** The sampling rate asked for, and the delay before the first sample. */
  hz: number;
  delayMs: number;
  /** Samples taken while the vCPU ran or handled exits. */
  samples: number;
  /** Host nanoseconds by phase code; their sum is spanNs. */
  phaseNs: number[];
  /** Samples by phase code. */
  phaseSamples: number[];
  spanNs: number;
  /** Instructions the vCPU retired between the first and the last sample, and how many of them the interpreter ran. */
  instructions: number;
  interpreted: number;
  rips: RipSamples[];
  /** Samples whose RIP the table had no room for. */
  dropped: number;
}

export interface ProfileOptions {
  /** Samples per second (default DEFAULT_PROFILE_HZ, at most MAX_PROFILE_HZ). */
  hz?: number;
  /** Milliseconds from attach() before the first sample (default 0): leaves out a boot, say. */
  delayMs?: number;
  /**
   * Samples are taken only while the first Int32 of this buffer is not 0 (perf record's
   * --control): another thread opens and closes the window, e.g. on what the guest prints.
   */
  gate?: SharedArrayBuffer;
}

export const DEFAULT_PROFILE_HZ = 1000;
export const MAX_PROFILE_HZ = 20_000;
