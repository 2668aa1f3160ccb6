/**
 * AT&T-syntax disassembler over the decoder, producing the text GNU objdump 2.40 prints
 * (`objdump -D -b binary -m i386:x86-64|i386|i8086`), up to whitespace.
 *
 * objdump conventions reproduced here (facts observed from objdump's output):
 *  - prefixes that did not change the instruction are printed by name before the mnemonic
 *    (`data16`, `addr32`, `repz`, `cs`, `rex.W`, ...); LOCK is always printed as `lock`;
 *  - a REX byte followed by another prefix ends a pseudo-instruction made of the prefixes so far;
 *  - the operand-size suffix (b/w/l/q) is printed only when no register operand gives the size;
 *    stack and branch instructions get one only when the size is not the mode's default;
 *  - x87 DC/DE register forms use the AT&T fsub/fsubr (fdiv/fdivr) name swap;
 *  - undecodable bytes print `(bad)` with objdump's length for them.
 */
import { hex } from '../common/bits.js';
import {
  decode, DecodedInsn, DecodeStatus, InvalidReason, MNEMONICS, OperandKind, OpFlag, OpMethod, OpSizeCode, Prefix,
  type CpuMode, type Operand,
} from './decoder.js';
import { gprName, RegClass, regName, SEG_NAMES } from './registers.js';

export interface DisasmLine {
  /** Offset of the instruction in the buffer. */
  offset: number;
  length: number;
  /** AT&T text, e.g. `mov    %rsp,%rbp` (objdump pads the mnemonic to 6 columns plus a space). */
  text: string;
}

/** Instructions objdump shows XACQUIRE/XRELEASE for when LOCKed (HLE). */
const HLE_LOCKABLE = new Set(['add', 'adc', 'and', 'btc', 'btr', 'bts', 'cmpxchg', 'cmpxchg8b', 'cmpxchg16b', 'dec', 'inc',
  'neg', 'not', 'or', 'sbb', 'sub', 'xor', 'xadd', 'xchg']);
const BND_BRANCHES = new Set(['call', 'jmp', 'ret', 'retw', 'jcc']);
/** Compare predicates (imm8) of cmpps/vcmpps...: the legacy forms know 0-7, the VEX forms 0-31 (SDM Table 3-1). */
const CMP_PRED = ['eq', 'lt', 'le', 'unord', 'neq', 'nlt', 'nle', 'ord', 'eq_uq', 'nge', 'ngt', 'false', 'neq_oq', 'ge',
  'gt', 'true', 'eq_os', 'lt_oq', 'le_oq', 'unord_s', 'neq_us', 'nlt_uq', 'nle_uq', 'ord_s', 'eq_us', 'nge_uq', 'ngt_uq',
  'false_os', 'neq_os', 'ge_oq', 'gt_oq', 'true_us'];
/** pclmulqdq imm8 values objdump names (which quadwords are multiplied). */
const PCLMUL_NAMES: Record<number, string> = { 0x00: 'lqlq', 0x01: 'hqlq', 0x10: 'lqhq', 0x11: 'hqhq' };
/** Memory forms whose AT&T name needs an x/y suffix for the source width (128/256-bit). */
const XY_SUFFIX = new Set(['vcvtpd2dq', 'vcvttpd2dq', 'vcvtpd2ps', 'vcvtneps2bf16']);

/** Unsigned hex of a 64-bit value given as lo/hi 32-bit halves. */
function hex64(lo: number, hi: number): string {
  if (hi === 0) return '0x' + (lo >>> 0).toString(16);
  return '0x' + (hi >>> 0).toString(16) + (lo >>> 0).toString(16).padStart(8, '0');
}

function sizeSuffix(size: number): string {
  return size === 1 ? 'b' : size === 2 ? 'w' : size === 4 ? 'l' : size === 8 ? 'q' : '';
}

/** Is this operand a GPR register operand that tells the operand size (for the suffix rule)? */
function isSizingReg(op: Operand): boolean {
  if (op.kind !== OperandKind.Reg) return false;
  const m = op.spec & 0xff;
  if (m === OpMethod.DxPort) return false;
  if (m === OpMethod.FixGpr && (op.spec >>> 16) === 1) return false; // %cl of shifts
  return op.regClass === RegClass.Gpr || op.regClass === RegClass.Gpr8High;
}

