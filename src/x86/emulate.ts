/**
 * The instruction emulator behind libnvmm's nvmm_assist_mem (assistMem in nvmm/assist.ts), also
 * the step loop of the tests' fake backend (test/helpers/fake-backend.ts); the software CPU has
 * its own executor and does not use it. It executes one decoded instruction (or one iteration of
 * a REP string instruction) against a register file and two memory callbacks. Pure: no I/O, no
 * BigInt, no allocation per call.
 *
 *   const insn = new DecodedInsn();
 *   decode(code, 0, code.length, mode, insn);
 *   const st = emulate(insn, regs, mem);      // EmuStatus.Done | Repeat | Unsupported
 *
 * Instructions (every operand form the decoder produces: register, memory, immediate):
 *   data:     MOV (incl. moffs A0-A3 and imm64), MOVZX, MOVSX, MOVSXD, XCHG, CMPXCHG
 *   ALU:      ADD OR ADC SBB AND SUB XOR CMP TEST, NOT NEG INC DEC (flags from alu.ts)
 *   bits:     BT BTS BTR BTC (imm8 offset modulo the operand width; a register offset on a
 *             memory operand addresses the bit string, i.e. may move the access)
 *   strings:  MOVS STOS LODS CMPS SCAS, with REP / REPE / REPNE, DF, and the address size
 *             (RSI/RDI/RCX updated at the address size: 32-bit zero-extends, 16-bit merges)
 *   branches: Jcc and JMP rel (so that a step loop can run small guest snippets)
 * Not emulated (status Unsupported, nothing changed): everything else, including segment/control
 * register moves, IN/OUT/INS/OUTS (that is assistIo's business) and far/indirect branches.
 *
 * Semantics reproduced (Intel SDM vol. 2): operand-size and address-size prefixes; a 32-bit GPR
 * destination zero-extends to 64 bits, 8/16-bit destinations merge; imm8 of 83/6B sign-extended
 * to the operand size (done by the decoder); BT writes nothing and changes CF only; REP on a
 * non-string instruction is ignored (one execution, RCX untouched); a REP string instruction with
 * a zero count does nothing but advance RIP. LOCK is accepted and has no effect (one access is
 * atomic enough for one vCPU's view). Segment limits and alignment checks are not applied.
 *
 * Memory: the callbacks see LINEAR addresses (segment base already added: in 64-bit mode only FS
 * and GS bases count; in other modes the sum wraps at 32 bits) as uint32 halves, and a buffer of
 * exactly the access size (1, 2, 4 or 8 bytes, little-endian). For one instruction the emulator
 * performs every memory access before it writes any register, so a callback that throws (a page
 * fault, an access a step loop wants to turn into an exit) leaves the registers untouched; a
 * read-modify-write reads, then writes.
 *
 * Result: Done = the instruction completed and RIP has been advanced past it (or set to the
 * branch target); Repeat = one REP iteration was done, more remain, RIP is unchanged (the caller
 * re-executes it, as the CPU does after an exit); Unsupported = nothing was changed.
 */
import { TWO32 } from '../common/bits.js';
import * as alu from './alu.js';
import { DecodeStatus, MNEMONICS, OpMethod, OperandKind, Prefix, mnemonicId, type DecodedInsn, type Operand } from './decoder.js';
import { FLAG_DF, FLAG_ZF, STATUS_FLAGS, evalCondition } from './flags.js';
import { RegClass, Seg } from './registers.js';

export const EmuStatus = { Done: 0, Repeat: 1, Unsupported: 2 } as const;
export type EmuStatus = (typeof EmuStatus)[keyof typeof EmuStatus];

/**
 * The register file the emulator works on: 16 GPRs, RIP, RFLAGS and the segment bases, as
 * uint32 halves (no BigInt). The owner loads it from its own state and stores it back.
 */
export class EmuRegisters {
  /** GPR n (Gpr.* numbering) is (gpr[2n] low, gpr[2n + 1] high). */
  readonly gpr = new Uint32Array(32);
  ripLo = 0;
  ripHi = 0;
  rflags = 0x2;
  /** Base of segment s (Seg.*) as (segBase[2s], segBase[2s + 1]). */
  readonly segBase = new Uint32Array(12);

  /** The low `size` bytes (1, 2, 4; 8 gives the low half) of GPR n, unsigned. */
  get(n: number, size: number): number {
    const v = this.gpr[2 * n]!;
    return size === 1 ? v & 0xff : size === 2 ? v & 0xffff : v;
  }

