/**
 * The `<linux/kvm.h>` ABI for x86-64, defined once: ioctl numbers, exit reasons, capabilities and
 * struct layouts (byte offsets; field names are the C names so that test/kvm/abi.test.ts can check
 * every one against the real header with gcc's offsetof).
 */

const KVMIO = 0xae;
const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;

function ioc(dir: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0;
}
const io = (nr: number) => ioc(IOC_NONE, nr, 0);
const ior = (nr: number, size: number) => ioc(IOC_READ, nr, size);
const iow = (nr: number, size: number) => ioc(IOC_WRITE, nr, size);
const iowr = (nr: number, size: number) => ioc(IOC_READ | IOC_WRITE, nr, size);

export const KVM_API_VERSION = 12;

/** ioctl request numbers, named as in the header. */
export const IOCTL = {
  // system
  KVM_GET_API_VERSION: io(0x00),
  KVM_CREATE_VM: io(0x01),
  KVM_CHECK_EXTENSION: io(0x03),
  KVM_GET_VCPU_MMAP_SIZE: io(0x04),
  KVM_GET_SUPPORTED_CPUID: iowr(0x05, 8),
  // VM
  KVM_CREATE_VCPU: io(0x41),
  KVM_SET_USER_MEMORY_REGION: iow(0x46, 32),
  KVM_SET_TSS_ADDR: io(0x47),
  KVM_SET_IDENTITY_MAP_ADDR: iow(0x48, 8),
  KVM_CREATE_IRQCHIP: io(0x60),
  KVM_IRQ_LINE: iow(0x61, 8),
  KVM_IRQFD: iow(0x76, 32),
  KVM_GET_IRQCHIP: iowr(0x62, 520),
  KVM_SET_IRQCHIP: ior(0x63, 520),
  KVM_CREATE_PIT2: iow(0x77, 64),
  KVM_GET_PIT2: ior(0x9f, 112),
  KVM_SET_PIT2: iow(0xa0, 112),
  KVM_IOEVENTFD: iow(0x79, 64),
  KVM_ENABLE_CAP: iow(0xa3, 104),
  KVM_X86_SET_MSR_FILTER: iow(0xc6, 392),
  // vCPU
  KVM_RUN: io(0x80),
  KVM_GET_REGS: ior(0x81, 144),
  KVM_SET_REGS: iow(0x82, 144),
  KVM_GET_SREGS: ior(0x83, 312),
  KVM_SET_SREGS: iow(0x84, 312),
  KVM_TRANSLATE: iowr(0x85, 24),
  KVM_INTERRUPT: iow(0x86, 4),
  KVM_GET_MSRS: iowr(0x88, 8),
  KVM_SET_MSRS: iow(0x89, 8),
  KVM_GET_FPU: ior(0x8c, 416),
  KVM_SET_FPU: iow(0x8d, 416),
  KVM_SET_CPUID2: iow(0x90, 8),
  KVM_GET_CPUID2: iowr(0x91, 8),
  KVM_GET_LAPIC: ior(0x8e, 1024),
  KVM_SET_LAPIC: iow(0x8f, 1024),
  KVM_GET_MP_STATE: ior(0x98, 4),
  KVM_SET_MP_STATE: iow(0x99, 4),
  KVM_NMI: io(0x9a),
  KVM_SET_GUEST_DEBUG: iow(0x9b, 72),
  KVM_GET_VCPU_EVENTS: ior(0x9f, 64),
  KVM_SET_VCPU_EVENTS: iow(0xa0, 64),
  KVM_GET_DEBUGREGS: ior(0xa1, 128),
  KVM_SET_DEBUGREGS: iow(0xa2, 128),
  KVM_GET_XSAVE: ior(0xa4, 4096),
  KVM_SET_XSAVE: iow(0xa5, 4096),
  KVM_GET_XCRS: ior(0xa6, 392),
  KVM_SET_XCRS: iow(0xa7, 392),
} as const;

