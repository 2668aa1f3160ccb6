/**
 * The CPU models the soft CPU presents (`--cpu NAME`), as QEMU's TCG presents `qemu64` and `max`:
 * a real vendor's CPUID layout, with the hypervisor bit and a hypervisor leaf naming tsvmm.
 *
 * The vendor is AMD: the soft CPU implements SYSCALL/SYSRET outside long mode as the AMD APM
 * defines them (Intel raises #UD there), and AMD's LZCNT (ABM) and PREFETCHW. QEMU's TCG presents
 * AMD too, as AuthenticAMD family 0xF model 0x6B stepping 1 for both `qemu64` and `max`; both
 * models keep those numbers, so a guest takes the paths it takes under QEMU: Linux runs init_amd
 * with its K8 branch (REP_GOOD: string instructions for copies), the erratum-400 idle routine, and
 * no family-specific speculation workaround (families 0x15-0x19 would bring retbleed/SRSO
 * mitigations and Zen chicken-bit MSRs). What does not follow AMD: SYSENTER/SYSEXIT also work in
 * long mode (as on Intel, and in QEMU's TCG); a null selector loaded into FS/GS clears the base
 * (Linux sets its AMD NULL_SEG bug and loads a selector first, which works either way).
 *
 * A model advertises only what the soft CPU implements; test/soft/cpu-model.test.ts checks each
 * advertised bit against the instructions it defines. The MSRs a model has, the CR4 bits it
 * accepts and its page walker (MAXPHYADDR, 1 GiB pages) follow the same features.
 */
import type { CpuidRegs } from '../../nvmm/backend.js';
import {
  AMD_EDX_ALIASES, FEATURE, LEAF, VENDOR_AMD, cpuSignature, cpuidChars, featureMask, type CpuidFeature, type FeatureName,
} from '../../x86/cpuid.js';
import { CR4_SMEP } from '../../x86/control-regs.js';
import {
  MSR_AMD_DE_CFG, MSR_AMD_HWCR, MSR_AMD_INT_PENDING, MSR_AMD_PERF_CTL0, MSR_AMD_PERF_CTR3, MSR_AMD_SYSCFG, MSR_ARCH_CAPABILITIES,
  MSR_PRED_CMD, MSR_SPEC_CTRL, MSR_TSC_AUX, MSR_UCODE_REV, SPEC_CTRL_IBRS, SPEC_CTRL_SSBD, SPEC_CTRL_STIBP,
} from '../../x86/msr.js';
import { ARCH_MSRS, type SysModel } from './ops-sys.js';

export type CpuModelName = 'qemu64' | 'max';
export const CPU_MODEL_NAMES: readonly CpuModelName[] = ['qemu64', 'max'];
/** The model when none is named: everything the soft CPU implements (what it always presented). */
export const DEFAULT_CPU_MODEL: CpuModelName = 'max';

export interface CpuModel {
  name: CpuModelName;
  vendor: string;
  family: number;
  model: number;
  stepping: number;
  brand: string;
  /** Highest basic and extended leaves. */
  maxLeaf: number;
  maxExtLeaf: number;
  features: readonly FeatureName[];
}

/**
 * QEMU's qemu64 as far as the soft CPU implements it: its FPU-to-SSE2 leaf 1, CX16, SYSCALL, NX,
 * long mode, LAHF in 64-bit mode. What QEMU's qemu64 has and this one does not: SSE3 (PNI; HADDPS,
 * MOVDDUP... are not implemented), DE (no I/O breakpoints), MCE/MCA (no machine checks), APIC (the
 * local APIC is the board's: a board that gives the vCPU one sets CPUID.1:EDX.APIC, see
 * vmm/interrupts.ts), SVM.
 */
const QEMU64_FEATURES: readonly FeatureName[] = [
  'FPU', 'PSE', 'TSC', 'MSR', 'PAE', 'CX8', 'SEP', 'MTRR', 'PGE', 'CMOV', 'PAT', 'PSE36', 'CLFLUSH', 'MMX', 'FXSR', 'SSE', 'SSE2',
  'CX16', 'HYPERVISOR',
  'SYSCALL', 'NX', 'LM', 'LAHF_LM',
];