  /** The high half of GPR n. */
  getHi(n: number): number {
    return this.gpr[2 * n + 1]!;
  }

  /** Writes GPR n as the CPU does: sizes 1 and 2 merge, 4 zero-extends, 8 writes both halves. */
  set(n: number, size: number, lo: number, hi = 0): void {
    const i = 2 * n;
    if (size === 1) this.gpr[i] = (this.gpr[i]! & ~0xff) | (lo & 0xff);
    else if (size === 2) this.gpr[i] = (this.gpr[i]! & ~0xffff) | (lo & 0xffff);
    else {
      this.gpr[i] = lo;
      this.gpr[i + 1] = size === 8 ? hi : 0;
    }
  }
}

/** Guest memory as the emulator sees it (linear addresses; see the module comment). */
export interface EmuMemory {
  /** Fills `data` (data.length = 1, 2, 4 or 8) from linear address (lo, hi). */
  read(lo: number, hi: number, data: Uint8Array): void;
  /** Stores `data` at linear address (lo, hi). */
  write(lo: number, hi: number, data: Uint8Array): void;
}

// ---- handlers, by mnemonic (tables over switches: mnemonic id -> handler kind) ----

const H_NONE = 0;
const H_MOV = 1;
const H_ALU = 2; // group-1 binary op; sub-op in ALU_OF
const H_TEST = 3;
const H_NOT = 4;
const H_NEG = 5;
const H_INC = 6;
const H_DEC = 7;
const H_XCHG = 8;
const H_CMPXCHG = 9;
const H_MOVZX = 10;
const H_MOVSX = 11;
const H_BT = 12; // bit op; kind in ALU_OF (0 bt, 1 bts, 2 btr, 3 btc)
const H_MOVS = 13;
const H_STOS = 14;
const H_LODS = 15;
const H_CMPS = 16;
const H_SCAS = 17;
const H_JCC = 18; // condition in ALU_OF
const H_JMP = 19;

const HANDLER = new Uint8Array(MNEMONICS.length + 1);
const SUBOP = new Uint8Array(MNEMONICS.length + 1);
function bind(name: string, handler: number, sub = 0): void {
  const id = mnemonicId(name);
  if (id < 0) throw new Error(`emulate: the decoder has no mnemonic '${name}'`);
  HANDLER[id] = handler;
  SUBOP[id] = sub;
}
bind('mov', H_MOV);
['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'].forEach((n, i) => bind(n, H_ALU, i));
bind('test', H_TEST);
bind('not', H_NOT);
bind('neg', H_NEG);
bind('inc', H_INC);
bind('dec', H_DEC);
bind('xchg', H_XCHG);
bind('cmpxchg', H_CMPXCHG);
bind('movzb', H_MOVZX);
bind('movzw', H_MOVZX);
bind('movsb', H_MOVSX);
bind('movsw', H_MOVSX);
bind('movsxd', H_MOVSX);
bind('movslq', H_MOVSX);
['bt', 'bts', 'btr', 'btc'].forEach((n, i) => bind(n, H_BT, i));
bind('movs', H_MOVS);
bind('stos', H_STOS);
bind('lods', H_LODS);
bind('cmps', H_CMPS);
bind('scas', H_SCAS);
['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'].forEach((cc, i) => bind(`j${cc}`, H_JCC, i));
bind('jmp', H_JMP);

/** Whether `emulate` knows the instruction's mnemonic (its operand forms may still be refused). */
export function isEmulated(insn: DecodedInsn): boolean {
  return insn.status === DecodeStatus.Ok && (HANDLER[insn.mnemonic] ?? H_NONE) !== H_NONE;
}

// ---- scratch (module-level: emulation is synchronous and non-reentrant) ----

const scratch = new Uint8Array(8);
const scratchView = new DataView(scratch.buffer);
/** Views of exactly the access size, handed to the callbacks. */
const VIEW: readonly Uint8Array[] = [scratch, scratch.subarray(0, 1), scratch.subarray(0, 2), scratch, scratch.subarray(0, 4),
  scratch, scratch, scratch, scratch.subarray(0, 8)];
const MASK = [0, 0xff, 0xffff, 0, 0xffffffff, 0, 0, 0, 0xffffffff];

/** Result of readOperand / effective-address computation (uint32 halves). */
let vLo = 0;
let vHi = 0;
let eaLo = 0;
let eaHi = 0;

