/**
 * The soft CPU's architectural state and its memory path.
 *
 * Representation (chosen for V8, see ENVIRONMENT.md "Facts for the software CPU"):
 * - 64-bit registers are int32 (lo, hi) pairs in one Int32Array: `regs[2*r]` low, `regs[2*r+1]` high.
 *   RIP is `ripLo`/`ripHi` (uint32 numbers). No BigInt anywhere on the execution path.
 * - Status flags are lazy (`LazyFlags` of x86/alu.ts); the other RFLAGS bits live in `fl`.
 * - Segments are parallel typed arrays (selector, base lo/hi, limit, packed attributes, where the
 *   attributes are descriptor bits 40-55: type | S<<4 | DPL<<5 | P<<7 | AVL<<12 | L<<13 | DB<<14 | G<<15).
 * - Linear -> host translation goes through a direct-mapped TLB in typed arrays, one set per access
 *   kind (read, write, fetch); a tag holds the page address and the user bit, so CPL changes need no
 *   flush. Misses walk the guest page tables with x86/page-walk.ts (setting A/D bits).
 * - Faults and exits leave an instruction by throwing one preallocated object (`CPU_FAULT`,
 *   `CPU_EXIT`); the run loop catches them. RIP is advanced before an instruction's handler runs, and
 *   rolled back to `curLo/curHi` when it faults or exits.
 */
import { TWO32 } from '../../common/bits.js';
import { LazyFlags } from '../../x86/alu.js';
import { CR0_PE, CR0_PG, CR0_RESET, CR4_PGE, EFER_LMA } from '../../x86/control-regs.js';
import { EXC_GP, EXC_PF, EXC_UD } from '../../x86/exceptions.js';
import { XSTATE_X87 } from '../../x86/fxsave.js';
import {
  ACCESS_FETCH, ACCESS_USER, ACCESS_WRITE, PageWalker, PageWalkResult, WALK_AC, WALK_OK, WALK_PAGE_FAULT, WALK_SET_AD, type PhysMemoryAccess,
} from '../../x86/page-walk.js';
import { FLAG_AC, PARITY } from '../../x86/flags.js';
import { arenaAllocate, arenaFree, arenaMemory, arenaOffsetOf } from './arena.js';
import type { NowNs } from '../../common/clock.js';
import type { GpaMapping, InlineDevices } from '../../nvmm/backend.js';
import { PROT } from '../../nvmm/backend.js';
import type { CpuidFn, SysModel } from './ops-sys.js';
import type { WasmHub } from './jit-wasm.js';

// Segment indices (the same numbering as nvmm/state.ts SEG and x86/registers.ts Seg).
export const S_ES = 0, S_CS = 1, S_SS = 2, S_DS = 3, S_FS = 4, S_GS = 5, S_GDT = 6, S_IDT = 7, S_LDT = 8, S_TR = 9;

// Packed segment attribute bits.
export const A_TYPE = 0xf, A_S = 1 << 4, A_DPL_SHIFT = 5, A_P = 1 << 7, A_AVL = 1 << 12, A_L = 1 << 13, A_DB = 1 << 14, A_G = 1 << 15;

/** Thrown (this one object) to leave an instruction with a CPU exception; details in the Cpu. */
export const CPU_FAULT = { fault: true };
/** Thrown (this one object) to leave an instruction with a VM exit; the exit is `cpu.exit`. */
export const CPU_EXIT = { exit: true };

/** Access kinds of the TLB sets. */
export const TLB_READ = 0, TLB_WRITE = 1, TLB_FETCH = 2;
const TLB_BITS = 10;
export const TLB_SIZE = 1 << TLB_BITS;

/** Layout of a vCPU's block in the WebAssembly arena (Cpu.arenaBase): byte offsets. */
export const ARENA_REGS = 0;
export const ARENA_CTL = 128;
export const ARENA_EFFBASE = 256;
export const ARENA_PARITY = 512;
export const ARENA_TLB_LO = 1024;
export const ARENA_TLB_HI = ARENA_TLB_LO + 12 * TLB_SIZE;
export const ARENA_TLB_ADDR = ARENA_TLB_HI + 12 * TLB_SIZE;
/** The compiled-code dispatcher's jump cache (jit-wasm.ts): JC_ENTRIES of 16 bytes. */
export const ARENA_JC = ARENA_TLB_ADDR + 12 * TLB_SIZE;
export const JC_ENTRIES = 1024;
export const ARENA_SIZE = ARENA_JC + 16 * JC_ENTRIES;
const TLB_MASK = TLB_SIZE - 1;

