/**
 * Time, in nanoseconds as numbers (exact below 2^53 ns: 104 days).
 *
 * hostNs() is the monotonic clock every thread of the process shares (CLOCK_MONOTONIC through
 * process.hrtime). performance.now() would not do: each worker thread has its own time origin, so
 * two threads would disagree by the time between their starts.
 *
 * GuestClock is a machine's guest time: the host's clock from an origin, so that guest time reads
 * 0 when the machine is created (as a PC's counters start at reset) and then runs with the host's.
 * Everything that gives the guest a time reads it (the timer devices through their injected `now`,
 * the soft CPU's time-stamp counter, the loops that tick the devices), in whichever thread:
 * another thread reads the same clock from its origin (GuestClock.attach), so the vCPUs of one
 * machine agree on the time whichever thread runs them.
 */

/** The host's monotonic clock (the same in every thread of the process), in nanoseconds. */
export function hostNs(): number {
  return Number(process.hrtime.bigint());
}

/** What devices are given to read guest time: nanoseconds, never decreasing. */
export type NowNs = () => number;

export interface GuestClockOptions {
  /** The host clock guest time follows (default hostNs; tests give a fake one, in one thread). */
  host?: NowNs;
  /** The host time at which guest time is 0 (default: now). */
  origin?: number;
}

export class GuestClock {
  /** The host time at which guest time was 0: what another thread needs to read this clock (GuestClock.attach). */
  readonly origin: number;
  private readonly host: NowNs;

  constructor(opts: GuestClockOptions = {}) {
    this.host = opts.host ?? hostNs;
    this.origin = opts.origin ?? this.host();
  }

  /** The clock whose origin is `origin` (GuestClock.origin, possibly from another thread). */
  static attach(origin: number): GuestClock {
    return new GuestClock({ origin });
  }

  /** Guest time in nanoseconds (bound: hand it to a device as its `now`). */
  readonly now: NowNs = (): number => this.host() - this.origin;
}
