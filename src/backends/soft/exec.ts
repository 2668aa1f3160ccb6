/**
 * The soft CPU's execution engine: the decoded-block cache and the run loop.
 *
 * - A block is a run of pre-decoded instructions (Insn records with their handlers) starting at one
 *   guest-physical address, decoded in one CPU mode, ending at a control transfer or mode change
 *   (`Insn.term`), at the end of the 4 KiB page, or after MAX_BLOCK instructions. Blocks are cached
 *   by (GPA, mode), so code is decoded once however it is mapped.
 * - Coherence: guest writes to a page holding blocks go through the TLB's write path, which drops
 *   the page's blocks (Cpu.onCodeWrite); the VMM may also write guest memory directly between runs,
 *   so each block remembers its bytes and is re-checked once per run() before it is reused.
 * - The loop checks, at block boundaries, the stop flag (every STOP_CHECK blocks), the interrupt
 *   and NMI windows, and the instruction budget. A block compiler (JS source via new Function, or
 *   wasm) can replace `execBlock` for hot blocks: the records carry everything it needs.
 * - WebAssembly regions may run up to CHAIN_MAX others before returning here (jit-wasm.ts's
 *   dispatcher, fed by the jump cache this file fills); they stop early after a slow path that may
 *   change what this loop checks (all but jit-wasm.ts's QUIET_HANDLERS), and the loop counts
 *   them against its checks.
 * - With a profiler attached (profile.ts, `prof` set), the loop stores its phase and the RIP of
 *   each block into the profiler's shared words; without one, that is a few null tests per block.
 */
import { DecodeStatus, DecodedInsn, MNEMONICS, decode, type CpuMode } from '../../x86/decoder.js';
import { disasmOne } from '../../x86/disasm.js';
import { FLAG_IF, FLAG_TF } from '../../x86/flags.js';
import { compileInsn } from './compile.js';
import { TWO32 } from '../../common/bits.js';
import { CPU_EXIT, CPU_FAULT, Cpu, S_CS, TLB_FETCH, TLB_SIZE, type PendingExit } from './cpu.js';
import { Insn } from './insn.js';
import { compileRegion, faultIndex, worthCompiling, type JitFn } from './jit.js';
import { C_BASE, C_EPOCH, C_SLOT, compileRegionsWasm, jcEntry, releaseSlot, wasmCapable, wasmSimd, type WasmRegion } from './jit-wasm.js';
import { hJcc, hJmpRel } from './ops-int.js';
import { EV_EXC, EV_EXT, EV_NMI, deliver } from './ops-sys.js';
import { EXC_DB, EXC_NMI } from '../../x86/exceptions.js';
import type { VcpuEvent } from '../../nvmm/event.js';
import type { InlineDevices } from '../../nvmm/backend.js';
import type { TraceHook } from '../../nvmm/trace.js';
import type { SoftDebug } from './debug.js';
import {
  F_INSNS, F_INTERPRETED, PH_COMPILE, PH_DECODE, PH_DISPATCH, PH_INTERP, PH_JS, PH_WASM, W_RIP_HI, W_RIP_LO, W_STATE, phaseWord,
} from './profile.js';

const MAX_BLOCK = 64;
/** Blocks between two looks at the stop flag. */
const STOP_CHECK = 256;
/**
 * Executions after which a block is compiled (jit.ts, jit-wasm.ts), by default. High on purpose,
 * measured on the Linux boot. For jit.ts, V8 runs a new function in its baseline tiers, slower
 * than the interpreter's optimized handlers, until it is hot enough to optimize (32 took ~190 s,
 * 1000 ~129 s, 3000 ~122 s). For jit-wasm.ts, a region costs ~0.9 ms of the vCPU thread to build
 * and compile, and 100, 300, 1000 and 10000 were all slower than 3000.
 */
export const DEFAULT_JIT_THRESHOLD = 3000;

/**
 * What hot 64-bit code is compiled to: 'wasm' (jit-wasm.ts; needs the vCPU's state in the arena)
 * or 'js' (jit.ts). Code in other modes always uses jit.ts, and so does all code where the engine
 * has no WebAssembly SIMD (jit-wasm.ts wasmSimd()).
 */
export type JitKind = 'js' | 'wasm';

/** The block compilers' settings, per machine (SoftOptions.jit; SoftBackend.open takes defaults from the environment). */
export interface JitOptions {
  /** Executions before a block is compiled: 0 compiles it before its first, -1 never (interpreter only). Default DEFAULT_JIT_THRESHOLD. */
  threshold?: number;
  /** What hot 64-bit code becomes (default 'wasm'; 'js' where the engine has no WebAssembly SIMD). */
  kind?: JitKind;
  /** Hand the source of every region jit.ts generates to the backend's log (debugging). */
  dump?: boolean;
}

/** The kind `kind` gives on this engine: 'js' where jit-wasm.ts cannot run. */
export function usableJitKind(kind: JitKind): JitKind {
  return kind === 'wasm' && !wasmSimd() ? 'js' : kind;
}