/** Capabilities tsvmm asks about (KVM_CHECK_EXTENSION). */
export const CAP = {
  KVM_CAP_IRQCHIP: 0,
  KVM_CAP_HLT: 1,
  KVM_CAP_USER_MEMORY: 3,
  KVM_CAP_SET_TSS_ADDR: 4,
  KVM_CAP_EXT_CPUID: 7,
  KVM_CAP_NR_VCPUS: 9,
  KVM_CAP_NR_MEMSLOTS: 10,
  KVM_CAP_PIT2: 33,
  KVM_CAP_SET_IDENTITY_MAP_ADDR: 37,
  KVM_CAP_IOEVENTFD: 36,
  KVM_CAP_SET_GUEST_DEBUG: 23,
  KVM_CAP_IRQFD: 32,
  KVM_CAP_VCPU_EVENTS: 41,
  KVM_CAP_DEBUGREGS: 50,
  KVM_CAP_XCRS: 56,
  KVM_CAP_MAX_VCPUS: 66,
  KVM_CAP_IMMEDIATE_EXIT: 136,
  KVM_CAP_X86_USER_SPACE_MSR: 188,
  KVM_CAP_X86_MSR_FILTER: 189,
  KVM_CAP_SYNC_REGS: 74,
} as const;

/** kvm_run.exit_reason values. */
export const EXIT = {
  KVM_EXIT_UNKNOWN: 0,
  KVM_EXIT_EXCEPTION: 1,
  KVM_EXIT_IO: 2,
  KVM_EXIT_HYPERCALL: 3,
  KVM_EXIT_DEBUG: 4,
  KVM_EXIT_HLT: 5,
  KVM_EXIT_MMIO: 6,
  KVM_EXIT_IRQ_WINDOW_OPEN: 7,
  KVM_EXIT_SHUTDOWN: 8,
  KVM_EXIT_FAIL_ENTRY: 9,
  KVM_EXIT_INTR: 10,
  KVM_EXIT_SET_TPR: 11,
  KVM_EXIT_TPR_ACCESS: 12,
  KVM_EXIT_NMI: 16,
  KVM_EXIT_INTERNAL_ERROR: 17,
  KVM_EXIT_SYSTEM_EVENT: 24,
  KVM_EXIT_X86_RDMSR: 29,
  KVM_EXIT_X86_WRMSR: 30,
} as const;

export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;
/** KVM_CAP_X86_USER_SPACE_MSR reasons: which MSR accesses exit to user space. */
/** struct kvm_mp_state's values (KVM_GET_MP_STATE; the in-kernel local APIC's view of the vCPU). */
export const MP_STATE = { RUNNABLE: 0, UNINITIALIZED: 1, INIT_RECEIVED: 2, HALTED: 3, SIPI_RECEIVED: 4 } as const;

export const KVM_MSR_EXIT_REASON_INVAL = 1 << 0;
export const KVM_MSR_EXIT_REASON_UNKNOWN = 1 << 1;
export const KVM_MSR_EXIT_REASON_FILTER = 1 << 2;
/** kvm_msr_filter flags and range flags. */
export const KVM_MSR_FILTER_DEFAULT_DENY = 1 << 0;
export const KVM_MSR_FILTER_READ = 1 << 0;
export const KVM_MSR_FILTER_WRITE = 1 << 1;
export const KVM_MSR_FILTER_MAX_RANGES = 16;
/** kvm_guest_debug.control */
export const KVM_GUESTDBG_ENABLE = 1 << 0;
export const KVM_GUESTDBG_SINGLESTEP = 1 << 1;
/** kvm_guest_debug.control, x86: #BP exits to user space (KVM_EXIT_DEBUG), and the debug registers are the VMM's. */
export const KVM_GUESTDBG_USE_SW_BP = 0x00010000;
export const KVM_GUESTDBG_USE_HW_BP = 0x00020000;
/** kvm_vcpu_events.flags: which optional parts of the struct are valid on SET. */
export const KVM_VCPUEVENT_VALID_NMI_PENDING = 1 << 0;
export const KVM_VCPUEVENT_VALID_SHADOW = 1 << 2;

/** struct kvm_run (only the parts tsvmm reads or writes). */
export const KVM_RUN = {
  request_interrupt_window: 0,
  immediate_exit: 1,
  exit_reason: 8,
  ready_for_interrupt_injection: 12,
  if_flag: 13,
  flags: 14,
  cr8: 16,
  apic_base: 24,
  'io.direction': 32,
  'io.size': 33,
  'io.port': 34,
  'io.count': 36,
  'io.data_offset': 40,
  'mmio.phys_addr': 32,
  'mmio.data': 40,
  'mmio.len': 48,
  'mmio.is_write': 52,
  'msr.error': 32,
  'msr.reason': 40,
  'msr.index': 44,
  'msr.data': 48,
  'debug.arch.exception': 32,
  'debug.arch.pc': 40,
  'debug.arch.dr6': 48,
  'debug.arch.dr7': 56,
  'internal.suberror': 32,
  'internal.ndata': 36,
  'internal.data': 40,
  'fail_entry.hardware_entry_failure_reason': 32,
  'system_event.type': 32,
  kvm_valid_regs: 288,
  kvm_dirty_regs: 296,
  's.regs.regs': 304,
} as const;

