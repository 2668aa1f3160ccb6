/**
 * The soft CPU's block compiler: a hot decoded block (exec.ts Block, its Insn records), together
 * with the already-decoded blocks of the same page and mode it reaches by direct jumps and
 * fall-through (a region), becomes one JS function built with `new Function`: straight-line code
 * per block over the Cpu's typed arrays, blocks dispatched by a `switch` inside a loop.
 *
 * What the generated code does, and why it stays exact:
 * - Registers are read and written in `c.regs` directly (no register caching), so any helper or
 *   interpreter handler the code calls sees the architectural state, and so does a fault.
 * - Status flags: a producer leaves its operands and result (LazyFlags encoding) in function
 *   locals; they are stored into `c.lz` only before something can look at them — a slow-path
 *   memory access (which may fault), an interpreter handler, a condition the code cannot evaluate
 *   itself, and the function's return. A backward liveness pass per block drops producers whose
 *   flags are overwritten before anything reads them or can fault; a Jcc/CMOVcc/SETcc/INC/DEC
 *   after a producer of the same block evaluates its condition (or CF) from the producer's locals.
 * - Loads and stores use an inline TLB hit test (the Cpu's direct-mapped TLB sets, user bit in
 *   the tag); on a miss, a page-crossing access or anything unusual they call the Cpu's rd/wr,
 *   which walk, fault or exit. Before such a call (and before any interpreter handler) the code
 *   sets c.curLo / c.ripLo exactly as the interpreter would have them for that instruction, so a
 *   fault or exit rolls back to the right RIP; the executor finds the faulting instruction (for
 *   the instruction count) from c.curLo.
 * - Instructions the compiler does not know are executed by their interpreter handler.
 * - Transfers between the region's blocks stay in the function (at most `loopMax` per call, so
 *   the run loop still sees stop requests and interrupt windows), and end as soon as a block
 *   that may write memory finds the region invalidated by a write to its code page. Completed
 *   blocks' instructions are counted in a local flushed into the executor's icount before any
 *   call that may throw and at the return.
 * Only 64-bit code gets inline memory accesses and stack operations; other modes compile the
 * register instructions and call handlers for the rest.
 */
import { PARITY } from '../../x86/flags.js';
import { LAZY_ADC, LAZY_ADD, LAZY_SBB, LAZY_SUB, P as mulProduct, lazyCarry, mulU32, mulU64 } from '../../x86/alu.js';
import { TLB_SIZE, type Cpu } from './cpu.js';
import { IMM, MEM, NONE, type Handler, type Insn } from './insn.js';
import * as I from './ops-int.js';

/** A compiled region: runs from linear RIP (baseLo, c.curHi) at its entry block; leaves c.ripLo/ripHi where it stopped. */
export type JitFn = (baseLo: number) => void;

/** What the compiler needs of the executor and the block (kept structural to avoid an import cycle). */
export interface JitBlock {
  readonly mode: number;
  readonly insns: Insn[];
  valid: boolean;
}
export interface JitHost {
  icount: number;
  /** Most block-to-block transfers inside one call of a region. */
  loopMax: number;
  /** Most regions one call may run after the first, chained by jit-wasm.ts's dispatcher (0: none). */
  chainMax: number;
  /** Regions the dispatcher chained, not yet taken into account by the run loop. */
  chained: number;
  /** Gets the source of every region generated (debugging), or null. */
  readonly dump: ((source: string) => void) | null;
}

/**
 * Stores the pending flag producer (function locals) into c.lz, where handlers and faults see it,
 * and the count of completed blocks' instructions (local ic) into the executor. One call, not the
 * stores themselves: it sits on every slow path and exit, and code size decides how soon V8
 * optimizes a region (and whether it ever does: it gives up on very large functions).
 */
const FLUSH = 'fq = FL(X, lz, ic, fq, fo, fs, fa, fah, fb, fbh, fr, frh, fx); ic = 0;';

/** FLUSH's out-of-line part (and jit-wasm.ts's, from its control block); returns the new `fq` (0). */
export function flushPending(host: JitHost, lz: Cpu['lz'], ic: number, fq: number, fo: number, fs: number, fa: number, fah: number,
  fb: number, fbh: number, fr: number, frh: number, fx: number): number {
  host.icount += ic;
  if (fq !== 0) {
    if (fo === 0) lz.setEager(fx);
    else lz.record(fo, fs, fa, fah, fb, fbh, fr, frh, fx);
  }
  return 0;
}

export const ALU_ADD = 0, ALU_OR = 1, ALU_ADC = 2, ALU_SBB = 3, ALU_AND = 4, ALU_SUB = 5, ALU_XOR = 6, ALU_CMP = 7;
const MASKS = [0, 0xff, 0xffff, 0, 0xffffffff, 0, 0, 0, 0xffffffff];
const SIGNS = [0, 0x80, 0x8000, 0, 0x80000000, 0, 0, 0, 0x80000000];

/** The last flag producer of the block: how to evaluate a condition from its locals. */
interface Producer {
  kind: 'add' | 'adc' | 'sub' | 'sbb' | 'logic' | 'inc' | 'dec' | 'eager';
  size: number;
  a: string; b: string; r: string;
  aH: string; bH: string; rH: string;
  /** INC/DEC: the local holding CF (0/1); ADC/SBB: the carry-in. */
  cf?: string;
}

/** Per-instruction facts for the flag liveness pass. */
export interface Info {
  /** 0 none, 1 all six status flags, 2 all but CF (INC/DEC). */
  w: number;
  /** Reads flags (conditions, handlers). */
  r: boolean;
  /** May fault or exit (memory, stack, handlers). */
  f: boolean;
  /** Compiled inline (false: the interpreter handler is called). */
  inline: boolean;
}

class Gen {
  readonly out: string[] = [];
  readonly decls = new Set<string>();
  prod: Producer | null = null;
  constructor(readonly m64: boolean) {}
  emit(s: string): void { this.out.push(s); }
  v(name: string): string { this.decls.add(name); return name; }
}

function isFastAlu(sub: number): boolean {
  return sub === ALU_ADD || sub === ALU_OR || sub === ALU_AND || sub === ALU_SUB || sub === ALU_XOR || sub === ALU_CMP;
}

