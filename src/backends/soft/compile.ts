/**
 * From the shared decoder's record (x86/decoder.ts DecodedInsn) to the soft CPU's Insn: one table
 * from mnemonic name to a builder that picks the handler (and a fast-path specialization where the
 * operands allow one) and fills the operand fields. Unknown mnemonics get a handler that exits with
 * `invalid` naming the instruction; undefined encodings raise #UD in the guest.
 */
import { DecodeStatus, MNEMONICS, OperandKind, OpMethod, Prefix, mnemonicId, type DecodedInsn, type Operand } from '../../x86/decoder.js';
import { RegClass } from '../../x86/registers.js';
import * as alu from '../../x86/alu.js';
import { IMM, Insn, MEM, NONE, type Handler } from './insn.js';
import * as I from './ops-int.js';
import * as S from './ops-sys.js';
import { SSE_BUILDERS } from './ops-sse.js';
import { X87_BUILDERS } from './ops-x87.js';
import { lockKind, lockedHandler } from './ops-lock.js';
import { S_CS, S_DS, S_ES, S_FS, S_GS, S_SS } from './cpu.js';

type Builder = (d: DecodedInsn, i: Insn) => Handler;

/** Maps decoder operand k into the Insn (memory fields, immediate) and returns its operand code. */
function opnd(d: DecodedInsn, k: number, i: Insn): number {
  if (k >= d.nOps) return NONE;
  const o: Operand = d.ops[k]!;
  switch (o.kind) {
    case OperandKind.Reg:
      return o.regClass === RegClass.Gpr8High ? 16 + o.reg : o.reg;
    case OperandKind.Mem:
      i.seg = o.seg; i.base = o.base; i.index = o.index; i.scale = o.scale;
      i.disp = o.disp | 0;
      i.dispHi = (o.spec & 0xff) === OpMethod.O ? o.dispHi | 0 : (o.disp | 0) >> 31;
      return MEM;
    case OperandKind.Imm:
      if (o.spec === (OpMethod.One | (1 << 8))) { i.imm = 1; i.immHi = 0; return IMM; }
      i.imm = o.imm | 0; i.immHi = o.immHi | 0;
      return IMM;
    case OperandKind.Rel:
      i.rel = o.rel | 0;
      return NONE;
    case OperandKind.Far:
      i.imm = o.imm | 0; i.imm2 = o.sel & 0xffff;
      return IMM;
    default:
      return NONE;
  }
}

/** The operand size: from the first GPR or memory operand with a size, else the decoder's. */
function sizeOf(d: DecodedInsn, k = 0): number {
  const o = d.ops[k];
  if (k < d.nOps && o && (o.kind === OperandKind.Reg || o.kind === OperandKind.Mem) && o.size >= 1 && o.size <= 8) return o.size;
  return d.opSize;
}

function two(d: DecodedInsn, i: Insn): void {
  i.size = sizeOf(d, 0);
  i.o0 = opnd(d, 0, i);
  i.o1 = opnd(d, 1, i);
}

const ALU_NAMES = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'];
const SHIFT_NAMES = ['rol', 'ror', 'rcl', 'rcr', 'shl', 'shr', 'sal', 'sar'];
const CC_NAMES = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];

const table = new Map<number, Builder>();
function def(names: string | string[], b: Builder): void {
  for (const n of typeof names === 'string' ? [names] : names) {
    const id = mnemonicId(n);
    // Spellings the decoder does not produce (objdump aliases) are simply not reachable.
    if (id >= 0) table.set(id, b);
  }
}

const isGpr = (d: DecodedInsn, k: number) => k < d.nOps && d.ops[k]!.kind === OperandKind.Reg && d.ops[k]!.regClass === RegClass.Gpr;
const regClass = (d: DecodedInsn, k: number) => (k < d.nOps && d.ops[k]!.kind === OperandKind.Reg ? d.ops[k]!.regClass : -1);