/** Most block-to-block transfers inside one call of a compiled region before it returns to the run loop. */
const LOOP_MAX = 256;
/**
 * Most compiled regions one call from the run loop runs back to back (jit-wasm.ts's dispatcher):
 * the loop's checks see them as one block each, and the loop is back at least this often.
 */
const CHAIN_MAX = 64;
/**
 * What the decoded-block cache may hold, counted in instruction records plus BLOCK_WEIGHT per
 * block (a block with its copy of the bytes weighs about as much as that many records, some
 * 0.2 KiB each): past it, every block is dropped and decoding starts over, as QEMU's TCG flushes
 * its translation buffer when it is full. A guest can start a block at every byte of its RAM
 * (guests/hostile/code-spray.asm: some 13 KiB of host memory per byte, kept for good before);
 * this bounds the cache at about 100 MiB of the engine's heap. Debian's Linux booting to its
 * shell (test/linux/boot-soft.test.ts) peaks at about 50,000 blocks weighing 450,000: no flush.
 */
const CACHE_BUDGET = 1 << 19;
const BLOCK_WEIGHT = 4;
/** Most blocks in a compiled region, and most instructions (V8 optimizes large functions late or never). */
const MAX_REGION = 8;
const MAX_REGION_INSNS = 128;
/**
 * WebAssembly regions are compiled in batches (jit-wasm.ts regionsModule: a module costs V8 far
 * more than a function in it): a hot block waits in the queue until BATCH_MAX are waiting, or
 * until one of them has run BATCH_WAIT more times interpreted (a hot loop waits little).
 */
const BATCH_MAX = 16;
const BATCH_WAIT = 500;

/** A cached block's part of CACHE_BUDGET. */
function weight(b: Block): number {
  return b.insns.length + BLOCK_WEIGHT;
}

/** The fetch-TLB entry (cpu.ts translate's index) of linear address lin. */
function fetchTlbIndex(lin: number): number {
  return TLB_FETCH * TLB_SIZE + ((lin >>> 12) & (TLB_SIZE - 1));
}

export class Block {
  readonly gpa: number;
  readonly mode: number;
  readonly insns: Insn[];
  /** The block's bytes when decoded, to re-validate after the VMM had a chance to write memory. */
  readonly bytes: Uint8Array;
  /** Host memory and offset the bytes came from. */
  readonly src: Uint8Array;
  readonly srcOff: number;
  /** run() generation in which the bytes were last checked. */
  gen: number;
  /** Executions (the block compiler's hotness test). */
  count = 0;
  /** False once dropped from the cache (code page written, stale bytes, flush): links to it die. */
  valid = true;
  /** Waiting in the executor's batch of blocks to compile. */
  queued = false;
  /** The compiled form (jit.ts), once hot: this block and the region's other blocks. */
  jit: JitFn | null = null;
  /** jit-wasm.ts's table slot of the compiled form, or -1. */
  slot = -1;
  /** The region's blocks (this one first) and their offsets from this block's address. */
  region: Block[] | null = null;
  regionOffs: number[] | null = null;
  /**
   * Two successor links: the block that followed at linear RIP (lo, hi). Numbers kept here and in
   * Insn are int32: one stored double would make V8 box the field in every object.
   */
  s0: Block | null = null;
  s0Lo = -1;
  s0Hi = 0;
  s1: Block | null = null;
  s1Lo = -1;
  s1Hi = 0;

  constructor(gpa: number, mode: number, insns: Insn[], src: Uint8Array, srcOff: number, length: number, gen: number) {
    this.gpa = gpa;
    this.mode = mode;
    this.insns = insns;
    this.src = src;
    this.srcOff = srcOff;
    this.bytes = src.slice(srcOff, srcOff + length);
    this.gen = gen;
  }

  /** Dropped from the cache: links to it die, and its own links and code are let go. */
  kill(): void {
    this.valid = false;
    this.s0 = this.s1 = null;
    this.jit = null;
    this.region = this.regionOffs = null;
  }

  stillValid(): boolean {
    const b = this.bytes, s = this.src, o = this.srcOff;
    for (let k = 0; k < b.length; k++) if (s[o + k] !== b[k]) return false;
    return true;
  }
}


/** A region to compile: a hot block and the blocks it reaches (Executor.region). */
interface Region extends WasmRegion {
  blocks: Block[];
}

/** What a run ends with (the backend turns it into the API's VcpuExit). */
export type RunResult = PendingExit | { kind: 'stopped' } | { kind: 'interruptWindow' } | { kind: 'nmiWindow' } | { kind: 'debug'; reason: 'step' | 'hwbreak' };

const REG_NAMES = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];

