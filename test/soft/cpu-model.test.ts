// The soft CPU's models (src/backends/soft/cpu-models.ts), read by a guest (guests/soft/cpu-model.asm):
// an AMD processor's CPUID with the hypervisor bit and tsvmm's own hypervisor leaf; every feature
// bit a guest sees is one the soft CPU implements (each instruction-defined feature is checked
// against the instructions the SDM/APM define for it, which must all be compiled, and against
// probes of their results); the MSRs and CR4 bits follow the model; the VMM's CPUID masks apply.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CPU_MODEL_NAMES, type CpuModelName } from '../../src/backends/soft/cpu-models.js';
import { COMPILED_MNEMONICS } from '../../src/backends/soft/compile.js';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { assistIo } from '../../src/nvmm/assist.js';
import type { Vcpu } from '../../src/nvmm/machine.js';
import { GPR, STATE, copyState } from '../../src/nvmm/state.js';
import {
  AMD_EDX_ALIASES, FEATURE, KNOWN_HYPERVISOR_SIGNATURES, LEAF, VENDOR_AMD, cpuidString, decodeSignature, type CpuidReg, type FeatureName,
} from '../../src/x86/cpuid.js';
import { mnemonicId } from '../../src/x86/decoder.js';
import { idtGuest, imageQword, outWord } from '../helpers/idt-guest.js';
import { withMachine } from '../helpers/machine.js';
import { guestImage, needsNasm } from '../helpers/nasm.js';

const ENTRY = { gp: 8, ud: 16, cpuid: 24, rdmsr: 32, wrmsr: 40, cr4: 48, probes: 56, fldAt: 64 } as const;
const STACK = 0x1ff0n;
const GP = 13;

interface Guest {
  vcpu: Vcpu;
  entry(which: keyof typeof ENTRY): number;
}

interface Outcome {
  /** 'halted', or the exit that ended the run (rdmsr, wrmsr, cpuid...). */
  end: string;
  /** Dwords the guest wrote to port 0xE9 (13 or 6 from the #GP or #UD handler). */
  reports: number[];
  rax: bigint;
  rbx: bigint;
  rcx: bigint;
  rdx: bigint;
}

function withGuest(cpu: CpuModelName, body: (g: Guest) => void): void {
  const image = guestImage('soft/cpu-model.asm');
  withMachine(SoftBackend.open({ cpu }), (machine) => {
    const vcpu = idtGuest(machine, image, [[GP, imageQword(image, ENTRY.gp)], [6, imageQword(image, ENTRY.ud)]]);
    body({ vcpu, entry: (which) => imageQword(image, ENTRY[which]) });
  });
}

/** Runs from `entry` with RAX/RCX/RDX set until HLT or an exit other than port I/O. */
function call(g: Guest, entry: number, regs: { rax?: bigint; rcx?: bigint; rdx?: bigint } = {}): Outcome {
  const s = g.vcpu.getState(STATE.GPRS);
  s.gprs[GPR.RIP] = BigInt(entry);
  s.gprs[GPR.RSP] = STACK;
  s.gprs[GPR.RAX] = regs.rax ?? 0n;
  s.gprs[GPR.RCX] = regs.rcx ?? 0n;
  s.gprs[GPR.RDX] = regs.rdx ?? 0n;
  g.vcpu.setState(STATE.GPRS);
  const reports: number[] = [];
  let end = 'more than 200 exits';
  for (let n = 0; n < 200; n++) {
    const exit = g.vcpu.run();
    if (exit.kind === 'io' && exit.port === 0xe9) {
      assistIo(g.vcpu, (io) => reports.push(outWord(io)));
      continue;
    }
    end = exit.kind;
    break;
  }
  const r = g.vcpu.getState(STATE.GPRS).gprs;
  return { end, reports, rax: r[GPR.RAX]!, rbx: r[GPR.RBX]!, rcx: r[GPR.RCX]!, rdx: r[GPR.RDX]! };
}

type Regs = Record<CpuidReg, number>;

