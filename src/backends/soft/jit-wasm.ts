/**
 * The soft CPU's block compiler, WebAssembly flavour: the same regions as jit.ts (a hot block and
 * the already-decoded blocks of its page it reaches by direct jumps and fall-through), the same
 * instructions compiled inline and the same lazy-flag scheme, emitted as one WebAssembly function
 * per region instead of JS source.
 *
 * Why: V8 runs a JS region in its baseline tier until TurboFan has compiled it (tens of ms per
 * region on a background thread), and deoptimizes it whenever a path it never saw runs (a TLB
 * miss, a block not taken during warm-up). A WebAssembly function is compiled by Liftoff at its
 * first call (well under a millisecond), never deoptimizes, and has 64-bit integers.
 *
 * What it needs: everything the code touches in one WebAssembly.Memory, the arena (arena.ts): the
 * vCPU's registers, segment bases and TLB tags (Cpu built with `arena`), a per-vCPU control
 * block (ctl, below), and guest RAM allocated there. A TLB entry whose page is elsewhere has
 * tlbAddr 0 and takes the slow path.
 *
 * The contract with the rest of the CPU is jit.ts's: registers live in memory (c.regs is a view of
 * the arena), so handlers and faults see them; before anything that may fault or look at flags
 * the code "spills" (pending flag producer and completed-block count into ctl) and the JS side
 * moves them into c.lz and the executor's icount; slow paths and handlers are JS imports that set
 * c.curLo / c.ripLo first, so a fault (a JS exception unwinding through the WebAssembly frame)
 * rolls back as it does for jit.ts. Only 64-bit code is compiled here; other modes use jit.ts.
 *
 * The binary format itself (LEB128, bodies, sections) is wasm-encoder.ts's; this file decides what
 * the modules hold.
 *
 * Each vCPU has a hub module: it carries the JS imports for every region (hubModule), and its
 * dispatch() runs regions one after another through a table and a jump cache in the arena, so
 * that going from one compiled region to the next does not pass through JS (dispatchBody).
 *
 * The hub's exports take a v128 parameter (see JS_SIGS), so this compiler needs WebAssembly SIMD.
 * V8 has none on x86 CPUs without SSE4.1 (QEMU's qemu64 model, for one): there wasmSimd() is
 * false and the soft CPU compiles with jit.ts instead (SoftBackend.jitKind, exec.ts usableJitKind).
 */
import { LAZY_ADC, LAZY_ADD, LAZY_DEC, LAZY_INC, LAZY_LOGIC, LAZY_SBB, LAZY_SUB } from '../../x86/alu.js';
import { FLAG_AF, FLAG_CF, FLAG_OF, FLAG_PF, FLAG_SF, FLAG_ZF } from '../../x86/flags.js';
import { arenaMemory } from './arena.js';
import { ARENA_CTL, ARENA_EFFBASE, ARENA_JC, ARENA_PARITY, ARENA_REGS, ARENA_TLB_ADDR, ARENA_TLB_HI, ARENA_TLB_LO, JC_ENTRIES, TLB_FETCH, TLB_SIZE, type Cpu } from './cpu.js';
import { IMM, MEM, type Handler, type Insn } from './insn.js';
import { ALU_ADC, ALU_ADD, ALU_AND, ALU_CMP, ALU_OR, ALU_SBB, ALU_SUB, classify, flushPending, liveness, mayWriteMemory, type Info, type JitBlock, type JitFn, type JitHost } from './jit.js';
import * as I from './ops-int.js';
import * as S from './ops-sse.js';
import { hMovFromSeg, hPushf } from './ops-sys.js';
import {
  Body, ByteWriter, EXT_FUNC, EXT_MEMORY, EXT_TABLE, FUNCREF, ModuleWriter, OP, SEC_IMPORT, T_I32, T_I64, T_V128, T_VOID, type Signature,
} from './wasm-encoder.js';

// ---- the control block (Int32Array indices into Cpu.ctl) ----
/** Spilled flag producer: pending?, op, size, a (lo, hi), b (lo, hi), r (lo, hi), aux. */
const C_FQ = 0, C_FO = 1, C_FS = 2, C_FA = 3, C_FB = 5, C_FR = 7, C_FX = 9;
/** Completed instructions not yet added to the executor's icount. */
const C_IC = 10;
/** RIP where the region stopped (status 0), lo and hi. */
const C_RIP = 11;
/** The high half of a 64-bit slow-path read. */
const C_HI = 13;
/** c.user after a handler ran; at entry, with the entry's RIP and the transfer budget. */
const C_US = 14;
/** Bumped whenever decoded code is dropped (a write to a code page): regions stop looping. */
export const C_EPOCH = 15;
/** Entry: RIP low and high half, transfer budget (arguments in memory: int32 arguments outside V8's small-integer range are boxed per call). */
export const C_BASE = 16;
const C_BH = 17, C_LIM = 18;
/** The table slot of the running region (fb's instructions, a fault's region). */
export const C_SLOT = 19;
/** Set by the slow paths (handlers, slow reads and writes): the run loop must look before more regions run. */
const C_ATTN = 20;
/** The dispatcher's budget of regions, and the count it ran. */
const C_CHAIN = 21, C_CHAINED = 22;

/** Import entries for the hub's functions (fb ... szapo, of IMPORT_SIGS) and the arena, all from module 'e'. */
function importFunctionsAndArena(w: ByteWriter): void {
  IMPORTS.forEach((nm, k) => { w.name('e').name(nm).byte(EXT_FUNC).uleb(IMPORT_SIGS[k]!); });
  w.name('e').name('mem').byte(EXT_MEMORY).byte(0x03).uleb(1).uleb(65536); // shared, min 1 page, max 65536
}

/** Imported functions (indices 0..), the module's helpers, then its regions' run() functions from F_RUNS. */
const F_FB = 0, F_RD = 1, F_WR = 2, F_COND = 3, F_CF = 4, F_SZAPO_LZ = 5, F_SPILL = 6, F_MULHU = 7, F_SZAP = 8, F_CFP = 9, F_RUNS = 10;
const IMPORTS = ['fb', 'rd', 'wr', 'cond', 'cf', 'szapo'];

/**
 * The JS functions' signatures: fb, rd, wr, cond, and () -> i32 (cf, szapo). Regions do not import
 * them: V8 (11.3) compiles a call wrapper for every JS-compatible imported signature of every
 * module it compiles, with TurboFan, about 0.15 ms per region. Each vCPU's hub module imports them
 * once and re-exports each as a WebAssembly function with a trailing v128 parameter, which no JS
 * function can have: regions import those (a direct call, nothing to compile) and pass a zero.
 */
const JS_SIGS: Signature[] = [
  [[T_I32, T_I32, T_I32], [T_I32]],
  [[T_I32, T_I32, T_I32, T_I32, T_I32], [T_I32]],
  [[T_I32, T_I32, T_I32, T_I32, T_I32, T_I32, T_I32], []],
  [[T_I32], [T_I32]],
  [[], [T_I32]],
];
/** The hub's exports: the same with the v128. */
const HUB_SIGS = JS_SIGS.map(([p, r]): Signature => [[...p, T_V128], r]);
/** Signature of each import (fb rd wr cond cf szapo) in JS_SIGS and HUB_SIGS. */
const IMPORT_SIGS = [0, 1, 2, 3, 4, 4];

/** A module's type section: 0-4 HUB_SIGS, 5 () -> i32 (run), 6 spill, 7 mulhu, 8 szap of a producer, 9 its CF. */
const TYPES: Signature[] = [
  ...HUB_SIGS,
  [[], [T_I32]],
  [[T_I32, T_I32, T_I32, T_I64, T_I64, T_I64, T_I32, T_I32], []],
  [[T_I64, T_I64], [T_I64]],
  [[T_I32, T_I32, T_I64, T_I64, T_I64, T_I32], [T_I32]],
  [[T_I32, T_I64, T_I64, T_I64, T_I32], [T_I32]],
];
/** Types of the module's helpers (spill, mulhu, szap, cfp) and of each region's run(). */
const HELPER_TYPES = [6, 7, 8, 9];
const T_RUN = 5;

const SZAP = FLAG_SF | FLAG_ZF | FLAG_AF | FLAG_PF;
/** Bit positions of ZF, SF and OF (the code shifts 0/1 values into place). */
const ZF_BIT = 6, SF_BIT = 7, OF_BIT = 11;

/** spill(fq, fo, fs, fa, fb, fr, fx, ic): the pending producer (if any) and the count into ctl. */
function spillBody(ctl: number): Body {
  const f = new Body(8);
  f.get(0).op(OP.if, T_VOID);
  f.i32(0).i32(1).mem(OP.i32store, 2, ctl + 4 * C_FQ);
  f.i32(0).get(1).mem(OP.i32store, 2, ctl + 4 * C_FO);
  f.i32(0).get(2).mem(OP.i32store, 2, ctl + 4 * C_FS);
  f.i32(0).get(3).mem(OP.i64store, 2, ctl + 4 * C_FA);
  f.i32(0).get(4).mem(OP.i64store, 2, ctl + 4 * C_FB);
  f.i32(0).get(5).mem(OP.i64store, 2, ctl + 4 * C_FR);
  f.i32(0).get(6).mem(OP.i32store, 2, ctl + 4 * C_FX);
  f.op(OP.end);
  f.i32(0).i32(0).mem(OP.i32load, 2, ctl + 4 * C_IC).get(7).op(OP.i32add).mem(OP.i32store, 2, ctl + 4 * C_IC);
  return f;
}

