/**
 * The executing walk of docs/soft-cpu-opcodes.md: every form of test/soft/opcode-forms.ts is run,
 * each as a probe in a guest that runs them all in turn (guests/soft/opwalk16.asm, opwalk32.asm,
 * opwalk64.asm: real mode, flat 32-bit protected mode, long mode), and how each ended is recorded:
 * the instruction completed (it reached the INT 0xF0 after it), or the vector of the exception it
 * raised. Probes are machine code written here: a set-up where the instruction needs one (below,
 * RULES), the instruction with its immediates IMM_FILL (a relative branch goes to the next
 * instruction, a far pointer or a return address to "after the instruction", a moffs to the
 * scratch memory), then INT 0xF0.
 *
 * Each probe starts from the same state: the registers of `WalkEnv.regs` (RBX, RSI, RDI, RBP point
 * into the scratch memory, so memory forms [BX]/[EBX]/[RBX] reach it), RFLAGS `flags`, the x87 and
 * SSE state of FNINIT and MXCSR 0x1F80, the scratch memory and the stack above STACK_TOP filled
 * with `pattern` (a data selector's value: loads of a segment register or a far pointer find a
 * valid one). The same guests run at CPL 3 in 64-bit mode for the comparison with the real CPU
 * (test/soft/opcode-walk-kvm.test.ts).
 */
import { PROT, type Backend } from '../../src/nvmm/backend.js';
import { assemble } from '../../src/common/nasm.js';
import { assistIo } from '../../src/nvmm/assist.js';
import { Machine } from '../../src/nvmm/machine.js';
import { CR, GPR, MSR, SEG, STATE } from '../../src/nvmm/state.js';
import { enterFlat32 } from '../../src/selftest/guest-x64.js';
import { decode, DecodedInsn, DecodeStatus, OperandKind, type CpuMode } from '../../src/x86/decoder.js';
import { RegClass } from '../../src/x86/registers.js';
import { cpuidString, FEATURE, type FeatureName } from '../../src/x86/cpuid.js';
import { hexBytes, IMM_FILL, MAPS, memRm, type Form } from './opcode-forms.js';

/** Guest-physical layout (identity-mapped in long mode; real mode reaches the areas below 1 MiB through segments). */
export const LAYOUT = {
  IDT: 0x1000, TSS1: 0x2800, TSS2: 0x2900, RUNNER: 0x4000,
  /** 16-bit addresses of 32-bit code (67 prefix) reach the low 64 KiB only: this page is theirs. */
  SCRATCH16: 0xb000,
  /** Slots of probes whose instruction takes a 16-bit IP in 32/64-bit code (66 near branches). */
  LOW_SLOTS: 0xc000, LOW_SLOTS_END: 0x10000,
  SCRATCH: 0x11000, PRISTINE: 0x12000, PREFILL: 0x13000, STACK_TOP: 0x2f000, IST_TOP: 0x38000,
  RESULTS: 0x40000, ADDRS16: 0x50000, SLOTS16: 0x60000, SLOTS16_END: 0xa0000, PT: 0x80000,
  ERRCODES: 0x200000, ADDRS: 0x300000, SLOTS: 0x400000, RAM: 16 << 20,
} as const;
const PAGE = 0x1000;
/** Real-mode segments of the runner (opwalk16.asm). */
const DATA_SEG_BASE = 0x10000, STACK_SEG_BASE = 0x20000;
/** The vector the slot's final INT 0xF0 raises: the instruction completed. */
export const EXEC = 0xf0;
/** Vectors. */
export const DE = 0, DB = 1, BP = 3, UD = 6, GP = 13;
const SLOT_TAIL = [0xcd, EXEC];
/** Unused memory and slot padding: INT 0xF1 (from an odd byte: INT1) ends stray execution at once. */
const STRAY = [0xcd, 0xf1];

// Header fields of the runners (guests/soft/opwalk*.asm).
const H = { magic: 0x10, nprobes: 0x14, landing: 0x18, cur: 0x1c, gdt: 0x20, first: 0x24, cpuid: 0x30, regs: 0x100, pflags: 0x180, pcs: 0x188, pss: 0x190, pds: 0x198 } as const;

/** How probes run in one guest. */
export interface WalkEnv {
  mode: CpuMode;
  cpl: 0 | 3;
  /** RAX..R15 at each probe's start (RSP: STACK_TOP). */
  regs: readonly number[];
  flags: number;
  /** The probes' code and stack/data selectors (real mode: unused; CS is each slot's). */
  cs: number;
  ss: number;
  ds: number;
  /** The word the scratch memory and the stack above STACK_TOP hold. */
  pattern: number;
  /** Segment bases of DS and SS (real mode), for the offsets of set-ups. */
  dsBase: number;
  ssBase: number;
  /** Filled from the runner image. */
  landing: number;
  gdt: number;
}

