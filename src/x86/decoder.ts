/**
 * x86 instruction decoder for 16-, 32- and 64-bit code. Pure code, no I/O, never throws.
 *
 *   const insn = new DecodedInsn();
 *   decode(bytes, offset, end, 64, insn);      // fills insn, returns it
 *   if (insn.status === DecodeStatus.Ok) ...   // insn.length bytes were consumed
 *
 * The decoded-instruction record (`DecodedInsn`, reused by the caller; no allocation per decode):
 *
 *   status       DecodeStatus.Ok | Invalid (#UD: undefined opcode, register form of a memory-only
 *                operand, LOCK/VEX misuse, longer than 15 bytes) | Truncated (`needed` bytes needed;
 *                a lower bound: supply at least that many and decode again)
 *   length       bytes consumed (1-15). For Invalid: the bytes examined before the encoding was
 *                found undefined (this is what objdump shows as the length of a `(bad)`)
 *   mnemonic     numeric id; `MNEMONICS[id]` is its name (objdump's base spelling, e.g. 'add',
 *                'movzb', 'cvtsi2sd'); `mnemonicId('add')` gives the id. 0 = invalid
 *   entry        the opcode table leaf (`OpcodeEntry`: name, flags, operand specs) or null
 *   map          OpcodeMap: 0 one-byte, 1 0F, 2 0F38, 3 0F3A (also for VEX; `vex` says VEX-encoded)
 *   opcode       the final opcode byte; modrm (-1 if none), sib (-1 if none)
 *   opSize       effective operand size in bytes (2/4/8), addrSize (2/4/8)
 *   prefixes     Prefix bits present (LOCK, REP=F3, REPNE=F2, OPSIZE=66, ADDRSIZE=67, SEG, REX, VEX)
 *   lastRep      0, 0xF3 or 0xF2: the last of F2/F3 (the one that counts)
 *   mandatory    mandatory prefix consumed by the opcode table: 0, 0x66, 0xF3, 0xF2
 *   segment      segment override (Seg number) or -1 (the last segment prefix wins)
 *   rex          the REX byte in effect (0 if none; a REX not immediately before the opcode is ignored)
 *   vexL, vexW, vexV (vvvv, already un-inverted, 0-15), vexPP, vexMap
 *   prefixLen    bytes before the opcode (legacy prefixes, REX, VEX)
 *   nOps, ops[0..3]  operands in Intel order (destination first); each an `Operand`:
 *     kind       OperandKind.Reg | Mem | Imm | Rel | Far
 *     size       bytes accessed / register width (1,2,4,8,10,16,32; 0 = unsized, e.g. lea, fxsave)
 *     Reg:  regClass (RegClass), reg (0-15)
 *     Mem:  seg (effective Seg incl. the default DS/SS), base (-1 none, 0-15, 16 = RIP/EIP),
 *           index (-1 none), scale (1/2/4/8), disp (signed 32-bit; for 16-bit addressing the
 *           16-bit value as encoded, sign-extended), dispHi (high 32 bits of a 64-bit moffs),
 *           vsib (gathers: 16/32 = the index is an XMM/YMM register number, 0 otherwise)
 *     Imm:  imm (low 32 bits, unsigned, after extension to `size`), immHi (high 32 bits), immSize
 *           (bytes encoded)
 *     Rel:  rel (signed displacement; target = address + length + rel, truncated to opSize)
 *     Far:  imm (offset), sel (selector)
 *
 * `objdumpCompat` (used by the disassembler) accepts 66/F2/F3/LOCK/REX before a VEX prefix as objdump
 * does (a CPU raises #UD). Mode semantics follow objdump where CPUs differ: a 66 prefix on a near branch in 64-bit mode gives a
 * 16-bit operand (AMD behaviour; Intel ignores it).
 */
import {
  MAP_0F38, MAP_0F3A, NOW3D_NAMES, ONE_BYTE_MAP, SplitKind, TWO_BYTE_MAP, X87_MEM, X87_REG, type Node,
} from './opcode-tables.js';
import { VEX_MAPS } from './opcode-vex.js';
import { RegClass, Seg } from './registers.js';

export type CpuMode = 16 | 32 | 64;

export const DecodeStatus = { Ok: 0, Invalid: 1, Truncated: 2 } as const;
export type DecodeStatus = (typeof DecodeStatus)[keyof typeof DecodeStatus];

export const OperandKind = { None: 0, Reg: 1, Mem: 2, Imm: 3, Rel: 4, Far: 5 } as const;
export type OperandKind = (typeof OperandKind)[keyof typeof OperandKind];

export const OpcodeMap = { OneByte: 0, Map0F: 1, Map0F38: 2, Map0F3A: 3 } as const;

/** Bits of `DecodedInsn.prefixes` (and of `usedPrefixes`). */
export const Prefix = {
  Lock: 1, Rep: 2, Repne: 4, OpSize: 8, AddrSize: 16, Seg: 32, Rex: 64, Vex: 128,
} as const;

/** Why an Invalid result is invalid (`DecodedInsn.invalidReason`). */
export const InvalidReason = {
  None: 0,
  Opcode: 1, // undefined opcode (table hole)
  RegisterForm: 2, // ModRM.mod == 3 where only memory is allowed
  TooLong: 3, // more than 15 bytes
  Vex: 4, // VEX with a forbidden prefix or a reserved map
  Mode: 5, // not valid in this CPU mode
  Operand: 6, // bad register number (segment register 6/7, ...)
} as const;

// ---- operand specs (compiled from the table tokens) ----
/** Addressing methods of operand specs (`OpcodeEntry.ops[i] & 0xff`). */
export const OpMethod = {
  E: 1, G: 2, M: 3, R: 4, I: 5, J: 6, O: 7, A: 8, S: 9, C: 10, D: 11, P: 12, Q: 13, N: 14,
  V: 15, W: 16, U: 17, H: 18, L: 19, Z: 20, X: 21, Y: 22, B: 23,
  FixGpr: 24, FixSeg: 25, DxPort: 26, One: 27, St: 28, StI: 29, Xmm0: 30,
  /** ModRM r/m: MPX bound register or memory. */
  K: 31,
  /** ModRM reg: 386/486 test register. */
  T: 32,
  /** ModRM reg: AVX-512 mask register k0-k7 (VEX-encoded mask instructions). */
  KG: 33,
  /** ModRM r/m: mask register or memory. */
  KE: 34,
  /** VEX.vvvv: mask register. */
  KH: 35,
  /** ModRM r/m: VSIB memory (a SIB byte whose index is a vector register; size code = index width). */
  Vsib: 36,
  /** The low 4 bits of the is4 byte as an immediate (vpermil2ps/pd). */
  Is4Imm: 37,
  /** An operand objdump prints as `(bad)` (a field that must not be used by this form); no bytes. */
  BadOp: 38,
} as const;
/** Size codes of operand specs (`(spec >> 8) & 0xff`). */
export const OpSizeCode = {
  None: 0, B: 1, W: 2, D: 3, Q: 4, V: 5, Z: 6, Y: 7, P: 8, S: 9, T: 10, X: 11, DQ: 12, QQ: 13, A: 14,
  BS: 15, BD: 16, WD: 17, N: 18,
  /** The address size (rAX of MONITOR). */
  AS: 19,
} as const;