// ---- data movement ----
/** The control registers MOV CRn reaches; the others (CR1, CR5-CR7, CR9-CR15) are #UD at any CPL. */
const CONTROL_REGS = new Set([0, 2, 3, 4, 8]);

def('mov', (d, i) => {
  const c0 = regClass(d, 0), c1 = regClass(d, 1);
  // MOV to CS and MOV with a reserved control register are undefined encodings (#UD before the CPL check)
  if ((c0 === RegClass.Seg && d.ops[0]!.reg === S_CS) || (c0 === RegClass.Cr && !CONTROL_REGS.has(d.ops[0]!.reg)) ||
    (c1 === RegClass.Cr && !CONTROL_REGS.has(d.ops[1]!.reg))) { i.term = true; return S.hUd; }
  if (c0 === RegClass.Seg) { i.size = 2; i.o0 = d.ops[0]!.reg; i.o1 = opnd(d, 1, i); i.term = true; return S.hMovToSeg; }
  if (c1 === RegClass.Seg) { i.size = sizeOf(d, 0); i.o0 = opnd(d, 0, i); i.o1 = d.ops[1]!.reg; return S.hMovFromSeg; }
  if (c0 === RegClass.Cr) { i.o0 = d.ops[0]!.reg; i.o1 = d.ops[1]!.reg; i.term = true; return S.hMovToCr; }
  if (c1 === RegClass.Cr) { i.o0 = d.ops[0]!.reg; i.o1 = d.ops[1]!.reg; return S.hMovFromCr; }
  if (c0 === RegClass.Dr) { i.o0 = d.ops[0]!.reg; i.o1 = d.ops[1]!.reg; i.sub = 0; return S.hMovDr; }
  if (c1 === RegClass.Dr) { i.o0 = d.ops[0]!.reg; i.o1 = d.ops[1]!.reg; i.sub = 1; return S.hMovDr; }
  two(d, i);
  const big = i.size >= 4;
  if (big && isGpr(d, 0) && isGpr(d, 1)) return I.hMovRR;
  if (big && isGpr(d, 0) && i.o1 === MEM) return I.hLoad;
  if (big && i.o0 === MEM && isGpr(d, 1)) return I.hStore;
  if (i.o0 >= 0 && i.o1 === IMM) return I.hMovRI;
  return I.hMov;
});
def(['movzb', 'movzw', 'movsb', 'movsw', 'movsxd', 'movslq'], (d, i) => {
  two(d, i);
  const src = d.ops[1]!.size;
  const name = MNEMONICS[d.mnemonic]!;
  i.sub = name.startsWith('movz') ? src : -src;
  return I.hMovx;
});
def('lea', (d, i) => { two(d, i); return I.hLea; });
def('xchg', (d, i) => { two(d, i); return I.hXchg; });
def('nop', (_d, _i) => I.hNop);
def(['pause', 'lfence', 'mfence', 'sfence', 'prefetch', 'prefetchw', 'prefetchnta', 'prefetcht0', 'prefetcht1', 'prefetcht2',
  'clflush', 'clflushopt', 'clwb', 'endbr64', 'endbr32'], () => I.hNop);