/** Does the compiler know `i` (in a block of this mode)? And its flag/fault facts. */
export function classify(i: Insn, m64: boolean, wasm = false): Info {
  const fb: Info = { w: 1, r: true, f: true, inline: false };
  const memOk = (code: number) => code !== MEM || (m64 && i.asz === 8);
  const mem = i.o0 === MEM || i.o1 === MEM;
  const fn = i.fn;
  if (fn === I.hNop) return { w: 0, r: false, f: false, inline: true };
  if (fn === I.hMovRR || fn === I.hMovRI) return { w: 0, r: false, f: false, inline: true };
  if (fn === I.hLoad || fn === I.hStore || fn === I.hMov) {
    if (!memOk(i.o0) || !memOk(i.o1)) return fb;
    if (!(i.o0 >= 0 || i.o0 === MEM) || !(i.o1 >= 0 || i.o1 === MEM || i.o1 === IMM)) return fb;
    return { w: 0, r: false, f: mem, inline: true };
  }
  if (fn === I.hMovx) {
    if (!memOk(i.o1) || i.o0 < 0 || i.o0 >= 16) return fb;
    return { w: 0, r: false, f: mem, inline: true };
  }
  if (fn === I.hLea) {
    if (i.o0 < 0 || i.o0 >= 16 || !(i.asz === 8 || i.asz === 4)) return fb;
    return { w: 0, r: false, f: false, inline: true };
  }
  if (fn === I.hAluRR || fn === I.hAluRI || fn === I.hAlu || fn === I.hTest) {
    const carryIn = fn === I.hAlu && (i.sub === ALU_ADC || i.sub === ALU_SBB);
    if (fn !== I.hTest && !isFastAlu(i.sub) && !carryIn) return fb;
    if (!memOk(i.o0) || !memOk(i.o1)) return fb;
    if (!(i.o0 >= 0 || i.o0 === MEM) || !(i.o1 >= 0 || i.o1 === MEM || i.o1 === IMM)) return fb;
    return { w: 1, r: carryIn, f: mem, inline: true };
  }
  if (fn === I.hMulDiv && i.sub === 0 && (i.size === 8 || i.size === 4)) {
    // MUL: the same rule as IMUL below.
    if (!memOk(i.o0) || !((i.o0 >= 0 && i.o0 < 16) || i.o0 === MEM)) return fb;
    return { w: 1, r: true, f: mem, inline: true };
  }
  if (fn === I.hImul2) {
    // Reads the previous flags: it keeps SF ZF AF PF. jit.ts inlines it only when its flags are
    // dead (Compiler.inline); jit-wasm.ts always.
    if (i.o0 < 0 || i.o0 >= 16 || !memOk(i.o1) || !(i.o1 >= 0 || i.o1 === MEM) || (i.o2 !== IMM && i.o2 !== NONE)) return fb;
    return { w: 1, r: true, f: mem, inline: true };
  }
  if (fn === I.hIncDec || fn === I.hNeg || fn === I.hNot) {
    if (!memOk(i.o0) || !(i.o0 >= 0 || i.o0 === MEM)) return fb;
    return { w: fn === I.hIncDec ? 2 : fn === I.hNeg ? 1 : 0, r: false, f: mem, inline: true };
  }
  if (fn === I.hShift && wasm && i.o1 === IMM && (i.sub === 0 || i.sub === 1)) {
    // ROL/ROR by a non-zero count, jit-wasm.ts only: they keep SF ZF AF PF (read them).
    if ((i.imm & (i.size === 8 ? 63 : 31)) === 0 || !memOk(i.o0) || !(i.o0 >= 0 || i.o0 === MEM)) return fb;
    return { w: 1, r: true, f: mem, inline: true };
  }
  if (fn === I.hShift && wasm && i.o1 !== IMM) {
    // By CL, jit-wasm.ts only. A count of 0 leaves the flags alone: it does not surely write them.
    const sub = i.sub;
    if (!(sub === 4 || sub === 5 || sub === 6 || sub === 7) || !memOk(i.o0) || !(i.o0 >= 0 || i.o0 === MEM)) return fb;
    return { w: 0, r: false, f: mem, inline: true };
  }
  if (fn === I.hShift) {
    const sub = i.sub;
    if (i.o1 !== IMM || !(sub === 4 || sub === 5 || sub === 6 || sub === 7)) return fb;
    if ((i.imm & (i.size === 8 ? 63 : 31)) === 0 || !memOk(i.o0) || !(i.o0 >= 0 || i.o0 === MEM)) return fb;
    return { w: 1, r: false, f: mem, inline: true };
  }
  if (fn === I.hBt && wasm) {
    // BT BTS BTR BTC of a register, or of memory by an immediate bit offset (a register offset
    // into memory addresses a bit string: the handler's), jit-wasm.ts only. CF is the bit, the
    // other status flags are kept: they are read.
    const byImm = i.o1 === IMM, byReg = i.o1 >= 0 && i.o1 < 16;
    if (!(byImm || byReg) || !((i.o0 >= 0 && i.o0 < 16) || (i.o0 === MEM && byImm && memOk(i.o0)))) return fb;
    return { w: 1, r: true, f: i.o0 === MEM, inline: true };
  }
  if (fn === I.hJcc || fn === I.hJmpRel) return { w: 0, r: fn === I.hJcc, f: false, inline: true };
  if (fn === I.hCmov) {
    if (!memOk(i.o1) || i.o0 < 0 || i.o0 >= 16) return fb;
    return { w: 0, r: true, f: mem, inline: true };
  }
  if (fn === I.hSetcc) {
    if (i.o0 < 0) return fb;
    return { w: 0, r: true, f: false, inline: true };
  }
  if (m64 && i.size === 8) {
    if (fn === I.hCallRel) return { w: 0, r: false, f: true, inline: true };
    if (fn === I.hRet && i.imm === 0) return { w: 0, r: false, f: true, inline: true };
    if (fn === I.hPushR64) return { w: 0, r: false, f: true, inline: true };
    if (fn === I.hPush && i.o0 === IMM) return { w: 0, r: false, f: true, inline: true };
    if (fn === I.hPop && i.o0 >= 0 && i.o0 < 16) return { w: 0, r: false, f: true, inline: true };
    // Indirect near CALL and JMP: jit-wasm.ts only.
    if (wasm && (fn === I.hCallInd || fn === I.hJmpInd) && ((i.o0 >= 0 && i.o0 < 16) || (i.o0 === MEM && i.asz === 8))) {
      return { w: 0, r: false, f: true, inline: true };
    }
  }
  return fb;
}

// ---- register access (expressions over R = c.regs) ----

/** Register r (0-15, 16-19 = AH..BH) of `size` bytes, zero-extended, as a non-negative number (size 8: low half). */
function regRead(r: number, size: number): string {
  switch (size) {
    case 1: return r < 16 ? `(R[${r * 2}] & 255)` : `((R[${(r - 16) * 2}] >> 8) & 255)`;
    case 2: return `(R[${r * 2}] & 65535)`;
    default: return `(R[${r * 2}] >>> 0)`;
  }
}