/** Flags of an opcode table leaf (`OpcodeEntry.flags`). */
export const OpFlag = {
  D64: 1, F64: 2, I64: 4, O64: 8, SuffixAlways: 16, SuffixNever: 32, Branch: 64, String: 128,
  SuffixMem: 256, ModRm: 512, Vex: 1024, Jcc: 2048, Far: 4096, Bad: 8192,
  /** AT&T suffix (w/l/q) only when the operand size is not the mode's default (pusha, lret, iret). */
  SuffixNonDefault: 16384,
  /** AT&T suffix from the operand size in 16/32-bit modes, none in long mode (sgdt, sidt, lgdt, lidt). */
  SuffixOpSize: 32768,
  /** x87 environment/state forms: a 66 prefix selects the other format (objdump: `s`/`l` suffix). */
  X87Env: 65536,
  /** A loop instruction whose counter is rCX of the address size (objdump: suffix for a non-default one). */
  AddrCounter: 131072,
  /** A mandatory prefix that led to this leaf is not consumed (it stays an ordinary, printed prefix). */
  KeepPrefix: 262144,
  /** MPX: 16-bit addressing is not encodable (objdump shows the memory operand as `(bad)`). */
  Mpx: 524288,
  /** MPX MIB operand: RIP-relative addressing is not encodable either. */
  Mib: 1048576,
  /** Only ModRM = 11 xxx 000 is defined (VIA PadLock); anything else is a `(bad)` operand. */
  RmZero: 2097152,
  /** AMD 3DNow!: the mnemonic is chosen by an imm8 after the operands (`NOW3D_NAMES`). */
  Now3d: 4194304,
  /** objdump prints `{vex}` before the mnemonic (a VEX form of an instruction that also has an EVEX form). */
  PseudoVex: 8388608,
  /** objdump prints the operands in Intel order (monitor, mwait...). */
  NoReverse: 16777216,
  /** AVX2 gather: destination, index and mask must be distinct registers (objdump marks `/(bad)`). */
  Gather: 33554432,
  /** Computed: an operand is taken from VEX.vvvv. */
  UsesVvvv: 67108864,
  /** Computed: an operand comes from the is4 byte (read after the ModRM operand bytes). */
  Is4: 134217728,
} as const;

/** A leaf of the opcode tables. */
export interface OpcodeEntry {
  readonly mnemonic: number;
  readonly name: string;
  readonly flags: number;
  /** Operand specs: method | size << 8 | fixed register << 16. */
  readonly ops: readonly number[];
}

interface CompiledSplit {
  readonly split: SplitKind;
  readonly e: readonly CompiledNode[];
  /**
   * Prefix splits: bit i = column i does not consume its prefix; bit 4 + i = column i is the no-prefix
   * instruction, its prefix consumed but not a mandatory prefix.
   */
  readonly keep: number;
}
type CompiledNode = OpcodeEntry | CompiledSplit | null;

export const MNEMONICS: string[] = ['(bad)'];
const mnemonicIds = new Map<string, number>([['(bad)', 0]]);
/** The numeric id of a mnemonic name (as in `MNEMONICS`), or -1. */
export function mnemonicId(name: string): number {
  return mnemonicIds.get(name) ?? -1;
}
function internMnemonic(name: string): number {
  let id = mnemonicIds.get(name);
  if (id === undefined) {
    id = MNEMONICS.length;
    MNEMONICS.push(name);
    mnemonicIds.set(name, id);
  }
  return id;
}

const METHOD_LETTERS: Record<string, number> = {
  E: OpMethod.E, G: OpMethod.G, M: OpMethod.M, R: OpMethod.R, I: OpMethod.I, J: OpMethod.J, O: OpMethod.O,
  A: OpMethod.A, S: OpMethod.S, C: OpMethod.C, D: OpMethod.D, P: OpMethod.P, Q: OpMethod.Q, N: OpMethod.N,
  V: OpMethod.V, W: OpMethod.W, U: OpMethod.U, H: OpMethod.H, L: OpMethod.L, Z: OpMethod.Z, X: OpMethod.X,
  Y: OpMethod.Y, B: OpMethod.B, K: OpMethod.K, T: OpMethod.T,
};
const SIZE_LETTERS: Record<string, number> = {
  '': OpSizeCode.None, '0': OpSizeCode.None, b: OpSizeCode.B, w: OpSizeCode.W, d: OpSizeCode.D, q: OpSizeCode.Q,
  v: OpSizeCode.V, z: OpSizeCode.Z, y: OpSizeCode.Y, p: OpSizeCode.P, s: OpSizeCode.S, t: OpSizeCode.T,
  x: OpSizeCode.X, dq: OpSizeCode.DQ, qq: OpSizeCode.QQ, a: OpSizeCode.A, bs: OpSizeCode.BS, bd: OpSizeCode.BD,
  wd: OpSizeCode.WD, n: OpSizeCode.N, as: OpSizeCode.AS, ps: OpSizeCode.X, pd: OpSizeCode.X, ss: OpSizeCode.D, sd: OpSizeCode.Q, pi: OpSizeCode.Q,
};
const FIXED: Record<string, number> = {
  AL: OpMethod.FixGpr | (OpSizeCode.B << 8),
  CL: OpMethod.FixGpr | (OpSizeCode.B << 8) | (1 << 16),
  AX: OpMethod.FixGpr | (OpSizeCode.W << 8),
  rAX: OpMethod.FixGpr | (OpSizeCode.V << 8),
  eAX: OpMethod.FixGpr | (OpSizeCode.Z << 8),
  DXp: OpMethod.DxPort | (OpSizeCode.W << 8),
  ES: OpMethod.FixSeg | (OpSizeCode.W << 8) | (Seg.ES << 16),
  CS: OpMethod.FixSeg | (OpSizeCode.W << 8) | (Seg.CS << 16),
  SS: OpMethod.FixSeg | (OpSizeCode.W << 8) | (Seg.SS << 16),
  DS: OpMethod.FixSeg | (OpSizeCode.W << 8) | (Seg.DS << 16),
  FS: OpMethod.FixSeg | (OpSizeCode.W << 8) | (Seg.FS << 16),
  GS: OpMethod.FixSeg | (OpSizeCode.W << 8) | (Seg.GS << 16),
  ST: OpMethod.St | (OpSizeCode.T << 8),
  STi: OpMethod.StI | (OpSizeCode.T << 8),
  XMM0: OpMethod.Xmm0 | (OpSizeCode.DQ << 8),
  aAX: OpMethod.FixGpr | (OpSizeCode.AS << 8),
  EAX: OpMethod.FixGpr | (OpSizeCode.D << 8),
  ECX: OpMethod.FixGpr | (OpSizeCode.D << 8) | (1 << 16),
  EDX: OpMethod.FixGpr | (OpSizeCode.D << 8) | (2 << 16),
  EBX: OpMethod.FixGpr | (OpSizeCode.D << 8) | (3 << 16),
  '1': OpMethod.One | (OpSizeCode.B << 8),
  Ibs: OpMethod.I | (OpSizeCode.BS << 8),
  KG: OpMethod.KG, KEb: OpMethod.KE | (OpSizeCode.B << 8), KEw: OpMethod.KE | (OpSizeCode.W << 8),
  KEd: OpMethod.KE | (OpSizeCode.D << 8), KEq: OpMethod.KE | (OpSizeCode.Q << 8), KH: OpMethod.KH,
  VSx: OpMethod.Vsib | (OpSizeCode.X << 8), VSdq: OpMethod.Vsib | (OpSizeCode.DQ << 8),
  I4: OpMethod.Is4Imm | (OpSizeCode.B << 8), BAD: OpMethod.BadOp,
};
const FLAG_NAMES: Record<string, number> = {
  d64: OpFlag.D64, f64: OpFlag.F64, i64: OpFlag.I64, o64: OpFlag.O64, sx: OpFlag.SuffixAlways,
  nosx: OpFlag.SuffixNever, br: OpFlag.Branch, str: OpFlag.String, sxm: OpFlag.SuffixMem,
  jcc: OpFlag.Jcc, far: OpFlag.Far, bad: OpFlag.Bad, sxd: OpFlag.SuffixNonDefault, osx: OpFlag.SuffixOpSize,
  x87e: OpFlag.X87Env, actr: OpFlag.AddrCounter, kp: OpFlag.KeepPrefix, mpx: OpFlag.Mpx, mib: OpFlag.Mpx | OpFlag.Mib,
  rm0: OpFlag.RmZero | OpFlag.ModRm, now3d: OpFlag.Now3d, vexpfx: OpFlag.PseudoVex, norev: OpFlag.NoReverse,
  gather: OpFlag.Gather,
};