export class Executor {
  readonly cpu: Cpu;
  private readonly cache = new Map<number, Block>();
  /** The cache's weight (see CACHE_BUDGET). */
  private cacheWeight = 0;
  /**
   * The cache keys of each page's blocks, to drop them when the page is written. A set: a block
   * decoded again at the same key (its bytes changed under it, from the VMM: an INS into the page,
   * say) is listed once however often that happens.
   */
  private readonly pageBlocks = new Map<number, Set<number>>();
  private readonly dec = new DecodedInsn();
  private readonly crossBuf = new Uint8Array(16);
  private gen = 0;
  /** Instructions retired (approximate across faults). */
  icount = 0;
  pendingEvent: VcpuEvent | null = null;
  intWindowExiting = false;
  nmiWindowExiting = false;
  readonly stopFlag: Int32Array;
  trace: TraceHook | null = null;
  /** Stop after this many instructions (0 = no limit): returns `stopped`. For tests and benchmarks. */
  instructionLimit = 0;
  /** Executions before a block is compiled (0: at its first execution; -1: never). */
  jitThreshold: number;
  /** Where jit.ts hands the source of each region it generates, or null (JitOptions.dump). */
  dump: ((source: string) => void) | null = null;
  /** Most block-to-block transfers inside one call of a compiled region (1 while an instruction limit is set). */
  loopMax = LOOP_MAX;
  chainMax = CHAIN_MAX;
  chained = 0;
  /** Regions the dispatcher ran after another without returning to this loop. */
  chainedTotal = 0;
  /** Compiled blocks (regions) this loop called. */
  jitRuns = 0;
  /** Hot blocks waiting to be compiled to WebAssembly together (BATCH_MAX). */
  private readonly batch: Block[] = [];
  /** Each jit-wasm.ts table slot's block. */
  private readonly slotBlocks: (Block | null)[] = [];
  /** The code generation and epoch the jump cache's (Cpu.jumpCache) entries are from. */
  private jcGen = -1;
  private jcEpoch = -1;
  /** Blocks compiled so far. */
  jitCount = 0;
  /** Blocks decoded so far, and instructions run by the interpreter (the rest of icount ran compiled). */
  blocksDecoded = 0;
  interpreted = 0;
  /** The block executed last (for successor links); null after a fault, an exit or a new run. */
  private prev: Block | null = null;
  /** The profiler's shared words (profile.ts), or null: not profiled. */
  prof: Int32Array | null = null;
  /** Where the profiler reads the counters (profile.ts F_INSNS, F_INTERPRETED). */
  profCounts: Float64Array | null = null;
  /** A debugger that single-steps or has hardware breakpoints (debug.ts) runs each instruction; null: none. */
  debug: SoftDebug | null = null;

  constructor(cpu: Cpu, stopFlag: Int32Array, jitThreshold = DEFAULT_JIT_THRESHOLD) {
    this.cpu = cpu;
    this.stopFlag = stopFlag;
    this.jitThreshold = jitThreshold;
    cpu.onCodeWrite = (page) => this.dropPage(page);
    cpu.onSerialize = () => { if (this.crossModify) this.revalidate(); };
  }

  /** Lets a block's compiled form go (the block died, or its region's code changed). */
  private dropJit(b: Block): void {
    if (b.slot >= 0) {
      releaseSlot(this.cpu, b.slot);
      this.slotBlocks[b.slot] = null;
      b.slot = -1;
      this.jcGen = -1;
    }
    b.jit = null; b.region = null; b.regionOffs = null;
  }

  /** Names b's region in the jump cache for RIP (lo, hi), whose fetch TLB entry is loaded. */
  private cacheJump(b: Block, lo: number, hi: number): void {
    const c = this.cpu, jc = c.jumpCache;
    if (this.jcGen !== this.gen || this.jcEpoch !== c.ctl[C_EPOCH]) {
      jc.fill(0);
      this.jcGen = this.gen; this.jcEpoch = c.ctl[C_EPOCH]!;
    }
    const addr = c.tlbAddr[fetchTlbIndex(lo)]!;
    if (addr === 0) return;
    const e = jcEntry(lo) >> 2;
    jc[e] = lo; jc[e + 1] = hi; jc[e + 2] = addr; jc[e + 3] = b.slot + 1;
  }

  private dropPage(page: number): void {
    const keys = this.pageBlocks.get(page);
    if (!keys) return;
    this.cpu.ctl[C_EPOCH]!++;
    for (const k of keys) {
      const b = this.cache.get(k);
      if (b !== undefined) { this.dropJit(b); b.kill(); this.cacheWeight -= weight(b); }
      this.cache.delete(k);
    }
    this.pageBlocks.delete(page);
  }

  /** Forgets every decoded block (after a mode-independent change such as unmap). */
  flushCode(): void {
    this.cpu.ctl[C_EPOCH]!++;
    for (const b of this.cache.values()) { this.dropJit(b); b.kill(); }
    for (const b of this.batch) b.queued = false;
    this.batch.length = 0;
    this.prev = null;
    this.cache.clear();
    this.cacheWeight = 0;
    this.pageBlocks.clear();
    this.cpu.codePages.clear();
  }

  get blockCount(): number {
    return this.cache.size;
  }

  /** The keys listed by page (at least blockCount; for tests). */
  get pageKeyCount(): number {
    let n = 0;
    for (const keys of this.pageBlocks.values()) n += keys.size;
    return n;
  }

