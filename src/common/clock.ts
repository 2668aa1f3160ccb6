/**
 * The monotonic clock every thread of the process shares (CLOCK_MONOTONIC through
 * process.hrtime), in nanoseconds as a number: exact below 2^53 ns (104 days of uptime).
 * performance.now() would not do: each worker thread has its own time origin.
 */
export function monotonicNs(): number {
  return Number(process.hrtime.bigint());
}