function formatMem(insn: DecodedInsn, op: Operand, showSeg: boolean): string {
  let s = '';
  if (showSeg) s += `%${SEG_NAMES[op.seg]}:`;
  const as = insn.addrSize;
  const m = op.spec & 0xff;
  if (m === OpMethod.O) {
    if (as === 8) return s + hex64(op.disp >>> 0, op.dispHi);
    return s + hex(as === 2 ? op.disp & 0xffff : op.disp >>> 0);
  }
  if (m === OpMethod.X || m === OpMethod.Y) {
    return s + `(%${gprName(op.base, as)})`;
  }
  const indexName = (i: number): string => (op.vsib ? (op.vsib === 32 ? 'ymm' : 'xmm') + i : gprName(i, as));
  const hasDisp = insn.modrm >> 6 !== 0 || op.base < 0 || (op.base === 16);
  if (as === 2) {
    if (op.base < 0) return s + (op.disp < 0 ? '-' + hex(-op.disp) : hex(op.disp));
    let d = '';
    if (hasDisp) d = op.disp < 0 ? '-' + hex(-op.disp) : hex(op.disp);
    const idx = op.index >= 0 ? `,%${gprName(op.index, 2)}` : '';
    return s + `${d}(%${gprName(op.base, 2)}${idx})`;
  }
  if (op.base === 16) {
    const d = op.disp < 0 ? '-' + hex(-op.disp) : hex(op.disp);
    return s + `${d}(%${as === 4 ? 'eip' : 'rip'})`;
  }
  const haveSib = insn.sib >= 0;
  const scaleBits = haveSib ? insn.sib >> 6 : 0;
  let inner = '';
  const iz = as === 4 ? 'eiz' : 'riz';
  if (op.base >= 0) {
    inner = `%${gprName(op.base, as)}`;
    if (op.index >= 0) inner += `,%${indexName(op.index)},${op.scale}`;
    else if (haveSib && (scaleBits !== 0 || (op.base & 7) !== 4)) inner += `,%${iz},${op.scale}`;
    inner = `(${inner})`;
  } else if (op.index >= 0) {
    inner = `(,%${indexName(op.index)},${op.scale})`;
  } else if (haveSib && (insn.mode === 32 || (insn.mode === 64 && as === 4) || scaleBits !== 0)) {
    // (a SIB without base or index: objdump shows %eiz/%riz unless the scale is 1 in long mode with a
    // 64-bit address or in 16-bit code with addr32)
    inner = `(,%${iz},${op.scale})`;
  }
  let d = '';
  if (op.base < 0 && inner === '') {
    // absolute displacement (sign-extended to the address size)
    if (as === 8) d = hex64(op.disp >>> 0, op.disp < 0 ? 0xffffffff : 0);
    else d = hex(op.disp >>> 0);
  } else if (op.base < 0 && op.index < 0 && insn.mode === 64 && as === 4) {
    d = hex(op.disp >>> 0);
  } else if (hasDisp) {
    d = op.disp < 0 ? '-' + hex(-op.disp) : hex(op.disp);
  }
  return s + d + inner;
}

/**
 * objdump's branch target: a rel8 is never truncated (the 66 prefix is shown as unused); a 16-bit
 * rel16 wraps within 64 KiB, and in 16-bit code (no 66) keeps the segment bits of the next address.
 */
function relTarget(insn: DecodedInsn, op: Operand, address: bigint): string {
  const next = address + BigInt(insn.length);
  let t = next + BigInt(op.rel);
  const rel8 = ((op.spec >> 8) & 0xff) === OpSizeCode.B;
  if (insn.mode === 64) t &= !rel8 && insn.opSize === 2 ? 0xffffn : 0xffffffffffffffffn;
  else if (rel8 || insn.opSize !== 2) t &= 0xffffffffn;
  else if (insn.prefixes & Prefix.OpSize) t &= 0xffffn;
  else t = (t & 0xffffn) | ((next & 0xffffffffn) & ~0xffffn);
  return '0x' + t.toString(16);
}

function formatImm(op: Operand): string {
  return '$' + hex64(op.imm, op.immHi);
}

/**
 * Formats a decoded instruction (status Ok or Invalid) at `address`, as objdump would.
 */
