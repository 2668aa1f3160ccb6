/**
 * The contract every backend implements (the role of NVMM's `struct nvmm_impl`). The API layer
 * (machine.ts) validates arguments, keeps the GPA map and the lazy state cache, and calls these;
 * a backend may assume its inputs are valid.
 */
import type { GuestClock } from '../common/clock.js';
import type { HostMemory } from '../memory/host-memory.js';
import type { DebugConfig } from './debug.js';
import type { VcpuEvent } from './event.js';
import type { VcpuExit } from './exit.js';
import type { X64State } from './state.js';
import type { KernelIrqchipState, KernelLapicState } from './irqchip-state.js';

/** What a vCPU is doing: running, halted in HLT, or waiting for a start-up IPI (after INIT). */
export type VcpuRunState = 'running' | 'halted' | 'wait-for-SIPI';

export type BackendName = 'kvm' | 'soft';

/** Guest-physical protection bits (NVMM_PROT_*). */
export const PROT = { READ: 1, WRITE: 2, EXEC: 4, ALL: 7 } as const;

export interface Capability {
  backend: BackendName;
  /** Largest vCPU count per machine. */
  maxVcpus: number;
  /** Guest-physical address space size: mappings must end at or below it. */
  maxRam: number;
  /** What `vcpu.configure` accepts. */
  vcpuConf: { cpuid: boolean; cpuidExit: boolean; tpr: boolean };
  /** The backend runs interrupt controllers and a timer itself (Machine.createIrqchip). */
  irqchip?: boolean;
  /** A vCPU can serve port I/O, interrupts and timers of the VMM's devices without exits (Vcpu.setInlineDevices). */
  inlineDevices?: boolean;
  /** A vCPU can single-step, stop at breakpoints and watch memory for a debugger (Vcpu.setDebug). */
  debug?: boolean;
  /**
   * The vCPUs' time-stamp counter counts the machine's GuestClock, so stopping that clock stops
   * the TSC with the devices' timers (else the TSC runs with the host's, and guest time must too).
   */
  tscFromClock?: boolean;
}

/**
 * The VMM's devices, called by a vCPU inside its run loop instead of exiting (the software CPU
 * calls them as QEMU's TCG calls its device models; KVM's counterpart is the in-kernel irqchip).
 * Every call comes from the vCPU's thread during run().
 */
export interface InlineDevices {
  /** A port access of IN or OUT (string I/O still exits); returns the value read by IN. */
  io(port: number, size: 1 | 2 | 4, isIn: boolean, value: number): number;
  /** True while the interrupt controller presents an interrupt (checked at instruction-block boundaries). */
  interruptPending(): boolean;
  /** The INTA cycle: the vector to deliver, when the vCPU takes the interrupt. */
  acknowledge(): number;
  /** Brings time-driven devices up to `nowNs` (the machine's GuestClock); returns the next deadline (Infinity: none). */
  tick(nowNs: number): number;
  /** True once a device ended the machine: run() returns `stopped` right after that instruction. */
  ended(): boolean;
  /**
   * A data access to guest-physical memory where no RAM is (or to RAM without the permission
   * the access needs): reads fill `data`, writes consume it (little-endian, 1 to 8 bytes; an
   * access that crosses a page comes as single bytes). Without it such an access exits
   * (`memory`), as instruction fetches from there always do.
   */
  mmio?(gpa: number, data: Uint8Array, write: boolean): void;
  /**
   * The vCPU's local APIC, when the VMM gives it one (without it CR8 is a plain register and
   * IA32_APIC_BASE an MSR like the others). interruptPending / acknowledge above then answer for
   * it; its register page comes through `mmio` like any other device's.
   */
  apic?: InlineApic;
}

/**
 * What a vCPU's own instructions reach of its local APIC, beside its page: CR8 (TPR bits 7-4,
 * one register with the APIC's TPR), IA32_APIC_BASE, IA32_TSC_DEADLINE and the x2APIC MSRs.
 */
export interface InlineApic {
  getCr8(): number;
  setCr8(value: number): void;
  readBaseMsr(): number;
  /** False: the value is refused (#GP). */
  writeBaseMsr(value: number): boolean;
  /** IA32_TSC_DEADLINE in the machine clock's nanoseconds (the vCPU converts from its TSC); 0: disarmed. */
  readTscDeadline(): number;
  writeTscDeadline(ns: number): void;
  /** RDMSR of an x2APIC MSR (0x800-0x8FF): [EAX, EDX], or undefined: #GP (x2APIC mode off, no such register). */
  readX2apicMsr(msr: number): readonly [number, number] | undefined;
  /** WRMSR of an x2APIC MSR; false: #GP. */
  writeX2apicMsr(msr: number, lo: number, hi: number): boolean;
}

/** One GPA range backed by host memory, as the backend sees it. */
export interface GpaMapping {
  gpa: number;
  size: number;
  prot: number;
  /** The host memory and the offset in it where this range starts. */
  memory: HostMemory;
  offset: number;
}

