/**
 * The hypervisor API, shaped like libnvmm(3): a Machine owns guest-physical mappings and vCPUs;
 * a Vcpu carries its state (fetched and committed lazily, like NVMM's comm page), an event slot
 * and the last exit. Arguments are validated here, once, for every backend.
 */
import { hex } from '../common/bits.js';
import { GuestClock, type GuestClockShare } from '../common/clock.js';
import { TsvmmError } from '../common/errors.js';
import { HostMemory } from '../memory/host-memory.js';
import { PAGE_SIZE } from '../memory/page.js';
import type {
  Backend, BackendIrqchip, BackendMachine, BackendVcpu, Capability, CpuidRegs, GpaMapping, InlineDevices, IrqchipOptions, StopHandle, VcpuRunState,
} from './backend.js';
import { PROT } from './backend.js';
import { validateDebugConfig, type DebugConfig } from './debug.js';
import { validateEvent, type VcpuEvent } from './event.js';
import type { VcpuExit } from './exit.js';
import { CR, MSR, STATE, emptyState, type X64State } from './state.js';
import { PageWalkResult, WALK_NO_CHECK, WALK_OK, WALK_PAGE_FAULT, walkGva, type PhysMemoryAccess } from '../x86/page-walk.js';
import { stopVcpu } from './stop.js';
import type { KernelLapicState } from './irqchip-state.js';

export type VcpuConfig =
  /** NVMM_VCPU_CONF_CPUID: force bits on/off in a leaf, or make the leaf exit to the VMM. */
  | { kind: 'cpuid'; leaf: number; set?: Partial<CpuidRegs>; del?: Partial<CpuidRegs>; exit?: boolean }
  /** NVMM_VCPU_CONF_TPR: exit with `tprChanged` when the guest writes a new TPR (CR8). */
  | { kind: 'tpr'; exitChanged: boolean };

function checkPageAligned(what: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value % PAGE_SIZE !== 0) {
    throw new TsvmmError('TSVMM_BAD_ARGUMENT', `${what} ${hex(value)} is not a non-negative multiple of ${PAGE_SIZE}`);
  }
}

export interface MachineCreateOptions {
  /** The machine's guest time (tests give one with a fake host clock); default: a new GuestClock. */
  clock?: GuestClock;
}

/** A machine as another thread of this process can attach to it (see Machine.shareHandle). */
export interface MachineShare {
  backend: unknown;
  /** The machine's guest clock (GuestClock.share). */
  clock: GuestClockShare;
  mappings: { gpa: number; size: number; prot: number; offset: number; memoryHva: number; memorySize: number }[];
}

export class Machine {
  readonly backend: Backend;
  private impl: BackendMachine | null;
  private readonly hvas: HostMemory[] = [];
  /** What allocateMemory handed out: destroy() frees it. */
  private readonly allocated: HostMemory[] = [];
  /** Current GPA mappings, sorted by gpa, never overlapping. */
  private readonly mappings: GpaMapping[] = [];
  private readonly vcpus = new Map<number, Vcpu>();
  readonly capability: Capability;
  /**
   * The machine's guest time, the same in every thread attached to it: the VMM's timer devices
   * read it (their `now`), and so does a backend that keeps time itself (the soft CPU's TSC).
   */
  readonly clock: GuestClock;

  /** Whether this object created the machine (and destroy() ends it) or attached to it. */
  readonly attached: boolean;

  /** A new machine (`opts.clock`: its guest time, default a GuestClock reading 0 now); `share`: Machine.attach's. */
  constructor(backend: Backend, opts: MachineCreateOptions = {}, share?: MachineShare) {
    this.backend = backend;
    this.capability = backend.capability();
    this.attached = share !== undefined;
    if (!share) {
      this.clock = opts.clock ?? new GuestClock();
      this.impl = backend.createMachine(this.clock);
      return;
    }
    if (!backend.attachMachine) throw new TsvmmError('TSVMM_UNSUPPORTED', `the ${backend.name} backend cannot share a machine between threads`);
    this.clock = GuestClock.attach(share.clock);
    this.impl = backend.attachMachine(share.backend, this.clock);
    // The guest-physical map as the owner set it up, over the same host memory.
    const memories = new Map<number, HostMemory>();
    for (const m of share.mappings) {
      let memory = memories.get(m.memoryHva);
      if (!memory) memories.set(m.memoryHva, (memory = HostMemory.attach(m.memoryHva, m.memorySize)));
      this.mappings.push({ gpa: m.gpa, size: m.size, prot: m.prot, offset: m.offset, memory });
    }
    this.hvas.push(...memories.values());
  }