export function formatInsn(insn: DecodedInsn, code: Uint8Array, address: bigint): string {
  if (!insn.entry || (insn.status !== DecodeStatus.Ok && !(insn.entry.flags & OpFlag.Bad) &&
    insn.invalidReason !== InvalidReason.RegisterForm)) return '(bad)';
  const entry = insn.entry;
  const flags = entry.flags;
  const mode = insn.mode;
  let name = flags & OpFlag.Now3d ? MNEMONICS[insn.mnemonic]! : entry.name;
  const n = insn.nOps;
  const ops = insn.ops;
  let used = insn.usedPrefixes;
  let rexUsed = insn.rexUsed;
  // CET: a DS prefix on an indirect near call/jmp is `notrack` (not with a 66 in long mode); objdump gives that
  // name to the last segment prefix and applies no segment to the operand
  const reg = (insn.modrm >> 3) & 7;
  let notrack = insn.map === 0 && insn.opcode === 0xff && (reg === 2 || reg === 4) && !insn.vex &&
    !(mode === 64 && insn.opSize === 2);
  if (notrack) {
    notrack = false;
    for (let p = insn.offset; p < insn.offset + insn.prefixLen; p++) if (code[p] === 0x3e) notrack = true;
  }

  // --- operands ---
  const parts: string[] = [];
  let hasSizingReg = false;
  let hasAnyReg = false;
  let memOp: Operand | null = null;
  let sizeOp: Operand | null = null;
  let ripTarget = '';
  let nImm = 0;
  for (let i = 0; i < n; i++) {
    const op = ops[i]!;
    const m = op.spec & 0xff;
    let s: string;
    switch (op.kind) {
      case OperandKind.Reg:
        if (m === OpMethod.DxPort) s = '(%dx)';
        else if (m === OpMethod.St) s = '%st';
        else if (op.regClass === RegClass.Gpr && (m === OpMethod.FixGpr)) s = '%' + gprName(op.reg, op.size);
        else if (op.regClass === RegClass.Bnd && op.reg > 3) s = '(bad)';
        else if (op.regClass === RegClass.Mask && op.reg > 7) s = '(bad)';
        else if (op.regClass === RegClass.Mmx && flags & OpFlag.Now3d && insn.prefixes & Prefix.OpSize) {
          s = '%xmm' + op.reg; // objdump applies a 66 prefix to 3DNow! registers
          used |= Prefix.OpSize;
        } else s = '%' + regName(op.regClass, op.reg, op.size);
        if (isSizingReg(op)) hasSizingReg = true;
        if (m !== OpMethod.DxPort && !(m === OpMethod.FixGpr && (op.spec >>> 16) === 1)) hasAnyReg = true;
        break;
      case OperandKind.Mem: {
        let showSeg = false;
        if (m === OpMethod.X || m === OpMethod.Y) showSeg = true;
        // objdump counts any segment prefix as used by a string source, even the ones long mode ignores
        if (m === OpMethod.X && (insn.prefixes & Prefix.Seg)) used |= Prefix.Seg;
        else if (insn.segment >= 0 && (mode !== 64 || insn.segment >= 4) && !notrack) showSeg = true;
        s = formatMem(insn, op, showSeg);
        if (op.base === 16) {
          let t = address + BigInt(insn.length) + BigInt(op.disp);
          t &= 0xffffffffffffffffn; // (objdump does not truncate an addr32 target)
          ripTarget = '0x' + t.toString(16);
        }
        if (m !== OpMethod.X && m !== OpMethod.Y) memOp = op;
        break;
      }
      case OperandKind.Imm:
        nImm++;
        s = m === OpMethod.One ? '' : formatImm(op);
        break;
      case OperandKind.Rel:
        s = relTarget(insn, op, address);
        if (((op.spec >> 8) & 0xff) === OpSizeCode.B) used &= ~Prefix.OpSize;
        break;
      case OperandKind.Far:
        s = `$${hex(op.sel)},$${hex(op.imm)}`;
        break;
      default:
        s = '(bad)';
        // an MPX memory operand that cannot be encoded still shows (and uses) its segment override
        if ((flags & OpFlag.Mpx || m === OpMethod.Vsib) && insn.segment >= 0 &&
          (m === OpMethod.M || m === OpMethod.E || m === OpMethod.K || m === OpMethod.Vsib)) {
          s = `%${SEG_NAMES[insn.segment]}:(bad)`;
          used |= Prefix.Seg;
        }
    }
    if ((flags & OpFlag.Branch) && (m === OpMethod.E || m === OpMethod.M)) s = '*' + s;
    parts.push(s);
    if (!sizeOp && (m === OpMethod.E || m === OpMethod.M || m === OpMethod.X || m === OpMethod.Y || m === OpMethod.G ||
      m === OpMethod.Z || m === OpMethod.R)) sizeOp = op;
  }

  // --- mnemonic adjustments ---
  const map = insn.map;
  const opc = insn.opcode;
  if (map === 0 && (opc === 0xdc || opc === 0xde) && insn.modrm >= 0xc0 && ((insn.modrm >> 3) & 7) >= 4) {
    name = name.includes('r') ? name.replace('r', '') : name.replace(/^(fsub|fdiv)/, '$1r');
  }
  if (map === 1 && opc === 0xc2 && n > 0 && ops[n - 1]!.kind === OperandKind.Imm) {
    const imm = ops[n - 1]!.imm;
    if (imm < (insn.vex ? 32 : 8)) {
      name = insn.vex ? 'vcmp' + CMP_PRED[imm] + name.slice(4) : 'cmp' + CMP_PRED[imm] + name.slice(3);
      parts.pop();
    }
  }
  if (map === 3 && opc === 0x44 && n > 0 && ops[n - 1]!.kind === OperandKind.Imm) {
    const pn = PCLMUL_NAMES[ops[n - 1]!.imm];
    if (pn !== undefined) {
      name = name.replace('clmulqdq', 'clmul' + pn + 'dq');
      parts.pop();
    }
  }
  if (flags & OpFlag.Gather) {
    // destination, VSIB index and mask must differ: objdump marks each register of an equal pair
    const d = ops[0]!.reg;
    const mem = ops[1]!;
    const ix = mem.kind === OperandKind.Mem ? mem.index : -1;
    const mk = ops[2]!.reg;
    if (d === mk || d === ix) parts[0] += '/(bad)';
    if (ix >= 0 && (ix === d || ix === mk)) parts[1] += '/(bad)';
    if (mk === d || mk === ix) parts[2] += '/(bad)';
  }
  if (map === 0 && insn.opcode >= 0xa0 && insn.opcode <= 0xa3 && mode === 64 && insn.addrSize === 8) name = 'movabs';
  if (map === 0 && insn.opcode >= 0xb8 && insn.opcode <= 0xbf && insn.opSize === 8) name = 'movabs';

  // --- suffix ---
  let suffix = '';
  if (flags & OpFlag.AddrCounter) {
    if (insn.addrSize !== (mode === 16 ? 2 : mode === 32 ? 4 : 8)) suffix = sizeSuffix(insn.addrSize);
  } else if (flags & OpFlag.SuffixNever) {
    suffix = '';
  } else if (flags & OpFlag.SuffixAlways) {
    if (sizeOp) suffix = sizeSuffix(sizeOp.size);
  } else if (flags & OpFlag.SuffixMem) {
    if (memOp) suffix = sizeSuffix(ops[n - 1]!.size);
  } else if (flags & OpFlag.SuffixNonDefault) {
    if (insn.opSize !== (mode === 16 ? 2 : 4)) suffix = sizeSuffix(insn.opSize);
  } else if (flags & OpFlag.SuffixOpSize) {
    if (mode !== 64) suffix = sizeSuffix(insn.opSize);
  } else if (insn.vex && memOp && XY_SUFFIX.has(name)) {
    suffix = memOp.size === 32 ? 'y' : 'x';
  } else if (flags & OpFlag.X87Env) {
    if (insn.prefixes & Prefix.OpSize) suffix = mode === 16 ? 'l' : 's';

  } else if (flags & OpFlag.Far) {
    if (insn.opSize === (mode === 16 ? 4 : 2) && !(insn.rex & 8)) suffix = mode === 16 ? 'l' : 'w';
  } else if (flags & (OpFlag.D64 | OpFlag.F64)) {
    const def = mode === 64 ? 8 : mode === 32 ? 4 : 2;
    const rel8 = n > 0 && ops[0]!.kind === OperandKind.Rel && ((ops[0]!.spec >> 8) & 0xff) === OpSizeCode.B;
    if (!hasSizingReg && !rel8 && insn.opSize !== def) suffix = sizeSuffix(insn.opSize);
  } else if (!(flags & OpFlag.SuffixNever) && !hasAnyReg && memOp && sizeOp === memOp && memOp.size > 0 &&
    (memOp.spec & 0xff) === OpMethod.E &&
    (insn.map !== 0 || insn.opcode < 0xd8 || insn.opcode > 0xdf)) {
    suffix = sizeSuffix(memOp.size);
  }

  // --- prefixes objdump prints by name (objdump drops the LAST prefix of each used kind) ---
  const legacyLen = insn.vex ? legacyPrefixLen(code, insn.offset, insn.offset + insn.prefixLen, mode) : insn.prefixLen;
  const names = prefixNameList(code, insn.offset, legacyLen, mode);
  const start = insn.offset;
  const isStr = (flags & OpFlag.String) !== 0;
  let hint = '';
  const lastPos = (pred: (b: number) => boolean): number => {
    for (let p = start + legacyLen - 1; p >= start; p--) if (pred(code[p]!)) return p - start;
    return -1;
  };
  const isSegByte = (b: number): boolean => b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e || b === 0x64 || b === 0x65;
  const hasByte = (v: number): boolean => {
    for (let p = start; p < start + legacyLen; p++) if (code[p] === v) return true;
    return false;
  };
  if (notrack) {
    const i = lastPos(isSegByte);
    if (i >= 0) names[i] = 'notrack';
  } else if (used & Prefix.Seg) {
    const i = lastPos(isSegByte);
    if (i >= 0) names[i] = '';
  } else if ((flags & OpFlag.Jcc) && hasByte(0x2e) !== hasByte(0x3e)) {
    // a branch hint: exactly one of CS (not taken) / DS (taken); the last segment prefix is consumed
    const i = lastPos(isSegByte);
    if (i >= 0) names[i] = '';
    hint = hasByte(0x2e) ? ',pn' : ',pt';
  }
  if (map === 1 && (opc === 0x20 || opc === 0x22) && mode !== 64 && hasByte(0xf0)) {
    names[lastPos((b) => b === 0xf0)] = ''; // LOCK selects CR8-CR15 (AMD)
  }
  if (insn.mandatory === 0xf3 || insn.mandatory === 0xf2) {
    const i = lastPos((b) => b === insn.mandatory);
    if (i >= 0) names[i] = '';
  } else if (insn.lastRep) {
    const i = lastPos((b) => b === insn.lastRep);
    // (the last F3 and the last F2 get the name; earlier repeats keep their plain names)
    const nameAll = (f3: string, f2: string): void => {
      const p3 = lastPos((b) => b === 0xf3);
      const p2 = lastPos((b) => b === 0xf2);
      if (p3 >= 0) names[p3] = f3;
      if (p2 >= 0) names[p2] = f2;
    };
    if (isStr) {
      nameAll((name === 'cmps' || name === 'scas') ? 'repz' : 'rep', 'repnz');
    } else if ((flags & OpFlag.Branch) && hasByte(0xf2) &&
      (BND_BRANCHES.has(entry.name) || (map === 0 && opc >= 0x70 && opc <= 0x7f) || (map === 1 && opc >= 0x80 && opc <= 0x8f))) {
      names[lastPos((b) => b === 0xf2)] = 'bnd';
    } else if (memOp && memOp === ops[0] && (hasByte(0xf0) ? HLE_LOCKABLE.has(entry.name) : entry.name === 'xchg')) {
      nameAll('xrelease', 'xacquire');
    } else if (insn.lastRep === 0xf3 && memOp && memOp === ops[0] && entry.name === 'mov' && map === 0 &&
      (opc === 0x88 || opc === 0x89 || opc === 0xc6 || opc === 0xc7)) {
      names[i] = 'xrelease';
    }
  }
  if (used & Prefix.OpSize) {
    const i = lastPos((b) => b === 0x66);
    if (i >= 0) names[i] = '';
  }
  if (used & Prefix.AddrSize) {
    const i = lastPos((b) => b === 0x67);
    if (i >= 0) names[i] = '';
  }
  if (insn.rex && !insn.vex) {
    const bits = insn.rex & 15;
    const rexUnused = bits === 0 ? !hasRexOnlyRegs(insn) : (bits & ~rexUsed) !== 0;
    if (!rexUnused) names[insn.prefixLen - 1] = '';
  }
  const pre = names.filter((x) => x !== '');
  let text = (flags & OpFlag.PseudoVex ? '{vex} ' : '') + (insn.vex ? name : name.replace('_', ' ')) + suffix + hint;
  if (pre.length) text = pre.join(' ') + ' ' + text;
  const shown = parts.filter((x) => x !== '');
  if (shown.length) {
    const keep = (map === 0 && (opc === 0xc8 || opc === 0x62)) || (flags & OpFlag.NoReverse) !== 0;
    if (!keep) shown.reverse();
    text = text.padEnd(6) + ' ' + shown.join(',');
  }
  if (ripTarget) text += '        # ' + ripTarget;
  return text;
}