/** An exit the run loop returns (built lazily: the backend turns it into the API's VcpuExit). */
export type PendingExit =
  | { kind: 'io'; in: boolean; port: number; seg: number; addressSize: number; operandSize: number; rep: boolean; str: boolean }
  | { kind: 'memory'; gpa: number; prot: 'read' | 'write' | 'exec' }
  | { kind: 'rdmsr'; msr: number }
  | { kind: 'wrmsr'; msr: number; lo: number; hi: number }
  | { kind: 'cpuid'; leaf: number; subleaf: number }
  | { kind: 'halted' }
  | { kind: 'stopped' }
  | { kind: 'shutdown' }
  | { kind: 'tprChanged' }
  /** A debugger's stop (debug.ts): an INT3 it placed, or an access to memory it watches. */
  | { kind: 'debug'; reason: 'swbreak' | 'watch' }
  | { kind: 'invalid'; reason: string };

/** What the TLB fill needs of a mapping, found once: a DataView of its memory, and where the mapping starts in the arena (-1: not there). */
interface MappingView {
  dv: DataView;
  arena: number;
}

/** Guest-physical memory: the backend's mappings, looked up on TLB misses. */
export class PhysMap implements PhysMemoryAccess {
  /** Sorted by gpa, non-overlapping (the API layer guarantees it). */
  readonly maps: GpaMapping[] = [];
  private readonly views = new Map<GpaMapping, MappingView>();
  /** Bumped at every map/unmap: TLBs compare it and flush. */
  generation = 0;

  add(m: GpaMapping): void {
    this.maps.push(m);
    this.maps.sort((a, b) => a.gpa - b.gpa);
    this.generation++;
  }

  remove(m: GpaMapping): void {
    const i = this.maps.indexOf(m);
    if (i >= 0) this.maps.splice(i, 1);
    this.views.delete(m);
    this.generation++;
  }

  find(gpa: number): GpaMapping | undefined {
    const ms = this.maps;
    let lo = 0, hi = ms.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = ms[mid]!;
      if (gpa < m.gpa) hi = mid - 1;
      else if (gpa >= m.gpa + m.size) lo = mid + 1;
      else return m;
    }
    return undefined;
  }

  view(m: GpaMapping): DataView {
    return this.mappingView(m).dv;
  }

  mappingView(m: GpaMapping): MappingView {
    let v = this.views.get(m);
    if (!v) {
      const b = m.memory.bytes;
      const arena = arenaOffsetOf(m.memory);
      v = { dv: new DataView(b.buffer, b.byteOffset, b.byteLength), arena: arena >= 0 ? arena + m.offset : -1 };
      this.views.set(m, v);
    }
    return v;
  }

  read32(gpa: number): number {
    const m = this.find(gpa);
    if (!m || gpa + 4 > m.gpa + m.size) return -1;
    return this.view(m).getInt32(m.offset + (gpa - m.gpa), true);
  }

  or32(gpa: number, bits: number): void {
    const m = this.find(gpa);
    if (!m || !(m.prot & PROT.WRITE)) return;
    const v = this.view(m);
    const off = m.offset + (gpa - m.gpa);
    v.setInt32(off, v.getInt32(off, true) | bits, true);
  }
}

/** The architectural state of one vCPU plus its TLB. Hot fields are plain numbers and typed arrays. */
export class Cpu {
  // ---- general registers ----
  readonly regs: Int32Array;
  ripLo = 0;
  ripHi = 0;
  /** RIP of the instruction being executed (for faults, exits and traces). */
  curLo = 0;
  curHi = 0;
  /** RFLAGS without the six status flags (bit 1 always set). */
  fl = 2;
  readonly lz = new LazyFlags();

  // ---- segments (0-5 ES..GS, 6 GDT, 7 IDT, 8 LDT, 9 TR) ----
  readonly segSel = new Int32Array(10);
  readonly segBaseLo = new Int32Array(10);
  readonly segBaseHi = new Int32Array(10);
  readonly segLimit = new Float64Array(10);
  readonly segAttr = new Int32Array(10);
  /** Base used for address generation: 0 for ES/CS/SS/DS in 64-bit mode. */
  readonly effBaseLo: Int32Array;
  readonly effBaseHi: Int32Array;

  // ---- control, debug, MSRs ----
  cr0 = CR0_RESET;
  cr2Lo = 0;
  cr2Hi = 0;
  cr3Lo = 0;
  cr3Hi = 0;
  cr4 = 0;
  cr8 = 0;
  xcr0Lo = XSTATE_X87;
  efer = 0;
  readonly dr = new Float64Array(8);
  /** MSR values as [lo, hi] by MSR number (the ones this CPU owns). */
  readonly msr = new Map<number, [number, number]>();
  /** TSC offset in ns-ticks, so that TSC = now() + offset. */
  tscOffset = 0;
  /** The machine's guest time in nanoseconds (its GuestClock): the TSC counts it, the inline devices tick by it. */
  readonly now: NowNs;

  // ---- the CPU model and the VMM's policies (the backend sets them) ----
  /** What the model decides in the system instructions (ops-sys.ts SysModel); null: the base model. */
  sysModel: SysModel | null = null;
  /** CPUID's answer (the model's table with the VMM's masks); null: CPUID is #UD. */
  cpuidFn: CpuidFn | null = null;
  /** Whether a TPR (CR8) change exits to the VMM (NVMM_VCPU_CONF_TPR exit_changed). */
  tprExit = false;
  /** jit-wasm.ts's per-vCPU dispatcher and table of compiled regions (made at the first compilation). */
  wasmHub: WasmHub | null = null;