  /** What Machine.attach needs in another thread (structured-cloneable: post it to a worker). */
  shareHandle(): MachineShare {
    const impl = this.live;
    if (!impl.shareHandle) throw new TsvmmError('TSVMM_UNSUPPORTED', `the ${this.backend.name} backend cannot share a machine between threads`);
    return {
      backend: impl.shareHandle(),
      clock: this.clock.share,
      mappings: this.mappings.map((m) => ({ gpa: m.gpa, size: m.size, prot: m.prot, offset: m.offset, memoryHva: m.memory.hva, memorySize: m.memory.size })),
    };
  }

  /** The machine `share` describes, from another thread; it can create vCPUs, not change the memory map. */
  static attach(backend: Backend, share: MachineShare): Machine {
    return new Machine(backend, {}, share);
  }

  private get live(): BackendMachine {
    if (!this.impl) throw new TsvmmError('TSVMM_DESTROYED', 'the machine was destroyed');
    return this.impl;
  }

  /** Registers host memory that guest-physical ranges may then map (nvmm_hva_map). */
  private get owner(): BackendMachine {
    if (this.attached) throw new TsvmmError('TSVMM_UNSUPPORTED', 'an attached machine cannot change the memory map; its owner can');
    return this.live;
  }

  /**
   * `size` bytes of zeroed host memory for guest RAM, from where this backend runs guests fastest
   * (HostMemory.allocate unless the backend has a better place). Give it to mapHva. It belongs to
   * the machine: destroy() frees it (free() it earlier, after unmapHva, to give it back sooner).
   */
  allocateMemory(size: number): HostMemory {
    const memory = this.backend.allocateMemory?.(size) ?? HostMemory.allocate(size);
    this.allocated.push(memory);
    return memory;
  }

