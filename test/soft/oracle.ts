/**
 * The real CPU as the soft CPU's oracle: a seeded generator of user-mode instruction sequences,
 * and a harness that runs the same image at CPL 3 in 64-bit mode on two backends through the tsvmm
 * API and compares what each sequence left behind.
 *
 * Image and memory layout (identity-mapped with 2 MiB user pages over the first 16 MiB):
 *   0x10000 GDT, 0x12000 TSS, 0x20000 page tables, 0x100000 code, 0x800000 top of the user stack,
 *   0x800000 + 1024*k the block of sequence k: [0,120) initial GPRs (15 of them, not RSP/R15... see
 *   INIT_REGS), [120,128) initial RFLAGS, [128,256) scratch memory the sequence may touch (random
 *   bytes), [256,384) the GPRs and the masked RFLAGS it ended with, [384,388) the MXCSR it ended with,
 *   [392,396) its initial MXCSR, [400,416) a temporary for x87 constants, [512,768) initial XMM0-15,
 *   [768,1024) the XMM0-15 it ended with.
 * SSE/SSE2 instructions (moves, integer, floating point incl. conversions under every MXCSR
 * rounding mode, DAZ/FTZ) and x87 blocks run with all exceptions masked. x87 blocks set FCW.PC to
 * double precision and store every result as a double (the soft CPU's precision policy), and
 * FLD/FSTP m80 round trips of exact 80-bit values.
 * Each sequence: R15 = its block, load registers and flags, the random instructions, store the
 * registers and RFLAGS masked to the flags the generator knows to be defined at that point. The
 * image ends with OUT (IOPL = 3), which exits on both backends.
 */
import type { Backend } from '../../src/nvmm/backend.js';
import { GPR, STATE } from '../../src/nvmm/state.js';
import { enterLongModeUser, runToExit, withRamMachine } from '../helpers/machine.js';
import { assembleText } from '../helpers/nasm.js';

export const RAM_SIZE = 16 << 20;
const GDT = 0x10000, TSS = 0x12000, PT = 0x20000, CODE = 0x100000, STACK_TOP = 0x800000;
export const DATA = 0x800000;
export const BLOCK = 1024;
const END_PORT = 0x99;

// Flags.
const CF = 1, PF = 4, AF = 0x10, ZF = 0x40, SF = 0x80, OF = 0x800, ALL = CF | PF | AF | ZF | SF | OF;

/** A small deterministic PRNG (xorshift32). */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = (seed >>> 0) || 0x9e3779b9; }
  next(): number { let x = this.s; x ^= x << 13; x ^= x >>> 17; x ^= x << 5; this.s = x >>> 0; return this.s; }
  int(n: number): number { return this.next() % n; }
  pick<T>(a: readonly T[]): T { return a[this.int(a.length)]!; }
  chance(p: number): boolean { return this.next() / 4294967296 < p; }
}

const R64 = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14'];
const R32 = ['eax', 'ebx', 'ecx', 'edx', 'esi', 'edi', 'ebp', 'r8d', 'r9d', 'r10d', 'r11d', 'r12d', 'r13d', 'r14d'];
const R16 = ['ax', 'bx', 'cx', 'dx', 'si', 'di', 'bp', 'r8w', 'r9w', 'r10w', 'r11w', 'r12w', 'r13w', 'r14w'];
const R8 = ['al', 'bl', 'cl', 'dl', 'sil', 'dil', 'bpl', 'r8b', 'r9b', 'r10b', 'r11b', 'r12b', 'r13b', 'r14b'];
const R8_LEGACY = ['al', 'bl', 'cl', 'dl', 'ah', 'bh', 'ch', 'dh'];
/** Order of the registers in a block's initial and final areas. */
export const INIT_REGS = R64;
const SIZES = [1, 2, 4, 8] as const;
const PTR = { 1: 'byte', 2: 'word', 4: 'dword', 8: 'qword' } as const;
const CC = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];
const CC_NEEDS = [OF, OF, CF, CF, ZF, ZF, CF | ZF, CF | ZF, SF, SF, PF, PF, SF | OF, SF | OF, ZF | SF | OF, ZF | SF | OF];

type Size = 1 | 2 | 4 | 8;

/** Generates one sequence's instructions, tracking which status flags are defined. */
class SeqGen {
  readonly out: string[] = [];
  def = ALL;
  simd = true;
  private label = 0;
  constructor(private readonly r: Rng, private readonly tag: string) {}

