/**
 * The forms of docs/soft-cpu-opcodes.md: every opcode of the one-byte, 0F, 0F 38 and 0F 3A maps,
 * with no prefix, 66, F3 and F2, decoded as the soft CPU decodes it (x86/decoder.ts, CPU view) and
 * compiled to its handler (compile.ts). `classifyForm` says what the table claims for one form;
 * `representatives` picks, per opcode and prefix, one form of each distinct instruction (the same
 * decoded mnemonic, operand shapes and handler), which test/soft/opcode-walk.ts then runs.
 */
import { compileInsn, NOT_IN_MODEL } from '../../src/backends/soft/compile.js';
import { Insn } from '../../src/backends/soft/insn.js';
import { hUd, hUnimplemented } from '../../src/backends/soft/ops-sys.js';
import { RegClass } from '../../src/x86/registers.js';
import { decode, DecodedInsn, DecodeStatus, MNEMONICS, mnemonicId, OperandKind, type CpuMode } from '../../src/x86/decoder.js';

export const MODES: readonly CpuMode[] = [16, 32, 64];
export const MAPS: readonly (readonly [string, readonly number[]])[] = [['one-byte', []], ['0F', [0x0f]], ['0F 38', [0x0f, 0x38]], ['0F 3A', [0x0f, 0x3a]]];
export const PREFIXES: readonly (readonly number[])[] = [[], [0x66], [0xf3], [0xf2]];
/** The byte every immediate of a walked form holds (INT n then delivers vector 0x21). */
export const IMM_FILL = 0x21;

/** Mnemonic ids of the instructions of features the CPU modelled does not advertise. */
export const FEATURE_IDS: ReadonlySet<number> = new Set(Object.values(NOT_IN_MODEL).flat().map(mnemonicId).filter((id) => id >= 0));

/** What the table claims for one form. */
export type Claim = 'exec' | 'ud' | 'feature' | 'unimplemented';

/** One-byte opcodes that are prefixes in `mode` (REX in 64-bit mode too). */
export function isPrefixByte(mode: CpuMode, mapIndex: number, op: number): boolean {
  if (mapIndex !== 0) return false;
  if (mode === 64 && (op & 0xf0) === 0x40) return true;
  return [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3].includes(op);
}

/** Whether `map[op]` is the escape byte of the next map (not an opcode of its own). */
export function isEscape(mapIndex: number, op: number): boolean {
  return (mapIndex === 0 && op === 0x0f) || (mapIndex === 1 && (op === 0x38 || op === 0x3a));
}

/** The claim for a decoded form (d, freshly decoded) and the compiled Insn. */
export function classifyForm(d: DecodedInsn, i: Insn): Claim {
  if (d.status !== DecodeStatus.Ok) return 'ud';
  if (i.fn === hUnimplemented) return 'unimplemented';
  if (i.fn === hUd && (FEATURE_IDS.has(d.mnemonic) || d.vex)) return 'feature';
  if (i.fn === hUd) return 'ud';
  return 'exec';
}

/** The ModRM r/m of the walk's memory forms: [BX] in 16-bit addressing, [EBX]/[RBX] otherwise (no SIB, no displacement). */
export function memRm(mode: CpuMode): number {
  return mode === 16 ? 7 : 3;
}

/** One form the walk runs. */
export interface Form {
  mode: CpuMode;
  mapIndex: number;
  op: number;
  prefix: readonly number[];
  /** The instruction (prefix, map, opcode, ModRM if any, immediates IMM_FILL). */
  bytes: Uint8Array;
  /** Offset of the first byte after ModRM (or after the opcode when it has none): where immediates start. */
  head: number;
  claim: Claim;
  mnemonic: string;
  /** The decoded instruction (a private copy). */
  d: DecodedInsn;
  /** The compiled handler's name, for reports. */
  handler: string;
}

function copyDecoded(d: DecodedInsn): DecodedInsn {
  const c = new DecodedInsn();
  const { ops, ...rest } = d;
  Object.assign(c, rest);
  ops.forEach((o, k) => Object.assign(c.ops[k]!, o));
  return c;
}

/** The shape of an instruction that decides which handler path runs: operand kinds, classes, sizes. */
function shape(d: DecodedInsn, i: Insn): string {
  if (d.status !== DecodeStatus.Ok) return `invalid:${d.invalidReason}:${d.modrm >= 0xc0 ? 'reg' : 'mem'}`;
  const ops: string[] = [];
  for (let k = 0; k < d.nOps; k++) {
    const o = d.ops[k]!;
    let s = `${o.kind}.${o.size}`;
    if (o.kind === OperandKind.Reg) {
      s += `.${o.regClass}`;
      // the register number picks the instruction for these classes (CR0 or CR3, DS or SS...)
      if (o.regClass === RegClass.Seg || o.regClass === RegClass.Cr || o.regClass === RegClass.Dr) s += `.${o.reg}`;
    }
    ops.push(s);
  }
  return `${MNEMONICS[d.mnemonic]}|${i.fn.name}|${i.sub}|${ops.join(',')}`;
}