const NEEDS_MODRM = new Set<number>([OpMethod.E, OpMethod.G, OpMethod.M, OpMethod.R, OpMethod.S, OpMethod.C,
  OpMethod.D, OpMethod.P, OpMethod.Q, OpMethod.N, OpMethod.V, OpMethod.W, OpMethod.U, OpMethod.B, OpMethod.K, OpMethod.T,
  OpMethod.KG, OpMethod.KE, OpMethod.Vsib]);
/** Operand methods that read VEX.vvvv (or mark it used, BadOp standing for a vvvv operand). */
const VVVV_METHODS = new Set<number>([OpMethod.H, OpMethod.B, OpMethod.KH, OpMethod.BadOp]);

function parseOperand(tok: string, where: string): number {
  const fixed = FIXED[tok];
  if (fixed !== undefined) return fixed;
  const m = METHOD_LETTERS[tok[0]!];
  const s = SIZE_LETTERS[tok.slice(1)];
  if (m === undefined || s === undefined) throw new Error(`opcode table: bad operand '${tok}' in '${where}'`);
  return m | (s << 8);
}

/** Parses a table leaf `"name[:flag...] op,op"`. Table errors are bugs: they throw at module load. */
export function parseLeaf(text: string, extraFlags = 0): OpcodeEntry {
  const sp = text.indexOf(' ');
  const head = sp < 0 ? text : text.slice(0, sp);
  const parts = head.split(':');
  const name = parts[0]!;
  let flags = extraFlags;
  for (const f of parts.slice(1)) {
    const bit = FLAG_NAMES[f];
    if (bit === undefined) throw new Error(`opcode table: bad flag '${f}' in '${text}'`);
    flags |= bit;
  }
  const ops = sp < 0 ? [] : text.slice(sp + 1).split(',').map((t) => parseOperand(t.trim(), text));
  if (ops.some((o) => NEEDS_MODRM.has(o & 0xff))) flags |= OpFlag.ModRm;
  if (ops.some((o) => VVVV_METHODS.has(o & 0xff))) flags |= OpFlag.UsesVvvv;
  if (ops.some((o) => (o & 0xff) === OpMethod.L || (o & 0xff) === OpMethod.Is4Imm)) flags |= OpFlag.Is4;
  return { mnemonic: internMnemonic(name), name, flags, ops };
}

const leafCache = new Map<string, OpcodeEntry>();
/** The `'!'` hole: undefined, and objdump prints a bare `(bad)` for it (no prefix names). */
const BARE_HOLE: OpcodeEntry = { mnemonic: 0, name: '(bad)', flags: OpFlag.Bad, ops: [] };

function compile(node: Node, extraFlags = 0): CompiledNode {
  if (typeof node === 'string') {
    if (node === '') return null;
    if (node === '!') return BARE_HOLE;
    const key = `${extraFlags}|${node}`;
    let leaf = leafCache.get(key);
    if (!leaf) {
      leaf = parseLeaf(node, extraFlags);
      leafCache.set(key, leaf);
    }
    return leaf;
  }
  const e = node.e.map((n) => compile(n, extraFlags));
  // (explicit keep bits are also recorded as bits 8 + i: objdump then leaves a 66 named, see `repKept`)
  let keep = (node.keep ?? 0) | ((node.keep ?? 0) << 8);
  const consume = node.consume ?? 0;
  if (node.split === SplitKind.Prefix) {
    // the same instruction with or without the prefix: it is not a mandatory prefix (a REP stays an
    // ordinary prefix; objdump's prefix table still consumes a 66: bit 16 << 1)
    for (let i = 1; i < 4; i++) {
      if (e[i] !== null && e[i] !== BARE_HOLE && e[i] === e[0] && !(consume & (1 << i))) {
        keep |= i === 1 && !(keep & 2) ? 16 << i : 1 << i;
      }
    }
  }
  return { split: node.split, e, keep };
}

function isSplit(n: CompiledNode): n is CompiledSplit {
  return n !== null && (n as CompiledSplit).split !== undefined;
}

const MAPS: readonly (readonly CompiledNode[])[] = [
  ONE_BYTE_MAP.map((n) => compile(n)),
  TWO_BYTE_MAP.map((n) => compile(n)),
  MAP_0F38.map((n) => compile(n)),
  MAP_0F3A.map((n) => compile(n)),
];
const VMAPS: readonly (readonly CompiledNode[])[] = VEX_MAPS.map((m) => m.map((n) => compile(n, OpFlag.Vex)));
/** 3DNow! suffix byte -> mnemonic id (0 = undefined). */
const NOW3D_IDS = new Uint16Array(256);
for (let i = 0; i < 256; i++) if (NOW3D_NAMES[i]) NOW3D_IDS[i] = internMnemonic(NOW3D_NAMES[i]!);
const XCHG_R8 = compile('xchg Zv,rAX');
const XCHG_AX = XCHG_R8;
const PAUSE = compile('pause');
const X87M: readonly CompiledNode[] = X87_MEM.map((n) => compile(n));
const X87R: readonly CompiledNode[] = X87_REG.map((n) => compile(n));

// ---- the record ----

export class Operand {
  kind: OperandKind = OperandKind.None;
  size = 0;
  regClass: RegClass = RegClass.Gpr;
  reg = 0;
  seg = 0;
  base = -1;
  index = -1;
  scale = 1;
  disp = 0;
  dispHi = 0;
  imm = 0;
  immHi = 0;
  immSize = 0;
  rel = 0;
  sel = 0;
  /** Operand spec from the table (method | size << 8 | fixed reg << 16). */
  spec = 0;
  /** Mem with VSIB addressing (gathers): the width in bytes (16/32) of the vector index register; 0 otherwise. */
  vsib = 0;
}

export class DecodedInsn {
  status: DecodeStatus = DecodeStatus.Invalid;
  invalidReason: number = InvalidReason.None;
  length = 0;
  needed = 0;
  mode: CpuMode = 64;
  mnemonic = 0;
  entry: OpcodeEntry | null = null;
  map = 0;
  opcode = 0;
  modrm = -1;
  sib = -1;
  opSize = 4;
  addrSize = 8;
  prefixes = 0;
  /** Prefixes that changed the meaning of this instruction (objdump prints the others by name). */
  usedPrefixes = 0;
  /** REX bits (W R X B = 8 4 2 1) that changed the meaning of this instruction. */
  rexUsed = 0;
  lastRep = 0;
  mandatory = 0;
  segment = -1;
  rex = 0;
  vex = false;
  vexL = 0;
  vexW = 0;
  vexV = 0;
  vexPP = 0;
  vexMap = 0;
  prefixLen = 0;
  /**
   * The undefined encoding is one objdump prints as a bare `(bad)`, without prefix names (a `'!'` table
   * hole: the wrong prefix on an instruction objdump holds with a prefix requirement; an EVEX or XOP
   * encoding with `objdumpCompat`).
   */
  viaPrefixSplit = false;
  /**
   * For an undefined encoding objdump shows with prefix names: whether a REX prefix is named too (objdump
   * drops the name of a REX prefix whose bits it has no use for only when they are all zero, e.g. an
   * EVEX prefix that replaced them).
   */
  badRexNamed = true;
  /** Offset of the first byte in the buffer it was decoded from. */
  offset = 0;
  nOps = 0;
  readonly ops: readonly [Operand, Operand, Operand, Operand, Operand] =
    [new Operand(), new Operand(), new Operand(), new Operand(), new Operand()];
}