/** Statement: register r of `size` := (lo, hi), with the merge/zero-extension rules of setReg. */
function regWrite(r: number, size: number, lo: string, hi: string): string {
  switch (size) {
    case 1:
      if (r < 16) return `R[${r * 2}] = (R[${r * 2}] & -256) | (${lo} & 255);`;
      return `R[${(r - 16) * 2}] = (R[${(r - 16) * 2}] & -65281) | ((${lo} & 255) << 8);`;
    case 2: return `R[${r * 2}] = (R[${r * 2}] & -65536) | (${lo} & 65535);`;
    case 4: return `R[${r * 2}] = ${lo}; R[${r * 2 + 1}] = 0;`;
    default: return `R[${r * 2}] = ${lo}; R[${r * 2 + 1}] = ${hi};`;
  }
}

// ---- the instruction compiler ----

class Compiler {
  /**
   * insns: the block's records; d: the block's linear offset from the region's entry (its code
   * uses baseLo + d as its own start); members: offsets of the region's blocks (intra-region
   * transfers stay in the function).
   */
  constructor(readonly g: Gen, readonly insns: Insn[], readonly m64: boolean, readonly d: number, readonly members: Set<number>,
    readonly fi: number) {
    g.prod = null;
    const info = insns.map((i) => classify(i, m64));
    this.mayWrite = mayWriteMemory(insns, info);
  }

  /** The block may write memory or call a handler (and so invalidate the region's code). */
  readonly mayWrite: boolean;

  /**
   * Leaves the block for linear offset `to` (relative to the region entry), RIP already set:
   * counts the block's instructions and continues in the function when `to` is a member.
   */
  private leave(to: number | null): string {
    const n = this.insns.length;
    if (to !== null && this.members.has(to)) {
      return `ic += ${n}; if (c.ripLo === baseLo + ${to} && c.ripHi === bh && --lim > 0${this.mayWrite ? ' && B.valid' : ''}) { pc = ${to}; continue; } ${FLUSH} return;`;
    }
    return `ic += ${n}; ${FLUSH} return;`;
  }

  /**
   * A direct transfer to `to` (relative to the region entry) whose RIP is baseLo + to whenever it
   * stays in the region (64-bit code, or 32-bit operand size, within the entry's page): continues
   * without computing RIP; `setRip` runs only when the function returns.
   */
  private direct(i: Insn | null, to: number, setRip: string): string {
    const n = this.insns.length;
    const exact = this.m64 || i === null || i.size === 4;
    if (exact && this.members.has(to)) {
      return `ic += ${n}; if (--lim > 0${this.mayWrite ? ' && B.valid' : ''}) { pc = ${to}; continue; } ${setRip} ${FLUSH} return;`;
    }
    if (this.members.has(to)) return `${setRip} ${this.leave(to)}`;
    return `${setRip} ic += ${n}; ${FLUSH} return;`;
  }

  /** The statements that make RIP state exact for instruction k before a call that may fault. */
  private sync(k: number): string {
    const i = this.insns[k]!;
    return `${FLUSH} c.curLo = baseLo + ${this.d + i.off}; c.ripLo = baseLo + ${this.d + i.off + i.len};`;
  }

  /** Computes the linear address of i's memory operand into el/eh (64-bit addressing). */
  private ea(k: number): void {
    const i = this.insns[k]!;
    // One register plus a sign-extended displacement: int32 arithmetic, the carry by comparison.
    const one = i.base >= 0 && i.base < 16 ? (i.index < 0 ? i.base : -1) : i.base < 0 && i.index >= 0 && i.scale === 1 ? i.index : -1;
    if (one >= 0 && i.seg < 4 && i.dispHi === i.disp >> 31) {
      const lo = `R[${one * 2}]`, hi = `R[${one * 2 + 1}]`;
      if (i.disp === 0) this.g.emit(`el = ${lo}; eh = ${hi};`);
      else if (i.disp > 0) this.g.emit(`t = ${lo}; el = (t + ${i.disp}) | 0; eh = (el >>> 0) < (t >>> 0) ? (${hi} + 1) | 0 : ${hi};`);
      else this.g.emit(`t = ${lo}; el = (t + ${i.disp}) | 0; eh = (el >>> 0) < (t >>> 0) ? ${hi} : (${hi} - 1) | 0;`);
      return;
    }
    const lo: string[] = [String(i.disp >>> 0)];
    const hi: string[] = [String(i.dispHi | 0)];
    if (i.base === 16) { lo.push(`((baseLo + ${this.d + i.off + i.len}) >>> 0)`); hi.push('c.ripHi'); }
    else if (i.base >= 0) { lo.push(`(R[${i.base * 2}] >>> 0)`); hi.push(`R[${i.base * 2 + 1}]`); }
    if (i.index >= 0) {
      lo.push(`(R[${i.index * 2}] >>> 0) * ${i.scale}`);
      hi.push(`R[${i.index * 2 + 1}] * ${i.scale}`);
    }
    if (i.seg >= 4) { lo.push(`(EB[${i.seg}] >>> 0)`); hi.push(`EBH[${i.seg}]`); }
    this.g.emit(`t = ${lo.join(' + ')}; el = t | 0; eh = (${hi.join(' + ')} + Math.floor(t * 2.3283064365386963e-10)) | 0;`);
  }

  /** Loads `size` bytes at (el, eh) into dst (and dstH for size 8); int32 bit patterns. */
  private load(k: number, size: number, dst: string, dstH: string): void {
    const g = this.g;
    const lim = 4096 - size;
    const hit = `TL[x] === ((el & -4096) | us) && TH[x] === eh${size > 1 ? ` && (el & 4095) <= ${lim}` : ''}`;
    g.emit(`x = (el >>> 12) & ${TLB_SIZE - 1};`);
    switch (size) {
      case 1: g.emit(`if (${hit}) ${dst} = TB[x][TO[x] + (el & 4095)]; else { ${this.sync(k)} ${dst} = c.rd8(el, eh); }`); break;
      case 2: g.emit(`if (${hit}) ${dst} = TD[x].getUint16(TO[x] + (el & 4095), true); else { ${this.sync(k)} ${dst} = c.rd16(el, eh); }`); break;
      case 4: g.emit(`if (${hit}) ${dst} = TD[x].getInt32(TO[x] + (el & 4095), true); else { ${this.sync(k)} ${dst} = c.rd32(el, eh); }`); break;
      default:
        g.emit(`if (${hit}) { o = TO[x] + (el & 4095); ${dst} = TD[x].getInt32(o, true); ${dstH} = TD[x].getInt32(o + 4, true); } ` +
          `else { ${this.sync(k)} ${dst} = c.rd64(el, eh); ${dstH} = c.hi; }`);
    }
  }