function memRead(mem: EmuMemory, lo: number, hi: number, size: number): void {
  const v = VIEW[size]!;
  mem.read(lo, hi, v);
  if (size === 1) { vLo = scratch[0]!; vHi = 0; }
  else if (size === 2) { vLo = scratchView.getUint16(0, true); vHi = 0; }
  else if (size === 4) { vLo = scratchView.getUint32(0, true); vHi = 0; }
  else { vLo = scratchView.getUint32(0, true); vHi = scratchView.getUint32(4, true); }
}

function memWrite(mem: EmuMemory, lo: number, hi: number, size: number, valLo: number, valHi: number): void {
  if (size === 1) scratch[0] = valLo;
  else if (size === 2) scratchView.setUint16(0, valLo & 0xffff, true);
  else if (size === 4) scratchView.setUint32(0, valLo >>> 0, true);
  else { scratchView.setUint32(0, valLo >>> 0, true); scratchView.setUint32(4, valHi >>> 0, true); }
  mem.write(lo, hi, VIEW[size]!);
}

/**
 * The linear address of memory operand `op` into (eaLo, eaHi): base + index * scale + disp at the
 * address size, then the segment base. `extra` (signed, |extra| < 2^31 * 8) is added to the
 * offset first (BT with a register bit offset).
 */
function linearAddress(insn: DecodedInsn, regs: EmuRegisters, op: Operand, extraLo = 0, extraHi = 0): void {
  let lo = 0;
  let hi = 0;
  if ((op.spec & 0xff) === OpMethod.O) {
    // moffs: an absolute offset of the address size (the decoder keeps all 64 bits)
    lo = op.disp >>> 0;
    hi = insn.addrSize === 8 ? op.dispHi >>> 0 : 0;
  } else {
    lo = op.disp >>> 0;
    hi = op.disp < 0 ? 0xffffffff : 0;
    if (op.base === 16) {
      // RIP-relative: from the next instruction
      lo += regs.ripLo + insn.length;
      hi += regs.ripHi;
    } else if (op.base >= 0) {
      lo += regs.gpr[2 * op.base]!;
      hi += regs.gpr[2 * op.base + 1]!;
    }
    if (op.index >= 0) {
      lo += regs.gpr[2 * op.index]! * op.scale;
      hi += regs.gpr[2 * op.index + 1]! * op.scale;
    }
  }
  lo += extraLo;
  hi += extraHi;
  // carry the low sum (< 2^53) into the high half, then wrap both to 32 bits
  const carry = Math.floor(lo / TWO32);
  lo = lo - carry * TWO32;
  hi = (hi + carry) >>> 0;
  const as = insn.addrSize;
  if (as === 2) { lo &= 0xffff; hi = 0; } else if (as === 4) hi = 0;
  // segment base
  const s = op.seg;
  if (insn.mode === 64) {
    if (s === Seg.FS || s === Seg.GS) {
      lo += regs.segBase[2 * s]!;
      hi += regs.segBase[2 * s + 1]! + (lo >= TWO32 ? 1 : 0);
    }
    eaLo = lo >>> 0;
    eaHi = hi >>> 0;
  } else {
    eaLo = (lo + regs.segBase[2 * s]!) >>> 0;
    eaHi = 0;
  }
}

function isGpr(op: Operand): boolean {
  return op.regClass === RegClass.Gpr || op.regClass === RegClass.Gpr8High;
}

/** Reads operand `op` at `size` bytes into (vLo, vHi); size < 8 gives vHi = 0. */
function readOperand(insn: DecodedInsn, regs: EmuRegisters, mem: EmuMemory, op: Operand, size: number): void {
  switch (op.kind) {
    case OperandKind.Reg:
      if (op.regClass === RegClass.Gpr8High) { vLo = (regs.gpr[2 * op.reg]! >>> 8) & 0xff; vHi = 0; }
      else { vLo = regs.get(op.reg, size); vHi = size === 8 ? regs.getHi(op.reg) : 0; }
      return;
    case OperandKind.Mem:
      linearAddress(insn, regs, op);
      memRead(mem, eaLo, eaHi, size);
      return;
    default: // Imm (already extended to the operand's size by the decoder)
      vLo = size === 8 ? op.imm >>> 0 : (op.imm & MASK[size]!) >>> 0;
      vHi = size === 8 ? op.immHi >>> 0 : 0;
  }
}