  // ---- derived mode (recomputed by updateMode) ----
  /** Decoding mode of the code segment: 16, 32 or 64. */
  mode: 16 | 32 | 64 = 16;
  /** Stack address size in bytes (2, 4, 8). */
  stackSize = 2;
  cpl = 0;
  /** 1 when CPL = 3 (the TLB tag bit). */
  user = 0;
  /** Protected mode (CR0.PE). */
  pe = false;
  /** Long mode active and 64-bit code segment. */
  long64 = false;

  // ---- interrupt state ----
  intShadow = false;
  /** Set by MOV SS and POP SS: a single-step trap waits for the next instruction (the stepping path clears it). */
  ssShadow = false;
  /** Events delivered so far (an instruction that delivered one, a fault or INT n, takes no single-step trap). */
  events = 0;
  /** NMIs blocked (from NMI delivery until IRET). */
  nmiBlocked = false;
  halted = false;
  /** The VMM's devices served without exits (port I/O, the interrupt controller, timers), or null. */
  dev: InlineDevices | null = null;
  /** When the inline devices next need tick() (guest time, Cpu.now); 0 after a port access that may have reprogrammed a timer. */
  devDeadline = 0;

  // ---- x87 / MMX / SSE (semantics and the precision policy in ops-x87.ts and ops-sse.ts) ----
  /** XMM0-XMM15, 16 bytes each (little-endian, as in memory). */
  readonly xmm = new Uint8Array(256);
  readonly xmm32 = new Int32Array(this.xmm.buffer);
  /** x87 physical registers R0-R7 as doubles (the value arithmetic uses). */
  readonly fpr = new Float64Array(8);
  /** Exact 80-bit images of R0-R7 (10 bytes each), authoritative where fpRawOk[i] = 1 (loaded or moved, not computed). */
  readonly fpRaw = new Uint8Array(80);
  readonly fpRawOk = new Uint8Array(8);
  fcw = 0x37f;
  /** FPU status word without TOP (bits 11-13 kept in ftop). */
  fsw = 0;
  ftop = 0;
  /** Abridged tag word: bit i = physical register i valid. */
  ftw = 0;
  fop = 0;
  fipLo = 0;
  fipHi = 0;
  fdpLo = 0;
  fdpHi = 0;
  mxcsr = 0x1f80;

  // ---- fault / exit reporting ----
  faultVector = 0;
  faultCode = -1;
  exit: PendingExit | null = null;
  /** Scratch: high half of the last 64-bit value read by a helper that returns the low half. */
  hi = 0;
  /** Scratch: linear address of the current memory operand. */
  eaLo = 0;
  eaHi = 0;

  // ---- memory ----
  readonly phys: PhysMap;
  /** The page walker of the CPU model (MAXPHYADDR, 1 GiB pages); the backend sets it. */
  walker = new PageWalker();
  private readonly walk = new PageWalkResult();
  private physGen = -1;
  /** TLB: tag lo (page address | user bit, -1 = invalid), tag hi, host memory, host byte offset of the page, GPA of the page. */
  readonly tlbTagLo: Int32Array;
  readonly tlbTagHi: Int32Array;
  /** The page's offset in the WebAssembly arena (0: the memory is not there). */
  readonly tlbAddr: Int32Array;
  readonly tlbDv: DataView[] = new Array<DataView>(3 * TLB_SIZE);
  readonly tlbBytes: Uint8Array[] = new Array<Uint8Array>(3 * TLB_SIZE);
  readonly tlbOff = new Float64Array(3 * TLB_SIZE);
  readonly tlbGpa = new Float64Array(3 * TLB_SIZE);
  readonly tlbGlobal = new Uint8Array(3 * TLB_SIZE);
  /** Physical pages holding decoded code (page number -> true); writes to them invalidate the blocks. */
  onCodeWrite: ((page: number) => void) | null = null;
  /** A serializing event (IRET): code other vCPUs wrote must be seen from here on (exec.ts). */
  onSerialize: (() => void) | null = null;
  readonly codePages = new Set<number>();
  /** Result of the last translate(): host memory and byte offset. */
  tBytes: Uint8Array = new Uint8Array(0);
  tDv: DataView = new DataView(new ArrayBuffer(8));
  tOff = 0;
  tGpa = 0;
  /**
   * Set by translate() instead of exiting when the page at tGpa has no RAM and the inline
   * devices serve MMIO: the access that called it goes to dev.mmio (mmioRead / mmioWrite), which
   * clears it. Nothing is cached for such a page, so every access comes back through fill().
   */
  tMmio = false;
  /** The bytes of an inline MMIO access (8 at most), and a view of them. */
  private readonly mmioBytes = new Uint8Array(8);
  private readonly mmioDv = new DataView(this.mmioBytes.buffer);
  /** Bytes of the current instruction (for memory exits). */
  insnBytes: Uint8Array = new Uint8Array(0);