  private reg(size: Size, legacy8 = false): string {
    const i = this.r.int(R64.length);
    switch (size) {
      case 1: return legacy8 ? this.r.pick(R8_LEGACY) : R8[i]!;
      case 2: return R16[i]!;
      case 4: return R32[i]!;
      default: return R64[i]!;
    }
  }
  private regNoCx(size: Size): string {
    let v: string;
    do v = this.reg(size); while (/^(r?cx|ecx|cl)$/.test(v));
    return v;
  }
  private mem(size: Size, room = 8): string {
    return `${PTR[size]} [r15 + ${128 + this.r.int(120 - room)}]`;
  }
  private imm(size: Size): string {
    const v = this.r.next();
    if (size === 1) return String(v & 0xff);
    if (size === 2) return String(v & 0xffff);
    return String(v | 0); // imm32, sign-extended for 8-byte operands
  }
  private flags(defined: number, undef: number): void {
    this.def = (this.def | defined) & ~undef;
  }
  private emit(s: string): void { this.out.push(s); }
  /** A pair of operands "dst, src" of one size with at most one memory operand. */
  private rm2(size: Size): string {
    const legacy = size === 1 && this.r.chance(0.3);
    switch (this.r.int(3)) {
      case 0: return `${this.reg(size, legacy)}, ${this.reg(size, legacy)}`;
      case 1: return `${this.reg(size)}, ${this.mem(size)}`;
      default: return `${this.mem(size)}, ${this.reg(size)}`;
    }
  }
  private rm(size: Size): string {
    return this.r.chance(0.7) ? this.reg(size, size === 1 && this.r.chance(0.3)) : this.mem(size);
  }
  private cc(): number {
    const ok = CC.map((_, k) => k).filter((k) => (CC_NEEDS[k]! & this.def) === CC_NEEDS[k]);
    if (ok.length === 0) { this.emit(`cmp ${this.reg(8)}, ${this.reg(8)}`); this.def = ALL; return this.r.int(16); }
    return this.r.pick(ok);
  }

  /** CMOVcc or SETcc on condition k. */
  private setOrCmov(k: number): void {
    const r = this.r;
    if (r.chance(0.5)) { const s = r.pick([2, 4, 8] as const); this.emit(`cmov${CC[k]} ${this.reg(s)}, ${r.chance(0.7) ? this.reg(s) : this.mem(s)}`); }
    else this.emit(`set${CC[k]} ${this.rm(1)}`);
  }

  /** Jcc on condition k over one instruction. */
  private jccOver(k: number): void {
    const l = `${this.tag}_${this.label++}`;
    this.emit(`j${CC[k]} ${l}`);
    const save = this.def;
    this.one();
    this.emit(`${l}:`);
    this.def &= save; // defined only if defined on both paths
  }