// ---- ALU ----
def(ALU_NAMES, (d, i) => {
  two(d, i);
  i.sub = ALU_NAMES.indexOf(MNEMONICS[d.mnemonic]!);
  const fast = i.size >= 4 && isGpr(d, 0) && i.sub !== alu.ALU_ADC && i.sub !== alu.ALU_SBB;
  if (fast && isGpr(d, 1)) return I.hAluRR;
  if (fast && i.o1 === IMM) return I.hAluRI;
  return I.hAlu;
});
def('test', (d, i) => { two(d, i); return I.hTest; });
def(['inc', 'dec'], (d, i) => { two(d, i); i.sub = MNEMONICS[d.mnemonic] === 'inc' ? 0 : 1; return I.hIncDec; });
def('not', (d, i) => { two(d, i); return I.hNot; });
def('neg', (d, i) => { two(d, i); return I.hNeg; });
def(SHIFT_NAMES.filter((n) => n !== 'sal'), (d, i) => {
  two(d, i);
  i.sub = SHIFT_NAMES.indexOf(MNEMONICS[d.mnemonic]!);
  if (i.o1 === IMM) i.imm &= 0xff;
  return I.hShift;
});
def(['shld', 'shrd'], (d, i) => {
  i.size = sizeOf(d, 0);
  i.o0 = opnd(d, 0, i);
  i.o1 = opnd(d, 1, i);
  const k = d.ops[2]!;
  if (k.kind === OperandKind.Imm) { i.o2 = IMM; i.imm2 = k.imm & 0xff; } else i.o2 = 1;
  i.sub = MNEMONICS[d.mnemonic] === 'shld' ? 0 : 1;
  return I.hShd;
});
def(['mul', 'div', 'idiv'], (d, i) => {
  i.size = sizeOf(d, 0); i.o0 = opnd(d, 0, i);
  i.sub = ['mul', 'imul', 'div', 'idiv'].indexOf(MNEMONICS[d.mnemonic]!);
  return I.hMulDiv;
});
def('imul', (d, i) => {
  if (d.nOps === 1) { i.size = sizeOf(d, 0); i.o0 = opnd(d, 0, i); i.sub = 1; return I.hMulDiv; }
  i.size = sizeOf(d, 0);
  i.o0 = opnd(d, 0, i);
  i.o1 = opnd(d, 1, i);
  i.o2 = d.nOps > 2 ? opnd(d, 2, i) : NONE;
  return I.hImul2;
});
def(['bt', 'bts', 'btr', 'btc'], (d, i) => {
  two(d, i);
  i.sub = ['bt', 'bts', 'btr', 'btc'].indexOf(MNEMONICS[d.mnemonic]!);
  return I.hBt;
});
def(['bsf', 'bsr', 'tzcnt', 'lzcnt', 'popcnt'], (d, i) => {
  two(d, i);
  i.sub = ['bsf', 'bsr', 'tzcnt', 'lzcnt', 'popcnt'].indexOf(MNEMONICS[d.mnemonic]!);
  return I.hBitScan;
});
def('bswap', (d, i) => { two(d, i); return I.hBswap; });
def('xadd', (d, i) => { two(d, i); return I.hXadd; });
def('cmpxchg', (d, i) => { two(d, i); return I.hCmpxchg; });
def(['cmpxchg8b', 'cmpxchg16b'], (d, i) => { two(d, i); i.sub = MNEMONICS[d.mnemonic] === 'cmpxchg8b' ? 8 : 16; return I.hCmpxchg8b; });
def(['cbtw', 'cwtl', 'cltq'], (d, i) => { i.size = d.opSize; i.sub = 0; return I.hConvert; });
def(['cwtd', 'cltd', 'cqto'], (d, i) => { i.size = d.opSize; i.sub = 1; return I.hConvert; });
def(CC_NAMES.map((c) => `cmov${c}`), (d, i) => { two(d, i); i.sub = CC_NAMES.indexOf(MNEMONICS[d.mnemonic]!.slice(4)); return I.hCmov; });
def(CC_NAMES.map((c) => `set${c}`), (d, i) => { two(d, i); i.size = 1; i.sub = CC_NAMES.indexOf(MNEMONICS[d.mnemonic]!.slice(3)); return I.hSetcc; });
def(['clc', 'stc', 'cmc', 'cld', 'std'], (d, i) => { i.sub = ['clc', 'stc', 'cmc', 'cld', 'std'].indexOf(MNEMONICS[d.mnemonic]!); return I.hFlagOp; });
def('lahf', () => I.hLahf);
def(['aaa', 'aas', 'daa', 'das'], (d, i) => { i.sub = ['aaa', 'aas', 'daa', 'das'].indexOf(MNEMONICS[d.mnemonic]!); return I.hBcd; });
def(['aam', 'aad'], (d, i) => { i.sub = MNEMONICS[d.mnemonic] === 'aam' ? I.BCD_AAM : I.BCD_AAD; i.imm = d.ops[0]!.imm & 0xff; return I.hBcd; });
def('sahf', () => I.hSahf);
def('xlat', (d, i) => { i.seg = d.segment >= 0 ? d.segment : S_DS; return I.hXlat; });