/** Writes a GPR operand (never memory: memory writes go through memWrite before any register). */
function writeReg(regs: EmuRegisters, op: Operand, size: number, lo: number, hi: number): void {
  if (op.regClass === RegClass.Gpr8High) {
    const i = 2 * op.reg;
    regs.gpr[i] = (regs.gpr[i]! & ~0xff00) | ((lo & 0xff) << 8);
  } else regs.set(op.reg, size, lo >>> 0, hi >>> 0);
}

function writeOperand(insn: DecodedInsn, regs: EmuRegisters, mem: EmuMemory, op: Operand, size: number, lo: number, hi: number): void {
  if (op.kind === OperandKind.Mem) {
    linearAddress(insn, regs, op);
    memWrite(mem, eaLo, eaHi, size, lo, hi);
  } else writeReg(regs, op, size, lo, hi);
}

function advanceRip(insn: DecodedInsn, regs: EmuRegisters): void {
  const lo = regs.ripLo + insn.length;
  if (insn.mode === 64) {
    regs.ripHi = (regs.ripHi + (lo >= TWO32 ? 1 : 0)) >>> 0;
    regs.ripLo = lo >>> 0;
  } else {
    regs.ripLo = insn.mode === 16 ? lo & 0xffff : lo >>> 0; // IP wraps at 64 KiB in 16-bit code
    regs.ripHi = 0;
  }
}

function setFlags(regs: EmuRegisters, flags: number): void {
  regs.rflags = (regs.rflags & ~STATUS_FLAGS) | (flags & STATUS_FLAGS);
}

/** Operands must be GPRs, memory or immediates (no segment/control registers). */
function gprOrMemOperands(insn: DecodedInsn): boolean {
  for (let k = 0; k < insn.nOps; k++) {
    const op = insn.ops[k]!;
    if (op.kind === OperandKind.Reg ? !isGpr(op) : op.kind !== OperandKind.Mem && op.kind !== OperandKind.Imm) return false;
  }
  return true;
}

/**
 * Executes `insn` (decoded at the vCPU's RIP in the vCPU's mode) on `regs` and `mem`. See the
 * module comment for the result. Throws only what the memory callbacks throw.
 */