export interface CpuidRegs {
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** CPUID leaf policy: bits to force on and off in what the guest sees, or exit to the VMM. */
export interface CpuidPolicy {
  leaf: number;
  set: CpuidRegs;
  del: CpuidRegs;
  exit: boolean;
}

/**
 * What another thread needs to stop a vCPU (structured-cloneable, so it can be posted to a
 * worker): a shared flag the run loop checks, and for KVM the kvm_run address and thread to kick.
 */
export interface StopHandle {
  flag: SharedArrayBuffer;
  kick?: { runAddress: number; pid: number; tid: number };
}

export interface BackendVcpu {
  /** Reads the groups in `mask` from the backend into `state`. */
  getState(state: X64State, mask: number): void;
  /** Writes the groups in `mask` from `state` to the backend. */
  setState(state: X64State, mask: number): void;
  /** Queues an event for delivery at the next run. */
  inject(event: VcpuEvent): void;
  run(): VcpuExit;
  /** How to make the current or next run return `stopped`, from this or any other thread. */
  stopHandle(): StopHandle;
  setCpuidPolicy(policy: CpuidPolicy): void;
  setTprExit(enabled: boolean): void;
  /** Serves port I/O, interrupts and timers through `devices` (null: exits again). With Capability.inlineDevices. */
  setInlineDevices?(devices: InlineDevices | null): void;
  /** Single-step, breakpoints and watchpoints (nvmm/debug.ts), validated; from the next run on. With Capability.debug. */
  setDebug?(config: DebugConfig): void;
  /**
   * With the backend's irqchip: the vCPU's local APIC (its registers and IA32_APIC_BASE), and
   * back. setLapic fixes the vCPU's CPUID first (the APIC base's x2APIC bit needs it) and sets
   * the base before the registers (which it says how to read). Optional.
   */
  getLapic?(): KernelLapicState;
  /**
   * Whether XSAVE components beyond x87 and SSE (AVX and later) hold state other than their
   * initial one, which the FPU group does not carry. Optional (a backend without them: false).
   */
  xsaveExtendedInUse?(): boolean;
  setLapic?(state: KernelLapicState): void;
  /** Counters of the backend's own (instructions executed, code compiled...), by name. Optional. */
  statistics?(): Record<string, number>;
  /**
   * Where the backend itself holds the vCPU's run state (an in-kernel local APIC: waiting for a
   * start-up IPI, or halted in HLT), that state; Optional (undefined: the VMM's loop knows it).
   */
  runState?(): VcpuRunState;
  destroy(): void;
}

/**
 * Interrupt controllers and a timer run by the backend itself (KVM's in-kernel 8259 pair,
 * IOAPIC, local APICs and 8254 PIT). With one, external interrupts reach the vCPUs through
 * setIrq, HLT waits inside the backend, and inject() takes exceptions and NMIs only.
 */
export interface BackendIrqchip {
  /** Sets the level of an interrupt line (GSI: ISA IRQs 0-15 reach the PIC and the IOAPIC, 16-23 the IOAPIC). */
  setIrq(gsi: number, level: boolean): void;
  /** The controllers' and the PIT's state (snapshots; the local APICs are the vCPUs': BackendVcpu.getLapic). Optional. */
  getState?(): KernelIrqchipState;
  /** Puts a state getState gave back (a machine restored before it runs). */
  setState?(state: KernelIrqchipState): void;
}

export interface IrqchipOptions {
  /** Four guest-physical pages, outside RAM and MMIO, that the backend may use for itself. */
  reserved: { gpa: number; size: number };
}

export interface BackendMachine {
  /** Creates the in-kernel interrupt controllers and PIT; before any vCPU. Optional. */
  createIrqchip?(opts: IrqchipOptions): BackendIrqchip;
  map(mapping: GpaMapping): void;
  unmap(mapping: GpaMapping): void;
  createVcpu(id: number): BackendVcpu;
  /** Releases the machine (an attached one only lets go of it). */
  destroy(): void;
  /** What another thread needs to attach to this machine (structured-cloneable). Optional. */
  shareHandle?(): unknown;
}

export interface Backend {
  readonly name: BackendName;
  capability(): Capability;
  /**
   * A new machine whose guest time is `clock` (Machine passes its own): a backend that keeps time
   * itself (the soft CPU's TSC) reads it; without one, it makes its own.
   */
  createMachine(clock?: GuestClock): BackendMachine;
  /** The same machine, seen from another thread, from its shareHandle(); it may create vCPUs. */
  attachMachine?(handle: unknown, clock?: GuestClock): BackendMachine;
  /** Releases what opening it took (the /dev/kvm descriptor); its machines must be destroyed first. */
  close?(): void;
  /**
   * Zeroed host memory the backend runs guests fastest from (the soft backend: its WebAssembly
   * arena), or null to take ordinary memory. Optional.
   */
  allocateMemory?(size: number): HostMemory | null;
}