// ---- control flow ----
def(CC_NAMES.map((c) => `j${c}`), (d, i) => {
  i.size = d.opSize; opnd(d, 0, i); i.sub = CC_NAMES.indexOf(MNEMONICS[d.mnemonic]!.slice(1)); i.term = true;
  return I.hJcc;
});
def('jmp', (d, i) => {
  i.term = true;
  i.size = d.opSize;
  if (d.ops[0]!.kind === OperandKind.Rel) { opnd(d, 0, i); return I.hJmpRel; }
  i.o0 = opnd(d, 0, i); i.size = sizeOf(d, 0);
  return I.hJmpInd;
});
def('call', (d, i) => {
  i.term = true;
  i.size = d.opSize;
  if (d.ops[0]!.kind === OperandKind.Rel) { opnd(d, 0, i); return I.hCallRel; }
  i.o0 = opnd(d, 0, i); i.size = sizeOf(d, 0);
  return I.hCallInd;
});
def('ret', (d, i) => { i.term = true; i.size = d.opSize; if (d.nOps) opnd(d, 0, i); else i.imm = 0; return I.hRet; });
def(['lret', 'lretw', 'lretq'], (d, i) => { i.term = true; i.size = d.opSize; if (d.nOps) opnd(d, 0, i); else i.imm = 0; return S.hFarRet; });
def(['loop', 'loope', 'loopne', 'jcxz', 'jecxz', 'jrcxz'], (d, i) => {
  i.term = true; i.size = d.opSize; opnd(d, 0, i);
  const n = MNEMONICS[d.mnemonic]!;
  i.sub = n === 'loop' ? 0 : n === 'loope' ? 1 : n === 'loopne' ? 2 : 3;
  return I.hLoop;
});
def(['ljmp', 'lcall'], (d, i) => {
  i.term = true;
  i.sub = MNEMONICS[d.mnemonic] === 'lcall' ? 1 : 0;
  i.o0 = opnd(d, 0, i);
  i.size = d.opSize;
  return S.hFarJmpCall;
});
def(['int', 'int3', 'into', 'int1'], (d, i) => {
  i.term = true;
  i.sub = ['int', 'int3', 'into', 'int1'].indexOf(MNEMONICS[d.mnemonic]!);
  if (d.nOps) opnd(d, 0, i);
  return S.hInt;
});
def(['iret', 'iretw', 'iretq'], (d, i) => { i.term = true; i.size = d.opSize; return S.hIret; });

// ---- stack ----
def('push', (d, i) => {
  const c0 = regClass(d, 0);
  i.size = d.opSize;
  if (c0 === RegClass.Seg) { i.o0 = d.ops[0]!.reg; return S.hPushSeg; }
  i.o0 = opnd(d, 0, i);
  if (i.o0 === MEM) i.size = sizeOf(d, 0);
  if (i.o0 >= 0 && i.size === 8) return I.hPushR64;
  return I.hPush;
});
def('pop', (d, i) => {
  const c0 = regClass(d, 0);
  i.size = d.opSize;
  if (c0 === RegClass.Seg) { i.o0 = d.ops[0]!.reg; i.term = true; return S.hPopSeg; }
  i.o0 = opnd(d, 0, i);
  return I.hPop;
});
def(['pusha', 'popa'], (d, i) => { i.size = d.opSize; return MNEMONICS[d.mnemonic] === 'pusha' ? I.hPusha : I.hPopa; });
def('bound', (d, i) => { i.size = d.opSize; i.o0 = d.ops[0]!.reg; opnd(d, 1, i); i.o1 = MEM; return I.hBound; });
def('leave', (d, i) => { i.size = d.opSize; return I.hLeave; });
def('enter', (d, i) => { i.size = d.opSize; i.imm = d.ops[0]!.imm & 0xffff; i.imm2 = d.ops[1]!.imm & 0xff; return I.hEnter; });
def('pushf', (d, i) => { i.size = d.opSize; return S.hPushf; });
def('popf', (d, i) => { i.size = d.opSize; i.term = true; return S.hPopf; });

