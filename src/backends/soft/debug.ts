/**
 * The soft CPU's debug capability (nvmm/debug.ts): single-step, software breakpoints, hardware
 * breakpoints and watchpoints, at no cost to a vCPU nobody debugs.
 *
 * - Single-step and hardware breakpoints: while either is set, the executor runs one instruction
 *   at a time through step() (Executor.debug), which stops before an instruction at a breakpoint
 *   and after each instruction when stepping. Without them the executor runs blocks and compiled
 *   code as usual (one null test per block).
 * - Software breakpoints: INT3 asks Cpu.onInt3 (set only while the debugger has placed some)
 *   whether the debugger put it there; if so it exits with RIP at it, else it raises #BP.
 * - Watchpoints: Cpu.watch is called after every TLB miss; it keeps the pages of watched bytes out
 *   of the TLB, so every access to them (interpreted or compiled) misses and comes back to it. An
 *   access that touches watched bytes leaves its instruction before it happens (an exit, RIP
 *   rewound, as for MMIO); run() then executes that instruction once more with the watch let
 *   through and reports the stop after it, as the hardware's data breakpoint traps after the
 *   instruction. Only accesses to watched pages are slowed.
 */
import { NO_DEBUG, debugIsOff, type DebugConfig, type Watchpoint } from '../../nvmm/debug.js';
import { S_CS, TLB_FETCH, TLB_WRITE, type Cpu } from './cpu.js';
import type { Executor, RunResult } from './exec.js';

/** A linear address as the CPU keeps it: int32 halves. */
interface Linear {
  lo: number;
  hi: number;
}

interface SoftWatch extends Linear {
  len: number;
  reads: boolean;
  writes: boolean;
  source: Watchpoint;
}

function linear(a: bigint): Linear {
  return { lo: Number(a & 0xffffffffn) | 0, hi: Number((a >> 32n) & 0xffffffffn) | 0 };
}

/** The linear address of the instruction at RIP (CS.base + RIP outside 64-bit mode). */
export function linearRip(c: Cpu): Linear {
  if (c.long64) return { lo: c.ripLo | 0, hi: c.ripHi | 0 };
  return { lo: ((c.ripLo >>> 0) + (c.segBaseLo[S_CS]! >>> 0)) | 0, hi: 0 };
}

/** The linear address of the instruction being executed (curLo/curHi). */
function linearCur(c: Cpu): Linear {
  if (c.long64) return { lo: c.curLo | 0, hi: c.curHi | 0 };
  return { lo: ((c.curLo >>> 0) + (c.segBaseLo[S_CS]! >>> 0)) | 0, hi: 0 };
}

export function linearToBigint(a: Linear): bigint {
  return (BigInt(a.hi >>> 0) << 32n) | BigInt(a.lo >>> 0);
}

export class SoftDebug {
  private readonly cpu: Cpu;
  private readonly exec: Executor;
  config: DebugConfig = NO_DEBUG;
  private breakpoints: Linear[] = [];
  private readonly int3s = new Set<bigint>();
  private watches: SoftWatch[] = [];
  /** While the instruction that touched watched bytes runs again: its accesses pass. */
  private passing = false;
  /** The watchpoint the last watch stop is for. */
  hit: Watchpoint | null = null;

  constructor(cpu: Cpu, exec: Executor) {
    this.cpu = cpu;
    this.exec = exec;
  }

  configure(config: DebugConfig): void {
    const c = this.cpu;
    this.config = config;
    this.breakpoints = config.hardwareBreakpoints.map(linear);
    this.int3s.clear();
    for (const a of config.softwareBreakpoints) this.int3s.add(a);
    c.onInt3 = this.int3s.size ? this.onInt3 : null;
    this.watches = config.watchpoints.map((w) => ({
      ...linear(w.addr), len: w.len, reads: w.access !== 'write', writes: w.access !== 'read', source: w,
    }));
    c.watch = this.watches.length ? this.onAccess : null;
    // Entries already in the TLB would let accesses to newly watched pages through.
    c.flushTlb(false);
    this.exec.debug = config.singleStep || this.breakpoints.length ? this : null;
  }

  get off(): boolean {
    return debugIsOff(this.config);
  }

  private readonly onInt3 = (c: Cpu): boolean => this.int3s.has(linearToBigint(linearCur(c)));

  private readonly onAccess = (lo: number, hi: number, kind: number, size: number, idx: number): void => {
    if (kind === TLB_FETCH) return;
    const c = this.cpu;
    const page = lo & ~0xfff;
    const start = lo >>> 0;
    for (const w of this.watches) {
      if (w.hi !== (hi | 0) || (w.lo & ~0xfff) !== page) continue;
      c.tlbTagLo[idx] = -1; // the page stays out of the TLB
      const ws = w.lo >>> 0;
      if (start >= ws + w.len || ws >= start + size) continue;
      if (!(kind === TLB_WRITE ? w.writes : w.reads)) continue;
      this.hit = w.source;
      if (!this.passing) c.doExit({ kind: 'debug', reason: 'watch' });
    }
  };

  /** One instruction under the debugger (Executor.debug): a breakpoint before it, a step stop after it. */
  step(): RunResult | null {
    const bps = this.breakpoints;
    if (bps.length) {
      const at = linearRip(this.cpu);
      for (const b of bps) if (b.lo === at.lo && b.hi === at.hi) return { kind: 'debug', reason: 'hwbreak' };
    }
    const r = this.exec.stepInstruction();
    if (r !== null) return r;
    return this.config.singleStep ? { kind: 'debug', reason: 'step' } : null;
  }

  /**
   * The executor's run, with a watch stop completed: the instruction that touched watched bytes
   * runs again with the access let through, and the stop follows it. If that instruction faults
   * or exits instead, there is no stop (the hardware reports a data breakpoint only for an
   * instruction that completes), and what it did is what the run returns.
   */
  run(): RunResult {
    for (;;) {
      const r = this.exec.run();
      if (r.kind !== 'debug' || r.reason !== 'watch') return r;
      const c = this.cpu;
      const events = c.events;
      this.passing = true;
      let after: RunResult | null;
      try {
        after = this.exec.stepInstruction();
      } finally {
        this.passing = false;
      }
      if (after !== null) return after;
      if (c.events === events) return r;
      // The instruction faulted and the guest's handler takes over: run on.
    }
  }

  /** The linear RIP a stop is reported at. */
  rip(): bigint {
    return linearToBigint(linearRip(this.cpu));
  }
}
