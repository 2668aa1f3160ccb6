/**
 * What the GDB stub (stub.ts) debugs: a machine's vCPUs, as threads numbered from 1 (vCPU id + 1),
 * stopped and resumed together (GDB's all-stop mode). The stub keeps the protocol's state
 * (breakpoints placed, INT3s' saved bytes, the selected thread); a target only does what one
 * vCPU's thread can do while its vCPU is paused (vcpu-agent.ts), or runs them.
 *
 * Addresses are the guest's virtual addresses, translated through the vCPU's page tables; a
 * range that does not translate, or is not RAM, reads and writes as an error, never an exception.
 */
import type { DebugConfig, DebugReason, Watchpoint } from '../../nvmm/debug.js';

/** Why the machine stopped for the debugger. */
export type StopEvent =
  /** A vCPU's debug exit (step, breakpoint, watchpoint), with the vCPU that took it. */
  | { kind: 'debug'; vcpu: number; reason: DebugReason; watchpoint?: Watchpoint }
  /** A stop the debugger asked for (interrupt(), all-stop), or the machine started paused: `vcpu` is the one reporting it. */
  | { kind: 'interrupted'; vcpu: number }
  /** The machine ended (powered off, reset, error...): no vCPU remains. */
  | { kind: 'ended'; how: string; status: number };

/** One vCPU's request, served in its thread while it is paused. */
export type VcpuRequest =
  | { op: 'readRegisters' }
  | { op: 'writeRegisters'; bytes: Uint8Array }
  | { op: 'readRegister'; n: number }
  | { op: 'writeRegister'; n: number; bytes: Uint8Array }
  | { op: 'readMemory'; addr: bigint; len: number }
  | { op: 'writeMemory'; addr: bigint; bytes: Uint8Array }
  | { op: 'monitor'; command: string }
  /** The instruction at RIP as a trace line (address, bytes, disassembly). */
  | { op: 'describe' }
  /** What the vCPU does: running, halted or wait-for-SIPI (vcpu-agent.ts's VcpuRunState). */
  | { op: 'status' };

/** The answer: bytes (registers, memory), ok, text (monitor), or an error the stub turns into `E..`. */
export type VcpuReply =
  | { ok: true; bytes?: Uint8Array; text?: string }
  | { ok: false; error: string };

/** What each vCPU does at a resume; a vCPU left out stays paused. */
export type ResumeAction = 'step' | 'continue';

export interface DebugTarget {
  /** The vCPUs' ids. */
  vcpus(): number[];
  /** Stops every vCPU that runs and resolves with why the machine is stopped (at once if it is). */
  halt(): Promise<StopEvent>;
  /**
   * Resumes the vCPUs in `actions` with `debug` (each stepping one adds single-step), and
   * resolves with the next stop, once every vCPU is paused again (all-stop) or the machine ended.
   */
  resume(actions: ReadonlyMap<number, ResumeAction>, debug: DebugConfig): Promise<StopEvent>;
  /** Asks the running vCPUs to stop: the pending resume() resolves. */
  interrupt(): void;
  /** Serves a request in a paused vCPU's thread. */
  request(vcpu: number, req: VcpuRequest): Promise<VcpuReply>;
  /** Ends the debugging: no breakpoints, every vCPU runs on. */
  detach(): Promise<void>;
  /** Ends the machine (GDB's `kill`). */
  kill(): void;
}