  one(): void {
    const r = this.r;
    if (this.simd && r.chance(0.45)) { this.sse(); return; }
    const size = r.pick(SIZES);
    switch (r.int(28)) {
      case 0: case 1: case 2: { // ALU reg/mem forms
        const op = r.pick(['add', 'sub', 'and', 'or', 'xor', 'cmp', 'adc', 'sbb']);
        if ((op === 'adc' || op === 'sbb') && !(this.def & CF)) this.emit('stc');
        this.emit(`${op} ${this.rm2(size)}`);
        if (op === 'and' || op === 'or' || op === 'xor') this.flags(ALL & ~AF, AF); else this.flags(ALL, 0);
        if (op === 'adc' || op === 'sbb') this.def = ALL;
        return;
      }
      case 3: { // ALU with immediate
        const op = r.pick(['add', 'sub', 'and', 'or', 'xor', 'cmp', 'adc', 'sbb', 'test']);
        if ((op === 'adc' || op === 'sbb') && !(this.def & CF)) this.emit('stc');
        const imm = r.chance(0.3) && size !== 1 && op !== 'test' ? String((r.next() << 24) >> 24) : this.imm(size);
        this.emit(`${op} ${this.rm(size).replace(/^(?=[a-z])/, '')}${this.rmSizeHint(size)}, ${imm}`);
        if (op === 'and' || op === 'or' || op === 'xor' || op === 'test') this.flags(ALL & ~AF, AF); else this.def = ALL;
        return;
      }
      case 4: {
        const op = r.pick(['inc', 'dec', 'neg', 'not']);
        this.emit(`${op} ${this.rm(size)}`);
        if (op === 'inc' || op === 'dec') this.flags(ALL & ~CF, 0); else if (op === 'neg') this.def = ALL;
        return;
      }
      case 5: case 6: { // shifts and rotates
        const op = r.pick(['shl', 'shr', 'sar', 'rol', 'ror', 'rcl', 'rcr']);
        const bits = size * 8;
        let n = r.int(size === 8 ? 64 : 32);
        if ((op === 'shl' || op === 'shr' || op === 'sar') && n > bits) n = bits;
        if ((op === 'rcl' || op === 'rcr') && !(this.def & CF)) this.emit('clc');
        const dst = this.rm(size);
        if (r.chance(0.5) || /^(r?cx|ecx|cl|ch)$/.test(dst)) {
          this.emit(`${op} ${dst}, ${n}`);
        } else {
          this.emit(`mov ecx, ${n}`);
          this.emit(`${op} ${dst}, cl`);
        }
        const m = n & (size === 8 ? 63 : 31);
        if (m === 0) { if (op === 'rcl' || op === 'rcr') this.def |= CF; return; }
        if (op === 'shl' || op === 'shr' || op === 'sar') this.flags(CF | SF | ZF | PF | (m === 1 ? OF : 0), AF | (m === 1 ? 0 : OF));
        else this.flags(CF | (m === 1 ? OF : 0), m === 1 ? 0 : OF);
        return;
      }
      case 7: { // MUL / IMUL (one operand)
        this.emit(`${r.pick(['mul', 'imul'])} ${this.rm(size)}`);
        this.flags(CF | OF, SF | ZF | AF | PF);
        return;
      }
      case 8: { // IMUL two and three operands
        const s = r.pick([2, 4, 8] as const);
        if (r.chance(0.5)) this.emit(`imul ${this.reg(s)}, ${r.chance(0.5) ? this.reg(s) : this.mem(s)}`);
        else this.emit(`imul ${this.reg(s)}, ${r.chance(0.5) ? this.reg(s) : this.mem(s)}, ${r.chance(0.5) ? (r.next() << 24) >> 24 : this.imm(s)}`);
        this.flags(CF | OF, SF | ZF | AF | PF);
        return;
      }
      case 9: { // DIV / IDIV without #DE
        const divisors = size === 1 ? ['bl', 'bh', 'dh', 'ch'] : size === 2 ? ['bx', 'si', 'di', 'r9w'] : size === 4 ? ['ebx', 'esi', 'edi', 'r9d'] : ['rbx', 'rsi', 'rdi', 'r9'];
        const d = r.pick(divisors);
        if (r.chance(0.5)) {
          this.emit(`or ${d}, 1`);
          if (size === 1) this.emit('movzx eax, al'); else this.emit(`xor edx, edx`);
          this.emit(`div ${d}`);
        } else {
          this.emit(`and ${d}, 0x3f`); this.emit(`or ${d}, 2`);
          if (size === 1) this.emit('movsx ax, al'); else this.emit(size === 2 ? 'cwd' : size === 4 ? 'cdq' : 'cqo');
          this.emit(`idiv ${d}`);
        }
        this.flags(0, ALL);
        return;
      }
      case 10: { // bit tests
        const op = r.pick(['bt', 'bts', 'btr', 'btc']);
        const s = r.pick([2, 4, 8] as const);
        if (r.chance(0.5)) this.emit(`${op} ${this.rm(s)}${this.rmSizeHint(s)}, ${r.int(256)}`);
        else if (r.chance(0.5)) this.emit(`${op} ${this.reg(s)}, ${this.reg(s)}`);
        else {
          const idx = r.pick(['ecx', 'edx', 'esi']);
          this.emit(`and ${idx}, 127`);
          this.emit(`${op} ${this.mem(s, 24)}, ${s === 2 ? idx.replace('e', '') : s === 8 ? idx.replace('e', 'r') : idx}`);
        }
        this.flags(CF, OF | SF | AF | PF);
        return;
      }
      case 11: { // BSF / BSR / POPCNT
        const s = r.pick([2, 4, 8] as const);
        const src = this.reg(s), dst = this.reg(s);
        const op = r.pick(['bsf', 'bsr', 'popcnt']);
        if (op !== 'popcnt') { this.emit(`bts ${src}, ${r.int(s * 8)}`); this.emit(`${op} ${dst}, ${src}`); this.flags(ZF, CF | OF | SF | AF | PF); }
        else { this.emit(`popcnt ${dst}, ${r.chance(0.6) ? src : this.mem(s)}`); this.def = ALL; }
        return;
      }
      case 12: this.setOrCmov(this.cc()); return;
      case 13: this.jccOver(this.cc()); return;
      case 27: { // indirect CALL (to a body that returns) or JMP (over one instruction), through a register or memory
        const t = this.reg(8), f = `${this.tag}_${this.label++}`, e = `${this.tag}_${this.label++}`;
        const call = r.chance(0.6);
        this.emit(`lea ${t}, [rel ${f}]`);
        let target = t;
        if (r.chance(0.5)) { target = this.mem(8); this.emit(`mov ${target}, ${t}`); }
        this.emit(`${call ? 'call' : 'jmp'} ${target}`);
        if (call) {
          this.emit(`jmp ${e}`);
          this.emit(`${f}:`);
          this.one();
          this.emit('ret');
          this.emit(`${e}:`);
        } else {
          const save = this.def;
          this.one();
          this.def = save; // skipped
          this.emit(`${f}:`);
        }
        return;
      }
      case 24: case 25: case 26: { // a flag producer and, at once, a consumer of its condition (compiled code evaluates these inline)
        const op = r.pick(['add', 'sub', 'cmp', 'and', 'or', 'xor', 'test', 'adc', 'sbb', 'inc', 'dec', 'neg', 'imul', 'shl', 'sar']);
        const s = op === 'imul' ? r.pick([2, 4, 8] as const) : size;
        if ((op === 'adc' || op === 'sbb') && !(this.def & CF)) this.emit('stc');
        if (op === 'inc' || op === 'dec') { this.emit(`${op} ${this.reg(s)}`); this.flags(ALL & ~CF, 0); }
        else if (op === 'neg') { this.emit(`neg ${this.reg(s)}`); this.def = ALL; }
        else if (op === 'imul') { this.emit(`imul ${this.reg(s)}, ${this.reg(s)}`); this.flags(CF | OF, SF | ZF | AF | PF); }
        else if (op === 'shl' || op === 'sar') { this.emit(`${op} ${this.reg(s)}, ${1 + r.int(s * 8 - 1)}`); this.flags(CF | SF | ZF | PF, AF | OF); }
        else {
          this.emit(`${op} ${this.reg(s)}, ${r.chance(0.3) ? this.imm(s) : this.reg(s)}`);
          if (op === 'and' || op === 'or' || op === 'xor' || op === 'test') this.flags(ALL & ~AF, AF); else this.def = ALL;
        }
        const k = this.cc();
        if (r.chance(0.5)) this.setOrCmov(k); else this.jccOver(k);
        return;
      }
      case 14: { // moves
        const f = r.int(6);
        if (f === 0) this.emit(`mov ${this.rm2(size)}`);
        else if (f === 1) { const s = r.pick([2, 4, 8] as const); this.emit(`movzx ${this.reg(s)}, ${r.chance(0.5) ? this.reg(1) : this.mem(1)}`); }
        else if (f === 2) { const s = r.pick([2, 4, 8] as const); this.emit(`movsx ${this.reg(s)}, ${r.chance(0.5) ? this.reg(1) : this.mem(1)}`); }
        else if (f === 3) { const s = r.pick([4, 8] as const); this.emit(`mov${s === 4 ? 'zx' : 'sx'} ${this.reg(s)}, ${r.chance(0.5) ? this.reg(2) : this.mem(2)}`); }
        else if (f === 4) this.emit(`movsxd ${this.reg(8)}, ${r.chance(0.5) ? this.reg(4) : this.mem(4)}`);
        else this.emit(`mov ${this.reg(size)}, ${size === 8 ? String(r.next() * 4294967296 + r.next()) : this.imm(size)}`);
        return;
      }
      case 15: { // XCHG XADD CMPXCHG
        const op = r.pick(['xchg', 'xadd', 'cmpxchg']);
        const dst = r.chance(0.5) ? this.reg(size, size === 1 && r.chance(0.3)) : this.mem(size);
        const src = this.reg(size, size === 1 && dst.length === 2 && R8_LEGACY.includes(dst));
        this.emit(`${op} ${dst}, ${src}`);
        if (op !== 'xchg') this.def = ALL;
        return;
      }
      case 16: { // LEA
        const s = r.pick([2, 4, 8] as const);
        const base = this.reg(8), idx = r.pick(R64);
        this.emit(`lea ${this.reg(s)}, [${base} + ${idx}*${r.pick([1, 2, 4, 8])} + ${(r.next() << 8) >> 8}]`);
        return;
      }
      case 17: { // conversions, BSWAP
        const op = r.pick(['cbw', 'cwde', 'cdqe', 'cwd', 'cdq', 'cqo', 'bswap']);
        if (op === 'bswap') this.emit(`bswap ${this.reg(r.chance(0.5) ? 4 : 8)}`); else this.emit(op);
        return;
      }
      case 18: { // flags
        const op = r.pick(['clc', 'stc', 'cmc', 'lahf', 'sahf']);
        if (op === 'cmc' && !(this.def & CF)) { this.emit('clc'); this.def |= CF; }
        if (op === 'lahf' && (this.def & (CF | PF | AF | ZF | SF)) !== (CF | PF | AF | ZF | SF)) { this.emit('sahf'); this.def |= CF | PF | AF | ZF | SF; }
        this.emit(op);
        if (op === 'clc' || op === 'stc') this.def |= CF;
        if (op === 'sahf') this.def |= CF | PF | AF | ZF | SF;
        return;
      }
      case 19: { // PUSH / POP
        const s = r.chance(0.8) ? 8 : 2;
        if (r.chance(0.5)) this.emit(`push ${this.reg(s as Size)}`); else this.emit(`push ${s === 8 ? 'qword' : 'word'} ${this.mem(s as Size).split(' ').slice(1).join(' ')}`);
        this.emit(r.chance(0.7) ? `pop ${this.reg(s as Size)}` : `pop ${s === 8 ? 'qword' : 'word'} ${this.mem(s as Size).split(' ').slice(1).join(' ')}`);
        return;
      }
      case 20: { // SHLD / SHRD
        const s = r.pick([2, 4, 8] as const);
        const n = 1 + r.int(s * 8 - 1);
        const dst = r.chance(0.6) ? this.reg(s) : this.mem(s);
        if (r.chance(0.5)) this.emit(`${r.pick(['shld', 'shrd'])} ${dst}, ${this.reg(s)}, ${n}`);
        else { this.emit(`mov ecx, ${n}`); this.emit(`${r.pick(['shld', 'shrd'])} ${r.chance(0.5) ? this.regNoCx(s) : this.mem(s)}, ${this.regNoCx(s)}, cl`); }
        this.flags(CF | SF | ZF | PF | (n === 1 ? OF : 0), AF | (n === 1 ? 0 : OF));
        return;
      }
      case 21: case 22: { // string instructions within the scratch area
        const op = r.pick(['movs', 'stos', 'lods', 'cmps', 'scas']);
        const sfx = { 1: 'b', 2: 'w', 4: 'd', 8: 'q' }[size];
        const n = 1 + r.int(Math.floor(48 / size));
        this.emit(`lea rsi, [r15 + ${128 + r.int(8)}]`);
        this.emit(`lea rdi, [r15 + ${184 + r.int(8)}]`);
        this.emit(`mov ecx, ${n}`);
        const rep = op === 'cmps' || op === 'scas' ? r.pick(['repe ', 'repne ', '']) : r.pick(['rep ', '']);
        this.emit(`${rep}${op}${sfx}`);
        if (op === 'cmps' || op === 'scas') this.def = ALL;
        return;
      }
      default: { // ALU on 8-bit high registers and LOOP
        if (r.chance(0.5)) {
          const op = r.pick(['add', 'sub', 'xor', 'adc']);
          if (op === 'adc' && !(this.def & CF)) this.emit('stc');
          this.emit(`${op} ${r.pick(R8_LEGACY)}, ${r.pick(R8_LEGACY)}`);
          this.def = op === 'xor' ? ALL & ~AF : ALL;
          return;
        }
        const l = `${this.tag}_${this.label++}`;
        this.emit(`mov ecx, ${1 + r.int(5)}`);
        this.emit(`${l}:`);
        this.emit(`add ${this.regNoCx(4)}, ${this.imm(4)}`);
        this.emit(`loop ${l}`);
        this.def = ALL;
        return;
      }
    }
  }


