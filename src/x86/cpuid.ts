/**
 * CPUID: the leaves, the feature bits and the encodings of the identification leaves (Intel SDM
 * vol. 2A, CPUID; AMD APM vol. 3, appendix E). Pure x86 knowledge: the soft backend builds its CPU
 * models from it, and tests read a vCPU's CPUID through it.
 */

export type CpuidReg = 'eax' | 'ebx' | 'ecx' | 'edx';

/** Leaves. */
export const LEAF = {
  /** EAX: highest basic leaf; EBX EDX ECX: the vendor string. */
  VENDOR: 0,
  /** EAX: family/model/stepping; EBX: CLFLUSH size, logical count, initial APIC id; ECX EDX: features. */
  FEATURES: 1,
  /** Structured extended features (subleaf 0: EAX the highest subleaf). */
  EXT_FEATURES: 7,
  /** Hypervisor range base (Linux and the hypervisors agree on 0x40000000): EAX highest leaf, EBX ECX EDX the signature. */
  HYPERVISOR: 0x40000000,
  /** EAX: highest extended leaf. */
  EXT_MAX: 0x80000000,
  /** Extended features (AMD: EAX the signature again, EDX mirrors most of leaf 1 EDX). */
  EXT_FEATURES1: 0x80000001,
  /** 0x80000002-0x80000004: the 48-byte brand string. */
  BRAND: 0x80000002,
  /** AMD: L1 cache and TLB geometry. */
  L1_CACHE: 0x80000005,
  /** AMD: L2/L3 cache and L2 TLB geometry. */
  L2_CACHE: 0x80000006,
  /** Advanced power management (EDX bit 8: invariant TSC). */
  POWER: 0x80000007,
  /** EAX: physical and linear address sizes; EBX (AMD): more features; ECX (AMD): core count. */
  ADDRESS_SIZES: 0x80000008,
} as const;

export interface CpuidFeature {
  leaf: number;
  reg: CpuidReg;
  bit: number;
}

const f = (leaf: number, reg: CpuidReg, bit: number): CpuidFeature => ({ leaf, reg, bit });

/**
 * Feature bits, named as Linux names them in /proc/cpuinfo (uppercased). Only the ones this
 * project needs to name; the others keep their SDM/APM names in those manuals.
 */
export const FEATURE = {
  // Leaf 1 EDX
  FPU: f(1, 'edx', 0), VME: f(1, 'edx', 1), DE: f(1, 'edx', 2), PSE: f(1, 'edx', 3), TSC: f(1, 'edx', 4),
  MSR: f(1, 'edx', 5), PAE: f(1, 'edx', 6), MCE: f(1, 'edx', 7), CX8: f(1, 'edx', 8), APIC: f(1, 'edx', 9),
  SEP: f(1, 'edx', 11), MTRR: f(1, 'edx', 12), PGE: f(1, 'edx', 13), MCA: f(1, 'edx', 14), CMOV: f(1, 'edx', 15),
  PAT: f(1, 'edx', 16), PSE36: f(1, 'edx', 17), CLFLUSH: f(1, 'edx', 19), MMX: f(1, 'edx', 23), FXSR: f(1, 'edx', 24),
  SSE: f(1, 'edx', 25), SSE2: f(1, 'edx', 26), HT: f(1, 'edx', 28),
  // Leaf 1 ECX
  PNI: f(1, 'ecx', 0), PCLMULQDQ: f(1, 'ecx', 1), MONITOR: f(1, 'ecx', 3), SSSE3: f(1, 'ecx', 9), FMA: f(1, 'ecx', 12),
  CX16: f(1, 'ecx', 13), PCID: f(1, 'ecx', 17), SSE4_1: f(1, 'ecx', 19), SSE4_2: f(1, 'ecx', 20), X2APIC: f(1, 'ecx', 21),
  MOVBE: f(1, 'ecx', 22), POPCNT: f(1, 'ecx', 23), TSC_DEADLINE: f(1, 'ecx', 24), AES: f(1, 'ecx', 25), XSAVE: f(1, 'ecx', 26), AVX: f(1, 'ecx', 28),
  F16C: f(1, 'ecx', 29), RDRAND: f(1, 'ecx', 30),
  /** Set by hypervisors (and reserved, zero, on real processors). */
  HYPERVISOR: f(1, 'ecx', 31),
  // Leaf 7 subleaf 0 EBX
  FSGSBASE: f(7, 'ebx', 0), BMI1: f(7, 'ebx', 3), AVX2: f(7, 'ebx', 5), SMEP: f(7, 'ebx', 7), BMI2: f(7, 'ebx', 8),
  ERMS: f(7, 'ebx', 9), INVPCID: f(7, 'ebx', 10), RDSEED: f(7, 'ebx', 18), ADX: f(7, 'ebx', 19), SMAP: f(7, 'ebx', 20),
  CLFLUSHOPT: f(7, 'ebx', 23), CLWB: f(7, 'ebx', 24), SHA_NI: f(7, 'ebx', 29),
  // Leaf 7 subleaf 0 ECX
  UMIP: f(7, 'ecx', 2), PKU: f(7, 'ecx', 3), LA57: f(7, 'ecx', 16), RDPID: f(7, 'ecx', 22),
  // Leaf 7 subleaf 0 EDX (Intel-defined; hypervisors present them on AMD processors too)
  FSRM: f(7, 'edx', 4),
  /** IA32_SPEC_CTRL.IBRS and IA32_PRED_CMD.IBPB exist. */
  SPEC_CTRL: f(7, 'edx', 26),
  /** IA32_SPEC_CTRL.STIBP exists. */
  INTEL_STIBP: f(7, 'edx', 27),
  /** IA32_ARCH_CAPABILITIES exists. */
  ARCH_CAPABILITIES: f(7, 'edx', 29),
  /** IA32_SPEC_CTRL.SSBD exists. */
  SPEC_CTRL_SSBD: f(7, 'edx', 31),
  // 0x80000001 ECX
  LAHF_LM: f(0x80000001, 'ecx', 0), SVM: f(0x80000001, 'ecx', 2),
  /** LZCNT (and POPCNT, which leaf 1 ECX names separately). */
  ABM: f(0x80000001, 'ecx', 5),
  SSE4A: f(0x80000001, 'ecx', 6), MISALIGNSSE: f(0x80000001, 'ecx', 7),
  /** PREFETCH / PREFETCHW. */
  '3DNOWPREFETCH': f(0x80000001, 'ecx', 8),
  OSVW: f(0x80000001, 'ecx', 9), XOP: f(0x80000001, 'ecx', 11), FMA4: f(0x80000001, 'ecx', 16), TOPOEXT: f(0x80000001, 'ecx', 22),
  PERFCTR_CORE: f(0x80000001, 'ecx', 23),
  // 0x80000001 EDX (bits 0-9, 12-17, 23 and 24 mirror leaf 1 EDX on AMD processors)
  SYSCALL: f(0x80000001, 'edx', 11), NX: f(0x80000001, 'edx', 20),
  /** AMD's MMX extensions (the MMX-register forms that SSE also brought). */
  MMXEXT: f(0x80000001, 'edx', 22),
  FXSR_OPT: f(0x80000001, 'edx', 25), PDPE1GB: f(0x80000001, 'edx', 26), RDTSCP: f(0x80000001, 'edx', 27),
  LM: f(0x80000001, 'edx', 29), '3DNOWEXT': f(0x80000001, 'edx', 30), '3DNOW': f(0x80000001, 'edx', 31),
  // 0x80000007 EDX
  /** The TSC runs at a constant rate in every P-, C- and T-state. */
  CONSTANT_TSC: f(0x80000007, 'edx', 8),
  // 0x80000008 EBX (AMD)
  CLZERO: f(0x80000008, 'ebx', 0), IRPERF: f(0x80000008, 'ebx', 1),
  /** FXSAVE/XSAVE always save, and FXRSTOR/XRSTOR always restore, the x87 error pointers. */
  XSAVEERPTR: f(0x80000008, 'ebx', 2),
  RDPRU: f(0x80000008, 'ebx', 4), WBNOINVD: f(0x80000008, 'ebx', 9), AMD_IBPB: f(0x80000008, 'ebx', 12),
  AMD_IBRS: f(0x80000008, 'ebx', 14), AMD_STIBP: f(0x80000008, 'ebx', 15), AMD_SSBD: f(0x80000008, 'ebx', 24),
  VIRT_SSBD: f(0x80000008, 'ebx', 25),
} as const satisfies Record<string, CpuidFeature>;