function cpuid(g: Guest, leaf: number, subleaf = 0): Regs {
  const o = call(g, g.entry('cpuid'), { rax: BigInt(leaf), rcx: BigInt(subleaf) });
  assert.equal(o.end, 'halted', `CPUID 0x${leaf.toString(16)}`);
  return { eax: Number(o.rax & 0xffffffffn), ebx: Number(o.rbx & 0xffffffffn), ecx: Number(o.rcx & 0xffffffffn), edx: Number(o.rdx & 0xffffffffn) };
}

function rdmsr(g: Guest, msr: number): Outcome {
  return call(g, g.entry('rdmsr'), { rcx: BigInt(msr) });
}

function wrmsr(g: Guest, msr: number, value: bigint): Outcome {
  return call(g, g.entry('wrmsr'), { rcx: BigInt(msr), rax: value & 0xffffffffn, rdx: value >> 32n });
}

/** The value RDMSR returned, or how it ended ('#GP', 'rdmsr' for an exit to the VMM). */
function read(g: Guest, msr: number): bigint | string {
  const o = rdmsr(g, msr);
  if (o.reports[0] === GP) return '#GP';
  return o.end === 'halted' ? ((o.rdx & 0xffffffffn) << 32n) | (o.rax & 0xffffffffn) : o.end;
}

/** 'ok' for a WRMSR that completed, '#GP', or the exit ('wrmsr'). */
function write(g: Guest, msr: number, value: bigint): string {
  const o = wrmsr(g, msr, value);
  if (o.reports[0] === GP) return '#GP';
  return o.end === 'halted' ? 'ok' : o.end;
}

const FEATURE_LEAVES: readonly [number, CpuidReg][] = [
  [1, 'ecx'], [1, 'edx'], [7, 'ebx'], [7, 'ecx'], [7, 'edx'], [0x80000001, 'ecx'], [0x80000001, 'edx'], [0x80000007, 'edx'], [0x80000008, 'ebx'],
];

/** The feature names whose bits the guest sees. */
function advertised(g: Guest): FeatureName[] {
  const names: FeatureName[] = [];
  for (const [leaf, reg] of FEATURE_LEAVES) {
    const v = cpuid(g, leaf)[reg];
    for (let bit = 0; bit < 32; bit++) {
      if (!((v >>> bit) & 1)) continue;
      // 0x80000001 EDX repeats leaf 1 EDX on AMD: those bits are checked there.
      if (leaf === 0x80000001 && reg === 'edx' && (AMD_EDX_ALIASES >>> bit) & 1) continue;
      const name = (Object.keys(FEATURE) as FeatureName[]).find((n) => FEATURE[n].leaf === leaf && FEATURE[n].reg === reg && FEATURE[n].bit === bit);
      assert.ok(name, `CPUID 0x${leaf.toString(16)} ${reg} bit ${bit} is advertised but has no name in x86/cpuid.ts`);
      names.push(name);
    }
  }
  return names;
}

const CC = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];
/** SSE's 64-bit integer instructions on MMX registers, which AMD lists again as MMXEXT. */
const SSE_MMX = ['pavgb', 'pavgw', 'pextrw', 'pinsrw', 'pmaxsw', 'pmaxub', 'pminsw', 'pminub', 'pmovmskb', 'pmulhuw', 'psadbw', 'pshufw',
  'maskmovq', 'movntq', 'prefetchnta', 'prefetcht0', 'prefetcht1', 'prefetcht2', 'sfence'];

/**
 * How each feature a model may advertise is implemented: the instructions the SDM/APM define for
 * it (decoder spellings; every one must be compiled by the soft CPU), or for a feature that is
 * not an instruction, what checks it. A bit with no entry here fails the test.
 */
