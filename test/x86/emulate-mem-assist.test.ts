// The h_mem_assist vectors (shared/specs/libnvmm-tests.md §2, §3) run directly through
// x86/decoder + x86/emulate: a tiny fake CPU steps every instruction of each snippet (the register
// moves and branches too) with the emulator, against an in-memory MMIO page at 0x1000 and the code
// at 0x2000 (identity addresses). Plus focused cases for the rules the emulator must keep.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readCaseTable } from '../../src/common/nasm.js';
import { DecodeStatus, DecodedInsn, MNEMONICS, decode, type CpuMode } from '../../src/x86/decoder.js';
import { EmuRegisters, EmuStatus, emulate, type EmuMemory } from '../../src/x86/emulate.js';
import { FLAG_AF, FLAG_CF, FLAG_DF, FLAG_OF, FLAG_PF, FLAG_SF, FLAG_ZF } from '../../src/x86/flags.js';
import { assembleSnippet, guestImage, needsNasm } from '../helpers/nasm.js';

const MMIO = 0x1000;
const CODE = 0x2000;
const RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSI = 6, RDI = 7;

interface Access { write: boolean; addr: number; size: number }

/** The fake machine: an MMIO page at 0x1000 (logged), code at 0x2000, nothing else. */
class FakeCpu {
  readonly regs = new EmuRegisters();
  readonly mmio = new Uint8Array(4096);
  readonly code = new Uint8Array(4096);
  readonly log: Access[] = [];
  readonly insn = new DecodedInsn();
  /** Mnemonics executed, in order. */
  readonly trace: string[] = [];
  readonly mem: EmuMemory = {
    read: (lo, hi, data) => {
      const off = this.check(lo, hi, data.length, false);
      data.set(this.mmio.subarray(off, off + data.length));
    },
    write: (lo, hi, data) => {
      const off = this.check(lo, hi, data.length, true);
      this.mmio.set(data, off);
    },
  };

  constructor(readonly mode: CpuMode) {}

  private check(lo: number, hi: number, size: number, write: boolean): number {
    const off = lo - MMIO;
    if (hi !== 0 || off < 0 || off + size > 4096) throw new Error(`Out of page: ${hi.toString(16)}:${lo.toString(16)}`);
    this.log.push({ write, addr: lo, size });
    return off;
  }

  load(code: Uint8Array): void {
    this.code.fill(0);
    this.code.set(code);
    this.regs.ripLo = CODE;
    this.regs.ripHi = 0;
  }

  /** Steps until RDMSR (returned as the instruction count). Every other instruction goes through emulate(). */
  run(limit = 1000): number {
    for (let n = 0; n < limit; n++) {
      const off = this.regs.ripLo - CODE;
      decode(this.code, off, this.code.length, this.mode, this.insn);
      assert.equal(this.insn.status, DecodeStatus.Ok, `decode at ${this.regs.ripLo.toString(16)}`);
      const name = MNEMONICS[this.insn.mnemonic]!;
      this.trace.push(name);
      if (name === 'rdmsr') return n;
      const st = emulate(this.insn, this.regs, this.mem);
      assert.notEqual(st, EmuStatus.Unsupported, `'${name}' at ${this.regs.ripLo.toString(16)} unsupported`);
    }
    throw new Error('no RDMSR');
  }

  u64(gpa: number): bigint {
    return new DataView(this.mmio.buffer).getBigUint64(gpa - MMIO, true);
  }

  reg64(n: number): bigint {
    return BigInt(this.regs.gpr[2 * n]!) | (BigInt(this.regs.gpr[2 * n + 1]!) << 32n);
  }

  setReg64(n: number, v: bigint): void {
    this.regs.set(n, 8, Number(v & 0xffffffffn), Number((v >> 32n) & 0xffffffffn));
  }

  reset64(): void {
    this.regs.gpr.fill(0);
    this.regs.rflags = 0x2;
    this.mmio.fill(0);
    this.log.length = 0;
  }
}

const MEM64: readonly [string, bigint][] = [
  ['64bit test1 - MOV', 0x3004n],
  ['64bit test2 - OR', 0x16ffn],
  ['64bit test3 - AND', 0x1fc0n],
  ['64bit test4 - XOR', 0x10cfn],
  ['64bit test5 - Address Sizes', 0x1f00n],
  ['64bit test6 - DMO', 0xffabn],
  ['64bit test7 - STOS', 0x00123456n],
  ['64bit test8 - LODS', 0x12345678n],
  ['64bit test9 - MOVS', 0x12345678n],
  ['64bit test10 - MOVZXB', 0x78n],
  ['64bit test11 - MOVZXW', 0x5678n],
  ['64bit test12 - CMP', 1n],
  ['64bit test13 - SUB', 0x0000000f0000a0ffn],
  ['64bit test14 - TEST', 1n],
  ['64bit test15 - XCHG', 0x123456n],
  ['64bit test16 - XCHG', 0x123456n],
  ['64bit test17 - REP', 0x4n],
  ['64bit test18 - Sign Extension', 1n],
  ['64bit test19 - BT', 1n],
];