/** mulhu(a, b): the high 64 bits of the unsigned 128-bit product. */
function mulhuBody(): Body {
  const f = new Body(2);
  const al = f.local(T_I64), ah = f.local(T_I64), bl = f.local(T_I64), bh = f.local(T_I64), ll = f.local(T_I64), lh = f.local(T_I64), hl = f.local(T_I64);
  const M = 0xffffffffn;
  f.get(0).i64(M).op(OP.i64and).set(al).get(0).i64(32n).op(OP.i64shru).set(ah);
  f.get(1).i64(M).op(OP.i64and).set(bl).get(1).i64(32n).op(OP.i64shru).set(bh);
  f.get(al).get(bl).op(OP.i64mul).set(ll);
  f.get(al).get(bh).op(OP.i64mul).set(lh);
  f.get(ah).get(bl).op(OP.i64mul).set(hl);
  // mid = (ll >> 32) + (lh & M) + (hl & M); hi = ah*bh + (lh >> 32) + (hl >> 32) + (mid >> 32)
  f.get(ah).get(bh).op(OP.i64mul);
  f.get(lh).i64(32n).op(OP.i64shru, OP.i64add);
  f.get(hl).i64(32n).op(OP.i64shru, OP.i64add);
  f.get(ll).i64(32n).op(OP.i64shru).get(lh).i64(M).op(OP.i64and, OP.i64add).get(hl).i64(M).op(OP.i64and, OP.i64add);
  f.i64(32n).op(OP.i64shru, OP.i64add);
  return f;
}

/**
 * szap(fo, fs, fa, fb, fr, fx): SF ZF AF PF of a pending producer in the LazyFlags encoding
 * (x86/alu.ts): from the result, AF from a ^ b ^ r (clear after a logic op), or the eager bits.
 */
function szapBody(arena: number): Body {
  const f = new Body(6);
  f.get(0).op(OP.i32eqz).op(OP.if, T_VOID).get(5).i32(SZAP).op(OP.i32and, OP.return, OP.end);
  // ZF
  f.get(4).op(OP.i64eqz).i32(ZF_BIT).op(OP.i32shl);
  // SF: bit (8 * size - 1) of r
  f.get(4).get(1).i32(3).op(OP.i32shl).i32(1).op(OP.i32sub, OP.i64extu, OP.i64shru, OP.i32wrap).i32(1).op(OP.i32and).i32(SF_BIT).op(OP.i32shl, OP.i32or);
  // PF
  f.get(4).op(OP.i32wrap).i32(255).op(OP.i32and).mem(OP.i32load8u, 0, arena + ARENA_PARITY).op(OP.i32or);
  // AF (not after LOGIC)
  f.get(2).get(3).op(OP.i64xor).get(4).op(OP.i64xor, OP.i32wrap).i32(FLAG_AF).op(OP.i32and).i32(0).get(0).i32(LAZY_LOGIC).op(OP.i32ne, OP.select, OP.i32or);
  return f;
}

/** cfp(fo, fa, fb, fr, fx): CF of a pending producer in the LazyFlags encoding (x86/alu.ts lazyCarry). */
function cfpBody(): Body {
  const f = new Body(5);
  const ret = (): void => { f.op(OP.return, OP.end); };
  f.get(0).op(OP.i32eqz, OP.if, T_VOID).get(4).i32(1).op(OP.i32and); ret(); // EAGER (0)
  f.get(0).i32(LAZY_LOGIC).op(OP.i32eq, OP.if, T_VOID).i32(0); ret();
  f.get(0).i32(LAZY_INC).op(OP.i32geu, OP.if, T_VOID).get(4); ret(); // INC, DEC (the last two): CF before
  f.get(0).i32(LAZY_SUB).op(OP.i32ltu, OP.if, T_VOID); // ADD, ADC: r < a, or r == a with a carry-in
  f.get(3).get(1).op(OP.i64ltu).get(0).i32(LAZY_ADC).op(OP.i32eq).get(4).op(OP.i32and).get(3).get(1).op(OP.i64eq, OP.i32and, OP.i32or); ret();
  // SUB, SBB: a < b, or a == b with a borrow-in
  f.get(1).get(2).op(OP.i64ltu).get(0).i32(LAZY_SBB).op(OP.i32eq).get(4).op(OP.i32and).get(1).get(2).op(OP.i64eq, OP.i32and, OP.i32or);
  return f;
}

/** The last flag producer of the block: locals holding its (zero-extended) operands and result. */
interface Producer {
  kind: 'add' | 'adc' | 'sub' | 'sbb' | 'logic' | 'inc' | 'dec' | 'eager';
  size: number;
  /** i64 locals (eager: `r` is the i32 flags local). */
  a: number; b: number; r: number;
  /** i32 local: the carry-in of ADC/SBB, CF before INC/DEC; -1 none. */
  cf: number;
}

const MASK64 = [0n, 0xffn, 0xffffn, 0n, 0xffffffffn, 0n, 0n, 0n, 0xffffffffffffffffn];

/** Compiles one region into a WebAssembly function body. */
/** Buffers reused by every compilation (one at a time, on the vCPU's thread): a region's code, the code section, the module. */
const scratchBody = new ByteWriter(8192), scratchCode = new ByteWriter(32768), scratchModule = new ByteWriter(32768);

class RegionCompiler {
  readonly f = new Body(0, scratchBody);
  /** Entry state (from ctl): base (RIP low half of the entry), bh (its high half), lim (transfer budget), us (user bit). */
  readonly pBase: number; readonly pBh: number; readonly pLim: number; readonly us: number;
  readonly pc: number; readonly ic: number; readonly fq: number; readonly fo: number; readonly fs: number; readonly fx: number;
  readonly ep: number; readonly x: number; readonly t: number; readonly e32: number;
  readonly fa: number; readonly fb: number; readonly fr: number; readonly el: number; readonly rb: number;
  /** Zero, the v128 every call to an import passes. */
  readonly zv: number;
  /** Open structured blocks between the current code and the block's own label region (br depth to the loop = nest + depth). */
  depth = 0;
  prod: Producer | null = null;
  // Per block:
  insns: Insn[] = [];
  d = 0;
  /** br depth from a block's top level to the dispatch loop. */
  nest = 0;
  mayWrite = false;

  constructor(readonly ctl: number, readonly arena: number, readonly blocks: JitBlock[], readonly offsets: number[], readonly index: Map<number, number>) {
    const f = this.f;
    this.pBase = f.local(T_I32); this.pBh = f.local(T_I32); this.pLim = f.local(T_I32); this.us = f.local(T_I32);
    this.pc = f.local(T_I32); this.ic = f.local(T_I32); this.fq = f.local(T_I32); this.fo = f.local(T_I32); this.fs = f.local(T_I32);
    this.fx = f.local(T_I32); this.ep = f.local(T_I32); this.x = f.local(T_I32); this.t = f.local(T_I32); this.e32 = f.local(T_I32);
    this.fa = f.local(T_I64); this.fb = f.local(T_I64); this.fr = f.local(T_I64); this.el = f.local(T_I64); this.rb = f.local(T_I64);
    this.zv = f.local(T_V128);
  }

  /** Calls an import (fb rd wr cond cf szapo) with its arguments pushed: adds the v128. */
  private callOut(fn: number): void {
    this.f.get(this.zv).call(fn);
  }

  private get regs(): number { return this.arena + ARENA_REGS; }

  /** Spills the pending flags and count (before a call that may fault or read flags). */
  private spill(): void {
    const f = this.f;
    f.get(this.fq).get(this.fo).get(this.fs).get(this.fa).get(this.fb).get(this.fr).get(this.fx).get(this.ic).call(F_SPILL);
    f.i32(0).set(this.fq).i32(0).set(this.ic);
  }

  /** Pushes i32 base + off (the low half of a RIP in this region). */
  private ripLo(off: number): void { this.f.get(this.pBase).i32(off).op(OP.i32add); }

  /** Stops: RIP := rb + off (region-relative), status 0. */
  private exitAt(off: number): void {
    this.f.get(this.rb).i64(BigInt(off)).op(OP.i64add).set(this.el);
    this.exitAtLocal(this.el);
  }

  /** Stops with RIP (i64) from local `l`, status 0. */
  private exitAtLocal(l: number): void {
    const f = this.f;
    this.spill();
    f.i32(0).get(l).mem(OP.i64store, 2, this.ctl + 4 * C_RIP);
    f.i32(0).op(OP.return);
  }

  /** Stops with RIP already in the Cpu (a handler set it), status 1. */
  private exitInCpu(): void {
    this.spill();
    this.f.i32(1).op(OP.return);
  }

  private countBlock(): void {
    this.f.get(this.ic).i32(this.insns.length).op(OP.i32add).set(this.ic);
  }

  /** If budget and code are still good, continue at member `to` (br to the loop); else fall through. */
  private tryContinue(to: number): void {
    const f = this.f;
    const j = this.index.get(to);
    if (j === undefined) return;
    f.get(this.pLim).i32(1).op(OP.i32sub).tee(this.pLim).i32(0).op(OP.i32gts);
    if (this.mayWrite) f.i32(0).mem(OP.i32load, 2, this.ctl + 4 * C_EPOCH).get(this.ep).op(OP.i32eq, OP.i32and);
    f.op(OP.if, T_VOID);
    this.depth++;
    f.i32(j).set(this.pc).br(this.nest + this.depth);
    this.depth--;
    f.op(OP.end);
  }

  // ---- operands ----

