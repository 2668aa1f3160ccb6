/**
 * Instruction tracing, a capability of the soft backend (SoftOptions.trace, the CLI's
 * `--trace cpu`): the backend calls a hook with each instruction it executes; the VMM formats
 * the records (vmm/trace.ts). KVM refuses it (backends/open.ts).
 */

/** One traced instruction. */
export interface TraceRecord {
  /** RIP (linear = CS.base + RIP for 16/32-bit code) of the instruction. */
  rip: bigint;
  bytes: Uint8Array;
  /** AT&T disassembly (objdump style). */
  text: string;
  /** Registers the instruction changed: name -> new value. */
  changed: Record<string, bigint>;
}

export type TraceHook = (r: TraceRecord) => void;