/**
 * The forms of opcode `op` of map `mapIndex` with `prefix` in `mode` that the walk runs: one
 * memory form ([BX]/[EBX]/[RBX]) and one register form (ModRM.mod 3) per distinct instruction,
 * the lowest ModRM of each. An opcode without ModRM has one form.
 */
export function representatives(mode: CpuMode, mapIndex: number, op: number, prefix: readonly number[]): Form[] {
  const map = MAPS[mapIndex]![1];
  const d = new DecodedInsn();
  const seen = new Set<string>();
  const out: Form[] = [];
  const rm = memRm(mode);
  const modrms: number[] = [];
  for (let reg = 0; reg < 8; reg++) modrms.push((reg << 3) | rm);
  for (let m = 0xc0; m < 0x100; m++) modrms.push(m);
  for (const modrm of modrms) {
    const bytes = Uint8Array.from([...prefix, ...map, op, modrm, ...new Array<number>(14).fill(IMM_FILL)]);
    decode(bytes, 0, bytes.length, mode, d);
    const i = compileInsn(d, new Insn(hUnimplemented));
    const key = shape(d, i);
    if (seen.has(key)) continue;
    seen.add(key);
    const claim = classifyForm(d, i);
    const hasModrm = d.status === DecodeStatus.Ok ? d.modrm >= 0 : true;
    let head = prefix.length + map.length + 1 + (hasModrm ? 1 : 0);
    const length = d.status === DecodeStatus.Ok ? d.length : Math.max(d.length, head);
    let insn = bytes.slice(0, length);
    const first = copyDecoded(d);
    if (!hasModrm) {
      // the ModRM candidate was the first immediate byte: IMM_FILL like the others, if that decodes the same
      const filled = insn.slice();
      filled.fill(IMM_FILL, head);
      decode(filled, 0, filled.length, mode, d);
      if (d.status === first.status && d.mnemonic === first.mnemonic && d.length === first.length) insn = filled;
    } else if (d.status !== DecodeStatus.Ok) head = length;
    decode(insn, 0, insn.length, mode, d);
    out.push({ mode, mapIndex, op, prefix, bytes: insn, head, claim, mnemonic: MNEMONICS[d.mnemonic]!, d: copyDecoded(d), handler: i.fn.name });
  }
  return out;
}

/** Every form the walk runs in `mode`, in table order. */
export function walkForms(mode: CpuMode): Form[] {
  const out: Form[] = [];
  for (let m = 0; m < MAPS.length; m++) {
    for (let op = 0; op < 256; op++) {
      if (isEscape(m, op)) continue;
      if (isPrefixByte(mode, m, op)) out.push(...prefixForms(mode, op));
      else for (const p of PREFIXES) out.push(...representatives(mode, m, op, p));
    }
  }
  return out;
}

/**
 * A prefix byte's forms: before NOP, and before a load from memory (MOV r, m; with 67 in 32-bit
 * code the 16-bit address [0xB000], the walk's low scratch, as 16-bit addressing reaches no
 * further); LOCK also before ADD to memory, which it may prefix.
 */
function prefixForms(mode: CpuMode, p: number): Form[] {
  const d = new DecodedInsn();
  const mem = p === 0x67 && mode === 32 ? [0x8b, 0x06, 0x00, 0xb0] : p === 0x67 && mode === 16 ? [0x8b, 0x03] : [0x8b, memRm(mode)];
  const forms = [[p, 0x90], [p, ...mem]];
  if (p === 0xf0) forms.push([p, 0x01, memRm(mode)]);
  return forms.map((b) => formOf(mode, b, d));
}

/** The form of the instruction `bytes` (with no immediate, displacement or moffs for the walk to set), filed under its first byte. */
export function formOf(mode: CpuMode, b: readonly number[], d = new DecodedInsn()): Form {
  const bytes = Uint8Array.from(b);
  decode(bytes, 0, bytes.length, mode, d);
  const i = compileInsn(d, new Insn(hUnimplemented));
  return {
    mode, mapIndex: 0, op: b[0]!, prefix: [], bytes, head: bytes.length, claim: classifyForm(d, i), mnemonic: MNEMONICS[d.mnemonic]!,
    d: copyDecoded(d), handler: i.fn.name,
  };
}

/** The bytes of a form as the table and reports show them ("66 0f 38 00 c0"). */
export function hexBytes(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}