const IMPLEMENTED: Partial<Record<FeatureName, { insns: readonly string[] } | { checked: string }>> = {
  FPU: { insns: ['f2xm1', 'fabs', 'fadd', 'faddp', 'fadds', 'faddl', 'fiadds', 'fiaddl', 'fbld', 'fbstp', 'fchs', 'fnclex', 'fcom', 'fcomp',
    'fcompp', 'fcos', 'fdecstp', 'fdiv', 'fdivp', 'fdivr', 'fdivrp', 'fidivs', 'fidivrs', 'ffree', 'ficoms', 'ficomps', 'filds', 'fildl',
    'fildll', 'fimuls', 'fincstp', 'fninit', 'fists', 'fistps', 'fistpll', 'fisubs', 'fisubrs', 'fld', 'fld1', 'fldcw', 'fldenv', 'fldl2e',
    'fldl2t', 'fldlg2', 'fldln2', 'fldpi', 'fldz', 'fldt', 'fmul', 'fmulp', 'fnop', 'fpatan', 'fprem', 'fprem1', 'fptan', 'frndint',
    'frstor', 'fnsave', 'fscale', 'fsin', 'fsincos', 'fsqrt', 'fst', 'fstp', 'fstpt', 'fnstcw', 'fnstenv', 'fnstsw', 'fsub', 'fsubp',
    'fsubr', 'fsubrp', 'ftst', 'fucom', 'fucomp', 'fucompp', 'fwait', 'fxam', 'fxch', 'fxtract', 'fyl2x', 'fyl2xp1'] },
  PSE: { checked: 'x86/page-walk.ts (4 MiB pages), test/x86/page-walk.test.ts' },
  TSC: { insns: ['rdtsc'] },
  MSR: { insns: ['rdmsr', 'wrmsr'] },
  PAE: { checked: 'x86/page-walk.ts (PAE and 4-level paging), test/x86/page-walk.test.ts' },
  CX8: { insns: ['cmpxchg8b'] },
  SEP: { insns: ['sysenter', 'sysexit'] },
  MTRR: { checked: 'the MTRR MSRs (MTRRcap, MTRRdefType, the variable and fixed ranges): below' },
  PGE: { checked: 'global TLB entries kept across MOV CR3 (soft cpu.ts flushTlb), test/soft/system.test.ts boots with CR4.PGE' },
  CMOV: { insns: [...CC.map((c) => `cmov${c}`), 'fcmovb', 'fcmove', 'fcmovbe', 'fcmovu', 'fcmovnb', 'fcmovne', 'fcmovnbe', 'fcmovnu', 'fcomi', 'fcomip', 'fucomi', 'fucomip'] },
  PAT: { checked: 'IA32_PAT: below' },
  PSE36: { checked: 'x86/page-walk.ts (PSE-36 address bits), test/x86/page-walk.test.ts' },
  CLFLUSH: { insns: ['clflush'] },
  MMX: { insns: ['emms', 'movd', 'movq', 'packssdw', 'packsswb', 'packuswb', 'paddb', 'paddw', 'paddd', 'paddsb', 'paddsw', 'paddusb', 'paddusw',
    'pand', 'pandn', 'pcmpeqb', 'pcmpeqw', 'pcmpeqd', 'pcmpgtb', 'pcmpgtw', 'pcmpgtd', 'pmaddwd', 'pmulhw', 'pmullw', 'por', 'pslld', 'psllq',
    'psllw', 'psrad', 'psraw', 'psrld', 'psrlq', 'psrlw', 'psubb', 'psubw', 'psubd', 'psubsb', 'psubsw', 'psubusb', 'psubusw', 'punpckhbw',
    'punpckhwd', 'punpckhdq', 'punpcklbw', 'punpcklwd', 'punpckldq', 'pxor'] },
  FXSR: { insns: ['fxsave', 'fxrstor', 'fxsave64', 'fxrstor64'] },
  SSE: { insns: ['addps', 'addss', 'andnps', 'andps', 'cmpps', 'cmpss', 'comiss', 'cvtpi2ps', 'cvtps2pi', 'cvtsi2ss', 'cvtss2si', 'cvttps2pi',
    'cvttss2si', 'divps', 'divss', 'ldmxcsr', 'maxps', 'maxss', 'minps', 'minss', 'movaps', 'movhlps', 'movhps', 'movlhps', 'movlps',
    'movmskps', 'movntps', 'movss', 'movups', 'mulps', 'mulss', 'orps', 'rcpps', 'rcpss', 'rsqrtps', 'rsqrtss', 'shufps', 'sqrtps', 'sqrtss',
    'stmxcsr', 'subps', 'subss', 'ucomiss', 'unpckhps', 'unpcklps', 'xorps', ...SSE_MMX] },
  SSE2: { insns: ['addpd', 'addsd', 'andnpd', 'andpd', 'cmppd', 'cmpsd', 'comisd', 'cvtdq2pd', 'cvtdq2ps', 'cvtpd2dq', 'cvtpd2pi', 'cvtpd2ps',
    'cvtpi2pd', 'cvtps2dq', 'cvtps2pd', 'cvtsd2si', 'cvtsd2ss', 'cvtsi2sd', 'cvtss2sd', 'cvttpd2dq', 'cvttpd2pi', 'cvttps2dq', 'cvttsd2si',
    'divpd', 'divsd', 'lfence', 'maskmovdqu', 'maxpd', 'maxsd', 'mfence', 'minpd', 'minsd', 'movapd', 'movdq2q', 'movdqa', 'movdqu', 'movhpd',
    'movlpd', 'movmskpd', 'movntdq', 'movnti', 'movntpd', 'movq2dq', 'movsd', 'movupd', 'mulpd', 'mulsd', 'orpd', 'paddq', 'pause',
    'pmuludq', 'pshufd', 'pshufhw', 'pshuflw', 'pslldq', 'psrldq', 'psubq', 'punpckhqdq', 'punpcklqdq', 'shufpd', 'sqrtpd', 'sqrtsd',
    'subpd', 'subsd', 'ucomisd', 'unpckhpd', 'unpcklpd', 'xorpd'] },
  CX16: { insns: ['cmpxchg16b'] },
  POPCNT: { insns: ['popcnt'] },
  RDRAND: { insns: ['rdrand'] },
  HYPERVISOR: { checked: 'leaf 0x40000000: below' },
  SMEP: { checked: 'x86/page-walk.ts (test/x86/page-walk.test.ts); MOV CR4 accepts CR4.SMEP: below' },
  RDSEED: { insns: ['rdseed'] },
  CLFLUSHOPT: { insns: ['clflushopt'] },
  CLWB: { insns: ['clwb'] },
  SPEC_CTRL: { checked: 'IA32_SPEC_CTRL.IBRS and IA32_PRED_CMD: test/soft/spec-msrs.test.ts' },
  INTEL_STIBP: { checked: 'IA32_SPEC_CTRL.STIBP: test/soft/spec-msrs.test.ts' },
  SPEC_CTRL_SSBD: { checked: 'IA32_SPEC_CTRL.SSBD: test/soft/spec-msrs.test.ts' },
  ARCH_CAPABILITIES: { checked: 'IA32_ARCH_CAPABILITIES: test/soft/spec-msrs.test.ts' },
  LAHF_LM: { insns: ['lahf', 'sahf'] },
  ABM: { insns: ['lzcnt', 'popcnt'] },
  '3DNOWPREFETCH': { insns: ['prefetch', 'prefetchw'] },
  SYSCALL: { insns: ['syscall', 'sysret', 'sysretq'] },
  NX: { checked: 'EFER.NXE and the XD bit: x86/page-walk.ts, test/x86/page-walk.test.ts' },
  MMXEXT: { insns: SSE_MMX },
  PDPE1GB: { checked: 'x86/page-walk.ts (1 GiB pages) with the model\'s walker: below' },
  RDTSCP: { insns: ['rdtscp'] },
  LM: { insns: ['swapgs', 'cltq', 'cqto', 'movslq', 'sysretq'] },
  CONSTANT_TSC: { checked: 'the TSC is the host\'s monotonic clock in nanoseconds (cpu.ts tsc())' },
  XSAVEERPTR: { checked: 'FXSAVE stores FIP with no x87 exception pending: the probes below' },
  WBNOINVD: { insns: ['wbnoinvd'] },
};