/** Everything the soft CPU implements. */
const MAX_FEATURES: readonly FeatureName[] = [
  ...QEMU64_FEATURES,
  'POPCNT', 'RDRAND',
  'SMEP', 'RDSEED', 'CLFLUSHOPT', 'CLWB',
  // It executes nothing speculatively: the speculation controls exist and have nothing to do, and
  // IA32_ARCH_CAPABILITIES says it is immune (as KVM presents these Intel-defined bits on AMD hosts).
  'SPEC_CTRL', 'INTEL_STIBP', 'SPEC_CTRL_SSBD', 'ARCH_CAPABILITIES',
  'ABM', '3DNOWPREFETCH', 'MMXEXT', 'PDPE1GB', 'RDTSCP',
  // The TSC is the host's monotonic clock in nanoseconds; FXSAVE always stores FIP/FDP/FOP.
  'CONSTANT_TSC', 'XSAVEERPTR', 'WBNOINVD',
];

const K8 = { vendor: VENDOR_AMD, family: 0xf, model: 0x6b, stepping: 1, maxLeaf: LEAF.EXT_FEATURES, maxExtLeaf: LEAF.ADDRESS_SIZES } as const;

export const CPU_MODELS: Readonly<Record<CpuModelName, CpuModel>> = {
  qemu64: { name: 'qemu64', ...K8, brand: 'tsvmm soft CPU (qemu64)', features: QEMU64_FEATURES },
  max: { name: 'max', ...K8, brand: 'tsvmm soft CPU (max)', features: MAX_FEATURES },
};

export function isCpuModelName(name: string): name is CpuModelName {
  return (CPU_MODEL_NAMES as readonly string[]).includes(name);
}

/** The hypervisor signature at leaf 0x40000000 (12 bytes, as KVM's "KVMKVMKVM\0\0\0"). */
export const HYPERVISOR_SIGNATURE = 'TSVMMTSVMM\0\0';

/** MAXPHYADDR and linear-address width (0x80000008 EAX). */
const PHYS_ADDR_BITS = 52;
const LINEAR_ADDR_BITS = 48;

/**
 * Cache and TLB geometry in the AMD layout (a K8's: 64 KiB 2-way L1 caches with 64-byte lines,
 * 512 KiB 16-way L2, no L3; 32 + 8 L1 TLB entries, 512 4-way L2 TLB entries). The soft CPU has no
 * cache: these only give software its usual tuning inputs (Linux would otherwise find empty
 * cache leaves; glibc sizes its copy strategies from them).
 */
const L1_TLB_2M = (0xff << 24) | (8 << 16) | (0xff << 8) | 8; // fully associative, 8 data / 8 instruction entries
const L1_TLB_4K = (0xff << 24) | (32 << 16) | (0xff << 8) | 32;
const L1_CACHE = (64 << 24) | (2 << 16) | (1 << 8) | 64; // 64 KiB, 2-way, 1 line per tag, 64-byte lines
const L2_TLB_4K = (4 << 28) | (512 << 16) | (4 << 12) | 512; // 4-way (encoding 4), 512 entries
const L2_CACHE = (512 << 16) | (8 << 12) | (1 << 8) | 64; // 512 KiB, 16-way (encoding 8), 64-byte lines

export function hasFeature(model: CpuModel, name: FeatureName): boolean {
  return model.features.includes(name);
}

function regsOf(t: Map<number, CpuidRegs>, leaf: number): CpuidRegs {
  let r = t.get(leaf);
  if (!r) t.set(leaf, (r = { eax: 0, ebx: 0, ecx: 0, edx: 0 }));
  return r;
}