  /** Stores `size` bytes of (lo, hi) at (el, eh). */
  private store(k: number, size: number, lo: string, hi: string): void {
    const g = this.g;
    const lim = 4096 - size;
    const hit = `TL[y] === ((el & -4096) | us) && TH[y] === eh${size > 1 ? ` && (el & 4095) <= ${lim}` : ''}`;
    g.emit(`y = ${TLB_SIZE} + ((el >>> 12) & ${TLB_SIZE - 1});`);
    switch (size) {
      case 1: g.emit(`if (${hit}) TB[y][TO[y] + (el & 4095)] = ${lo}; else { ${this.sync(k)} c.wr8(el, eh, ${lo}); }`); break;
      case 2: g.emit(`if (${hit}) TD[y].setUint16(TO[y] + (el & 4095), ${lo}, true); else { ${this.sync(k)} c.wr16(el, eh, ${lo}); }`); break;
      case 4: g.emit(`if (${hit}) TD[y].setInt32(TO[y] + (el & 4095), ${lo}, true); else { ${this.sync(k)} c.wr32(el, eh, ${lo}); }`); break;
      default:
        g.emit(`if (${hit}) { o = TO[y] + (el & 4095); TD[y].setInt32(o, ${lo}, true); TD[y].setInt32(o + 4, ${hi}, true); } ` +
          `else { ${this.sync(k)} c.wr64(el, eh, ${lo}, ${hi}); }`);
    }
  }

  /**
   * Reads operand `code` of `size` into fresh locals (zero-extended non-negative numbers; size 8:
   * two uint32 halves). For MEM the EA must already be in el/eh.
   */
  private operand(k: number, code: number, size: number, name: string): [string, string] {
    const g = this.g;
    const i = this.insns[k]!;
    const lo = g.v(`${name}${k}`), hi = g.v(`${name}h${k}`);
    if (code >= 0) {
      g.emit(`${lo} = ${regRead(code, size)};`);
      g.emit(size === 8 ? `${hi} = R[${code * 2 + 1}] >>> 0;` : `${hi} = 0;`);
    } else if (code === IMM) {
      const m = MASKS[size]!;
      g.emit(`${lo} = ${size === 8 || size === 4 ? i.imm >>> 0 : i.imm & m};`);
      g.emit(`${hi} = ${size === 8 ? i.immHi >>> 0 : 0};`);
    } else {
      this.load(k, size, lo, hi);
      if (size === 8) g.emit(`${lo} = ${lo} >>> 0; ${hi} = ${hi} >>> 0;`);
      else { g.emit(`${lo} = ${size === 4 ? `${lo} >>> 0` : lo};`); g.emit(`${hi} = 0;`); }
    }
    return [lo, hi];
  }

  /** Writes (lo, hi) to operand `code` (register, or memory at el/eh). */
  private writeOperand(k: number, code: number, size: number, lo: string, hi: string): void {
    if (code >= 0) this.g.emit(regWrite(code, size, lo, hi));
    else this.store(k, size, lo, hi);
  }

  /** Makes (op, operands, result) the pending flag producer (LazyFlags encoding, in locals). */
  private record(op: number, size: number, a: string, aH: string, b: string, bH: string, r: string, rH: string, aux?: string): void {
    this.g.emit(`fq = 1; fo = ${op}; fs = ${size}; fa = ${a}; fah = ${aH}; fb = ${b}; fbh = ${bH}; fr = ${r}; frh = ${rH};` +
      `${aux !== undefined ? ` fx = ${aux};` : ''}`);
  }

  /** CF (0/1) as an expression, from the block's last producer when known, else from c.lz. */
  private carry(): string {
    const p = this.g.prod;
    if (p !== null) {
      const s = p.size;
      switch (p.kind) {
        case 'sub': return s === 8 ? `((${p.aH} !== ${p.bH} ? ${p.aH} < ${p.bH} : ${p.a} < ${p.b}) ? 1 : 0)` : `(${p.a} < ${p.b} ? 1 : 0)`;
        case 'add': return s === 8 ? `((${p.rH} !== ${p.aH} ? ${p.rH} < ${p.aH} : ${p.r} < ${p.a}) ? 1 : 0)` : `(${p.r} < ${p.a} ? 1 : 0)`;
        case 'adc': return `(${s === 8 ? `(${p.rH} !== ${p.aH} ? ${p.rH} < ${p.aH} : ${p.r} < ${p.a})` : `${p.r} < ${p.a}`} || (${p.cf} !== 0 && ${p.r} === ${p.a} && ${p.rH} === ${p.aH}) ? 1 : 0)`;
        case 'sbb': return `(${s === 8 ? `(${p.aH} !== ${p.bH} ? ${p.aH} < ${p.bH} : ${p.a} < ${p.b})` : `${p.a} < ${p.b}`} || (${p.cf} !== 0 && ${p.a} === ${p.b} && ${p.aH} === ${p.bH}) ? 1 : 0)`;
        case 'logic': return '0';
        case 'eager': return `(${p.r} & 1)`;
        default: if (p.cf !== undefined) return p.cf;
      }
    }
    // The producer ran in an earlier block: from the pending locals when there are some.
    return '(fq !== 0 ? CF(fo, fs, fa, fah, fb, fbh, fr, frh, fx) : lz.cf())';
  }

  /** A condition code as a JS boolean expression, from the block's last producer if it is known. */
  private cond(cc: number): string {
    const p = this.g.prod;
    const t = p === null ? null : this.condFrom(p, cc & ~1);
    if (t === null) { this.g.emit(FLUSH); return `lz.cond(${cc})`; }
    return (cc & 1) === 0 ? `(${t})` : `!(${t})`;
  }

