/**
 * The `soft` backend: the nvmm/ contract over the TypeScript x86-64 CPU (the role QEMU's TCG plays).
 *
 * It behaves like NVMM's kernel side: exits are raw (port I/O and MMIO leave the instruction for
 * libnvmm-style assists, with RIP at the instruction and `npc` after it); RDMSR/WRMSR of MSRs the CPU
 * does not own, HLT, CPUID leaves configured to exit, TPR changes (policy), interrupt and NMI windows,
 * triple faults and stop requests are reported as NVMM reports them. State crosses this boundary as
 * the API's BigInt groups only in getState/setState; inside, everything is int32 pairs.
 */
import type {
  Backend, BackendMachine, BackendVcpu, Capability, CpuidPolicy, CpuidRegs, GpaMapping, InlineDevices, StopHandle,
} from '../../nvmm/backend.js';
import type { DebugConfig } from '../../nvmm/debug.js';
import type { VcpuEvent } from '../../nvmm/event.js';
import type { VcpuExit } from '../../nvmm/exit.js';
import { CR, DR, GPR, MSR, SEG, STATE, type Segment, type X64State } from '../../nvmm/state.js';
import type { TraceHook } from '../../nvmm/trace.js';
import { A_DB, A_G, A_L, A_P, A_S, A_AVL, A_DPL_SHIFT, Cpu, PhysMap, S_GS } from './cpu.js';
import { DEFAULT_JIT_THRESHOLD, Executor, usableJitKind, type JitKind, type JitOptions, type RunResult } from './exec.js';
import { adoptArenaMemory, arenaHostMemory, arenaMemory, arenaOffsetOf } from './arena.js';
import { HostMemory } from '../../memory/host-memory.js';
import { GuestClock, type NowNs } from '../../common/clock.js';
import { readMsr, writeMsr } from './ops-sys.js';
import {
  MSR_APIC_BASE, MSR_CSTAR, MSR_EFER, MSR_KERNEL_GS_BASE, MSR_LSTAR, MSR_PAT, MSR_SFMASK, MSR_STAR, MSR_SYSENTER_CS, MSR_SYSENTER_EIP,
  MSR_SYSENTER_ESP, MSR_TSC,
} from '../../x86/msr.js';
import { CPU_MODELS, DEFAULT_CPU_MODEL, cpuidTable, isCpuModelName, pagingModel, sysModel, type CpuModel, type CpuModelName } from './cpu-models.js';
import { APIC_BASE_BSP, APIC_BASE_ENABLE, APIC_DEFAULT_BASE } from '../../x86/apic.js';
import { CR0_RESET } from '../../x86/control-regs.js';
import { PageWalker } from '../../x86/page-walk.js';
import { TsvmmError } from '../../common/errors.js';
import { fxImage, fxLoad } from './ops-sse.js';
import { fpuInit } from './ops-x87.js';
import { profileRunEnd, profiledDevices, type SoftProfiler } from './profile.js';
import { FXSAVE, XSTATE_X87 } from '../../x86/fxsave.js';
import { SoftDebug } from './debug.js';

/** NVMM's guest-physical limit (NVMM_MAX_RAM, 128 GiB). */
const MAX_RAM = 128 * 1024 * 1024 * 1024;
const MAX_VCPUS = 64;

/** Options of the soft backend (not part of the generic contract). */
export interface SoftOptions {
  /** Called for every executed instruction (slow: the CPU single-steps while it is set). */
  trace?: TraceHook;
  /** The CPU model the vCPUs present (cpu-models.ts; default `max`). */
  cpu?: CpuModelName;
  /** Samples the first vCPU created (profile.ts). */
  profile?: SoftProfiler;
  /** The block compilers' settings for the machines of this backend (defaults: see JitOptions; SoftBackend.open: the environment). */
  jit?: JitOptions;
  /** Where the backend's notes go (the JIT dump), or nowhere. */
  log?: (message: string) => void;
}

