/**
 * MSR numbers: the ECX of RDMSR and WRMSR (Intel SDM vol. 4 "Model-Specific Registers", AMD APM
 * vol. 2 appendix A and the family BKDGs/PPRs), named as the manuals name them without their
 * IA32_ prefix; AMD's own are MSR_AMD_*. A run of numbered registers is given by its first and
 * its last register.
 *
 * Not to be confused with nvmm/state.ts's `MSR`, the positions of a few of these registers in the
 * MSRS state group: MSR.EFER is 0 there, MSR_EFER here is 0xC0000080.
 */

// Architectural (IA32_*) and Intel MSRs.
export const MSR_TSC = 0x10; // time-stamp counter
export const MSR_APIC_BASE = 0x1b; // local APIC base address and enables (bits in x86/apic.ts)
export const MSR_FEATURE_CONTROL = 0x3a;
export const MSR_TSC_ADJUST = 0x3b;
export const MSR_SPEC_CTRL = 0x48; // speculation controls (bits below)
export const MSR_PRED_CMD = 0x49; // write-only: bit 0 is IBPB
export const MSR_UCODE_REV = 0x8b; // microcode revision: Intel's BIOS_SIGN_ID, AMD's PATCH_LEVEL
export const MSR_PMC0 = 0xc1, MSR_PMC7 = 0xc8; // general-purpose counters (Intel PMU)
export const MSR_PLATFORM_INFO = 0xce;
export const MSR_MTRRCAP = 0xfe;
export const MSR_ARCH_CAPABILITIES = 0x10a;
export const MSR_FLUSH_CMD = 0x10b;
export const MSR_TSX_CTRL = 0x122;
export const MSR_MISC_FEATURES_ENABLES = 0x140;
export const MSR_SYSENTER_CS = 0x174;
export const MSR_SYSENTER_ESP = 0x175;
export const MSR_SYSENTER_EIP = 0x176;
export const MSR_MCG_CAP = 0x179, MSR_MCG_CTL = 0x17b; // MCG_CAP, MCG_STATUS, MCG_CTL
export const MSR_PERFEVTSEL0 = 0x186, MSR_PERFEVTSEL7 = 0x18d; // event selects (Intel PMU)
export const MSR_MISC_ENABLE = 0x1a0;
export const MSR_XFD = 0x1c4, MSR_XFD_ERR = 0x1c5;
export const MSR_DEBUGCTL = 0x1d9;
export const MSR_MTRR_PHYSBASE0 = 0x200, MSR_MTRR_PHYSMASK7 = 0x20f; // variable-range MTRRs: PHYSBASE n, PHYSMASK n at 0x200 + 2n, + 1
export const MSR_MTRR_FIX64K_00000 = 0x250; // the fixed-range MTRRs: one 64K,
export const MSR_MTRR_FIX16K_80000 = 0x258, MSR_MTRR_FIX16K_A0000 = 0x259; // two 16K,
export const MSR_MTRR_FIX4K_C0000 = 0x268, MSR_MTRR_FIX4K_F8000 = 0x26f; // eight 4K
export const MSR_PAT = 0x277;
export const MSR_MTRR_DEF_TYPE = 0x2ff;
export const MSR_FIXED_CTR0 = 0x309, MSR_FIXED_CTR2 = 0x30b; // fixed-function counters (Intel PMU)
export const MSR_PERF_CAPABILITIES = 0x345;
export const MSR_FIXED_CTR_CTRL = 0x38d, MSR_PERF_GLOBAL_OVF_CTRL = 0x390; // with PERF_GLOBAL_STATUS and _CTRL between
export const MSR_MC0_CTL = 0x400, MSR_MC31_MISC = 0x47f; // machine-check banks: CTL, STATUS, ADDR, MISC of bank n at 0x400 + 4n
export const MSR_VMX_BASIC = 0x480, MSR_VMX_VMFUNC = 0x491; // VMX capabilities
export const MSR_A_PMC0 = 0x4c1, MSR_A_PMC7 = 0x4c8; // full-width writable aliases of PMC0-7
export const MSR_TSC_DEADLINE = 0x6e0;
export const MSR_XSS = 0xda0;
export const MSR_EFER = 0xc0000080; // extended feature enables (bits in x86/control-regs.ts)
export const MSR_STAR = 0xc0000081; // SYSCALL/SYSRET selectors (and the legacy SYSCALL target)
export const MSR_LSTAR = 0xc0000082; // 64-bit SYSCALL target
export const MSR_CSTAR = 0xc0000083; // compatibility-mode SYSCALL target
export const MSR_SFMASK = 0xc0000084; // RFLAGS bits SYSCALL clears
export const MSR_FS_BASE = 0xc0000100;
export const MSR_GS_BASE = 0xc0000101;
export const MSR_KERNEL_GS_BASE = 0xc0000102; // exchanged with GS_BASE by SWAPGS
export const MSR_TSC_AUX = 0xc0000103; // what RDTSCP and RDPID return

// AMD MSRs.
export const MSR_AMD_PERF_CTL0 = 0xc0010000, MSR_AMD_PERF_CTR3 = 0xc0010007; // the K7 PMU: PERF_CTL0-3, then PERF_CTR0-3
export const MSR_AMD_SYSCFG = 0xc0010010;
export const MSR_AMD_HWCR = 0xc0010015;
export const MSR_AMD_NB_CFG = 0xc001001f;
export const MSR_AMD_INT_PENDING = 0xc0010055; // interrupt pending message (C1E on family 0Fh)
export const MSR_AMD_MMIO_CONF_BASE = 0xc0010058;
export const MSR_AMD_VM_CR = 0xc0010114;
export const MSR_AMD_VM_HSAVE_PA = 0xc0010117;
export const MSR_AMD_VIRT_SPEC_CTRL = 0xc001011f;
export const MSR_AMD_OSVW_ID_LENGTH = 0xc0010140, MSR_AMD_OSVW_STATUS = 0xc0010141;
export const MSR_AMD_PERF_CTL_CORE0 = 0xc0010200, MSR_AMD_PERF_CTR_CORE5 = 0xc001020b; // the core PMU: CTL n, CTR n at 0xc0010200 + 2n, + 1
export const MSR_AMD_DE_CFG = 0xc0011029;

/** IA32_SPEC_CTRL bits. */
export const SPEC_CTRL_IBRS = 1 << 0;
export const SPEC_CTRL_STIBP = 1 << 1;
export const SPEC_CTRL_SSBD = 1 << 2;
