/**
 * The `kvm` backend: the nvmm/ contract over Linux KVM.
 *
 * How NVMM's semantics map onto KVM:
 * - KVM completes port I/O, MMIO and user-space MSR accesses itself at the next KVM_RUN, from the
 *   data left in kvm_run. So these exits carry `data` views into kvm_run, and any state access
 *   while such a completion is pending first completes it with an immediate-exit KVM_RUN (the
 *   procedure api.rst gives); after that the state is what NVMM would show after the assist.
 * - Every RDMSR/WRMSR of an MSR outside ALLOWED_MSRS exits to user space (MSR filter, default deny).
 * - Without an in-kernel irqchip KVM loads CR8 from kvm_run.cr8 at every entry, so committing CR8
 *   writes it there too.
 * - A TPR-changed exit has no KVM equivalent: with the policy on, the vCPU single-steps and the
 *   backend compares CR8 after each instruction, which gives NVMM's exit exactly (slowly).
 * - An interrupt-window request is KVM's request_interrupt_window; where KVM reports the HLT
 *   that follows STI instead of the window (PVM), that HLT is reported as the open window.
 * - KVM has no NMI-window exit: `nmiWindowExiting` returns `nmiWindow` at the next run if NMIs
 *   are unblocked then; if they are blocked it waits for another exit.
 */
import { SyscallError, TsvmmError } from '../../common/errors.js';
import * as libc from '../../common/libc.js';
import type {
  Backend, BackendIrqchip, BackendMachine, BackendVcpu, Capability, CpuidPolicy, GpaMapping, IrqchipOptions, StopHandle, VcpuRunState,
} from '../../nvmm/backend.js';
import { PROT } from '../../nvmm/backend.js';
import { NO_DEBUG, type DebugConfig } from '../../nvmm/debug.js';
import type { VcpuEvent } from '../../nvmm/event.js';
import type { VcpuExit } from '../../nvmm/exit.js';
import { newStopFlag, retireStopHandle } from '../../nvmm/stop.js';
import { CR, DR, GPR, MSR, MSR_NUMBER_AT, SEG, STATE, emptyState, type Segment, type X64State } from '../../nvmm/state.js';
import {
  MSR_A_PMC0, MSR_A_PMC7, MSR_AMD_DE_CFG, MSR_AMD_HWCR, MSR_AMD_INT_PENDING, MSR_AMD_MMIO_CONF_BASE, MSR_AMD_NB_CFG,
  MSR_AMD_OSVW_ID_LENGTH, MSR_AMD_OSVW_STATUS, MSR_AMD_PERF_CTL0, MSR_AMD_PERF_CTL_CORE0, MSR_AMD_PERF_CTR3, MSR_AMD_PERF_CTR_CORE5,
  MSR_AMD_SYSCFG, MSR_AMD_VIRT_SPEC_CTRL, MSR_AMD_VM_CR, MSR_AMD_VM_HSAVE_PA, MSR_APIC_BASE, MSR_ARCH_CAPABILITIES, MSR_DEBUGCTL,
  MSR_EFER, MSR_FEATURE_CONTROL, MSR_FIXED_CTR0, MSR_FIXED_CTR2, MSR_FIXED_CTR_CTRL, MSR_FLUSH_CMD, MSR_FS_BASE, MSR_MC0_CTL,
  MSR_MC31_MISC, MSR_MCG_CAP, MSR_MCG_CTL, MSR_MISC_ENABLE, MSR_MISC_FEATURES_ENABLES, MSR_MTRR_DEF_TYPE, MSR_MTRR_FIX16K_80000,
  MSR_MTRR_FIX16K_A0000, MSR_MTRR_FIX4K_C0000, MSR_MTRR_FIX4K_F8000, MSR_MTRR_FIX64K_00000, MSR_MTRR_PHYSBASE0, MSR_MTRR_PHYSMASK7,
  MSR_MTRRCAP, MSR_PAT, MSR_PERF_CAPABILITIES, MSR_PERF_GLOBAL_OVF_CTRL, MSR_PERFEVTSEL0, MSR_PERFEVTSEL7, MSR_PLATFORM_INFO,
  MSR_PMC0, MSR_PMC7, MSR_PRED_CMD, MSR_SFMASK, MSR_SPEC_CTRL, MSR_SYSENTER_CS, MSR_SYSENTER_EIP, MSR_TSC, MSR_TSC_ADJUST,
  MSR_TSC_AUX, MSR_TSC_DEADLINE, MSR_TSX_CTRL, MSR_UCODE_REV, MSR_VMX_BASIC, MSR_VMX_VMFUNC, MSR_XFD, MSR_XFD_ERR, MSR_XSS,
} from '../../x86/msr.js';
import { FEATURE, LEAF, featureMask } from '../../x86/cpuid.js';
import { EXC_GP } from '../../x86/exceptions.js';
import { APIC_LVT_LINT0, APIC_LVT_LINT1, DELIVERY_MODE_MASK, DELIVERY_MODE_SHIFT, DM_EXTINT, DM_NMI, LVT_MASKED } from '../../x86/apic.js';
import { FXSAVE, XSAVE_HEADER_XSTATE_BV, XSTATE_SSE, XSTATE_X87 } from '../../x86/fxsave.js';
import * as abi from './abi.js';
import { decodeDebugExit, guestDebugControl, guestDebugRegs } from './guest-debug.js';
import { decodeIoapic, decodePic, decodePit, encodeIoapic, encodePic, encodePit, irqchipBuffer, irqchipPayload } from './irqchip-state.js';
import type { KernelIrqchipState, KernelLapicState } from '../../nvmm/irqchip-state.js';
import { KvmSystem, KvmVm, type CpuidEntry, type KvmVcpuFd, type MsrFilterRange } from './kvm.js';

const EINTR = 4;
const EAGAIN = 11;
/** NVMM's guest-physical limit (NVMM_MAX_RAM, 128 GiB); KVM itself allows more. */
const MAX_RAM = 128 * 1024 * 1024 * 1024;

/** Capabilities without which the backend cannot give NVMM's semantics. */
const REQUIRED_CAPS: readonly (keyof typeof abi.CAP)[] = [
  'KVM_CAP_USER_MEMORY', 'KVM_CAP_IMMEDIATE_EXIT', 'KVM_CAP_VCPU_EVENTS', 'KVM_CAP_DEBUGREGS',
  'KVM_CAP_X86_USER_SPACE_MSR', 'KVM_CAP_X86_MSR_FILTER', 'KVM_CAP_EXT_CPUID',
];