/** Does the instruction use spl/bpl/sil/dil (the only effect of a bare REX 40)? */
function hasRexOnlyRegs(insn: DecodedInsn): boolean {
  for (let i = 0; i < insn.nOps; i++) {
    const op = insn.ops[i]!;
    if (op.kind === OperandKind.Reg && op.regClass === RegClass.Gpr && op.size === 1 && op.reg >= 4 && op.reg < 8) {
      const m = op.spec & 0xff;
      if (m === OpMethod.E || m === OpMethod.G || m === OpMethod.Z || m === OpMethod.R) return true;
    }
  }
  return false;
}

const isLegacyPrefix = (b: number): boolean => b === 0xf0 || b === 0xf2 || b === 0xf3 || b === 0x66 || b === 0x67 ||
  b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e || b === 0x64 || b === 0x65;

/** What objdump makes of the prefix bytes at the start of an instruction (see `scanPrefixes`). */
interface PrefixScan {
  /** A line of prefixes only, ending here (0: none; the instruction is decoded). */
  length: number;
  /** Its text. */
  text: string;
  /** FWAIT bytes (9B) among the prefixes, which objdump folds into a following x87 instruction. */
  fwaits: number;
}
const scan: PrefixScan = { length: 0, text: '', fwaits: 0 };

/**
 * objdump reads FWAIT (9B) and REX as prefixes, which a CPU does not (FWAIT is an instruction; a REX
 * not right before the opcode is ignored). Its rules, as observed:
 *  - a REX followed by another prefix (legacy, REX or FWAIT) ends a line of the prefixes read so far,
 *    FWAIT not counted nor named (`67 49 4e` is `addr32 rex.WB` of 2 bytes; `9b 4d 44` is `rex.WRB` of 1);
 *  - a FWAIT preceded by a prefix, or followed by a non-x87 opcode, is a line `fwait` with the prefixes
 *    before it (the bytes counted are those prefixes and one: `66 9b 90` is `data16 fwait` of 2 bytes);
 *  - otherwise the FWAITs are folded into the x87 instruction that follows (`fnstsw` becomes `fstsw`).
 */