/** The environment of each walk: 16 = real mode, 32 = flat protected mode, 64 = long mode (CPL 0), or 64-bit code at CPL 3. */
export function walkEnv(mode: CpuMode, cpl: 0 | 3 = 0): WalkEnv {
  const L = LAYOUT;
  const real = mode === 16;
  const ds = real ? DATA_SEG_BASE : 0, ss = real ? STACK_SEG_BASE : 0;
  const user = cpl === 3;
  const regs = [real ? 0x0110 : user ? 0x23 : 0x10, 1, 0, L.SCRATCH - ds, 0, L.SCRATCH + 0x800 - ds, L.SCRATCH + 0x100 - ds, L.SCRATCH + 0x200 - ds,
    8, 9, 10, 11, 12, 13, 14, 15];
  if (real) regs[5] = L.SCRATCH + 0x800 - ss + 0x10000; // [BP] is SS-relative: BP = 0x1800 below STACK_SEG's top, in the stack area
  return {
    mode, cpl, regs, flags: user ? 0x3002 : 2,
    cs: real ? 0 : user ? 0x2b : 0x08, ss: real ? 0 : user ? 0x23 : 0x10, ds: real ? 0 : user ? 0x23 : 0x10,
    pattern: real ? 0x2020 : user ? 0x23 : 0x10, dsBase: ds, ssBase: ss, landing: 0, gdt: 0,
  };
}

// ---- machine code for set-ups ----

/** A little encoder for the instructions set-ups need, in `mode`. */
export class Enc {
  readonly b: number[] = [];
  constructor(readonly env: WalkEnv) {}
  private le(v: number, n: number): void { for (let k = 0; k < n; k++) this.b.push(Math.floor(v / 2 ** (8 * k)) & 0xff); }
  raw(...x: number[]): this { this.b.push(...x); return this; }
  /** MOV r32, imm32 (zero-extends in 64-bit code; 66 in real mode). */
  movReg(reg: number, imm: number): this {
    if (this.env.mode === 16) this.b.push(0x66);
    if (reg >= 8) this.b.push(0x41);
    this.b.push(0xb8 + (reg & 7));
    this.le(imm >>> 0, 4);
    return this;
  }
  /** MOV [linear], imm of `size` bytes (8: a sign-extended imm32), through DS or SS. */
  store(linear: number, size: 1 | 2 | 4 | 8, value: number, seg: 'ds' | 'ss' = 'ds'): this {
    const m = this.env.mode;
    if (m === 16) {
      if (seg === 'ss') this.b.push(0x36);
      if (size === 4) this.b.push(0x66);
      this.b.push(size === 1 ? 0xc6 : 0xc7, 0x06);
      this.le(linear - (seg === 'ss' ? this.env.ssBase : this.env.dsBase), 2);
    } else {
      if (size === 2) this.b.push(0x66);
      if (size === 8) this.b.push(0x48);
      this.b.push(size === 1 ? 0xc6 : 0xc7);
      if (m === 64) this.b.push(0x04, 0x25); else this.b.push(0x05);
      this.le(linear, 4);
    }
    this.le(value >>> 0, size === 8 ? 4 : size);
    return this;
  }
  /** MOV SP/ESP, imm (RSP zero-extended). */
  setSp(linear: number): this {
    if (this.env.mode === 16) { this.b.push(0xbc); this.le(linear - this.env.ssBase, 2); } else { this.b.push(0xbc); this.le(linear, 4); }
    return this;
  }
  /** `bytes` with ModRM `reg` field and the walk's memory operand ([BX]/[EBX]/[RBX]). */
  memOp(opcode: number[], reg: number): this {
    this.b.push(...opcode, (reg << 3) | memRm(this.env.mode));
    return this;
  }
}

// ---- what each probe needs ----

/** Where the probe is: its address and what "after the instruction" is for control transfers. */
export interface SlotCtx {
  f: Form;
  env: WalkEnv;
  /** The address after the instruction as control transfers take it (real mode: the offset from the slot's CS). */
  cont: number;
  /** The code selector (real mode: the slot's segment). */
  cs: number;
}

/** A rule: forms that need a set-up, or whose outcome with the walk's operands is an exception. */
export interface Rule {
  /** For the table's notes. */
  what: string;
  match: (f: Form, env: WalkEnv) => boolean;
  setup?: (e: Enc, s: SlotCtx) => void;
  /** The outcome, when it is not "completes". */
  expect?: (f: Form, env: WalkEnv) => number;
  /** The error code the exception pushes, where the rule names one. */
  errcode?: (f: Form, env: WalkEnv) => number;
  /** Changes the instruction's immediate. */
  patch?: (b: Uint8Array, f: Form, env: WalkEnv) => void;
}

/** The second TSS's selector (opwalk32.asm, opwalk64.asm). */
const TSS2_SEL32 = 0x30, TSS2_SEL64 = 0x40;

const is = (...names: string[]) => (f: Form) => names.includes(f.mnemonic);
const opnd = (d: DecodedInsn, k: number) => (k < d.nOps ? d.ops[k]! : null);
const isMem = (f: Form) => f.d.ops.slice(0, f.d.nOps).some((o) => o.kind === OperandKind.Mem);
/** The GPR number of operand k (a register form's r/m), or -1. */
const gprOf = (f: Form, k: number) => { const o = opnd(f.d, k); return o && o.kind === OperandKind.Reg && o.regClass === RegClass.Gpr ? o.reg : -1; };
const opSize = (f: Form) => f.d.opSize;

/** The frame a return instruction pops: values of `size` bytes from the lowest address, stored below STACK_TOP. */
function frame(e: Enc, size: number, values: number[]): void {
  const top = LAYOUT.STACK_TOP - size * values.length;
  values.forEach((v, k) => e.store(top + size * k, size as 2 | 4 | 8, v, 'ss'));
  e.setSp(top);
}