  /** Pushes the effective address (no segment base) of i's memory operand, 64-bit addressing. */
  private offset64(i: Insn): void {
    const f = this.f;
    f.i64((BigInt(i.dispHi | 0) << 32n) | BigInt(i.disp >>> 0));
    if (i.base === 16) f.get(this.rb).i64(BigInt(this.d + i.off + i.len)).op(OP.i64add, OP.i64add);
    else if (i.base >= 0) f.i32(0).mem(OP.i64load, 3, this.regs + 8 * i.base).op(OP.i64add);
    if (i.index >= 0) {
      f.i32(0).mem(OP.i64load, 3, this.regs + 8 * i.index);
      if (i.scale > 1) f.i64(BigInt(Math.log2(i.scale))).op(OP.i64shl);
      f.op(OP.i64add);
    }
  }

  /** Linear address of i's memory operand (64-bit addressing) into el and e32. */
  private ea(i: Insn): void {
    const f = this.f;
    this.offset64(i);
    if (i.seg >= 4) {
      const eb = this.arena + ARENA_EFFBASE;
      f.i32(0).mem(OP.i64load32u, 2, eb + 4 * i.seg).i32(0).mem(OP.i64load32u, 2, eb + 24 + 4 * i.seg).i64(32n).op(OP.i64shl, OP.i64or, OP.i64add);
    }
    f.tee(this.el).op(OP.i32wrap).set(this.e32);
  }

  /** Pushes the TLB hit test for an access of `size` at el (kind 0 read, 1 write); leaves the page address in t. */
  private hit(kind: number, size: number): void {
    const f = this.f;
    const a = this.arena;
    f.get(this.e32).i32(12).op(OP.i32shru).i32(TLB_SIZE - 1).op(OP.i32and).i32(2).op(OP.i32shl).set(this.x);
    f.get(this.x).mem(OP.i32load, 2, a + ARENA_TLB_LO + kind * 4 * TLB_SIZE).get(this.e32).i32(-4096).op(OP.i32and).get(this.us).op(OP.i32or, OP.i32eq);
    f.get(this.x).mem(OP.i32load, 2, a + ARENA_TLB_HI + kind * 4 * TLB_SIZE).get(this.el).i64(32n).op(OP.i64shru, OP.i32wrap, OP.i32eq, OP.i32and);
    if (size > 1) f.get(this.e32).i32(4095).op(OP.i32and).i32(4096 - size).op(OP.i32leu, OP.i32and);
    f.get(this.x).mem(OP.i32load, 2, a + ARENA_TLB_ADDR + kind * 4 * TLB_SIZE).tee(this.t).i32(0).op(OP.i32ne, OP.i32and);
  }

  /** Pushes the host address of el (after hit()). */
  private hostAddr(): void {
    this.f.get(this.t).get(this.e32).i32(4095).op(OP.i32and, OP.i32add);
  }

  /** Sets the RIP state of instruction k for a call into JS: pushes cur, rip (i32). */
  private curRip(i: Insn): void {
    this.ripLo(this.d + i.off);
    this.ripLo(this.d + i.off + i.len);
  }

  /** Loads `size` bytes at el into i64 local dst (zero-extended). */
  private load(i: Insn, size: number, dst: number): void {
    const f = this.f;
    this.hit(0, size);
    f.op(OP.if, T_I64);
    this.hostAddr();
    f.mem(size === 1 ? OP.i64load8u : size === 2 ? OP.i64load16u : size === 4 ? OP.i64load32u : OP.i64load, 0, 0);
    f.op(OP.else);
    this.spill();
    f.i32(size).get(this.e32).get(this.el).i64(32n).op(OP.i64shru, OP.i32wrap);
    this.curRip(i);
    this.callOut(F_RD);
    f.op(OP.i64extu);
    if (size === 8) f.i32(0).mem(OP.i64load32u, 2, this.ctl + 4 * C_HI).i64(32n).op(OP.i64shl, OP.i64or);
    f.op(OP.end).set(dst);
  }

  /** Stores the low `size` bytes of i64 local v at el. */
  private store(i: Insn, size: number, v: number): void {
    const f = this.f;
    this.hit(1, size);
    f.op(OP.if, T_VOID);
    this.hostAddr();
    f.get(v).mem(size === 1 ? OP.i64store8 : size === 2 ? OP.i64store16 : size === 4 ? OP.i64store32 : OP.i64store, 0, 0);
    f.op(OP.else);
    this.spill();
    f.i32(size).get(this.e32).get(this.el).i64(32n).op(OP.i64shru, OP.i32wrap);
    f.get(v).op(OP.i32wrap).get(v).i64(32n).op(OP.i64shru, OP.i32wrap);
    this.curRip(i);
    this.callOut(F_WR);
    f.op(OP.end);
  }

  /** Reads register r (0-15, 16-19 AH..BH) of `size`, zero-extended, onto the stack. */
  private regRead(r: number, size: number): void {
    const f = this.f;
    if (size === 1) {
      if (r < 16) f.i32(0).mem(OP.i64load8u, 0, this.regs + 8 * r);
      else f.i32(0).mem(OP.i64load8u, 0, this.regs + 8 * (r - 16) + 1);
    } else f.i32(0).mem(size === 2 ? OP.i64load16u : size === 4 ? OP.i64load32u : OP.i64load, size === 2 ? 1 : size === 4 ? 2 : 3, this.regs + 8 * r);
  }

  /** Register r of `size` := i64 local v (size 4 zero-extends to 64 bits, 1 and 2 merge). */
  private regWrite(r: number, size: number, v: number): void {
    const f = this.f;
    f.i32(0).get(v);
    switch (size) {
      case 1: f.mem(OP.i64store8, 0, this.regs + (r < 16 ? 8 * r : 8 * (r - 16) + 1)); break;
      case 2: f.mem(OP.i64store16, 1, this.regs + 8 * r); break;
      case 4: f.i64(0xffffffffn).op(OP.i64and).mem(OP.i64store, 3, this.regs + 8 * r); break;
      default: f.mem(OP.i64store, 3, this.regs + 8 * r);
    }
  }

  /** Operand `code` of `size` into a fresh i64 local (EA already in el for MEM). */
  private operand(i: Insn, code: number, size: number): number {
    const f = this.f;
    const l = f.local(T_I64);
    if (code >= 0) { this.regRead(code, size); f.set(l); }
    else if (code === IMM) {
      const v = size === 8 ? (BigInt(i.immHi | 0) << 32n) | BigInt(i.imm >>> 0) : BigInt(i.imm >>> 0) & MASK64[size]!;
      f.i64(v).set(l);
    } else this.load(i, size, l);
    return l;
  }

  private writeOperand(i: Insn, code: number, size: number, v: number): void {
    if (code >= 0) this.regWrite(code, size, v);
    else this.store(i, size, v);
  }

  private mask(size: number): void {
    if (size !== 8) this.f.i64(MASK64[size]!).op(OP.i64and);
  }

  /** Makes (op, a, b, r[, aux]) the pending producer. */
  private record(op: number, size: number, a: number, b: number, r: number, aux: number): void {
    const f = this.f;
    f.i32(1).set(this.fq).i32(op).set(this.fo).i32(size).set(this.fs);
    f.get(a).set(this.fa).get(b).set(this.fb).get(r).set(this.fr);
    if (aux >= 0) f.get(aux).set(this.fx);
  }

  // ---- flags ----

  /** Pushes CF (i32 0/1). */
  private carry(): void {
    const f = this.f;
    const p = this.prod;
    if (p !== null) {
      switch (p.kind) {
        case 'sub': f.get(p.a).get(p.b).op(OP.i64ltu); return;
        case 'add': f.get(p.r).get(p.a).op(OP.i64ltu); return;
        case 'adc': f.get(p.r).get(p.a).op(OP.i64ltu).get(p.cf).get(p.r).get(p.a).op(OP.i64eq, OP.i32and, OP.i32or); return;
        case 'sbb': f.get(p.a).get(p.b).op(OP.i64ltu).get(p.cf).get(p.a).get(p.b).op(OP.i64eq, OP.i32and, OP.i32or); return;
        case 'logic': f.i32(0); return;
        case 'eager': f.get(p.r).i32(1).op(OP.i32and); return;
        default: if (p.cf >= 0) { f.get(p.cf); return; }
      }
    }
    // The producer ran in an earlier block: from the pending locals, or from c.lz.
    f.get(this.fq).op(OP.if, T_I32);
    f.get(this.fo).get(this.fa).get(this.fb).get(this.fr).get(this.fx).call(F_CFP);
    f.op(OP.else);
    this.spill();
    this.callOut(F_CF);
    f.op(OP.end);
  }

  /** Pushes SF ZF AF PF of the flags before this instruction (i32 flag bits). */
  private szapIn(): void {
    const f = this.f;
    const p = this.prod;
    if (p !== null) {
      if (p.kind === 'eager') { f.get(p.r).i32(SZAP).op(OP.i32and); return; }
      this.zsp(p.r, p.size);
      if (p.kind !== 'logic') f.get(p.a).get(p.b).op(OP.i64xor).get(p.r).op(OP.i64xor, OP.i32wrap).i32(FLAG_AF).op(OP.i32and, OP.i32or);
      return;
    }
    // From the pending locals, or from c.lz when nothing is pending.
    f.get(this.fq).op(OP.if, T_I32);
    f.get(this.fo).get(this.fs).get(this.fa).get(this.fb).get(this.fr).get(this.fx).call(F_SZAP);
    f.op(OP.else);
    this.spill();
    this.callOut(F_SZAPO_LZ);
    f.i32(SZAP).op(OP.i32and);
    f.op(OP.end);
  }