/** The block compilers' settings as the environment gives them (SoftBackend.open's defaults). */
export function jitOptionsFromEnv(env: Record<string, string | undefined>): JitOptions {
  const jit: JitOptions = {};
  const threshold = env.TSVMM_SOFT_JIT;
  if (threshold === 'off') jit.threshold = -1;
  else if (threshold !== undefined && /^\d+$/.test(threshold)) jit.threshold = Number(threshold);
  const kind = env.TSVMM_SOFT_JIT_KIND;
  if (kind === 'js' || kind === 'wasm') jit.kind = kind;
  if (env.TSVMM_JIT_DUMP) jit.dump = true;
  return jit;
}

export class SoftBackend implements Backend {
  readonly name = 'soft' as const;
  readonly options: SoftOptions;
  readonly cpuModel: CpuModel;
  /** What hot 64-bit code is compiled to on this engine (the option, or 'js' where jit-wasm.ts cannot run). */
  readonly jitKind: JitKind;
  readonly jitThreshold: number;

  /** A backend with exactly `options` (the environment plays no part: see open()). */
  constructor(options: SoftOptions = {}) {
    const name = options.cpu ?? DEFAULT_CPU_MODEL;
    if (!isCpuModelName(name)) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `unknown CPU model '${String(name)}'`);
    const threshold = options.jit?.threshold ?? DEFAULT_JIT_THRESHOLD;
    if (!Number.isSafeInteger(threshold) || threshold < -1) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `JIT threshold ${threshold} is not -1 (never), 0 or a count of executions`);
    this.options = options;
    this.cpuModel = CPU_MODELS[name];
    this.jitKind = usableJitKind(options.jit?.kind ?? 'wasm');
    this.jitThreshold = threshold;
  }

  /**
   * The backend, with the compiler settings `options.jit` leaves unset taken from the environment,
   * read here, once per backend: TSVMM_SOFT_JIT (`off`: interpret only; N: compile a block after
   * N executions, 0 before its first), TSVMM_SOFT_JIT_KIND (`wasm` or `js`), TSVMM_JIT_DUMP (the
   * source of every JS region to `options.log`).
   */
  static open(options: SoftOptions = {}): SoftBackend {
    return new SoftBackend({ ...options, jit: { ...jitOptionsFromEnv(process.env), ...options.jit } });
  }

  capability(): Capability {
    return { backend: 'soft', maxVcpus: MAX_VCPUS, maxRam: MAX_RAM, vcpuConf: { cpuid: true, cpuidExit: true, tpr: true }, inlineDevices: true, debug: true, tscFromClock: true };
  }

  /** Guest RAM in the WebAssembly arena, where compiled code reaches it (null when the arena is full or not used). */
  allocateMemory(size: number): HostMemory | null {
    return this.jitKind === 'wasm' ? arenaHostMemory(size) : null;
  }

  /** A machine whose vCPUs' TSC counts `clock` (Machine passes its own; tests may leave it out). */
  createMachine(clock: GuestClock = new GuestClock()): SoftMachine {
    return new SoftMachine(this, clock);
  }

  /**
   * The machine another thread shared (SoftMachine.shareHandle): this thread's arena becomes the
   * owner's, and the same guest-physical map is built over views of it. Its vCPUs run here.
   */
  attachMachine(handle: unknown, clock: GuestClock = new GuestClock()): SoftMachine {
    const h = handle as SoftShare;
    adoptArenaMemory(h.memory);
    const m = new SoftMachine(this, clock);
    m.shared = true;
    const pieces = new Map<number, HostMemory>();
    for (const map of h.maps) {
      let memory = pieces.get(map.arena);
      if (!memory) pieces.set(map.arena, (memory = HostMemory.lent(new Uint8Array(h.memory.buffer, map.arena, map.memorySize), () => {})));
      m.map({ gpa: map.gpa, size: map.size, prot: map.prot, offset: map.offset, memory });
    }
    return m;
  }
}

/** What a thread needs to attach to a soft machine: the arena, and where each mapping's memory is in it. */
export interface SoftShare {
  memory: WebAssembly.Memory;
  maps: { gpa: number; size: number; prot: number; offset: number; arena: number; memorySize: number }[];
}