/** kvm_run.kvm_valid_regs bits (KVM_CAP_SYNC_REGS): register sets KVM copies into kvm_run on exit. */
export const KVM_SYNC_X86_REGS = 1 << 0;

export const KVM_REGS = {
  size: 144,
  rax: 0, rbx: 8, rcx: 16, rdx: 24, rsi: 32, rdi: 40, rsp: 48, rbp: 56,
  r8: 64, r9: 72, r10: 80, r11: 88, r12: 96, r13: 104, r14: 112, r15: 120,
  rip: 128, rflags: 136,
} as const;

export const KVM_SEGMENT = {
  size: 24,
  base: 0, limit: 8, selector: 12, type: 14, present: 15, dpl: 16, db: 17, s: 18, l: 19, g: 20, avl: 21, unusable: 22,
} as const;

export const KVM_DTABLE = { size: 16, base: 0, limit: 8 } as const;

export const KVM_SREGS = {
  size: 312,
  cs: 0, ds: 24, es: 48, fs: 72, gs: 96, ss: 120, tr: 144, ldt: 168,
  gdt: 192, idt: 208,
  cr0: 224, cr2: 232, cr3: 240, cr4: 248, cr8: 256, efer: 264, apic_base: 272, interrupt_bitmap: 280,
} as const;

export const KVM_FPU = {
  size: 416,
  fpr: 0, fcw: 128, fsw: 130, ftwx: 132, last_opcode: 134, last_ip: 136, last_dp: 144, xmm: 152, mxcsr: 408,
} as const;

export const KVM_DEBUGREGS = { size: 128, db: 0, dr6: 32, dr7: 40, flags: 48 } as const;

/** struct kvm_msrs header, then struct kvm_msr_entry[nmsrs]. */
export const KVM_MSRS = { size: 8, nmsrs: 0, entries: 8 } as const;
export const KVM_MSR_ENTRY = { size: 16, index: 0, data: 8 } as const;

/** struct kvm_cpuid2 header, then struct kvm_cpuid_entry2[nent]. */
export const KVM_CPUID2 = { size: 8, nent: 0, entries: 8 } as const;
export const KVM_CPUID_ENTRY2 = { size: 40, function: 0, index: 4, flags: 8, eax: 12, ebx: 16, ecx: 20, edx: 24 } as const;
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1 << 0;

export const KVM_VCPU_EVENTS = {
  size: 64,
  'exception.injected': 0,
  'exception.nr': 1,
  'exception.has_error_code': 2,
  'exception.pending': 3,
  'exception.error_code': 4,
  'interrupt.injected': 8,
  'interrupt.nr': 9,
  'interrupt.soft': 10,
  'interrupt.shadow': 11,
  'nmi.injected': 12,
  'nmi.pending': 13,
  'nmi.masked': 14,
  sipi_vector: 16,
  flags: 20,
} as const;

export const KVM_USERSPACE_MEMORY_REGION = {
  size: 32, slot: 0, flags: 4, guest_phys_addr: 8, memory_size: 16, userspace_addr: 24,
} as const;
export const KVM_MEM_READONLY = 1 << 1;

export const KVM_ENABLE_CAP_STRUCT = { size: 104, cap: 0, flags: 4, args: 8 } as const;

export const KVM_MSR_FILTER = { size: 392, flags: 0, ranges: 8 } as const;
export const KVM_MSR_FILTER_RANGE = { size: 24, flags: 0, nmsrs: 4, base: 8, bitmap: 16 } as const;

export const KVM_GUEST_DEBUG = { size: 72, control: 0, 'arch.debugreg': 8 } as const;

export const KVM_TRANSLATION = {
  size: 24, linear_address: 0, physical_address: 8, valid: 16, writeable: 17, usermode: 18,
} as const;

/** struct kvm_xsave: the XSAVE image (FXSAVE-format legacy region, then the XSAVE header). */
export const KVM_XSAVE = { size: 4096, region: 0 } as const;

/** struct kvm_xcrs: nr_xcrs, flags, then struct kvm_xcr { xcr, reserved, value }[16]. */
export const KVM_XCRS = { size: 392, nr_xcrs: 0, flags: 4, xcrs: 8 } as const;
export const KVM_XCR = { size: 16, xcr: 0, value: 8 } as const;