  private condFrom(p: Producer, cc: number): string | null {
    const s = p.size, sg = SIGNS[s]!;
    const rTop = s === 8 ? p.rH : p.r;
    const zero = s === 8 ? `(${p.r} | ${p.rH}) === 0` : `${p.r} === 0`;
    const sf = `(${rTop} & ${sg}) !== 0`;
    if (p.kind === 'eager') {
      const f = p.r;
      switch (cc) {
        case 0: return `(${f} & 2048) !== 0`;
        case 2: return `(${f} & 1) !== 0`;
        case 4: return `(${f} & 64) !== 0`;
        case 6: return `(${f} & 65) !== 0`;
        case 8: return `(${f} & 128) !== 0`;
        case 10: return `(${f} & 4) !== 0`;
        case 12: return `(((${f} >> 7) ^ (${f} >> 11)) & 1) !== 0`;
        default: return `(${f} & 64) !== 0 || (((${f} >> 7) ^ (${f} >> 11)) & 1) !== 0`;
      }
    }
    if (cc === 4) return zero;
    if (cc === 8) return sf;
    if (cc === 10) return `P[${p.r} & 255] !== 0`;
    if (p.kind === 'logic') {
      switch (cc) {
        case 0: case 2: return 'false';
        case 6: return zero;
        case 12: return sf;
        default: return `${zero} || ${sf}`;
      }
    }
    if (cc === 2 && (p.kind === 'adc' || p.kind === 'sbb')) return `${this.carry()} !== 0`;
    if (p.kind !== 'sub') return null;
    const { a, b, aH, bH } = p;
    const ltU = (x: string, xh: string, y: string, yh: string) => s === 8 ? `(${xh} !== ${yh} ? ${xh} < ${yh} : ${x} < ${y})` : `(${x} < ${y})`;
    const sx = (x: string) => s === 4 ? `(${x} | 0)` : `((${x} << ${32 - 8 * s}) >> ${32 - 8 * s})`;
    const ltS = (x: string, xh: string, y: string, yh: string) => s === 8 ? `(${xh} !== ${yh} ? (${xh} | 0) < (${yh} | 0) : ${x} < ${y})` : `(${sx(x)} < ${sx(y)})`;
    switch (cc) {
      case 0: {
        const at = s === 8 ? aH : a, bt = s === 8 ? bH : b;
        return `((${at} ^ ${bt}) & (${at} ^ ${rTop}) & ${sg}) !== 0`;
      }
      case 2: return ltU(a, aH, b, bH);
      case 6: return `!${ltU(b, bH, a, aH)}`;
      case 12: return ltS(a, aH, b, bH);
      default: return `!${ltS(b, bH, a, aH)}`; // 14: LE
    }
  }

  /** RIP := next instruction + rel (jumpRel of ops-int.ts). */
  private jumpRel(i: Insn): string {
    const end = i.off + i.len;
    if (i.size === 8 || this.m64) {
      return `t = ((baseLo + ${this.d + end}) >>> 0) + ${i.rel}; c.ripLo = t >>> 0; c.ripHi = (c.ripHi + Math.floor(t * 2.3283064365386963e-10)) | 0;`;
    }
    return i.size === 2 ? `c.ripLo = (baseLo + ${this.d + end} + ${i.rel}) & 65535;` : `c.ripLo = (baseLo + ${this.d + end} + ${i.rel}) >>> 0;`;
  }

  /** Pushes (lo, hi) as 8 bytes (64-bit stack); RSP changes only after the store succeeded. */
  private push8(k: number, lo: string, hi: string): void {
    const g = this.g;
    g.emit(`t = (R[8] >>> 0) - 8; el = t | 0; eh = t < 0 ? (R[9] - 1) | 0 : R[9];`);
    this.store(k, 8, lo, hi);
    g.emit('R[8] = el; R[9] = eh;');
  }

  /** Pops 8 bytes into (lo, hi) locals (64-bit stack). */
  private pop8(k: number, lo: string, hi: string): void {
    const g = this.g;
    g.emit('el = R[8]; eh = R[9];');
    this.load(k, 8, lo, hi);
    g.emit('t = (el >>> 0) + 8; R[8] = t | 0; if (t >= 4294967296) R[9] = (eh + 1) | 0;');
  }