  // ---- a debugger's hooks (debug.ts); null unless it watches memory or placed INT3s ----
  /**
   * Called after each TLB miss of an access of `size` bytes at linear (lo, hi) (`idx` the entry
   * just filled): it keeps watched pages out of the TLB, so that every access to them comes
   * here, and leaves the instruction with an exit when one touches watched bytes.
   */
  watch: ((lo: number, hi: number, kind: number, size: number, idx: number) => void) | null = null;
  /** Called by INT3: true when the debugger placed it (the instruction then exits instead of raising #BP). */
  onInt3: ((c: Cpu) => boolean) | null = null;

  /**
   * Where this vCPU's registers, segment bases, TLB tags and the compiled code's control words
   * live in the WebAssembly arena (ARENA_* offsets from here), or -1: plain arrays.
   */
  readonly arenaBase: number;
  /** The control words of code compiled to WebAssembly (jit-wasm.ts), in the arena: 32 of them, so every C_* index is in range. */
  readonly ctl: Int32Array;
  /** jit-wasm.ts's jump cache (JC_ENTRIES of 4 int32), filled by the executor. */
  readonly jumpCache: Int32Array;

  /** `now`: guest time (see the field); `arena`: keep the state compiled WebAssembly code uses in the arena (arena.ts). */
  constructor(phys: PhysMap, now: NowNs, arena = false) {
    this.phys = phys;
    this.now = now;
    const base = arena ? arenaAllocate(ARENA_SIZE) : -1;
    this.arenaBase = base;
    const buf = base >= 0 ? arenaMemory().buffer : new ArrayBuffer(ARENA_SIZE);
    const at = base >= 0 ? base : 0;
    this.regs = new Int32Array(buf, at + ARENA_REGS, 32);
    this.ctl = new Int32Array(buf, at + ARENA_CTL, 32);
    this.effBaseLo = new Int32Array(buf, at + ARENA_EFFBASE, 6);
    this.effBaseHi = new Int32Array(buf, at + ARENA_EFFBASE + 24, 6);
    new Uint8Array(buf, at + ARENA_PARITY, 256).set(PARITY);
    this.tlbTagLo = new Int32Array(buf, at + ARENA_TLB_LO, 3 * TLB_SIZE).fill(-1);
    this.tlbTagHi = new Int32Array(buf, at + ARENA_TLB_HI, 3 * TLB_SIZE);
    this.tlbAddr = new Int32Array(buf, at + ARENA_TLB_ADDR, 3 * TLB_SIZE);
    this.jumpCache = new Int32Array(buf, at + ARENA_JC, 4 * JC_ENTRIES);
    const dummy = new Uint8Array(8);
    const dv = new DataView(dummy.buffer);
    this.tlbDv.fill(dv);
    this.tlbBytes.fill(dummy);
  }

  /** Gives the arena block back (the vCPU is gone: its register views must not be used again). */
  release(): void {
    if (this.arenaBase >= 0 && !this.released) { this.released = true; arenaFree(this.arenaBase, ARENA_SIZE); }
  }
  private released = false;

  // ------------------------------------------------------------------------------------------
  // Faults and exits

  fault(vector: number, code = -1): never {
    this.faultVector = vector;
    this.faultCode = code;
    throw CPU_FAULT;
  }

  gp(code = 0): never {
    return this.fault(EXC_GP, code);
  }

  ud(): never {
    return this.fault(EXC_UD);
  }

  doExit(e: PendingExit): never {
    this.exit = e;
    throw CPU_EXIT;
  }

  // ------------------------------------------------------------------------------------------
  // Mode

  /** Recomputes the derived mode after a change of CR0, EFER, CS or SS. */
  updateMode(): void {
    this.pe = (this.cr0 & CR0_PE) !== 0;
    const cs = this.segAttr[S_CS]!;
    const lma = (this.efer & EFER_LMA) !== 0;
    this.long64 = lma && (cs & A_L) !== 0;
    this.mode = this.long64 ? 64 : (cs & A_DB) !== 0 ? 32 : 16;
    this.stackSize = this.long64 ? 8 : (this.segAttr[S_SS]! & A_DB) !== 0 ? 4 : 2;
    // CPL is SS.DPL (as VMX and SVM keep it).
    this.cpl = !this.pe ? 0 : (this.fl & (1 << 17)) !== 0 ? 3 : (this.segAttr[S_SS]! >> A_DPL_SHIFT) & 3;
    this.user = this.cpl === 3 ? 1 : 0;
    for (let s = 0; s < 6; s++) {
      const flat = this.long64 && s < S_FS;
      this.effBaseLo[s] = flat ? 0 : this.segBaseLo[s]!;
      this.effBaseHi[s] = flat || !this.long64 ? 0 : this.segBaseHi[s]!;
    }
  }

  // ------------------------------------------------------------------------------------------
  // TLB