test('CPU models: AuthenticAMD family 0xF model 0x6B, the hypervisor bit, tsvmm\'s hypervisor leaf (soft)', needsNasm, () => {
  for (const model of CPU_MODEL_NAMES) {
    withGuest(model, (g) => {
      const l0 = cpuid(g, LEAF.VENDOR);
      assert.equal(cpuidString(l0.ebx, l0.edx, l0.ecx), VENDOR_AMD, model);
      assert.equal(l0.eax, 7, `${model}: highest basic leaf`);
      const l1 = cpuid(g, LEAF.FEATURES);
      assert.deepEqual(decodeSignature(l1.eax), { family: 0xf, model: 0x6b, stepping: 1 }, model);
      assert.equal(l1.ecx >>> 31, 1, `${model}: CPUID.1:ECX[31], the hypervisor bit`);
      assert.equal((l1.ebx >>> 8) & 0xff, 8, `${model}: CLFLUSH line size, 8 quadwords`);
      const hv = cpuid(g, LEAF.HYPERVISOR);
      const signature = cpuidString(hv.ebx, hv.ecx, hv.edx);
      assert.equal(signature, 'TSVMMTSVMM\0\0', model);
      assert.ok(!KNOWN_HYPERVISOR_SIGNATURES.includes(signature), `${model}: a signature Linux would take for another hypervisor`);
      assert.equal(hv.eax, LEAF.HYPERVISOR, `${model}: highest hypervisor leaf`);
      assert.equal(cpuid(g, LEAF.EXT_MAX).eax, 0x80000008, model);
      const e1 = cpuid(g, LEAF.EXT_FEATURES1);
      assert.equal(e1.eax, l1.eax, `${model}: 0x80000001 EAX repeats the signature (AMD)`);
      assert.equal(e1.edx & AMD_EDX_ALIASES, l1.edx & AMD_EDX_ALIASES, `${model}: 0x80000001 EDX mirrors leaf 1 EDX (AMD)`);
      const brand = [0, 1, 2].map((k) => cpuid(g, LEAF.BRAND + k)).flatMap((r) => [r.eax, r.ebx, r.ecx, r.edx]);
      assert.equal(cpuidString(...brand).replace(/\0+$/, ''), `tsvmm soft CPU (${model})`);
      assert.equal(cpuid(g, LEAF.ADDRESS_SIZES).eax & 0xffff, 0x3034, `${model}: 52 physical, 48 linear address bits`);
      // Beyond the highest leaf of each range, and leaf 7's missing subleaf: zeros, as AMD answers.
      for (const [leaf, sub] of [[8, 0], [0xd, 0], [0x40000001, 0], [0x40000100, 0], [0x80000009, 0], [0xc0000000, 0], [7, 1]] as const) {
        assert.deepEqual(cpuid(g, leaf, sub), { eax: 0, ebx: 0, ecx: 0, edx: 0 }, `${model}: leaf 0x${leaf.toString(16)}.${sub}`);
      }
    });
  }
});