  private xr(): string { return `xmm${this.r.int(16)}`; }
  private m128(): string { return `[r15 + ${128 + 16 * this.r.int(8)}]`; }
  private mN(n: 4 | 8 | 2): string { return `${PTR[n]} [r15 + ${128 + n * this.r.int(128 / n)}]`; }
  private xm(): string { return this.r.chance(0.7) ? this.xr() : this.m128(); }

  /** One SSE/SSE2 instruction (or an x87 block). */
  sse(): void {
    const r = this.r;
    const e = (s: string) => this.emit(s);
    switch (r.int(16)) {
      case 0: case 1: case 2: e(`${r.pick(XI_BIN)} ${this.xr()}, ${this.xm()}`); return;
      case 3: {
        const op = r.pick(['psllw', 'pslld', 'psllq', 'psrlw', 'psrld', 'psrlq', 'psraw', 'psrad', 'pslldq', 'psrldq']);
        e(`${op} ${this.xr()}, ${r.int(op.endsWith('dq') ? 20 : 70)}`);
        return;
      }
      case 4: {
        const op = r.pick(['pshufd', 'pshuflw', 'pshufhw', 'shufps', 'shufpd']);
        e(`${op} ${this.xr()}, ${this.xm()}, ${r.int(256)}`);
        return;
      }
      case 5: { // full moves
        const op = r.pick(['movaps', 'movups', 'movapd', 'movupd', 'movdqa', 'movdqu']);
        const f = r.int(3);
        if (f === 0) e(`${op} ${this.xr()}, ${this.xr()}`);
        else if (f === 1) e(`${op} ${this.xr()}, ${op.includes('u') ? `[r15 + ${128 + r.int(113)}]` : this.m128()}`);
        else e(`${op} ${op.includes('u') ? `[r15 + ${128 + r.int(113)}]` : this.m128()}, ${this.xr()}`);
        if (r.chance(0.2)) e(`${r.pick(['movntdq', 'movntps', 'movntpd'])} ${this.m128()}, ${this.xr()}`);
        return;
      }
      case 6: { // partial moves
        switch (r.int(9)) {
          case 0: e(r.chance(0.5) ? `movd ${this.xr()}, ${r.chance(0.5) ? this.reg(4) : this.mN(4)}` : `movd ${r.chance(0.5) ? this.reg(4) : this.mN(4)}, ${this.xr()}`); return;
          case 1: e(r.chance(0.5) ? `movq ${this.xr()}, ${r.chance(0.5) ? this.reg(8) : this.mN(8)}` : `movq ${r.chance(0.5) ? this.reg(8) : this.mN(8)}, ${this.xr()}`); return;
          case 2: e(`movq ${this.xr()}, ${this.xr()}`); return;
          case 3: { const op = r.pick(['movss', 'movsd']), m = this.mN(op === 'movss' ? 4 : 8); const f = r.int(3); e(f === 0 ? `${op} ${this.xr()}, ${this.xr()}` : f === 1 ? `${op} ${this.xr()}, ${m}` : `${op} ${m}, ${this.xr()}`); return; }
          case 4: { const op = r.pick(['movlps', 'movhps', 'movlpd', 'movhpd']); e(r.chance(0.5) ? `${op} ${this.xr()}, ${this.mN(8)}` : `${op} ${this.mN(8)}, ${this.xr()}`); return; }
          case 5: e(`${r.pick(['movlhps', 'movhlps'])} ${this.xr()}, ${this.xr()}`); return;
          case 6: e(`${r.pick(['movmskps', 'movmskpd', 'pmovmskb'])} ${this.reg(4)}, ${this.xr()}`); return;
          case 7: e(`pextrw ${this.reg(4)}, ${this.xr()}, ${r.int(8)}`); e(`pinsrw ${this.xr()}, ${r.chance(0.5) ? this.reg(4) : this.mN(2)}, ${r.int(8)}`); return;
          default: { const s2 = r.pick([4, 8] as const); e(`movnti ${this.mN(s2)}, ${this.reg(s2)}`); return; }
        }
      }
      case 7: case 8: case 9: { // floating-point arithmetic
        const sfx = r.pick(['ps', 'pd', 'ss', 'sd']);
        const src = r.chance(0.7) ? this.xr() : sfx.startsWith('p') ? this.m128() : this.mN(sfx === 'ss' ? 4 : 8);
        e(`${r.pick(XF)}${sfx} ${this.xr()}, ${src}`);
        return;
      }
      case 10: {
        const sfx = r.pick(['ps', 'pd', 'ss', 'sd']);
        const src = r.chance(0.7) ? this.xr() : sfx.startsWith('p') ? this.m128() : this.mN(sfx === 'ss' ? 4 : 8);
        e(`cmp${sfx} ${this.xr()}, ${src.replace(/^[a-z]+ /, '')}, ${r.int(8)}`);
        return;
      }
      case 11: {
        const op = r.pick(['comiss', 'comisd', 'ucomiss', 'ucomisd']);
        e(`${op} ${this.xr()}, ${r.chance(0.7) ? this.xr() : this.mN(op.endsWith('d') ? 8 : 4)}`);
        this.def = ALL;
        return;
      }
      case 12: { // conversions with GPRs
        const s2 = r.pick([4, 8] as const);
        if (r.chance(0.5)) e(`${r.pick(['cvtsi2ss', 'cvtsi2sd'])} ${this.xr()}, ${r.chance(0.6) ? this.reg(s2) : this.mN(s2)}`);
        else { const op = r.pick(['cvtss2si', 'cvttss2si', 'cvtsd2si', 'cvttsd2si']); e(`${op} ${this.reg(s2)}, ${r.chance(0.7) ? this.xr() : this.mN(op.includes('ss') ? 4 : 8)}`); }
        return;
      }
      case 13: {
        const op = r.pick(XCVT);
        const m = ['cvtps2pd', 'cvtdq2pd'].includes(op) ? this.mN(8) : op === 'cvtss2sd' ? this.mN(4) : op === 'cvtsd2ss' ? this.mN(8) : this.m128();
        e(`${op} ${this.xr()}, ${r.chance(0.7) ? this.xr() : m}`);
        return;
      }
      case 14: { // a rounding-mode / DAZ / FTZ change
        e(`mov dword [r15 + 396], 0x${(0x1f80 | (r.int(4) << 13) | (r.chance(0.2) ? 0x40 : 0) | (r.chance(0.2) ? 0x8000 : 0)).toString(16)}`);
        e('ldmxcsr [r15 + 396]');
        return;
      }
      default: this.x87(); return;
    }
  }