  /** Pushes SF ZF AF PF and OF of the flags before this instruction (i32 flag bits). */
  private szapoIn(): void {
    const f = this.f;
    if (this.prod === null) {
      // From the pending locals or c.lz: the JS import has them all (one call, not two).
      this.spill();
      this.callOut(F_SZAPO_LZ);
      return;
    }
    this.szapIn();
    this.cond(0); f.i32(OF_BIT).op(OP.i32shl, OP.i32or);
  }

  /**
   * MUL / IMUL flags with live flags: CF = OF = i32 `ovf`, SF ZF AF PF kept from before (the
   * interpreter's choice for these undefined flags, x86/alu.ts mulFlags); an eager producer.
   */
  private mulFlags(ovf: number, size: number): void {
    const f = this.f;
    const fl = f.local(T_I32);
    this.szapIn();
    f.i32(FLAG_CF | FLAG_OF).i32(0).get(ovf).op(OP.select, OP.i32or).set(fl);
    this.recordEager(fl, size, true);
  }

  /** Pushes sign bit of i64 local v at operand size (i32 0/1). */
  private sign(v: number, size: number): void {
    this.f.get(v);
    this.topBit(size);
  }

  /** Replaces the i64 on the stack by its bit 8 * size - 1 (i32 0/1). */
  private topBit(size: number): void {
    this.f.i64(BigInt(size * 8 - 1)).op(OP.i64shru).i64(1n).op(OP.i64and, OP.i32wrap);
  }

  /** Pushes PARITY[low byte of i64 local r] (PF's bit, or 0). */
  private parity(r: number): void {
    this.f.get(r).op(OP.i32wrap).i32(255).op(OP.i32and).mem(OP.i32load8u, 0, this.arena + ARENA_PARITY);
  }

  /** Pushes ZF | SF | PF (flag bits) of the result in i64 local r. */
  private zsp(r: number, size: number): void {
    const f = this.f;
    f.get(r).op(OP.i64eqz).i32(ZF_BIT).op(OP.i32shl);
    this.sign(r, size); f.i32(SF_BIT).op(OP.i32shl, OP.i32or);
    this.parity(r); f.op(OP.i32or);
  }

  /** Makes the i32 flags in local fl the pending producer (eager); `named`: conditions may read fl. */
  private recordEager(fl: number, size: number, named: boolean): void {
    this.f.i32(1).set(this.fq).i32(0).set(this.fo).get(fl).set(this.fx);
    this.prod = named ? { kind: 'eager', size, a: -1, b: -1, r: fl, cf: -1 } : null;
  }

  private signExtend(size: number): void {
    if (size === 1) this.f.op(OP.i64ext8s);
    else if (size === 2) this.f.op(OP.i64ext16s);
    else if (size === 4) this.f.op(OP.i64ext32s);
  }

  /** Pushes OF (0/1) of an add or sub producer. */
  private overflow(p: Producer): void {
    const f = this.f;
    // sub: (a ^ b) & (a ^ r); add: (a ^ r) & (b ^ r); the sign bit of that.
    if (p.kind === 'sub') f.get(p.a).get(p.b).op(OP.i64xor).get(p.a).get(p.r).op(OP.i64xor, OP.i64and);
    else f.get(p.a).get(p.r).op(OP.i64xor).get(p.b).get(p.r).op(OP.i64xor, OP.i64and);
    this.topBit(p.size);
  }

  /** Pushes condition cc (i32 0/1). */
  private cond(cc: number): void {
    const f = this.f;
    const p = this.prod;
    if (p === null || !this.condFrom(p, cc & ~1)) {
      this.spill();
      f.i32(cc);
      this.callOut(F_COND);
      return;
    }
    if (cc & 1) f.op(OP.i32eqz);
  }

  /** Emits condition cc (even) from producer p; false (nothing emitted) if it cannot. */
  private condFrom(p: Producer, cc: number): boolean {
    const f = this.f;
    if (p.kind === 'eager') {
      const bits = cc === 0 ? FLAG_OF : cc === 2 ? FLAG_CF : cc === 4 ? FLAG_ZF : cc === 6 ? FLAG_CF | FLAG_ZF : cc === 8 ? FLAG_SF : cc === 10 ? FLAG_PF : -1;
      if (bits >= 0) { f.get(p.r).i32(bits).op(OP.i32and).i32(0).op(OP.i32ne); return true; }
      // SF != OF (12), or ZF or SF != OF (14)
      f.get(p.r).i32(SF_BIT).op(OP.i32shru).get(p.r).i32(OF_BIT).op(OP.i32shru, OP.i32xor).i32(1).op(OP.i32and);
      if (cc === 14) f.get(p.r).i32(ZF_BIT).op(OP.i32shru).i32(1).op(OP.i32and, OP.i32or);
      return true;
    }
    const z = () => f.get(p.r).op(OP.i64eqz);
    const s = () => this.sign(p.r, p.size);
    if (cc === 4) { z(); return true; }
    if (cc === 8) { s(); return true; }
    if (cc === 10) { this.parity(p.r); f.i32(0).op(OP.i32ne); return true; }
    if (p.kind === 'logic') {
      switch (cc) {
        case 0: case 2: f.i32(0); return true;
        case 6: z(); return true;
        case 12: s(); return true;
        default: z(); s(); f.op(OP.i32or); return true;
      }
    }
    if (cc === 2 && (p.kind === 'adc' || p.kind === 'sbb' || p.kind === 'add')) { this.carry(); return true; }
    if (p.kind === 'add') {
      switch (cc) {
        case 0: this.overflow(p); return true;
        case 6: this.carry(); z(); f.op(OP.i32or); return true;
        case 12: s(); this.overflow(p); f.op(OP.i32xor); return true;
        case 14: z(); s(); this.overflow(p); f.op(OP.i32xor, OP.i32or); return true;
      }
      return false;
    }
    if (p.kind !== 'sub') return false;
    switch (cc) {
      case 0: this.overflow(p); return true;
      case 2: f.get(p.a).get(p.b).op(OP.i64ltu); return true;
      case 6: f.get(p.a).get(p.b).op(OP.i64leu); return true;
      case 12: f.get(p.a); this.signExtend(p.size); f.get(p.b); this.signExtend(p.size); f.op(OP.i64lts); return true;
      default: f.get(p.a); this.signExtend(p.size); f.get(p.b); this.signExtend(p.size); f.op(OP.i64les); return true;
    }
  }

  // ---- stack ----

  private push8(i: Insn, v: number): void {
    const f = this.f;
    f.i32(0).mem(OP.i64load, 3, this.regs + 32).i64(8n).op(OP.i64sub).tee(this.el).op(OP.i32wrap).set(this.e32);
    this.store(i, 8, v);
    f.i32(0).get(this.el).mem(OP.i64store, 3, this.regs + 32);
  }

  private pop8(i: Insn, dst: number): void {
    const f = this.f;
    f.i32(0).mem(OP.i64load, 3, this.regs + 32).tee(this.el).op(OP.i32wrap).set(this.e32);
    this.load(i, 8, dst);
    f.i32(0).get(this.el).i64(8n).op(OP.i64add).mem(OP.i64store, 3, this.regs + 32);
  }

  // ---- instructions ----

  /** A direct transfer to region offset `to` whose RIP is rb + to. */
  private direct(to: number): void {
    this.countBlock();
    this.tryContinue(to);
    this.exitAt(to);
  }