// ---- strings ----
function str(sub: number): Builder {
  return (d, i) => {
    i.size = sizeOf(d, 0) || 1;
    for (let k = 0; k < d.nOps; k++) if (d.ops[k]!.kind === OperandKind.Mem) { i.size = d.ops[k]!.size; break; }
    i.asz = d.addrSize;
    i.seg = d.segment >= 0 ? d.segment : S_DS;
    i.sub = sub;
    i.rep = d.lastRep;
    if (i.rep) i.term = true;
    return I.hString;
  };
}
def('movs', str(0));
def('cmps', str(1));
def('stos', str(2));
def('lods', str(3));
def('scas', str(4));

// ---- I/O and exits ----
def(['in', 'out'], (d, i) => {
  i.term = true;
  const isIn = MNEMONICS[d.mnemonic] === 'in';
  i.sub = isIn ? 1 : 0;
  i.size = isIn ? d.ops[0]!.size : d.ops[1]!.size;
  i.asz = d.addrSize;
  i.o0 = opnd(d, 0, i);
  i.o1 = opnd(d, 1, i);
  return S.hInOut;
});
def(['ins', 'outs'], (d, i) => {
  i.term = true;
  const isIn = MNEMONICS[d.mnemonic] === 'ins';
  i.sub = isIn ? 1 : 0;
  const m = d.ops[isIn ? 0 : 1]!;
  i.size = m.size;
  i.asz = d.addrSize;
  i.seg = isIn ? S_ES : d.segment >= 0 ? d.segment : S_DS;
  i.rep = d.lastRep;
  return S.hInsOuts;
});
def('hlt', (_d, i) => { i.term = true; return S.hHlt; });
def('rdmsr', (_d, i) => { i.term = true; return S.hRdmsr; });
def('wrmsr', (_d, i) => { i.term = true; return S.hWrmsr; });
def('cpuid', (_d, i) => { i.term = true; return S.hCpuid; });
def(['rdrand', 'rdseed'], (d, i) => { i.size = sizeOf(d, 0); i.o0 = opnd(d, 0, i); return S.hRdrand; });
def(['rdtsc', 'rdtscp'], (d, i) => { i.sub = MNEMONICS[d.mnemonic] === 'rdtscp' ? 1 : 0; return S.hRdtsc; });