/**
 * MSRs KVM emulates in the kernel for the guest. Every other MSR access exits to the VMM as
 * rdmsr/wrmsr, as with NVMM. The list covers what an OS reads because the CPUID the vCPU gets
 * (KVM_GET_SUPPORTED_CPUID) says the MSR exists, and the AMD model MSRs Linux reads on any AMD
 * CPU: KVM answers those as it does under QEMU. Where a feature is missing from the vCPU's CPUID
 * (a VMM's policy removed it, or KVM lacks it: PMU virtualization off, no nested SVM), KVM itself
 * refuses its MSRs with #GP, or they exit as MSRs it does not know; so CPUID and MSRs agree.
 */
const ALLOWED_MSRS: readonly (number | [number, number])[] = [
  MSR_TSC,
  MSR_APIC_BASE,
  MSR_FEATURE_CONTROL,
  MSR_TSC_ADJUST, // CPUID 7.EBX TSC_ADJUST
  [MSR_SPEC_CTRL, MSR_PRED_CMD],
  MSR_UCODE_REV,
  [MSR_PMC0, MSR_PMC7], // Intel PMU: CPUID 0xA
  MSR_PLATFORM_INFO, // Linux reads it for CPUID faulting
  MSR_MTRRCAP,
  MSR_ARCH_CAPABILITIES, // CPUID 7.EDX ARCH_CAPABILITIES, which KVM always offers
  MSR_FLUSH_CMD, // CPUID 7.EDX FLUSH_L1D
  MSR_TSX_CTRL, // ARCH_CAPABILITIES.TSX_CTRL
  MSR_MISC_FEATURES_ENABLES, // CPUID faulting
  [MSR_SYSENTER_CS, MSR_SYSENTER_EIP],
  [MSR_MCG_CAP, MSR_MCG_CTL],
  [MSR_PERFEVTSEL0, MSR_PERFEVTSEL7], // Intel PMU
  MSR_MISC_ENABLE,
  [MSR_XFD, MSR_XFD_ERR], // CPUID 0xD.1 XFD
  MSR_DEBUGCTL,
  [MSR_MTRR_PHYSBASE0, MSR_MTRR_PHYSMASK7],
  MSR_MTRR_FIX64K_00000, MSR_MTRR_FIX16K_80000, MSR_MTRR_FIX16K_A0000, [MSR_MTRR_FIX4K_C0000, MSR_MTRR_FIX4K_F8000],
  MSR_PAT,
  MSR_MTRR_DEF_TYPE,
  [MSR_FIXED_CTR0, MSR_FIXED_CTR2], // Intel PMU
  MSR_PERF_CAPABILITIES, // CPUID 1.ECX PDCM
  [MSR_FIXED_CTR_CTRL, MSR_PERF_GLOBAL_OVF_CTRL], // Intel PMU
  [MSR_MC0_CTL, MSR_MC31_MISC], // machine-check banks
  [MSR_VMX_BASIC, MSR_VMX_VMFUNC], // CPUID 1.ECX VMX: nested VMX
  [MSR_A_PMC0, MSR_A_PMC7], // Intel PMU
  MSR_TSC_DEADLINE,
  MSR_XSS, // CPUID 0xD.1 XSAVES
  [MSR_EFER, MSR_SFMASK], // EFER, STAR, LSTAR, CSTAR, SFMASK
  [MSR_FS_BASE, MSR_TSC_AUX], // FS_BASE, GS_BASE, KERNEL_GS_BASE, TSC_AUX
  [MSR_AMD_PERF_CTL0, MSR_AMD_PERF_CTR3], // AMD's PMU, present on every AMD CPU from K7 on
  MSR_AMD_SYSCFG, // Linux reads it for memory encryption
  MSR_AMD_HWCR,
  MSR_AMD_NB_CFG,
  MSR_AMD_INT_PENDING, // Linux's C1E check on family 0xF
  MSR_AMD_MMIO_CONF_BASE, // family 0x10+ MMCONFIG
  MSR_AMD_VM_CR, MSR_AMD_VM_HSAVE_PA, // CPUID 0x80000001.ECX SVM: nested SVM
  MSR_AMD_VIRT_SPEC_CTRL, // CPUID 0x80000008.EBX VIRT_SSBD
  [MSR_AMD_OSVW_ID_LENGTH, MSR_AMD_OSVW_STATUS],
  [MSR_AMD_PERF_CTL_CORE0, MSR_AMD_PERF_CTR_CORE5], // CPUID 0x80000001.ECX PERFCTR_CORE
  MSR_AMD_DE_CFG, // Linux makes LFENCE serializing through it
];

/** Builds the allow-bitmaps of the MSR filter from ALLOWED_MSRS, one range per 0x1000-aligned block used. */
export function msrFilterRanges(allowed = ALLOWED_MSRS): MsrFilterRange[] {
  const blocks = new Map<number, Uint8Array>();
  for (const item of allowed) {
    const [lo, hi] = typeof item === 'number' ? [item, item] : item;
    for (let msr = lo; msr <= hi; msr++) {
      const base = msr - (msr % 0x1000);
      let bitmap = blocks.get(base);
      if (!bitmap) blocks.set(base, (bitmap = new Uint8Array(0x1000 / 8)));
      const bit = msr - base;
      bitmap[bit >> 3]! |= 1 << (bit & 7);
    }
  }
  return [...blocks].map(([base, bitmap]) => ({ flags: abi.KVM_MSR_FILTER_READ | abi.KVM_MSR_FILTER_WRITE, base, bitmap }));
}

export class KvmBackend implements Backend {
  readonly name = 'kvm' as const;
  readonly system: KvmSystem;
  private readonly canSingleStep: boolean;

  private constructor(system: KvmSystem) {
    this.system = system;
    this.canSingleStep = system.checkExtension(abi.CAP.KVM_CAP_SET_GUEST_DEBUG) > 0;
  }

  /** Opens /dev/kvm and checks every capability the backend relies on. */
  static open(path?: string): KvmBackend {
    const system = KvmSystem.open(path);
    const missing = REQUIRED_CAPS.filter((c) => system.checkExtension(abi.CAP[c]) <= 0);
    if (missing.length) {
      system.close();
      throw new TsvmmError('TSVMM_NO_KVM', `KVM lacks ${missing.join(', ')}`, { missing });
    }
    return new KvmBackend(system);
  }