  /** The block at the current CS:RIP, decoding it if needed. */
  private getBlock(): Block {
    const c = this.cpu;
    const rs = (c.ripLo >>> 0) + (c.effBaseLo[S_CS]! >>> 0);
    const lo = rs >>> 0;
    const hi = c.long64 ? c.ripHi : 0;
    c.translate(c.long64 ? lo | 0 : rs | 0, hi, TLB_FETCH);
    const gpa = c.tGpa;
    const mode = c.mode;
    const key = gpa * 4 + (mode >> 5);
    let b = this.cache.get(key);
    if (b !== undefined) {
      if (b.gen === this.gen) return b;
      if (b.stillValid()) {
        b.gen = this.gen;
        if (b.region !== null && !this.regionValid(b.region)) { this.dropJit(b); b.count = 0; }
        return b;
      }
      this.dropJit(b);
      b.kill();
      this.cache.delete(key);
      this.cacheWeight -= weight(b);
    }
    const prof = this.prof;
    if (prof === null) return this.build(gpa, mode, lo, hi);
    const prev = prof[W_STATE]!;
    prof[W_STATE] = (prev & ~0xff) | PH_DECODE;
    try {
      return this.build(gpa, mode, lo, hi);
    } finally {
      prof[W_STATE] = prev;
    }
  }

  /** Re-checks (once per run) the bytes of a region's other blocks; false if one changed. */
  private regionValid(blocks: Block[]): boolean {
    for (const m of blocks) {
      if (!m.valid) return false;
      if (m.gen === this.gen) continue;
      if (!m.stillValid()) return false;
      m.gen = this.gen;
    }
    return true;
  }

  private build(gpa: number, mode: CpuMode, linLo: number, linHi: number): Block {
    const c = this.cpu;
    const src = c.tBytes, off = c.tOff;
    const pageLeft = 4096 - (gpa % 4096);
    const end = off + pageLeft;
    const d = this.dec;
    const insns: Insn[] = [];
    let pos = off;
    while (insns.length < MAX_BLOCK) {
      decode(src, pos, end, mode, d);
      if (d.status === DecodeStatus.Truncated) {
        if (insns.length > 0) break;
        // The first instruction crosses into the next page: a one-instruction block, not cached.
        return this.buildCrossing(src, pos, end, mode, gpa, linLo, linHi);
      }
      const ins = compileInsn(d, new Insn(noop));
      ins.off = (pos - off) | 0;
      insns.push(ins);
      pos += d.length;
      if (ins.term || d.status !== DecodeStatus.Ok) break;
      if (pos >= end) break;
    }
    const b = new Block(gpa, mode, insns, src, off, pos - off, this.gen);
    this.blocksDecoded++;
    this.cacheWeight += weight(b);
    if (this.cacheWeight > CACHE_BUDGET) {
      this.flushCode();
      this.cacheWeight = weight(b);
    }
    const page = Math.floor(gpa / 4096);
    const key = gpa * 4 + (mode >> 5);
    this.cache.set(key, b);
    let keys = this.pageBlocks.get(page);
    if (!keys) { keys = new Set(); this.pageBlocks.set(page, keys); }
    keys.add(key);
    if (!c.codePages.has(page)) c.protectCodePage(page);
    return b;
  }

  private buildCrossing(src: Uint8Array, pos: number, end: number, mode: CpuMode, gpa: number, linLo: number, linHi: number): Block {
    const c = this.cpu;
    const buf = this.crossBuf;
    const first = end - pos;
    buf.set(src.subarray(pos, end), 0);
    const next = (linLo >>> 0) + first;
    c.translate(next | 0, next >= TWO32 ? linHi + 1 : linHi, TLB_FETCH);
    for (let k = first; k < 15; k++) buf[k] = c.tBytes[c.tOff + (k - first)] ?? 0;
    const d = this.dec;
    decode(buf, 0, 15, mode, d);
    const ins = compileInsn(d, new Insn(noop));
    ins.off = 0;
    ins.term = true;
    return new Block(gpa, mode, [ins], buf, 0, Math.min(d.length, 15), this.gen);
  }

  /** Delivers a queued injected event at this instruction boundary (see deliverEvent). */
  private deliverPending(): RunResult | null {
    const e = this.pendingEvent;
    if (!e) return null;
    this.pendingEvent = null;
    this.cpu.halted = false;
    switch (e.type) {
      case 'interrupt': return this.deliverEvent(e.vector, -1, EV_EXT);
      case 'nmi': return this.deliverEvent(EXC_NMI, -1, EV_NMI);
      case 'exception': return this.deliverEvent(e.vector, e.errorCode ?? -1, EV_EXC);
    }
  }

  /**
   * Delivers an event through the IDT: null when delivered, `shutdown` on a triple fault, or the
   * exit delivery ran into (an IDT or stack in MMIO; `ins` is the instruction it happened in).
   */
  private deliverEvent(vector: number, errorCode: number, kind: number, ins: Insn | null = null): RunResult | null {
    try {
      if (!deliver(this.cpu, vector, errorCode, kind)) return { kind: 'shutdown' };
    } catch (e) {
      if (e === CPU_EXIT) return this.takeExit(ins);
      throw e;
    }
    return null;
  }