  /** An x87 block: FNINIT, PC = double, a few loads and operations, every value stored as a double. */
  private x87(): void {
    const r = this.r;
    const e = (s: string) => this.emit(s);
    e('fninit'); e('mov word [r15 + 400], 0x27f'); e('fldcw [r15 + 400]');
    let depth = 0;
    const load = () => {
      const k = r.int(5);
      if (k === 0) { e(`mov dword [r15 + 400], ${(r.next() | 0) >> r.int(31)}`); e('fild dword [r15 + 400]'); }
      else if (k === 1 || k === 2) e(r.pick(['fld1', 'fldz']));
      else {
        const b = new DataView(new ArrayBuffer(8)); b.setFloat64(0, r.pick(X87_DOUBLES) * (r.int(9) + 1), true);
        e(`mov rax, 0x${b.getBigUint64(0, true).toString(16)}`); e('mov [r15 + 400], rax'); e('fld qword [r15 + 400]');
      }
      depth++;
    };
    load(); load();
    for (let n = r.int(4); n > 0; n--) {
      if (depth < 2 || (depth < 6 && r.chance(0.3))) { load(); continue; }
      switch (r.int(8)) {
        case 0: e(`${r.pick(['faddp', 'fsubp', 'fsubrp', 'fmulp', 'fdivp', 'fdivrp'])} st1, st0`); depth--; break;
        case 1: e(`${r.pick(['fadd', 'fsub', 'fsubr', 'fmul', 'fdiv', 'fdivr'])} st0, st1`); break;
        case 2: e(`fxch st${1 + r.int(depth - 1)}`); break;
        case 3: e(r.pick(['fchs', 'fabs'])); break;
        case 4: e('fabs'); e('fsqrt'); break;
        case 5: e(`${r.pick(['fcomi', 'fucomi'])} st0, st1`); this.def = ALL; break;
        case 6: e(`${r.pick(['fcom', 'fucom'])} st1`); e('fnstsw ax'); e('and ax, 0x7d00'); this.def = ALL & ~AF; break;
        default: e(`fld st${r.int(depth)}`); depth++;
      }
    }
    let slot = r.int(16);
    if (r.chance(0.4)) { // exact 80-bit values (not rounded to double) only move: FLD m80 / constants, FSTP m80
      if (r.chance(0.5)) e(r.pick(['fldpi', 'fldl2e', 'fldln2', 'fldl2t', 'fldlg2']));
      else {
        e(`mov rax, 0x${(BigInt((r.next() | 0x80000000) >>> 0) << 32n | BigInt(r.next())).toString(16)}`); e('mov [r15 + 400], rax');
        e(`mov word [r15 + 408], 0x${((r.chance(0.5) ? 0x8000 : 0) | (0x3fff - 40 + r.int(80))).toString(16)}`); e('fld tword [r15 + 400]');
      }
      if (r.chance(0.5)) e(r.pick(['fchs', 'fabs', 'fxch st1', 'fld st0']));
      if (this.out[this.out.length - 1] === 'fld st0') depth++;
      depth++;
      e(`fstp tword [r15 + ${128 + 8 * (slot % 14)}]`); depth--; slot += 2;
    }
    while (depth-- > 0) e(`fstp qword [r15 + ${128 + 8 * (slot++ % 16)}]`);
  }