test('CPU models advertise only features the soft CPU implements', needsNasm, () => {
  const seen = new Map<CpuModelName, FeatureName[]>();
  for (const model of CPU_MODEL_NAMES) {
    withGuest(model, (g) => {
      const names = advertised(g);
      seen.set(model, names);
      for (const name of names) {
        const how = IMPLEMENTED[name];
        assert.ok(how, `${model} advertises ${name}, which the soft CPU is not known to implement`);
        if ('insns' in how) {
          assert.deepEqual(how.insns.filter((m) => mnemonicId(m) < 0), [], `${name}: names the decoder does not use`);
          const missing = how.insns.filter((m) => !COMPILED_MNEMONICS.has(mnemonicId(m)));
          assert.deepEqual(missing, [], `${model} advertises ${name} but the soft CPU lacks these of its instructions`);
        }
      }
    });
  }
  const qemu64 = seen.get('qemu64')!, max = seen.get('max')!;
  assert.deepEqual(qemu64.filter((n) => !max.includes(n)), [], 'max has everything qemu64 has');
  for (const n of ['PNI', 'SSSE3', 'MONITOR', 'XSAVE', 'AVX', 'APIC', 'MCE', 'SVM', 'FSGSBASE', 'SMAP', 'BMI1'] as const) {
    assert.ok(!max.includes(n), `max advertises ${n}`);
  }
});

