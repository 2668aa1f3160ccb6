/**
 * Thin wrappers over the KVM ioctls: one short method per ioctl, struct marshalling through the
 * layouts of abi.ts. No policy lives here; kvm-backend.ts decides what to call and when.
 */
import { SyscallError, TsvmmError } from '../../common/errors.js';
import * as libc from '../../common/libc.js';
import { HostMemory } from '../../memory/host-memory.js';
import * as abi from './abi.js';

/** The KVM device; TSVMM_KVM_DEVICE overrides it (another path, or a missing one to test the fallback). */
export const KVM_DEVICE = process.env.TSVMM_KVM_DEVICE || '/dev/kvm';

function check(call: string, r: number): number {
  if (r < 0) throw new SyscallError(call, libc.lastErrno());
  return r;
}

export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

export interface MsrFilterRange {
  flags: number;
  base: number;
  /** One bit per MSR from `base`: 1 allows the access in the kernel, 0 denies it (exit to user space). */
  bitmap: Uint8Array;
}

/** The /dev/kvm file descriptor: capability queries and VM creation. */
export class KvmSystem {
  readonly fd: number;
  readonly vcpuMmapSize: number;
  private supportedCpuid: CpuidEntry[] | null = null;

  private constructor(fd: number) {
    this.fd = fd;
    this.vcpuMmapSize = check('KVM_GET_VCPU_MMAP_SIZE', libc.ioctlInt(fd, abi.IOCTL.KVM_GET_VCPU_MMAP_SIZE, 0));
  }

  /** Opens /dev/kvm; throws TSVMM_NO_KVM with the reason where it is missing or not permitted. */
  static open(path = KVM_DEVICE): KvmSystem {
    const fd = libc.open(path, libc.O_RDWR | libc.O_CLOEXEC);
    if (fd < 0) {
      const errno = libc.lastErrno();
      const why = errno === 2 ? 'does not exist' : errno === 13 || errno === 1 ? 'is not accessible (permission denied)' : `cannot be opened (errno ${errno})`;
      throw new TsvmmError('TSVMM_NO_KVM', `${path} ${why}`, { path, errno });
    }
    const version = libc.ioctlInt(fd, abi.IOCTL.KVM_GET_API_VERSION, 0);
    if (version !== abi.KVM_API_VERSION) {
      libc.close(fd);
      throw new TsvmmError('TSVMM_KVM_API', `${path} speaks KVM API ${version}, tsvmm needs ${abi.KVM_API_VERSION}`);
    }
    return new KvmSystem(fd);
  }

  checkExtension(cap: number): number {
    return Math.max(0, libc.ioctlInt(this.fd, abi.IOCTL.KVM_CHECK_EXTENSION, cap));
  }

  getSupportedCpuid(): CpuidEntry[] {
    if (!this.supportedCpuid) {
      const max = 256;
      const buf = new Uint8Array(abi.KVM_CPUID2.size + max * abi.KVM_CPUID_ENTRY2.size);
      const dv = new DataView(buf.buffer);
      dv.setUint32(abi.KVM_CPUID2.nent, max, true);
      check('KVM_GET_SUPPORTED_CPUID', libc.ioctlPtr(this.fd, abi.IOCTL.KVM_GET_SUPPORTED_CPUID, buf));
      const n = dv.getUint32(abi.KVM_CPUID2.nent, true);
      this.supportedCpuid = [];
      for (let i = 0; i < n; i++) {
        const o = abi.KVM_CPUID2.entries + i * abi.KVM_CPUID_ENTRY2.size;
        const E = abi.KVM_CPUID_ENTRY2;
        this.supportedCpuid.push({
          function: dv.getUint32(o + E.function, true),
          index: dv.getUint32(o + E.index, true),
          flags: dv.getUint32(o + E.flags, true),
          eax: dv.getUint32(o + E.eax, true),
          ebx: dv.getUint32(o + E.ebx, true),
          ecx: dv.getUint32(o + E.ecx, true),
          edx: dv.getUint32(o + E.edx, true),
        });
      }
    }
    return this.supportedCpuid.map((e) => ({ ...e }));
  }