  capability(): Capability {
    return {
      backend: 'kvm',
      maxVcpus: Math.max(1, this.system.checkExtension(abi.CAP.KVM_CAP_MAX_VCPUS)),
      maxRam: MAX_RAM,
      vcpuConf: { cpuid: true, cpuidExit: false, tpr: this.canSingleStep },
      irqchip: true,
      debug: this.canSingleStep,
    };
  }

  createMachine(): BackendMachine {
    return new KvmMachine(this.system);
  }

  attachMachine(handle: unknown): BackendMachine {
    return new KvmMachine(this.system, handle as KvmShare);
  }

  close(): void {
    this.system.close();
  }
}

/** A KVM machine as another thread attaches to it: the VM descriptor is per process. */
interface KvmShare {
  vmFd: number;
  irqchip: boolean;
}

class KvmMachine implements BackendMachine {
  private readonly vm: KvmVm;
  /** Attached from another thread: never closes the VM. */
  private readonly attached: boolean;
  private readonly system: KvmSystem;
  private readonly slots = new Map<GpaMapping, number>();
  /** KVM cannot destroy a vCPU before its VM: destroyed ones wait here to be re-created by id. */
  private readonly retired = new Map<number, KvmVcpu>();
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;
  private irqchip = false;

  constructor(system: KvmSystem, share?: KvmShare) {
    this.system = system;
    this.attached = share !== undefined;
    if (share) {
      this.vm = new KvmVm(system, share.vmFd);
      this.irqchip = share.irqchip;
      return;
    }
    this.vm = system.createVm();
    try {
      this.vm.enableCap(abi.CAP.KVM_CAP_X86_USER_SPACE_MSR, [
        abi.KVM_MSR_EXIT_REASON_FILTER | abi.KVM_MSR_EXIT_REASON_UNKNOWN | abi.KVM_MSR_EXIT_REASON_INVAL,
      ]);
      this.vm.setMsrFilter(abi.KVM_MSR_FILTER_DEFAULT_DENY, msrFilterRanges());
    } catch (e) {
      this.vm.close();
      throw e;
    }
  }

  createIrqchip(opts: IrqchipOptions): BackendIrqchip {
    // KVM needs a page for the real-mode identity map and three for the TSS on Intel hosts.
    this.vm.setIdentityMapAddr(opts.reserved.gpa);
    this.vm.setTssAddr(opts.reserved.gpa + 0x1000);
    this.vm.createIrqchip();
    this.vm.createPit2(abi.KVM_PIT_SPEAKER_DUMMY);
    this.irqchip = true;
    const vm = this.vm;
    const chip = (id: number) => {
      const b = irqchipBuffer(id);
      vm.get('KVM_GET_IRQCHIP', b);
      return irqchipPayload(b);
    };
    return {
      setIrq: (gsi, level) => vm.irqLine(gsi, level),
      getState: (): KernelIrqchipState => {
        const pit = new Uint8Array(abi.KVM_PIT_STATE2.size);
        vm.get('KVM_GET_PIT2', pit);
        return {
          picMaster: decodePic(chip(abi.KVM_IRQCHIP_PIC_MASTER)),
          picSlave: decodePic(chip(abi.KVM_IRQCHIP_PIC_SLAVE)),
          ioapic: decodeIoapic(chip(abi.KVM_IRQCHIP_IOAPIC)),
          pit: decodePit(pit),
        };
      },
      setState: (s: KernelIrqchipState): void => {
        vm.set('KVM_SET_IRQCHIP', irqchipBuffer(abi.KVM_IRQCHIP_PIC_MASTER, encodePic(s.picMaster)));
        vm.set('KVM_SET_IRQCHIP', irqchipBuffer(abi.KVM_IRQCHIP_PIC_SLAVE, encodePic(s.picSlave)));
        vm.set('KVM_SET_IRQCHIP', irqchipBuffer(abi.KVM_IRQCHIP_IOAPIC, encodeIoapic(s.ioapic)));
        // KVM loads each channel's count anew at KVM_SET_PIT2 (count_load_time is ignored).
        vm.set('KVM_SET_PIT2', encodePit(s.pit));
      },
    };
  }

  map(m: GpaMapping): void {
    const slot = this.freeSlots.pop() ?? this.nextSlot++;
    const flags = m.prot & PROT.WRITE ? 0 : abi.KVM_MEM_READONLY;
    this.vm.setUserMemoryRegion(slot, flags, m.gpa, m.size, m.memory.hva + m.offset);
    this.slots.set(m, slot);
  }

  unmap(m: GpaMapping): void {
    const slot = this.slots.get(m);
    if (slot === undefined) return;
    this.vm.setUserMemoryRegion(slot, 0, m.gpa, 0, m.memory.hva + m.offset);
    this.slots.delete(m);
    this.freeSlots.push(slot);
  }

  createVcpu(id: number): BackendVcpu {
    const old = this.retired.get(id);
    if (old) {
      this.retired.delete(id);
      old.reset();
      return old;
    }
    const fd = this.vm.createVcpu(id);
    if (this.irqchip) wireLocalApic(fd);
    const cpuid = this.system.getSupportedCpuid();
    const xcrs = hasXcrs(cpuid, this.system.checkExtension(abi.CAP.KVM_CAP_XCRS));
    return new KvmVcpu(fd, id, cpuid, { irqchip: this.irqchip, xcrs }, (v) => this.retired.set(id, v));
  }

  shareHandle(): KvmShare {
    return { vmFd: this.vm.fd, irqchip: this.irqchip };
  }

  destroy(): void {
    for (const v of this.retired.values()) v.close();
    this.retired.clear();
    if (!this.attached) this.vm.close();
  }
}

/** The MSRs of the MSRS group that go through KVM_GET/SET_MSRS (EFER travels in kvm_sregs). */
const MSRS_BY_IOCTL = MSR_NUMBER_AT.slice(MSR.STAR);

const KVM_SEGS: readonly [number, number][] = [
  [SEG.ES, abi.KVM_SREGS.es], [SEG.CS, abi.KVM_SREGS.cs], [SEG.SS, abi.KVM_SREGS.ss], [SEG.DS, abi.KVM_SREGS.ds],
  [SEG.FS, abi.KVM_SREGS.fs], [SEG.GS, abi.KVM_SREGS.gs], [SEG.LDT, abi.KVM_SREGS.ldt], [SEG.TR, abi.KVM_SREGS.tr],
];
/** kvm_regs order → NVMM GPR index. */
const KVM_GPRS: readonly number[] = [
  GPR.RAX, GPR.RBX, GPR.RCX, GPR.RDX, GPR.RSI, GPR.RDI, GPR.RSP, GPR.RBP,
  GPR.R8, GPR.R9, GPR.R10, GPR.R11, GPR.R12, GPR.R13, GPR.R14, GPR.R15, GPR.RIP, GPR.RFLAGS,
];
const RUN = abi.KVM_RUN;

