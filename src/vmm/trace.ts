/** Instruction traces as text: one line per executed instruction, for the first N. */
import type { TraceHook, TraceRecord } from '../nvmm/trace.js';

/** `<rip>: <bytes>  <disassembly>  reg=value ...` (changed registers). */
export function formatTrace(r: TraceRecord): string {
  const bytes = [...r.bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  const changed = Object.entries(r.changed).map(([name, v]) => `${name}=0x${v.toString(16)}`).join(' ');
  return `${r.rip.toString(16).padStart(16, '0')}: ${bytes.padEnd(30)} ${r.text.padEnd(40)} ${changed}`.trimEnd();
}

/** A hook that writes the first `limit` instructions to `sink`, then stays silent. */
export function cpuTrace(limit: number, sink: (line: string) => void): TraceHook {
  let left = limit;
  return (r) => {
    if (left <= 0) return;
    left--;
    sink(`${formatTrace(r)}\n`);
    if (left === 0) sink(`trace: ${limit} instructions traced, tracing stops\n`);
  };
}
