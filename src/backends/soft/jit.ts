/**
 * The soft CPU's block compiler: a hot decoded block (exec.ts Block, its Insn records) becomes one
 * JS function built with `new Function`, straight-line code over the Cpu's typed arrays.
 *
 * What the generated code does, and why it stays exact:
 * - Registers are read and written in `c.regs` directly (no register caching), so any helper or
 *   interpreter handler the block calls sees the architectural state, and so does a fault.
 * - Status flags go into `c.lz` (the interpreter's LazyFlags) with the same encoding the handlers
 *   use. A backward liveness pass drops the recording of a producer whose flags are overwritten
 *   before anything reads them or can fault; a Jcc/CMOVcc/SETcc after a producer of the same block
 *   evaluates its condition from the producer's operands in locals.
 * - Loads and stores use an inline TLB hit test (the Cpu's direct-mapped TLB sets, user bit in
 *   the tag); on a miss, a page-crossing access or anything unusual they call the Cpu's rd/wr,
 *   which walk, fault or exit. Before such a call (and before any interpreter handler) the code
 *   sets c.curLo / c.ripLo exactly as the interpreter would have them for that instruction, so a
 *   fault or exit rolls back to the right RIP; the executor finds the faulting instruction (for
 *   the instruction count) from c.curLo.
 * - Instructions the compiler does not know are executed by their interpreter handler.
 * - A block whose last instruction branches back to its own start loops inside the function
 *   (bounded by `loopMax` iterations, and left as soon as the block is invalidated by a write to
 *   its code page); the instruction count is kept exact across iterations.
 * Only 64-bit code gets inline memory accesses and stack operations; other modes compile the
 * register instructions and call handlers for the rest.
 */
import { PARITY } from '../../x86/flags.js';
import { TLB_SIZE, type Cpu } from './cpu.js';
import { IMM, MEM, type Insn } from './insn.js';
import * as I from './ops-int.js';

/** A compiled block: runs it from linear RIP (baseLo, c.curHi); leaves c.ripLo/ripHi after it. */
export type JitFn = (baseLo: number) => void;

/** What the compiler needs of the executor and the block (kept structural to avoid an import cycle). */
export interface JitBlock {
  readonly mode: number;
  readonly insns: Insn[];
  valid: boolean;
}
export interface JitHost {
  icount: number;
  /** Most iterations a self-looping block runs per call. */
  loopMax: number;
}

const ALU_ADD = 0, ALU_OR = 1, ALU_AND = 4, ALU_SUB = 5, ALU_XOR = 6, ALU_CMP = 7;
const MASKS = [0, 0xff, 0xffff, 0, 0xffffffff, 0, 0, 0, 0xffffffff];
const SIGNS = [0, 0x80, 0x8000, 0, 0x80000000, 0, 0, 0, 0x80000000];

/** The last flag producer of the block: how to evaluate a condition from its locals. */
interface Producer {
  kind: 'add' | 'sub' | 'logic' | 'inc' | 'dec' | 'eager';
  size: number;
  a: string; b: string; r: string;
  aH: string; bH: string; rH: string;
}