function scanPrefixes(code: Uint8Array, offset: number, end: number, mode: CpuMode): PrefixScan {
  scan.length = 0;
  scan.fwaits = 0;
  const lim = Math.min(end, offset + 15);
  const stored: number[] = [];
  let rex = 0;
  let any = false;
  let fwaitAt = -1;
  let p = offset;
  for (; p < lim; p++) {
    const b = code[p]!;
    const isRex = mode === 64 && (b & 0xf0) === 0x40;
    if (b === 0x9b) {
      fwaitAt = stored.length;
      if (any || rex) {
        // a FWAIT after other prefixes belongs to them (objdump stops reading prefixes)
        scan.fwaits++;
        if (rex) return prefixLine(stored, stored.length, mode);
        p++;
        break;
      }
      any = true;
      scan.fwaits++;
      continue;
    }
    if (!isRex && !isLegacyPrefix(b)) break;
    if (rex) return prefixLine(stored, stored.length, mode);
    stored.push(b);
    if (!isRex) any = true;
    rex = isRex ? b : 0;
    if (isRex) any = true;
  }
  if (fwaitAt >= 0 && (p >= end || code[p]! < 0xd8 || code[p]! > 0xdf)) {
    const names = prefixNameList(Uint8Array.from(stored.slice(0, fwaitAt)), 0, fwaitAt, mode);
    scan.length = fwaitAt + 1;
    scan.text = [...names, 'fwait'].join(' ');
    scan.fwaits = 0;
  }
  return scan;
}