class KvmVcpu implements BackendVcpu {
  private readonly fd: KvmVcpuFd;
  private readonly run8: Uint8Array;
  private readonly runDv: DataView;
  private readonly regs = new Uint8Array(abi.KVM_REGS.size);
  private readonly sregs = new Uint8Array(abi.KVM_SREGS.size);
  private readonly events = new Uint8Array(abi.KVM_VCPU_EVENTS.size);
  private readonly handle: StopHandle;
  private readonly stopFlag: Int32Array;
  private cpuid: CpuidEntry[];
  private cpuidDirty = true;
  private hasRun = false;
  /** KVM holds data of the last exit that it applies at the next KVM_RUN. */
  private completionPending = false;
  /** The pending completion is a user-space RDMSR/WRMSR (KVM raises #GP itself when told to). */
  private msrExitPending = false;
  /** Views into kvm_run for exit data, by offset and length (KVM uses a few fixed places). */
  private readonly dataViews = new Map<number, Uint8Array>();
  private pendingEvent: VcpuEvent | null = null;
  private intWindowExiting = false;
  private nmiWindowExiting = false;
  private tprExit = false;
  /** The debugger's settings (setDebug), and whether KVM has them yet. */
  private debug: DebugConfig = NO_DEBUG;
  private debugDirty = false;
  /** The control word KVM_SET_GUEST_DEBUG last set. */
  private guestDebug = 0;

  private readonly resetState: X64State = emptyState();
  private readonly onDestroy: (v: KvmVcpu) => void;

  /** Interrupts come from the in-kernel irqchip: no KVM_INTERRUPT, HLT waits in the kernel. */
  private readonly irqchip: boolean;
  /** KVM has XCR0 (KVM_GET/SET_XCRS): the host CPU has XSAVE. */
  private readonly xcrs: boolean;

  constructor(fd: KvmVcpuFd, id: number, supportedCpuid: CpuidEntry[], opts: { irqchip: boolean; xcrs: boolean }, onDestroy: (v: KvmVcpu) => void) {
    this.fd = fd;
    this.irqchip = opts.irqchip;
    this.xcrs = opts.xcrs;
    this.onDestroy = onDestroy;
    this.run8 = fd.run;
    this.runDv = fd.runView;
    this.cpuid = normalizeCpuid(supportedCpuid, id);
    libc.installKickHandler();
    this.handle = {
      flag: newStopFlag(),
      kick: { runAddress: fd.runAddress, pid: libc.getpid(), tid: libc.gettid() },
    };
    this.stopFlag = new Int32Array(this.handle.flag);
    this.getState(this.resetState, STATE.ALL);
  }

  /** Back to the state the vCPU had when created (for a re-created id). */
  reset(): void {
    this.setState(this.resetState, STATE.ALL);
    this.runDv.setBigUint64(RUN.cr8, 0n, true);
    this.pendingEvent = null;
    this.intWindowExiting = this.nmiWindowExiting = this.tprExit = false;
    this.debug = NO_DEBUG;
    this.debugDirty = this.guestDebug !== 0;
    Atomics.store(this.stopFlag, 0, 0);
    this.run8[RUN.immediate_exit] = 0;
  }

  stopHandle(): StopHandle {
    return this.handle;
  }

  getLapic(): KernelLapicState {
    if (!this.irqchip) throw new TsvmmError('TSVMM_UNSUPPORTED', 'the vCPU has no in-kernel local APIC (no irqchip)');
    this.completePending();
    const regs = new Uint8Array(abi.KVM_LAPIC_STATE.size);
    this.fd.get('KVM_GET_LAPIC', regs);
    const base = new BigUint64Array(1);
    this.fd.msrs('get', [MSR_APIC_BASE], base);
    return { regs, apicBase: base[0]! };
  }