  flushTlb(keepGlobal: boolean): void {
    const t = this.tlbTagLo;
    if (!keepGlobal || (this.cr4 & CR4_PGE) === 0) t.fill(-1);
    else for (let i = 0; i < t.length; i++) if (!this.tlbGlobal[i]) t[i] = -1;
  }

  /** INVLPG: drop the entries of one linear page (both user and supervisor tags). */
  flushPage(lo: number, hi: number): void {
    const idx = (lo >>> 12) & TLB_MASK;
    const page = lo & ~0xfff;
    for (let k = 0; k < 3; k++) {
      const i = k * TLB_SIZE + idx;
      if ((this.tlbTagLo[i]! & ~1) === page && this.tlbTagHi[i] === (hi | 0)) this.tlbTagLo[i] = -1;
    }
  }

  /** Drop write entries that map the physical page `page` (it now holds decoded code). */
  protectCodePage(page: number): void {
    this.codePages.add(page);
    for (let i = TLB_SIZE; i < 2 * TLB_SIZE; i++) {
      if (this.tlbTagLo[i] !== -1 && Math.floor(this.tlbGpa[i]! / 4096) === page) this.tlbTagLo[i] = -1;
    }
  }

  /**
   * Translates linear (lo, hi) for an access of `kind` and `size` bytes (within the page) and sets
   * tBytes/tDv/tOff/tGpa. Faults with #PF or #GP; exits with a memory exit where no RAM backs the
   * address, or a debug exit where a debugger watches the bytes.
   */
  translate(lo: number, hi: number, kind: number, size = 1): void {
    if (this.physGen !== this.phys.generation) {
      this.physGen = this.phys.generation;
      this.tlbTagLo.fill(-1);
    }
    const idx = kind * TLB_SIZE + ((lo >>> 12) & TLB_MASK);
    const tag = (lo & ~0xfff) | this.user;
    if (this.tlbTagLo[idx] === tag && this.tlbTagHi[idx] === (hi | 0)) {
      this.tBytes = this.tlbBytes[idx]!;
      this.tDv = this.tlbDv[idx]!;
      this.tOff = this.tlbOff[idx]! + (lo & 0xfff);
      this.tGpa = this.tlbGpa[idx]! + (lo & 0xfff);
      return;
    }
    this.fill(lo, hi, kind, idx, tag);
    if (this.watch !== null) {
      try {
        this.watch(lo, hi, kind, size, idx);
      } catch (e) {
        this.tMmio = false; // the access is not made: a later one must not take it for MMIO
        throw e;
      }
    }
  }

  private fill(lo: number, hi: number, kind: number, idx: number, tag: number): void {
    let gpa: number;
    let global = false;
    if (this.cr0 & CR0_PG) {
      let flags = WALK_SET_AD;
      if (kind === TLB_WRITE) flags |= ACCESS_WRITE;
      else if (kind === TLB_FETCH) flags |= ACCESS_FETCH;
      if (this.user) flags |= ACCESS_USER;
      else if (this.fl & FLAG_AC) flags |= WALK_AC;
      const w = this.walk;
      const paging = { cr0: this.cr0, cr3: this.cr3Lo >>> 0, cr4: this.cr4, efer: this.efer };
      if (this.cr3Hi) paging.cr3 = (this.cr3Hi >>> 0) * TWO32 + (this.cr3Lo >>> 0);
      if (!this.walker.walk(paging, this.phys, lo, hi, flags, w)) {
        if (w.status !== WALK_PAGE_FAULT) this.gp(0);
        this.cr2Lo = w.faultLo | 0;
        this.cr2Hi = w.faultHi | 0;
        this.fault(EXC_PF, w.errorCode);
      }
      if (w.status !== WALK_OK) this.gp(0);
      gpa = w.gpa;
      global = w.global;
    } else {
      gpa = lo >>> 0;
    }
    const m = this.phys.find(gpa);
    const need = kind === TLB_WRITE ? PROT.WRITE : kind === TLB_FETCH ? PROT.EXEC : PROT.READ;
    if (!m || !(m.prot & need)) {
      this.tGpa = gpa;
      if (kind !== TLB_FETCH && this.dev?.mmio) {
        this.tMmio = true;
        return;
      }
      this.doExit({ kind: 'memory', gpa, prot: kind === TLB_WRITE ? 'write' : kind === TLB_FETCH ? 'exec' : 'read' });
    }
    const pageGpa = gpa - (gpa % 4096);
    if (kind === TLB_WRITE && this.codePages.has(pageGpa / 4096)) {
      this.codePages.delete(pageGpa / 4096);
      this.onCodeWrite?.(pageGpa / 4096);
    }
    const pageOff = m.offset + (pageGpa - m.gpa);
    const mv = this.phys.mappingView(m);
    this.tlbTagLo[idx] = tag;
    this.tlbTagHi[idx] = hi | 0;
    this.tlbBytes[idx] = m.memory.bytes;
    this.tlbDv[idx] = mv.dv;
    this.tlbOff[idx] = pageOff;
    this.tlbGpa[idx] = pageGpa;
    this.tlbGlobal[idx] = global ? 1 : 0;
    this.tlbAddr[idx] = mv.arena >= 0 ? mv.arena + (pageGpa - m.gpa) : 0;
    this.tBytes = m.memory.bytes;
    this.tDv = mv.dv;
    this.tOff = pageOff + (lo & 0xfff);
    this.tGpa = gpa;
  }