const MEM16: readonly [string, number, bigint][] = [
  ['16bit test1 - MOV single', 0x10f1, 0x023n],
  ['16bit test2 - MOV dual', 0x10f3, 0x123n],
  ['16bit test3 - MOV dual+disp', 0x10f1, 0x678n],
  ['16bit test4 - Mixed', 0x10f6, 0x1011n],
  ['16bit test5 - disp16-only', 0x1234, 0x12n],
  ['16bit test6 - XCHG', 0x1234, 0x1234n],
  ['16bit test7 - BT', 0x1234, 0x0001n],
];

test('h_mem_assist 64-bit cases 1-19 through the emulator', needsNasm, () => {
  const cases = readCaseTable(guestImage('libnvmm/mem-assist-64.asm'));
  assert.equal(cases.length, MEM64.length);
  const cpu = new FakeCpu(64);
  MEM64.forEach(([name, wanted], i) => {
    cpu.reset64();
    cpu.load(cases[i]!.code);
    cpu.run();
    assert.equal(cpu.u64(MMIO), wanted, name);
    assert.equal(cpu.reg64(RCX), 0xffffffffffffffffn, `${name}: TEST_END loads RCX`);
  });
});

test('64-bit case 9 (MOVS): one REP iteration per emulate call, two MMIO accesses each', needsNasm, () => {
  const cases = readCaseTable(guestImage('libnvmm/mem-assist-64.asm'));
  const cpu = new FakeCpu(64);
  cpu.reset64();
  cpu.load(cases[8]!.code);
  cpu.run();
  // 4 movsb + 2 movsw iterations, each re-executed from the same RIP
  assert.equal(cpu.trace.filter((m) => m === 'movs').length, 6);
  assert.equal(cpu.log.filter((a) => a.size === 1).length, 8);
  assert.equal(cpu.reg64(RSI), 0x1010n);
  assert.equal(cpu.reg64(RDI), 0x1008n);
});

test('64-bit case 17 (REP on MOV) writes once and leaves RCX; case 19 (BT) never writes the bit strings', needsNasm, () => {
  const cases = readCaseTable(guestImage('libnvmm/mem-assist-64.asm'));
  const cpu = new FakeCpu(64);
  cpu.reset64();
  // stop before TEST_END (mov rcx,-1; rdmsr = 7 + 2 bytes) to see RCX
  const c17 = cases[16]!.code;
  cpu.load(Uint8Array.from([...c17.subarray(0, c17.length - 9), 0x0f, 0x32]));
  cpu.run();
  assert.equal(cpu.reg64(RCX), 4n);
  assert.equal(cpu.log.filter((a) => a.write).length, 1);
  assert.equal(cpu.trace.filter((m) => m === 'mov').length, 3);

  cpu.reset64();
  cpu.load(cases[18]!.code);
  cpu.run();
  assert.equal(cpu.trace.filter((m) => m === 'bt').length, 9);
  // writes: the three set-up stores and the final result only
  assert.deepEqual(cpu.log.filter((a) => a.write).map((a) => a.addr), [0x1008, 0x1010, 0x1018, 0x1000]);
});

test('NetBSD 64-bit test17 - CMPS: repe cmpsq stops at the first difference with RCX = 1', needsNasm, () => {
  const code = assembleSnippet(`
    mov rax, 0x1000
    mov rbx, 0xdeadbeefcafe
    mov [rax + 0x00], rbx
    mov [rax + 0x08], rbx
    mov [rax + 0x20], rbx
    mov rbx, 0
    mov [rax + 0x28], rbx
    mov rsi, 0x1000
    mov rdi, 0x1020
    mov rcx, 3
    repe cmpsq
    mov [rax], rcx
    rdmsr`, 64);
  const cpu = new FakeCpu(64);
  cpu.reset64();
  cpu.load(code);
  cpu.run();
  assert.equal(cpu.u64(MMIO), 1n);
  assert.equal(cpu.reg64(RSI), 0x1010n);
  assert.equal(cpu.reg64(RDI), 0x1030n);
  assert.equal(cpu.regs.rflags & FLAG_ZF, 0);
});

