/**
 * The debug capability (nvmm/debug.ts) in KVM's terms: KVM_SET_GUEST_DEBUG's control word and
 * the debug registers it loads (kvm_guest_debug.arch.debugreg: DR0-DR3, -, -, DR6, DR7), and the
 * decoding of KVM_EXIT_DEBUG back into the reason. Pure functions, so the encoding is tested
 * without /dev/kvm. Bit positions from the Intel SDM vol. 3, 18.2 (Debug Registers).
 */
import type { DebugConfig, DebugReason, Watchpoint } from '../../nvmm/debug.js';
import { KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP, KVM_GUESTDBG_USE_SW_BP } from './abi.js';

/** DR7: G0 (global enable of slot 0; slot n's is bit 2n+1). */
const DR7_G0 = 1n << 1n;
/** DR7: GE (exact global breakpoints) and bit 10, which reads as 1. */
const DR7_GE_AND_FIXED = 0x600n;
/** DR7: slot n's R/W field is at bit 16 + 4n, its LEN field at 18 + 4n. */
const DR7_RW_SHIFT = 16n;
const DR7_RW = { exec: 0n, write: 1n, access: 3n } as const;
/** DR7 LEN encodings by byte count (8 bytes is 10b, 4 bytes 11b). */
const DR7_LEN: Record<number, bigint> = { 1: 0n, 2: 1n, 4: 3n, 8: 2n };
/** DR6: B0-B3 (slot n matched), BS (single-step). */
const DR6_BS = 1n << 14n;

/** #DB and #BP, as KVM_EXIT_DEBUG's `exception` names them. */
export const DB_VECTOR = 1;
export const BP_VECTOR = 3;

/** One debug-register slot: an instruction breakpoint or a watchpoint. */
export type DebugSlot = { kind: 'hwbreak'; addr: bigint } | { kind: 'watch'; watchpoint: Watchpoint };

/** The slots in DR0-DR3 order: hardware breakpoints first, then watchpoints. */
export function debugSlots(config: DebugConfig): DebugSlot[] {
  return [
    ...config.hardwareBreakpoints.map((addr): DebugSlot => ({ kind: 'hwbreak', addr })),
    ...config.watchpoints.map((watchpoint): DebugSlot => ({ kind: 'watch', watchpoint })),
  ];
}

/** KVM_SET_GUEST_DEBUG's control word; `tprExit`: single-step for the TPR policy too (kvm-backend.ts). */
export function guestDebugControl(config: DebugConfig, tprExit: boolean): number {
  const step = config.singleStep || tprExit;
  const sw = config.softwareBreakpoints.length > 0;
  const hw = config.hardwareBreakpoints.length + config.watchpoints.length > 0;
  if (!step && !sw && !hw) return 0;
  return KVM_GUESTDBG_ENABLE | (step ? KVM_GUESTDBG_SINGLESTEP : 0) | (sw ? KVM_GUESTDBG_USE_SW_BP : 0) | (hw ? KVM_GUESTDBG_USE_HW_BP : 0);
}

/**
 * kvm_guest_debug.arch.debugreg[0..7]: the slots' addresses in DR0-DR3 and DR7 enabling them
 * (global enables; R/W 00 for an instruction with LEN 00, 01 for writes, 11 for reads and writes:
 * x86 has no read-only data breakpoint, so `read` watches writes too).
 */
export function guestDebugRegs(config: DebugConfig): bigint[] {
  const regs: bigint[] = new Array<bigint>(8).fill(0n);
  let dr7 = 0n;
  debugSlots(config).forEach((slot, n) => {
    const i = BigInt(n);
    let rw: bigint, len: bigint;
    if (slot.kind === 'hwbreak') {
      regs[n] = slot.addr;
      rw = DR7_RW.exec;
      len = 0n;
    } else {
      regs[n] = slot.watchpoint.addr;
      rw = slot.watchpoint.access === 'write' ? DR7_RW.write : DR7_RW.access;
      len = DR7_LEN[slot.watchpoint.len]!;
    }
    dr7 |= DR7_G0 << (2n * i);
    dr7 |= (rw | (len << 2n)) << (DR7_RW_SHIFT + 4n * i);
  });
  if (dr7 !== 0n) dr7 |= DR7_GE_AND_FIXED;
  regs[7] = dr7;
  return regs;
}

/** What a KVM_EXIT_DEBUG means for the VMM. */
export type DebugExitMeaning =
  | { kind: 'stop'; reason: DebugReason; watchpoint?: Watchpoint }
  /** A single-step trap the debugger did not ask for (the TPR policy's). */
  | { kind: 'tprStep' }
  /** The guest's own #BP or #DB: deliver it to the guest and run on. */
  | { kind: 'reinject'; vector: number };

/**
 * Decodes KVM_EXIT_DEBUG (kvm_run.debug.arch: exception, pc, dr6) against the configuration in
 * force; `tprExit`: the backend single-steps for the TPR policy.
 */
export function decodeDebugExit(exception: number, pc: bigint, dr6: bigint, config: DebugConfig, tprExit: boolean): DebugExitMeaning {
  if (exception === BP_VECTOR) {
    return config.softwareBreakpoints.includes(pc) ? { kind: 'stop', reason: 'swbreak' } : { kind: 'reinject', vector: BP_VECTOR };
  }
  const slots = debugSlots(config);
  for (let n = 0; n < slots.length; n++) {
    if (!(dr6 & (1n << BigInt(n)))) continue;
    const slot = slots[n]!;
    return slot.kind === 'hwbreak' ? { kind: 'stop', reason: 'hwbreak' } : { kind: 'stop', reason: 'watch', watchpoint: slot.watchpoint };
  }
  if (dr6 & DR6_BS) {
    if (config.singleStep) return { kind: 'stop', reason: 'step' };
    if (tprExit) return { kind: 'tprStep' };
  }
  return { kind: 'reinject', vector: DB_VECTOR };
}