  /** Compiles instruction k inline; `rec` says whether its flags must be recorded. */
  inline(k: number, rec: boolean): void {
    const g = this.g;
    const i = this.insns[k]!;
    const fn = i.fn;
    const size = i.size;
    if (fn === I.hNop) return;
    if (fn === I.hMovRR) {
      g.emit(`R[${i.o0 * 2}] = R[${i.o1 * 2}]; R[${i.o0 * 2 + 1}] = ${size === 8 ? `R[${i.o1 * 2 + 1}]` : '0'};`);
      return;
    }
    if (fn === I.hMovRI) { g.emit(regWrite(i.o0, size, String(i.imm | 0), String(i.immHi | 0))); return; }
    if (fn === I.hLoad || fn === I.hStore || fn === I.hMov) {
      if (i.o1 === MEM) this.ea(k);
      const [v, vh] = this.operand(k, i.o1, size, 'v');
      if (i.o0 === MEM && i.o1 !== MEM) this.ea(k);
      this.writeOperand(k, i.o0, size, v, vh);
      return;
    }
    if (fn === I.hMovx) {
      const ss = i.sub < 0 ? -i.sub : i.sub;
      if (i.o1 === MEM) this.ea(k);
      const [v] = this.operand(k, i.o1, ss, 'v');
      if (i.sub < 0) {
        const sh = 32 - ss * 8;
        const w = g.v(`w${k}`);
        g.emit(`${w} = ${sh ? `(${v} << ${sh}) >> ${sh}` : `${v} | 0`};`);
        g.emit(regWrite(i.o0, size, w, `(${w} >> 31)`));
      } else g.emit(regWrite(i.o0, size, `(${v} | 0)`, '0'));
      return;
    }
    if (fn === I.hLea) {
      const end = i.off + i.len;
      if (i.asz === 8) {
        const lo: string[] = [String(i.disp >>> 0)];
        const hi: string[] = [String(i.dispHi | 0)];
        if (i.base === 16) { lo.push(`((baseLo + ${this.d + end}) >>> 0)`); hi.push('c.ripHi'); }
        else if (i.base >= 0) { lo.push(`(R[${i.base * 2}] >>> 0)`); hi.push(`R[${i.base * 2 + 1}]`); }
        if (i.index >= 0) { lo.push(`(R[${i.index * 2}] >>> 0) * ${i.scale}`); hi.push(`R[${i.index * 2 + 1}] * ${i.scale}`); }
        g.emit(`t = ${lo.join(' + ')}; el = t | 0; eh = (${hi.join(' + ')} + Math.floor(t * 2.3283064365386963e-10)) | 0;`);
      } else {
        const parts: string[] = [String(i.disp | 0)];
        if (i.base === 16) parts.push(`((baseLo + ${this.d + end}) | 0)`);
        else if (i.base >= 0) parts.push(`R[${i.base * 2}]`);
        if (i.index >= 0) parts.push(`Math.imul(R[${i.index * 2}], ${i.scale})`);
        g.emit(`el = (${parts.join(' + ')}) | 0; eh = 0;`);
      }
      g.emit(regWrite(i.o0, size, 'el', 'eh'));
      return;
    }
    if (fn === I.hAluRR || fn === I.hAluRI || fn === I.hAlu || fn === I.hTest) {
      const op = fn === I.hTest ? ALU_AND : i.sub;
      if (i.o0 === MEM || i.o1 === MEM) this.ea(k);
      const [a, aH] = this.operand(k, i.o0, size, 'a');
      const [b, bH] = this.operand(k, i.o1, size, 'b');
      const r = g.v(`r${k}`), rH = g.v(`rh${k}`);
      const m = MASKS[size]!;
      const mask = (e: string) => size === 4 || size === 8 ? `(${e}) >>> 0` : `(${e}) & ${m}`;
      let kind: Producer['kind'];
      if (op === ALU_ADD || op === ALU_SUB || op === ALU_CMP || op === ALU_ADC || op === ALU_SBB) {
        const plus = op === ALU_ADD || op === ALU_ADC;
        const pl = plus ? '+' : '-';
        // ADC / SBB: the carry-in joins the sum.
        const cin = op === ALU_ADC || op === ALU_SBB ? g.v(`c${k}`) : undefined;
        if (cin !== undefined) g.emit(`${cin} = ${this.carry()};`);
        const sum = `${a} ${pl} ${b}${cin !== undefined ? ` ${pl} ${cin}` : ''}`;
        kind = op === ALU_ADC ? 'adc' : op === ALU_SBB ? 'sbb' : plus ? 'add' : 'sub';
        if (size === 8) {
          const carry = plus ? `(t >= 4294967296 ? 1 : 0)` : `(t < 0 ? 1 : 0)`;
          g.emit(`t = ${sum}; ${r} = t >>> 0; ${rH} = (${aH} ${pl} ${bH} ${pl} ${carry}) >>> 0;`);
        } else g.emit(`${r} = ${mask(sum)}; ${rH} = 0;`);
        // The flags after the write: a write that faults leaves them as they were (ADC and SBB run again).
        if (op !== ALU_CMP) this.writeOperand(k, i.o0, size, `(${r} | 0)`, `(${rH} | 0)`);
        const lazy = op === ALU_ADC ? LAZY_ADC : op === ALU_SBB ? LAZY_SBB : plus ? LAZY_ADD : LAZY_SUB;
        if (rec) this.record(lazy, size, a, aH, b, bH, r, rH, cin);
        g.prod = { kind, size, a, b, r, aH, bH, rH, cf: cin };
      } else {
        const o = op === ALU_AND ? '&' : op === ALU_OR ? '|' : '^';
        kind = 'logic';
        g.emit(`${r} = ${mask(`${a} ${o} ${b}`)}; ${rH} = ${size === 8 ? `(${aH} ${o} ${bH}) >>> 0` : '0'};`);
        if (fn !== I.hTest) this.writeOperand(k, i.o0, size, `(${r} | 0)`, `(${rH} | 0)`);
        if (rec) g.emit(`fq = 1; fo = 5; fs = ${size}; fr = ${r}; frh = ${rH};`);
        g.prod = { kind, size, a, b, r, aH, bH, rH };
      }
      return;
    }
    if (fn === I.hIncDec || fn === I.hNeg || fn === I.hNot) {
      if (i.o0 === MEM) this.ea(k);
      const [a, aH] = this.operand(k, i.o0, size, 'a');
      const r = g.v(`r${k}`), rH = g.v(`rh${k}`);
      const m = MASKS[size]!;
      const mask = (e: string) => size === 4 || size === 8 ? `(${e}) >>> 0` : `(${e}) & ${m}`;
      const write = () => this.writeOperand(k, i.o0, size, `(${r} | 0)`, `(${rH} | 0)`);
      // Each writes before it records its flags: a write that faults leaves them as they were.
      if (fn === I.hNot) {
        g.emit(`${r} = ${mask(`~${a}`)}; ${rH} = ${size === 8 ? `(~${aH}) >>> 0` : '0'};`);
        write();
      } else if (fn === I.hNeg) {
        if (size === 8) g.emit(`t = 0 - ${a}; ${r} = t >>> 0; ${rH} = (0 - ${aH} - (t < 0 ? 1 : 0)) >>> 0;`);
        else g.emit(`${r} = ${mask(`0 - ${a}`)}; ${rH} = 0;`);
        write();
        if (rec) this.record(3, size, '0', '0', a, aH, r, rH);
        g.prod = { kind: 'sub', size, a: '0', aH: '0', b: a, bH: aH, r, rH };
      } else {
        const inc = i.sub === 0;
        const pl = inc ? '+' : '-';
        if (size === 8) {
          const carry = inc ? `(t >= 4294967296 ? 1 : 0)` : `(t < 0 ? 1 : 0)`;
          g.emit(`t = ${a} ${pl} 1; ${r} = t >>> 0; ${rH} = (${aH} ${pl} ${carry}) >>> 0;`);
        } else g.emit(`${r} = ${mask(`${a} ${pl} 1`)}; ${rH} = 0;`);
        let cf: string | undefined;
        if (rec) {
          cf = g.v(`c${k}`);
          g.emit(`${cf} = ${this.carry()};`);
        }
        write();
        if (rec) this.record(inc ? 6 : 7, size, a, aH, '1', '0', r, rH, cf);
        g.prod = { kind: inc ? 'inc' : 'dec', size, a, b: '1', r, aH, bH: '0', rH, cf };
      }
      return;
    }
    if (fn === I.hMulDiv) { // MUL (classify admits no other): RDX:RAX := RAX * source
      if (rec) { this.fallback(k); return; }
      if (i.o0 === MEM) this.ea(k);
      const [b, bH] = this.operand(k, i.o0, size, 'b');
      if (size === 8) g.emit(`MU(R[0] >>> 0, R[1] >>> 0, ${b}, ${bH}); R[0] = MP[0] | 0; R[1] = MP[1] | 0; R[4] = MP[2] | 0; R[5] = MP[3] | 0;`);
      else g.emit(`MU32(R[0] >>> 0, ${b}); R[0] = MP[0] | 0; R[1] = 0; R[4] = MP[1] | 0; R[5] = 0;`);
      g.prod = null;
      return;
    }
    if (fn === I.hImul2) {
      // With live flags the handler runs (CF/OF from the full product); otherwise only the product.
      if (rec) { this.fallback(k); return; }
      if (i.o1 === MEM) this.ea(k);
      const [a, aH] = this.operand(k, i.o1, size, 'a');
      const [b, bH] = this.operand(k, i.o2 === IMM ? IMM : i.o0, size, 'b');
      if (size === 8) {
        // The low 64 bits: the low words' full product, plus the cross products' low words.
        g.emit(`MU32(${a}, ${b});`);
        g.emit(regWrite(i.o0, 8, 'MP[0] | 0', `(MP[1] + Math.imul(${a}, ${bH}) + Math.imul(${aH}, ${b})) | 0`));
      } else g.emit(regWrite(i.o0, size, `Math.imul(${a}, ${b})`, '0'));
      g.prod = null;
      return;
    }
    if (fn === I.hShift && size === 8) { this.shift64(k, rec); return; }
    if (fn === I.hShift) {
      if (i.o0 === MEM) this.ea(k);
      const [a] = this.operand(k, i.o0, size, 'a');
      const r = g.v(`r${k}`), f = g.v(`f${k}`);
      const w = size * 8, m = MASKS[size]!, sg = SIGNS[size]!;
      const n = i.imm & 31;
      const sub = i.sub === 6 ? 4 : i.sub;
      let cf: string, of = '0';
      if (sub === 4) { // SHL
        g.emit(`${r} = ${n >= w ? '0' : `((${a} << ${n}) & ${m}) >>> 0`};`);
        cf = n > w ? '0' : `((${a} >>> ${w - n}) & 1)`;
        of = `((((${r} & ${sg}) !== 0 ? 1 : 0) ^ ${cf}) !== 0 ? 2048 : 0)`;
      } else if (sub === 5) { // SHR
        g.emit(`${r} = ${n >= w ? '0' : `${a} >>> ${n}`};`);
        cf = n > w ? '0' : `((${a} >>> ${n - 1}) & 1)`;
        if (n === 1) of = `((${a} & ${sg}) !== 0 ? 2048 : 0)`;
      } else { // SAR
        const sh = 32 - w;
        const sa = sh ? `((${a} << ${sh}) >> ${sh})` : `(${a} | 0)`;
        g.emit(`${r} = ((${sa} >> ${n}) & ${m}) >>> 0;`);
        cf = `((${sa} >> ${n - 1}) & 1)`;
      }
      this.writeOperand(k, i.o0, size, `(${r} | 0)`, '0'); // before the flags: a write that faults leaves them
      if (rec) {
        g.emit(`${f} = ${cf} | (${r} === 0 ? 64 : 0) | P[${r} & 255] | ((${r} & ${sg}) !== 0 ? 128 : 0) | 16 | ${of};`);
        g.emit(`fq = 1; fo = 0; fx = ${f};`);
        g.prod = { kind: 'eager', size, a: '', b: '', r: f, aH: '', bH: '', rH: '' };
      } else g.prod = null;
      return;
    }
    if (fn === I.hCmov) {
      if (i.o1 === MEM) this.ea(k);
      const [v, vh] = this.operand(k, i.o1, size, 'v');
      g.emit(`if (${this.cond(i.sub)}) { ${regWrite(i.o0, size, `(${v} | 0)`, `(${vh} | 0)`)} }` +
        (size === 4 ? ` else R[${i.o0 * 2 + 1}] = 0;` : ''));
      return;
    }
    if (fn === I.hSetcc) {
      g.emit(regWrite(i.o0, 1, `(${this.cond(i.sub)} ? 1 : 0)`, '0'));
      return;
    }
    if (fn === I.hPushR64) { this.push8(k, `R[${i.o0 * 2}]`, `R[${i.o0 * 2 + 1}]`); return; }
    if (fn === I.hPush) { this.push8(k, String(i.imm | 0), String(i.immHi | 0)); return; }
    if (fn === I.hPop) {
      const v = g.v(`v${k}`), vh = g.v(`vh${k}`);
      this.pop8(k, v, vh);
      g.emit(regWrite(i.o0, 8, v, vh));
      return;
    }
    // Control transfers (always the block's last instruction).
    const end = i.off + i.len;
    const fall = this.d + end, target = fall + i.rel;
    if (fn === I.hJcc) {
      g.emit(`if (${this.cond(i.sub)}) { ${this.direct(i, target, this.jumpRel(i))} }`);
      g.emit(this.direct(null, fall, `c.ripLo = baseLo + ${fall};`));
      return;
    }
    if (fn === I.hJmpRel) { g.emit(this.direct(i, target, this.jumpRel(i))); return; }
    if (fn === I.hCallRel) {
      this.push8(k, `((baseLo + ${fall}) | 0)`, 'c.ripHi');
      g.emit(`${this.jumpRel(i)} ${this.leave(target)}`);
      return;
    }
    if (fn === I.hRet) {
      const v = g.v(`v${k}`), vh = g.v(`vh${k}`);
      this.pop8(k, v, vh);
      g.emit(`c.ripLo = ${v} >>> 0; c.ripHi = ${vh} | 0; ${this.leave(null)}`);
      return;
    }
    throw new Error(`jit: no inline form for mnemonic ${i.mnem}`);
  }