  setLapic(state: KernelLapicState): void {
    if (!this.irqchip) throw new TsvmmError('TSVMM_UNSUPPORTED', 'the vCPU has no in-kernel local APIC (no irqchip)');
    if (state.regs.length !== abi.KVM_LAPIC_STATE.size) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `local APIC registers of ${state.regs.length} bytes, not ${abi.KVM_LAPIC_STATE.size}`);
    this.completePending();
    // KVM checks the base's x2APIC bit against the vCPU's CPUID, and reads the registers
    // (the ID's format) in the mode the base gives: CPUID, then the base, then the registers.
    this.flushCpuid();
    this.fd.msrs('set', [MSR_APIC_BASE], BigUint64Array.of(state.apicBase));
    this.fd.set('KVM_SET_LAPIC', Uint8Array.from(state.regs));
  }

  xsaveExtendedInUse(): boolean {
    this.completePending();
    const buf = new Uint8Array(abi.KVM_XSAVE.size);
    this.fd.get('KVM_GET_XSAVE', buf);
    const bv = new DataView(buf.buffer).getBigUint64(XSAVE_HEADER_XSTATE_BV, true);
    if ((bv & ~BigInt(XSTATE_X87 | XSTATE_SSE)) === 0n) return false;
    // KVM writes a component in its initial state as its initial values: zeros beyond SSE.
    return buf.subarray(XSAVE_EXTENDED_START).some((b) => b !== 0);
  }

  private flushCpuid(): void {
    if (!this.cpuidDirty) return;
    this.fd.setCpuid2(this.cpuid);
    this.cpuidDirty = false;
  }

  /** Lets KVM apply what the last exit left pending, without running guest code. */
  private completePending(): void {
    if (!this.completionPending) return;
    this.completionPending = false;
    this.msrExitPending = false;
    const wasSet = this.run8[RUN.immediate_exit];
    this.run8[RUN.immediate_exit] = 1;
    this.fd.kvmRun();
    if (!wasSet) this.run8[RUN.immediate_exit] = 0;
  }

  /** The bytes of kvm_run at [offset, offset+length), as a cached zero-copy view. */
  private dataView(offset: number, length: number): Uint8Array {
    const key = offset * 4096 + length;
    let view = this.dataViews.get(key);
    if (!view) {
      view = this.run8.subarray(offset, offset + length);
      if (this.dataViews.size < 64) this.dataViews.set(key, view);
    }
    return view;
  }

  private getRegs(): DataView {
    this.fd.get('KVM_GET_REGS', this.regs);
    return new DataView(this.regs.buffer);
  }

  getState(state: X64State, mask: number): void {
    this.completePending();
    if (mask & STATE.GPRS) {
      const dv = this.getRegs();
      KVM_GPRS.forEach((g, i) => (state.gprs[g] = dv.getBigUint64(i * 8, true)));
    }
    if (mask & (STATE.SEGS | STATE.CRS | STATE.MSRS)) {
      this.fd.get('KVM_GET_SREGS', this.sregs);
      const dv = new DataView(this.sregs.buffer);
      const S = abi.KVM_SREGS;
      if (mask & STATE.SEGS) {
        for (const [seg, off] of KVM_SEGS) state.segs[seg] = readSegment(dv, off);
        state.segs[SEG.GDT] = readDtable(dv, S.gdt);
        state.segs[SEG.IDT] = readDtable(dv, S.idt);
      }
      if (mask & STATE.CRS) {
        state.crs[CR.CR0] = dv.getBigUint64(S.cr0, true);
        state.crs[CR.CR2] = dv.getBigUint64(S.cr2, true);
        state.crs[CR.CR3] = dv.getBigUint64(S.cr3, true);
        state.crs[CR.CR4] = dv.getBigUint64(S.cr4, true);
        state.crs[CR.CR8] = dv.getBigUint64(S.cr8, true);
        state.crs[CR.XCR0] = this.getXcr0();
      }
      if (mask & STATE.MSRS) {
        state.msrs[MSR.EFER] = dv.getBigUint64(S.efer, true);
        const values = new BigUint64Array(MSRS_BY_IOCTL.length);
        this.fd.msrs('get', MSRS_BY_IOCTL, values);
        state.msrs.set(values, MSR.STAR);
      }
    }
    if (mask & STATE.DRS) {
      const buf = new Uint8Array(abi.KVM_DEBUGREGS.size);
      this.fd.get('KVM_GET_DEBUGREGS', buf);
      const dv = new DataView(buf.buffer);
      for (let i = 0; i < 4; i++) state.drs[DR.DR0 + i] = dv.getBigUint64(abi.KVM_DEBUGREGS.db + 8 * i, true);
      state.drs[DR.DR6] = dv.getBigUint64(abi.KVM_DEBUGREGS.dr6, true);
      state.drs[DR.DR7] = dv.getBigUint64(abi.KVM_DEBUGREGS.dr7, true);
    }
    if (mask & STATE.INTR) {
      const E = abi.KVM_VCPU_EVENTS;
      this.fd.get('KVM_GET_VCPU_EVENTS', this.events);
      const ev = this.events;
      state.intr.intShadow = ev[E['interrupt.shadow']] !== 0;
      state.intr.evtPending = ev[E['exception.injected']] !== 0 || ev[E['exception.pending']] !== 0 ||
        ev[E['interrupt.injected']] !== 0 || ev[E['nmi.pending']] !== 0 || ev[E['nmi.injected']] !== 0 || this.pendingEvent !== null;
      state.intr.intWindowExiting = this.intWindowExiting;
      state.intr.nmiWindowExiting = this.nmiWindowExiting;
    }
    if (mask & STATE.FPU) {
      // KVM_GET_XSAVE rather than KVM_GET_FPU: under PVM the latter reads MXCSR as 0.
      const buf = new Uint8Array(abi.KVM_XSAVE.size);
      this.fd.get('KVM_GET_XSAVE', buf);
      const dv = new DataView(buf.buffer);
      state.fpu = {
        fcw: dv.getUint16(FXSAVE.fcw, true),
        fsw: dv.getUint16(FXSAVE.fsw, true),
        ftw: buf[FXSAVE.ftw]!,
        fop: dv.getUint16(FXSAVE.fop, true),
        fip: dv.getBigUint64(FXSAVE.fip, true),
        fdp: dv.getBigUint64(FXSAVE.fdp, true),
        mxcsr: dv.getUint32(FXSAVE.mxcsr, true),
        mxcsrMask: dv.getUint32(FXSAVE.mxcsrMask, true),
        sts: buf.slice(FXSAVE.st, FXSAVE.st + 128),
        xmms: buf.slice(FXSAVE.xmm, FXSAVE.xmm + 256),
      };
    }
  }

  setState(state: X64State, mask: number): void {
    this.completePending();
    if (mask & STATE.GPRS) {
      const dv = new DataView(this.regs.buffer);
      KVM_GPRS.forEach((g, i) => dv.setBigUint64(i * 8, state.gprs[g]!, true));
      this.fd.set('KVM_SET_REGS', this.regs);
    }
    if (mask & (STATE.SEGS | STATE.CRS | STATE.MSRS)) {
      this.fd.get('KVM_GET_SREGS', this.sregs);
      const dv = new DataView(this.sregs.buffer);
      const S = abi.KVM_SREGS;
      if (mask & STATE.SEGS) {
        for (const [seg, off] of KVM_SEGS) writeSegment(dv, off, state.segs[seg]!);
        writeDtable(dv, S.gdt, state.segs[SEG.GDT]!);
        writeDtable(dv, S.idt, state.segs[SEG.IDT]!);
      }
      if (mask & STATE.CRS) {
        dv.setBigUint64(S.cr0, state.crs[CR.CR0]!, true);
        dv.setBigUint64(S.cr2, state.crs[CR.CR2]!, true);
        dv.setBigUint64(S.cr3, state.crs[CR.CR3]!, true);
        dv.setBigUint64(S.cr4, state.crs[CR.CR4]!, true);
        dv.setBigUint64(S.cr8, state.crs[CR.CR8]!, true);
        // KVM reloads CR8 from kvm_run.cr8 at every entry when the local APIC is not in the kernel.
        this.runDv.setBigUint64(RUN.cr8, state.crs[CR.CR8]!, true);
      }
      if (mask & STATE.MSRS) dv.setBigUint64(S.efer, state.msrs[MSR.EFER]!, true);
      this.fd.set('KVM_SET_SREGS', this.sregs);
      if (mask & STATE.CRS) this.setXcr0(state.crs[CR.XCR0]!);
      if (mask & STATE.MSRS) this.fd.msrs('set', MSRS_BY_IOCTL, state.msrs.slice(MSR.STAR));
    }
    if (mask & STATE.DRS) {
      const buf = new Uint8Array(abi.KVM_DEBUGREGS.size);
      const dv = new DataView(buf.buffer);
      for (let i = 0; i < 4; i++) dv.setBigUint64(abi.KVM_DEBUGREGS.db + 8 * i, state.drs[DR.DR0 + i]!, true);
      dv.setBigUint64(abi.KVM_DEBUGREGS.dr6, state.drs[DR.DR6]!, true);
      dv.setBigUint64(abi.KVM_DEBUGREGS.dr7, state.drs[DR.DR7]!, true);
      this.fd.set('KVM_SET_DEBUGREGS', buf);
    }
    if (mask & STATE.INTR) {
      const E = abi.KVM_VCPU_EVENTS;
      this.fd.get('KVM_GET_VCPU_EVENTS', this.events);
      this.events[E['interrupt.shadow']] = state.intr.intShadow ? 1 : 0;
      new DataView(this.events.buffer).setUint32(E.flags, abi.KVM_VCPUEVENT_VALID_SHADOW, true);
      this.fd.set('KVM_SET_VCPU_EVENTS', this.events);
      this.intWindowExiting = state.intr.intWindowExiting;
      this.nmiWindowExiting = state.intr.nmiWindowExiting;
    }
    if (mask & STATE.FPU) {
      // Read-modify-write of the XSAVE image keeps the components the API does not carry (AVX...).
      const buf = new Uint8Array(abi.KVM_XSAVE.size);
      this.fd.get('KVM_GET_XSAVE', buf);
      const dv = new DataView(buf.buffer);
      const f = state.fpu;
      dv.setUint16(FXSAVE.fcw, f.fcw, true);
      dv.setUint16(FXSAVE.fsw, f.fsw, true);
      buf[FXSAVE.ftw] = f.ftw;
      dv.setUint16(FXSAVE.fop, f.fop, true);
      dv.setBigUint64(FXSAVE.fip, f.fip, true);
      dv.setBigUint64(FXSAVE.fdp, f.fdp, true);
      dv.setUint32(FXSAVE.mxcsr, f.mxcsr, true);
      buf.set(f.sts.subarray(0, 128), FXSAVE.st);
      buf.set(f.xmms.subarray(0, 256), FXSAVE.xmm);
      // Mark x87 and SSE present, or KVM loads their initial state instead of this image.
      dv.setUint32(XSAVE_HEADER_XSTATE_BV, dv.getUint32(XSAVE_HEADER_XSTATE_BV, true) | XSTATE_X87 | XSTATE_SSE, true);
      this.fd.set('KVM_SET_XSAVE', buf);
    }
  }

  private getXcr0(): bigint {
    if (!this.xcrs) return XCR0_X87;
    const buf = new Uint8Array(abi.KVM_XCRS.size);
    this.fd.get('KVM_GET_XCRS', buf);
    const dv = new DataView(buf.buffer);
    const n = dv.getUint32(abi.KVM_XCRS.nr_xcrs, true);
    for (let i = 0; i < n; i++) {
      const o = abi.KVM_XCRS.xcrs + i * abi.KVM_XCR.size;
      if (dv.getUint32(o + abi.KVM_XCR.xcr, true) === 0) return dv.getBigUint64(o + abi.KVM_XCR.value, true);
    }
    return XCR0_X87;
  }

  private setXcr0(value: bigint): void {
    if (!this.xcrs) {
      // Without XSAVE the CPU has no XCR0; its one meaningful value (x87 state enabled) is implied.
      if (value !== XCR0_X87) throw new TsvmmError('TSVMM_UNSUPPORTED', `XCR0 0x${value.toString(16)} on a CPU without XSAVE (KVM has no XCR0 here)`);
      return;
    }
    const buf = new Uint8Array(abi.KVM_XCRS.size);
    const dv = new DataView(buf.buffer);
    dv.setUint32(abi.KVM_XCRS.nr_xcrs, 1, true);
    dv.setBigUint64(abi.KVM_XCRS.xcrs + abi.KVM_XCR.value, value, true);
    this.fd.set('KVM_SET_XCRS', buf);
  }

  inject(event: VcpuEvent): void {
    // #GP at an MSR exit is how a VMM refuses the MSR: KVM must raise it instead of completing.
    if (this.msrExitPending && event.type === 'exception' && event.vector === EXC_GP) {
      this.run8[RUN['msr.error']] = 1;
      return;
    }
    this.pendingEvent = event;
  }

  private deliver(event: VcpuEvent): void {
    switch (event.type) {
      case 'interrupt':
        if (this.irqchip) throw new TsvmmError('TSVMM_UNSUPPORTED', `with an in-kernel irqchip, raise interrupt lines instead of injecting vector ${event.vector}`);
        this.fd.interrupt(event.vector);
        return;
      case 'nmi':
        this.fd.nmi();
        return;
      case 'exception': {
        const E = abi.KVM_VCPU_EVENTS;
        this.fd.get('KVM_GET_VCPU_EVENTS', this.events);
        const dv = new DataView(this.events.buffer);
        this.events[E['exception.injected']] = 1;
        this.events[E['exception.pending']] = 0;
        this.events[E['exception.nr']] = event.vector;
        this.events[E['exception.has_error_code']] = event.errorCode !== undefined ? 1 : 0;
        dv.setUint32(E['exception.error_code'], event.errorCode ?? 0, true);
        dv.setUint32(E.flags, 0, true);
        this.fd.set('KVM_SET_VCPU_EVENTS', this.events);
        return;
      }
    }
  }

  setCpuidPolicy(policy: CpuidPolicy): void {
    if (this.hasRun) throw new TsvmmError('TSVMM_BUSY', 'KVM fixes CPUID at the first run: configure CPUID before running the vCPU');
    for (const e of this.cpuid.filter((e) => e.function === policy.leaf)) {
      e.eax = ((e.eax | policy.set.eax) & ~policy.del.eax) >>> 0;
      e.ebx = ((e.ebx | policy.set.ebx) & ~policy.del.ebx) >>> 0;
      e.ecx = ((e.ecx | policy.set.ecx) & ~policy.del.ecx) >>> 0;
      e.edx = ((e.edx | policy.set.edx) & ~policy.del.edx) >>> 0;
    }
    if (!this.cpuid.some((e) => e.function === policy.leaf)) {
      this.cpuid.push({ function: policy.leaf, index: 0, flags: 0, ...policy.set });
    }
    this.cpuidDirty = true;
  }

  setTprExit(enabled: boolean): void {
    this.tprExit = enabled;
  }

  setDebug(config: DebugConfig): void {
    this.debug = config;
    this.debugDirty = true;
  }

  /** KVM_GET_MP_STATE: the in-kernel local APIC's view (INIT received: waiting for a SIPI). */
  runState(): VcpuRunState {
    const b = new Uint8Array(4);
    this.fd.get('KVM_GET_MP_STATE', b);
    const mp = new DataView(b.buffer).getUint32(0, true);
    return mp === abi.MP_STATE.INIT_RECEIVED || mp === abi.MP_STATE.UNINITIALIZED ? 'wait-for-SIPI' : mp === abi.MP_STATE.HALTED ? 'halted' : 'running';
  }

  run(): VcpuExit {
    this.flushCpuid();
    if (this.pendingEvent) {
      this.deliver(this.pendingEvent);
      this.pendingEvent = null;
    }
    const control = guestDebugControl(this.debug, this.tprExit);
    if (control !== this.guestDebug || this.debugDirty) {
      this.fd.setGuestDebug(control, control & abi.KVM_GUESTDBG_USE_HW_BP ? guestDebugRegs(this.debug) : []);
      this.guestDebug = control;
      this.debugDirty = false;
    }
    this.run8[RUN.request_interrupt_window] = this.intWindowExiting ? 1 : 0;
    if (this.nmiWindowExiting && this.nmiUnblocked()) return { kind: 'nmiWindow' };
    const cr8Before = this.tprExit ? this.runDv.getBigUint64(RUN.cr8, true) : 0n;
    for (;;) {
      const r = this.fd.kvmRun();
      this.hasRun = true;
      this.completionPending = false;
      this.msrExitPending = false;
      if (r < 0) {
        if (r !== -EINTR && r !== -EAGAIN) throw new SyscallError('KVM_RUN', -r);
        if (Atomics.load(this.stopFlag, 0)) {
          Atomics.store(this.stopFlag, 0, 0);
          this.run8[RUN.immediate_exit] = 0;
          return { kind: 'stopped' };
        }
        continue;
      }
      const exit = this.decodeExit(cr8Before);
      if (exit) return exit;
    }
  }

  private nmiUnblocked(): boolean {
    const E = abi.KVM_VCPU_EVENTS;
    this.fd.get('KVM_GET_VCPU_EVENTS', this.events);
    return !this.events[E['nmi.masked']] && !this.events[E['nmi.pending']] && !this.events[E['nmi.injected']];
  }

  /** The exit in kvm_run as the API's union, or null for an exit the backend absorbs. */
  private decodeExit(cr8Before: bigint): VcpuExit | null {
    const dv = this.runDv;
    const reason = dv.getUint32(RUN.exit_reason, true);
    switch (reason) {
      case abi.EXIT.KVM_EXIT_IO: {
        const size = this.run8[RUN['io.size']]!;
        const count = dv.getUint32(RUN['io.count'], true);
        const offset = dv.getUint32(RUN['io.data_offset'], true); // within the kvm_run mapping
        this.completionPending = true;
        return {
          kind: 'io',
          in: this.run8[RUN['io.direction']] === abi.KVM_EXIT_IO_IN,
          port: dv.getUint16(RUN['io.port'], true),
          seg: -1,
          addressSize: 0,
          operandSize: size,
          rep: count > 1,
          str: count > 1,
          data: this.dataView(offset, size * count),
        };
      }
      case abi.EXIT.KVM_EXIT_MMIO: {
        const len = dv.getUint32(RUN['mmio.len'], true);
        this.completionPending = true;
        return {
          kind: 'memory',
          prot: this.run8[RUN['mmio.is_write']] ? 'write' : 'read',
          gpa: Number(dv.getBigUint64(RUN['mmio.phys_addr'], true)),
          data: this.dataView(RUN['mmio.data'], len),
        };
      }
      case abi.EXIT.KVM_EXIT_X86_RDMSR:
      case abi.EXIT.KVM_EXIT_X86_WRMSR: {
        const msr = dv.getUint32(RUN['msr.index'], true);
        const regs = this.getRegs();
        const npc = regs.getBigUint64(abi.KVM_REGS.rip, true) + 2n; // RDMSR (0F 32) and WRMSR (0F 30) are two bytes
        this.run8[RUN['msr.error']] = 0;
        this.completionPending = true;
        this.msrExitPending = true;
        if (reason === abi.EXIT.KVM_EXIT_X86_WRMSR) return { kind: 'wrmsr', msr, value: dv.getBigUint64(RUN['msr.data'], true), npc };
        // Until the VMM sets RDX:RAX, completing the RDMSR keeps their low halves, as if the MSR held them.
        const rax = regs.getBigUint64(abi.KVM_REGS.rax, true) & 0xffffffffn;
        const rdx = regs.getBigUint64(abi.KVM_REGS.rdx, true) & 0xffffffffn;
        dv.setBigUint64(RUN['msr.data'], (rdx << 32n) | rax, true);
        return { kind: 'rdmsr', msr, npc };
      }
      case abi.EXIT.KVM_EXIT_HLT:
        // Where the window-open exit did not come first (PVM has none at STI), a halt with
        // interrupts injectable is the open window the VMM asked for.
        if (this.intWindowExiting && this.run8[RUN.ready_for_interrupt_injection]) return { kind: 'interruptWindow' };
        return { kind: 'halted' };
      case abi.EXIT.KVM_EXIT_IRQ_WINDOW_OPEN:
        return { kind: 'interruptWindow' };
      case abi.EXIT.KVM_EXIT_SHUTDOWN:
      case abi.EXIT.KVM_EXIT_SYSTEM_EVENT:
        return { kind: 'shutdown' };
      case abi.EXIT.KVM_EXIT_DEBUG: {
        const pc = dv.getBigUint64(RUN['debug.arch.pc'], true);
        const d = decodeDebugExit(dv.getUint32(RUN['debug.arch.exception'], true), pc, dv.getBigUint64(RUN['debug.arch.dr6'], true), this.debug, this.tprExit);
        switch (d.kind) {
          case 'stop':
            return d.watchpoint ? { kind: 'debug', reason: d.reason, rip: pc, watchpoint: d.watchpoint } : { kind: 'debug', reason: d.reason, rip: pc };
          case 'tprStep':
            return dv.getBigUint64(RUN.cr8, true) !== cr8Before ? { kind: 'tprChanged' } : null;
          case 'reinject':
            // The guest's own INT3 or #DB: it gets the exception (for #BP KVM pushes the address after the INT3).
            this.deliver({ type: 'exception', vector: d.vector });
            return null;
        }
      }
      case abi.EXIT.KVM_EXIT_INTR:
        return null;
      case abi.EXIT.KVM_EXIT_FAIL_ENTRY:
        return { kind: 'invalid', reason: `KVM_EXIT_FAIL_ENTRY: hardware reason 0x${dv.getBigUint64(RUN['fail_entry.hardware_entry_failure_reason'], true).toString(16)}` };
      case abi.EXIT.KVM_EXIT_INTERNAL_ERROR: {
        const n = Math.min(dv.getUint32(RUN['internal.ndata'], true), 16);
        const data = Array.from({ length: n }, (_, i) => `0x${dv.getBigUint64(RUN['internal.data'] + 8 * i, true).toString(16)}`);
        return { kind: 'invalid', reason: `KVM_EXIT_INTERNAL_ERROR: suberror ${dv.getUint32(RUN['internal.suberror'], true)} [${data.join(' ')}]` };
      }
      default: {
        const name = Object.entries(abi.EXIT).find(([, v]) => v === reason)?.[0] ?? `exit reason ${reason}`;
        return { kind: 'invalid', reason: name };
      }
    }
  }

  destroy(): void {
    this.onDestroy(this);
  }

  close(): void {
    retireStopHandle(this.handle);
    this.fd.close();
  }
}