  inline(k: number, rec: boolean): void {
    const f = this.f;
    const i = this.insns[k]!;
    const fn = i.fn;
    const size = i.size;
    if (fn === I.hNop) return;
    if (fn === I.hMovRR) {
      const v = f.local(T_I64);
      this.regRead(i.o1, size); f.set(v);
      this.regWrite(i.o0, size, v);
      return;
    }
    if (fn === I.hMovRI) {
      const v = this.operand(i, IMM, size);
      this.regWrite(i.o0, size, v);
      return;
    }
    if (fn === I.hLoad || fn === I.hStore || fn === I.hMov) {
      if (i.o1 === MEM) this.ea(i);
      const v = this.operand(i, i.o1, size);
      if (i.o0 === MEM && i.o1 !== MEM) this.ea(i);
      this.writeOperand(i, i.o0, size, v);
      return;
    }
    if (fn === I.hMovx) {
      const ss = i.sub < 0 ? -i.sub : i.sub;
      if (i.o1 === MEM) this.ea(i);
      const v = this.operand(i, i.o1, ss);
      if (i.sub < 0) { f.get(v); this.signExtend(ss); f.set(v); }
      this.regWrite(i.o0, size, v);
      return;
    }
    if (fn === I.hLea) {
      const v = f.local(T_I64);
      const end = this.d + i.off + i.len;
      if (i.asz === 8) this.offset64(i);
      else {
        f.i32(i.disp);
        if (i.base === 16) { this.ripLo(end); f.op(OP.i32add); }
        else if (i.base >= 0) f.i32(0).mem(OP.i32load, 2, this.regs + 8 * i.base).op(OP.i32add);
        if (i.index >= 0) {
          f.i32(0).mem(OP.i32load, 2, this.regs + 8 * i.index);
          if (i.scale > 1) f.i32(Math.log2(i.scale)).op(OP.i32shl);
          f.op(OP.i32add);
        }
        f.op(OP.i64extu);
      }
      f.set(v);
      this.regWrite(i.o0, size, v);
      return;
    }
    if (fn === I.hAluRR || fn === I.hAluRI || fn === I.hAlu || fn === I.hTest) {
      const op = fn === I.hTest ? ALU_AND : i.sub;
      if (i.o0 === MEM || i.o1 === MEM) this.ea(i);
      const a = this.operand(i, i.o0, size);
      const b = this.operand(i, i.o1, size);
      const r = f.local(T_I64);
      if (op === ALU_ADD || op === ALU_SUB || op === ALU_CMP || op === ALU_ADC || op === ALU_SBB) {
        const plus = op === ALU_ADD || op === ALU_ADC;
        const carryIn = op === ALU_ADC || op === ALU_SBB;
        let cin = -1;
        if (carryIn) { cin = f.local(T_I32); this.carry(); f.set(cin); }
        f.get(a).get(b).op(plus ? OP.i64add : OP.i64sub);
        if (carryIn) f.get(cin).op(OP.i64extu, plus ? OP.i64add : OP.i64sub);
        this.mask(size);
        f.set(r);
        // The flags after the write: a write that faults leaves them as they were (ADC and SBB run again).
        if (op !== ALU_CMP) this.writeOperand(i, i.o0, size, r);
        const lazy = op === ALU_ADC ? LAZY_ADC : op === ALU_SBB ? LAZY_SBB : plus ? LAZY_ADD : LAZY_SUB;
        if (rec) this.record(lazy, size, a, b, r, cin);
        this.prod = { kind: op === ALU_ADC ? 'adc' : op === ALU_SBB ? 'sbb' : plus ? 'add' : 'sub', size, a, b, r, cf: cin };
      } else {
        f.get(a).get(b).op(op === ALU_AND ? OP.i64and : op === ALU_OR ? OP.i64or : OP.i64xor).set(r);
        if (fn !== I.hTest) this.writeOperand(i, i.o0, size, r);
        if (rec) f.i32(1).set(this.fq).i32(LAZY_LOGIC).set(this.fo).i32(size).set(this.fs).get(r).set(this.fr);
        this.prod = { kind: 'logic', size, a, b, r, cf: -1 };
      }
      return;
    }
    if (fn === I.hIncDec || fn === I.hNeg || fn === I.hNot) {
      if (i.o0 === MEM) this.ea(i);
      const a = this.operand(i, i.o0, size);
      const r = f.local(T_I64);
      if (fn === I.hNot) {
        f.get(a).i64(-1n).op(OP.i64xor); this.mask(size); f.set(r);
        this.writeOperand(i, i.o0, size, r);
      } else if (fn === I.hNeg) {
        const zero = f.local(T_I64);
        f.i64(0n).get(a).op(OP.i64sub); this.mask(size); f.set(r);
        this.writeOperand(i, i.o0, size, r); // before the flags: a write that faults leaves them
        if (rec) this.record(LAZY_SUB, size, zero, a, r, -1);
        this.prod = { kind: 'sub', size, a: zero, b: a, r, cf: -1 };
      } else {
        const inc = i.sub === 0;
        const one = f.local(T_I64);
        f.i64(1n).set(one);
        f.get(a).i64(1n).op(inc ? OP.i64add : OP.i64sub); this.mask(size); f.set(r);
        let cf = -1;
        if (rec) { cf = f.local(T_I32); this.carry(); f.set(cf); }
        this.writeOperand(i, i.o0, size, r);
        if (rec) this.record(inc ? LAZY_INC : LAZY_DEC, size, a, one, r, cf);
        this.prod = { kind: inc ? 'inc' : 'dec', size, a, b: one, r, cf };
      }
      return;
    }
    if (fn === I.hMulDiv) { // MUL: RDX:RAX := RAX * source
      if (i.o0 === MEM) this.ea(i);
      const b = this.operand(i, i.o0, size);
      const lo = f.local(T_I64), hi = f.local(T_I64);
      if (size === 8) {
        f.i32(0).mem(OP.i64load, 3, this.regs).get(b).op(OP.i64mul).set(lo);
        f.i32(0).mem(OP.i64load, 3, this.regs).get(b).call(F_MULHU).set(hi);
      } else {
        f.i32(0).mem(OP.i64load32u, 2, this.regs).get(b).op(OP.i64mul).tee(lo).i64(32n).op(OP.i64shru).set(hi);
        f.get(lo).i64(0xffffffffn).op(OP.i64and).set(lo);
      }
      if (rec) {
        const ovf = f.local(T_I32);
        f.get(hi).i64(0n).op(OP.i64ne).set(ovf);
        this.mulFlags(ovf, size);
      } else this.prod = null;
      this.regWrite(0, 8, lo);
      this.regWrite(2, 8, hi);
      return;
    }
    if (fn === I.hImul2) {
      if (i.o1 === MEM) this.ea(i);
      const a = this.operand(i, i.o1, size);
      const b = this.operand(i, i.o2 === IMM ? IMM : i.o0, size);
      const r = f.local(T_I64);
      if (!rec) {
        f.get(a).get(b).op(OP.i64mul); this.mask(size); f.set(r);
        this.prod = null;
      } else if (size === 8) {
        // The signed high half: the unsigned one, less b if a < 0 and a if b < 0; overflow when
        // it is not the sign extension of the low half.
        const ovf = f.local(T_I32);
        f.get(a).get(b).op(OP.i64mul).set(r);
        f.get(a).get(b).call(F_MULHU);
        f.get(b).i64(0n).get(a).i64(0n).op(OP.i64lts, OP.select, OP.i64sub);
        f.get(a).i64(0n).get(b).i64(0n).op(OP.i64lts, OP.select, OP.i64sub);
        f.get(r).i64(63n).op(OP.i64shrs, OP.i64ne).set(ovf);
        this.mulFlags(ovf, size);
      } else {
        // The exact product of the sign-extended operands fits in 64 bits.
        const p = f.local(T_I64), ovf = f.local(T_I32);
        f.get(a); this.signExtend(size); f.get(b); this.signExtend(size); f.op(OP.i64mul).tee(p);
        this.mask(size); f.tee(r);
        this.signExtend(size); f.get(p).op(OP.i64ne).set(ovf);
        this.mulFlags(ovf, size);
      }
      this.regWrite(i.o0, size, r);
      return;
    }
    if (fn === I.hShift && i.o1 !== IMM) { this.shiftCl(k); return; }
    if (fn === I.hShift && (i.sub === 0 || i.sub === 1)) { this.rotate(k); return; }
    if (fn === I.hShift) { this.shift(k, rec); return; }
    if (fn === I.hBt) { this.bitTest(k, rec); return; }
    if (fn === I.hCmov) {
      if (i.o1 === MEM) this.ea(i);
      const v = this.operand(i, i.o1, size);
      this.cond(i.sub);
      f.op(OP.if, T_VOID);
      this.regWrite(i.o0, size, v);
      if (size === 4) { f.op(OP.else); f.i32(0).i32(0).mem(OP.i32store, 2, this.regs + 8 * i.o0 + 4); }
      f.op(OP.end);
      return;
    }
    if (fn === I.hSetcc) {
      const v = f.local(T_I64);
      this.cond(i.sub);
      f.op(OP.i64extu).set(v);
      this.regWrite(i.o0, 1, v);
      return;
    }
    if (fn === I.hPushR64) {
      const v = f.local(T_I64);
      f.i32(0).mem(OP.i64load, 3, this.regs + 8 * i.o0).set(v);
      this.push8(i, v);
      return;
    }
    if (fn === I.hPush) { this.push8(i, this.operand(i, IMM, 8)); return; }
    if (fn === I.hPop) {
      const v = f.local(T_I64);
      this.pop8(i, v);
      this.regWrite(i.o0, 8, v);
      return;
    }
    // Control transfers (always the block's last instruction).
    const fall = this.d + i.off + i.len, target = fall + i.rel;
    if (fn === I.hJcc) {
      this.cond(i.sub);
      f.op(OP.if, T_VOID);
      this.depth++;
      this.direct(target);
      this.depth--;
      f.op(OP.end);
      this.direct(fall);
      return;
    }
    if (fn === I.hJmpRel) { this.direct(target); return; }
    if (fn === I.hCallRel) {
      const v = f.local(T_I64);
      f.get(this.rb).i64(BigInt(fall)).op(OP.i64add).set(v);
      this.push8(i, v);
      this.direct(target);
      return;
    }
    if (fn === I.hCallInd || fn === I.hJmpInd) {
      // The target is read first (it may fault), then the return address pushed.
      if (i.o0 === MEM) this.ea(i);
      const v = this.operand(i, i.o0, 8);
      if (fn === I.hCallInd) {
        const ret = f.local(T_I64);
        f.get(this.rb).i64(BigInt(fall)).op(OP.i64add).set(ret);
        this.push8(i, ret);
      }
      this.countBlock();
      this.exitAtLocal(v);
      return;
    }
    if (fn === I.hRet) {
      const v = f.local(T_I64);
      this.pop8(i, v);
      this.countBlock();
      this.exitAtLocal(v);
      return;
    }
    throw new Error(`jit-wasm: no inline form for mnemonic ${i.mnem}`);
  }