function prefixLine(stored: number[], n: number, mode: CpuMode): PrefixScan {
  scan.length = n;
  scan.text = prefixNameList(Uint8Array.from(stored), 0, n, mode).join(' ');
  scan.fwaits = 0;
  return scan;
}

/** objdump's names of the prefix bytes code[offset..offset+len). */
function prefixNameList(code: Uint8Array, offset: number, len: number, mode: CpuMode): string[] {
  const names: string[] = [];
  for (let p = offset; p < offset + len; p++) {
    const b = code[p]!;
    switch (b) {
      case 0xf0: names.push('lock'); break;
      case 0xf2: names.push('repnz'); break;
      case 0xf3: names.push('repz'); break;
      case 0x66: names.push(mode === 16 ? 'data32' : 'data16'); break;
      case 0x67: names.push(mode === 32 ? 'addr16' : 'addr32'); break;
      case 0x26: names.push('es'); break;
      case 0x2e: names.push('cs'); break;
      case 0x36: names.push('ss'); break;
      case 0x3e: names.push('ds'); break;
      case 0x64: names.push('fs'); break;
      case 0x65: names.push('gs'); break;
      default: {
        const bits = b & 15;
        let r = 'rex';
        if (bits) {
          r += '.';
          if (bits & 8) r += 'W';
          if (bits & 4) r += 'R';
          if (bits & 2) r += 'X';
          if (bits & 1) r += 'B';
        }
        names.push(r);
      }
    }
  }
  return names;
}

