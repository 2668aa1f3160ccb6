/**
 * The state of interrupt controllers and a timer a backend runs itself (KVM's in-kernel 8259
 * pair, I/O APIC, 8254 PIT and local APICs: BackendIrqchip), as plain records whose fields are
 * the backend's own registers, named. The backend reads and writes them (snapshots); the monitor
 * translates them to and from the state of the board's own devices (vmm/irqchip-translation.ts),
 * so one snapshot format serves every backend.
 */

/** One 8259 as the backend keeps it (the fields of Linux's struct kvm_pic_state). */
export interface KernelPicState {
  /** Input levels last seen (edge detection). */
  lastIrr: number;
  irr: number;
  imr: number;
  isr: number;
  /** The IR level with the highest priority. */
  priorityAdd: number;
  irqBase: number;
  readRegSelect: boolean;
  poll: boolean;
  specialMask: boolean;
  /** 0: initialized; 1, 2, 3: ICW2, ICW3, ICW4 expected next. */
  initState: number;
  autoEoi: boolean;
  rotateOnAutoEoi: boolean;
  specialFullyNestedMode: boolean;
  /** ICW1 said an ICW4 follows. */
  init4: boolean;
  elcr: number;
  elcrMask: number;
}

/** The I/O APIC (struct kvm_ioapic_state). */
export interface KernelIoapicState {
  baseAddress: number;
  ioregsel: number;
  id: number;
  /** Pending requests, one bit per pin. */
  irr: number;
  /** The redirection entries, 64 bits each. */
  redirtbl: bigint[];
}

/** One 8254 counter (struct kvm_pit_channel_state). */
export interface KernelPitChannel {
  /** The count the channel runs from (1-65536). */
  count: number;
  latchedCount: number;
  /** 0: no count latched; else the access mode (PIT_RW_STATE) the latch is read in. */
  countLatched: number;
  statusLatched: boolean;
  status: number;
  /** PIT_RW_STATE: which byte the next read / write is. */
  readState: number;
  writeState: number;
  /** The first byte of a two-byte count written so far. */
  writeLatch: number;
  /** Access mode of the last control word: 1 LSB, 2 MSB, 3 LSB then MSB. */
  rwMode: number;
  /** Mode 0-5, or PIT_MODE_UNPROGRAMMED. */
  mode: number;
  bcd: boolean;
  gate: boolean;
  /** When the count was loaded, in the host's monotonic clock (ns; the same clock as common/clock.ts hostNs). */
  countLoadTime: bigint;
}

/** The 8254 (struct kvm_pit_state2). */
export interface KernelPitState {
  channels: KernelPitChannel[];
  /** PIT_FLAGS_*. */
  flags: number;
}

/** PIT access states (kvm_pit_channel_state's read_state, write_state, count_latched). */
export const PIT_RW_STATE = { LSB: 1, MSB: 2, WORD0: 3, WORD1: 4 } as const;
/** A counter no control word has programmed since reset. */
export const PIT_MODE_UNPROGRAMMED = 0xff;
/** kvm_pit_state2.flags: the speaker's data bit (port 0x61 bit 1) is set. */
export const PIT_FLAGS_SPEAKER_DATA_ON = 1 << 1;

export interface KernelIrqchipState {
  picMaster: KernelPicState;
  picSlave: KernelPicState;
  ioapic: KernelIoapicState;
  pit: KernelPitState;
}

/** The size of a local APIC's register page as the backend reads it (KVM_APIC_REG_SIZE). */
export const LAPIC_REGS_BYTES = 0x400;

/** A local APIC: its registers (32-bit words at their xAPIC offsets, little-endian) and IA32_APIC_BASE. */
export interface KernelLapicState {
  regs: Uint8Array;
  apicBase: bigint;
}