  mapHva(memory: HostMemory): void {
    this.owner;
    if (this.hvas.some((m) => m.hva < memory.hva + memory.size && memory.hva < m.hva + m.size)) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `host range ${hex(memory.hva)}+${hex(memory.size)} overlaps one already mapped`);
    }
    this.hvas.push(memory);
  }

  /** Unregisters host memory (nvmm_hva_unmap); refused while a guest range still maps it. */
  unmapHva(memory: HostMemory): void {
    this.owner;
    const i = this.hvas.indexOf(memory);
    if (i < 0) throw new TsvmmError('TSVMM_HVA_UNMAPPED', `host range ${hex(memory.hva)} was never mapped with mapHva`);
    if (this.mappings.some((m) => m.memory === memory)) {
      throw new TsvmmError('TSVMM_HVA_BUSY', `host range ${hex(memory.hva)} is still mapped into the guest`);
    }
    this.hvas.splice(i, 1);
  }

  /** Maps `size` bytes of host memory at `hva` to guest-physical `gpa` with protection `prot` (PROT.*). */
  mapGpa(gpa: number, hva: number, size: number, prot: number): void {
    const impl = this.owner;
    checkPageAligned('gpa', gpa);
    checkPageAligned('hva', hva);
    checkPageAligned('size', size);
    if (size === 0) throw new TsvmmError('TSVMM_BAD_ARGUMENT', 'size 0');
    if (!Number.isInteger(prot) || prot & ~PROT.ALL || !(prot & PROT.READ)) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `prot ${prot} must include PROT.READ and only PROT bits`);
    }
    if (gpa + size > this.capability.maxRam) {
      throw new TsvmmError('TSVMM_LIMIT', `range ${hex(gpa)}+${hex(size)} ends above the guest-physical limit ${hex(this.capability.maxRam)}`);
    }
    const memory = this.hvas.find((m) => hva >= m.hva && hva + size <= m.hva + m.size);
    if (!memory) throw new TsvmmError('TSVMM_HVA_UNMAPPED', `host range ${hex(hva)}+${hex(size)} is not inside memory given to mapHva`);
    const clash = this.mappings.find((m) => m.gpa < gpa + size && gpa < m.gpa + m.size);
    if (clash) {
      throw new TsvmmError('TSVMM_GPA_OVERLAP', `range ${hex(gpa)}+${hex(size)} overlaps the mapping at ${hex(clash.gpa)}+${hex(clash.size)}`);
    }
    const mapping: GpaMapping = { gpa, size, prot, memory, offset: hva - memory.hva };
    impl.map(mapping);
    this.mappings.push(mapping);
    this.mappings.sort((a, b) => a.gpa - b.gpa);
  }

  /** Removes every guest-physical mapping inside [gpa, gpa+size), splitting mappings that straddle its ends. */
  unmapGpa(gpa: number, size: number): void {
    const impl = this.owner;
    checkPageAligned('gpa', gpa);
    checkPageAligned('size', size);
    const end = gpa + size;
    const hit = this.mappings.filter((m) => m.gpa < end && gpa < m.gpa + m.size);
    if (hit.length === 0) throw new TsvmmError('TSVMM_GPA_UNMAPPED', `nothing is mapped in ${hex(gpa)}+${hex(size)}`);
    for (const m of hit) {
      impl.unmap(m);
      this.mappings.splice(this.mappings.indexOf(m), 1);
      const pieces: GpaMapping[] = [];
      if (m.gpa < gpa) pieces.push({ ...m, size: gpa - m.gpa });
      if (m.gpa + m.size > end) pieces.push({ ...m, gpa: end, size: m.gpa + m.size - end, offset: m.offset + (end - m.gpa) });
      for (const p of pieces) {
        impl.map(p);
        this.mappings.push(p);
      }
    }
    this.mappings.sort((a, b) => a.gpa - b.gpa);
  }

  /** The mapping holding `gpa`, or undefined (the address is MMIO). */
  findMapping(gpa: number): GpaMapping | undefined {
    for (const m of this.mappings) if (gpa >= m.gpa && gpa < m.gpa + m.size) return m;
    return undefined;
  }

  /** nvmm_gpa_to_hva: the host address and protection behind a guest-physical address. */
  gpaToHva(gpa: number): { hva: number; prot: number; bytes: Uint8Array } {
    const m = this.findMapping(gpa);
    if (!m) throw new TsvmmError('TSVMM_GPA_UNMAPPED', `guest-physical address ${hex(gpa)} is not mapped`);
    const off = m.offset + (gpa - m.gpa);
    return { hva: m.memory.hva + off, prot: m.prot, bytes: m.memory.bytes.subarray(off, m.offset + m.size) };
  }

  /** Guest-physical memory as the page walker reads it: unbacked addresses read as all ones. */
  readonly physMemory: PhysMemoryAccess = {
    read32: (gpa: number): number => {
      const m = this.findMapping(gpa);
      if (!m) return -1;
      const off = m.offset + (gpa - m.gpa);
      const b = m.memory.bytes;
      return b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24);
    },
  };

  /**
   * Creates the backend's own interrupt controllers and timer (see BackendIrqchip). Must come
   * before the first vCPU. TSVMM_UNSUPPORTED where the backend has none.
   */
  createIrqchip(opts: IrqchipOptions): BackendIrqchip {
    const impl = this.owner;
    if (!impl.createIrqchip) throw new TsvmmError('TSVMM_UNSUPPORTED', `the ${this.backend.name} backend has no in-kernel irqchip`);
    if (this.vcpus.size > 0) throw new TsvmmError('TSVMM_BUSY', 'createIrqchip must come before the first vCPU');
    checkPageAligned('reserved gpa', opts.reserved.gpa);
    if (opts.reserved.size < 4 * PAGE_SIZE) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `the reserved region needs 4 pages, got ${hex(opts.reserved.size)}`);
    const { gpa, size } = opts.reserved;
    const clash = this.mappings.find((m) => m.gpa < gpa + size && gpa < m.gpa + m.size);
    if (clash) throw new TsvmmError('TSVMM_GPA_OVERLAP', `the reserved region ${hex(gpa)}+${hex(size)} overlaps the mapping at ${hex(clash.gpa)}`);
    return impl.createIrqchip(opts);
  }

  createVcpu(id: number): Vcpu {
    const impl = this.live;
    if (!Number.isInteger(id) || id < 0 || id >= this.capability.maxVcpus) {
      throw new TsvmmError('TSVMM_LIMIT', `vCPU id ${id} is outside 0-${this.capability.maxVcpus - 1}`);
    }
    if (this.vcpus.has(id)) throw new TsvmmError('TSVMM_BUSY', `vCPU ${id} already exists`);
    const vcpu = new Vcpu(this, id, impl.createVcpu(id), () => this.vcpus.delete(id));
    this.vcpus.set(id, vcpu);
    return vcpu;
  }

  get destroyed(): boolean {
    return this.impl === null;
  }

  /** Destroys the vCPUs and the machine, and frees the memory allocateMemory gave (memory from HostMemory.allocate stays the caller's). */
  destroy(): void {
    if (!this.impl) return;
    for (const v of [...this.vcpus.values()]) v.destroy();
    this.impl.destroy();
    this.impl = null;
    this.mappings.length = 0;
    this.hvas.length = 0;
    for (const m of this.allocated) m.free();
    this.allocated.length = 0;
  }
}