export const KVM_IRQ_LEVEL = { size: 8, irq: 0, level: 4 } as const;
export const KVM_PIT_CONFIG = { size: 64, flags: 0 } as const;
/** kvm_pit_config.flags: port 0x61 (speaker) does not exit to user space. */
export const KVM_PIT_SPEAKER_DUMMY = 1;
export const KVM_LAPIC_STATE = { size: 1024, regs: 0 } as const;

/** struct kvm_irqchip: which chip (KVM_IRQCHIP_*), then its state in a 512-byte union. */
export const KVM_IRQCHIP = { size: 520, chip_id: 0, chip: 8 } as const;
export const KVM_IRQCHIP_PIC_MASTER = 0;
export const KVM_IRQCHIP_PIC_SLAVE = 1;
export const KVM_IRQCHIP_IOAPIC = 2;
/** struct kvm_pic_state: one 8259 as KVM models it (one byte per field). */
export const KVM_PIC_STATE = {
  size: 16, last_irr: 0, irr: 1, imr: 2, isr: 3, priority_add: 4, irq_base: 5, read_reg_select: 6, poll: 7,
  special_mask: 8, init_state: 9, auto_eoi: 10, rotate_on_auto_eoi: 11, special_fully_nested_mode: 12, init4: 13, elcr: 14, elcr_mask: 15,
} as const;
/** struct kvm_ioapic_state: then KVM_IOAPIC_NUM_PINS redirection entries of 8 bytes from `redirtbl`. */
export const KVM_IOAPIC_STATE = { size: 216, base_address: 0, ioregsel: 8, id: 12, irr: 16, redirtbl: 24 } as const;
export const KVM_IOAPIC_NUM_PINS = 24;
/** struct kvm_pit_channel_state: one 8254 counter as KVM models it. */
export const KVM_PIT_CHANNEL_STATE = {
  size: 24, count: 0, latched_count: 4, count_latched: 6, status_latched: 7, status: 8, read_state: 9, write_state: 10,
  write_latch: 11, rw_mode: 12, mode: 13, bcd: 14, gate: 15, count_load_time: 16,
} as const;
/** struct kvm_pit_state2: three channels, flags (KVM_PIT_FLAGS_*), reserved words. */
export const KVM_PIT_STATE2 = { size: 112, channels: 0, flags: 72, reserved: 76 } as const;
/** kvm_pit_state2.flags: the HPET's legacy replacement route is on; the speaker's data bit (port 0x61 bit 1). */
export const KVM_PIT_FLAGS_HPET_LEGACY = 1 << 0;
export const KVM_PIT_FLAGS_SPEAKER_DATA_ON = 1 << 1;

/** Every layout above with its C struct name, for the header cross-check. */
export const STRUCTS: Record<string, Record<string, number>> = {
  kvm_run: KVM_RUN,
  kvm_regs: KVM_REGS,
  kvm_segment: KVM_SEGMENT,
  kvm_dtable: KVM_DTABLE,
  kvm_sregs: KVM_SREGS,
  kvm_fpu: KVM_FPU,
  kvm_debugregs: KVM_DEBUGREGS,
  kvm_msrs: KVM_MSRS,
  kvm_msr_entry: KVM_MSR_ENTRY,
  kvm_cpuid2: KVM_CPUID2,
  kvm_cpuid_entry2: KVM_CPUID_ENTRY2,
  kvm_vcpu_events: KVM_VCPU_EVENTS,
  kvm_userspace_memory_region: KVM_USERSPACE_MEMORY_REGION,
  kvm_enable_cap: KVM_ENABLE_CAP_STRUCT,
  kvm_msr_filter: KVM_MSR_FILTER,
  kvm_msr_filter_range: KVM_MSR_FILTER_RANGE,
  kvm_guest_debug: KVM_GUEST_DEBUG,
  kvm_translation: KVM_TRANSLATION,
  kvm_xcrs: KVM_XCRS,
  kvm_xsave: KVM_XSAVE,
  kvm_irq_level: KVM_IRQ_LEVEL,
  kvm_pit_config: KVM_PIT_CONFIG,
  kvm_lapic_state: KVM_LAPIC_STATE,
  kvm_irqchip: KVM_IRQCHIP,
  kvm_pic_state: KVM_PIC_STATE,
  kvm_ioapic_state: KVM_IOAPIC_STATE,
  kvm_pit_channel_state: KVM_PIT_CHANNEL_STATE,
  kvm_pit_state2: KVM_PIT_STATE2,
  kvm_xcr: KVM_XCR,
};