/** Where an XSAVE image's extended components start: after the FXSAVE region and the XSAVE header. */
const XSAVE_EXTENDED_START = FXSAVE.size + 64;

/** XCR0 with only x87 state: the reset value, and the value implied without XSAVE. */
const XCR0_X87 = BigInt(XSTATE_X87);

/**
 * Whether KVM has an XCR0 for its vCPUs: KVM_CAP_XCRS, and XSAVE in the CPUID it supports (KVM
 * refuses KVM_SET_XCRS with EINVAL on a host without XSAVE, e.g. QEMU's `qemu64` CPU model).
 */
export function hasXcrs(supportedCpuid: readonly CpuidEntry[], capXcrs: number): boolean {
  const leaf1 = supportedCpuid.find((e) => e.function === LEAF.FEATURES && e.index === 0);
  return capXcrs > 0 && leaf1 !== undefined && (leaf1.ecx & featureMask(FEATURE.XSAVE)) !== 0;
}

/** LINT0 as ExtINT (the 8259 behind it, for PIC-mode guests) and LINT1 as NMI, as on a PC. */
function wireLocalApic(fd: KvmVcpuFd): void {
  const lapic = new Uint8Array(abi.KVM_LAPIC_STATE.size);
  fd.get('KVM_GET_LAPIC', lapic);
  const dv = new DataView(lapic.buffer);
  const lvt = (reg: number, mode: number) =>
    dv.setUint32(reg, ((dv.getUint32(reg, true) & ~(DELIVERY_MODE_MASK | LVT_MASKED)) | (mode << DELIVERY_MODE_SHIFT)) >>> 0, true);
  lvt(APIC_LVT_LINT0, DM_EXTINT);
  lvt(APIC_LVT_LINT1, DM_NMI);
  fd.set('KVM_SET_LAPIC', lapic);
}