  // ------------------------------------------------------------------------------------------
  // Linear memory access. Values are int32 bit patterns; 64-bit reads return lo and set `hi`.

  rd8(lo: number, hi: number): number {
    this.translate(lo, hi, TLB_READ);
    if (this.tMmio) return this.mmioRead(1);
    return this.tBytes[this.tOff]!;
  }

  rd16(lo: number, hi: number): number {
    if ((lo & 0xfff) > 0xffe) return this.rdSlow(lo, hi, 2);
    this.translate(lo, hi, TLB_READ, 2);
    if (this.tMmio) return this.mmioRead(2);
    return this.tDv.getUint16(this.tOff, true);
  }

  rd32(lo: number, hi: number): number {
    if ((lo & 0xfff) > 0xffc) return this.rdSlow(lo, hi, 4);
    this.translate(lo, hi, TLB_READ, 4);
    if (this.tMmio) return this.mmioRead(4);
    return this.tDv.getInt32(this.tOff, true);
  }

  rd64(lo: number, hi: number): number {
    if ((lo & 0xfff) > 0xff8) {
      const a = this.rdSlow(lo, hi, 4);
      const n = (lo >>> 0) + 4;
      this.hi = this.rdSlow(n >>> 0, n >= TWO32 ? hi + 1 : hi, 4);
      return a;
    }
    this.translate(lo, hi, TLB_READ, 8);
    if (this.tMmio) return this.mmioRead(8);
    const dv = this.tDv, o = this.tOff;
    this.hi = dv.getInt32(o + 4, true);
    return dv.getInt32(o, true);
  }

  /**
   * The read of `size` bytes at tGpa that translate() left to the inline devices (tMmio), as
   * rd8..rd64 return it: 1 and 2 bytes zero-extended, 4 and 8 as int32 (8 sets `hi`).
   */
  private mmioRead(size: 1 | 2 | 4 | 8): number {
    this.tMmio = false;
    const b = this.mmioBytes;
    this.dev!.mmio!(this.tGpa, size === 8 ? b : b.subarray(0, size), false);
    switch (size) {
      case 1: return b[0]!;
      case 2: return this.mmioDv.getUint16(0, true);
      case 4: return this.mmioDv.getInt32(0, true);
      default: this.hi = this.mmioDv.getInt32(4, true); return this.mmioDv.getInt32(0, true);
    }
  }

  /** The write of `size` bytes (vLo, then vHi for 8) at tGpa that translate() left to the inline devices. */
  private mmioWrite(size: 1 | 2 | 4 | 8, vLo: number, vHi: number): void {
    this.tMmio = false;
    const b = this.mmioBytes;
    this.mmioDv.setInt32(0, vLo, true);
    this.mmioDv.setInt32(4, vHi, true);
    this.dev!.mmio!(this.tGpa, size === 8 ? b : b.subarray(0, size), true);
    this.devDeadline = 0; // a timer (the local APIC's) may have been programmed
  }

  /** A read of `size` (<= 4) bytes that may cross a page. */
  private rdSlow(lo: number, hi: number, size: number): number {
    let v = 0;
    for (let i = 0; i < size; i++) {
      const n = (lo >>> 0) + i;
      v |= this.rd8(n >>> 0, n >= TWO32 ? hi + 1 : hi) << (8 * i);
    }
    return v;
  }

  /** Reads `size` bytes (1, 2, 4, 8); for 8, `hi` gets the high half. */
  rd(lo: number, hi: number, size: number): number {
    switch (size) {
      case 1: return this.rd8(lo, hi);
      case 2: return this.rd16(lo, hi);
      case 4: return this.rd32(lo, hi);
      default: return this.rd64(lo, hi);
    }
  }

  // ---- compare-and-exchange writes of locked instructions (ops-lock.ts) ----
  /** While a locked instruction runs: its write is a compare-and-exchange against casLo/casHi (casLoad). */
  casOn = false;
  /** The compare-and-exchange found another value: nothing was written, the instruction runs again. */
  casFailed = false;
  private casLo = 0;
  private casHi = 0;
  private casAt = 0;
  private casBuffer: ArrayBufferLike | null = null;
  private cas8: Uint8Array<ArrayBufferLike> = new Uint8Array(0);
  private cas16: Uint16Array<ArrayBufferLike> = new Uint16Array(0);
  private cas32: Int32Array<ArrayBufferLike> = new Int32Array(0);
  private cas64: BigInt64Array<ArrayBufferLike> = new BigInt64Array(0);