// ---- decoder state (module-level: decoding is synchronous and non-reentrant) ----
let buf: Uint8Array = new Uint8Array(0);
let pos = 0;
let lim = 0;
let hardLim = 0;
let fail = 0; // 0 ok, 1 truncated, 2 too long
let failPos = 0;

function byte(): number {
  const p = pos++;
  if (p < lim) return buf[p]!;
  if (fail === 0) {
    fail = p >= hardLim ? 2 : 1;
    failPos = p;
  }
  return 0;
}
function peek(): number {
  return pos < lim ? buf[pos]! : -1;
}
function s8(): number {
  return (byte() << 24) >> 24;
}
function u16(): number {
  const a = byte();
  return a | (byte() << 8);
}
function s16(): number {
  return (u16() << 16) >> 16;
}
function s32(): number {
  const a = byte();
  const b = byte();
  const c = byte();
  return a | (b << 8) | (c << 16) | (byte() << 24);
}

const PFX_NONE = 0;
const PFX_LOCK = 1;
const PFX_REP = 2;
const PFX_REPNE = 3;
const PFX_SEG = 4;
const PFX_OSZ = 5;
const PFX_ASZ = 6;
const PREFIX_KIND = new Uint8Array(256);
PREFIX_KIND[0xf0] = PFX_LOCK;
PREFIX_KIND[0xf3] = PFX_REP;
PREFIX_KIND[0xf2] = PFX_REPNE;
for (const b of [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65]) PREFIX_KIND[b] = PFX_SEG;
PREFIX_KIND[0x66] = PFX_OSZ;
PREFIX_KIND[0x67] = PFX_ASZ;
const SEG_OF_PREFIX = new Int8Array(256).fill(-1);
SEG_OF_PREFIX[0x26] = Seg.ES;
SEG_OF_PREFIX[0x2e] = Seg.CS;
SEG_OF_PREFIX[0x36] = Seg.SS;
SEG_OF_PREFIX[0x3e] = Seg.DS;
SEG_OF_PREFIX[0x64] = Seg.FS;
SEG_OF_PREFIX[0x65] = Seg.GS;

function setInvalid(out: DecodedInsn, reason: number, length: number): DecodedInsn {
  out.status = DecodeStatus.Invalid;
  out.invalidReason = reason;
  out.length = length;
  out.needed = 0;
  return out;
}

/**
 * Decodes one instruction from `code[offset..end)` (at most 15 bytes are read) in `mode`, into `out`.
 * Never throws; see the module comment for the record.
 */