  /** NASM needs a size only for memory operands: rm() already carries it. */
  private rmSizeHint(_size: Size): string {
    return '';
  }
}


// ---- SSE/SSE2 and x87 ----

const F32_NICE = [0, -0, 1, -1, 0.5, 1.5, 2, 3, 0.1, -2.75, 1e-3, 1e30, -1e30, 3.4e38, 1e-40, -1e-45, 1.1754943508222875e-38, Infinity, -Infinity, NaN, 16777217, 2147483648, -2147483904, 0.3333333432674408];
const F64_NICE = [0, -0, 1, -1, 0.5, 1.5, 2, 3, 0.1, -2.75, 1e-3, 1e300, -1e300, 1.7976931348623157e308, 1e-310, -5e-324, 2.2250738585072014e-308, Infinity, -Infinity, NaN, 9007199254740993, 2147483647.5, -9.3e18, 1 / 3, 1e-320];

/** Fills 8 bytes at `off` with a lane pattern: random bits, nice floats or doubles, special values. */
function fpBits(r: Rng, dv: DataView, off: number): void {
  const f32 = (v: number, o: number) => { if (Number.isNaN(v)) dv.setUint32(o, r.chance(0.5) ? 0x7fc00000 + r.int(0x400000) : 0xff800001 + r.int(0x3fffff), true); else dv.setFloat32(o, v, true); };
  switch (r.int(5)) {
    case 0: dv.setUint32(off, r.next(), true); dv.setUint32(off + 4, r.next(), true); return;
    case 1: f32(r.pick(F32_NICE) * (r.chance(0.3) ? r.int(1000) / 7 : 1), off); f32(r.pick(F32_NICE), off + 4); return;
    case 2: case 3: {
      const v = r.pick(F64_NICE) * (r.chance(0.3) ? r.int(100000) / 13 : 1);
      if (Number.isNaN(v)) { dv.setUint32(off, r.next(), true); dv.setUint32(off + 4, r.chance(0.5) ? 0x7ff80000 + r.int(0x80000) : 0xfff00000 + 1 + r.int(0x7ffff), true); }
      else dv.setFloat64(off, v, true);
      return;
    }
    default: dv.setFloat64(off, (r.int(2001) - 1000) / (1 << r.int(12)), true);
  }
}