/** The CPUID leaves of `model` for vCPU `id` (leaf 7: subleaf 0; leaves absent from the map read as zeros). */
export function cpuidTable(model: CpuModel, id: number): Map<number, CpuidRegs> {
  const t = new Map<number, CpuidRegs>();
  const v = model.vendor;
  t.set(LEAF.VENDOR, { eax: model.maxLeaf, ebx: cpuidChars(v, 0), edx: cpuidChars(v, 4), ecx: cpuidChars(v, 8) });
  const signature = cpuSignature(model.family, model.model, model.stepping);
  // EBX: initial APIC id (31:24), one logical processor (23:16), CLFLUSH line of 8 quadwords (15:8).
  t.set(LEAF.FEATURES, { eax: signature, ebx: ((id << 24) | (1 << 16) | (8 << 8)) >>> 0, ecx: 0, edx: 0 });
  t.set(LEAF.EXT_FEATURES, { eax: 0, ebx: 0, ecx: 0, edx: 0 });
  t.set(LEAF.HYPERVISOR, {
    eax: LEAF.HYPERVISOR, ebx: cpuidChars(HYPERVISOR_SIGNATURE, 0), ecx: cpuidChars(HYPERVISOR_SIGNATURE, 4), edx: cpuidChars(HYPERVISOR_SIGNATURE, 8),
  });
  t.set(LEAF.EXT_MAX, { eax: model.maxExtLeaf, ebx: 0, ecx: 0, edx: 0 });
  t.set(LEAF.EXT_FEATURES1, { eax: signature, ebx: 0, ecx: 0, edx: 0 });
  for (const name of model.features) {
    const feat: CpuidFeature = FEATURE[name];
    const r = regsOf(t, feat.leaf);
    r[feat.reg] = (r[feat.reg] | featureMask(feat)) >>> 0;
  }
  const ext1 = t.get(LEAF.EXT_FEATURES1)!;
  ext1.edx = (ext1.edx | (t.get(LEAF.FEATURES)!.edx & AMD_EDX_ALIASES)) >>> 0;
  const brand = model.brand.padEnd(48, '\0');
  for (let k = 0; k < 3; k++) {
    t.set(LEAF.BRAND + k, { eax: cpuidChars(brand, 16 * k), ebx: cpuidChars(brand, 16 * k + 4), ecx: cpuidChars(brand, 16 * k + 8), edx: cpuidChars(brand, 16 * k + 12) });
  }
  t.set(LEAF.L1_CACHE, { eax: L1_TLB_2M >>> 0, ebx: L1_TLB_4K >>> 0, ecx: L1_CACHE >>> 0, edx: L1_CACHE >>> 0 });
  t.set(LEAF.L2_CACHE, { eax: 0, ebx: L2_TLB_4K >>> 0, ecx: L2_CACHE >>> 0, edx: 0 });
  regsOf(t, LEAF.POWER);
  regsOf(t, LEAF.ADDRESS_SIZES).eax = (LINEAR_ADDR_BITS << 8) | PHYS_ADDR_BITS;
  for (const leaf of t.keys()) {
    const inRange = leaf < LEAF.HYPERVISOR ? leaf <= model.maxLeaf : leaf < LEAF.EXT_MAX ? leaf === LEAF.HYPERVISOR : leaf <= model.maxExtLeaf;
    if (!inRange) throw new Error(`CPU model ${model.name}: leaf 0x${leaf.toString(16)} is beyond its highest leaf`);
  }
  return t;
}

/** The MSRs of `model`, the CR4 bits it accepts and its speculation controls (see ops-sys.ts). */
export function sysModel(model: CpuModel): SysModel {
  const has = (n: FeatureName) => hasFeature(model, n);
  const msrs = new Set(ARCH_MSRS);
  if (has('RDTSCP')) msrs.add(MSR_TSC_AUX);
  if (has('SPEC_CTRL')) { msrs.add(MSR_SPEC_CTRL); msrs.add(MSR_PRED_CMD); }
  if (has('ARCH_CAPABILITIES')) msrs.add(MSR_ARCH_CAPABILITIES);
  if (model.vendor === VENDOR_AMD) {
    // What Linux reads on every AMD processor of these families, answered as KVM answers them.
    for (const m of [MSR_UCODE_REV, MSR_AMD_SYSCFG, MSR_AMD_HWCR, MSR_AMD_INT_PENDING, MSR_AMD_DE_CFG]) msrs.add(m);
    // The K7 performance counters exist in every AMD family from 6 (no CPUID bit): with no PMU,
    // they read 0 and drop writes, as under KVM without a vPMU.
    for (let m = MSR_AMD_PERF_CTL0; m <= MSR_AMD_PERF_CTR3; m++) msrs.add(m);
  }
  let specCtrl = 0;
  if (has('SPEC_CTRL')) specCtrl |= SPEC_CTRL_IBRS;
  if (has('INTEL_STIBP')) specCtrl |= SPEC_CTRL_STIBP;
  if (has('SPEC_CTRL_SSBD')) specCtrl |= SPEC_CTRL_SSBD;
  return { msrs, cr4: has('SMEP') ? CR4_SMEP : 0, specCtrl };
}

/** The page walker's view of the model. */
export function pagingModel(model: CpuModel): { maxPhyAddr: number; gbPages: boolean } {
  return { maxPhyAddr: PHYS_ADDR_BITS, gbPages: hasFeature(model, 'PDPE1GB') };
}