// ---- system ----
def(['cli', 'sti'], (d, i) => { i.sub = MNEMONICS[d.mnemonic] === 'cli' ? 0 : 1; i.term = true; return S.hCliSti; });
def(['lgdt', 'lidt', 'sgdt', 'sidt'], (d, i) => {
  i.sub = ['lgdt', 'lidt', 'sgdt', 'sidt'].indexOf(MNEMONICS[d.mnemonic]!);
  i.size = d.opSize; opnd(d, 0, i); i.o0 = MEM;
  return S.hDescTable;
});
def(['lldt', 'ltr', 'sldt', 'str'], (d, i) => {
  i.sub = ['lldt', 'ltr', 'sldt', 'str'].indexOf(MNEMONICS[d.mnemonic]!);
  i.size = sizeOf(d, 0); i.o0 = opnd(d, 0, i);
  return S.hLdtTr;
});
def(['lds', 'les', 'lss', 'lfs', 'lgs'], (d, i) => {
  two(d, i);
  i.size = d.opSize;
  i.sub = [S_DS, S_ES, S_SS, S_FS, S_GS][['lds', 'les', 'lss', 'lfs', 'lgs'].indexOf(MNEMONICS[d.mnemonic]!)]!;
  i.term = true;
  return S.hLoadFar;
});
def('clts', () => S.hClts);
def('invlpg', (d, i) => { opnd(d, 0, i); i.o0 = MEM; return S.hInvlpg; });
def(['wbinvd', 'invd', 'wbnoinvd'], () => S.hPrivNop);
def('lmsw', (d, i) => { two(d, i); i.term = true; return S.hLmsw; });
def('smsw', (d, i) => { two(d, i); return S.hSmsw; });
def(['verr', 'verw'], (d, i) => { two(d, i); i.sub = MNEMONICS[d.mnemonic] === 'verw' ? 1 : 0; return S.hVerify; });
def('swapgs', () => S.hSwapgs);
def('syscall', (_d, i) => { i.term = true; return S.hSyscall; });
def(['sysret', 'sysretl', 'sysretq'], (d, i) => { i.term = true; i.size = MNEMONICS[d.mnemonic] === 'sysretq' ? 8 : 4; return S.hSysret; });
def('sysenter', (_d, i) => { i.term = true; return S.hSysenter; });
def(['sysexit', 'sysexitl', 'sysexitq'], (d, i) => { i.term = true; i.size = MNEMONICS[d.mnemonic] === 'sysexitq' ? 8 : 4; return S.hSysexit; });
def(['ud2', 'ud0', 'ud1'], (_d, i) => { i.term = true; return S.hUd; });
def(['lar', 'lsl'], (d, i) => { two(d, i); i.size = d.opSize; i.sub = MNEMONICS[d.mnemonic] === 'lsl' ? 1 : 0; return S.hLarLsl; });
def('arpl', (d, i) => { two(d, i); return S.hArpl; });
def('rdpmc', (_d, i) => { i.term = true; return S.hRdpmc; });
def('rsm', (_d, i) => { i.term = true; return S.hUd; }); // #UD outside system-management mode (the soft CPU has none)
// hints that are NOPs on a CPU without the feature (they sit in the reserved-NOP space or are
// prefetches; RDSSP is a NOP while shadow stacks are off, and the CPU modelled has none)
def(['prefetchwt1', 'cldemote', 'rdsspd', 'rdsspq'], () => I.hNop);

/**
 * Instructions of features the CPU modelled does not advertise in CPUID (soft-backend.ts), by feature:
 * on such a CPU they raise #UD (the exception hardware raises for this CPU model), as do all VEX
 * encodings (no AVX, BMI, AMX...). test/soft/opcode-coverage.test.ts checks each feature is absent from
 * the CPUID the soft CPU presents, and docs/soft-cpu-opcodes.md lists them.
 */