test('h_mem_assist 16-bit cases 1-7 through the emulator (GPRs carry over)', needsNasm, () => {
  const cases = readCaseTable(guestImage('libnvmm/mem-assist-16.asm'));
  assert.equal(cases.length, MEM16.length);
  const cpu = new FakeCpu(16);
  cpu.regs.rflags = 0x2;
  cpu.setReg64(RDX, 0x600n); // the reset state
  MEM16.forEach(([name, gpa, wanted], i) => {
    cpu.mmio.fill(0);
    cpu.load(cases[i]!.code);
    cpu.run();
    assert.equal(cpu.u64(gpa), wanted, name);
  });
});

// ---- focused rules ----

/** Runs bytes (ending in rdmsr) in `mode` from a given register set-up. */
function runBytes(mode: CpuMode, src: string, setup: (cpu: FakeCpu) => void = () => {}): FakeCpu {
  const cpu = new FakeCpu(mode);
  cpu.reset64();
  setup(cpu);
  cpu.load(assembleSnippet(`${src}\n rdmsr`, mode));
  cpu.run();
  return cpu;
}

const STATUS = FLAG_CF | FLAG_PF | FLAG_AF | FLAG_ZF | FLAG_SF | FLAG_OF;

test('exact flags and write-back of the ALU family on MMIO', needsNasm, () => {
  // add byte [0x1000], 0x7f on 0x01: 0x80, OF SF AF
  let cpu = runBytes(64, 'mov byte [0x1000], 1\n add byte [0x1000], 0x7f');
  assert.equal(cpu.mmio[0], 0x80);
  assert.equal(cpu.regs.rflags & STATUS, FLAG_OF | FLAG_SF | FLAG_AF);
  // adc/sbb use CF; stc is not emulated, so make CF with a compare (1 - 2 borrows)
  cpu = runBytes(64, 'mov rbx, 1\n cmp rbx, 2\n mov qword [0x1000], 5\n adc qword [0x1000], 10\n sbb dword [0x1008], 0');
  assert.equal(cpu.u64(0x1000), 16n);
  assert.equal(cpu.u64(0x1008), 0n); // CF was cleared by the ADC
  // neg / not / inc / dec on memory
  cpu = runBytes(64, 'mov dword [0x1000], 1\n neg dword [0x1000]\n not word [0x1004]\n inc byte [0x1006]\n dec qword [0x1008]');
  assert.equal(cpu.u64(0x1000), 0x0001ffffffffffffn);
  assert.equal(cpu.u64(0x1008), 0xffffffffffffffffn);
  assert.equal(cpu.regs.rflags & STATUS, FLAG_SF | FLAG_PF | FLAG_AF | FLAG_CF); // DEC keeps NEG's CF
  // cmp with a register operand: reg - mem
  cpu = runBytes(64, 'mov dword [0x1000], 5\n mov ecx, 3\n cmp ecx, [0x1000]');
  assert.equal(cpu.regs.rflags & STATUS, FLAG_CF | FLAG_SF | FLAG_AF);
  // test with a register operand
  cpu = runBytes(64, 'mov word [0x1000], 0x8000\n mov dx, 0x8001\n test [0x1000], dx');
  assert.equal(cpu.regs.rflags & STATUS, FLAG_SF | FLAG_PF);
});

test('destination sizes: 32-bit zero-extends, 8/16-bit merge, high-byte registers, MOVSX/MOVSXD', needsNasm, () => {
  const cpu = runBytes(64, `
    mov qword [0x1000], -2
    mov rax, -1
    mov rbx, -1
    mov rcx, -1
    mov rdx, -1
    mov eax, [0x1000]
    mov bx, [0x1000]
    mov ch, [0x1000]
    movsx rdx, byte [0x1000]
    movsxd rsi, dword [0x1000]
    movsx di, byte [0x1000]
    movzx r8d, word [0x1000]`);
  assert.equal(cpu.reg64(RAX), 0xfffffffen);
  assert.equal(cpu.reg64(RBX), 0xfffffffffffffffen);
  assert.equal(cpu.reg64(RCX), 0xfffffffffffffeffn);
  assert.equal(cpu.reg64(RDX), 0xfffffffffffffffen);
  assert.equal(cpu.reg64(RSI), 0xfffffffffffffffen);
  assert.equal(cpu.reg64(RDI), 0xfffen);
  assert.equal(cpu.reg64(8), 0xfffen);
});

test('BTS/BTR/BTC write back; a register bit offset addresses the bit string (negative too)', needsNasm, () => {
  const cpu = runBytes(64, `
    mov rax, 0x1010
    bts dword [rax], 3
    mov rcx, 35
    bts dword [rax], ecx
    mov rcx, -1
    btc qword [rax], rcx
    btr word [rax], 3`);
  assert.equal(cpu.u64(0x1010), 0x0000000800000000n);
  assert.equal(cpu.u64(0x1008), 0x8000000000000000n);
  // each BT* reads then writes its unit; the negative offset went to 0x1008
  assert.deepEqual(cpu.log.map((a) => `${a.write ? 'w' : 'r'}${a.addr.toString(16)}/${a.size}`),
    ['r1010/4', 'w1010/4', 'r1014/4', 'w1014/4', 'r1008/8', 'w1008/8', 'r1010/2', 'w1010/2']);
  assert.equal(cpu.regs.rflags & FLAG_CF, FLAG_CF); // btr saw bit 3 set
});