test('the features max advertises give their architectural results (soft)', needsNasm, () => {
  withGuest('max', (g) => {
    const o = call(g, g.entry('probes'));
    assert.equal(o.end, 'halted');
    const fip = g.entry('fldAt');
    assert.deepEqual(o.reports, [
      17, // POPCNT
      63, // LZCNT of 1 (BSR would give 0)
      0x120, // LZCNT of 0: 32, CF
      0x1234, // RDTSCP: IA32_TSC_AUX
      1, 3, 4, // CMPXCHG16B stored RCX:RBX, ZF
      0xd7, // LAHF after SAHF 0xD5
      0xcac4e, // CLFLUSH, CLFLUSHOPT, CLWB, PREFETCH, PREFETCHW, WBNOINVD ran
      0x04030201, 0x01020304, // PMINUB
      0x03040102, // PSHUFW 0x1B (low words of the reversed quadword)
      fip, // FXSAVE's FIP: the FLD1, with no exception pending (XSAVEERPTR)
      0x600d,
    ]);
  });
});

test('MSRs follow the model: AMD\'s answered as KVM answers them, the others by feature (soft)', needsNasm, () => {
  for (const model of CPU_MODEL_NAMES) {
    withGuest(model, (g) => {
      const m = (what: string) => `${model}: ${what}`;
      // Read by Linux on every AMD processor: SYSCFG (with MTRRs), INT_PENDING_MSG (erratum 400),
      // HWCR and DE_CFG (set_bit of FFDIS and LFENCE_SERIALIZE), the patch level.
      assert.equal(read(g, 0xc0010010), 0n, m('SYSCFG'));
      assert.equal(write(g, 0xc0010010, 0n), '#GP', m('SYSCFG is read-only'));
      assert.equal(read(g, 0xc0010055), 0n, m('INT_PENDING_MSG: no C1E'));
      assert.equal(read(g, 0xc0010015), 0n, m('HWCR'));
      assert.equal(write(g, 0xc0010015, 0x40n), 'ok', m('HWCR.FFDIS is ignored'));
      assert.equal(read(g, 0xc0010015), 0n, m('HWCR after FFDIS'));
      assert.equal(write(g, 0xc0010015, 1n << 18n), 'ok', m('HWCR.McStatusWrEn'));
      assert.equal(read(g, 0xc0010015), 1n << 18n, m('HWCR keeps McStatusWrEn'));
      assert.equal(write(g, 0xc0010015, 1n), '#GP', m('HWCR.SmmLock'));
      assert.equal(read(g, 0xc0011029), 2n, m('DE_CFG: LFENCE serializes'));
      assert.equal(write(g, 0xc0011029, 2n), 'ok', m('DE_CFG rewritten'));
      assert.equal(write(g, 0xc0011029, 0n), '#GP', m('DE_CFG changed'));
      assert.equal(read(g, 0x8b), 0n, m('PATCH_LEVEL'));
      assert.equal(write(g, 0x8b, 5n), 'ok', m('PATCH_LEVEL write dropped'));
      // No PMU: the K7 counters read 0 and drop writes (Linux: "PMU not available due to virtualization").
      for (let msr = 0xc0010000; msr <= 0xc0010007; msr++) assert.equal(read(g, msr), 0n, m(`K7 perf MSR 0x${msr.toString(16)}`));
      assert.equal(write(g, 0xc0010004, 0xffffn), 'ok', m('PerfCtr0 write'));
      assert.equal(read(g, 0xc0010004), 0n, m('PerfCtr0 after a write'));
      // MTRR and PAT are advertised by both models.
      assert.equal(read(g, 0xfe), 0x508n, m('MTRRcap'));
      assert.equal(write(g, 0x2ff, 0xc06n), 'ok', m('MTRRdefType'));
      assert.equal(read(g, 0x2ff), 0xc06n, m('MTRRdefType read back'));
      assert.equal(read(g, 0x277), 0x0007040600070406n, m('PAT'));
      // No machine-check architecture: MCG_CAP is the VMM's (an exit, #GP on the board).
      assert.equal(read(g, 0x179), 'rdmsr', m('MCG_CAP'));
      // MSRs of features only max advertises.
      const has = model === 'max';
      assert.equal(typeof read(g, 0xc0000103), has ? 'bigint' : 'string', m('TSC_AUX (RDTSCP)'));
      assert.equal(typeof read(g, 0x48), has ? 'bigint' : 'string', m('SPEC_CTRL'));
      assert.equal(write(g, 0x49, 1n), has ? 'ok' : 'wrmsr', m('PRED_CMD'));
      assert.equal(typeof read(g, 0x10a), has ? 'bigint' : 'string', m('ARCH_CAPABILITIES'));
      if (!has) assert.equal(read(g, 0x10a), 'rdmsr', m('ARCH_CAPABILITIES exits'));
    });
  }
});