export const NOT_IN_MODEL: Readonly<Record<string, readonly string[]>> = {
  'SSE3 (CPUID.1:ECX[0])': ['addsubpd', 'addsubps', 'haddpd', 'haddps', 'hsubpd', 'hsubps', 'movddup', 'movshdup', 'movsldup', 'lddqu'],
  'MONITOR (CPUID.1:ECX[3])': ['monitor', 'mwait'],
  'VMX (CPUID.1:ECX[5])': ['vmcall', 'vmlaunch', 'vmresume', 'vmxoff', 'vmptrld', 'vmptrst', 'vmclear', 'vmxon', 'vmread', 'vmwrite',
    'invept', 'invvpid', 'vmfunc'],
  'SMX (CPUID.1:ECX[6])': ['getsec'],
  'SSSE3 (CPUID.1:ECX[9])': ['pshufb', 'phaddw', 'phaddd', 'phaddsw', 'pmaddubsw', 'phsubw', 'phsubd', 'phsubsw', 'psignb', 'psignw',
    'psignd', 'pmulhrsw', 'pabsb', 'pabsw', 'pabsd', 'palignr'],
  'SSE4.1 (CPUID.1:ECX[19])': ['pblendvb', 'blendvps', 'blendvpd', 'ptest', 'pmovsxbw', 'pmovsxbd', 'pmovsxbq', 'pmovsxwd', 'pmovsxwq',
    'pmovsxdq', 'pmovzxbw', 'pmovzxbd', 'pmovzxbq', 'pmovzxwd', 'pmovzxwq', 'pmovzxdq', 'pmuldq', 'pcmpeqq', 'movntdqa', 'packusdw',
    'pminsb', 'pminsd', 'pminuw', 'pminud', 'pmaxsb', 'pmaxsd', 'pmaxuw', 'pmaxud', 'pmulld', 'phminposuw', 'roundps', 'roundpd',
    'roundss', 'roundsd', 'blendps', 'blendpd', 'pblendw', 'pextrb', 'pextrd', 'pextrq', 'extractps', 'pinsrb', 'insertps', 'pinsrd',
    'pinsrq', 'dpps', 'dppd', 'mpsadbw'],
  'SSE4.2 (CPUID.1:ECX[20])': ['pcmpgtq', 'pcmpestrm', 'pcmpestri', 'pcmpistrm', 'pcmpistri', 'crc32'],
  'MOVBE (CPUID.1:ECX[22])': ['movbe'],
  'PCLMULQDQ (CPUID.1:ECX[1])': ['pclmulqdq'],
  'AES (CPUID.1:ECX[25])': ['aesenc', 'aesenclast', 'aesdec', 'aesdeclast', 'aesimc', 'aeskeygenassist'],
  'XSAVE (CPUID.1:ECX[26])': ['xgetbv', 'xsetbv', 'xsave', 'xsave64', 'xrstor', 'xrstor64', 'xsaveopt', 'xsaveopt64', 'xsavec', 'xsavec64',
    'xsaves', 'xsaves64', 'xrstors', 'xrstors64'],
  'FSGSBASE (CPUID.7:EBX[0])': ['rdfsbase', 'rdgsbase', 'wrfsbase', 'wrgsbase'],
  'RTM (CPUID.7:EBX[11])': ['xbegin', 'xabort', 'xend', 'xtest'],
  'INVPCID (CPUID.7:EBX[10])': ['invpcid'],
  'ADX (CPUID.7:EBX[19])': ['adcx', 'adox'],
  'SGX (CPUID.7:EBX[2])': ['encls', 'enclu', 'enclv'],
  'SMAP (CPUID.7:EBX[20])': ['clac', 'stac'],
  'PT (CPUID.7:EBX[25])': ['ptwrite'],
  'SHA (CPUID.7:EBX[29])': ['sha1nexte', 'sha1msg1', 'sha1msg2', 'sha1rnds4', 'sha256rnds2', 'sha256msg1', 'sha256msg2'],
  'PKU (CPUID.7:ECX[3])': ['rdpkru', 'wrpkru'],
  'WAITPKG (CPUID.7:ECX[5])': ['tpause', 'umonitor', 'umwait'],
  'CET_SS (CPUID.7:ECX[7])': ['incsspd', 'incsspq', 'setssbsy', 'clrssbsy', 'wrssd', 'wrssq', 'wrussd', 'wrussq', 'saveprevssp', 'rstorssp'],
  'GFNI (CPUID.7:ECX[8])': ['gf2p8mulb', 'gf2p8affineqb', 'gf2p8affineinvqb'],
  'RDPID (CPUID.7:ECX[22])': ['rdpid'],
  'KL (CPUID.7:ECX[23])': ['loadiwkey', 'encodekey128', 'encodekey256', 'aesenc128kl', 'aesdec128kl', 'aesenc256kl', 'aesdec256kl',
    'aesencwide128kl', 'aesdecwide128kl', 'aesencwide256kl', 'aesdecwide256kl'],
  'MOVDIRI, MOVDIR64B (CPUID.7:ECX[27, 28])': ['movdiri', 'movdir64b'],
  'ENQCMD (CPUID.7:ECX[29])': ['enqcmd', 'enqcmds'],
  'SERIALIZE, TSXLDTRK, PCONFIG, UINTR, HRESET, WRMSRNS, MSRLIST, RAO-INT, TDX, SEV-SNP (CPUID.7 and later leaves)': [
    'serialize', 'xsusldtrk', 'xresldtrk', 'pconfig', 'uiret', 'testui', 'clui', 'stui', 'senduipi', 'hreset', 'wrmsrns', 'rdmsrlist',
    'wrmsrlist', 'aadd', 'aand', 'aor', 'axor', 'tdcall', 'seamret', 'seamops', 'seamcall', 'vmgexit', 'rmpquery', 'rmpadjust',
    'rmpupdate', 'psmash', 'pvalidate', 'rdpru'],
  'SVM (CPUID.80000001:ECX[2])': ['vmrun', 'vmmcall', 'vmload', 'vmsave', 'stgi', 'clgi', 'skinit', 'invlpga'],
  'SSE4A (CPUID.80000001:ECX[6])': ['extrq', 'insertq', 'movntss', 'movntsd'],
  '3DNOW (CPUID.80000001:EDX[31]), MONITORX, MCOMMIT, INVLPGB, CLZERO (AMD)': ['femms', 'monitorx', 'mwaitx', 'mcommit', 'invlpgb',
    'tlbsync', 'clzero', 'pfadd'],
};
/**
 * The instructions a LOCK prefix may precede, with a memory destination (SDM vol. 2A, LOCK);
 * anywhere else LOCK raises #UD. (AMD's LOCK MOV CR0, an alias of MOV CR8, needs CPUID
 * AltMovCr8, which the models do not advertise.)
 */
