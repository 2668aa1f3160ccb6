/**
 * What `vcpu.run()` returns: one closed union, decoded once by the backend. Above the backend
 * nobody sees numeric exit codes; handle it with an exhaustive switch and assertNever.
 */
import type { DebugReason, Watchpoint } from './debug.js';

/** A port I/O exit (NVMM_VCPU_EXIT_IO). */
export interface IoExit {
  kind: 'io';
  in: boolean;
  port: number;
  /** Segment of a string instruction's memory operand (SEG.*), or -1 where the backend did not say. */
  seg: number;
  /** Address size in bytes (2, 4, 8). */
  addressSize: number;
  /** Operand size in bytes (1, 2, 4). */
  operandSize: number;
  rep: boolean;
  str: boolean;
  /** RIP of the next instruction; absent where the backend completes the instruction itself (KVM). */
  npc?: bigint;
  /**
   * Set where the backend has executed the instruction's memory side itself (KVM): `count`
   * elements of `operandSize` bytes. For OUT it holds the bytes to emit; for IN, fill it and
   * the backend completes the instruction at the next run. Absent: assistIo emulates, as libnvmm does.
   */
  data?: Uint8Array;
}

/** An access to guest-physical memory with no RAM behind it (NVMM_VCPU_EXIT_MEMORY). */
export interface MemoryExit {
  kind: 'memory';
  /** The kind of access that faulted. */
  prot: 'read' | 'write' | 'exec';
  /** Guest-physical address (below 2^52, so exact as a number). */
  gpa: number;
  /** The first bytes of the faulting instruction, where the backend provides them. */
  instBytes?: Uint8Array;
  /**
   * Set where the backend has decoded the instruction itself (KVM): the access size and, for a
   * write, the bytes written; for a read, fill it and the backend completes the instruction.
   */
  data?: Uint8Array;
}

export interface RdmsrExit {
  kind: 'rdmsr';
  msr: number;
  npc: bigint;
}

export interface WrmsrExit {
  kind: 'wrmsr';
  msr: number;
  value: bigint;
  npc: bigint;
}

export interface CpuidExit {
  kind: 'cpuid';
  leaf: number;
  subleaf: number;
  npc: bigint;
}

/**
 * A stop the debug capability asked for (Vcpu.setDebug, nvmm/debug.ts). `rip` is linear (CS.base
 * + RIP). For `step` and `watch` the instruction has completed (RIP is the next one); for
 * `swbreak` RIP is at the INT3, for `hwbreak` at the instruction that has not run yet.
 */
export interface DebugExit {
  kind: 'debug';
  reason: DebugReason;
  rip: bigint;
  /** For `watch`: the watchpoint that caught the access (as configured). */
  watchpoint?: Watchpoint;
}

export interface InvalidExit {
  kind: 'invalid';
  /** What the backend saw, for the report (for example "KVM_EXIT_INTERNAL_ERROR suberror 1"). */
  reason: string;
}

export type VcpuExit =
  | { kind: 'none' }
  | IoExit
  | MemoryExit
  | RdmsrExit
  | WrmsrExit
  | CpuidExit
  | { kind: 'halted' }
  | { kind: 'shutdown' }
  | { kind: 'interruptWindow' }
  | { kind: 'nmiWindow' }
  | { kind: 'tprChanged' }
  | DebugExit
  | { kind: 'stopped' }
  | InvalidExit;

export type VcpuExitKind = VcpuExit['kind'];