/** Instructions that raise #GP(0) outside CPL 0 (with IOPL 3: I/O, CLI and STI are allowed). */
const PRIVILEGED = ['hlt', 'lldt', 'ltr', 'lgdt', 'lidt', 'lmsw', 'invlpg', 'swapgs', 'clts', 'invd', 'wbinvd', 'wbnoinvd', 'rdmsr', 'wrmsr',
  'sysret', 'sysretl', 'sysretq', 'sysexit', 'sysexitl', 'sysexitq'];
const crOrDr = (f: Form) => f.mnemonic === 'mov' && [0, 1].some((k) => { const o = opnd(f.d, k); return o?.kind === OperandKind.Reg && (o.regClass === RegClass.Cr || o.regClass === RegClass.Dr); });

export const RULES: readonly Rule[] = [
  {
    what: 'CPL 3: privileged instructions (HLT, LGDT, MOV CRn, RDMSR, SYSRET, SYSEXIT...) raise #GP(0)',
    match: (f, env) => env.cpl === 3 && f.claim === 'exec' && (PRIVILEGED.includes(f.mnemonic) || crOrDr(f)),
    expect: () => GP,
    errcode: () => 0,
  },
  {
    what: 'CPL 3: INT n and INT3 through a gate of DPL 0 raise #GP(vector * 8 + 2)',
    match: (f, env) => env.cpl === 3 && (f.mnemonic === 'int' || f.mnemonic === 'int3'),
    expect: () => GP,
    errcode: (f) => (f.mnemonic === 'int3' ? 3 : IMM_FILL) * 8 + 2,
  },
  {
    what: 'near RET: the return address is after the instruction',
    match: is('ret'),
    setup: (e, s) => frame(e, opSize(s.f), [s.cont]),
  },
  {
    what: 'far RET: CS:IP after the instruction, CS the probe\'s',
    match: is('lret', 'lretw', 'lretq'),
    setup: (e, s) => frame(e, opSize(s.f), [s.cont, s.cs]),
  },
  {
    what: 'IRET: a frame back to after the instruction, same CS, flags and stack (in 64-bit code SS:RSP too)',
    match: is('iret', 'iretw', 'iretq'),
    setup: (e, s) => {
      const v = [s.cont, s.cs, s.env.flags];
      if (s.env.mode === 64) v.push(LAYOUT.STACK_TOP, s.env.ss);
      frame(e, opSize(s.f), v);
    },
  },
  {
    what: 'near CALL/JMP through a register or memory: the target is after the instruction',
    match: (f) => (f.mnemonic === 'call' || f.mnemonic === 'jmp') && opnd(f.d, 0)?.kind !== OperandKind.Rel,
    setup: (e, s) => {
      if (isMem(s.f)) e.store(LAYOUT.SCRATCH, opSize(s.f) as 2 | 4 | 8, s.cont);
      else e.movReg(gprOf(s.f, 0), s.cont);
    },
  },
  {
    what: 'far CALL/JMP through memory: the pointer is after the instruction with the probe\'s CS',
    match: (f) => (f.mnemonic === 'lcall' || f.mnemonic === 'ljmp') && isMem(f),
    setup: (e, s) => {
      const n = opSize(s.f) === 2 ? 2 : 4;
      e.store(LAYOUT.SCRATCH, n as 2 | 4, s.cont).store(LAYOUT.SCRATCH + n, 2, s.cs);
    },
  },
  {
    what: 'real mode: LAR, LSL, VERR, VERW, ARPL, SLDT, STR, LLDT, LTR are not recognized (#UD)',
    match: (f, env) => env.mode === 16 && ['lar', 'lsl', 'verr', 'verw', 'arpl', 'sldt', 'str', 'lldt', 'ltr'].includes(f.mnemonic) && f.claim === 'exec',
    expect: () => UD,
  },
  {
    what: 'real mode: SYSCALL and SYSRET raise #UD (EFER.SCE is 0), SYSENTER and SYSEXIT #GP(0)',
    match: (f, env) => env.mode === 16 && f.claim === 'exec' && /^sys(call|ret|enter|exit)/.test(f.mnemonic),
    expect: (f) => (/^sys(call|ret)/.test(f.mnemonic) ? UD : GP),
  },
  {
    what: 'INT3: #BP',
    match: is('int3'),
    expect: () => BP,
  },
  {
    what: `INT n: vector n (0x${IMM_FILL.toString(16)}, the walk's immediate)`,
    match: is('int'),
    expect: () => IMM_FILL,
  },
  {
    what: 'INT1 (ICEBP): #DB',
    match: is('int1'),
    expect: () => DB,
  },
  {
    what: 'RDPMC: #GP(0), the CPU modelled has no performance counters',
    match: is('rdpmc'),
    expect: () => GP,
    errcode: () => 0,
  },
  {
    what: 'DIV/IDIV by AH: AH is 0 with the walk\'s RAX (#DE)',
    match: (f) => (f.mnemonic === 'div' || f.mnemonic === 'idiv') && opnd(f.d, 0)?.kind === OperandKind.Reg && opnd(f.d, 0)!.regClass === RegClass.Gpr8High,
    expect: () => DE,
  },
  {
    what: 'MOV SP/ESP/RSP, imm: the immediate is STACK_TOP',
    match: (f) => f.mnemonic === 'mov' && gprOf(f, 0) === 4 && opnd(f.d, 1)?.kind === OperandKind.Imm,
    patch: (b, f, env) => { const v = LAYOUT.STACK_TOP - env.ssBase; for (let j = f.head; j < b.length; j++) b[j] = (v / 2 ** (8 * (j - f.head))) & 0xff; },
  },
  {
    what: 'LLDT: the null selector',
    match: is('lldt'),
    setup: (e, s) => { if (isMem(s.f)) e.store(LAYOUT.SCRATCH, 2, 0); else e.movReg(gprOf(s.f, 0), 0); },
  },
  {
    what: 'LTR: the second TSS of the GDT, marked available again first',
    match: is('ltr'),
    setup: (e, s) => {
      const sel = s.env.mode === 64 ? TSS2_SEL64 : TSS2_SEL32;
      e.store(s.env.gdt + sel + 5, 1, 0x89);
      if (isMem(s.f)) e.store(LAYOUT.SCRATCH, 2, sel); else e.movReg(gprOf(s.f, 0), sel);
    },
  },
  {
    what: 'LGDT/LIDT: what SGDT/SIDT stored there first',
    match: is('lgdt', 'lidt'),
    setup: (e, s) => e.memOp([0x0f, 0x01], s.f.mnemonic === 'lgdt' ? 0 : 1),
  },
  {
    what: 'LMSW: what SMSW gave first',
    match: is('lmsw'),
    setup: (e, s) => { if (isMem(s.f)) e.memOp([0x0f, 0x01], 4); else e.raw(0x0f, 0x01, 0xe0 | gprOf(s.f, 0)); },
  },
  {
    what: 'MOV to CRn: the value MOV from CRn gave first',
    match: (f) => f.mnemonic === 'mov' && opnd(f.d, 0)?.kind === OperandKind.Reg && opnd(f.d, 0)!.regClass === RegClass.Cr,
    setup: (e, s) => {
      const src = opnd(s.f.d, 1)!.reg, cr = opnd(s.f.d, 0)!.reg;
      if (src >= 8 || cr >= 8) e.raw(0x40 | (cr >= 8 ? 4 : 0) | (src >= 8 ? 1 : 0));
      e.raw(0x0f, 0x20, 0xc0 | ((cr & 7) << 3) | (src & 7));
    },
  },
  {
    what: 'MOV to DRn: 0',
    match: (f) => f.mnemonic === 'mov' && opnd(f.d, 0)?.kind === OperandKind.Reg && opnd(f.d, 0)!.regClass === RegClass.Dr,
    setup: (e, s) => e.movReg(opnd(s.f.d, 1)!.reg, 0),
  },
  {
    what: 'RDMSR/WRMSR: ECX = 0x8B (AMD\'s patch level, which drops writes)',
    match: is('rdmsr', 'wrmsr'),
    setup: (e) => e.movReg(1, 0x8b),
  },
  {
    what: 'LDMXCSR: what STMXCSR stored there first',
    match: is('ldmxcsr'),
    setup: (e) => e.memOp([0x0f, 0xae], 3),
  },
  {
    what: 'FXRSTOR: what FXSAVE stored there first',
    match: is('fxrstor'),
    setup: (e) => e.memOp([0x0f, 0xae], 0),
  },
  {
    what: 'SYSRET: to INT 0xF0 at CPL 3 (RCX), RFLAGS from R11 = 2',
    match: (f, env) => env.mode !== 16 && /^sysret/.test(f.mnemonic),
    setup: (e, s) => { e.movReg(1, s.env.landing); if (s.env.mode === 64) e.movReg(11, 2); },
  },
  {
    what: 'SYSEXIT: to INT 0xF0 at CPL 3 (EDX), ESP = STACK_TOP (ECX)',
    match: (f, env) => env.mode !== 16 && /^sysexit/.test(f.mnemonic),
    setup: (e, s) => { e.movReg(2, s.env.landing); e.movReg(1, LAYOUT.STACK_TOP); },
  },
  {
    what: 'BOUND: bounds 0 and the largest positive value',
    match: is('bound'),
    setup: (e, s) => {
      const n = opSize(s.f);
      e.store(LAYOUT.SCRATCH, n as 2 | 4, 0).store(LAYOUT.SCRATCH + n, n as 2 | 4, n === 2 ? 0x7fff : 0x7fffffff);
    },
  },
];