const XI_BIN = ['pxor', 'por', 'pand', 'pandn', 'paddb', 'paddw', 'paddd', 'paddq', 'psubb', 'psubw', 'psubd', 'psubq', 'paddsb', 'paddsw',
  'paddusb', 'paddusw', 'psubsb', 'psubsw', 'psubusb', 'psubusw', 'pcmpeqb', 'pcmpeqw', 'pcmpeqd', 'pcmpgtb', 'pcmpgtw', 'pcmpgtd', 'pminub',
  'pmaxub', 'pminsw', 'pmaxsw', 'pavgb', 'pavgw', 'pmullw', 'pmulhw', 'pmulhuw', 'pmuludq', 'pmaddwd', 'psadbw', 'punpcklbw', 'punpcklwd',
  'punpckldq', 'punpcklqdq', 'punpckhbw', 'punpckhwd', 'punpckhdq', 'punpckhqdq', 'packsswb', 'packuswb', 'packssdw', 'psllw', 'pslld', 'psllq',
  'psrlw', 'psrld', 'psrlq', 'psraw', 'psrad', 'andps', 'andnps', 'orps', 'xorps', 'andpd', 'andnpd', 'orpd', 'xorpd', 'unpcklps', 'unpckhps',
  'unpcklpd', 'unpckhpd'];
const XF = ['add', 'sub', 'mul', 'div', 'min', 'max', 'sqrt'];
const XCVT = ['cvtps2pd', 'cvtpd2ps', 'cvtdq2ps', 'cvtps2dq', 'cvttps2dq', 'cvtdq2pd', 'cvtpd2dq', 'cvttpd2dq', 'cvtss2sd', 'cvtsd2ss'];
const X87_DOUBLES = [1, 2, 3, 0.5, -1.25, 10, 1e10, 0.1, 3.141592653589793, -7, 1 / 3, 1e-5, 123456.789, 0, -0];

export interface OracleProgram {
  source: string;
  count: number;
  /** Per sequence: its instructions, for failure reports. */
  listings: string[];
  /** Initial block contents (regs, flags, scratch) for every sequence. */
  init: Uint8Array;
}