export function emulate(insn: DecodedInsn, regs: EmuRegisters, mem: EmuMemory): EmuStatus {
  if (insn.status !== DecodeStatus.Ok) return EmuStatus.Unsupported;
  const h = HANDLER[insn.mnemonic] ?? H_NONE;
  if (h === H_NONE) return EmuStatus.Unsupported;
  if (h >= H_MOVS && h <= H_SCAS) return stringOp(h, insn, regs, mem);
  if (h === H_JCC || h === H_JMP) return branch(h, insn, regs);
  if (!gprOrMemOperands(insn)) return EmuStatus.Unsupported;
  const sub = SUBOP[insn.mnemonic]!;
  const dst = insn.ops[0]!;
  const src = insn.ops[1]!;
  const size = dst.size as alu.OperandSize;
  const flagsIn = regs.rflags;
  switch (h) {
    case H_MOV:
      readOperand(insn, regs, mem, src, size);
      writeOperand(insn, regs, mem, dst, size, vLo, vHi);
      break;
    case H_MOVZX:
    case H_MOVSX: {
      readOperand(insn, regs, mem, src, src.size);
      let lo = vLo;
      let hi = 0;
      if (h === H_MOVSX && src.size < size) {
        const sh = 32 - src.size * 8;
        lo = (lo << sh) >> sh; // sign-extend to 32 bits
        hi = lo < 0 ? 0xffffffff : 0;
      }
      writeReg(regs, dst, size, lo >>> 0, hi);
      break;
    }
    case H_ALU: {
      readOperand(insn, regs, mem, dst, size);
      const aLo = vLo, aHi = vHi;
      readOperand(insn, regs, mem, src, size);
      alu.aluBinary(sub, aLo, aHi, vLo, vHi, size, flagsIn);
      if (sub !== alu.ALU_CMP) writeOperand(insn, regs, mem, dst, size, alu.aluOut.lo, alu.aluOut.hi);
      setFlags(regs, alu.aluOut.flags);
      break;
    }
    case H_TEST: {
      readOperand(insn, regs, mem, dst, size);
      const aLo = vLo, aHi = vHi;
      readOperand(insn, regs, mem, src, size);
      alu.and(aLo, aHi, vLo, vHi, size);
      setFlags(regs, alu.aluOut.flags);
      break;
    }
    case H_NOT: case H_NEG: case H_INC: case H_DEC:
      readOperand(insn, regs, mem, dst, size);
      if (h === H_NOT) alu.not(vLo, vHi, size, flagsIn);
      else if (h === H_NEG) alu.neg(vLo, vHi, size);
      else if (h === H_INC) alu.inc(vLo, vHi, size, flagsIn);
      else alu.dec(vLo, vHi, size, flagsIn);
      writeOperand(insn, regs, mem, dst, size, alu.aluOut.lo, alu.aluOut.hi);
      setFlags(regs, alu.aluOut.flags);
      break;
    case H_XCHG: {
      // memory (if any) is written first, then the register: the CPU updates both
      readOperand(insn, regs, mem, dst, size);
      const aLo = vLo, aHi = vHi;
      readOperand(insn, regs, mem, src, size);
      const bLo = vLo, bHi = vHi;
      if (src.kind === OperandKind.Mem) {
        writeOperand(insn, regs, mem, src, size, aLo, aHi);
        writeReg(regs, dst, size, bLo, bHi);
      } else {
        writeOperand(insn, regs, mem, dst, size, bLo, bHi);
        writeReg(regs, src, size, aLo, aHi);
      }
      break;
    }
    case H_CMPXCHG: {
      readOperand(insn, regs, mem, dst, size);
      const dLo = vLo, dHi = vHi;
      readOperand(insn, regs, mem, src, size);
      const sLo = vLo, sHi = vHi;
      const accLo = regs.get(0, size), accHi = size === 8 ? regs.getHi(0) : 0;
      alu.cmpxchg(accLo, accHi, dLo, dHi, sLo, sHi, size);
      const equal = (alu.aluOut.flags & FLAG_ZF) !== 0;
      const newAccLo = alu.aluOut.lo2, newAccHi = alu.aluOut.hi2, flags = alu.aluOut.flags;
      // the destination is always written (the CPU writes back the old value on a mismatch)
      writeOperand(insn, regs, mem, dst, size, alu.aluOut.lo, alu.aluOut.hi);
      if (!equal) regs.set(0, size, newAccLo, newAccHi);
      setFlags(regs, flags);
      break;
    }
    case H_BT: {
      let index: number;
      if (src.kind === OperandKind.Imm) {
        index = src.imm & (size * 8 - 1);
        readOperand(insn, regs, mem, dst, size);
      } else {
        // a register bit offset is signed and, on memory, selects the operand-sized unit holding it
        readOperand(insn, regs, mem, src, size);
        let off = size === 8 ? (vHi | 0) * TWO32 + vLo : size === 4 ? vLo | 0 : (vLo << 16) >> 16;
        if (dst.kind === OperandKind.Mem) {
          const bits = size * 8;
          const unit = Math.floor(off / bits);
          off -= unit * bits;
          const byteOff = unit * size;
          const hiPart = Math.floor(byteOff / TWO32);
          linearAddress(insn, regs, dst, byteOff - hiPart * TWO32, hiPart >>> 0);
          memRead(mem, eaLo, eaHi, size);
          const aLo = vLo, aHi = vHi, addrLo = eaLo, addrHi = eaHi;
          bitOp(sub, aLo, aHi, off, size, flagsIn);
          if (sub !== 0) memWrite(mem, addrLo, addrHi, size, alu.aluOut.lo, alu.aluOut.hi);
          setFlags(regs, alu.aluOut.flags);
          break;
        }
        index = off & (size * 8 - 1);
        readOperand(insn, regs, mem, dst, size);
      }
      bitOp(sub, vLo, vHi, index, size, flagsIn);
      if (sub !== 0) writeOperand(insn, regs, mem, dst, size, alu.aluOut.lo, alu.aluOut.hi);
      setFlags(regs, alu.aluOut.flags);
      break;
    }
    default:
      return EmuStatus.Unsupported;
  }
  advanceRip(insn, regs);
  return EmuStatus.Done;
}

function bitOp(kind: number, lo: number, hi: number, index: number, size: alu.OperandSize, flagsIn: number): void {
  switch (kind) {
    case 0: alu.bt(lo, hi, index, size, flagsIn); break;
    case 1: alu.bts(lo, hi, index, size, flagsIn); break;
    case 2: alu.btr(lo, hi, index, size, flagsIn); break;
    default: alu.btc(lo, hi, index, size, flagsIn); break;
  }
}