/** The rule of a form, if any (forms the table says raise #UD have none: they raise #UD whatever the operands). */
export function ruleOf(f: Form, env: WalkEnv): Rule | undefined {
  return f.claim === 'exec' ? RULES.find((r) => r.match(f, env)) : undefined;
}

/** A probe: the form and what its run must give. */
export interface Probe {
  f: Form;
  rule: Rule | undefined;
  /** Whether the slot is in the low 64 KiB (32/64-bit code with a 16-bit IP). */
  low: boolean;
  /** The outcome the table claims: EXEC or a vector. */
  expect: number;
  /** The error code the exception must push, where the rule names one (not checked in real mode, which pushes none). */
  errcode: number | undefined;
  /** Builds the slot's bytes at `linear` (real mode: a 16-byte aligned address, CS = linear >> 4). */
  build(linear: number): Uint8Array;
}

/** Whether the instruction of `f` is a near branch with a 16-bit IP in 32/64-bit code. */
function ip16(f: Form): boolean {
  if (f.mode === 16 || f.d.opSize !== 2) return false;
  const n = f.mnemonic;
  return ['call', 'jmp', 'ret', 'loop', 'loope', 'loopne', 'jcxz', 'jecxz', 'jrcxz', 'iret', 'iretw', 'lret', 'lretw', 'lcall', 'ljmp'].includes(n) ||
    (n.startsWith('j') && opnd(f.d, 0)?.kind === OperandKind.Rel);
}