export function decode(code: Uint8Array, offset: number, end: number, mode: CpuMode, out: DecodedInsn,
  objdumpCompat = false): DecodedInsn {
  buf = code;
  pos = offset;
  hardLim = offset + 15;
  lim = end < hardLim ? end : hardLim;
  if (lim > code.length) lim = code.length;
  fail = 0;
  out.offset = offset;
  out.mode = mode;
  out.status = DecodeStatus.Ok;
  out.invalidReason = InvalidReason.None;
  out.mnemonic = 0;
  out.entry = null;
  out.map = 0;
  out.modrm = -1;
  out.sib = -1;
  out.nOps = 0;
  out.needed = 0;
  out.vex = false;
  out.vexL = 0;
  out.vexW = 0;
  out.vexV = 0;
  out.vexPP = 0;
  out.vexMap = 0;
  out.mandatory = 0;
  out.usedPrefixes = 0;
  out.rexUsed = 0;
  out.viaPrefixSplit = false;
  out.badRexNamed = true;

  // ---- legacy prefixes and REX ----
  let prefixes = 0;
  let lastRep = 0;
  let segment = -1;
  let rex = 0;
  const is64 = mode === 64;
  for (;;) {
    const b = byte();
    if (fail) return finishFail(out, offset);
    const k = PREFIX_KIND[b]!;
    if (k !== PFX_NONE) {
      rex = 0; // a REX followed by a legacy prefix is ignored
      switch (k) {
        case PFX_LOCK: prefixes |= Prefix.Lock; break;
        case PFX_REP: prefixes |= Prefix.Rep; lastRep = 0xf3; break;
        case PFX_REPNE: prefixes |= Prefix.Repne; lastRep = 0xf2; break;
        case PFX_SEG: {
          // in long mode ES/CS/SS/DS overrides are ignored: the last FS/GS one counts
          const sg = SEG_OF_PREFIX[b]!;
          prefixes |= Prefix.Seg;
          if (!is64 || sg >= Seg.FS) segment = sg;
          break;
        }
        case PFX_OSZ: prefixes |= Prefix.OpSize; break;
        case PFX_ASZ: prefixes |= Prefix.AddrSize; break;
      }
      continue;
    }
    if (is64 && (b & 0xf0) === 0x40) {
      rex = b;
      prefixes |= Prefix.Rex;
      continue;
    }
    pos--;
    break;
  }
  out.prefixes = prefixes;
  out.lastRep = lastRep;
  out.segment = segment;
  out.rex = rex;

  const osz = (prefixes & Prefix.OpSize) !== 0;
  const asz = (prefixes & Prefix.AddrSize) !== 0;
  let addrSize = mode === 64 ? (asz ? 4 : 8) : mode === 32 ? (asz ? 2 : 4) : (asz ? 4 : 2);
  out.addrSize = addrSize;

  // ---- opcode (and VEX) ----
  let map = 0;
  let xchg66 = false;
  let rawVvvvHigh = false;
  let opcode = byte();
  let node: CompiledNode;
  let vex = false;
  let vexPP = 0;
  // where objdump resumes after a register-form/memory-form operand misuse: after the first opcode byte
  // (for VEX: after the C4/C5 byte)
  let resume = pos;
  if (objdumpCompat && (opcode === 0x62 || opcode === 0x8f)) {
    // objdump decodes EVEX (62; outside long mode only with ModRM.mod 3 in the next byte) and AMD XOP
    // (8F with map 8-15 in the next byte), which the CPU modelled here has not (BOUND, POP Ev or #UD)
    const next = peek();
    if (opcode === 0x62 && (is64 || (next & 0xc0) === 0xc0)) return objdumpEvex(out, offset, is64);
    if (opcode === 0x8f && (next & 0x18) === 0x08) return objdumpXop(out, offset, is64);
  }
  if ((opcode === 0xc4 || opcode === 0xc5) && (is64 || (peek() & 0xc0) === 0xc0) && (mode !== 16 || objdumpCompat)) {
    // VEX prefix. Any 66/F2/F3/LOCK/REX before it makes it #UD.
    const hadRex = rex !== 0;
    vex = true;
    const v1 = byte();
    let r = 0;
    let x = 0;
    let bb = 0;
    let w = 0;
    let mmmmm = 1;
    if (opcode === 0xc5) {
      r = (~v1 >> 7) & 1;
      out.vexV = (~v1 >> 3) & 15;
      out.vexL = (v1 >> 2) & 1;
      vexPP = v1 & 3;
    } else {
      const v2 = byte();
      r = (~v1 >> 7) & 1;
      x = (~v1 >> 6) & 1;
      bb = (~v1 >> 5) & 1;
      mmmmm = v1 & 31;
      w = (v2 >> 7) & 1;
      out.vexV = (~v2 >> 3) & 15;
      out.vexL = (v2 >> 2) & 1;
      vexPP = v2 & 3;
    }
    if (!is64) {
      // (objdump still requires all of VEX.vvvv to be 1111 when unused)
      if (objdumpCompat && out.vexV > 7) rawVvvvHigh = true;
      out.vexV &= 7;
      x = 0;
      bb = 0;
    }
    out.vex = true;
    out.vexW = w;
    out.vexPP = vexPP;
    out.vexMap = mmmmm;
    prefixes |= Prefix.Vex;
    out.prefixes = prefixes;
    rex = 0x40 | (w << 3) | (r << 2) | (x << 1) | bb;
    if (!is64) rex = 0x40 | (w << 3);
    out.rex = rex;
    opcode = byte();
    if (fail) return finishFail(out, offset);
    out.prefixLen = pos - 1 - offset;
    // a reserved map: objdump stops after the C4 byte (naming a REX prefix only if the R X B bits it
    // took from the VEX prefix are not all zero)
    if (mmmmm < 1 || mmmmm > 3) {
      out.badRexNamed = (r | x | bb) !== 0;
      return setInvalid(out, InvalidReason.Vex, out.prefixLen - 2);
    }
    if (!objdumpCompat && (prefixes & (Prefix.OpSize | Prefix.Rep | Prefix.Repne | Prefix.Lock) || hadRex)) {
      return setInvalid(out, InvalidReason.Vex, pos - offset);
    }
    map = mmmmm;
    node = VMAPS[map]![opcode]!;
  } else {
    if (fail) return finishFail(out, offset);
    out.prefixLen = pos - 1 - offset;
    resume = pos;
    if (opcode === 0x0f) {
      map = 1;
      opcode = byte();
      if (opcode === 0x38) {
        map = 2;
        opcode = byte();
      } else if (opcode === 0x3a) {
        map = 3;
        opcode = byte();
      }
      if (fail) return finishFail(out, offset);
    }
    node = MAPS[map]![opcode]!;
    if (map === 0 && opcode === 0x90) {
      // (objdump: F3 90 is pause even with REX.B; a 66 is consumed by the xchg forms whatever REX.W)
      if (objdumpCompat) node = lastRep === 0xf3 ? PAUSE : (rex & 1) ? XCHG_R8 : osz ? XCHG_AX : node;
      else node = (rex & 1) ? XCHG_R8 : lastRep === 0xf3 ? PAUSE : osz ? XCHG_AX : node;
      if (objdumpCompat && osz && node !== PAUSE) xchg66 = true;
    }
  }
  out.map = map;
  out.opcode = opcode;
  const rexW = (rex & 8) !== 0;

  // ---- ModRM, and the walk through the splits ----
  let modrm = -1;
  let mandatory = node === PAUSE ? 0xf3 : 0;
  const x87 = map === 0 && opcode >= 0xd8 && opcode <= 0xdf && !vex;
  if (x87) {
    modrm = byte();
    if (fail) return finishFail(out, offset);
    const idx = (opcode - 0xd8) * 8 + ((modrm >> 3) & 7);
    node = modrm >= 0xc0 ? X87R[idx]! : X87M[idx]!;
  }
  let usedPfx = xchg66 ? Prefix.OpSize : 0;
  /** An F3/F2 picked a prefix column but is not consumed by it: objdump then leaves a 66 named. */
  let repKept = false;
  /** A 66 picked an operand-size column of the table (consumed whatever `repKept`). */
  let oszSplit = false;
  let rexUsed = 0;
  while (isSplit(node)) {
    let i = 0;
    switch (node.split) {
      case SplitKind.Reg:
        if (modrm < 0) { modrm = byte(); if (fail) return finishFail(out, offset); }
        i = (modrm >> 3) & 7;
        break;
      case SplitKind.Mod:
        if (modrm < 0) { modrm = byte(); if (fail) return finishFail(out, offset); }
        i = modrm >= 0xc0 ? 1 : 0;
        break;
      case SplitKind.Rm:
        if (modrm < 0) { modrm = byte(); if (fail) return finishFail(out, offset); }
        i = modrm & 7;
        break;
      case SplitKind.Prefix:
        if (vex) {
          i = vexPP === 0 ? 0 : vexPP === 1 ? 1 : vexPP === 2 ? 2 : 3;
        } else if (lastRep === 0xf3) {
          i = 2; mandatory = 0xf3; usedPfx |= Prefix.Rep;
        } else if (lastRep === 0xf2) {
          i = 3; mandatory = 0xf2; usedPfx |= Prefix.Repne;
        } else if (osz) {
          i = 1; mandatory = 0x66; usedPfx |= Prefix.OpSize;
        }
        if (node.keep & (1 << i)) {
          usedPfx &= ~(i === 1 ? Prefix.OpSize : i === 2 ? Prefix.Rep : Prefix.Repne);
          mandatory = 0;
          if (node.keep & (256 << i) && i >= 2) repKept = true;
        } else if (node.keep & (16 << i)) mandatory = 0;
        break;
      case SplitKind.RexW:
        i = rexW ? 1 : 0;
        if (rexW) rexUsed |= 8;
        break;
      case SplitKind.Mode64:
        i = is64 ? 1 : 0;
        break;
      case SplitKind.Mode16:
        i = mode === 16 ? 0 : 1;
        break;
      case SplitKind.OpSize:
        if (is64 && rexW) { i = 2; rexUsed |= 8; } else {
          i = (mode === 16) === osz ? 1 : 0;
          if (osz) { usedPfx |= Prefix.OpSize; oszSplit = true; }
        }
        break;
      case SplitKind.AddrSize:
        i = addrSize === 2 ? 0 : addrSize === 4 ? 1 : 2;
        if (asz) usedPfx |= Prefix.AddrSize;
        break;
      case SplitKind.VexL:
        i = out.vexL;
        break;
      case SplitKind.Compat:
        i = objdumpCompat ? 1 : 0;
        break;
      case SplitKind.RipRel:
        if (modrm < 0) { modrm = byte(); if (fail) return finishFail(out, offset); }
        i = is64 && (modrm & 0xc7) === 5 ? 1 : 0;
        break;
    }
    node = node.e[i]!;
  }
  out.mandatory = mandatory;
  out.viaPrefixSplit = node === BARE_HOLE;
  if (node === null || node === BARE_HOLE) {
    // objdump counts the bytes up to the opcode (a ModRM read only to pick a group entry is not counted
    // unless it belongs to an x87 escape).
    const len = modrm >= 0 && !x87 ? pos - offset - 1 : pos - offset;
    out.modrm = modrm;
    return setInvalid(out, InvalidReason.Opcode, len);
  }
  const entry = node;
  if (vex && (out.vexV !== 0 || rawVvvvHigh) && !(entry.flags & OpFlag.UsesVvvv)) {
    // VEX.vvvv is reserved (must be 1111) for instructions without a vvvv operand
    out.modrm = modrm;
    return setInvalid(out, InvalidReason.Vex, pos - offset - (modrm >= 0 ? 1 : 0));
  }
  out.entry = entry;
  out.mnemonic = entry.mnemonic;
  const flags = entry.flags;
  if (flags & OpFlag.KeepPrefix && mandatory !== 0) {
    if (mandatory !== 0x66) repKept = true;
    usedPfx &= ~(mandatory === 0x66 ? Prefix.OpSize : mandatory === 0xf3 ? Prefix.Rep : Prefix.Repne);
    mandatory = 0;
    out.mandatory = 0;
  }
  if ((flags & OpFlag.I64) && is64) return setInvalid(out, InvalidReason.Mode, pos - offset - (modrm >= 0 ? 1 : 0));
  if ((flags & OpFlag.O64) && !is64) return setInvalid(out, InvalidReason.Mode, pos - offset - (modrm >= 0 ? 1 : 0));
  if ((flags & OpFlag.ModRm) && modrm < 0) {
    modrm = byte();
    if (fail) return finishFail(out, offset);
  }
  out.modrm = modrm;

  // ---- operand size ----
  let opSize: number;
  if (is64) {
    if (rexW) opSize = 8;
    else if (flags & (OpFlag.D64 | OpFlag.F64)) opSize = osz ? 2 : 8;
    else opSize = osz ? 2 : 4;
  } else if (mode === 32) {
    opSize = osz ? 2 : 4;
  } else {
    opSize = osz ? 4 : 2;
  }
  if (vex) opSize = rexW && is64 ? 8 : 4;
  out.opSize = opSize;

  // ---- operands ----
  const ops = entry.ops;
  const n = ops.length;
  const mod = modrm >> 6;
  const rmField = modrm & 7;
  const regField = (modrm >> 3) & 7;
  const rexR = (rex >> 2) & 1;
  const rexX = (rex >> 1) & 1;
  const rexB = rex & 1;
  let badOp = false;
  for (let k = 0; k < n; k++) {
    const spec = ops[k]!;
    const method = spec & 0xff;
    const sc = (spec >> 8) & 0xff;
    const op = out.ops[k]!;
    op.spec = spec;
    // size in bytes
    let size: number;
    switch (sc) {
      case OpSizeCode.B: size = 1; break;
      case OpSizeCode.W: size = 2; break;
      case OpSizeCode.D: size = 4; break;
      case OpSizeCode.Q: size = 8; break;
      case OpSizeCode.V: size = opSize; if (osz && !rexW) usedPfx |= Prefix.OpSize; if (rexW && !(flags & (OpFlag.D64 | OpFlag.F64))) rexUsed |= 8; break;
      case OpSizeCode.Z:
        size = opSize === 2 ? 2 : 4;
        if (osz && !rexW) usedPfx |= Prefix.OpSize;
        if (method === OpMethod.I && opSize === 8) { size = 8; if (rexW && !(flags & (OpFlag.D64 | OpFlag.F64))) rexUsed |= 8; }
        break;
      case OpSizeCode.N: size = is64 ? 8 : 4; break;
      case OpSizeCode.AS: size = addrSize; if (asz) usedPfx |= Prefix.AddrSize; break;
      case OpSizeCode.Y: size = is64 && rexW ? 8 : 4; if (rexW) rexUsed |= 8; break;
      case OpSizeCode.P: size = opSize + 2; if (osz && !rexW) usedPfx |= Prefix.OpSize; break;
      case OpSizeCode.S: size = is64 ? 10 : 6; break;
      case OpSizeCode.T: size = 10; break;
      case OpSizeCode.X: size = out.vexL ? 32 : 16; break;
      case OpSizeCode.DQ: size = 16; break;
      case OpSizeCode.QQ: size = 32; break;
      case OpSizeCode.A: size = opSize * 2; if (osz && !rexW) usedPfx |= Prefix.OpSize; break;
      case OpSizeCode.BS: size = opSize; if (osz && !rexW) usedPfx |= Prefix.OpSize; if (rexW && !(flags & (OpFlag.D64 | OpFlag.F64))) rexUsed |= 8; break;
      case OpSizeCode.BD: size = mod === 3 ? 4 : 1; break;
      case OpSizeCode.WD: size = mod === 3 ? 4 : 2; break;
      default: size = 0;
    }
    op.size = size;
    switch (method) {
      case OpMethod.KE:
      case OpMethod.Vsib:
      case OpMethod.K:
      case OpMethod.E:
      case OpMethod.Q:
      case OpMethod.W:
      case OpMethod.M:
      case OpMethod.N:
      case OpMethod.U:
        if (mod === 3) {
          if (method === OpMethod.M || method === OpMethod.Vsib) { badOp = true; op.kind = OperandKind.None; pos = resume; break; }
          op.kind = OperandKind.Reg;
          if (method === OpMethod.E) {
            setGpr(op, rmField | (rexB << 3), size, rex);
            if (rexB) rexUsed |= 1;
          } else if (method === OpMethod.Q || method === OpMethod.N) {
            op.regClass = RegClass.Mmx; op.reg = rmField;
          } else if (method === OpMethod.KE) {
            op.regClass = RegClass.Mask;
            op.reg = rmField | (rexB << 3);
            if (rexB) rexUsed |= 1;
          } else if (method === OpMethod.K) {
            op.regClass = RegClass.Bnd;
            op.reg = rmField | (rexB << 3);
            if (rexB) rexUsed |= 1;
          } else {
            op.regClass = size === 32 ? RegClass.Ymm : RegClass.Xmm;
            op.reg = rmField | (rexB << 3);
            if (rexB) rexUsed |= 1;
          }
        } else {
          if (method === OpMethod.N || method === OpMethod.U) { badOp = true; op.kind = OperandKind.None; pos = resume; break; }
          if (flags & OpFlag.Mpx && addrSize === 2) { op.kind = OperandKind.None; break; }
          if (flags & OpFlag.Mpx && is64 && asz) {
            // MPX in long mode: the address size is 64 bits whatever a 67 says (which stays a named prefix)
            out.addrSize = 8;
            rexUsed |= decodeMem(op, out, mod, rmField, rex, 8, mode);
            if (flags & OpFlag.Mib && op.base === 16) op.kind = OperandKind.None;
            if (segment >= 0) usedPfx |= Prefix.Seg;
            break;
          }
          // VSIB without a SIB byte: objdump shows `(bad)` and reads no displacement (a CPU: #UD)
          if (method === OpMethod.Vsib && (rmField !== 4 || addrSize === 2)) { op.kind = OperandKind.None; break; }
          rexUsed |= decodeMem(op, out, mod, rmField, rex, addrSize, mode);
          if (flags & OpFlag.Mib && op.base === 16) op.kind = OperandKind.None;
          if (method === OpMethod.Vsib) {
            // the index is a vector register: SIB.index 100 is not "no index"
            op.index = ((out.sib >> 3) & 7) | (rexX << 3);
            op.vsib = sc === OpSizeCode.DQ ? 16 : size;
            if (rexX) rexUsed |= 2;
          }
          if (segment >= 0) usedPfx |= Prefix.Seg;
          // (objdump leaves a 67 named on an absolute disp32 in 16-bit code)
          if (asz && !(mode === 16 && op.base < 0 && op.index < 0)) usedPfx |= Prefix.AddrSize;
        }
        break;
      case OpMethod.G:
        op.kind = OperandKind.Reg;
        setGpr(op, regField | (rexR << 3), size, rex);
        if (rexR) rexUsed |= 4;
        break;
      case OpMethod.R:
        op.kind = OperandKind.Reg;
        setGpr(op, rmField | (rexB << 3), size, rex);
        if (rexB) rexUsed |= 1;
        break;
      case OpMethod.V:
        op.kind = OperandKind.Reg;
        op.regClass = size === 32 ? RegClass.Ymm : RegClass.Xmm;
        op.reg = regField | (rexR << 3);
        if (rexR) rexUsed |= 4;
        break;
      case OpMethod.P:
        op.kind = OperandKind.Reg;
        op.regClass = RegClass.Mmx;
        op.reg = regField;
        break;
      case OpMethod.H:
        op.kind = OperandKind.Reg;
        op.regClass = size === 32 ? RegClass.Ymm : RegClass.Xmm;
        op.reg = out.vexV;
        break;
      case OpMethod.L:
        // the is4 byte follows the ModRM operand bytes, read after the loop
        op.kind = OperandKind.Reg;
        op.regClass = size === 32 ? RegClass.Ymm : RegClass.Xmm;
        break;
      case OpMethod.Is4Imm:
        op.kind = OperandKind.Imm;
        op.immHi = 0;
        op.immSize = 0;
        break;
      case OpMethod.KG:
        op.kind = OperandKind.Reg;
        op.regClass = RegClass.Mask;
        op.reg = regField | (rexR << 3);
        if (rexR) rexUsed |= 4;
        break;
      case OpMethod.KH:
        op.kind = OperandKind.Reg;
        op.regClass = RegClass.Mask;
        op.reg = out.vexV;
        break;
      case OpMethod.Xmm0:
        op.kind = OperandKind.Reg;
        op.regClass = RegClass.Xmm;
        op.reg = 0;
        break;
      case OpMethod.S:
        op.kind = OperandKind.Reg;
        op.regClass = RegClass.Seg;
        op.reg = regField;
        if (regField > 5) badOp = true;
        break;
      case OpMethod.C:
      case OpMethod.D:
        op.kind = OperandKind.Reg;
        op.regClass = method === OpMethod.C ? RegClass.Cr : RegClass.Dr;
        op.reg = regField | (rexR << 3);
        if (rexR) rexUsed |= 4;
        if (method === OpMethod.C && !is64 && (prefixes & Prefix.Lock)) op.reg |= 8;
        break;
      case OpMethod.Z:
        op.kind = OperandKind.Reg;
        setGpr(op, (opcode & 7) | (rexB << 3), size, rex);
        if (rexB) rexUsed |= 1;
        break;
      case OpMethod.FixGpr:
        op.kind = OperandKind.Reg;
        op.regClass = RegClass.Gpr;
        op.reg = spec >>> 16;
        break;
      case OpMethod.FixSeg:
        op.kind = OperandKind.Reg;
        op.regClass = RegClass.Seg;
        op.reg = spec >>> 16;
        break;
      case OpMethod.DxPort:
        op.kind = OperandKind.Reg;
        op.regClass = RegClass.Gpr;
        op.reg = 2;
        break;
      case OpMethod.St:
        op.kind = OperandKind.Reg;
        op.regClass = RegClass.X87;
        op.reg = 0;
        break;
      case OpMethod.StI:
        op.kind = OperandKind.Reg;
        op.regClass = RegClass.X87;
        op.reg = rmField;
        break;
      case OpMethod.One:
        op.kind = OperandKind.Imm;
        op.imm = 1;
        op.immHi = 0;
        op.immSize = 0;
        break;
      case OpMethod.B:
        op.kind = OperandKind.Reg;
        if (vex) {
          // VEX.vvvv names a GPR (BMI)
          op.regClass = RegClass.Gpr;
          op.reg = out.vexV;
        } else {
          op.regClass = RegClass.Bnd;
          op.reg = regField | (rexR << 3);
          if (rexR) rexUsed |= 4;
        }
        break;
      case OpMethod.T:
        op.kind = OperandKind.Reg;
        op.regClass = RegClass.Tr;
        op.reg = regField;
        break;
      case OpMethod.I: {
        op.kind = OperandKind.Imm;
        let v: number;
        let hi = 0;
        let enc: number;
        if (sc === OpSizeCode.BS) {
          v = s8();
          enc = 1;
          if (size === 8) hi = v < 0 ? 0xffffffff : 0;
          else if (size === 2) v &= 0xffff;
          v >>>= 0;
        } else if (size === 1) {
          v = byte(); enc = 1;
        } else if (size === 2) {
          v = u16(); enc = 2;
        } else if (sc === OpSizeCode.V && size === 8) {
          v = s32() >>> 0; hi = s32() >>> 0; enc = 8;
        } else {
          v = s32(); enc = 4;
          if (size === 8) hi = v < 0 ? 0xffffffff : 0;
          v >>>= 0;
        }
        op.imm = v;
        op.immHi = hi;
        op.immSize = enc;
        break;
      }
      case OpMethod.J: {
        op.kind = OperandKind.Rel;
        if (sc === OpSizeCode.B) {
          op.rel = s8();
          if (is64) { opSize = 8; out.opSize = 8; }
        } else if (opSize === 2) op.rel = s16();
        else op.rel = s32();
        op.size = opSize;
        if (osz && opSize === 2) usedPfx |= Prefix.OpSize;
        break;
      }
      case OpMethod.O: {
        op.kind = OperandKind.Mem;
        op.vsib = 0;
        op.base = -1;
        op.index = -1;
        op.scale = 1;
        op.seg = segment >= 0 ? segment : Seg.DS;
        if (segment >= 0) usedPfx |= Prefix.Seg;
        if (addrSize === 2) { op.disp = u16(); op.dispHi = 0; }
        else if (addrSize === 4) { op.disp = s32(); op.dispHi = 0; }
        else { op.disp = s32(); op.dispHi = s32() >>> 0; }
        if (size === 0) op.size = opSize;
        break;
      }
      case OpMethod.A: {
        op.kind = OperandKind.Far;
        op.imm = opSize === 2 ? u16() : s32() >>> 0;
        op.sel = u16();
        if (osz) usedPfx |= Prefix.OpSize;
        break;
      }
      case OpMethod.X:
      case OpMethod.Y: {
        op.kind = OperandKind.Mem;
        op.vsib = 0;
        op.base = method === OpMethod.X ? (opcode === 0xd7 ? 3 : 6) : 7;
        op.index = -1;
        op.scale = 1;
        op.disp = 0;
        op.dispHi = 0;
        if (method === OpMethod.X) {
          op.seg = segment >= 0 ? segment : Seg.DS;
          if (segment >= 0) usedPfx |= Prefix.Seg;
        } else op.seg = Seg.ES;
        if (asz) usedPfx |= Prefix.AddrSize;
        break;
      }
      default:
        op.kind = OperandKind.None;
    }
  }
  out.nOps = n;
  if (flags & (OpFlag.Is4 | OpFlag.Gather) && finishVexOperands(out, flags, is64, !objdumpCompat && !badOp)) {
    return setInvalid(out, InvalidReason.Operand, pos - offset);
  }
  if (flags & (OpFlag.RmZero | OpFlag.Now3d)) {
    if (flags & OpFlag.RmZero && (mod !== 3 || rmField !== 0)) {
      // objdump: a `(bad)` operand, resuming after the first opcode byte
      const op = out.ops[0]!;
      op.kind = OperandKind.None;
      op.spec = 0;
      out.nOps = 1;
      badOp = true;
      pos = offset + out.prefixLen + 1;
    } else if (flags & OpFlag.Now3d) {
      const id = NOW3D_IDS[byte()]!;
      if (fail) return finishFail(out, offset);
      out.mnemonic = id;
      if (id === 0) {
        // undefined suffix: objdump has decoded the operands (and used their prefixes) before it
        out.usedPrefixes = usedPfx | (osz ? Prefix.OpSize : 0);
        out.rexUsed = rexUsed;
        return setInvalid(out, InvalidReason.Opcode, out.prefixLen + 1);
      }
    }
  }
  if ((flags & (OpFlag.D64 | OpFlag.F64)) && osz && !rexW && !(is64 && opSize === 8)) usedPfx |= Prefix.OpSize;
  if (flags & (OpFlag.SuffixNonDefault | OpFlag.SuffixOpSize | OpFlag.X87Env)) {
    if (osz && !(flags & OpFlag.SuffixOpSize && is64) && !(rexW && flags & OpFlag.SuffixNonDefault)) usedPfx |= Prefix.OpSize;
    if (rexW && flags & OpFlag.SuffixNonDefault) rexUsed |= 8;
  }
  if (flags & OpFlag.AddrCounter && asz) usedPfx |= Prefix.AddrSize;
  if (flags & OpFlag.String && lastRep) usedPfx |= lastRep === 0xf3 ? Prefix.Rep : Prefix.Repne;
  if (repKept && objdumpCompat && !oszSplit) usedPfx &= ~Prefix.OpSize;
  out.usedPrefixes = usedPfx;
  out.rexUsed = rexUsed;
  if (fail) return finishFail(out, offset);
  // objdump resumes after a register-only/memory-only operand misuse at the byte after the first
  // opcode byte (later immediates are read from there): its length for the `(bad)` operand form
  if (badOp) return setInvalid(out, InvalidReason.RegisterForm, pos - offset);
  out.length = pos - offset;
  if (flags & OpFlag.Bad) { out.status = DecodeStatus.Invalid; out.invalidReason = InvalidReason.Opcode; }
  return out;
}