  /** Runs until an exit. */
  run(): RunResult {
    const c = this.cpu;
    this.gen++;
    // The first block of a run goes through getBlock (and its translate(), which notices remapped memory).
    this.prev = null;
    this.loopMax = this.instructionLimit !== 0 ? 1 : LOOP_MAX;
    this.chainMax = this.instructionLimit !== 0 || this.intWindowExiting || this.nmiWindowExiting || this.trace !== null ? 0 : CHAIN_MAX;
    const prof = this.prof;
    if (prof !== null) prof[W_STATE] = phaseWord(PH_DISPATCH);
    if (Atomics.load(this.stopFlag, 0)) { Atomics.store(this.stopFlag, 0, 0); return { kind: 'stopped' }; }
    const first = this.deliverPending();
    if (first !== null) return first;
    const limit = this.instructionLimit;
    const start = this.icount;
    const dev = c.dev;
    let checks = STOP_CHECK;
    for (;;) {
      if (prof !== null) prof[W_STATE] = phaseWord(PH_DISPATCH);
      if (this.intWindowExiting && (c.fl & FLAG_IF) && !c.intShadow) return { kind: 'interruptWindow' };
      if (this.nmiWindowExiting && !c.nmiBlocked) return { kind: 'nmiWindow' };
      if (dev !== null && (c.fl & FLAG_IF) && !c.intShadow && dev.interruptPending()) {
        const r = this.takeInterrupt(dev);
        if (r !== null) return r;
      }
      checks -= 1 + this.chained;
      this.chainedTotal += this.chained;
      this.chained = 0;
      if (checks <= 0) {
        checks = STOP_CHECK;
        if (prof !== null) this.copyCounts();
        if (Atomics.load(this.stopFlag, 0)) { Atomics.store(this.stopFlag, 0, 0); return { kind: 'stopped' }; }
        if (dev !== null) {
          const now = c.now();
          if (now >= c.devDeadline) c.devDeadline = dev.tick(now);
        }
      }
      if (limit !== 0 && this.icount - start >= limit) return { kind: 'stopped' };
      // RFLAGS.TF: one instruction at a time, each followed by the single-step trap.
      const r = this.debug !== null ? this.debug.step() : (c.fl & FLAG_TF) !== 0 ? this.singleStep() : this.trace !== null ? this.stepTraced() :
        this.shadowHoldsBack(dev) ? this.stepOne() : this.execBlock();
      if (r !== null) return r;
    }
  }

  /**
   * Does the interrupt shadow (after STI, MOV SS, POP SS; ops-sys.ts hPopf too) alone hold back
   * an interrupt, or the window the VMM waits for? Then the next instruction runs by itself, and
   * the loop takes the interrupt at the boundary after it, as x86 does. A whole block, and the
   * compiled regions the dispatcher runs after it, could first clear IF again: a loop of CLI ...
   * STI (Linux's scheduler waiting for another CPU, its runqueue lock taken and dropped with
   * interrupts off) would come back to this loop only where IF is clear or the shadow is up, and
   * never take the interrupt (guests/soft/sti-shadow.asm).
   */
  private shadowHoldsBack(dev: InlineDevices | null): boolean {
    const c = this.cpu;
    return c.intShadow && (c.fl & FLAG_IF) !== 0 && (this.intWindowExiting || (dev !== null && dev.interruptPending()));
  }

  /**
   * Cross-modifying code: another vCPU (another thread) writes guest RAM without this vCPU's
   * write path seeing it, so this one's blocks may be stale. x86 requires the executing CPU to
   * serialize after another modified its code (Linux's text_poke sends every CPU an IPI for
   * that): at IRET and at the delivery of an external interrupt, every block is checked against
   * its bytes again before it next runs, as at the start of each run().
   */
  /** Other vCPUs (other threads) share this one's RAM: see revalidate. */
  crossModify = false;

  private revalidate(): void {
    this.gen++;
    this.prev = null;
  }

  /** Delivers the interrupt the inline controller presents (IF set, no shadow). */
  private takeInterrupt(dev: InlineDevices): RunResult | null {
    if (this.crossModify) this.revalidate();
    else this.prev = null;
    this.cpu.halted = false;
    return this.deliverEvent(dev.acknowledge(), -1, EV_EXT);
  }

  /** The successor of the previous block at the current RIP, if its link still holds. */
  private linked(): Block | null {
    const p = this.prev;
    if (p === null) return null;
    const c = this.cpu;
    const lo = c.ripLo | 0, hi = c.ripHi;
    let s: Block | null;
    if (p.s0Lo === lo && p.s0Hi === hi) s = p.s0;
    else if (p.s1Lo === lo && p.s1Hi === hi) s = p.s1;
    else return null;
    if (s === null || !s.valid || s.gen !== this.gen || s.mode !== c.mode) return null;
    // The fetch TLB must still map this linear address to the block's physical address (CR3
    // writes, INVLPG and CPL changes miss here and take the full lookup).
    const lin = c.long64 ? lo | 0 : ((lo >>> 0) + (c.effBaseLo[S_CS]! >>> 0)) | 0;
    const idx = fetchTlbIndex(lin);
    if (c.tlbTagLo[idx] !== ((lin & ~0xfff) | c.user) || c.tlbTagHi[idx] !== (c.long64 ? hi | 0 : 0)) return null;
    if (c.tlbGpa[idx]! + (lin & 0xfff) !== s.gpa) return null;
    return s;
  }