/** The instruction bytes of `f` with its branch displacement, far pointer or moffs set for a slot. */
function patchInsn(f: Form, env: WalkEnv, cont: number, cs: number): Uint8Array {
  const b = f.bytes.slice();
  const d = f.d;
  for (let k = 0; k < d.nOps; k++) {
    const o = d.ops[k]!;
    if (o.kind === OperandKind.Rel) b.fill(0, f.head);
    else if (o.kind === OperandKind.Far) {
      const n = b.length - f.head - 2;
      for (let j = 0; j < n; j++) b[f.head + j] = (cont >>> (8 * j)) & 0xff;
      b[f.head + n] = cs & 0xff; b[f.head + n + 1] = cs >> 8;
    } else if (o.kind === OperandKind.Mem && d.modrm < 0 && o.base < 0 && o.index < 0) {
      // moffs: the scratch memory (DS-relative)
      const a = LAYOUT.SCRATCH - env.dsBase;
      for (let j = f.head; j < b.length; j++) b[j] = (a / 2 ** (8 * (j - f.head))) & 0xff;
    }
  }
  return b;
}

/** The probe of form `f` in `env`. */
export function makeProbe(f: Form, env: WalkEnv): Probe {
  const rule = ruleOf(f, env);
  const claim = f.claim === 'exec' ? EXEC : UD;
  const expect = rule?.expect ? rule.expect(f, env) : claim;
  const low = ip16(f);
  const setupOf = (s: SlotCtx): number[] => {
    if (!rule?.setup) return [];
    const e = new Enc(env);
    rule.setup(e, s);
    return e.b;
  };
  const build = (linear: number): Uint8Array => {
    const cs = env.mode === 16 ? linear >>> 4 : env.cs;
    const base = env.mode === 16 ? linear & ~0xf : 0;
    // set-up lengths do not depend on the values in them
    const probeCtx = (cont: number): SlotCtx => ({ f, env, cont: cont - base, cs });
    const setupLen = setupOf(probeCtx(0)).length;
    const contLinear = linear + setupLen + f.bytes.length;
    const ctx = probeCtx(contLinear);
    const setup = setupOf(ctx);
    const insn = patchInsn(f, env, ctx.cont, cs);
    rule?.patch?.(insn, f, env);
    return Uint8Array.from([...setup, ...insn, ...SLOT_TAIL]);
  };
  const errcode = rule?.errcode && env.mode !== 16 ? rule.errcode(f, env) : undefined;
  return { f, rule, low, expect, errcode, build };
}

// ---- running ----

export interface WalkResult {
  /** Per probe: EXEC, a vector, or -1 where it did not run. */
  outcome: Int16Array;
  errcode: Int32Array;
  /** Probes whose run ended the machine (a TSVMM_GUEST exit, a triple fault...), with why. */
  failures: Map<number, string>;
  /** CPUID leaves 0, 1, 7, 0x80000000, 0x80000001, 0x80000008 as the guest saw them (long mode only). */
  cpuid: Uint32Array;
}

let images: Map<string, Uint8Array> | undefined;
/** The runner guest of `mode`, assembled with the layout. */
export function runnerImage(mode: CpuMode): Uint8Array {
  images ??= new Map();
  const key = String(mode);
  let img = images.get(key);
  if (!img) {
    const defines: Record<string, number> = {};
    for (const [k, v] of Object.entries(LAYOUT)) defines[k] = v;
    img = assemble(`soft/opwalk${mode}.asm`, { defines });
    images.set(key, img);
  }
  return img;
}

/** Fills the probe env's fields that come from the runner image. */
export function bindEnv(env: WalkEnv): WalkEnv {
  const dv = new DataView(runnerImage(env.mode).buffer);
  if (dv.getUint32(H.magic, true) !== 0x4b57504f) throw new Error(`guests/soft/opwalk${env.mode}.asm: no header at 0x${H.magic.toString(16)}`);
  return { ...env, landing: dv.getUint32(H.landing, true), gdt: dv.getUint32(H.gdt, true) };
}

/** Lays the probes into slots: their addresses (the low area for `low` ones), or throws if they do not fit. */
function place(env: WalkEnv, probes: readonly Probe[], sizes: number[]): number[] {
  const addrs: number[] = [];
  let hi = env.mode === 16 ? LAYOUT.SLOTS16 : LAYOUT.SLOTS, lo = LAYOUT.LOW_SLOTS;
  const end = env.mode === 16 ? LAYOUT.SLOTS16_END : LAYOUT.RAM;
  probes.forEach((p, k) => {
    const n = (sizes[k]! + 2 + 15) & ~15; // room for a stray INT 0xF1 after it, 16-byte aligned
    if (p.low && env.mode !== 16) { addrs.push(lo); lo += n; if (lo > LAYOUT.LOW_SLOTS_END) throw new Error('low slots full'); } else { addrs.push(hi); hi += n; if (hi > end) throw new Error('slots full'); }
  });
  return addrs;
}

/** How many probes fit one real-mode run (the slots below 1 MiB). */
export const REAL_MODE_BATCH = 3000;