  /** SHL/SHR/SAR of a 64-bit operand by a non-zero immediate (the flags of x86/alu.ts). */
  private shift64(k: number, rec: boolean): void {
    const g = this.g;
    const i = this.insns[k]!;
    if (i.o0 === MEM) this.ea(k);
    const [a, aH] = this.operand(k, i.o0, 8, 'a');
    const r = g.v(`r${k}`), rH = g.v(`rh${k}`), f = g.v(`f${k}`);
    const n = i.imm & 63;
    const sub = i.sub === 6 ? 4 : i.sub;
    const bit = (b: number) => b >= 32 ? `((${aH} >>> ${b - 32}) & 1)` : `((${a} >>> ${b}) & 1)`;
    let cf: string, of = '0';
    if (sub === 4) { // SHL
      if (n < 32) g.emit(`${rH} = ((${aH} << ${n}) | (${a} >>> ${32 - n})) >>> 0; ${r} = (${a} << ${n}) >>> 0;`);
      else g.emit(`${rH} = (${a} << ${n - 32}) >>> 0; ${r} = 0;`);
      cf = bit(64 - n);
      of = `(((${rH} >>> 31) ^ ${cf}) !== 0 ? 2048 : 0)`;
    } else if (sub === 5) { // SHR
      if (n < 32) g.emit(`${r} = ((${a} >>> ${n}) | (${aH} << ${32 - n})) >>> 0; ${rH} = ${aH} >>> ${n};`);
      else g.emit(`${r} = ${aH} >>> ${n - 32}; ${rH} = 0;`);
      cf = bit(n - 1);
      if (n === 1) of = `((${aH} & 2147483648) !== 0 ? 2048 : 0)`;
    } else { // SAR
      if (n < 32) g.emit(`${r} = ((${a} >>> ${n}) | (${aH} << ${32 - n})) >>> 0; ${rH} = ((${aH} | 0) >> ${n}) >>> 0;`);
      else g.emit(`${r} = ((${aH} | 0) >> ${n - 32}) >>> 0; ${rH} = ((${aH} | 0) >> 31) >>> 0;`);
      cf = n - 1 >= 32 ? `(((${aH} | 0) >> ${n - 33}) & 1)` : `((${a} >>> ${n - 1}) & 1)`;
    }
    this.writeOperand(k, i.o0, 8, `(${r} | 0)`, `(${rH} | 0)`); // before the flags: a write that faults leaves them
    if (rec) {
      g.emit(`${f} = ${cf} | ((${r} | ${rH}) === 0 ? 64 : 0) | P[${r} & 255] | ((${rH} & 2147483648) !== 0 ? 128 : 0) | 16 | ${of};`);
      g.emit(`fq = 1; fo = 0; fx = ${f};`);
      g.prod = { kind: 'eager', size: 8, a: '', b: '', r: f, aH: '', bH: '', rH: '' };
    } else g.prod = null;
  }