export class SoftMachine implements BackendMachine {
  readonly phys = new PhysMap();
  /** The machine's guest time (the TSC, the inline devices' ticks). */
  readonly clock: GuestClock;
  private readonly vcpus = new Set<SoftVcpu>();
  private readonly backend: SoftBackend;

  constructor(backend: SoftBackend, clock: GuestClock) {
    this.backend = backend;
    this.clock = clock;
  }

  map(m: GpaMapping): void {
    this.phys.add(m);
  }

  /**
   * What attachMachine needs in another thread: every mapping's memory must be in the arena (the
   * other thread reaches it there, through the Memory object it is posted).
   */
  shareHandle(): SoftShare {
    const maps = this.phys.maps.map((m) => {
      const arena = arenaOffsetOf(m.memory);
      if (arena < 0) throw new TsvmmError('TSVMM_UNSUPPORTED', 'several vCPUs on the soft CPU need guest RAM in its WebAssembly arena (TSVMM_SOFT_JIT_KIND=wasm, the default, on an engine with WebAssembly SIMD)');
      return { gpa: m.gpa, size: m.size, prot: m.prot, offset: m.offset, arena, memorySize: m.memory.size };
    });
    this.shared = true;
    for (const v of this.vcpus) v.exec.crossModify = true;
    return { memory: arenaMemory(), maps };
  }

  /** Other threads run vCPUs over this machine's RAM (shareHandle, attachMachine): cross-modifying code is looked for. */
  shared = false;

  unmap(m: GpaMapping): void {
    this.phys.remove(m);
    // Decoded blocks remember their host bytes: a GPA may now be backed by other memory.
    for (const v of this.vcpus) v.exec.flushCode();
  }

  createVcpu(id: number): SoftVcpu {
    const b = this.backend, opts = b.options;
    const v = new SoftVcpu(this.phys, id, (x) => this.vcpus.delete(x), {
      model: b.cpuModel, now: this.clock.now, arena: b.jitKind === 'wasm', jitThreshold: b.jitThreshold,
    });
    const log = opts.log;
    if (opts.jit?.dump && log) v.exec.dump = log;
    if (opts.trace) v.exec.trace = opts.trace;
    if (this.shared) v.exec.crossModify = true;
    if (opts.profile && !opts.profile.attached) opts.profile.attach(v.exec);
    this.vcpus.add(v);
    return v;
  }

  /** The live vCPUs (for benchmarks and tests that read counters such as exec.icount). */
  vcpuList(): SoftVcpu[] {
    return [...this.vcpus];
  }

  destroy(): void {
    for (const v of this.vcpus) v.release();
    this.vcpus.clear();
  }
}

// ---------------------------------------------------------------------------------------------

const SEG_ORDER = [SEG.ES, SEG.CS, SEG.SS, SEG.DS, SEG.FS, SEG.GS, SEG.GDT, SEG.IDT, SEG.LDT, SEG.TR];