/** Runs `probes` on `backend` in `env` (a bound env: bindEnv), from probe `first`; restarts after a probe that ends the machine. */
export function runWalk(backend: Backend, env: WalkEnv, probes: readonly Probe[]): WalkResult {
  const n = probes.length;
  const res: WalkResult = { outcome: new Int16Array(n).fill(-1), errcode: new Int32Array(n), failures: new Map(), cpuid: new Uint32Array(24) };
  const batch = env.mode === 16 ? REAL_MODE_BATCH : n;
  for (let start = 0; start < n; start += batch) {
    const part = probes.slice(start, Math.min(n, start + batch));
    let first = 0;
    while (first < part.length) {
      const stop = runOnce(backend, env, part, first, res, start);
      if (stop === null) break;
      first = stop + 1;
    }
  }
  return res;
}

/** The CPUID leaves a guest of `env` reads on `backend` (a run with no probes). */
export function guestCpuid(backend: Backend, env: WalkEnv): Uint32Array {
  const res: WalkResult = { outcome: new Int16Array(0), errcode: new Int32Array(0), failures: new Map(), cpuid: new Uint32Array(24) };
  const stop = runOnce(backend, env, [], 0, res, 0);
  if (stop !== null) throw new Error(`the ${backend.name} guest did not start: ${res.failures.get(0)}`);
  return res.cpuid;
}

/** One machine: runs part[first..]; returns the index of a probe that ended it early, or null. */
function runOnce(backend: Backend, env: WalkEnv, part: readonly Probe[], first: number, res: WalkResult, offset: number): number | null {
  const L = LAYOUT;
  const machine = new Machine(backend);
  const mem = machine.allocateMemory(L.RAM);
  try {
    machine.mapHva(mem);
    machine.mapGpa(0, mem.hva, L.RAM, PROT.ALL);
    const b = mem.bytes;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let a = 0; a < L.RAM; a += 2) { b[a] = STRAY[0]!; b[a + 1] = STRAY[1]!; }
    b.fill(0, 0, 0x1000); // real-mode IVT, BIOS data
    b.fill(0, L.IDT, L.RUNNER);
    const img = runnerImage(env.mode);
    b.set(img, L.RUNNER);
    const pat = new Uint8Array(PAGE);
    for (let a = 0; a < PAGE; a += 2) { pat[a] = env.pattern & 0xff; pat[a + 1] = env.pattern >> 8; }
    b.set(pat, L.PRISTINE);
    b.set(pat, L.PREFILL);
    b.fill(0, L.SCRATCH16, L.SCRATCH16 + PAGE);
    b.fill(0, L.RESULTS, L.RESULTS + 0x10000);
    b.fill(0, L.PT, L.PT + 0x3000);
    const probes = part;
    const slots = probes.map((p) => p.build(env.mode === 16 ? L.SLOTS16 : L.SLOTS));
    const addrs = place(env, probes, slots.map((s) => s.length));
    probes.forEach((p, k) => {
      const bytes = p.build(addrs[k]!);
      b.set(bytes, addrs[k]!);
      if (env.mode === 16) dv.setUint32(L.ADDRS16 + 4 * k, ((addrs[k]! >>> 4) << 16) >>> 0, true);
      else dv.setUint32(L.ADDRS + 4 * k, addrs[k]!, true);
    });
    const R = L.RUNNER;
    dv.setUint32(R + H.nprobes, probes.length, true);
    dv.setUint32(R + H.first, first, true);
    env.regs.forEach((v, k) => dv.setBigUint64(R + H.regs + 8 * k, BigInt(v), true));
    dv.setBigUint64(R + H.pflags, BigInt(env.flags), true);
    dv.setBigUint64(R + H.pcs, BigInt(env.cs), true);
    dv.setBigUint64(R + H.pss, BigInt(env.ss), true);
    dv.setBigUint64(R + H.pds, BigInt(env.ds), true);
    const vcpu = machine.createVcpu(0);
    if (env.mode === 16) {
      const s = vcpu.getState(STATE.ALL);
      s.segs[SEG.CS] = { ...s.segs[SEG.CS]!, selector: 0, base: 0n };
      s.gprs[GPR.RIP] = BigInt(R);
      s.crs[CR.CR0] = 0x32n; // NE ET MP
      s.crs[CR.CR4] = 0x600n; // OSFXSR OSXMMEXCPT
      s.msrs[MSR.EFER] = 0n;
    } else enterFlat32(vcpu, R);
    vcpu.setState(STATE.ALL);
    const io = (x: { in: boolean; data: Uint8Array }) => { if (x.in) x.data.fill(0); };
    const cur = () => dv.getInt32(R + H.cur, true);
    for (let exits = 0; ; exits++) {
      const exit = vcpu.run();
      const k = cur();
      const fail = (why: string): number => {
        res.failures.set(offset + k, why);
        return k;
      };
      if (exits > 20 * probes.length + 1000) return fail(`more than ${exits} exits`);
      switch (exit.kind) {
        case 'none':
          continue;
        case 'io':
          if (!exit.in && exit.port === 0xe1) {
            collect();
            return null;
          }
          if (!exit.in && exit.port === 0xe2) { collect(); return fail('the runner faulted between probes'); }
          assistIo(vcpu, io);
          continue;
        case 'halted':
          continue; // HLT at CPL 0 completes (RIP after it)
        case 'rdmsr': case 'wrmsr': {
          const s = vcpu.getState(STATE.GPRS);
          if (exit.kind === 'rdmsr') { s.gprs[GPR.RAX] = 0n; s.gprs[GPR.RDX] = 0n; }
          s.gprs[GPR.RIP] = exit.npc;
          vcpu.setState(STATE.GPRS);
          continue;
        }
        default: {
          collect();
          const rip = vcpu.getState(STATE.GPRS).gprs[GPR.RIP]!;
          return fail(`${exit.kind}${exit.kind === 'invalid' ? ` (${exit.reason})` : ''} at RIP 0x${rip.toString(16)}`);
        }
      }
    }
    function collect(): void {
      for (let k = 0; k < probes.length; k++) {
        const v = b[L.RESULTS + k]!;
        const i = offset + k;
        if (k >= first && k < cur()) res.outcome[i] = v;
        if (k >= first && k < cur()) res.errcode[i] = env.mode === 16 ? -1 : dv.getInt32(L.ERRCODES + 4 * k, true);
      }
      if (env.mode !== 16) for (let j = 0; j < 24; j++) res.cpuid[j] = dv.getUint32(L.RUNNER + H.cpuid + 4 * j, true);
    }
  } finally {
    machine.destroy();
    mem.free();
  }
}

