/**
 * Time, in nanoseconds as numbers (exact below 2^53 ns: 104 days).
 *
 * hostNs() is the monotonic clock every thread of the process shares (CLOCK_MONOTONIC through
 * process.hrtime). performance.now() would not do: each worker thread has its own time origin, so
 * two threads would disagree by the time between their starts.
 *
 * GuestClock is a machine's guest time: hostNs() plus an offset held in shared memory. Everything
 * that gives the guest a time reads it (the timer devices through their `now` collaborator, the
 * soft CPU's time-stamp counter, the run loops that tick the devices), in whichever thread: one
 * more thread attaches to the same clock through `shared`. Guest time starts at 0 when the clock
 * is created (as a PC's counters start at reset) and then runs with the host's. Moving it (a
 * restored snapshot resumes at its own guest time) is one set(), seen by every reader of the
 * clock at once, devices included, with nothing to change in them.
 */

/** The host's monotonic clock (the same in every thread of the process), in nanoseconds. */
export function hostNs(): number {
  return Number(process.hrtime.bigint());
}

/** What devices are given to read guest time: nanoseconds, never decreasing. */
export type NowNs = () => number;

/** Float64 index in the shared buffer: guest time minus host time, in nanoseconds. */
const OFFSET = 0;
const SHARED_BYTES = 8;

export class GuestClock {
  /** The clock's state, to post to another thread (GuestClock.attach there reads the same time). */
  readonly shared: SharedArrayBuffer;
  private readonly words: Float64Array;

  /** A new guest clock that reads 0 now; or, with `shared`, the clock another thread created. */
  constructor(shared?: SharedArrayBuffer) {
    this.shared = shared ?? new SharedArrayBuffer(SHARED_BYTES);
    this.words = new Float64Array(this.shared, 0, 1);
    if (shared === undefined) this.words[OFFSET] = -hostNs();
  }

  /** The clock `shared` (from GuestClock.shared, possibly in another thread) describes. */
  static attach(shared: SharedArrayBuffer): GuestClock {
    return new GuestClock(shared);
  }

  /** Guest time in nanoseconds (bound: hand it to a device as its `now`). */
  readonly now: NowNs = (): number => hostNs() + this.words[OFFSET]!;

  /**
   * Makes guest time read `ns` from now on, for every reader in every thread. For a machine that
   * does not run (a snapshot being restored): while vCPUs or devices read the clock, time could
   * appear to go backwards, and another thread sees the change after its next synchronization
   * with this one (the message or Atomics wait that resumes it).
   */
  set(ns: number): void {
    this.words[OFFSET] = ns - hostNs();
  }
}
