/** Hand vectors for the tricky parts of x86 decoding (checked against the SDM and objdump 2.40). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decode, DecodedInsn, DecodeStatus, InvalidReason, mnemonicId, OperandKind, type CpuMode,
} from '../../src/x86/decoder.js';
import { disassemble } from '../../src/x86/disasm.js';
import { RegClass, Seg } from '../../src/x86/registers.js';

function bytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.replace(/\s+/g, '').match(/../g)!.map((h) => parseInt(h, 16)));
}
function dec(hex: string, mode: CpuMode): DecodedInsn {
  const b = bytes(hex);
  return decode(b, 0, b.length, mode, new DecodedInsn());
}
function text(hex: string, mode: CpuMode, org = 0n): string {
  const lines = disassemble(bytes(hex), mode, org);
  return lines.map((l) => l.text.replace(/\s+/g, ' ')).join(' ; ');
}

const VECTORS: [CpuMode, string, string][] = [
  // prefix precedence: the last segment override wins (32-bit); 64-bit ignores CS/DS/ES/SS
  [32, '2e 3e 8b 00', 'cs mov %ds:(%eax),%eax'],
  [32, '64 65 8b 00', 'fs mov %gs:(%eax),%eax'],
  [64, '2e 3e 8b 00', 'cs ds mov (%rax),%eax'],
  [64, '64 8b 00', 'mov %fs:(%rax),%eax'],
  // F2/F3: the last one is the mandatory prefix
  [64, 'f2 f3 0f 10 c1', 'repnz movss %xmm1,%xmm0'],
  [64, 'f3 f2 0f 10 c1', 'repz movsd %xmm1,%xmm0'],
  [64, '66 f3 0f 58 c1', 'data16 addss %xmm1,%xmm0'],
  // 66 with REX.W: REX.W wins
  [64, '66 48 01 c0', 'data16 add %rax,%rax'],
  [64, '66 01 c0', 'add %ax,%ax'],
  // REX only counts immediately before the opcode
  [64, '48 66 01 c0', 'rex.W ; add %ax,%ax'],
  [64, '41 90', 'xchg %eax,%r8d'],
  [64, '40 88 e0', 'mov %spl,%al'],
  [64, '88 e0', 'mov %ah,%al'],
  [64, '48 04 01', 'rex.W add $0x1,%al'],
  // 16-bit addressing
  [16, '8b 00', 'mov (%bx,%si),%ax'],
  [16, '8b 46 fe', 'mov -0x2(%bp),%ax'],
  [16, '8b 06 34 12', 'mov 0x1234,%ax'],
  [16, '67 8b 04 24', 'mov (%esp),%eax'.replace('%eax', '%ax')],
  [32, '67 8b 05', 'mov (%di),%eax'],
  // moffs in each mode
  [16, 'a1 00 10', 'mov 0x1000,%ax'],
  [32, 'a1 44 33 22 11', 'mov 0x11223344,%eax'],
  [64, 'a1 88 77 66 55 44 33 22 11', 'movabs 0x1122334455667788,%eax'],
  [64, '67 a1 44 33 22 11', 'addr32 mov 0x11223344,%eax'],
  // RIP-relative
  [64, '8b 05 10 00 00 00', 'mov 0x10(%rip),%eax # 0x16'],
  [64, '67 8b 05 10 00 00 00', 'mov 0x10(%eip),%eax # 0x17'],
  // SIB forms
  [64, '8b 04 25 00 00 00 80', 'mov 0xffffffff80000000,%eax'],
  [32, '8b 04 25 00 00 00 80', 'mov -0x80000000(,%eiz,1),%eax'],
  [64, '8b 04 24', 'mov (%rsp),%eax'],
  [64, '8b 04 20', 'mov (%rax,%riz,1),%eax'],
  // immediates and branches
  [64, '48 83 c0 ff', 'add $0xffffffffffffffff,%rax'],
  [64, '48 b8 11 22 33 44 55 66 77 88', 'movabs $0x8877665544332211,%rax'],
  [64, 'eb fe', 'jmp 0x0'],
  [16, 'e9 fd ff', 'jmp 0x0'],
  [32, '66 e9 fc ff', 'jmpw 0x0'],
  [64, 'e8 00 00 00 00', 'call 0x5'],
  // C4/C5 are LES/LDS outside 64-bit mode unless mod == 11
  [32, 'c4 00', 'les (%eax),%eax'],
  [32, 'c5 00', 'lds (%eax),%eax'],
  // x87 and system instructions
  [64, 'dc e1', 'fsub %st,%st(1)'],
  [64, 'd9 e8', 'fld1'],
  [64, '9b df e0', 'fstsw %ax'],
  [64, '0f 01 f8', 'swapgs'],
  [64, '0f 20 c0', 'mov %cr0,%rax'],
  [32, '0f 22 d8', 'mov %eax,%cr3'],
  [64, 'f3 48 ab', 'rep stos %rax,%es:(%rdi)'],
  [64, 'f0 0f b1 0a', 'lock cmpxchg %ecx,(%rdx)'],
  [64, '0f 0b', 'ud2'],
  // VEX: gathers (VSIB; objdump marks equal destination/index/mask registers), FMA4 and vpermil2ps (is4;
  // VEX.W swaps the sources), CMPccXADD (VEX.L1: a (bad) vvvv operand), mask registers, predicates
  [64, 'c4 e2 7d 90 0c 88', 'vpgatherdd %ymm0,(%rax,%ymm1,4)/(bad),%ymm1/(bad)'],
  [64, 'c4 e2 7d 90 04 88', 'vpgatherdd %ymm0/(bad),(%rax,%ymm1,4),%ymm0/(bad)'],
  [64, 'c4 62 7d 90 0c 88', 'vpgatherdd %ymm0,(%rax,%ymm1,4),%ymm9'],
  [64, 'c4 e3 69 5c 00 10', 'vfmaddsubps %xmm1,(%rax),%xmm2,%xmm0'],
  [64, 'c4 e3 e9 5c 00 10', 'vfmaddsubps (%rax),%xmm1,%xmm2,%xmm0'],
  [64, 'c4 e3 79 48 00 3f', 'vpermil2ps $0xf,%xmm3,(%rax),%xmm0,%xmm0'],
  [64, 'c4 e2 79 e1 0c 88', 'cmpnoxadd %eax,%ecx,(%rax,%rcx,4)'],
  [64, 'c4 e2 7d e1 00', 'cmpnoxadd (bad),%eax,(%rax)'],
  [32, 'c4 e2 79 e1 c9', '(bad) ; leave'],
  [64, 'c5 f8 90 c1', 'kmovw %k1,%k0'],
  [64, 'c4 e1 f8 90 c1', 'kmovq %k1,%k0'],
  [64, 'c5 ec 41 c1', 'kandw %k1,%k2,%k0'],
  [64, 'c4 e3 79 30 c1 05', 'kshiftrb $0x5,%k1,%k0'],
  [64, 'c5 c8 c2 03 00', 'vcmpeqps (%rbx),%xmm6,%xmm0'],
  [64, 'c5 0a c2 5e b2 10', 'vcmpeq_osss -0x4e(%rsi),%xmm14,%xmm11'],
  [64, '66 0f 3a 44 c1 11', 'pclmulhqhqdq %xmm1,%xmm0'],
  [64, 'c4 e2 79 50 00', '{vex} vpdpbusd (%rax),%xmm0,%xmm0'],
  [64, 'c4 e2 7b 50 00', 'vpdpbssd (%rax),%xmm0,%xmm0'],
  [64, 'c4 e3 f9 ce 00 05', 'vgf2p8affineqb $0x5,(%rax),%xmm0,%xmm0'],
  [64, 'c5 f9 5a 00', 'vcvtpd2psx (%rax),%xmm0'],
  [32, 'c4 c1 3e 7f ce', '(bad) ; into'],
  // CET notrack, SEV-SNP, PREFETCHI, MPX with 67 in long mode, objdump's 66 on a prefix table, REP names
  [64, '3e ff d0', 'notrack call *%rax'],
  [64, 'f2 0f 01 ff', 'pvalidate'],
  [32, '66 0f 01 cf', '(bad) ; iret'],
  [64, '0f 18 3d 00 00 00 00', 'prefetchit0 0x0(%rip) # 0x7'],
  [64, '67 0f 1a 06', 'addr32 bndldx (%rsi),%bnd0'],
  [64, '66 48 0f bc c8', 'bsf %rax,%rcx'],
  [64, 'f3 f2 aa', 'rep repnz stos %al,%es:(%rdi)'],
  // register operands where only memory is defined: objdump shows the whole instruction as (bad) of the
  // opcode's length (LEA, LES/LDS in 16-bit code, LSS, far indirect CALL/JMP)
  [32, '8d c7 90 90 90 90 90 90', '(bad) ; (bad) ; nop ; nop ; nop ; nop ; nop ; nop'],
  [16, '3e 8d e4 90', 'ds (bad) ; in $0x90,%al'],
  [16, 'c4 c0 00 90', '(bad) ; rolb $0x90,(%bx,%si)'],
  [32, '0f b2 c0 00 90', '(bad) ; rolb $0x90,(%eax)'],
  [64, 'ff d8 90 90 90 90 90 90', '(bad) ; fcoms -0x6f6f6f70(%rax) ; nop'],
  [32, 'ff e8 90 90 90 90 90 90', '(bad) ; call 0x90909096 ; nop ; nop'],
  // x87: an undefined register form is a (bad) of two bytes (the ModRM counted), also for the aliases a
  // CPU executes (DD C8+i is FXCH)
  [32, 'da e4 90', '(bad) ; nop'],
  [64, 'dd c8 90', '(bad) ; nop'],
  [64, 'f3 df d1 90', 'repz (bad) ; nop'],
  // FWAIT: folded into an x87 instruction, also after and before prefixes; else a line of its own
  [32, '9b f0 dd d3 90', 'lock fst %st(3) ; nop'],
  [32, '66 9b d9 c0 90', 'data16 fld %st(0) ; nop'],
  [32, '66 9b 90', 'data16 fwait ; nop'],
  [32, '9b 66 dd 7d 00 90', 'data16 fstsw 0x0(%ebp) ; nop'],
  // a REX followed by a prefix, a REX or FWAIT: objdump ends a line of the prefixes so far (FWAIT not counted)
  [64, '49 45 90', 'rex.WB ; rex.RB xchg %eax,%r8d'],
  [64, '67 49 4e 45 90', 'addr32 rex.WB ; rex.WRX ; rex.RB xchg %eax,%r8d'],
  [64, '9b 4d 44 90', 'rex.WRB ; rex.WRB ; rex.R nop'],
  // VEX in 16-bit code (objdump decodes it; a real-mode CPU raises #UD)
  [16, 'c5 f0 58 00 90', 'vaddps (%bx,%si),%xmm1,%xmm0 ; nop'],
  // EVEX and XOP are not decoded, but objdump's (bad) for them is: its length, prefix names, decorations
  [64, '62 f0 f5 90 90 90 90', '(bad) ; lock cmc ; nop ; nop ; nop ; nop'],
  [64, '48 62 72 9b 90 90 90', 'rex.W (bad) ; fwait ; nop ; nop ; nop'],
  [64, '62 52 2e 84 19 90 90', '(bad) ; nop ; nop'],
  [64, '2e 62 f1 fe 85 18 90 90 90', 'cs (bad) {%k5}{z} ; nop ; nop ; nop'],
  [32, '62 d1 2e 84 19 90 90', '(bad) ; nop ; nop'],
  [32, '36 62 ec 90 90 90 90', 'ss (bad) ; in (%dx),%al ; nop ; nop ; nop ; nop'],
  [32, '8f e8 00 00 90', '(bad) ; nop'],
  [64, '47 8f eb cc 90', '(bad) ; jmp 0xffffffffffffffd0 ; nop'],
  [64, '47 8f fd 90 90', 'rex.RXB (bad) ; std ; nop ; nop'],
  // 16-bit code, addr32, a SIB without base and index: an absolute address
  [16, '67 33 3c 25 78 86 aa e0', 'addr32 xor 0xe0aa8678,%di'],
];

test('hand vectors disassemble as objdump does', () => {
  const bad: string[] = [];
  for (const [mode, hex, want] of VECTORS) {
    const got = text(hex, mode);
    if (got !== want) bad.push(`${mode} ${hex}: got '${got}' want '${want}'`);
  }
  assert.deepEqual(bad, []);
});

test('record: register, memory and immediate operands', () => {
  const i = dec('48 8b 44 8b 10', 64); // mov 0x10(%rbx,%rcx,4),%rax
  assert.equal(i.status, DecodeStatus.Ok);
  assert.equal(i.length, 5);
  assert.equal(i.mnemonic, mnemonicId('mov'));
  assert.equal(i.opSize, 8);
  assert.equal(i.nOps, 2);
  assert.equal(i.ops[0].kind, OperandKind.Reg);
  assert.equal(i.ops[0].regClass, RegClass.Gpr);
  assert.equal(i.ops[0].reg, 0);
  assert.equal(i.ops[1].kind, OperandKind.Mem);
  assert.equal(i.ops[1].base, 3);
  assert.equal(i.ops[1].index, 1);
  assert.equal(i.ops[1].scale, 4);
  assert.equal(i.ops[1].disp, 0x10);
  assert.equal(i.ops[1].seg, Seg.DS);
  const j = dec('c7 45 f8 78 56 34 12', 32); // movl $0x12345678,-0x8(%ebp)
  assert.equal(j.ops[0].seg, Seg.SS);
  assert.equal(j.ops[0].disp, -8);
  assert.equal(j.ops[1].kind, OperandKind.Imm);
  assert.equal(j.ops[1].imm, 0x12345678);
  assert.equal(j.ops[1].immSize, 4);
  const k = dec('48 c7 c0 ff ff ff ff', 64); // mov $-1,%rax: sign-extended to 64 bits
  assert.equal(k.ops[1].imm, 0xffffffff);
  assert.equal(k.ops[1].immHi, 0xffffffff);
  const r = dec('8b 05 00 01 00 00', 64);
  assert.equal(r.ops[1].base, 16); // RIP
});

test('record: VSIB, is4 and mask-register operands; gathers with equal registers are #UD on a CPU', () => {
  const g = dec('c4 62 7d 90 0c 88', 64); // vpgatherdd %ymm0,(%rax,%ymm1,4),%ymm9
  assert.equal(g.status, DecodeStatus.Ok);
  assert.equal(g.ops[1]!.kind, OperandKind.Mem);
  assert.equal(g.ops[1]!.index, 1);
  assert.equal(g.ops[1]!.vsib, 32);
  assert.equal(g.ops[0]!.reg, 9);
  assert.equal(g.ops[2]!.reg, 0);
  assert.equal(dec('c4 e2 7d 90 0c 88', 64).status, DecodeStatus.Invalid); // destination = index
  assert.equal(dec('c4 e2 7d 90 00', 64).status, DecodeStatus.Invalid); // no SIB byte
  const f = dec('c4 e3 e9 5c 00 10', 64); // FMA4, VEX.W1: the is4 register is the third operand
  assert.equal(f.length, 6);
  assert.equal(f.ops[2]!.regClass, RegClass.Xmm);
  assert.equal(f.ops[2]!.reg, 1);
  assert.equal(f.ops[3]!.kind, OperandKind.Mem);
  const k = dec('c5 ec 41 c1', 64); // kandw %k1,%k2,%k0
  assert.deepEqual([0, 1, 2].map((i) => [k.ops[i]!.regClass, k.ops[i]!.reg]),
    [[RegClass.Mask, 0], [RegClass.Mask, 2], [RegClass.Mask, 1]]);
});

test('invalid and truncated encodings are results, not exceptions', () => {
  assert.equal(dec('0f 0b', 64).status, DecodeStatus.Ok);
  const ud = dec('0f 04', 64);
  assert.equal(ud.status, DecodeStatus.Invalid);
  assert.equal(ud.invalidReason, InvalidReason.Opcode);
  assert.equal(dec('06', 64).status, DecodeStatus.Invalid); // push %es is invalid in long mode
  assert.equal(dec('0f 01 00', 64).status, DecodeStatus.Ok);
  assert.equal(dec('0f b2 c0', 32).status, DecodeStatus.Invalid); // lss needs memory
  const t = dec('48 8b 84 24', 64); // needs a disp32
  assert.equal(t.status, DecodeStatus.Truncated);
  assert.ok(t.needed > 4);
  const long = dec('66'.repeat(15) + '90', 64);
  assert.equal(long.status, DecodeStatus.Invalid);
  assert.equal(long.invalidReason, InvalidReason.TooLong);
});

test('CPU decoding: register forms of memory-only operands are #UD; reserved x87 aliases execute', () => {
  for (const [hex, mode] of [['8d c0', 32], ['62 c0', 32], ['62 00', 64], ['c4 c0', 16], ['ff d8', 64], ['ff e8', 32],
    ['8f c8', 32], ['8f e8 78 c0 00 00', 64], ['da e4', 32], ['df e1', 64], ['62 f1 f5 09 58 00', 64]] as const) {
    assert.equal(dec(hex, mode).status, DecodeStatus.Invalid, `${hex} (${mode}-bit)`);
  }
  assert.equal(dec('62 00', 32).mnemonic, mnemonicId('bound'));
  for (const [hex, name] of [['d9 d9', 'fstp'], ['dc d2', 'fcom'], ['dc da', 'fcomp'], ['dd c9', 'fxch'], ['de d3', 'fcomp'],
    ['df cc', 'fxch'], ['df d5', 'fstp'], ['df de', 'fstp']] as const) {
    const i = dec(hex, 32);
    assert.equal(i.status, DecodeStatus.Ok, hex);
    assert.equal(i.mnemonic, mnemonicId(name), hex);
    assert.equal(i.length, 2, hex);
  }
});