/** Builds `count` sequences of about `length` instructions from `seed`. */
export function generate(seed: number, count: number, length = 12): OracleProgram {
  const r = new Rng(seed);
  const lines = ['bits 64', `org 0x${CODE.toString(16)}`, 'start:'];
  const listings: string[] = [];
  const init = new Uint8Array(count * BLOCK);
  const dv = new DataView(init.buffer);
  for (let k = 0; k < count; k++) {
    const base = k * BLOCK;
    for (let j = 0; j < 14; j++) { dv.setUint32(base + 8 * j, r.next(), true); dv.setUint32(base + 8 * j + 4, r.chance(0.3) ? 0 : r.next(), true); }
    dv.setUint32(base + 120, (r.next() & ALL) | 0x202, true);
    for (let j = 128; j < 256; j += 8) fpBits(r, dv, base + j);
    for (let j = 512; j < 768; j += 8) fpBits(r, dv, base + j);
    dv.setUint32(base + 392, 0x1f80 | (r.int(4) << 13) | (r.chance(0.15) ? 0x40 : 0) | (r.chance(0.15) ? 0x8000 : 0), true);
    const g = new SeqGen(r, `s${k}`);
    for (let n = 0; n < length; n++) g.one();
    const addr = DATA + base;
    lines.push(`; sequence ${k}`, `mov r15, 0x${addr.toString(16)}`, 'push qword [r15 + 120]', 'popfq', 'ldmxcsr [r15 + 392]');
    for (let x = 0; x < 16; x++) lines.push(`movdqu xmm${x}, [r15 + ${512 + 16 * x}]`);
    R64.forEach((reg, j) => lines.push(`mov ${reg}, [r15 + ${8 * j}]`));
    lines.push(...g.out);
    R64.forEach((reg, j) => lines.push(`mov [r15 + ${256 + 8 * j}], ${reg}`));
    lines.push('pushfq', 'pop rax', `and rax, 0x${(g.def | 0x400).toString(16)}`, 'mov [r15 + 376], rax');
    lines.push('stmxcsr [r15 + 384]');
    for (let x = 0; x < 16; x++) lines.push(`movdqu [r15 + ${768 + 16 * x}], xmm${x}`);
    listings.push(g.out.join('\n'));
  }
  lines.push(`out 0x${END_PORT.toString(16)}, al`, 'jmp $');
  return { source: lines.join('\n') + '\n', count, listings, init };
}

/** The result of one backend's run: the data blocks, or why it did not finish. */
export interface OracleRun {
  data: Uint8Array;
  exit: string;
  ms: number;
}

/** Runs the assembled image on `backend` and returns the data area. */
export function runImage(backend: Backend, image: Uint8Array, prog: OracleProgram): OracleRun {
  return withRamMachine(backend, RAM_SIZE, (m) => {
    m.ram.set(image, CODE);
    m.ram.set(prog.init, DATA);
    enterLongModeUser(m, {
      bits: 64,
      // null, kernel code 0x08, kernel data 0x10, user data 0x18, user code64 0x20.
      gdt: GDT, descriptors: [0n, 0x00af9b000000ffffn, 0x00cf93000000ffffn, 0x00cff3000000ffffn, 0x00affb000000ffffn],
      pageTables: PT, tss: TSS, efer: 0x501n, rip: CODE, rsp: STACK_TOP,
    });
    const t0 = performance.now();
    const exit = runToExit(m.vcpu);
    const ms = performance.now() - t0;
    const desc = exit.kind === 'io' ? `io port 0x${exit.port.toString(16)}` : exit.kind === 'invalid' ? `invalid: ${exit.reason}` : exit.kind;
    let where = '';
    if (!(exit.kind === 'io' && exit.port === END_PORT)) where = ` at RIP 0x${m.vcpu.getState(STATE.GPRS).gprs[GPR.RIP]!.toString(16)}`;
    return { data: m.ram.slice(DATA, DATA + prog.count * BLOCK), exit: desc + where, ms };
  });
}

export function assembleProgram(prog: OracleProgram): Uint8Array {
  return assembleText(prog.source);
}

export const ORACLE_END = `io port 0x${END_PORT.toString(16)}`;

/** Describes the first difference between two runs, or returns null when they agree. */
export function compareRuns(prog: OracleProgram, a: OracleRun, b: OracleRun, names = ['kvm', 'soft']): string | null {
  if (a.exit !== ORACLE_END || b.exit !== ORACLE_END) return `runs did not end at the final OUT: ${names[0]} ${a.exit}, ${names[1]} ${b.exit}`;
  for (let k = 0; k < prog.count; k++) {
    const o = k * BLOCK;
    for (let j = 128; j < BLOCK; j++) {
      if (j >= 388 && j < 768) continue;
      if (a.data[o + j] !== b.data[o + j]) {
        const dva = new DataView(a.data.buffer, o), dvb = new DataView(b.data.buffer, o);
        const diffs: string[] = [];
        for (let q = 128; q < BLOCK; q += 8) {
          if (q >= 392 && q < 768) continue;
          const x = q === 384 ? BigInt(dva.getUint32(q, true)) : dva.getBigUint64(q, true), y = q === 384 ? BigInt(dvb.getUint32(q, true)) : dvb.getBigUint64(q, true);
          if (x !== y) {
            const what = q < 256 ? `scratch+${q - 128}` : q === 376 ? 'rflags' : q === 384 ? 'mxcsr' : q >= 768 ? `xmm${(q - 768) >> 4}.${(q >> 3) & 1 ? 'hi' : 'lo'}` : INIT_REGS[(q - 256) / 8]!;
            diffs.push(`${what}: ${names[0]} 0x${x.toString(16)} ${names[1]} 0x${y.toString(16)}`);
          }
        }
        const init = new DataView(prog.init.buffer, o);
        const regs = INIT_REGS.map((r, q) => `${r}=0x${init.getBigUint64(8 * q, true).toString(16)}`).join(' ');
        return `sequence ${k} differs:\n  ${diffs.join('\n  ')}\ninitial: ${regs} rflags=0x${init.getUint32(120, true).toString(16)} mxcsr=0x${init.getUint32(392, true).toString(16)}\n` +
          `  ${Array.from({ length: 16 }, (_, x) => `xmm${x}=${init.getBigUint64(520 + 16 * x, true).toString(16)}:${init.getBigUint64(512 + 16 * x, true).toString(16)}`).join(' ')}\n${prog.listings[k]}`;
      }
    }
  }
  return null;
}
