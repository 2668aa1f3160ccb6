/**
 * A child process's peak RSS, as the benchmarks print it beside their times: its VmHWM (which only
 * grows), read every POLL_MS while it runs, since /proc forgets it once the process is gone.
 */
import { readFileSync } from 'node:fs';

const POLL_MS = 100;

/** VmHWM of a live process in KiB (0 once it is gone). */
function vmHwmKiB(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Starts sampling `pid`; stop() ends it and returns the highest VmHWM seen, in KiB. */
export function watchPeakRss(pid: number): { stop(): number } {
  let peak = 0;
  const poll = setInterval(() => { peak = Math.max(peak, vmHwmKiB(pid)); }, POLL_MS);
  return {
    stop() {
      clearInterval(poll);
      return peak;
    },
  };
}