  createVm(): KvmVm {
    return new KvmVm(this, check('KVM_CREATE_VM', libc.ioctlInt(this.fd, abi.IOCTL.KVM_CREATE_VM, 0)));
  }

  close(): void {
    libc.close(this.fd);
  }
}

export class KvmVm {
  readonly system: KvmSystem;
  readonly fd: number;

  constructor(system: KvmSystem, fd: number) {
    this.system = system;
    this.fd = fd;
  }

  setUserMemoryRegion(slot: number, flags: number, gpa: number, size: number, hva: number): void {
    const R = abi.KVM_USERSPACE_MEMORY_REGION;
    const buf = new Uint8Array(R.size);
    const dv = new DataView(buf.buffer);
    dv.setUint32(R.slot, slot, true);
    dv.setUint32(R.flags, flags, true);
    dv.setBigUint64(R.guest_phys_addr, BigInt(gpa), true);
    dv.setBigUint64(R.memory_size, BigInt(size), true);
    dv.setBigUint64(R.userspace_addr, BigInt(hva), true);
    check(`KVM_SET_USER_MEMORY_REGION(slot ${slot}, gpa 0x${gpa.toString(16)}, size 0x${size.toString(16)})`,
      libc.ioctlPtr(this.fd, abi.IOCTL.KVM_SET_USER_MEMORY_REGION, buf));
  }

  enableCap(cap: number, args: readonly number[]): void {
    const C = abi.KVM_ENABLE_CAP_STRUCT;
    const buf = new Uint8Array(C.size);
    const dv = new DataView(buf.buffer);
    dv.setUint32(C.cap, cap, true);
    args.forEach((a, i) => dv.setBigUint64(C.args + 8 * i, BigInt(a), true));
    check(`KVM_ENABLE_CAP(${cap})`, libc.ioctlPtr(this.fd, abi.IOCTL.KVM_ENABLE_CAP, buf));
  }