const scratch = new DecodedInsn();

/**
 * Disassembles one instruction at `offset` as objdump would (objdump's length, which differs from
 * the CPU's for a REX followed by another prefix and for some undefined encodings).
 */
export function disasmOne(code: Uint8Array, offset: number, end: number, mode: CpuMode, address: bigint,
  insn: DecodedInsn = scratch): DisasmLine {
  const sc = scanPrefixes(code, offset, end, mode);
  if (sc.length) return { offset, length: sc.length, text: sc.text };
  if (sc.fwaits) {
    // decode the instruction without its FWAIT bytes, at an address that keeps its end where it is
    const lim = Math.min(end, offset + 15 + sc.fwaits);
    const bytes = new Uint8Array(lim - offset - sc.fwaits);
    let n = 0;
    for (let p = offset, k = 0; p < lim; p++) {
      if (code[p] === 0x9b && k < sc.fwaits) { k++; continue; }
      bytes[n++] = code[p]!;
    }
    const line = disasmPlain(bytes, 0, n, mode, address + BigInt(sc.fwaits), insn);
    const text = line.text.replace(FWAIT_FOLD, '$1f$2');
    return { offset, length: line.length + sc.fwaits, text };
  }
  return disasmPlain(code, offset, end, mode, address, insn);
}