/**
 * objdump's view of an EVEX prefix (the disassembler only; a CPU without AVX-512 decodes BOUND or
 * raises #UD): AVX-512 instructions are not decoded, but the length and prefix names of objdump's
 * `(bad)` are. objdump rejects the prefix at P0 (map not 1, 2, 3, 5 or 6) or at P1 (the U bit clear),
 * naming the legacy prefixes and a REX prefix only if the REX bits objdump took from the EVEX prefix
 * so far are not all zero; past P2 and the opcode it prints `(bad)` (AVX-512 is not decoded here).
 */
function objdumpEvex(out: DecodedInsn, offset: number, is64: boolean): DecodedInsn {
  const p0 = byte();
  if (fail) return finishFail(out, offset);
  let rexBits = (~p0 >> 5) & 7;
  const map = p0 & 15;
  if (map !== 1 && map !== 2 && map !== 3 && map !== 5 && map !== 6) {
    out.badRexNamed = is64 && rexBits !== 0;
    return setInvalid(out, InvalidReason.Vex, pos - 1 - offset);
  }
  const p1 = byte();
  if (fail) return finishFail(out, offset);
  if (is64 && p1 & 0x80) rexBits |= 8;
  if (!(p1 & 4)) {
    out.badRexNamed = is64 && rexBits !== 0;
    return setInvalid(out, InvalidReason.Vex, pos - 1 - offset);
  }
  byte();
  byte();
  if (fail) return finishFail(out, offset);
  // (as for VEX: the prefixes are named, and the EVEX decorations shown, only if EVEX.vvvv is unused)
  out.viaPrefixSplit = ((p1 >> 3) & 15) !== 15;
  return setInvalid(out, InvalidReason.Vex, pos - offset);
}