/** Adds `delta` (small, signed) to GPR n at the address size (32-bit zero-extends, 16-bit merges). */
function stepPointer(regs: EmuRegisters, n: number, addrSize: number, delta: number): void {
  const lo = regs.gpr[2 * n]! + delta;
  if (addrSize === 8) {
    const carry = lo >= TWO32 ? 1 : lo < 0 ? -1 : 0;
    regs.set(n, 8, lo >>> 0, (regs.gpr[2 * n + 1]! + carry) >>> 0);
  } else regs.set(n, addrSize, lo >>> 0);
}

/** MOVS STOS LODS CMPS SCAS: one element, then the REP bookkeeping. */
function stringOp(h: number, insn: DecodedInsn, regs: EmuRegisters, mem: EmuMemory): EmuStatus {
  const as = insn.addrSize;
  const rep = insn.lastRep !== 0;
  const RCX = 1;
  const RSI = 6;
  const RDI = 7;
  if (rep) {
    const zero = as === 8 ? (regs.gpr[2]! | regs.gpr[3]!) === 0 : regs.get(RCX, as) === 0;
    if (zero) {
      advanceRip(insn, regs);
      return EmuStatus.Done;
    }
  }
  const a = insn.ops[0]!;
  const b = insn.ops[1]!;
  const size = (h === H_STOS ? b.size : a.size) as alu.OperandSize;
  const step = (regs.rflags & FLAG_DF) !== 0 ? -size : size;
  let compares = false;
  switch (h) {
    case H_MOVS: // Y <- X
      readOperand(insn, regs, mem, b, size);
      writeOperand(insn, regs, mem, a, size, vLo, vHi);
      stepPointer(regs, RSI, as, step);
      stepPointer(regs, RDI, as, step);
      break;
    case H_STOS: // Y <- accumulator
      readOperand(insn, regs, mem, b, size);
      writeOperand(insn, regs, mem, a, size, vLo, vHi);
      stepPointer(regs, RDI, as, step);
      break;
    case H_LODS: // accumulator <- X
      readOperand(insn, regs, mem, b, size);
      writeReg(regs, a, size, vLo, vHi);
      stepPointer(regs, RSI, as, step);
      break;
    default: { // CMPS: flags of X - Y; SCAS: flags of accumulator - Y
      readOperand(insn, regs, mem, a, size);
      const aLo = vLo, aHi = vHi;
      readOperand(insn, regs, mem, b, size);
      alu.sub(aLo, aHi, vLo, vHi, size);
      setFlags(regs, alu.aluOut.flags);
      if (h === H_CMPS) stepPointer(regs, RSI, as, step);
      stepPointer(regs, RDI, as, step);
      compares = true;
    }
  }
  if (!rep) {
    advanceRip(insn, regs);
    return EmuStatus.Done;
  }
  stepPointer(regs, RCX, as, -1);
  const left = as === 8 ? (regs.gpr[2]! | regs.gpr[3]!) !== 0 : regs.get(RCX, as) !== 0;
  let more = left;
  if (more && compares) {
    // REPE (F3) stops on a difference, REPNE (F2) on a match
    const zf = (regs.rflags & FLAG_ZF) !== 0;
    more = insn.lastRep === 0xf3 ? zf : !zf;
  }
  if (!more) {
    advanceRip(insn, regs);
    return EmuStatus.Done;
  }
  return EmuStatus.Repeat;
}

/** Jcc / JMP rel: RIP = next RIP (+ rel if taken), truncated to the operand size. */
function branch(h: number, insn: DecodedInsn, regs: EmuRegisters): EmuStatus {
  const op = insn.ops[0]!;
  if (op.kind !== OperandKind.Rel || (insn.prefixes & Prefix.Lock) !== 0) return EmuStatus.Unsupported;
  const taken = h === H_JMP || evalCondition(SUBOP[insn.mnemonic]!, regs.rflags);
  advanceRip(insn, regs);
  if (!taken) return EmuStatus.Done;
  let lo = regs.ripLo + op.rel;
  let hi = regs.ripHi + (op.rel < 0 ? -1 : 0);
  if (lo >= TWO32) { lo -= TWO32; hi += 1; } else if (lo < 0) { lo += TWO32; hi -= 1; }
  if (op.size === 2) { lo &= 0xffff; hi = 0; } else if (op.size === 4) hi = 0;
  regs.ripLo = lo >>> 0;
  regs.ripHi = hi >>> 0;
  return EmuStatus.Done;
}