  /**
   * BT BTS BTR BTC (i.sub 0-3) of a register, or of memory by an immediate (x86/alu.ts bitOp):
   * the bit offset modulo the operand's width, CF = that bit, the other status flags kept (an
   * eager producer); BTS BTR BTC then set, clear or complement the bit.
   */
  private bitTest(k: number, rec: boolean): void {
    const f = this.f;
    const i = this.insns[k]!;
    const size = i.size, w = size * 8;
    if (i.o0 === MEM) this.ea(i);
    const a = this.operand(i, i.o0, size);
    const n = f.local(T_I64), cf = f.local(T_I32);
    if (i.o1 === IMM) f.i64(BigInt(i.imm & (w - 1))).set(n);
    else { this.regRead(i.o1, size); f.i64(BigInt(w - 1)).op(OP.i64and).set(n); }
    f.get(a).get(n).op(OP.i64shru, OP.i32wrap).i32(1).op(OP.i32and).set(cf);
    const fl = rec ? f.local(T_I32) : -1;
    if (rec) { this.szapoIn(); f.get(cf).op(OP.i32or).set(fl); }
    if (i.sub !== 0) {
      const r = f.local(T_I64);
      f.get(a).i64(1n).get(n).op(OP.i64shl);
      if (i.sub === 1) f.op(OP.i64or);
      else if (i.sub === 2) f.i64(-1n).op(OP.i64xor, OP.i64and);
      else f.op(OP.i64xor);
      f.set(r);
      // Before the new flags are pending: a store that faults spills the flags of before.
      this.writeOperand(i, i.o0, size, r);
    }
    if (rec) this.recordEager(fl, size, true);
    else this.prod = null;
  }

  /** SHL/SHR/SAR by a non-zero immediate (the flags of x86/alu.ts). */
  private shift(k: number, rec: boolean): void {
    const f = this.f;
    const i = this.insns[k]!;
    const size = i.size, w = size * 8;
    if (i.o0 === MEM) this.ea(i);
    const a = this.operand(i, i.o0, size);
    const r = f.local(T_I64);
    const n = i.imm & (size === 8 ? 63 : 31);
    const sub = i.sub === 6 ? 4 : i.sub;
    const N = (v: number) => BigInt(v);
    // Result.
    if (sub === 4) { if (n >= w) f.i64(0n); else { f.get(a).i64(N(n)).op(OP.i64shl); this.mask(size); } }
    else if (sub === 5) { if (n >= w) f.i64(0n); else f.get(a).i64(N(n)).op(OP.i64shru); }
    else { f.get(a); this.signExtend(size); f.i64(N(n)).op(OP.i64shrs); this.mask(size); }
    f.set(r);
    if (rec) {
      const cf = f.local(T_I32), fl = f.local(T_I32);
      // CF: the last bit shifted out.
      if (sub === 4) { if (n > w) f.i32(0); else f.get(a).i64(N(w - n)).op(OP.i64shru).i64(1n).op(OP.i64and, OP.i32wrap); }
      else if (sub === 5) { if (n > w) f.i32(0); else f.get(a).i64(N(n - 1)).op(OP.i64shru).i64(1n).op(OP.i64and, OP.i32wrap); }
      else { f.get(a); this.signExtend(size); f.i64(N(n - 1)).op(OP.i64shrs).i64(1n).op(OP.i64and, OP.i32wrap); }
      f.set(cf);
      this.shiftFlags(sub, size, r, cf, sub === 5 && n === 1 ? () => { this.sign(a, size); f.i32(OF_BIT).op(OP.i32shl, OP.i32or); } : null);
      f.set(fl);
      this.writeOperand(i, i.o0, size, r); // before the flags: a write that faults leaves them
      this.recordEager(fl, size, true);
    } else {
      this.writeOperand(i, i.o0, size, r);
      this.prod = null;
    }
  }

  /**
   * ROL/ROR by a non-zero immediate (x86/alu.ts rol/ror): CF and OF from the result (OF by the
   * count-1 formula for every count, as alu.ts does), SF ZF AF PF kept; an eager producer.
   */
  private rotate(k: number): void {
    const f = this.f;
    const i = this.insns[k]!;
    const size = i.size, w = size * 8, left = i.sub === 0;
    if (i.o0 === MEM) this.ea(i);
    const a = this.operand(i, i.o0, size);
    const r = f.local(T_I64), cf = f.local(T_I32), of = f.local(T_I32), fl = f.local(T_I32);
    const c = i.imm & (size === 8 ? 63 : 31), rc = c & (w - 1);
    if (size === 8) f.get(a).i64(BigInt(c)).op(left ? OP.i64rotl : OP.i64rotr).set(r);
    else if (rc === 0) f.get(a).set(r);
    else {
      f.get(a).i64(BigInt(left ? rc : w - rc)).op(OP.i64shl).get(a).i64(BigInt(left ? w - rc : rc)).op(OP.i64shru, OP.i64or);
      this.mask(size); f.set(r);
    }
    if (left) {
      f.get(r).op(OP.i32wrap).i32(1).op(OP.i32and).set(cf);
      this.sign(r, size); f.get(cf).op(OP.i32xor).set(of);
    } else {
      this.sign(r, size); f.set(cf);
      f.get(cf).get(r).i64(BigInt(w - 2)).op(OP.i64shru).i64(1n).op(OP.i64and, OP.i32wrap, OP.i32xor).set(of);
    }
    this.szapIn();
    f.get(cf).op(OP.i32or).get(of).i32(OF_BIT).op(OP.i32shl, OP.i32or).set(fl);
    this.writeOperand(i, i.o0, size, r); // before the flags: a write that faults leaves them
    this.recordEager(fl, size, true);
  }

  /**
   * Pushes the eager flags of a shift (sub 4 SHL, 5 SHR, 7 SAR) with result r and CF in i32
   * local cf: ZF PF SF of r, AF set, OF = SF ^ CF for SHL; `shrOf` ORs SHR's OF in (null: 0).
   */
  private shiftFlags(sub: number, size: number, r: number, cf: number, shrOf: (() => void) | null): void {
    const f = this.f;
    f.get(cf);
    this.zsp(r, size); f.op(OP.i32or);
    f.i32(FLAG_AF).op(OP.i32or);
    if (sub === 4) { this.sign(r, size); f.get(cf).op(OP.i32xor).i32(OF_BIT).op(OP.i32shl, OP.i32or); }
    else if (sub === 5 && shrOf !== null) shrOf();
  }

  /**
   * SHL/SHR/SAR by CL: as shift() with the count known only at run time. A count of 0 changes
   * no flags and writes nothing but the zero extension of a 32-bit register; otherwise the flags
   * are always recorded (an eager producer the compiler cannot name: prod = null after).
   */
  private shiftCl(k: number): void {
    const f = this.f;
    const i = this.insns[k]!;
    const size = i.size, w = size * 8;
    if (i.o0 === MEM) this.ea(i);
    const a = this.operand(i, i.o0, size);
    const n = f.local(T_I32), nl = f.local(T_I64), r = f.local(T_I64), cf = f.local(T_I32), fl = f.local(T_I32);
    const sub = i.sub === 6 ? 4 : i.sub;
    f.i32(0).mem(OP.i32load8u, 0, this.regs + 8).i32(size === 8 ? 63 : 31).op(OP.i32and).tee(n).op(OP.i64extu).set(nl);
    f.get(n).op(OP.if, T_VOID);
    if (sub === 4) {
      f.get(a).get(nl).op(OP.i64shl); this.mask(size); f.set(r);
      // CF: bit w - n of a (0 when n > w).
      if (size === 8) f.get(a).i64(64n).get(nl).op(OP.i64sub, OP.i64shru);
      else f.get(a).get(nl).op(OP.i64shl).i64(BigInt(w)).op(OP.i64shru);
      f.i64(1n).op(OP.i64and, OP.i32wrap).set(cf);
    } else if (sub === 5) {
      f.get(a).get(nl).op(OP.i64shru).set(r);
      f.get(a).get(nl).i64(1n).op(OP.i64sub, OP.i64shru).i64(1n).op(OP.i64and, OP.i32wrap).set(cf);
    } else {
      f.get(a); this.signExtend(size); f.get(nl).op(OP.i64shrs); this.mask(size); f.set(r);
      f.get(a); this.signExtend(size); f.get(nl).i64(1n).op(OP.i64sub, OP.i64shrs).i64(1n).op(OP.i64and, OP.i32wrap).set(cf);
    }
    // SHR's OF: the operand's sign when the count is 1.
    this.shiftFlags(sub, size, r, cf, () => { this.sign(a, size); f.i32(OF_BIT).op(OP.i32shl).i32(0).get(n).i32(1).op(OP.i32eq, OP.select, OP.i32or); });
    f.set(fl);
    this.writeOperand(i, i.o0, size, r); // before the flags: a write that faults leaves them
    this.recordEager(fl, size, false);
    if (size === 4 && i.o0 >= 0) { f.op(OP.else); f.i32(0).i32(0).mem(OP.i32store, 2, this.regs + 8 * i.o0 + 4); }
    f.op(OP.end);
  }

  /** Calls the interpreter handler of instruction k (region-wide index fi + k). */
  fallback(k: number): void {
    const f = this.f;
    const i = this.insns[k]!;
    this.spill();
    f.i32(this.fi + k);
    this.curRip(i);
    this.callOut(F_FB);
    if (k === this.insns.length - 1) f.set(this.t);
    else f.op(OP.drop);
    f.i32(0).mem(OP.i32load, 2, this.ctl + 4 * C_US).set(this.us);
    this.prod = null;
  }

  fi = 0;