/**
 * objdump's view of an AMD XOP prefix (8F with a map field of 8-15; POP Ev group entries otherwise): for
 * a map other than 8-10 a `(bad)` of the 8F byte (a REX named as for EVEX), else a bare `(bad)` of the
 * prefix and the opcode (XOP instructions are not decoded).
 */
function objdumpXop(out: DecodedInsn, offset: number, is64: boolean): DecodedInsn {
  const p0 = byte();
  if ((p0 & 0x1f) > 10) {
    out.badRexNamed = is64 && ((~p0 >> 5) & 7) !== 0;
    return setInvalid(out, InvalidReason.Vex, pos - 1 - offset);
  }
  byte();
  byte();
  if (fail) return finishFail(out, offset);
  out.viaPrefixSplit = true;
  return setInvalid(out, InvalidReason.Vex, pos - offset);
}

/**
 * The is4 byte (FMA4, vblendv*, vpermil2p*: a register in imm8[7:4], an immediate in imm8[3:0]) follows
 * the ModRM operand bytes; gathers are #UD without a SIB byte or with destination, index and mask not
 * all different. Returns true if the CPU raises #UD (`cpuChecks`).
 */
function finishVexOperands(out: DecodedInsn, flags: number, is64: boolean, cpuChecks: boolean): boolean {
  const ops = out.ops;
  const n = out.nOps;
  if (flags & OpFlag.Is4) {
    const ib = byte();
    for (let k = 0; k < n; k++) {
      const op = ops[k]!;
      const m = op.spec & 0xff;
      if (m === OpMethod.L) op.reg = is64 ? ib >> 4 : (ib >> 4) & 7;
      else if (m === OpMethod.Is4Imm) op.imm = ib & 15;
    }
  }
  if (flags & OpFlag.Gather && cpuChecks) {
    const d = ops[0]!.reg;
    const mem = ops[1]!;
    const m = ops[2]!.reg;
    if (mem.kind !== OperandKind.Mem || d === mem.index || d === m || mem.index === m) return true;
  }
  return false;
}