/** A probe's outcome for reports. */
export function outcomeName(v: number): string {
  if (v === EXEC) return 'completes';
  if (v < 0) return 'did not run';
  const names: Record<number, string> = { 0: '#DE', 1: '#DB', 3: '#BP', 4: '#OF', 5: '#BR', 6: '#UD', 7: '#NM', 8: '#DF', 10: '#TS', 11: '#NP', 12: '#SS', 13: '#GP', 14: '#PF', 16: '#MF', 17: '#AC', 19: '#XM' };
  return names[v] ?? `vector 0x${v.toString(16)}`;
}

/** "66 0f 38 00 c0 (pshufb, 64-bit)" for reports. */
export function describe(f: Form): string {
  return `${hexBytes(f.bytes)} (${f.mnemonic}, ${f.mode}-bit)`;
}

// ---- comparing with the real CPU (test/soft/opcode-walk-kvm.test.ts) ----

/** The CPUID leaves the runner records (opwalk64.asm `leaves`), EAX EBX ECX EDX each. */
const CPUID_LEAVES = [0, 1, 7, 0x80000000, 0x80000001, 0x80000008];
const REG_INDEX = { eax: 0, ebx: 1, ecx: 2, edx: 3 } as const;

/** A feature bit of a guest's recorded CPUID (0 for a leaf beyond its highest). */
export function cpuidHas(cpuid: Uint32Array, name: FeatureName): boolean {
  const feat = FEATURE[name];
  const k = CPUID_LEAVES.indexOf(feat.leaf);
  const max = feat.leaf >= 0x80000000 ? cpuid[3 * 4]! : cpuid[0]!;
  if (k < 0 || feat.leaf > max) return false;
  return ((cpuid[4 * k + REG_INDEX[feat.reg]]! >>> feat.bit) & 1) === 1;
}

/** The vendor string of a guest's recorded CPUID. */
export function cpuidVendor(cpuid: Uint32Array): string {
  return cpuidString(cpuid[1]!, cpuid[3]!, cpuid[2]!);
}

/**
 * The instructions of the features the soft CPU's models advertise that a 64-bit host may lack
 * (the others, FPU to SSE2, CMOV, CX8, FXSR, are in every x86-64 processor).
 */
export const HOST_FEATURES: readonly (readonly [FeatureName, readonly string[]])[] = [
  ['CX16', ['cmpxchg16b']], ['POPCNT', ['popcnt']], ['ABM', ['lzcnt']], ['RDRAND', ['rdrand']], ['RDSEED', ['rdseed']],
  ['CLFLUSHOPT', ['clflushopt']], ['CLWB', ['clwb']], ['RDTSCP', ['rdtscp']], ['LAHF_LM', ['lahf', 'sahf']],
  ['3DNOWPREFETCH', ['prefetch', 'prefetchw']], ['WBNOINVD', ['wbnoinvd']], ['SYSCALL', ['syscall', 'sysret', 'sysretl', 'sysretq']],
];
const FEATURE_OF = new Map<string, FeatureName>(HOST_FEATURES.flatMap(([f, names]) => names.map((n) => [n, f] as [string, FeatureName])));

/** Whether the legacy (non-VEX) form `f`, undefined, has the opcode of a VEX-only instruction (VPERMILPS is 0F 38 0C). */
export function vexOnlyOpcode(f: Form): boolean {
  if (f.claim !== 'ud' || f.mapIndex === 0) return false;
  const d = new DecodedInsn();
  for (let pp = 0; pp < 4; pp++) {
    // C4, R X B = 1 (none), the map; W = 0, vvvv = 1111, L = 0, pp
    const b = Uint8Array.from([0xc4, 0xe0 | f.mapIndex, 0x78 | pp, f.op, 0xc0, 0, 0, 0, 0, 0]);
    decode(b, 0, b.length, 64, d);
    if (d.status === DecodeStatus.Ok) return true;
  }
  return false;
}

/** The ModRM byte of a form (undefined for an opcode without one). */
function modrmOf(f: Form): number | undefined {
  return f.bytes[f.prefix.length + MAPS[f.mapIndex]![1].length + 1];
}
const pfxIs = (f: Form, ...p: number[]) => p.includes(f.prefix[0] ?? 0);
const at = (f: Form, map: number, op: number) => f.mapIndex === map && f.op === op;