/**
 * Leaves 0x40000000-0x4fffffff: KVM's paravirtual interface (signature "KVMKVMKVM", kvm-clock,
 * PV EOI, steal time...). Its MSRs (0x4b564d00...) are not in ALLOWED_MSRS, so a guest that
 * believed these leaves would meet #GP: the vCPU does not present them, as NVMM presents none.
 */
const HYPERVISOR_LEAVES = [LEAF.HYPERVISOR, 0x4fffffff] as const;

/**
 * The CPUID a vCPU presents: KVM's supported CPUID with this vCPU's APIC id in leaves 1 and
 * 0xB/0x1F, the hypervisor bit set, and without KVM's paravirtual leaves.
 */
export function normalizeCpuid(entries: CpuidEntry[], id: number): CpuidEntry[] {
  const out = entries.filter((e) => e.function < HYPERVISOR_LEAVES[0] || e.function > HYPERVISOR_LEAVES[1]);
  for (const e of out) {
    if (e.function === LEAF.FEATURES) {
      e.ebx = ((e.ebx & 0x00ffffff) | (id << 24)) >>> 0;
      // The hypervisor bit: NVMM and QEMU set it; KVM leaves it to the VMM.
      e.ecx = (e.ecx | featureMask(FEATURE.HYPERVISOR)) >>> 0;
    }
    if (e.function === 0xb || e.function === 0x1f) e.edx = id;
  }
  return out;
}