  /** Loads, atomically, the `size` bytes at byte `at` of `buffer` (the locked instruction's destination, aligned). */
  casLoad(buffer: ArrayBufferLike, at: number, size: number): void {
    this.casAt = at;
    if (this.casBuffer !== buffer || buffer.byteLength !== this.cas8.length) {
      this.casBuffer = buffer;
      this.cas8 = new Uint8Array(buffer);
      this.cas16 = new Uint16Array(buffer, 0, buffer.byteLength >>> 1);
      this.cas32 = new Int32Array(buffer, 0, buffer.byteLength >>> 2);
      this.cas64 = new BigInt64Array(buffer, 0, Math.floor(buffer.byteLength / 8));
    }
    switch (size) {
      case 1: this.casLo = Atomics.load(this.cas8, at); break;
      case 2: this.casLo = Atomics.load(this.cas16, at >>> 1); break;
      case 4: this.casLo = Atomics.load(this.cas32, at >>> 2); break;
      default: {
        const v = Atomics.load(this.cas64, at / 8);
        this.casLo = Number(BigInt.asIntN(32, v)); this.casHi = Number(BigInt.asIntN(32, v >> 32n));
      }
    }
  }

  /** The locked instruction's write: a compare-and-exchange of what casLoad read (casFailed when memory changed). */
  private casWrite(lo: number, hi: number, size: number, vLo: number, vHi: number): void {
    this.translate(lo, hi, TLB_WRITE, size);
    const at = this.casAt;
    let ok: boolean;
    switch (size) {
      case 1: ok = Atomics.compareExchange(this.cas8, at, this.casLo & 0xff, vLo & 0xff) === (this.casLo & 0xff); break;
      case 2: ok = Atomics.compareExchange(this.cas16, at >>> 1, this.casLo & 0xffff, vLo & 0xffff) === (this.casLo & 0xffff); break;
      case 4: ok = Atomics.compareExchange(this.cas32, at >>> 2, this.casLo | 0, vLo | 0) === (this.casLo | 0); break;
      default: {
        const expect = (BigInt(this.casHi) << 32n) | BigInt(this.casLo >>> 0);
        const next = (BigInt(vHi) << 32n) | BigInt(vLo >>> 0);
        ok = Atomics.compareExchange(this.cas64, at / 8, BigInt.asIntN(64, expect), BigInt.asIntN(64, next)) === BigInt.asIntN(64, expect);
      }
    }
    if (!ok) this.casFailed = true;
  }

  wr8(lo: number, hi: number, v: number): void {
    if (this.casOn) return this.casWrite(lo, hi, 1, v, 0);
    this.translate(lo, hi, TLB_WRITE);
    if (this.tMmio) return this.mmioWrite(1, v, 0);
    this.tBytes[this.tOff] = v;
  }

  wr16(lo: number, hi: number, v: number): void {
    if (this.casOn) return this.casWrite(lo, hi, 2, v, 0);
    if ((lo & 0xfff) > 0xffe) return this.wrSlow(lo, hi, 2, v, 0);
    this.translate(lo, hi, TLB_WRITE, 2);
    if (this.tMmio) return this.mmioWrite(2, v, 0);
    this.tDv.setUint16(this.tOff, v, true);
  }

  wr32(lo: number, hi: number, v: number): void {
    if (this.casOn) return this.casWrite(lo, hi, 4, v, 0);
    if ((lo & 0xfff) > 0xffc) return this.wrSlow(lo, hi, 4, v, 0);
    this.translate(lo, hi, TLB_WRITE, 4);
    if (this.tMmio) return this.mmioWrite(4, v, 0);
    this.tDv.setInt32(this.tOff, v, true);
  }

  wr64(lo: number, hi: number, vLo: number, vHi: number): void {
    if (this.casOn) return this.casWrite(lo, hi, 8, vLo, vHi);
    if ((lo & 0xfff) > 0xff8) return this.wrSlow(lo, hi, 8, vLo, vHi);
    this.translate(lo, hi, TLB_WRITE, 8);
    if (this.tMmio) return this.mmioWrite(8, vLo, vHi);
    const dv = this.tDv, o = this.tOff;
    dv.setInt32(o, vLo, true);
    dv.setInt32(o + 4, vHi, true);
  }

  /** A page-crossing write: both pages are translated (and may fault) before any byte is written. */
  private wrSlow(lo: number, hi: number, size: number, vLo: number, vHi: number): void {
    const n = (lo >>> 0) + size - 1;
    this.translate(n >>> 0, n >= TWO32 ? hi + 1 : hi, TLB_WRITE);
    this.translate(lo, hi, TLB_WRITE);
    this.tMmio = false; // only checked: each byte's write translates again
    for (let i = 0; i < size; i++) {
      const a = (lo >>> 0) + i;
      this.wr8(a >>> 0, a >= TWO32 ? hi + 1 : hi, i < 4 ? vLo >>> (8 * i) : vHi >>> (8 * (i - 4)));
    }
  }

  wr(lo: number, hi: number, size: number, vLo: number, vHi: number): void {
    switch (size) {
      case 1: this.wr8(lo, hi, vLo); return;
      case 2: this.wr16(lo, hi, vLo); return;
      case 4: this.wr32(lo, hi, vLo); return;
      default: this.wr64(lo, hi, vLo, vHi);
    }
  }