  /** Executes one block; returns an exit or null to continue. */
  private execBlock(): RunResult | null {
    const c = this.cpu;
    let b = this.linked();
    if (b === null) {
      const p = this.prev;
      const lo = c.ripLo | 0, hi = c.ripHi;
      try {
        b = this.getBlock();
      } catch (e) {
        this.prev = null;
        return this.handleThrow(e, null);
      }
      if (p !== null) {
        if (p.s0 === null || p.s1 !== null) { p.s0 = b; p.s0Lo = lo; p.s0Hi = hi; p.s1 = null; p.s1Lo = -1; }
        else { p.s1 = b; p.s1Lo = lo; p.s1Hi = hi; }
      }
    }
    this.prev = b;
    const prof = this.prof;
    if (prof !== null) { prof[W_RIP_LO] = c.ripLo | 0; prof[W_RIP_HI] = c.ripHi; }
    if (b.jit === null && b.count >= this.jitThreshold && this.jitThreshold >= 0) {
      if (prof === null) this.compile(b);
      else this.compileProfiled(b, prof);
    }
    c.intShadow = false;
    const insns = b.insns;
    const n = insns.length;
    const baseLo = c.ripLo >>> 0;
    c.curHi = c.ripHi;
    const jit = b.jit;
    if (jit !== null) {
      // (The block may be dropped while its code runs: keep what the fault path needs.)
      let region = b.region!, offs = b.regionOffs!;
      const slot = b.slot;
      if (slot >= 0 && this.chainMax !== 0) this.cacheJump(b, baseLo, c.curHi);
      if (prof !== null) prof[W_STATE] = phaseWord(slot >= 0 ? PH_WASM : PH_JS);
      this.jitRuns++;
      try {
        jit(baseLo);
      } catch (e) {
        // The compiled code counted the blocks it completed; c.curLo names the instruction. The
        // dispatcher may have run other regions after b's: C_SLOT names the one that threw.
        let base = baseLo, known = true;
        const at = c.ctl[C_SLOT]!;
        if (slot >= 0 && at !== slot) {
          const t = this.slotBlocks[at];
          if (t != null && t.region !== null) { region = t.region; offs = t.regionOffs!; base = c.ctl[C_BASE]! >>> 0; } else known = false;
        }
        const f = known ? faultIndex(region, offs, c.curLo - base) : null;
        if (f !== null) this.icount += f.k;
        this.prev = null;
        return this.handleThrow(e, f !== null ? f.insn : null);
      }
      if (slot >= 0 && c.ctl[C_SLOT] !== slot) this.prev = this.slotBlocks[c.ctl[C_SLOT]!] ?? null;
    } else {
      let k = 0;
      if (prof !== null) prof[W_STATE] = phaseWord(PH_INTERP);
      try {
        for (; k < n; k++) {
          const ins = insns[k]!;
          const cur = baseLo + ins.off;
          c.curLo = cur;
          c.ripLo = cur + ins.len;
          ins.fn(c, ins);
        }
      } catch (e) {
        this.icount += k;
        this.prev = null;
        return this.handleThrow(e, insns[k] ?? null);
      }
      this.icount += n;
      this.interpreted += n;
      b.count++;
    }
    this.wrapRip();
    return null;
  }

  /** Carries RIP's low half into the high one after code ran past 2^32, and wraps IP in 16-bit code. */
  private wrapRip(): void {
    const c = this.cpu;
    if (c.ripLo >= TWO32) { c.ripLo -= TWO32; c.ripHi = (c.ripHi + 1) | 0; }
    if (c.mode === 16 && !c.long64) c.ripLo &= 0xffff;
  }

  /**
   * Runs one instruction with RFLAGS.TF set at its start, then raises the single-step #DB as a
   * trap (Intel SDM vol. 3, 17.3.1.4): DR6.BS set, the pushed RIP the next instruction's. None
   * when the instruction faulted or delivered an event itself (INT n, INT3, INTO: delivery clears
   * TF), when it ended in an exit, or after MOV SS / POP SS (the trap follows the next instruction).
   */
  private singleStep(): RunResult | null {
    const c = this.cpu;
    this.prev = null;
    const events = c.events;
    c.ssShadow = false;
    const r = this.trace !== null ? this.stepTraced() : this.stepOne();
    if (r !== null || c.events !== events || c.ssShadow) return r;
    c.dr[6] = ((c.dr[6]! | 0x4000) >>> 0);
    return this.deliverEvent(EXC_DB, -1, EV_EXC);
  }

  /** Runs the one instruction at RIP (with the guest's own single-step trap and the trace hook). For debug.ts. */
  stepInstruction(): RunResult | null {
    this.prev = null;
    return (this.cpu.fl & FLAG_TF) !== 0 ? this.singleStep() : this.trace !== null ? this.stepTraced() : this.stepOne();
  }

  /** Executes the instruction at RIP alone (the first of its block). */
  private stepOne(): RunResult | null {
    const c = this.cpu;
    let b: Block;
    try { b = this.getBlock(); } catch (e) { return this.handleThrow(e, null); }
    c.intShadow = false;
    return this.execOne(b.insns[0]!);
  }