/** Per-instruction facts for the flag liveness pass. */
interface Info {
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
function classify(i: Insn, m64: boolean): Info {
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
    if (fn !== I.hTest && !isFastAlu(i.sub)) return fb;
    if (!memOk(i.o0) || !memOk(i.o1)) return fb;
    if (!(i.o0 >= 0 || i.o0 === MEM) || !(i.o1 >= 0 || i.o1 === MEM || i.o1 === IMM)) return fb;
    return { w: 1, r: false, f: mem, inline: true };
  }
  if (fn === I.hIncDec || fn === I.hNeg || fn === I.hNot) {
    if (!memOk(i.o0) || !(i.o0 >= 0 || i.o0 === MEM)) return fb;
    return { w: fn === I.hIncDec ? 2 : fn === I.hNeg ? 1 : 0, r: false, f: mem, inline: true };
  }
  if (fn === I.hShift) {
    const sub = i.sub;
    if (i.o1 !== IMM || i.size === 8 || !(sub === 4 || sub === 5 || sub === 6 || sub === 7)) return fb;
    if ((i.imm & 31) === 0 || !memOk(i.o0) || !(i.o0 >= 0 || i.o0 === MEM)) return fb;
    return { w: 1, r: false, f: mem, inline: true };
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
  readonly g: Gen;
  constructor(readonly insns: Insn[], readonly m64: boolean) {
    this.g = new Gen(m64);
  }

  /** The statements that make RIP state exact for instruction k before a call that may fault. */
  private sync(k: number): string {
    const i = this.insns[k]!;
    return `c.curLo = baseLo + ${i.off}; c.ripLo = baseLo + ${i.off + i.len};`;
  }

  /** Computes the linear address of i's memory operand into el/eh (64-bit addressing). */
  private ea(k: number): void {
    const i = this.insns[k]!;
    const lo: string[] = [String(i.disp >>> 0)];
    const hi: string[] = [String(i.dispHi | 0)];
    if (i.base === 16) { lo.push(`((baseLo + ${i.off + i.len}) >>> 0)`); hi.push('c.ripHi'); }
    else if (i.base >= 0) { lo.push(`(R[${i.base * 2}] >>> 0)`); hi.push(`R[${i.base * 2 + 1}]`); }
    if (i.index >= 0) {
      lo.push(`(R[${i.index * 2}] >>> 0) * ${i.scale}`);
      hi.push(`R[${i.index * 2 + 1}] * ${i.scale}`);
    }
    if (i.seg >= 4) { lo.push(`(EB[${i.seg}] >>> 0)`); hi.push(`EBH[${i.seg}]`); }
    this.g.emit(`t = ${lo.join(' + ')}; el = t | 0; eh = (${hi.join(' + ')} + (t - (t >>> 0)) / 4294967296) | 0;`);
  }

  /** Loads `size` bytes at (el, eh) into dst (and dstH for size 8); int32 bit patterns. */
  private load(k: number, size: number, dst: string, dstH: string): void {
    const g = this.g;
    const lim = 4096 - size;
    const hit = `TL[x] === ((el & -4096) | c.user) && TH[x] === eh${size > 1 ? ` && (el & 4095) <= ${lim}` : ''}`;
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
    const hit = `TL[y] === ((el & -4096) | c.user) && TH[y] === eh${size > 1 ? ` && (el & 4095) <= ${lim}` : ''}`;
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

  private record(op: number, size: number, a: string, aH: string, b: string, bH: string, r: string, rH: string, aux?: string): void {
    this.g.emit(`lz.op = ${op}; lz.size = ${size}; lz.aLo = ${a}; lz.aHi = ${aH}; lz.bLo = ${b}; lz.bHi = ${bH}; ` +
      `lz.rLo = ${r}; lz.rHi = ${rH};${aux !== undefined ? ` lz.aux = ${aux};` : ''}`);
  }

  /** A condition code as a JS boolean expression, from the block's last producer if it is known. */
  private cond(cc: number): string {
    const p = this.g.prod;
    const t = p === null ? null : this.condFrom(p, cc & ~1);
    if (t === null) return `lz.cond(${cc})`;
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
      return `t = ((baseLo + ${end}) >>> 0) + ${i.rel}; c.ripLo = t >>> 0; c.ripHi = (c.ripHi + (t - (t >>> 0)) / 4294967296) | 0;`;
    }
    return i.size === 2 ? `c.ripLo = (baseLo + ${end} + ${i.rel}) & 65535;` : `c.ripLo = (baseLo + ${end} + ${i.rel}) >>> 0;`;
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
  inline(k: number, rec: boolean, loopHead: boolean): void {
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
        if (i.base === 16) { lo.push(`((baseLo + ${end}) >>> 0)`); hi.push('c.ripHi'); }
        else if (i.base >= 0) { lo.push(`(R[${i.base * 2}] >>> 0)`); hi.push(`R[${i.base * 2 + 1}]`); }
        if (i.index >= 0) { lo.push(`(R[${i.index * 2}] >>> 0) * ${i.scale}`); hi.push(`R[${i.index * 2 + 1}] * ${i.scale}`); }
        g.emit(`t = ${lo.join(' + ')}; el = t | 0; eh = (${hi.join(' + ')} + (t - (t >>> 0)) / 4294967296) | 0;`);
      } else {
        const parts: string[] = [String(i.disp | 0)];
        if (i.base === 16) parts.push(`((baseLo + ${end}) | 0)`);
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
      if (op === ALU_ADD || op === ALU_SUB || op === ALU_CMP) {
        const pl = op === ALU_ADD ? '+' : '-';
        kind = op === ALU_ADD ? 'add' : 'sub';
        if (size === 8) {
          const carry = op === ALU_ADD ? `(t >= 4294967296 ? 1 : 0)` : `(t < 0 ? 1 : 0)`;
          g.emit(`t = ${a} ${pl} ${b}; ${r} = t >>> 0; ${rH} = (${aH} ${pl} ${bH} ${pl} ${carry}) >>> 0;`);
        } else g.emit(`${r} = ${mask(`${a} ${pl} ${b}`)}; ${rH} = 0;`);
        if (rec) this.record(op === ALU_ADD ? 1 : 3, size, a, aH, b, bH, r, rH);
      } else {
        const o = op === ALU_AND ? '&' : op === ALU_OR ? '|' : '^';
        kind = 'logic';
        g.emit(`${r} = ${mask(`${a} ${o} ${b}`)}; ${rH} = ${size === 8 ? `(${aH} ${o} ${bH}) >>> 0` : '0'};`);
        if (rec) g.emit(`lz.op = 5; lz.size = ${size}; lz.rLo = ${r}; lz.rHi = ${rH};`);
      }
      g.prod = { kind, size, a, b, r, aH, bH, rH };
      if (op !== ALU_CMP && fn !== I.hTest) this.writeOperand(k, i.o0, size, `(${r} | 0)`, `(${rH} | 0)`);
      return;
    }
    if (fn === I.hIncDec || fn === I.hNeg || fn === I.hNot) {
      if (i.o0 === MEM) this.ea(k);
      const [a, aH] = this.operand(k, i.o0, size, 'a');
      const r = g.v(`r${k}`), rH = g.v(`rh${k}`);
      const m = MASKS[size]!;
      const mask = (e: string) => size === 4 || size === 8 ? `(${e}) >>> 0` : `(${e}) & ${m}`;
      if (fn === I.hNot) {
        g.emit(`${r} = ${mask(`~${a}`)}; ${rH} = ${size === 8 ? `(~${aH}) >>> 0` : '0'};`);
      } else if (fn === I.hNeg) {
        if (size === 8) g.emit(`t = 0 - ${a}; ${r} = t >>> 0; ${rH} = (0 - ${aH} - (t < 0 ? 1 : 0)) >>> 0;`);
        else g.emit(`${r} = ${mask(`0 - ${a}`)}; ${rH} = 0;`);
        if (rec) this.record(3, size, '0', '0', a, aH, r, rH);
        g.prod = { kind: 'sub', size, a: '0', aH: '0', b: a, bH: aH, r, rH };
      } else {
        const inc = i.sub === 0;
        const pl = inc ? '+' : '-';
        if (size === 8) {
          const carry = inc ? `(t >= 4294967296 ? 1 : 0)` : `(t < 0 ? 1 : 0)`;
          g.emit(`t = ${a} ${pl} 1; ${r} = t >>> 0; ${rH} = (${aH} ${pl} ${carry}) >>> 0;`);
        } else g.emit(`${r} = ${mask(`${a} ${pl} 1`)}; ${rH} = 0;`);
        if (rec) {
          g.emit('t = lz.cf();');
          this.record(inc ? 6 : 7, size, a, aH, '1', '0', r, rH, 't');
        }
        g.prod = { kind: inc ? 'inc' : 'dec', size, a, b: '1', r, aH, bH: '0', rH };
      }
      this.writeOperand(k, i.o0, size, `(${r} | 0)`, `(${rH} | 0)`);
      return;
    }
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
      if (rec) {
        g.emit(`${f} = ${cf} | (${r} === 0 ? 64 : 0) | P[${r} & 255] | ((${r} & ${sg}) !== 0 ? 128 : 0) | 16 | ${of};`);
        g.emit(`lz.op = 0; lz.aux = ${f};`);
        g.prod = { kind: 'eager', size, a: '', b: '', r: f, aH: '', bH: '', rH: '' };
      } else g.prod = null;
      this.writeOperand(k, i.o0, size, `(${r} | 0)`, '0');
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
    const loop = loopHead && i.rel + end === 0;
    const taken = loop
      ? `${this.jumpRel(i)} if (c.ripLo === baseLo && c.ripHi === bh && ++it < lim && B.valid) { X.icount += N; continue; } return;`
      : `${this.jumpRel(i)} return;`;
    if (fn === I.hJcc) {
      g.emit(`if (${this.cond(i.sub)}) { ${taken} }`);
      g.emit(`c.ripLo = baseLo + ${end}; return;`);
      return;
    }
    if (fn === I.hJmpRel) { g.emit(taken); return; }
    if (fn === I.hCallRel) {
      this.push8(k, `((baseLo + ${end}) | 0)`, 'c.ripHi');
      g.emit(`${this.jumpRel(i)} return;`);
      return;
    }
    if (fn === I.hRet) {
      const v = g.v(`v${k}`), vh = g.v(`vh${k}`);
      this.pop8(k, v, vh);
      g.emit(`c.ripLo = ${v} >>> 0; c.ripHi = ${vh} | 0; return;`);
      return;
    }
    throw new Error(`jit: no inline form for mnemonic ${i.mnem}`);
  }

  /** Calls the interpreter handler of instruction k. */
  fallback(k: number): void {
    this.g.emit(`${this.sync(k)} F[${k}](c, I[${k}]);`);
    this.g.prod = null;
  }
}

/** True when the last instruction is a direct jump back to the block's first byte. */
function selfLoop(insns: Insn[]): boolean {
  const t = insns[insns.length - 1]!;
  return (t.fn === I.hJcc || t.fn === I.hJmpRel) && t.rel + t.off + t.len === 0;
}

/** Generates the JS source of a block's function body (exported for tests and debugging). */
export function blockSource(b: JitBlock): string {
  const insns = b.insns;
  const n = insns.length;
  const m64 = b.mode === 64;
  const info = insns.map((i) => classify(i, m64));
  // Flag liveness, backwards from the block's end (where everything is live).
  const rec: boolean[] = new Array<boolean>(n).fill(true);
  let live: boolean = true;
  for (let k = n - 1; k >= 0; k--) {
    const f = info[k]!;
    rec[k] = live;
    if (!f.inline) { live = true; continue; }
    let l: boolean = live;
    if (f.w === 1) l = false;
    else if (f.w === 2) l = live; // INC/DEC read CF only when their own flags are needed
    if (f.r || f.f) l = true;
    live = l;
  }
  const loop = selfLoop(insns) && info[n - 1]!.inline;
  const cp = new Compiler(insns, m64);
  const g = cp.g;
  for (let k = 0; k < n; k++) {
    if (info[k]!.inline) cp.inline(k, rec[k]!, loop);
    else cp.fallback(k);
  }
  const last = insns[n - 1]!;
  const lastIsJump = info[n - 1]!.inline && (last.fn === I.hJcc || last.fn === I.hJmpRel || last.fn === I.hCallRel || last.fn === I.hRet);
  if (!lastIsJump) {
    // Fell off the end (or a handler ended the block): RIP after the last instruction unless the
    // handler moved it.
    if (info[n - 1]!.inline) g.emit(`c.ripLo = baseLo + ${last.off + last.len};`);
    g.emit('return;');
  }
  const decls = ['t = 0', 'o = 0', 'x = 0', 'y = 0', 'el = 0', 'eh = 0', ...[...g.decls].map((d) => `${d} = 0`)];
  const body = g.out.join('\n');
  const head = `let ${decls.join(', ')};\nconst bh = c.ripHi;\n`;
  if (loop) {
    return `${head}const lim = X.loopMax; let it = 0;\nfor (;;) {\n${body}\n}`;
  }
  return `${head}${body}`;
}

/** Compiles block `b` of CPU `c`; null when the block is not worth it (nothing inline). */
export function compileBlock(b: JitBlock, c: Cpu, host: JitHost): JitFn | null {
  const insns = b.insns;
  const m64 = b.mode === 64;
  if (!insns.some((i) => classify(i, m64).inline)) return null;
  const src = blockSource(b);
  if (process.env.TSVMM_JIT_DUMP) console.error('---', src);
  const factory = new Function('c', 'R', 'lz', 'TL', 'TH', 'TD', 'TB', 'TO', 'EB', 'EBH', 'P', 'F', 'I', 'B', 'X', 'N',
    `'use strict';\nreturn function blk(baseLo) {\n${src}\n};`) as (...a: unknown[]) => JitFn;
  return factory(c, c.regs, c.lz, c.tlbTagLo, c.tlbTagHi, c.tlbDv, c.tlbBytes, c.tlbOff, c.effBaseLo, c.effBaseHi, PARITY,
    insns.map((i) => i.fn), insns, b, host, insns.length);
}