  /** Calls the interpreter handler of instruction k. */
  fallback(k: number): void {
    this.g.emit(`${this.sync(k)} F[${this.fi + k}](c, I[${this.fi + k}]); us = c.user;`);
    this.g.prod = null;
  }
}

/** May the block write memory or call a handler (and so invalidate compiled code)? `info`: classify() of each instruction. */
export function mayWriteMemory(insns: Insn[], info: Info[]): boolean {
  return insns.some((i, k) => !info[k]!.inline || (i.o0 === MEM && i.fn !== I.hTest && !(i.fn === I.hAlu && i.sub === ALU_CMP)) ||
    i.fn === I.hPushR64 || i.fn === I.hPush || i.fn === I.hCallRel || i.fn === I.hCallInd);
}

/** Flag liveness of one block: which producers must record their flags. */
export function liveness(info: Info[]): boolean[] {
  const n = info.length;
  const rec: boolean[] = new Array<boolean>(n).fill(true);
  let live: boolean = true; // everything is live where the block ends
  for (let k = n - 1; k >= 0; k--) {
    const f = info[k]!;
    rec[k] = live;
    if (!f.inline) { live = true; continue; }
    let l: boolean = live;
    if (f.w === 1) l = false; // INC/DEC (w 2) read CF only when their own flags are needed: l stays
    if (f.r || f.f) l = true;
    live = l;
  }
  return rec;
}

/** Appends the code of one block of a region. */
function blockCode(g: Gen, b: JitBlock, d: number, members: Set<number>, fi: number): void {
  const insns = b.insns;
  const n = insns.length;
  const m64 = b.mode === 64;
  const info = insns.map((i) => classify(i, m64));
  const rec = liveness(info);
  const cp = new Compiler(g, insns, m64, d, members, fi);
  for (let k = 0; k < n; k++) {
    if (info[k]!.inline) cp.inline(k, rec[k]!);
    else cp.fallback(k);
  }
  const last = insns[n - 1]!;
  const jumps = info[n - 1]!.inline && (last.fn === I.hJcc || last.fn === I.hJmpRel || last.fn === I.hCallRel || last.fn === I.hRet);
  if (jumps) return;
  if (info[n - 1]!.inline || !last.term) {
    // Fell off the end (a page end, the size limit, or a handler that does not branch).
    const fall = d + last.off + last.len;
    if (info[n - 1]!.inline) g.emit(`c.ripLo = baseLo + ${fall};`);
    g.emit(`ic += ${n}; if (c.ripLo === baseLo + ${fall} && c.ripHi === bh && --lim > 0 && B.valid && ${members.has(fall)}) { pc = ${fall}; continue; } ${FLUSH} return;`);
  } else {
    g.emit(`ic += ${n}; ${FLUSH} return;`);
  }
}

/**
 * A region: the entry block (offset 0) and other blocks of the same page and mode, each with its
 * linear offset from the entry. Generates the function body (exported for tests and debugging).
 */
export function regionSource(blocks: JitBlock[], offsets: number[]): string {
  const g = new Gen(blocks[0]!.mode === 64);
  const members = new Set(offsets);
  const cases: string[] = [];
  for (let j = 0, fi = 0; j < blocks.length; fi += blocks[j]!.insns.length, j++) {
    const start = g.out.length;
    blockCode(g, blocks[j]!, offsets[j]!, members, fi);
    cases.push(`case ${offsets[j]!}: {\n${g.out.slice(start).join('\n')}\n}`);
  }
  const decls = ['t = 0', 'o = 0', 'x = 0', 'y = 0', 'el = 0', 'eh = 0',
    'ic = 0', 'fq = 0', 'fo = 0', 'fs = 0', 'fa = 0', 'fah = 0', 'fb = 0', 'fbh = 0', 'fr = 0', 'frh = 0', 'fx = 0', ...[...g.decls].map((d) => `${d} = 0`)];
  return `let ${decls.join(', ')};\nconst bh = c.ripHi;\nlet lim = X.loopMax, pc = 0, us = c.user;\n` +
    `for (;;) {\nswitch (pc) {\n${cases.join('\n')}\ndefault: c.ripLo = baseLo + pc; ${FLUSH} return;\n}\n}`;
}

/** Can the compiler do anything with this block (is any instruction inline)? */
export function worthCompiling(b: JitBlock): boolean {
  const m64 = b.mode === 64;
  return b.insns.some((i) => classify(i, m64).inline);
}

/**
 * Compiles a region of CPU `c` (see regionSource). The function counts the instructions of every
 * block it completes into host.icount; on a fault, the executor adds the faulting instruction's
 * index, found with `faultIndex` from c.curLo - baseLo.
 */
export function compileRegion(blocks: JitBlock[], offsets: number[], c: Cpu, host: JitHost): JitFn {
  const src = regionSource(blocks, offsets);
  if (host.dump !== null) host.dump(`--- region\n${src}`);
  const entry = blocks[0]!;
  const handlers: Handler[] = [], recs: Insn[] = [];
  // Handlers and records by block: F[k] / I[k] in the generated code index one flat list.
  for (const b of blocks) for (const i of b.insns) { handlers.push(i.fn); recs.push(i); }
  // The parenthesized function is compiled with the factory, not lazily at its first call.
  const factory = new Function('c', 'R', 'lz', 'TL', 'TH', 'TD', 'TB', 'TO', 'EB', 'EBH', 'P', 'F', 'I', 'B', 'X', 'CF', 'MU32', 'MU', 'MP', 'FL',
    `'use strict';\nreturn (function region(baseLo) {\n${src}\n});`) as (...a: unknown[]) => JitFn;
  return factory(c, c.regs, c.lz, c.tlbTagLo, c.tlbTagHi, c.tlbDv, c.tlbBytes, c.tlbOff, c.effBaseLo, c.effBaseHi, PARITY,
    handlers, recs, entry, host, lazyCarry, mulU32, mulU64, mulProduct, flushPending);
}

/** Index within its block of the region instruction at linear offset `off` from the entry, and the record. */
export function faultIndex(blocks: JitBlock[], offsets: number[], off: number): { k: number; insn: Insn } | null {
  for (let j = 0; j < blocks.length; j++) {
    const ins = blocks[j]!.insns;
    for (let k = 0; k < ins.length; k++) if (offsets[j]! + ins[k]!.off === off) return { k, insn: ins[k]! };
  }
  return null;
}
