/**
 * The debug capability of a vCPU (Vcpu.setDebug): what a debugger asks of the backend, in the
 * terms of the x86 debug architecture (Intel SDM vol. 3, chapter 18), so that KVM's guest-debug
 * ioctl gives it directly and the software CPU models the same thing:
 * - single-step: exit after each instruction (a trap: RIP is the next instruction's);
 * - software breakpoints: the debugger writes INT3 (0xCC) into guest memory itself; an INT3 at one
 *   of the listed addresses exits instead of raising #BP (RIP at the INT3); any other INT3 raises
 *   #BP in the guest as it would without a debugger;
 * - hardware breakpoints: exit before the instruction at a linear address runs (a fault: RIP at
 *   it), with no change to guest memory;
 * - watchpoints: exit after an instruction that read or wrote bytes of a range (a trap).
 * Hardware breakpoints and watchpoints share the four slots the debug registers DR0-DR3 give; a
 * watched range is 1, 2, 4 or 8 bytes aligned to its length, as DR7's LEN field allows. The guest's
 * own DR0-DR7 are left alone (KVM keeps them apart; the software CPU does not implement data or
 * instruction breakpoints through them).
 * Addresses are linear (CS.base + RIP for code; in 64-bit mode linear = virtual).
 */
import { TsvmmError } from '../common/errors.js';

/** Debug slots: DR0-DR3. */
export const DEBUG_SLOTS = 4;

/** Which accesses a watchpoint catches. x86 has no read-only data breakpoint: where the backend has none, `read` catches writes too. */
export type WatchAccess = 'write' | 'read' | 'access';

export interface Watchpoint {
  addr: bigint;
  /** 1, 2, 4 or 8, and `addr` a multiple of it. */
  len: number;
  access: WatchAccess;
}

export interface DebugConfig {
  singleStep: boolean;
  /** Linear addresses where the debugger put an INT3. */
  softwareBreakpoints: readonly bigint[];
  /** Linear addresses of instructions to stop before (hardware breakpoints). */
  hardwareBreakpoints: readonly bigint[];
  watchpoints: readonly Watchpoint[];
}

/** No debugging: what every vCPU starts with. */
export const NO_DEBUG: DebugConfig = { singleStep: false, softwareBreakpoints: [], hardwareBreakpoints: [], watchpoints: [] };

/** Why a `debug` exit happened. */
export type DebugReason = 'step' | 'swbreak' | 'hwbreak' | 'watch';

const MAX_SOFTWARE_BREAKPOINTS = 4096;
const U64 = (1n << 64n) - 1n;

/** Checks a configuration against the contract; returns a copy the caller cannot change afterwards. */
export function validateDebugConfig(config: DebugConfig): DebugConfig {
  const addr = (what: string, a: unknown): bigint => {
    if (typeof a !== 'bigint' || a < 0n || a > U64) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `${what} ${String(a)} is not a 64-bit address`);
    return a;
  };
  if (config.softwareBreakpoints.length > MAX_SOFTWARE_BREAKPOINTS) {
    throw new TsvmmError('TSVMM_LIMIT', `${config.softwareBreakpoints.length} software breakpoints: at most ${MAX_SOFTWARE_BREAKPOINTS}`);
  }
  const slots = config.hardwareBreakpoints.length + config.watchpoints.length;
  if (slots > DEBUG_SLOTS) {
    throw new TsvmmError('TSVMM_LIMIT', `${slots} hardware breakpoints and watchpoints: the debug registers hold ${DEBUG_SLOTS}`);
  }
  const watchpoints = config.watchpoints.map((w) => {
    const a = addr('watchpoint address', w.addr);
    if (![1, 2, 4, 8].includes(w.len)) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `watchpoint length ${w.len} is not 1, 2, 4 or 8`);
    if (a % BigInt(w.len) !== 0n) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `watchpoint at 0x${a.toString(16)} is not aligned to its length ${w.len}`);
    if (w.access !== 'write' && w.access !== 'read' && w.access !== 'access') throw new TsvmmError('TSVMM_BAD_ARGUMENT', `watchpoint access '${String(w.access)}'`);
    return { addr: a, len: w.len, access: w.access };
  });
  return {
    singleStep: config.singleStep === true,
    softwareBreakpoints: config.softwareBreakpoints.map((a) => addr('software breakpoint', a)),
    hardwareBreakpoints: config.hardwareBreakpoints.map((a) => addr('hardware breakpoint', a)),
    watchpoints,
  };
}

/** Whether `config` asks for nothing. */
export function debugIsOff(config: DebugConfig): boolean {
  return !config.singleStep && config.softwareBreakpoints.length === 0 && config.hardwareBreakpoints.length === 0 && config.watchpoints.length === 0;
}