test('XCHG and CMPXCHG update memory and registers', needsNasm, () => {
  let cpu = runBytes(64, 'mov dword [0x1000], 7\n mov eax, 7\n mov ebx, 9\n cmpxchg [0x1000], ebx');
  assert.equal(cpu.u64(0x1000), 9n);
  assert.equal(cpu.regs.rflags & FLAG_ZF, FLAG_ZF);
  cpu = runBytes(64, 'mov dword [0x1000], 5\n mov rax, -1\n mov ebx, 9\n cmpxchg [0x1000], ebx');
  assert.equal(cpu.u64(0x1000), 5n);
  assert.equal(cpu.reg64(RAX), 5n); // mismatch: EAX loaded, zero-extended
  assert.equal(cpu.log.filter((a) => a.write).length, 2); // the set-up store and the write-back
  cpu = runBytes(64, 'mov word [0x1000], 0x1234\n mov rdx, -1\n xchg dh, [0x1000]');
  assert.equal(cpu.mmio[0], 0xff);
  assert.equal(cpu.reg64(RDX), 0xffffffffffff34ffn);
});

test('string instructions: DF = 1, REP with RCX = 0, REPNE SCAS, address sizes', needsNasm, () => {
  let cpu = new FakeCpu(64);
  cpu.reset64();
  cpu.regs.rflags = 0x2 | FLAG_DF; // std is not emulated: start with DF = 1
  cpu.load(assembleSnippet(`
    mov dword [0x1010], 0x44332211
    mov rsi, 0x1013
    mov rdi, 0x1023
    mov rcx, 4
    rep movsb
    mov rcx, 0
    rep stosq
    mov al, 0x22
    mov rdi, 0x1013
    mov rcx, 10
    repne scasb
    rdmsr`, 64));
  cpu.run();
  assert.equal(cpu.u64(0x1020) & 0xffffffffn, 0x44332211n);
  assert.equal(cpu.reg64(RSI), 0x100fn);
  assert.equal(cpu.reg64(RCX), 7n); // scasb saw 0x44, 0x33, 0x22: stops after 3
  assert.equal(cpu.reg64(RDI), 0x1010n);
  assert.equal(cpu.regs.rflags & FLAG_ZF, FLAG_ZF);
  assert.equal(cpu.log.filter((a) => a.size === 8).length, 0); // rep stosq with RCX = 0 touched nothing

  // 32-bit address size in 64-bit mode: ESI is used and written zero-extended
  cpu = new FakeCpu(64);
  cpu.reset64();
  cpu.setReg64(RSI, 0xffffffff00001000n);
  cpu.load(assembleSnippet('mov word [0x1000], 0x55aa\n a32 lodsw\n rdmsr', 64));
  cpu.run();
  assert.equal(cpu.reg64(RSI), 0x1002n);
  assert.equal(cpu.reg64(RAX) & 0xffffn, 0x55aan);

  // 16-bit address size (real mode): only SI is used and changed
  cpu = new FakeCpu(16);
  cpu.reset64();
  cpu.setReg64(RSI, 0xabcd00001000n);
  cpu.setReg64(RCX, 0x1234500000002n);
  cpu.load(assembleSnippet('mov word [0x1000], 0x55aa\n mov di, 0x1010\n rep movsw\n rdmsr', 16));
  cpu.run();
  assert.equal(cpu.reg64(RSI), 0xabcd00001004n);
  assert.equal(cpu.reg64(RCX), 0x1234500000000n);
  assert.equal(cpu.u64(0x1010) & 0xffffn, 0x55aan);
});

test('unsupported instructions change nothing', () => {
  const cpu = new FakeCpu(64);
  cpu.reset64();
  const insn = new DecodedInsn();
  for (const bytes of [[0xfd], [0x0f, 0x01, 0xf8], [0x8e, 0x18], [0xe4, 0x10], [0x0f, 0x22, 0xd8]]) {
    decode(Uint8Array.from(bytes), 0, bytes.length, 64, insn);
    assert.equal(emulate(insn, cpu.regs, cpu.mem), EmuStatus.Unsupported, bytes.join(' '));
  }
  assert.equal(cpu.regs.ripLo, 0);
  assert.equal(cpu.log.length, 0);
});