function finishFail(out: DecodedInsn, offset: number): DecodedInsn {
  if (fail === 2) return setInvalid(out, InvalidReason.TooLong, 15);
  out.status = DecodeStatus.Truncated;
  out.needed = failPos - offset + 1;
  out.length = 0;
  return out;
}

function setGpr(op: Operand, num: number, size: number, rex: number): void {
  if (size === 1 && rex === 0 && num >= 4 && num < 8) {
    op.regClass = RegClass.Gpr8High;
    op.reg = num - 4;
  } else {
    op.regClass = RegClass.Gpr;
    op.reg = num;
  }
}

/** 16-bit addressing: base and index per r/m. */
const BASE16 = [3, 3, 5, 5, 6, 7, 5, 3];
const INDEX16 = [6, 7, 6, 7, -1, -1, -1, -1];

/** Decodes a ModRM memory operand (mod != 3); returns the REX bits it used. */
function decodeMem(op: Operand, out: DecodedInsn, mod: number, rmField: number, rex: number, addrSize: number, mode: CpuMode): number {
  op.kind = OperandKind.Mem;
  op.dispHi = 0;
  op.scale = 1;
  op.vsib = 0;
  let used = 0;
  const segment = out.segment;
  if (rex & 1) used |= 1;
  if (addrSize === 2) {
    if (mod === 0 && rmField === 6) {
      op.base = -1;
      op.index = -1;
      op.disp = s16();
    } else {
      op.base = BASE16[rmField]!;
      op.index = INDEX16[rmField]!;
      op.disp = mod === 1 ? s8() : mod === 2 ? s16() : 0;
    }
    op.seg = segment >= 0 ? segment : op.base === 5 ? Seg.SS : Seg.DS;
    return 0;
  }
  let base: number;
  let index = -1;
  let disp = 0;
  if (rmField === 4) {
    const sib = byte();
    out.sib = sib;
    const sb = sib & 7;
    const si = ((sib >> 3) & 7) | ((rex & 2) << 2);
    if (rex & 2) used |= 2;
    if (si !== 4) index = si;
    op.scale = 1 << (sib >> 6);
    if (sb === 5 && mod === 0) {
      base = -1;
      disp = s32();
    } else {
      base = sb | ((rex & 1) << 3);
      if (rex & 1) used |= 1;
    }
  } else if (rmField === 5 && mod === 0) {
    base = mode === 64 ? 16 : -1;
    disp = s32();
  } else {
    base = rmField | ((rex & 1) << 3);
    if (rex & 1) used |= 1;
  }
  if (mod === 1) disp = s8();
  else if (mod === 2) disp = s32();
  op.base = base;
  op.index = index;
  op.disp = disp;
  op.seg = segment >= 0 ? segment : (base === 4 || base === 5) ? Seg.SS : Seg.DS;
  return used;
}