export class Vcpu {
  readonly machine: Machine;
  readonly id: number;
  /** The state as last fetched or set; only the groups fetched or set since the last run are valid. */
  readonly state: X64State = emptyState();
  /** The last exit returned by run(). */
  exit: VcpuExit = { kind: 'none' };
  private impl: BackendVcpu | null;
  private readonly onDestroy: () => void;
  /** Groups in `state` that are valid (fetched or set since the last run). */
  private cached = 0;
  /** Groups set but not yet committed to the backend. */
  private dirty = 0;
  private running = false;

  constructor(machine: Machine, id: number, impl: BackendVcpu, onDestroy: () => void) {
    this.machine = machine;
    this.id = id;
    this.impl = impl;
    this.onDestroy = onDestroy;
  }

  private get live(): BackendVcpu {
    if (!this.impl) throw new TsvmmError('TSVMM_DESTROYED', `vCPU ${this.id} was destroyed`);
    return this.impl;
  }

  /** Makes the groups in `mask` valid in `this.state` (nvmm_vcpu_getstate) and returns it. */
  getState(mask: number = STATE.ALL): X64State {
    const impl = this.live;
    checkMask(mask);
    const missing = mask & ~this.cached;
    if (missing) {
      impl.getState(this.state, missing);
      this.cached |= missing;
    }
    return this.state;
  }

  /** Marks the groups in `mask` of `this.state` to be committed at the next run (nvmm_vcpu_setstate). */
  setState(mask: number = STATE.ALL): void {
    this.live;
    checkMask(mask);
    this.dirty |= mask;
    this.cached |= mask;
  }

  /**
   * Commits the groups set since the last run now instead of at the next run. What is relative
   * to time needs it: a TSC set here is the TSC at this instant of guest time, where a commit at
   * the next run would make it that value at a later instant.
   */
  commitState(): void {
    const impl = this.live;
    if (this.running) throw new TsvmmError('TSVMM_BUSY', `vCPU ${this.id} is running`);
    if (this.dirty) {
      impl.setState(this.state, this.dirty);
      this.dirty = 0;
    }
  }

  /** The backend's local APIC of this vCPU (a backend with an irqchip), for snapshots; undefined without one. */
  getLapic(): KernelLapicState | undefined {
    return this.live.getLapic?.();
  }

  /** Whether the vCPU's XSAVE components beyond x87 and SSE (AVX and later) hold state the FPU group does not carry. */
  xsaveExtendedInUse(): boolean {
    return this.live.xsaveExtendedInUse?.() ?? false;
  }

  /** Puts a local APIC state getLapic gave (before the vCPU's state groups that depend on it: CR8). */
  setLapic(state: KernelLapicState): void {
    const impl = this.live;
    if (!impl.setLapic) throw new TsvmmError('TSVMM_UNSUPPORTED', `the ${this.machine.backend.name} backend has no local APIC of its own`);
    if (this.running) throw new TsvmmError('TSVMM_BUSY', `vCPU ${this.id} is running`);
    impl.setLapic(state);
    // CR8 is the TPR's: a group fetched before is stale now (groups set and not committed stay).
    this.cached = this.dirty;
  }

  /** Queues an event for delivery at the next run (nvmm_vcpu_inject). */
  inject(event: VcpuEvent): void {
    this.live.inject(validateEvent(event));
  }

  configure(conf: VcpuConfig): void {
    const impl = this.live;
    const cap = this.machine.capability.vcpuConf;
    switch (conf.kind) {
      case 'cpuid': {
        if (!cap.cpuid || (conf.exit && !cap.cpuidExit)) {
          throw new TsvmmError('TSVMM_UNSUPPORTED', `the ${this.machine.backend.name} backend cannot ${conf.exit ? 'exit on' : 'mask'} CPUID leaves`);
        }
        if (!Number.isInteger(conf.leaf) || conf.leaf < 0 || conf.leaf > 0xffffffff) {
          throw new TsvmmError('TSVMM_BAD_ARGUMENT', `CPUID leaf ${conf.leaf} is not a 32-bit value`);
        }
        const regs = (r?: Partial<CpuidRegs>): CpuidRegs => ({ eax: r?.eax ?? 0, ebx: r?.ebx ?? 0, ecx: r?.ecx ?? 0, edx: r?.edx ?? 0 });
        const set = regs(conf.set);
        const del = regs(conf.del);
        if (set.eax & del.eax || set.ebx & del.ebx || set.ecx & del.ecx || set.edx & del.edx) {
          throw new TsvmmError('TSVMM_BAD_ARGUMENT', `CPUID leaf ${hex(conf.leaf)}: the same bit is both set and deleted`);
        }
        impl.setCpuidPolicy({ leaf: conf.leaf, set, del, exit: conf.exit ?? false });
        return;
      }
      case 'tpr':
        if (!cap.tpr) throw new TsvmmError('TSVMM_UNSUPPORTED', `the ${this.machine.backend.name} backend cannot exit on TPR changes`);
        impl.setTprExit(conf.exitChanged);
        return;
    }
  }