test('MOV to CR4 accepts only the bits of implemented features (soft)', needsNasm, () => {
  const PAE = 1n << 5n;
  const bits = { SMEP: 1n << 20n, FSGSBASE: 1n << 16n, PCIDE: 1n << 17n, OSXSAVE: 1n << 18n, SMAP: 1n << 21n, LA57: 1n << 12n };
  for (const model of CPU_MODEL_NAMES) {
    withGuest(model, (g) => {
      const set = (v: bigint) => {
        const o = call(g, g.entry('cr4'), { rax: v });
        return o.reports[0] === GP ? '#GP' : o.end;
      };
      assert.equal(set(PAE | (1n << 9n) | (1n << 10n) | (1n << 7n)), 'halted', `${model}: OSFXSR OSXMMEXCPT PGE`);
      assert.equal(set(PAE | bits.SMEP), model === 'max' ? 'halted' : '#GP', `${model}: SMEP`);
      for (const name of ['FSGSBASE', 'PCIDE', 'OSXSAVE', 'SMAP', 'LA57'] as const) {
        assert.equal(set(PAE | bits[name]), '#GP', `${model}: CR4.${name} without the feature`);
      }
    });
  }
});

test('the page walker follows the model: 1 GiB pages only where PDPE1GB is advertised (soft)', () => {
  for (const model of CPU_MODEL_NAMES) {
    const machine = SoftBackend.open({ cpu: model }).createMachine();
    try {
      const vcpu = machine.createVcpu(0);
      assert.equal(vcpu.cpu.walker.gbPages, model === 'max', model);
      assert.equal(vcpu.cpu.walker.maxPhyAddr, 52, model);
    } finally {
      machine.destroy();
    }
  }
});

test('CPUID set/del masks (vcpu.configure) apply to the model\'s leaves, per vCPU, and CPUID exits (soft)', needsNasm, () => {
  const image = guestImage('soft/cpu-model.asm');
  withMachine(SoftBackend.open(), (machine) => {
    const vcpu = idtGuest(machine, image, [[GP, imageQword(image, ENTRY.gp)]]);
    const g: Guest = { vcpu, entry: (which) => imageQword(image, ENTRY[which]) };
    const before = cpuid(g, 1);
    const SSE4A = 1 << 6;
    vcpu.configure({ kind: 'cpuid', leaf: 1, del: { ecx: 1 << 31 } });
    vcpu.configure({ kind: 'cpuid', leaf: 0x80000001, set: { ecx: SSE4A } });
    vcpu.configure({ kind: 'cpuid', leaf: 0x40000010, set: { eax: 1000000 } });
    assert.deepEqual(cpuid(g, 1), { ...before, ecx: (before.ecx & ~(1 << 31)) >>> 0 }, 'the hypervisor bit deleted, nothing else');
    assert.equal(cpuid(g, 0x80000001).ecx & SSE4A, SSE4A, 'a bit set');
    assert.equal(cpuid(g, 0x40000010).eax, 1000000, 'a leaf the model lacks, set by the VMM');
    vcpu.configure({ kind: 'cpuid', leaf: 0x40000000, exit: true });
    const o = call(g, g.entry('cpuid'), { rax: 0x40000000n });
    assert.equal(o.end, 'cpuid', 'an exit for the configured leaf');
    // Another vCPU of the same machine keeps the model's leaves.
    const other = machine.createVcpu(1);
    other.getState(STATE.ALL);
    copyState(other.state, vcpu.getState(STATE.ALL), STATE.ALL);
    other.setState(STATE.ALL);
    const g2: Guest = { vcpu: other, entry: g.entry };
    assert.equal(cpuid(g2, 1).ecx >>> 31, 1, 'vCPU 1 still has the hypervisor bit');
    assert.equal(cpuid(g2, 1).ebx >>> 24, 1, 'vCPU 1: its initial APIC id');
  });
});