function disasmPlain(code: Uint8Array, offset: number, end: number, mode: CpuMode, address: bigint,
  insn: DecodedInsn): DisasmLine {
  decode(code, offset, end, mode, insn, true);
  if (insn.status === DecodeStatus.Truncated) {
    return { offset, length: Math.max(1, end - offset), text: '(bad)' };
  }
  if (insn.status === DecodeStatus.Invalid) {
    if (insn.entry && ((insn.entry.flags & OpFlag.Bad) || insn.invalidReason === InvalidReason.RegisterForm)) {
      return { offset, length: insn.length, text: formatInsn(insn, code, address) };
    }
    let length = insn.length;
    if (insn.invalidReason === InvalidReason.TooLong) length = Math.min(15, end - offset);
    if (length <= 0) length = 1;
    const pl = Math.min(legacyPrefixLen(code, offset, end, mode), length);
    let pn = '';
    // objdump names no prefixes for a `'!'` hole, nor for a VEX encoding whose VEX.vvvv was left unused
    // (nor for a reserved VEX map: objdump stops at the C4 byte and names them)
    if (!insn.viaPrefixSplit && (!insn.vex || insn.vexMap < 1 || insn.vexMap > 3 ||
      rawVexV(code, offset + legacyPrefixLen(code, offset, end, mode)) === 0)) {
      // the prefix that picked the (empty) column of a mandatory-prefix table is consumed
      const names = prefixNameList(code, offset, pl, mode);
      if (insn.entry && insn.entry.flags & OpFlag.Now3d) {
        // an undefined 3DNow! suffix: the prefixes its operands used are not named
        const used = insn.usedPrefixes;
        const drop = (pred: (b: number) => boolean): void => {
          for (let p = pl - 1; p >= 0; p--) if (pred(code[offset + p]!)) { names[p] = ''; break; }
        };
        if (used & Prefix.OpSize) drop((b) => b === 0x66);
        if (used & Prefix.Seg) drop((b) => b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e || b === 0x64 || b === 0x65);
        if (used & Prefix.AddrSize) drop((b) => b === 0x67);
        const rexBits = insn.rex & 15;
        if (rexBits !== 0 && (rexBits & ~insn.rexUsed) === 0) names[pl - 1] = '';
      }
      if (!insn.badRexNamed) {
        for (let p = 0; p < pl; p++) if ((code[offset + p]! & 0xf0) === 0x40) names[p] = '';
      }
      if (insn.mandatory && !insn.vex) {
        for (let p = pl - 1; p >= 0; p--) if (code[offset + p] === insn.mandatory) { names[p] = ''; break; }
      }
      pn = names.filter((x) => x !== '').join(' ');
    }
    return { offset, length, text: (pn ? pn + ' (bad)' : '(bad)') + evexDecorations(code, offset, end, mode, insn) };
  }
  return { offset, length: insn.length, text: formatInsn(insn, code, address) };
}

const EVEX_ROUNDING = ['rn', 'rd', 'ru', 'rz'];

/**
 * objdump prints an undefined EVEX opcode with the decorations of the prefix: static rounding (EVEX.b
 * with a register ModRM, marked `-bad`) and the opmask (EVEX.aaa, then EVEX.z).
 */
function evexDecorations(code: Uint8Array, offset: number, end: number, mode: CpuMode, insn: DecodedInsn): string {
  const pl = legacyPrefixLen(code, offset, end, mode);
  if (insn.viaPrefixSplit || insn.invalidReason !== InvalidReason.Vex || code[offset + pl] !== 0x62 ||
    insn.length !== pl + 5) return '';
  const p2 = code[offset + pl + 3]!;
  const modrm = offset + pl + 5 < end ? code[offset + pl + 5]! : 0;
  const items: string[] = [];
  if (p2 & 0x10 && modrm >= 0xc0) items.push(`{${EVEX_ROUNDING[(p2 >> 5) & 3]}-bad}`);
  if (p2 & 7) items.push(`{%k${p2 & 7}}${p2 & 0x80 ? '{z}' : ''}`);
  return items.length ? '  ' + items.join(',') : '';
}

/** VEX.vvvv as encoded (un-inverted, all 4 bits even outside long mode) of the VEX prefix at `p`. */
function rawVexV(code: Uint8Array, p: number): number {
  const b = code[p] === 0xc5 ? code[p + 1] : code[p + 2];
  return b === undefined ? 0 : (~b >> 3) & 15;
}

/** The no-wait x87 control mnemonics, which a folded FWAIT turns into their waiting names. */
const FWAIT_FOLD = /(^| )fn(stsw|stcw|stenv|save|clex|init|eni|disi|setpm)/;

function legacyPrefixLen(code: Uint8Array, offset: number, end: number, mode: CpuMode): number {
  let p = offset;
  while (p < end && p - offset < 15) {
    const b = code[p]!;
    if (b === 0xf0 || b === 0xf2 || b === 0xf3 || b === 0x66 || b === 0x67 || b === 0x26 || b === 0x2e ||
      b === 0x36 || b === 0x3e || b === 0x64 || b === 0x65 || (mode === 64 && (b & 0xf0) === 0x40)) p++;
    else break;
  }
  return p - offset;
}

/** Disassembles a whole buffer; `org` is the address of `code[0]`. */
export function disassemble(code: Uint8Array, mode: CpuMode, org: bigint = 0n): DisasmLine[] {
  const out: DisasmLine[] = [];
  const insn = new DecodedInsn();
  let off = 0;
  while (off < code.length) {
    const line = disasmOne(code, off, code.length, mode, org + BigInt(off), insn);
    out.push(line);
    off += line.length;
  }
  return out;
}
