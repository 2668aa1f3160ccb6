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
 * the soft CPU's time-stamp counter, the RTC, the loops that tick the devices), in whichever
 * thread: another thread reads the same clock (GuestClock.attach of its `share`), so the vCPUs of
 * one machine agree on the time whichever thread runs them.
 *
 * Guest time can stop (stop()/start()): while a machine is paused, being saved, or not yet
 * running after a restore, the guest's clocks do not count. Because every guest clock is derived
 * from this one, stopping it stops them all at the same instant and starting it moves them all on
 * by the same skipped host time (none): the TSC, the ACPI PM timer, the PIT, the local APIC timer
 * and the RTC stay in step, as a guest's clocksource watchdog requires. (A restored TSC that
 * reached the vCPU only at its first run, after guest time had started again, lagged the PM timer
 * by that delay, a millisecond or more, and Linux marked its TSC unstable.)
 *
 * The state lives in a SharedArrayBuffer: one thread (the machine's owner) stops and starts the
 * clock; attached clocks in other threads read it. The running flag is an Int32 accessed with
 * Atomics, written after the Float64 it publishes, so a reader that sees the flag sees the value.
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
  /** Start stopped at this guest time (a restored machine's, until it first runs); start() lets it run. */
  stoppedAt?: number;
}

/** What GuestClock.attach needs in another thread (structured-cloneable). */
export type GuestClockShare = SharedArrayBuffer;

// The shared layout: Float64 ORIGIN and STOPPED_AT, then an Int32 flag.
const F_ORIGIN = 0; // Float64: host time at which guest time was 0 (while running)
const F_STOPPED_AT = 1; // Float64: guest time while stopped
const I_STOPPED = 0; // Int32 (at byte 16): 1 while stopped
const SHARE_BYTES = 24;

export class GuestClock {
  /** The shared state: hand it to GuestClock.attach in another thread. */
  readonly share: GuestClockShare;
  private readonly host: NowNs;
  private readonly f: Float64Array;
  private readonly flag: Int32Array;
  /** This reader's last answer: now() never goes back, even across another thread's stop(). */
  private last = 0;

  constructor(opts: GuestClockOptions = {}, share?: GuestClockShare) {
    this.host = opts.host ?? hostNs;
    this.share = share ?? new SharedArrayBuffer(SHARE_BYTES);
    this.f = new Float64Array(this.share, 0, 2);
    this.flag = new Int32Array(this.share, 16, 1);
    if (share) return;
    if (opts.stoppedAt !== undefined) {
      if (!(opts.stoppedAt >= 0)) throw new RangeError(`guest time ${opts.stoppedAt} is not a time in nanoseconds`);
      this.f[F_STOPPED_AT] = opts.stoppedAt;
      Atomics.store(this.flag, I_STOPPED, 1);
    } else {
      this.f[F_ORIGIN] = opts.origin ?? this.host();
    }
  }

  /** The clock whose shared state is `share` (GuestClock.share, possibly from another thread). */
  static attach(share: GuestClockShare): GuestClock {
    return new GuestClock({}, share);
  }

  /** Whether guest time runs. */
  get running(): boolean {
    return Atomics.load(this.flag, I_STOPPED) === 0;
  }

  /** Guest time in nanoseconds (bound: hand it to a device as its `now`). */
  readonly now: NowNs = (): number => {
    const t = Atomics.load(this.flag, I_STOPPED) !== 0 ? this.f[F_STOPPED_AT]! : this.host() - this.f[F_ORIGIN]!;
    if (t > this.last) this.last = t;
    return this.last;
  };

  /** Stops guest time where it is (the owner's thread); a no-op when stopped. */
  stop(): void {
    if (!this.running) return;
    this.f[F_STOPPED_AT] = this.now();
    Atomics.store(this.flag, I_STOPPED, 1);
  }

  /** Lets guest time run on from where it stopped (the owner's thread); a no-op when running. */
  start(): void {
    if (this.running) return;
    this.f[F_ORIGIN] = this.host() - this.f[F_STOPPED_AT]!;
    Atomics.store(this.flag, I_STOPPED, 0);
  }
}