const LOCKABLE = new Set(['add', 'adc', 'and', 'btc', 'btr', 'bts', 'cmpxchg', 'cmpxchg8b', 'cmpxchg16b', 'dec', 'inc', 'neg', 'not', 'or',
  'sbb', 'sub', 'xor', 'xadd', 'xchg'].map(mnemonicId));
function lockAllowed(d: DecodedInsn): boolean {
  return d.nOps > 0 && d.ops[0]!.kind === OperandKind.Mem && LOCKABLE.has(d.mnemonic);
}

const XCHG = mnemonicId('xchg');

const NOT_IN_MODEL_IDS = new Set<number>();
for (const names of Object.values(NOT_IN_MODEL)) for (const n of names) { const id = mnemonicId(n); if (id >= 0) NOT_IN_MODEL_IDS.add(id); }

// ---- x87, MMX, SSE, SSE2 (ops-x87.ts, ops-sse.ts) ----
for (const [names, b] of [...SSE_BUILDERS, ...X87_BUILDERS]) def([...names], b);

/** Mnemonic ids the compile table knows (for tests and coverage reports). */
export const COMPILED_MNEMONICS: ReadonlySet<number> = new Set(table.keys());

/** Fills `i` from the decoded instruction and returns it. */
export function compileInsn(d: DecodedInsn, i: Insn): Insn {
  i.len = d.length | 0; // int32, as every Insn field (exec.ts Block)
  i.mnem = d.mnemonic;
  i.asz = d.addrSize;
  i.size = d.opSize;
  if (d.status !== DecodeStatus.Ok) {
    i.fn = S.hUd;
    i.term = true;
    return i;
  }
  if ((d.prefixes & Prefix.Lock) && !lockAllowed(d)) {
    i.fn = S.hUd;
    i.term = true;
    return i;
  }
  const b = table.get(d.mnemonic);
  if (!b && (d.vex || NOT_IN_MODEL_IDS.has(d.mnemonic))) {
    // a feature the CPU modelled does not have (see NOT_IN_MODEL): #UD
    i.fn = S.hUd;
    i.term = true;
    return i;
  }
  if (!b) {
    i.fn = S.hUnimplemented;
    i.term = true;
    return i;
  }
  i.fn = b(d, i);
  if (i.o0 === NONE && i.o1 === NONE && i.seg === 3 && d.segment >= 0) i.seg = d.segment;
  // Atomic across vCPUs (ops-lock.ts): LOCK, and XCHG with memory (locked without the prefix).
  if ((d.prefixes & Prefix.Lock) || (d.mnemonic === XCHG && (i.o0 === MEM || i.o1 === MEM))) {
    i.fn = lockedHandler(i.fn, lockKind(MNEMONICS[d.mnemonic]!, i));
  }
  return i;
}