  setMsrFilter(flags: number, ranges: readonly MsrFilterRange[]): void {
    if (ranges.length > abi.KVM_MSR_FILTER_MAX_RANGES) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `${ranges.length} MSR filter ranges`);
    const F = abi.KVM_MSR_FILTER;
    const R = abi.KVM_MSR_FILTER_RANGE;
    const bitmapBytes = ranges.reduce((n, r) => n + ((r.bitmap.length + 7) & ~7), 0);
    // The kernel reads the bitmaps through pointers, so they must live at known host addresses.
    const bitmaps = HostMemory.allocate(Math.max(4096, Math.ceil(bitmapBytes / 4096) * 4096));
    try {
      const buf = new Uint8Array(F.size);
      const dv = new DataView(buf.buffer);
      dv.setUint32(F.flags, flags, true);
      let off = 0;
      ranges.forEach((r, i) => {
        const o = F.ranges + i * R.size;
        bitmaps.bytes.set(r.bitmap, off);
        dv.setUint32(o + R.flags, r.flags, true);
        dv.setUint32(o + R.nmsrs, r.bitmap.length * 8, true);
        dv.setUint32(o + R.base, r.base, true);
        dv.setBigUint64(o + R.bitmap, BigInt(bitmaps.hva + off), true);
        off += (r.bitmap.length + 7) & ~7;
      });
      check('KVM_X86_SET_MSR_FILTER', libc.ioctlPtr(this.fd, abi.IOCTL.KVM_X86_SET_MSR_FILTER, buf));
    } finally {
      bitmaps.free();
    }
  }

  setTssAddr(gpa: number): void {
    check(`KVM_SET_TSS_ADDR(0x${gpa.toString(16)})`, libc.ioctlInt(this.fd, abi.IOCTL.KVM_SET_TSS_ADDR, gpa));
  }

  setIdentityMapAddr(gpa: number): void {
    const buf = new Uint8Array(8);
    new DataView(buf.buffer).setBigUint64(0, BigInt(gpa), true);
    check(`KVM_SET_IDENTITY_MAP_ADDR(0x${gpa.toString(16)})`, libc.ioctlPtr(this.fd, abi.IOCTL.KVM_SET_IDENTITY_MAP_ADDR, buf));
  }

  createIrqchip(): void {
    check('KVM_CREATE_IRQCHIP', libc.ioctlInt(this.fd, abi.IOCTL.KVM_CREATE_IRQCHIP, 0));
  }

  createPit2(flags: number): void {
    const buf = new Uint8Array(abi.KVM_PIT_CONFIG.size);
    new DataView(buf.buffer).setUint32(abi.KVM_PIT_CONFIG.flags, flags, true);
    check('KVM_CREATE_PIT2', libc.ioctlPtr(this.fd, abi.IOCTL.KVM_CREATE_PIT2, buf));
  }

  /** A VM ioctl that reads (or reads and writes) a struct in `buf`. */
  get(name: keyof typeof abi.IOCTL, buf: Uint8Array): void {
    check(name, libc.ioctlPtr(this.fd, abi.IOCTL[name], buf));
  }

  /** A VM ioctl that writes the struct in `buf`. */
  set(name: keyof typeof abi.IOCTL, buf: Uint8Array): void {
    check(name, libc.ioctlPtr(this.fd, abi.IOCTL[name], buf));
  }

  /** Sets the level of a GSI of the in-kernel irqchip (PIC pins 0-15, IOAPIC pins 0-23). */
  irqLine(gsi: number, level: boolean): void {
    const buf = this.irqLevel;
    this.irqLevelView.setUint32(abi.KVM_IRQ_LEVEL.irq, gsi, true);
    this.irqLevelView.setUint32(abi.KVM_IRQ_LEVEL.level, level ? 1 : 0, true);
    check(`KVM_IRQ_LINE(${gsi})`, libc.ioctlPtr(this.fd, abi.IOCTL.KVM_IRQ_LINE, buf));
  }

  private readonly irqLevel = new Uint8Array(abi.KVM_IRQ_LEVEL.size);
  private readonly irqLevelView = new DataView(this.irqLevel.buffer);

  createVcpu(id: number): KvmVcpuFd {
    const fd = check(`KVM_CREATE_VCPU(${id})`, libc.ioctlInt(this.fd, abi.IOCTL.KVM_CREATE_VCPU, id));
    return new KvmVcpuFd(fd, this.system.vcpuMmapSize);
  }

  close(): void {
    libc.close(this.fd);
  }
}

/** A vCPU file descriptor and its mapped kvm_run area. */
export class KvmVcpuFd {
  readonly fd: number;
  /** The kvm_run area (zero-copy). */
  readonly run: Uint8Array;
  readonly runView: DataView;
  readonly runAddress: number;
  private readonly runPointer: libc.HostPointer;
  private readonly runSize: number;

  constructor(fd: number, mmapSize: number) {
    this.fd = fd;
    this.runSize = mmapSize;
    this.runPointer = libc.mmap(null, mmapSize, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, fd, 0);
    if (libc.isMapFailed(this.runPointer)) throw new SyscallError('mmap(kvm_run)', libc.lastErrno());
    this.runAddress = libc.addressOf(this.runPointer);
    this.run = new Uint8Array(libc.viewOf(this.runPointer, mmapSize));
    this.runView = new DataView(this.run.buffer);
  }

  /** KVM_RUN: returns 0, or -errno (EINTR when kicked or immediate_exit was set). */
  kvmRun(): number {
    return libc.ioctlInt(this.fd, abi.IOCTL.KVM_RUN, 0) < 0 ? -libc.lastErrno() : 0;
  }

  /** A read-struct ioctl into `buf`. */
  get(name: keyof typeof abi.IOCTL, buf: Uint8Array): void {
    check(name, libc.ioctlPtr(this.fd, abi.IOCTL[name], buf));
  }