  /** The code of block j. */
  block(j: number, fi: number): void {
    const b = this.blocks[j]!;
    const insns = b.insns;
    this.insns = insns;
    this.d = this.offsets[j]!;
    this.fi = fi;
    this.prod = null;
    this.depth = 0;
    this.nest = this.blocks.length - 1 - j;
    const info: Info[] = insns.map((i) => classify(i, true, true));
    this.mayWrite = mayWriteMemory(insns, info);
    const rec = liveness(info);
    const n = insns.length;
    for (let k = 0; k < n; k++) {
      if (info[k]!.inline) this.inline(k, rec[k]!);
      else this.fallback(k);
    }
    const last = insns[n - 1]!;
    const jumps = info[n - 1]!.inline && (last.fn === I.hJcc || last.fn === I.hJmpRel || last.fn === I.hCallRel || last.fn === I.hRet ||
      last.fn === I.hCallInd || last.fn === I.hJmpInd);
    if (jumps) return;
    const fall = this.d + last.off + last.len;
    this.countBlock();
    if (info[n - 1]!.inline) {
      this.tryContinue(fall);
      this.exitAt(fall);
    } else if (!last.term) {
      // A handler that does not branch: RIP (its return value, in t) should be the fall-through.
      const f = this.f;
      f.get(this.t); this.ripLo(fall); f.op(OP.i32eq);
      f.op(OP.if, T_VOID);
      this.depth++;
      this.tryContinue(fall);
      this.exitAt(fall);
      this.depth--;
      f.op(OP.end);
      this.exitInCpu();
    } else this.exitInCpu();
  }

  /** The whole function body. */
  build(): Body {
    const f = this.f;
    const n = this.blocks.length;
    f.i32(0).mem(OP.i32load, 2, this.ctl + 4 * C_BASE).set(this.pBase);
    f.i32(0).mem(OP.i32load, 2, this.ctl + 4 * C_BH).set(this.pBh);
    f.i32(0).mem(OP.i32load, 2, this.ctl + 4 * C_LIM).set(this.pLim);
    f.i32(0).mem(OP.i32load, 2, this.ctl + 4 * C_US).set(this.us);
    f.get(this.pBase).op(OP.i64extu).get(this.pBh).op(OP.i64extu).i64(32n).op(OP.i64shl, OP.i64or).set(this.rb);
    f.i32(0).mem(OP.i32load, 2, this.ctl + 4 * C_EPOCH).set(this.ep);
    f.op(OP.loop, T_VOID);
    for (let j = n - 1; j >= 0; j--) f.op(OP.block, T_VOID);
    f.get(this.pc).op(OP.br_table).uleb(n);
    for (let j = 0; j < n; j++) f.uleb(j);
    f.uleb(0);
    for (let j = 0, fi = 0; j < n; fi += this.blocks[j]!.insns.length, j++) {
      f.op(OP.end); // closes block j: its code follows
      this.block(j, fi);
    }
    f.op(OP.end); // loop
    f.op(OP.unreachable); // every block ends in a transfer
    return f;
  }
}

/** Where a RIP's jump-cache entry is (bytes from the arena's ARENA_JC). */
export function jcEntry(lo: number): number {
  return ((lo ^ (lo >>> 11)) & (JC_ENTRIES - 1)) << 4;
}

/**
 * dispatch(): runs compiled regions back to back while the jump cache names the region at the RIP
 * a region stopped at (ctl C_RIP). An entry (ARENA_JC, at jcEntry(lo)) is RIP lo, hi, the arena
 * address of the code page its fetch-TLB entry had, and the region's table slot + 1. The fetch TLB
 * must still map the RIP's page there for the current privilege, as the run loop's successor links
 * check. Stops at a miss, when a region ends with RIP in the Cpu (returns 1), when a slow path set
 * C_ATTN, or after C_CHAIN regions (returns 0, RIP in ctl).
 */
function dispatchBody(arena: number): Body {
  const ctl = arena + ARENA_CTL;
  const f = new Body(0);
  const lo = f.local(T_I32), hi = f.local(T_I32), e = f.local(T_I32), t = f.local(T_I32), n = f.local(T_I32);
  const ld = (off: number): void => { f.i32(0).mem(OP.i32load, 2, off); };
  const st = (off: number, v: () => void): void => { f.i32(0); v(); f.mem(OP.i32store, 2, off); };
  const stopUnless = (): void => { f.op(OP.i32eqz, OP.if, T_VOID).i32(0).op(OP.return, OP.end); };
  ld(ctl + 4 * C_CHAIN); f.set(n);
  f.op(OP.loop, T_VOID);
  ld(ctl + 4 * C_RIP); f.set(lo);
  ld(ctl + 4 * C_RIP + 4); f.set(hi);
  // Entries near the top of a 4 GiB window take the wrapper's jit.ts path.
  f.get(lo).i32(0xffffe000 | 0).op(OP.i32leu); stopUnless();
  f.get(lo).get(lo).i32(11).op(OP.i32shru, OP.i32xor).i32(JC_ENTRIES - 1).op(OP.i32and).i32(4).op(OP.i32shl).set(e);
  f.get(e).mem(OP.i32load, 2, arena + ARENA_JC).get(lo).op(OP.i32eq);
  f.get(e).mem(OP.i32load, 2, arena + ARENA_JC + 4).get(hi).op(OP.i32eq, OP.i32and);
  f.get(e).mem(OP.i32load, 2, arena + ARENA_JC + 12).op(OP.i32eqz, OP.i32eqz, OP.i32and); stopUnless();
  // The fetch TLB entry of the page (cpu.ts translate's index), as 4-byte elements.
  f.get(lo).i32(12).op(OP.i32shru).i32(TLB_SIZE - 1).op(OP.i32and).i32(TLB_FETCH * TLB_SIZE).op(OP.i32add).i32(2).op(OP.i32shl).set(t);
  f.get(t).mem(OP.i32load, 2, arena + ARENA_TLB_LO).get(lo).i32(~0xfff).op(OP.i32and);
  ld(ctl + 4 * C_US); f.op(OP.i32or, OP.i32eq);
  f.get(t).mem(OP.i32load, 2, arena + ARENA_TLB_HI).get(hi).op(OP.i32eq, OP.i32and);
  f.get(t).mem(OP.i32load, 2, arena + ARENA_TLB_ADDR).get(e).mem(OP.i32load, 2, arena + ARENA_JC + 8).op(OP.i32eq, OP.i32and); stopUnless();
  st(ctl + 4 * C_BASE, () => f.get(lo));
  st(ctl + 4 * C_BH, () => f.get(hi));
  f.get(e).mem(OP.i32load, 2, arena + ARENA_JC + 12).i32(1).op(OP.i32sub).set(t);
  st(ctl + 4 * C_SLOT, () => f.get(t));
  f.get(t).op(OP.call_indirect, HUB_T_RUN, 0);
  st(ctl + 4 * C_CHAINED, () => { ld(ctl + 4 * C_CHAINED); f.i32(1).op(OP.i32add); });
  f.op(OP.if, T_VOID).i32(1).op(OP.return, OP.end);
  ld(ctl + 4 * C_ATTN); f.op(OP.if, T_VOID).i32(0).op(OP.return, OP.end);
  f.get(n).i32(1).op(OP.i32sub).tee(n).op(OP.br_if, 0);
  f.op(OP.end);
  f.i32(0);
  return f;
}

/** The hub's type of run() and dispatch(), after JS_SIGS and HUB_SIGS. */
const HUB_T_RUN = 2 * JS_SIGS.length;

/**
 * A vCPU's hub: imports the JS functions (JS_SIGS), the arena and the region table; exports each
 * JS function under its name with HUB_SIGS, dispatch(), and dead() (what a freed slot holds).
 */
function hubModule(arena: number): Uint8Array {
  const m = new ModuleWriter();
  m.types([...JS_SIGS, ...HUB_SIGS, [[], [T_I32]]]);
  const imports = new ByteWriter();
  imports.uleb(IMPORTS.length + 2);
  importFunctionsAndArena(imports);
  imports.name('e').name('tab').byte(EXT_TABLE).byte(FUNCREF).byte(0x00).uleb(0); // funcref table, min 0, no max
  m.section(SEC_IMPORT, imports);
  const n = IMPORTS.length;
  m.functions([...IMPORT_SIGS.map((t) => JS_SIGS.length + t), HUB_T_RUN, HUB_T_RUN]);
  m.exportFunctions([...IMPORTS.map((nm, k): [string, number] => [nm, n + k]), ['dispatch', 2 * n], ['dead', 2 * n + 1]]);
  const code = new ByteWriter();
  IMPORTS.forEach((_, k) => {
    const np = JS_SIGS[IMPORT_SIGS[k]!]![0].length;
    const f = new Body(np + 1);
    for (let a = 0; a < np; a++) f.get(a);
    f.call(k).encodeTo(code);
  });
  dispatchBody(arena).encodeTo(code);
  // dead(): a freed slot (its code was written) asks the run loop to look the code up again.
  new Body(0).i32(0).i32(1).mem(OP.i32store, 2, arena + ARENA_CTL + 4 * C_ATTN).i32(0).encodeTo(code);
  m.code(n + 2, code);
  return m.toBytes();
}

/** A region to compile: its blocks (the entry first) and their offsets from the entry (exec.ts compile). */
export interface WasmRegion {
  blocks: JitBlock[];
  offsets: number[];
}

/** The encoded bodies of the helpers (spill, mulhu, szap, cfp) of a vCPU's modules, by arena base: the same in every module. */
const helperCode = new Map<number, ByteWriter>();

function helpers(arenaBase: number): ByteWriter {
  let code = helperCode.get(arenaBase);
  if (code === undefined) {
    code = new ByteWriter();
    for (const b of [spillBody(arenaBase + ARENA_CTL), mulhuBody(), szapBody(arenaBase), cfpBody()]) b.encodeTo(code);
    helperCode.set(arenaBase, code);
  }
  return code;
}

/**
 * The module bytes of a batch of regions: the helpers, then one run() per region, exported as
 * r0, r1... A module has a fixed cost in V8 (~0.15-0.2 ms here, against tens of microseconds per
 * function in it), so regions that become hot at about the same time are compiled together.
 */