  /** Checks that a write of `size` bytes at (lo, hi) would succeed (for instructions that must not half-commit). */
  probeWrite(lo: number, hi: number, size: number): void {
    this.translate(lo, hi, TLB_WRITE);
    const n = (lo >>> 0) + size - 1;
    if (((n >>> 0) & ~0xfff) !== (lo & ~0xfff)) this.translate(n >>> 0, n >= TWO32 ? hi + 1 : hi, TLB_WRITE);
    this.tMmio = false; // only checked: the write itself translates again
  }

  // ------------------------------------------------------------------------------------------
  // Registers

  /** Reads register r (0-15; 16-19 = AH CH DH BH for size 1) zero-extended; for size 8 sets `hi`. */
  getReg(r: number, size: number): number {
    const R = this.regs;
    switch (size) {
      case 1: return r < 16 ? R[r << 1]! & 0xff : (R[(r - 16) << 1]! >> 8) & 0xff;
      case 2: return R[r << 1]! & 0xffff;
      case 4: return R[r << 1]!;
      default: this.hi = R[(r << 1) + 1]!; return R[r << 1]!;
    }
  }

  setReg(r: number, size: number, lo: number, hi: number): void {
    const R = this.regs;
    switch (size) {
      case 1:
        if (r < 16) R[r << 1] = (R[r << 1]! & ~0xff) | (lo & 0xff);
        else { const k = (r - 16) << 1; R[k] = (R[k]! & ~0xff00) | ((lo & 0xff) << 8); }
        return;
      case 2: R[r << 1] = (R[r << 1]! & ~0xffff) | (lo & 0xffff); return;
      case 4: R[r << 1] = lo; R[(r << 1) + 1] = 0; return;
      default: R[r << 1] = lo; R[(r << 1) + 1] = hi;
    }
  }

  getRflags(): number {
    return (this.fl | this.lz.get()) >>> 0;
  }

  /** Sets RFLAGS wholesale (reserved bits forced). Does not recompute the mode. */
  setRflags(v: number): void {
    this.fl = (v & 0x3f7700) | 2; // TF IF DF IOPL NT, RF VM AC VIF VIP ID (OF is a status flag)
    this.lz.setEager(v & 0x8d5);
  }

  // ------------------------------------------------------------------------------------------
  // Stack

  push(lo: number, hi: number, size: number): void {
    const R = this.regs;
    const ss = this.stackSize;
    let spLo = R[8]!, spHi = R[9]!;
    if (ss === 8) {
      const n = (spLo >>> 0) - size;
      spLo = n | 0;
      if (n < 0) spHi = (spHi - 1) | 0;
      this.wr(spLo, spHi, size, lo, hi);
      R[8] = spLo; R[9] = spHi;
    } else {
      const m = ss === 4 ? -1 : 0xffff;
      const n = ((spLo - size) & m) >>> 0;
      const la = (n + this.effBaseLo[S_SS]!) | 0;
      this.wr(la, 0, size, lo, hi);
      if (ss === 4) R[8] = n | 0; else R[8] = (spLo & ~0xffff) | n;
    }
  }

  /** Pops `size` bytes (returns lo, sets `hi` for 8). */
  pop(size: number): number {
    const R = this.regs;
    const ss = this.stackSize;
    if (ss === 8) {
      const spLo = R[8]!, spHi = R[9]!;
      const v = this.rd(spLo, spHi, size);
      const n = (spLo >>> 0) + size;
      R[8] = n | 0;
      if (n >= TWO32) R[9] = (spHi + 1) | 0;
      return v;
    }
    const m = ss === 4 ? -1 : 0xffff;
    const sp = (R[8]! & m) >>> 0;
    const v = this.rd((sp + this.effBaseLo[S_SS]!) | 0, 0, size);
    const n = (sp + size) & m;
    if (ss === 4) R[8] = n; else R[8] = (R[8]! & ~0xffff) | n;
    return v;
  }

  /** Reads a value `off` bytes above the stack pointer without popping (for RET imm, IRET checks). */
  peekStack(off: number, size: number): number {
    const R = this.regs;
    if (this.stackSize === 8) {
      const n = (R[8]! >>> 0) + off;
      return this.rd(n >>> 0, n >= TWO32 ? R[9]! + 1 : R[9]!, size);
    }
    const m = this.stackSize === 4 ? -1 : 0xffff;
    return this.rd((((R[8]! + off) & m) + this.effBaseLo[S_SS]!) | 0, 0, size);
  }

  // ------------------------------------------------------------------------------------------
  // Time

  /** The time-stamp counter: guest time in nanoseconds plus the guest's offset, as (lo, hi). */
  tsc(): number {
    const t = Math.floor(this.now()) + this.tscOffset;
    const hi = Math.floor(t / TWO32);
    this.hi = hi | 0;
    return (t - hi * TWO32) | 0;
  }
}