  /** A write-struct ioctl from `buf`. */
  set(name: keyof typeof abi.IOCTL, buf: Uint8Array): void {
    check(name, libc.ioctlPtr(this.fd, abi.IOCTL[name], buf));
  }

  setCpuid2(entries: readonly CpuidEntry[]): void {
    const E = abi.KVM_CPUID_ENTRY2;
    const buf = new Uint8Array(abi.KVM_CPUID2.size + entries.length * E.size);
    const dv = new DataView(buf.buffer);
    dv.setUint32(abi.KVM_CPUID2.nent, entries.length, true);
    entries.forEach((e, i) => {
      const o = abi.KVM_CPUID2.entries + i * E.size;
      dv.setUint32(o + E.function, e.function, true);
      dv.setUint32(o + E.index, e.index, true);
      dv.setUint32(o + E.flags, e.flags, true);
      dv.setUint32(o + E.eax, e.eax >>> 0, true);
      dv.setUint32(o + E.ebx, e.ebx >>> 0, true);
      dv.setUint32(o + E.ecx, e.ecx >>> 0, true);
      dv.setUint32(o + E.edx, e.edx >>> 0, true);
    });
    check('KVM_SET_CPUID2', libc.ioctlPtr(this.fd, abi.IOCTL.KVM_SET_CPUID2, buf));
  }

  /** KVM_GET_MSRS / KVM_SET_MSRS for the given indices; `values` is read (set) or filled (get). */
  msrs(op: 'get' | 'set', indices: readonly number[], values: BigUint64Array): void {
    const M = abi.KVM_MSRS;
    const E = abi.KVM_MSR_ENTRY;
    const buf = new Uint8Array(M.size + indices.length * E.size);
    const dv = new DataView(buf.buffer);
    dv.setUint32(M.nmsrs, indices.length, true);
    indices.forEach((idx, i) => {
      dv.setUint32(M.entries + i * E.size + E.index, idx, true);
      if (op === 'set') dv.setBigUint64(M.entries + i * E.size + E.data, values[i]!, true);
    });
    const name = op === 'get' ? 'KVM_GET_MSRS' : 'KVM_SET_MSRS';
    const n = check(name, libc.ioctlPtr(this.fd, abi.IOCTL[name], buf));
    if (n !== indices.length) throw new TsvmmError('TSVMM_SYSCALL', `${name}: KVM handled ${n} of ${indices.length} MSRs (stopped at 0x${indices[n]?.toString(16)})`);
    if (op === 'get') indices.forEach((_, i) => (values[i] = dv.getBigUint64(M.entries + i * E.size + E.data, true)));
  }

  interrupt(vector: number): void {
    const buf = new Uint8Array(4);
    new DataView(buf.buffer).setUint32(0, vector, true);
    check('KVM_INTERRUPT', libc.ioctlPtr(this.fd, abi.IOCTL.KVM_INTERRUPT, buf));
  }

  nmi(): void {
    check('KVM_NMI', libc.ioctlInt(this.fd, abi.IOCTL.KVM_NMI, 0));
  }

  /** KVM_SET_GUEST_DEBUG: the control word and, with KVM_GUESTDBG_USE_HW_BP, debugreg[0..7] (DR0-DR3, -, -, DR6, DR7). */
  setGuestDebug(control: number, debugRegs: readonly bigint[] = []): void {
    const buf = new Uint8Array(abi.KVM_GUEST_DEBUG.size);
    const dv = new DataView(buf.buffer);
    dv.setUint32(abi.KVM_GUEST_DEBUG.control, control, true);
    debugRegs.slice(0, 8).forEach((v, i) => dv.setBigUint64(abi.KVM_GUEST_DEBUG['arch.debugreg'] + 8 * i, v, true));
    check('KVM_SET_GUEST_DEBUG', libc.ioctlPtr(this.fd, abi.IOCTL.KVM_SET_GUEST_DEBUG, buf));
  }

  close(): void {
    libc.munmap(this.runPointer, this.runSize);
    libc.close(this.fd);
  }
}