  /** Runs `ins`, the instruction at RIP, by its handler: RIP moves past it and it is counted, or its fault or exit is handled. */
  private execOne(ins: Insn): RunResult | null {
    const c = this.cpu;
    c.curLo = c.ripLo >>> 0; c.curHi = c.ripHi;
    c.ripLo = c.curLo + ins.len;
    try {
      ins.fn(c, ins);
    } catch (e) {
      return this.handleThrow(e, ins);
    }
    this.icount++;
    this.interpreted++;
    this.wrapRip();
    return null;
  }

  /**
   * Compiles a hot block with the blocks reachable from it by direct jumps and fall-through that
   * are already decoded, in the same page and mode (a block the compiler cannot improve keeps
   * being interpreted). 64-bit code for WebAssembly joins the batch (BATCH_MAX), unless every
   * block is compiled before its first execution (threshold 0).
   */
  private compile(b: Block): void {
    if (!b.valid || b.jit !== null) return;
    if (b.mode === 64 && wasmCapable(this.cpu)) {
      if (!b.queued) { b.queued = true; this.batch.push(b); }
      if (this.batch.length >= BATCH_MAX || this.jitThreshold === 0 || b.count >= this.jitThreshold + BATCH_WAIT) this.compileBatch();
      return;
    }
    const r = this.region(b);
    if (r === null) { b.count = -(1 << 30); return; }
    this.install(b, r.blocks, r.offsets, compileRegion(r.blocks, r.offsets, this.cpu, this), -1);
  }

  /** Compiles the batch's blocks still worth it (valid, checked in this run, not compiled) into one WebAssembly module. */
  private compileBatch(): void {
    const entries: Block[] = [], regions: Region[] = [];
    for (const b of this.batch) {
      b.queued = false;
      if (!b.valid || b.jit !== null || b.gen !== this.gen) continue;
      const r = this.region(b);
      if (r === null) { b.count = -(1 << 30); continue; }
      entries.push(b);
      regions.push(r);
    }
    this.batch.length = 0;
    if (regions.length === 0) return;
    const c = this.cpu;
    const compiled = compileRegionsWasm(regions, c, this, (k) => compileRegion(regions[k]!.blocks, regions[k]!.offsets, c, this));
    compiled.forEach((x, k) => this.install(entries[k]!, regions[k]!.blocks, regions[k]!.offsets, x.fn, x.slot));
  }

  /** b's region (b first), or null when the compiler can do nothing for b. */
  private region(b: Block): Region | null {
    if (!worthCompiling(b)) return null;
    const blocks = [b], offs = [0];
    if (b.mode !== 16) {
      const page = b.gpa - (b.gpa % 4096);
      const seen = new Set<number>([b.gpa]);
      let size = b.insns.length;
      for (let q = 0; q < blocks.length && blocks.length < MAX_REGION; q++) {
        const x = blocks[q]!;
        const t = x.insns[x.insns.length - 1]!;
        const end = x.gpa + t.off + t.len;
        const next: number[] = [];
        if (t.fn === hJcc || t.fn === hJmpRel) next.push(end + t.rel);
        if (t.fn === hJcc || !t.term) next.push(end);
        for (const g of next) {
          if (g < page || g >= page + 4096 || seen.has(g) || blocks.length >= MAX_REGION) continue;
          seen.add(g);
          const y = this.cache.get(g * 4 + (b.mode >> 5));
          if (y === undefined || !y.valid || y.mode !== b.mode || y.gen !== this.gen || size + y.insns.length > MAX_REGION_INSNS) continue;
          size += y.insns.length;
          blocks.push(y);
          offs.push(g - b.gpa);
        }
      }
    }
    return { blocks, offsets: offs };
  }

  /** b runs `fn` from now on (`slot`: its jit-wasm.ts table slot, or -1). */
  private install(b: Block, blocks: Block[], offsets: number[], fn: JitFn, slot: number): void {
    b.jit = fn;
    b.slot = slot;
    if (slot >= 0) this.slotBlocks[slot] = b;
    b.region = blocks;
    b.regionOffs = offsets;
    this.jitCount++;
  }

  /** The counters, for the profiler. */
  private copyCounts(): void {
    const f = this.profCounts!;
    f[F_INSNS] = this.icount;
    f[F_INTERPRETED] = this.interpreted;
  }

  /** compile() in the profiler's compile phase. */
  private compileProfiled(b: Block, prof: Int32Array): void {
    const prev = prof[W_STATE]!;
    prof[W_STATE] = (prev & ~0xff) | PH_COMPILE;
    try {
      this.compile(b);
    } finally {
      prof[W_STATE] = prev;
    }
  }

  /** A fault or an exit left an instruction: deliver the exception, or report the exit. */
  private handleThrow(e: unknown, ins: Insn | null): RunResult | null {
    const c = this.cpu;
    if (e === CPU_FAULT) {
      // A fault in an instruction rewinds to its start. A fault while fetching a block (ins
      // null: the first fetch after an IRET to a page not yet mapped, say) leaves RIP alone: it
      // already names the instruction that could not be fetched, and curLo is the previous one.
      if (ins !== null) { c.ripLo = c.curLo >>> 0; c.ripHi = c.curHi; }
      return this.deliverEvent(c.faultVector, c.faultCode, EV_EXC, ins);
    }
    if (e === CPU_EXIT) return this.takeExit(ins);
    const msg = e instanceof Error ? e.message : String(e);
    c.ripLo = c.curLo >>> 0; c.ripHi = c.curHi;
    return { kind: 'invalid', reason: `soft CPU internal error at RIP 0x${this.ripString()} (${this.describe(ins)}): ${msg}` };
  }