export function regionsModule(regions: readonly WasmRegion[], arenaBase: number): Uint8Array {
  const ctl = arenaBase + ARENA_CTL;
  const m = new ModuleWriter(scratchModule);
  m.types(TYPES);
  const imports = new ByteWriter();
  imports.uleb(IMPORTS.length + 1);
  importFunctionsAndArena(imports);
  m.section(SEC_IMPORT, imports);
  m.functions([...HELPER_TYPES, ...regions.map(() => T_RUN)]);
  m.exportFunctions(regions.map((_, k): [string, number] => [`r${k}`, F_RUNS + k]));
  const code = scratchCode.reset();
  code.append(helpers(arenaBase));
  for (const r of regions) {
    const index = new Map<number, number>();
    r.offsets.forEach((o, j) => index.set(o, j));
    new RegionCompiler(ctl, arenaBase, r.blocks, r.offsets, index).build().encodeTo(code);
  }
  m.code(HELPER_TYPES.length + regions.length, code);
  return m.toBytes();
}

/** The module bytes of one region (its run() is r0). */
export function regionModule(blocks: JitBlock[], offsets: number[], arenaBase: number): Uint8Array {
  return regionsModule([{ blocks, offsets }], arenaBase);
}

/** What a vCPU's regions share (Cpu.wasmHub): its hub, and the regions by table slot. */
export interface WasmHub {
  sync: () => void;
  /** Each slot's region's instructions (fb's k indexes the running one's, C_SLOT). */
  regions: Insn[][];
  hub: Record<string, unknown>;
  table: WebAssembly.Table;
  free: number[];
  dispatch: () => number;
}

/**
 * Handlers after which the dispatcher may go on to the next region (fb leaves C_ATTN alone): they
 * change registers, flags, SSE state and memory only, nothing the run loop checks between blocks
 * (IF, TF, the interrupt shadow, the mode, CPL, control registers, devices). Any other handler
 * stops the dispatcher. A write of theirs to a code page frees the page's regions: the dispatcher
 * then reaches a dead() slot, which stops it. Every handler that may set IF (STI, POPF, IRET) stops
 * it, and the run loop takes a waiting interrupt right after the shadow (exec.ts shadowHoldsBack):
 * code that clears IF again soon after, with only quiet handlers between, still takes it.
 */
const QUIET_HANDLERS: ReadonlySet<Handler> = new Set<Handler>([
  I.hMulDiv, I.hShd, I.hBt, I.hBitScan, I.hBswap, I.hXadd, I.hCmpxchg, I.hCmpxchg8b, I.hXchg, I.hConvert, I.hSetcc,
  S.hVec, S.hMove, S.hMovmsk, S.hMaskmov, S.hCvtToInt, S.hComis, hPushf, hMovFromSeg,
]);

function sharedOf(c: Cpu, host: JitHost): WasmHub {
  let s = c.wasmHub;
  if (s !== null) return s;
  const C = c.ctl, lz = c.lz;
  const sync = (): void => {
    C[C_FQ] = flushPending(host, lz, C[C_IC]!, C[C_FQ]!, C[C_FO]!, C[C_FS]!, C[C_FA]! >>> 0, C[C_FA + 1]! >>> 0, C[C_FB]! >>> 0, C[C_FB + 1]! >>> 0,
      C[C_FR]! >>> 0, C[C_FR + 1]! >>> 0, C[C_FX]!);
    C[C_IC] = 0;
  };
  const js = {
    /** Runs the region's instruction k (at cur; rip is the next one's) by its handler. */
    fb(k: number, cur: number, rip: number): number {
      sync();
      c.curLo = cur >>> 0; c.ripLo = rip >>> 0;
      const ins = s!.regions[C[C_SLOT]!]![k]!;
      if (!QUIET_HANDLERS.has(ins.fn)) C[C_ATTN] = 1;
      ins.fn(c, ins);
      C[C_US] = c.user;
      return c.ripLo | 0;
    },
    rd(size: number, lo: number, hi: number, cur: number, rip: number): number {
      sync();
      C[C_ATTN] = 1;
      c.curLo = cur >>> 0; c.ripLo = rip >>> 0;
      switch (size) {
        case 1: return c.rd8(lo, hi);
        case 2: return c.rd16(lo, hi);
        case 4: return c.rd32(lo, hi);
        default: { const v = c.rd64(lo, hi); C[C_HI] = c.hi; return v; }
      }
    },
    wr(size: number, lo: number, hi: number, vlo: number, vhi: number, cur: number, rip: number): void {
      sync();
      C[C_ATTN] = 1;
      c.curLo = cur >>> 0; c.ripLo = rip >>> 0;
      switch (size) {
        case 1: c.wr8(lo, hi, vlo); break;
        case 2: c.wr16(lo, hi, vlo); break;
        case 4: c.wr32(lo, hi, vlo); break;
        default: c.wr64(lo, hi, vlo, vhi);
      }
    },
    cond(cc: number): number { sync(); return lz.cond(cc) ? 1 : 0; },
    cf(): number { sync(); return lz.cf(); },
    /** SF ZF AF PF and OF (what szapIn and szapoIn want from c.lz). */
    szapo(): number { sync(); return lz.get() & (SZAP | FLAG_OF); },
  };
  const table = new WebAssembly.Table({ element: 'anyfunc', initial: 0 });
  const hub = new WebAssembly.Instance(new WebAssembly.Module(hubModule(c.arenaBase)), { e: { ...js, mem: arenaMemory(), tab: table } }).exports;
  s = { sync, regions: [], hub, table, free: [], dispatch: hub.dispatch as () => number };
  c.wasmHub = s;
  return s;
}

/**
 * Lets a region's slot go (its block died): the slot runs nothing until it is reused. Its
 * instruction records stay until then: the region may be the one running (it wrote to its own
 * code page), and it finishes its current pass through them, as an interpreted block does.
 */
export function releaseSlot(c: Cpu, slot: number): void {
  const s = c.wasmHub;
  if (s === null) return;
  s.table.set(slot, s.hub.dead);
  s.free.push(slot);
}

/**
 * The smallest module with a v128 parameter and a v128 constant: WebAssembly.validate says
 * whether the engine compiles SIMD here (V8 validates it as false where the CPU lacks SSE4.1).
 */
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x05, 0x01, 0x60, 0x01, T_V128, 0x00, // type 0: (param v128)
  0x03, 0x02, 0x01, 0x00, // function 0 of type 0
  0x0a, 0x17, 0x01, 0x15, 0x00, 0xfd, 0x0c, ...new Array<number>(16).fill(0), 0x1a, 0x0b, // v128.const 0, drop
]);
let simd: boolean | undefined;

/**
 * Whether this compiler can run here: the engine has WebAssembly SIMD. (`node
 * --no-enable-sse4-1` makes V8 behave as on a CPU without SSE4.1, to run the fallback anywhere.)
 */
export function wasmSimd(): boolean {
  simd ??= WebAssembly.validate(SIMD_PROBE);
  return simd;
}

/** Can this CPU run WebAssembly regions (its state is in the arena, and the engine has SIMD)? */
export function wasmCapable(c: Cpu): boolean {
  return c.arenaBase >= 0 && wasmSimd();
}

/**
 * Compiles regions of 64-bit code, all in one module (see regionsModule; jit.ts compileRegion for
 * the contract of each). `slow(k)` compiles region k with jit.ts, for an entry so close to a 4 GiB
 * boundary that RIP arithmetic in the region's 32-bit low half could carry.
 */
export function compileRegionsWasm(regions: readonly WasmRegion[], c: Cpu, host: JitHost, slow: (k: number) => JitFn): { fn: JitFn; slot: number }[] {
  const bytes = regionsModule(regions, c.arenaBase);
  const s = sharedOf(c, host);
  const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { e: { mem: arenaMemory(), ...s.hub } });
  return regions.map((r, k) => {
    const run = inst.exports[`r${k}`] as () => number;
    let slot = s.free.pop();
    if (slot === undefined) slot = s.table.grow(1, s.hub.dead);
    s.table.set(slot, run);
    s.regions[slot] = r.blocks.flatMap((b) => b.insns);
    return { fn: regionEntry(c, host, s, run, slot, () => slow(k)), slot };
  });
}

/** Compiles one region of 64-bit code (compileRegionsWasm of one). */
export function compileRegionWasm(blocks: JitBlock[], offsets: number[], c: Cpu, host: JitHost, slow: () => JitFn): { fn: JitFn; slot: number } {
  return compileRegionsWasm([{ blocks, offsets }], c, host, slow)[0]!;
}

/** The run loop's entry to the region in table slot `me` (run()), and to the dispatcher after it. */
function regionEntry(c: Cpu, host: JitHost, s: WasmHub, run: () => number, me: number, slow: () => JitFn): JitFn {
  const C = c.ctl;
  const sync = s.sync, dispatch = s.dispatch;
  let js: JitFn | null = null;
  return (baseLo: number): void => {
    C[C_SLOT] = me;
    if (baseLo > 0xffffe000) { (js ??= slow())(baseLo); return; }
    C[C_BASE] = baseLo; C[C_BH] = c.ripHi; C[C_LIM] = host.loopMax; C[C_US] = c.user; C[C_ATTN] = 0;
    let st = run();
    if (st === 0 && host.chainMax !== 0 && C[C_ATTN] === 0) {
      C[C_CHAIN] = host.chainMax; C[C_CHAINED] = 0;
      st = dispatch();
      host.chained += C[C_CHAINED]!;
    }
    sync();
    if (st === 0) { c.ripLo = C[C_RIP]! >>> 0; c.ripHi = C[C_RIP + 1]!; }
  };
}