  /**
   * Lets the vCPU serve port I/O, interrupts and timers through the VMM's devices without exits
   * (backends with Capability.inlineDevices: the software CPU). null returns to exits.
   */
  setInlineDevices(devices: InlineDevices | null): void {
    const impl = this.live;
    if (!this.machine.capability.inlineDevices || !impl.setInlineDevices) {
      throw new TsvmmError('TSVMM_UNSUPPORTED', `the ${this.machine.backend.name} backend cannot serve devices inside its vCPUs`);
    }
    impl.setInlineDevices(devices);
  }

  /**
   * What a debugger asks of the vCPU from its next run on: single-step, software and hardware
   * breakpoints, watchpoints (nvmm/debug.ts); their stops are `debug` exits. NO_DEBUG ends it.
   * TSVMM_UNSUPPORTED where the backend cannot (Capability.debug).
   */
  setDebug(config: DebugConfig): void {
    const impl = this.live;
    if (!this.machine.capability.debug || !impl.setDebug) {
      throw new TsvmmError('TSVMM_UNSUPPORTED', `the ${this.machine.backend.name} backend cannot debug its vCPUs`);
    }
    impl.setDebug(validateDebugConfig(config));
  }

  /** The run state the backend holds for this vCPU (KVM's in-kernel APIC), or undefined where the VMM's loop knows it. */
  runState(): VcpuRunState | undefined {
    return this.live.runState?.();
  }

  /** The backend's counters for this vCPU ({} where it keeps none). */
  statistics(): Record<string, number> {
    return this.live.statistics?.() ?? {};
  }

  /** Commits pending state and runs the vCPU until the next exit (nvmm_vcpu_run). */
  run(): VcpuExit {
    const impl = this.live;
    if (this.running) throw new TsvmmError('TSVMM_BUSY', `vCPU ${this.id} is already running (run() called from a callback?)`);
    this.running = true;
    try {
      if (this.dirty) {
        impl.setState(this.state, this.dirty);
        this.dirty = 0;
      }
      this.cached = 0;
      this.exit = impl.run();
      return this.exit;
    } finally {
      this.running = false;
    }
  }

  /**
   * nvmm_gva_to_gpa: translates a guest-virtual address with the vCPU's current paging state
   * (CR0, CR3, CR4, EFER). Throws TSVMM_GVA_FAULT where the walk fails.
   */
  gvaToGpa(gva: bigint): { gpa: number; prot: number } {
    const s = this.getState(STATE.CRS | STATE.MSRS);
    const paging = {
      cr0: Number(s.crs[CR.CR0]! & 0xffffffffn),
      cr3: Number(s.crs[CR.CR3]! & 0xfffffffffffffn), // the walker masks what each paging mode uses
      cr4: Number(s.crs[CR.CR4]! & 0xffffffffn),
      efer: Number(s.msrs[MSR.EFER]! & 0xffffffffn),
    };
    const out = new PageWalkResult();
    walkGva(paging, this.machine.physMemory, gva, WALK_NO_CHECK, out);
    if (out.status !== WALK_OK) {
      throw new TsvmmError('TSVMM_GVA_FAULT', `guest-virtual address ${hex(BigInt.asUintN(64, gva))} does not translate (${out.status === WALK_PAGE_FAULT ? 'page fault' : 'non-canonical'})`);
    }
    return { gpa: out.gpa, prot: out.prot };
  }

  /** Makes the current or next run() return `stopped` (nvmm_vcpu_stop). */
  stop(): void {
    stopVcpu(this.live.stopHandle());
  }

  /** What another thread passes to stopVcpu() to stop this vCPU (structured-cloneable). */
  stopHandle(): StopHandle {
    return this.live.stopHandle();
  }

  get destroyed(): boolean {
    return this.impl === null;
  }

  destroy(): void {
    if (!this.impl) return;
    this.impl.destroy();
    this.impl = null;
    this.onDestroy();
  }
}

function checkMask(mask: number): void {
  if (!Number.isInteger(mask) || mask & ~STATE.ALL) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `state mask ${hex(mask)} has unknown bits`);
}