  /** The exit in c.exit, with RIP placed as NVMM does for its kind. */
  private takeExit(ins: Insn | null = null): RunResult {
    const c = this.cpu;
    const x = c.exit!;
    c.exit = null;
    this.npcLo = c.ripLo >>> 0; this.npcHi = c.ripHi;
    if (this.npcLo >= TWO32) { this.npcLo -= TWO32; this.npcHi = (this.npcHi + 1) | 0; }
    switch (x.kind) {
      case 'halted': case 'tprChanged': case 'stopped':
        break; // RIP after the instruction
      case 'rdmsr': case 'wrmsr': case 'cpuid':
        // RIP stays at the instruction; npc (the backend adds it) is after it.
        c.ripLo = c.curLo >>> 0; c.ripHi = c.curHi;
        break;
      case 'invalid':
        c.ripLo = c.curLo >>> 0; c.ripHi = c.curHi;
        if (x.reason === 'unimplemented' || !x.reason.includes('RIP')) {
          return { kind: 'invalid', reason: `${x.reason === 'unimplemented' ? 'instruction not implemented by the soft CPU' : x.reason}: ${this.describe(ins)} at RIP 0x${this.ripString()}` };
        }
        break;
      default:
        c.ripLo = c.curLo >>> 0; c.ripHi = c.curHi;
        if (x.kind === 'memory') this.lastInsnBytes = this.insnBytes(ins);
    }
    return x;
  }

  /** Next-instruction address of the last exit's instruction. */
  npcLo = 0;
  npcHi = 0;
  /** Bytes of the instruction of the last memory exit. */
  lastInsnBytes: Uint8Array = new Uint8Array(0);

  private ripString(): string {
    const c = this.cpu;
    return ((BigInt(c.ripHi >>> 0) << 32n) | BigInt(c.ripLo >>> 0)).toString(16);
  }

  /** The bytes of `ins` (re-read through the fetch path: the block may have been dropped). */
  private insnBytes(ins: Insn | null): Uint8Array {
    if (!ins) return new Uint8Array(0);
    const c = this.cpu;
    const out = new Uint8Array(ins.len);
    const saveHi = c.hi;
    try {
      for (let k = 0; k < ins.len; k++) {
        const s = (c.curLo >>> 0) + (c.effBaseLo[S_CS]! >>> 0) + k;
        const lo = s % TWO32;
        c.translate(lo | 0, c.long64 ? c.curHi + (s >= TWO32 ? 1 : 0) : 0, TLB_FETCH);
        out[k] = c.tBytes[c.tOff]!;
      }
    } catch { /* unreadable: keep what we have */ }
    c.hi = saveHi;
    return out;
  }

  private describe(ins: Insn | null): string {
    if (!ins) return 'instruction fetch';
    const bytes = Array.from(this.insnBytes(ins), (b) => b.toString(16).padStart(2, '0')).join(' ');
    return `'${MNEMONICS[ins.mnem] ?? '?'}' [${bytes}]`;
  }

  // ------------------------------------------------------------------------------------------
  // Tracing: one instruction at a time, with the changed registers.

  private readonly before = new Int32Array(36);

  private stepTraced(): RunResult | null {
    const c = this.cpu;
    let b: Block;
    try { b = this.getBlock(); } catch (e) { return this.handleThrow(e, null); }
    c.intShadow = false;
    const ins = b.insns[0]!;
    const rip = (BigInt(c.ripHi >>> 0) << 32n) | BigInt(c.ripLo >>> 0);
    c.curLo = c.ripLo >>> 0; c.curHi = c.ripHi;
    const bytes = this.insnBytes(Object.assign(new Insn(noop), { len: ins.len }));
    const before = this.before;
    before.set(c.regs);
    before[32] = c.ripLo | 0; before[33] = c.ripHi; before[34] = c.getRflags() | 0;
    const r = this.execOne(ins);
    const changed: Record<string, bigint> = {};
    const big = (lo: number, hi: number) => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    for (let k = 0; k < 16; k++) {
      if (c.regs[2 * k] !== before[2 * k] || c.regs[2 * k + 1] !== before[2 * k + 1]) changed[REG_NAMES[k]!] = big(c.regs[2 * k]!, c.regs[2 * k + 1]!);
    }
    const fl = c.getRflags();
    if ((fl | 0) !== before[34]) changed.rflags = BigInt(fl >>> 0);
    let text: string;
    try { text = disasmOne(bytes, 0, bytes.length, b.mode as CpuMode, rip).text; } catch { text = MNEMONICS[ins.mnem] ?? '?'; }
    this.trace!({ rip, bytes, text, changed });
    return r;
  }
}

function noop(): void {}