export type FeatureName = keyof typeof FEATURE;

/** The mask of `feature` in its register (unsigned). */
export function featureMask(feature: CpuidFeature): number {
  return (1 << feature.bit) >>> 0;
}

/**
 * Leaf 1 EDX bits that AMD processors repeat in 0x80000001 EDX (FPU-APIC, MTRR-PSE36, MMX, FXSR:
 * AMD APM vol. 3, CPUID Fn8000_0001_EDX).
 */
export const AMD_EDX_ALIASES = 0x3ff | (0x3f << 12) | (1 << 23) | (1 << 24);

export const VENDOR_AMD = 'AuthenticAMD';
export const VENDOR_INTEL = 'GenuineIntel';

/** Signatures at leaf 0x40000000 that Linux (and other guests) recognise, so that a new one can be checked against them. */
export const KNOWN_HYPERVISOR_SIGNATURES: readonly string[] = [
  'KVMKVMKVM\0\0\0', 'XenVMMXenVMM', 'Microsoft Hv', 'VMwareVMware', 'ACRNACRNACRN', 'Jailhouse\0\0\0',
  'bhyve bhyve ', 'TCGTCGTCGTCG', 'VBoxVBoxVBox',
];

/** Four characters of `s` from `at` as the little-endian dword CPUID returns (NUL past the end). */
export function cpuidChars(s: string, at: number): number {
  let v = 0;
  for (let k = 0; k < 4; k++) v |= (s.charCodeAt(at + k) || 0) << (8 * k);
  return v >>> 0;
}

/** The string in dwords `words` (as CPUID returns them), NULs included. */
export function cpuidString(...words: number[]): string {
  let s = '';
  for (const w of words) for (let k = 0; k < 4; k++) s += String.fromCharCode((w >>> (8 * k)) & 0xff);
  return s;
}

/** Leaf 1 EAX for a family/model/stepping (the extended fields used above family 0xF, and for model above 0xF in families 6 and 0xF). */
export function cpuSignature(family: number, model: number, stepping: number): number {
  const baseFamily = family > 0xf ? 0xf : family;
  const extFamily = family > 0xf ? family - 0xf : 0;
  return ((extFamily << 20) | ((model >> 4) << 16) | (baseFamily << 8) | ((model & 0xf) << 4) | stepping) >>> 0;
}

/** Family, model and stepping from leaf 1 EAX, as software reads them. */
export function decodeSignature(eax: number): { family: number; model: number; stepping: number } {
  const baseFamily = (eax >>> 8) & 0xf;
  const family = baseFamily === 0xf ? baseFamily + ((eax >>> 20) & 0xff) : baseFamily;
  const model = baseFamily === 0xf || baseFamily === 6 ? (((eax >>> 16) & 0xf) << 4) | ((eax >>> 4) & 0xf) : (eax >>> 4) & 0xf;
  return { family, model, stepping: eax & 0xf };
}