/**
 * Forms where the processor of the nested CI, QEMU 7.2's TCG (emulating SVM for the KVM the test
 * runs on), departs from the SDM and the APM, or where processors are not known to agree. The CI
 * has no other processor, so they are left out everywhere; each says what the soft CPU does.
 */
export const EMULATOR_DIFFS: readonly { what: string; match: (f: Form) => boolean }[] = [
  { what: '8F /1-/7 (undefined; AMD\'s XOP escape): #UD; TCG pops', match: (f) => at(f, 0, 0x8f) && ((modrmOf(f) ?? 0) & 0x38) !== 0 },
  { what: 'C6 and C7 /1-/7 but XABORT and XBEGIN: #UD; TCG ignores ModRM.reg', match: (f) => (at(f, 0, 0xc6) || at(f, 0, 0xc7)) && f.claim === 'ud' },
  { what: 'INT1 (ICEBP): #DB; TCG under nested KVM raises #UD', match: (f) => f.mnemonic === 'int1' },
  { what: 'LOCK before an instruction it may not prefix: #UD; TCG executes LOCK MOV', match: (f) => f.prefix.length === 0 && f.bytes[0] === 0xf0 && f.claim === 'ud' },
  { what: 'MOVNTI with 66, F2 or F3, MOVNTQ and MOVNTDQ with a register: #UD; TCG executes them', match: (f) => (at(f, 1, 0xc3) || at(f, 1, 0xe7)) && f.claim === 'ud' },
  { what: 'the forms SSE4A does not define in its opcodes (66/F2 0F 78, 79): #UD; TCG takes them', match: (f) => (at(f, 1, 0x78) || at(f, 1, 0x79)) && pfxIs(f, 0x66, 0xf2) },
  { what: 'WBINVD (0F 09) with 66 or F2: #UD in the soft CPU\'s decoder; TCG ignores the prefix (WBINVD)', match: (f) => at(f, 1, 0x09) && pfxIs(f, 0x66, 0xf2) },
  { what: 'PREFETCHh (0F 18 /0-/3) with a register: the soft CPU\'s hint NOP; TCG raises #UD', match: (f) => at(f, 1, 0x18) && (modrmOf(f) ?? 0) >= 0xc0 && ((modrmOf(f) ?? 0) & 0x38) < 0x20 },
  { what: 'PMOVMSKB with F3 or F2: the soft CPU ignores the prefix; TCG raises #UD', match: (f) => at(f, 1, 0xd7) && pfxIs(f, 0xf3, 0xf2) },
  { what: 'MOV with CR1 or CR5-CR7 at CPL 3: #UD (an undefined encoding) in the soft CPU; TCG and KVM\'s emulator check the CPL first (#GP(0))', match: (f) => (at(f, 1, 0x20) || at(f, 1, 0x22)) && f.claim === 'ud' && [1, 5, 6, 7].includes(((modrmOf(f) ?? 0) >> 3) & 7) },
];

/** What the comparison with the real CPU leaves out, and why (docs/soft-cpu-opcodes.md lists them). */
export const EXCLUDED = {
  feature: 'the instructions of features the CPU modelled does not advertise, and VEX encodings: a host that has the feature executes them, the model raises #UD by design',
  vexOnly: 'the opcodes of VEX-only instructions (VPERMILPS is 0F 38 0C...) without VEX: #UD on both, but QEMU 7.2\'s TCG, the processor of the nested CI, resets its guest on some when KVM runs them',
  cpuid: 'instructions of a feature whose CPUID bit differs between the two guests (each reads its own CPUID)',
  sysenter: 'SYSENTER and SYSEXIT: in long mode the soft CPU follows Intel (they work), AMD raises #UD',
  vendor: 'when the host\'s vendor is not the model\'s (AuthenticAMD): near branches with a 66 prefix (AMD takes a 16-bit IP, Intel ignores the prefix)',
  emulator: 'forms where QEMU 7.2\'s TCG, the processor of the nested CI, departs from the manuals, or processors are not known to agree',
  intError: 'the error code of #GP from INT n and INT3 through a DPL-0 gate (QEMU\'s TCG scales the vector by 16 in long mode; the soft CPU\'s, vector * 8 + 2, is checked by opcode-walk.test.ts): the vector is compared',
} as const;

/** Why form `f` is left out of the comparison with the real CPU (given both guests' CPUID), or undefined. */
export function hardwareExclusion(f: Form, host: Uint32Array, model: Uint32Array): string | undefined {
  if (f.claim === 'feature') return EXCLUDED.feature;
  if (vexOnlyOpcode(f)) return EXCLUDED.vexOnly;
  const feat = FEATURE_OF.get(f.mnemonic);
  if (feat && cpuidHas(host, feat) !== cpuidHas(model, feat)) return `${EXCLUDED.cpuid}: ${feat}`;
  if (/^sys(enter|exit)/.test(f.mnemonic)) return EXCLUDED.sysenter;
  if (cpuidVendor(host) !== cpuidVendor(model) && ip16(f)) return EXCLUDED.vendor;
  const diff = EMULATOR_DIFFS.find((x) => x.match(f));
  if (diff) return `${EXCLUDED.emulator}: ${diff.what}`;
  return undefined;
}