function readSegment(dv: DataView, off: number): Segment {
  const S = abi.KVM_SEGMENT;
  const b = (f: number) => dv.getUint8(off + f);
  return {
    selector: dv.getUint16(off + S.selector, true),
    base: dv.getBigUint64(off + S.base, true),
    limit: dv.getUint32(off + S.limit, true),
    attrib: { type: b(S.type), s: b(S.s) !== 0, dpl: b(S.dpl), p: b(S.present) !== 0, avl: b(S.avl) !== 0, l: b(S.l) !== 0, def: b(S.db) !== 0, g: b(S.g) !== 0 },
  };
}

function writeSegment(dv: DataView, off: number, seg: Segment): void {
  const S = abi.KVM_SEGMENT;
  const a = seg.attrib;
  dv.setBigUint64(off + S.base, seg.base, true);
  dv.setUint32(off + S.limit, seg.limit >>> 0, true);
  dv.setUint16(off + S.selector, seg.selector, true);
  dv.setUint8(off + S.type, a.type & 0xf);
  dv.setUint8(off + S.present, a.p ? 1 : 0);
  dv.setUint8(off + S.dpl, a.dpl & 3);
  dv.setUint8(off + S.db, a.def ? 1 : 0);
  dv.setUint8(off + S.s, a.s ? 1 : 0);
  dv.setUint8(off + S.l, a.l ? 1 : 0);
  dv.setUint8(off + S.g, a.g ? 1 : 0);
  dv.setUint8(off + S.avl, a.avl ? 1 : 0);
  dv.setUint8(off + S.unusable, a.p ? 0 : 1);
}

function readDtable(dv: DataView, off: number): Segment {
  return {
    selector: 0,
    base: dv.getBigUint64(off + abi.KVM_DTABLE.base, true),
    limit: dv.getUint16(off + abi.KVM_DTABLE.limit, true),
    attrib: { type: 0, s: false, dpl: 0, p: false, avl: false, l: false, def: false, g: false },
  };
}

function writeDtable(dv: DataView, off: number, seg: Segment): void {
  dv.setBigUint64(off + abi.KVM_DTABLE.base, seg.base, true);
  dv.setUint16(off + abi.KVM_DTABLE.limit, seg.limit & 0xffff, true);
}