function big(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
function lo32(v: bigint): number {
  return Number(v & 0xffffffffn) | 0;
}
function hi32(v: bigint): number {
  return Number((v >> 32n) & 0xffffffffn) | 0;
}

/** MSRS group index -> MSR number, for the ones kept in Cpu.msr. */
const STATE_MSRS: readonly [number, number][] = [
  [MSR.STAR, MSR_STAR], [MSR.LSTAR, MSR_LSTAR], [MSR.CSTAR, MSR_CSTAR], [MSR.SFMASK, MSR_SFMASK],
  [MSR.KERNELGSBASE, MSR_KERNEL_GS_BASE], [MSR.SYSENTER_CS, MSR_SYSENTER_CS], [MSR.SYSENTER_ESP, MSR_SYSENTER_ESP],
  [MSR.SYSENTER_EIP, MSR_SYSENTER_EIP], [MSR.PAT, MSR_PAT],
];

/** What a vCPU is made with (the machine's settings). */
export interface SoftVcpuOptions {
  model: CpuModel;
  /** Guest time in nanoseconds (the machine's GuestClock). */
  now: NowNs;
  /** Keep the state compiled WebAssembly uses in the arena (the backend compiles to WebAssembly). */
  arena: boolean;
  /** Executions before a block is compiled (JitOptions.threshold). */
  jitThreshold: number;
}

export class SoftVcpu implements BackendVcpu {
  readonly cpu: Cpu;
  readonly exec: Executor;
  readonly id: number;
  private readonly handle: StopHandle;
  private readonly cpuid: Map<number, CpuidRegs>;
  private readonly cpuidExit = new Set<number>();
  private readonly onDestroy: (v: SoftVcpu) => void;
  /** The TSC the last getState reported (setState leaves the TSC counting when given it back). */
  private tscOut = -1n;
  /** The debugger's settings (debug.ts), made at the first setDebug. */
  private debug: SoftDebug | null = null;

  constructor(phys: PhysMap, id: number, onDestroy: (v: SoftVcpu) => void, opts: SoftVcpuOptions) {
    const model = opts.model;
    this.id = id;
    this.onDestroy = onDestroy;
    this.cpu = new Cpu(phys, opts.now, opts.arena);
    this.cpu.walker = new PageWalker(pagingModel(model));
    this.handle = { flag: new SharedArrayBuffer(4) };
    this.exec = new Executor(this.cpu, new Int32Array(this.handle.flag), opts.jitThreshold);
    this.cpuid = cpuidTable(model, id);
    this.cpu.sysModel = sysModel(model);
    this.cpu.cpuidFn = (c, leaf, sub) => this.doCpuid(c, leaf, sub);
    this.reset();
  }

  /** The architectural reset state NVMM gives a new vCPU (nvmm_x86_reset_state). */
  private reset(): void {
    const c = this.cpu;
    c.regs.fill(0);
    c.regs[4] = 0x600; // RDX: family/model/stepping
    c.ripLo = 0xfff0; c.ripHi = 0;
    c.setRflags(2);
    for (let s = 0; s < 10; s++) {
      c.segSel[s] = 0; c.segBaseLo[s] = 0; c.segBaseHi[s] = 0; c.segLimit[s] = 0xffff;
      c.segAttr[s] = s < 6 ? 0x3 | A_S | A_P : 0;
    }
    c.segSel[1] = 0xf000; c.segBaseLo[1] = 0xffff0000 | 0; c.segAttr[1] = 0xb | A_S | A_P;
    c.segAttr[8] = 0x2 | A_P; // LDT
    c.segAttr[9] = 0x3 | A_P; // 16-bit busy TSS
    c.cr0 = CR0_RESET; c.cr2Lo = c.cr2Hi = c.cr3Lo = c.cr3Hi = 0; c.cr4 = 0; c.cr8 = 0; c.xcr0Lo = XSTATE_X87; c.efer = 0;
    c.dr.fill(0); c.dr[6] = 0xffff0ff0; c.dr[7] = 0x400;
    c.msr.clear();
    c.msr.set(MSR_PAT, [0x00070406, 0x00070406]);
    c.msr.set(MSR_APIC_BASE, [(APIC_DEFAULT_BASE | APIC_BASE_BSP | APIC_BASE_ENABLE) >>> 0, 0]);
    fpuInit(c); c.fpr.fill(0); c.fpRaw.fill(0); c.fpRawOk.fill(1); c.xmm.fill(0); c.mxcsr = 0x1f80;
    c.updateMode();
    c.flushTlb(false);
  }

  stopHandle(): StopHandle {
    return this.handle;
  }

  /**
   * CPUID from the model's table, with the VMM's set/del masks applied to it (setCpuidPolicy).
   * Leaves it does not hold read as zeros, as AMD processors answer a leaf beyond their highest
   * one (Intel's answer the highest basic leaf instead); leaf 7 has one subleaf (its EAX, the last
   * subleaf, is 0), the others read as zeros too.
   */
  private doCpuid(c: Cpu, leaf: number, sub: number): void {
    if (this.cpuidExit.has(leaf)) c.doExit({ kind: 'cpuid', leaf, subleaf: sub });
    const r = leaf === 7 && sub !== 0 ? undefined : this.cpuid.get(leaf);
    const R = c.regs;
    R[0] = r ? r.eax | 0 : 0; R[2] = r ? r.ecx | 0 : 0; R[4] = r ? r.edx | 0 : 0; R[6] = r ? r.ebx | 0 : 0;
    R[1] = R[3] = R[5] = R[7] = 0;
  }

  setCpuidPolicy(p: CpuidPolicy): void {
    if (p.exit) this.cpuidExit.add(p.leaf); else this.cpuidExit.delete(p.leaf);
    const cur = this.cpuid.get(p.leaf) ?? { eax: 0, ebx: 0, ecx: 0, edx: 0 };
    const f = (v: number, s: number, d: number) => ((v | s) & ~d) >>> 0;
    this.cpuid.set(p.leaf, {
      eax: f(cur.eax, p.set.eax, p.del.eax), ebx: f(cur.ebx, p.set.ebx, p.del.ebx),
      ecx: f(cur.ecx, p.set.ecx, p.del.ecx), edx: f(cur.edx, p.set.edx, p.del.edx),
    });
  }

  setTprExit(enabled: boolean): void {
    this.cpu.tprExit = enabled;
  }

  inject(event: VcpuEvent): void {
    this.exec.pendingEvent = event;
  }

  setInlineDevices(devices: InlineDevices | null): void {
    const prof = this.exec.prof;
    this.cpu.dev = devices !== null && prof !== null ? profiledDevices(prof, devices) : devices;
    this.cpu.devDeadline = 0;
  }

  statistics(): Record<string, number> {
    const x = this.exec;
    return { instructions: x.icount, interpreted: x.interpreted, blocks: x.blocksDecoded, compiled: x.jitCount, chained: x.chainedTotal };
  }

  /** Sets (or clears) the trace hook at run time. */
  setTrace(hook: TraceHook | null): void {
    this.exec.trace = hook;
  }

  getState(state: X64State, mask: number): void {
    const c = this.cpu;
    if (mask & STATE.GPRS) {
      const g = state.gprs;
      for (let r = 0; r < 16; r++) g[r] = big(c.regs[2 * r]!, c.regs[2 * r + 1]!);
      g[GPR.RIP] = big(c.ripLo, c.ripHi);
      g[GPR.RFLAGS] = BigInt(c.getRflags());
    }
    if (mask & STATE.SEGS) {
      for (let s = 0; s < 10; s++) state.segs[SEG_ORDER[s]!] = this.segOut(s);
    }
    if (mask & STATE.CRS) {
      state.crs[CR.CR0] = BigInt(c.cr0 >>> 0);
      state.crs[CR.CR2] = big(c.cr2Lo, c.cr2Hi);
      state.crs[CR.CR3] = big(c.cr3Lo, c.cr3Hi);
      state.crs[CR.CR4] = BigInt(c.cr4 >>> 0);
      state.crs[CR.CR8] = BigInt(c.dev?.apic?.getCr8() ?? c.cr8);
      state.crs[CR.XCR0] = BigInt(c.xcr0Lo >>> 0);
    }
    if (mask & STATE.DRS) {
      for (let k = 0; k < 4; k++) state.drs[DR.DR0 + k] = BigInt(c.dr[k]!);
      state.drs[DR.DR6] = BigInt(c.dr[6]!);
      state.drs[DR.DR7] = BigInt(c.dr[7]!);
    }
    if (mask & STATE.MSRS) {
      state.msrs[MSR.EFER] = BigInt(c.efer >>> 0);
      for (const [k, n] of STATE_MSRS) { const v = c.msr.get(n); state.msrs[k] = v ? big(v[0], v[1]) : 0n; }
      const t = readMsr(c, MSR_TSC);
      state.msrs[MSR.TSC] = this.tscOut = big(t, c.hi);
    }
    if (mask & STATE.INTR) {
      state.intr = {
        intShadow: c.intShadow, intWindowExiting: this.exec.intWindowExiting, nmiWindowExiting: this.exec.nmiWindowExiting,
        evtPending: this.exec.pendingEvent !== null,
      };
    }
    if (mask & STATE.FPU) {
      // Through the FXSAVE image (ST0-ST7 in stack order, exact 80-bit images; all 16 XMM registers).
      const lm = c.long64;
      c.long64 = true;
      const img = fxImage(c, true);
      c.long64 = lm;
      const b = new Uint8Array(img.buffer);
      state.fpu = {
        fcw: c.fcw, fsw: img.getUint16(FXSAVE.fsw, true), ftw: c.ftw, fop: c.fop, fip: big(c.fipLo, c.fipHi), fdp: big(c.fdpLo, c.fdpHi),
        mxcsr: c.mxcsr, mxcsrMask: img.getUint32(FXSAVE.mxcsrMask, true),
        sts: b.slice(FXSAVE.st, FXSAVE.st + 128), xmms: b.slice(FXSAVE.xmm, FXSAVE.xmm + 256),
      };
    }
  }

  private segOut(s: number): Segment {
    const c = this.cpu;
    const a = c.segAttr[s]!;
    return {
      selector: c.segSel[s]!,
      base: big(c.segBaseLo[s]!, c.segBaseHi[s]!),
      limit: c.segLimit[s]! >>> 0,
      attrib: {
        type: a & 0xf, s: (a & A_S) !== 0, dpl: (a >> A_DPL_SHIFT) & 3, p: (a & A_P) !== 0, avl: (a & A_AVL) !== 0,
        l: (a & A_L) !== 0, def: (a & A_DB) !== 0, g: (a & A_G) !== 0,
      },
    };
  }

  setState(state: X64State, mask: number): void {
    const c = this.cpu;
    if (mask & STATE.GPRS) {
      const g = state.gprs;
      for (let r = 0; r < 16; r++) { c.regs[2 * r] = lo32(g[r]!); c.regs[2 * r + 1] = hi32(g[r]!); }
      c.ripLo = lo32(g[GPR.RIP]!) >>> 0; c.ripHi = hi32(g[GPR.RIP]!);
      c.setRflags(Number(g[GPR.RFLAGS]! & 0xffffffffn));
    }
    if (mask & STATE.SEGS) {
      for (let s = 0; s < 10; s++) {
        const seg = state.segs[SEG_ORDER[s]!]!;
        const at = seg.attrib;
        c.segSel[s] = seg.selector & 0xffff;
        c.segBaseLo[s] = lo32(seg.base); c.segBaseHi[s] = hi32(seg.base);
        c.segLimit[s] = seg.limit >>> 0;
        c.segAttr[s] = (at.type & 0xf) | (at.s ? A_S : 0) | ((at.dpl & 3) << A_DPL_SHIFT) | (at.p ? A_P : 0) |
          (at.avl ? A_AVL : 0) | (at.l ? A_L : 0) | (at.def ? A_DB : 0) | (at.g ? A_G : 0);
      }
    }
    if (mask & STATE.CRS) {
      c.cr0 = lo32(state.crs[CR.CR0]!);
      c.cr2Lo = lo32(state.crs[CR.CR2]!); c.cr2Hi = hi32(state.crs[CR.CR2]!);
      c.cr3Lo = lo32(state.crs[CR.CR3]!); c.cr3Hi = hi32(state.crs[CR.CR3]!);
      c.cr4 = lo32(state.crs[CR.CR4]!);
      c.cr8 = Number(state.crs[CR.CR8]! & 0xfn);
      c.dev?.apic?.setCr8(c.cr8);
      c.xcr0Lo = lo32(state.crs[CR.XCR0]!) || 1;
    }
    if (mask & STATE.DRS) {
      for (let k = 0; k < 4; k++) c.dr[k] = Number(state.drs[DR.DR0 + k]!);
      c.dr[6] = Number(state.drs[DR.DR6]!); c.dr[7] = Number(state.drs[DR.DR7]!);
    }
    if (mask & STATE.MSRS) {
      c.efer = lo32(state.msrs[MSR.EFER]!);
      for (const [k, n] of STATE_MSRS) c.msr.set(n, [lo32(state.msrs[k]!), hi32(state.msrs[k]!)]);
      // The TSC keeps counting unless the VMM changed it: a state read, then committed later
      // (nvmm's lazy setState, at the next run), must not set it back by the time in between,
      // which would put it behind the other vCPUs' (Linux's TSC sync check finds the warp).
      const t = state.msrs[MSR.TSC]!;
      if (t !== 0n && t !== this.tscOut) writeMsr(c, MSR_TSC, lo32(t), hi32(t));
    }
    if (mask & STATE.INTR) {
      c.intShadow = state.intr.intShadow;
      this.exec.intWindowExiting = state.intr.intWindowExiting;
      this.exec.nmiWindowExiting = state.intr.nmiWindowExiting;
    }
    if (mask & STATE.FPU) {
      const f = state.fpu;
      const img = new DataView(new ArrayBuffer(512));
      const b = new Uint8Array(img.buffer);
      img.setUint16(FXSAVE.fcw, f.fcw, true); img.setUint16(FXSAVE.fsw, f.fsw, true); img.setUint8(FXSAVE.ftw, f.ftw);
      img.setUint16(FXSAVE.fop, f.fop, true); img.setBigUint64(FXSAVE.fip, f.fip, true); img.setBigUint64(FXSAVE.fdp, f.fdp, true);
      img.setUint32(FXSAVE.mxcsr, f.mxcsr, true);
      b.set(f.sts.subarray(0, 128), FXSAVE.st); b.set(f.xmms.subarray(0, 256), FXSAVE.xmm);
      const lm = c.long64;
      c.long64 = true;
      fxLoad(c, img, true);
      c.long64 = lm;
    }
    if (mask & (STATE.SEGS | STATE.CRS | STATE.MSRS | STATE.GPRS)) c.updateMode();
    if (mask & (STATE.CRS | STATE.MSRS)) c.flushTlb(false);
    void MSR_EFER; void S_GS;
  }

  setDebug(config: DebugConfig): void {
    this.debug ??= new SoftDebug(this.cpu, this.exec);
    this.debug.configure(config);
  }

  run(): VcpuExit {
    const r = this.debug !== null ? this.debug.run() : this.exec.run();
    if (this.exec.prof !== null) profileRunEnd(this.exec, r.kind === 'halted');
    return this.toExit(r);
  }

  private npc(): bigint {
    return big(this.exec.npcLo, this.exec.npcHi);
  }

  private toExit(r: RunResult): VcpuExit {
    switch (r.kind) {
      case 'io':
        return { kind: 'io', in: r.in, port: r.port, seg: r.seg, addressSize: r.addressSize, operandSize: r.operandSize, rep: r.rep, str: r.str, npc: this.npc() };
      case 'memory':
        return { kind: 'memory', gpa: r.gpa, prot: r.prot, instBytes: this.exec.lastInsnBytes };
      case 'rdmsr':
        return { kind: 'rdmsr', msr: r.msr, npc: this.npc() };
      case 'wrmsr':
        return { kind: 'wrmsr', msr: r.msr, value: big(r.lo, r.hi), npc: this.npc() };
      case 'cpuid':
        return { kind: 'cpuid', leaf: r.leaf, subleaf: r.subleaf, npc: this.npc() };
      case 'halted': case 'shutdown': case 'tprChanged': case 'stopped': case 'interruptWindow': case 'nmiWindow':
        return { kind: r.kind };
      case 'invalid':
        return { kind: 'invalid', reason: r.reason };
      case 'debug': {
        const d = this.debug!;
        return r.reason === 'watch' ? { kind: 'debug', reason: 'watch', rip: d.rip(), watchpoint: d.hit! } : { kind: 'debug', reason: r.reason, rip: d.rip() };
      }
    }
  }

  destroy(): void {
    this.release();
    this.onDestroy(this);
  }

  /** Lets go of the vCPU's decoded code and its arena block; the vCPU is not run again. */
  release(): void {
    this.exec.flushCode();
    this.cpu.release();
  }
}
