/**
 * A local APIC: in xAPIC mode the 4 KiB register page at IA32_APIC_BASE (0xFEE00000 by default),
 * in x2APIC mode the MSRs 0x800-0x8FF; one per vCPU. The device sees offsets into its page (MmioDevice); the CPU side is a handful of
 * methods (pendingInterrupt / acknowledge, the APIC base MSR, CR8), and everything it sends
 * (IPIs, EOIs of level-triggered vectors, NMI/INIT/SIPI) goes out through collaborators.
 *
 * The soft backend's boards give one to each vCPU (vmm/interrupts.ts, BoardInterrupts in APIC
 * mode): the CPU reaches it through InlineDevices.apic (CR8, IA32_APIC_BASE, IA32_TSC_DEADLINE),
 * its page through the board's per-vCPU MMIO dispatch, and it answers the CPU's
 * interruptPending / acknowledge. On KVM the in-kernel APIC is used instead.
 *
 * Model (Intel SDM vol. 3A, chapter "Advanced Programmable Interrupt Controller (APIC)"; the
 * register map table "Local APIC Register Address Map"):
 * - Registers: ID (writable, bits 31-24), version (0x14, 6 LVT entries: max LVT 5, no EOI
 *   broadcast suppression), TPR, APR (reads 0), PPR (derived), EOI, LDR, DFR (flat or cluster),
 *   SVR (APIC software enable bit 8, spurious vector; focus checking and EOI suppression are
 *   not modelled), ISR/TMR/IRR (256 bits each), ESR (write to update, then read), ICR, the LVT
 *   entries (CMCI, timer, thermal, performance, LINT0, LINT1, error), timer initial/current
 *   count and divide configuration.
 * - Accesses: a register is the aligned 32-bit word at a 16-byte boundary. Reads of any size
 *   return the bytes of that word (bytes 4-15 of each 16-byte slot read 0); writes other than a
 *   4-byte write at the slot's start are ignored (the SDM leaves them undefined).
 * - Software disable (SVR bit 8 clear, the reset state) sets and pins every LVT mask bit and
 *   drops fixed interrupts arriving from outside; NMI, INIT and SIPI are still accepted.
 * - Hardware disable (IA32_APIC_BASE bit 11 clear): the APIC accepts no messages and the
 *   CPU's INTR is the ExtINT source directly (the LINT0 pin acting as INTR); re-enabling gives
 *   the power-up register state.
 * - x2APIC mode (SDM "Extended XAPIC (x2APIC)"), with the `x2apic` option (then advertise
 *   CPUID.1:ECX.X2APIC; without it bit 10 is reserved): IA32_APIC_BASE bit 10 (EXTD) with bit 11
 *   (EN) enters it from xAPIC mode; the only way out is EN = EXTD = 0 (disabled, the registers
 *   reset); x2APIC to xAPIC, disabled to x2APIC and EXTD without EN are refused (#GP). The
 *   registers are then the MSRs of x86/apic.ts's X2APIC_REGISTERS (readX2apicMsr /
 *   writeX2apicMsr; false / undefined: #GP, also for every one of them outside x2APIC mode):
 *   ID is the 32-bit x2APIC ID (the hardware's, read-only), LDR is derived from it (read-only),
 *   there is no DFR, the ICR is one 64-bit register with a 32-bit destination, SELF IPI sends a
 *   fixed edge vector to this APIC, EOI and ESR take only 0, and a write of a reserved bit that
 *   X2APIC_RESERVED lists #GPs (the other registers drop the bits they do not keep, as in xAPIC mode).
 *   The page does not respond (xapicMmio is false: the board passes its accesses on). INIT keeps
 *   the mode. A message with an 8-bit destination (the I/O APIC, without interrupt remapping)
 *   reaches an x2APIC by physical ID or broadcast (0xFF) only.
 * - Priority: PPR = TPR if TPR[7:4] >= ISRV[7:4], else ISRV & 0xF0. An IRR vector is delivered
 *   when its class (bits 7-4) is above PPR's class; delivery moves it to ISR. An acknowledge with
 *   nothing deliverable returns the spurious vector (SVR bits 7-0) and sets no ISR bit.
 * - EOI clears the highest ISR bit; if that vector was level-triggered (TMR), `onEoi(vector)` is
 *   called so the board can tell the I/O APIC (the EOI broadcast).
 * - ExtINT: when LVT LINT0 is unmasked with delivery mode ExtINT (virtual wire mode, what
 *   firmware programs and Linux keeps in PIC mode), or an I/O APIC sent an ExtINT message, the
 *   8259's INTR is offered ahead of the APIC's own vectors and acknowledge() runs the 8259's
 *   INTA cycle. ExtINT interrupts are not subject to PPR.
 * - LINT1 (and LINT0 in fixed/NMI mode) are inputs driven by setLint(); the NMI delivery mode
 *   calls onNmi on a rising edge.
 * - ICR: writing the low word sends the IPI at once (delivery status always reads idle) through
 *   `sendIpi`; fixed, lowest priority, NMI, INIT (assert; the level de-assert is ignored),
 *   start-up; shorthands self / all / all-but-self; physical and logical destinations. Routing is
 *   the board's: `deliverToApics` below is the rule (lowest priority goes to the first matching
 *   APIC, "lowest priority as fixed"). Sending a vector below 16 sets ESR "send illegal vector".
 * - Timer: one-shot and periodic from the `now()` clock (ns) and a bus clock of `timerHz`
 *   (default 1 GHz) divided by the divide configuration. TSC-deadline mode (LVT timer bits
 *   18-17 = 10) only with the `tscDeadline` option (then advertise CPUID.1:ECX.TSC_DEADLINE;
 *   without it bit 18 is not writable): IA32_TSC_DEADLINE arrives already converted to the
 *   clock's nanoseconds (the CPU knows its TSC's offset from the clock); 0 disarms, expiry
 *   clears it, it reads 0 and ignores writes in the other modes, and in this mode the initial
 *   count ignores writes and the current count reads 0. A write of the LVT timer that enters or
 *   leaves TSC-deadline mode disarms the timer (the SDM's "changing the mode disarms"). The
 *   board asks nextDeadline() and calls tick() when it passes; a masked timer counts without
 *   interrupting. Periodic expiries missed between two ticks raise the vector once, or, with
 *   `reinjectPeriodic`, each one after the previous was acknowledged (the reinjecting PIT's rule).
 * - Not modelled: thermal, performance and CMCI interrupt sources (their LVTs are plain
 *   registers), arbitration priority, remote read, focus processor checking, SMI.
 */
import type { NowNs } from '../common/clock.js';
import type { MmioDevice } from './bus.js';
import { readLe } from './bus.js';
import {
  APIC_APR, APIC_BASE_BSP, APIC_BASE_ENABLE, APIC_BROADCAST, APIC_DEFAULT_BASE, APIC_DFR, APIC_EOI, APIC_ESR, APIC_ICR_HIGH,
  APIC_ICR_LOW, APIC_ID, APIC_IRR, APIC_ISR, APIC_LDR, APIC_LVT_CMCI, APIC_LVT_ERROR, APIC_LVT_LINT0, APIC_LVT_LINT1,
  APIC_LVT_PERF, APIC_LVT_THERMAL, APIC_LVT_TIMER, APIC_PPR, APIC_RRD, APIC_SVR, APIC_TIMER_CURRENT, APIC_TIMER_DIVIDE,
  APIC_TIMER_INITIAL, APIC_TMR, APIC_TPR, APIC_VERSION, DELIVERY_MODE_MASK, DELIVERY_MODE_SHIFT, DFR_FLAT, DM_EXTINT,
  DM_FIXED, DM_INIT, DM_LOWEST_PRIORITY, DM_NMI, DM_SMI, DM_STARTUP, ESR_ILLEGAL_REGISTER, ESR_RECEIVE_ILLEGAL_VECTOR,
  ESR_SEND_ILLEGAL_VECTOR, ICR_DEST_LOGICAL, ICR_DEST_SHIFT, ICR_LEVEL_ASSERT, ICR_SHORTHAND_SHIFT, ICR_TRIGGER_LEVEL,
  ICR_VECTOR, LVT_LEVEL, LVT_MASKED, LVT_VECTOR, SVR_ENABLE, APIC_BASE_X2APIC, APIC_SELF_IPI, X2APIC_BROADCAST,
  X2APIC_MSR_FIRST, X2APIC_MSR_LAST, X2APIC_REGISTERS, X2APIC_RESERVED, x2apicLogicalId, x2apicOffset,
} from '../x86/apic.js';

const APIC_BASE_ADDRESS_LIMIT = 2 ** 52; // base bits 12 up to MAXPHYADDR (52 at most)

/** Version register: version 0x14 (integrated xAPIC), max LVT entry 5 in bits 23-16. */
export const APIC_VERSION_VALUE = 0x0005_0014;

const SVR_WRITABLE = 0x1ff; // vector + enable (focus checking and EOI suppression not modelled)

/** The writable bits of each LVT entry (delivery status always reads idle here). */
const LVT_WRITABLE: Record<number, number> = {
  [APIC_LVT_CMCI]: 0x0001_07ff,
  [APIC_LVT_TIMER]: 0x0003_00ff, // vector, mask, periodic bit (TSC-deadline: LVT_TIMER_WRITABLE_TSC_DEADLINE)
  [APIC_LVT_THERMAL]: 0x0001_07ff,
  [APIC_LVT_PERF]: 0x0001_07ff,
  [APIC_LVT_LINT0]: 0x0001_a7ff,
  [APIC_LVT_LINT1]: 0x0001_a7ff,
  [APIC_LVT_ERROR]: 0x0001_00ff,
};
export const LVT_OFFSETS = Object.keys(LVT_WRITABLE).map(Number);
/** The LVT timer's writable bits with TSC-deadline mode: the mode field is bits 18-17. */
const LVT_TIMER_WRITABLE_TSC_DEADLINE = 0x0007_00ff;
export const TIMER_MODE_SHIFT = 17;
export const TIMER_MODE_PERIODIC = 1;
export const TIMER_MODE_TSC_DEADLINE = 2;
/** Periodic expiries a reinjecting timer keeps owing at most. */
export const MAX_TIMER_OWED = 1000;

const ICR_LOW_WRITABLE = 0x000c_cfff;
const DFR_RESET = 0xffff_ffff;
const LDR_MASK = 0xff00_0000; // the logical APIC ID, bits 31-24

/** The modes IA32_APIC_BASE bits 11 (EN) and 10 (EXTD) select; 'invalid' is EXTD without EN. */
type BaseMode = 'disabled' | 'xapic' | 'x2apic' | 'invalid';
function baseMode(flags: number): BaseMode {
  const en = (flags & APIC_BASE_ENABLE) !== 0, extd = (flags & APIC_BASE_X2APIC) !== 0;
  return en ? (extd ? 'x2apic' : 'xapic') : extd ? 'invalid' : 'disabled';
}
/**
 * The modes a WRMSR of IA32_APIC_BASE may go to from each (SDM "x2APIC State Transitions"):
 * x2APIC only from xAPIC, out of x2APIC only to disabled, never to the invalid state.
 */
const BASE_MODE_TRANSITIONS: Readonly<Record<BaseMode, readonly BaseMode[]>> = {
  disabled: ['disabled', 'xapic'],
  xapic: ['disabled', 'xapic', 'x2apic'],
  x2apic: ['disabled', 'x2apic'],
  invalid: [],
};

export type ApicDeliveryMode = 'fixed' | 'lowestPriority' | 'smi' | 'nmi' | 'init' | 'startup' | 'extInt';
const MODE_NAMES: Readonly<Record<number, ApicDeliveryMode>> = {
  [DM_FIXED]: 'fixed', [DM_LOWEST_PRIORITY]: 'lowestPriority', [DM_SMI]: 'smi', [DM_NMI]: 'nmi', [DM_INIT]: 'init',
  [DM_STARTUP]: 'startup', [DM_EXTINT]: 'extInt',
};
/** Delivery modes by the 3-bit field's value (ICR, LVT, I/O APIC redirection entry); undefined: reserved. */
export const DELIVERY_MODES: readonly (ApicDeliveryMode | undefined)[] = Array.from({ length: 8 }, (_, i) => MODE_NAMES[i]);
export type ApicDestMode = 'physical' | 'logical';
export type ApicShorthand = 'none' | 'self' | 'all' | 'allButSelf';
const SHORTHANDS: readonly ApicShorthand[] = ['none', 'self', 'all', 'allButSelf'];
export type ApicTrigger = 'edge' | 'level';

/** An interrupt message on the APIC bus: an IPI from a local APIC or a message from an I/O APIC. */
export interface ApicMessage {
  /** The sending local APIC's ID (IPIs; used by the self / all-but-self shorthands). */
  source?: number;
  destination: number;
  destMode: ApicDestMode;
  mode: ApicDeliveryMode;
  vector: number;
  shorthand: ApicShorthand;
  /** Assert (true) or de-assert (INIT level de-assert). */
  level: boolean;
  trigger: ApicTrigger;
  /** The destination is a 32-bit x2APIC one (the sender is in x2APIC mode); otherwise its low 8 bits count. */
  x2apic?: boolean;
}

/** What the APIC needs from the 8259 for ExtINT (I8259Pic provides it). */
export interface ExtIntSource {
  pendingInterrupt(): boolean;
  acknowledge(): number;
}

export interface LocalApicOptions {
  /** Initial APIC ID (the MP/MADT table's ID for this CPU). */
  id: number;
  /** Whether this is the bootstrap processor (IA32_APIC_BASE bit 8). */
  bsp?: boolean;
  /** The machine's time in nanoseconds (its GuestClock's now). */
  now: NowNs;
  /** The timer's input clock (the "bus clock") in Hz; default 1 GHz. */
  timerHz?: number;
  /** x2APIC mode can be entered (default false: advertise CPUID.1:ECX.X2APIC only with it). */
  x2apic?: boolean;
  /** The timer has TSC-deadline mode (default false: advertise CPUID.1:ECX.TSC_DEADLINE only with it). */
  tscDeadline?: boolean;
  /**
   * Periodic mode delivers every period, each after the previous one was acknowledged (taken
   * into the ISR), up to MAX_TIMER_OWED behind, instead of one interrupt for the periods missed
   * between two ticks (the reinjecting PIT's rule): a guest counting its ticks keeps up when it
   * ran with interrupts off for several periods.
   */
  reinjectPeriodic?: boolean;
  /** Sends an IPI written to the ICR (default: delivers it to this APIC only, for one-CPU boards). */
  sendIpi?: (ipi: ApicMessage) => void;
  /** The 8259 behind LINT0 (ExtINT). */
  extInt?: ExtIntSource;
  onNmi?: () => void;
  /** INIT received: the board resets the vCPU (this APIC has already done its INIT reset). */
  onInit?: () => void;
  /** Start-up IPI received with this vector (the CPU starts at vector * 4096 if waiting for SIPI). */
  onSipi?: (vector: number) => void;
  /** EOI of a level-triggered vector: the board broadcasts it to the I/O APICs. */
  onEoi?: (vector: number) => void;
  /** Something became deliverable (IRR set, ExtINT request): the board wakes a halted vCPU. */
  onInterrupt?: () => void;
  /** The CPU took `vector` from the IRR into the ISR (not called for ExtINT: the 8259 had its INTA). */
  onAcknowledge?: (vector: number) => void;
}

export interface LocalApicState {
  id: number;
  baseMsr: number;
  tpr: number;
  ldr: number;
  dfr: number;
  svr: number;
  isr: number[];
  tmr: number[];
  irr: number[];
  esr: number;
  esrPending: number;
  icrLow: number;
  icrHigh: number;
  lvt: Record<number, number>;
  timerInitial: number;
  timerDivide: number;
  /** When the timer's count was last (re)started, in the clock's nanoseconds. */
  timerStart: number;
  timerDeadline: number | null;
  /** IA32_TSC_DEADLINE in the clock's nanoseconds (0: disarmed). */
  tscDeadline?: number;
  lintLevels: number;
  extIntRequested: boolean;
  /** Reinjection (reinjectPeriodic): periodic expiries not yet raised, and whether a raised one awaits its acknowledgement. */
  timerOwed?: number;
  timerInFlight?: boolean;
}

/** Index of the highest set bit of a 256-bit vector held as 8 words, or -1. */
function highestBit(words: Uint32Array): number {
  if ((words[0]! | words[1]! | words[2]! | words[3]! | words[4]! | words[5]! | words[6]! | words[7]!) === 0) return -1;
  for (let i = 7; i >= 0; i--) {
    const w = words[i]!;
    if (w !== 0) return i * 32 + 31 - Math.clz32(w);
  }
  return -1;
}

function setBit(words: Uint32Array, v: number): void { words[v >>> 5]! |= 1 << (v & 31); }
function clearBit(words: Uint32Array, v: number): void { words[v >>> 5]! &= ~(1 << (v & 31)); }
function testBit(words: Uint32Array, v: number): boolean { return (words[v >>> 5]! & (1 << (v & 31))) !== 0; }

/** The divide configuration register's divisor (bits 3, 1, 0; 111 = divide by 1). */
export function divisorOf(dcr: number): number {
  const v = ((dcr >> 1) & 4) | (dcr & 3);
  return v === 7 ? 1 : 2 << v;
}

export class LocalApic implements MmioDevice {
  private readonly now: NowNs;
  private readonly nsPerBusTick: number;
  private readonly sendIpi: (ipi: ApicMessage) => void;
  private readonly extInt: ExtIntSource | undefined;
  private readonly onNmi: (() => void) | undefined;
  private readonly onInit: (() => void) | undefined;
  private readonly onSipi: ((vector: number) => void) | undefined;
  private readonly onEoi: ((vector: number) => void) | undefined;
  private readonly onInterrupt: (() => void) | undefined;
  private readonly onAcknowledge: ((vector: number) => void) | undefined;

  private apicId: number;
  /** The ID the hardware gave (the x2APIC ID; the xAPIC ID register starts as its low 8 bits). */
  private readonly initialId: number;
  private readonly x2apicCapable: boolean;
  private baseMsr: number;
  private tpr = 0;
  private ldr = 0;
  private dfr = DFR_RESET;
  private svr = 0xff;
  private readonly isr = new Uint32Array(8);
  private readonly tmr = new Uint32Array(8);
  private readonly irr = new Uint32Array(8);
  private esr = 0;
  private esrPending = 0;
  private icrLow = 0;
  private icrHigh = 0;
  private readonly lvt = new Map<number, number>();
  private timerInitial = 0;
  private timerDivide = 0;
  private timerStart = 0;
  private timerDeadline: number | undefined;
  /** IA32_TSC_DEADLINE in the clock's nanoseconds, 0 when disarmed. */
  private tscDeadlineNs = 0;
  private readonly lvtTimerWritable: number;
  private lintLevels = 0;
  private extIntRequested = false;
  private readonly reinjectPeriodic: boolean;
  /** Reinjection: periodic expiries not yet raised, and whether a raised one awaits its acknowledgement. */
  private timerOwed = 0;
  private timerInFlight = false;

  constructor(opts: LocalApicOptions) {
    this.now = opts.now;
    this.nsPerBusTick = 1e9 / (opts.timerHz ?? 1e9);
    this.sendIpi = opts.sendIpi ?? ((ipi) => deliverToApics([this], ipi));
    this.extInt = opts.extInt;
    this.onNmi = opts.onNmi;
    this.onInit = opts.onInit;
    this.onSipi = opts.onSipi;
    this.onEoi = opts.onEoi;
    this.onInterrupt = opts.onInterrupt;
    this.onAcknowledge = opts.onAcknowledge;
    this.reinjectPeriodic = opts.reinjectPeriodic ?? false;
    this.lvtTimerWritable = opts.tscDeadline ? LVT_TIMER_WRITABLE_TSC_DEADLINE : LVT_WRITABLE[APIC_LVT_TIMER]!;
    this.apicId = opts.id & 0xff;
    this.initialId = this.apicId;
    this.x2apicCapable = opts.x2apic ?? false;
    this.baseMsr = APIC_DEFAULT_BASE + APIC_BASE_ENABLE + (opts.bsp ? APIC_BASE_BSP : 0);
    this.resetRegisters();
  }

  /** Power-up / INIT register state (the ID and the base MSR are kept). */
  private resetRegisters(): void {
    this.tpr = 0;
    this.ldr = 0;
    this.dfr = DFR_RESET;
    this.svr = 0xff;
    this.isr.fill(0);
    this.tmr.fill(0);
    this.irr.fill(0);
    this.esr = 0;
    this.esrPending = 0;
    this.icrLow = 0;
    this.icrHigh = 0;
    for (const off of LVT_OFFSETS) this.lvt.set(off, LVT_MASKED);
    this.timerInitial = 0;
    this.timerDivide = 0;
    this.timerStart = 0;
    this.timerDeadline = undefined;
    this.tscDeadlineNs = 0;
    this.timerOwed = 0;
    this.timerInFlight = false;
    this.extIntRequested = false;
  }

  // ---- identity and enables ----

  get id(): number { return this.apicId; }
  /** The guest-physical address of the register page. */
  get baseAddress(): number { return this.baseMsr - (this.baseMsr % 0x1000); }
  /** IA32_APIC_BASE bit 11. */
  // (The flags are in the low 12 bits: `&` reads them from the low 32 of any integer below 2^53,
  // without the floating-point remainder `%` would cost on every block the CPU dispatches.)
  get hardwareEnabled(): boolean { return (this.baseMsr & APIC_BASE_ENABLE) !== 0; }
  /** SVR bit 8. */
  get softwareEnabled(): boolean { return (this.svr & SVR_ENABLE) !== 0; }
  /** IA32_APIC_BASE bit 10 (x2APIC mode; bit 11 is then set too). */
  get x2apicMode(): boolean { return (this.baseMsr & APIC_BASE_X2APIC) !== 0; }
  /** Whether the register page responds: enabled, in xAPIC mode. */
  get xapicMmio(): boolean { return this.hardwareEnabled && !this.x2apicMode; }

  /** RDMSR IA32_APIC_BASE. */
  readBaseMsr(): number {
    return this.baseMsr;
  }

  /**
   * WRMSR IA32_APIC_BASE; false means the write is refused (#GP): reserved bits (bit 10 without
   * the x2apic option), or a transition BASE_MODE_TRANSITIONS does not allow.
   */
  writeBaseMsr(value: number): boolean {
    if (!Number.isSafeInteger(value) || value < 0 || value >= APIC_BASE_ADDRESS_LIMIT) return false;
    const flags = value % 0x1000;
    const modeBits = APIC_BASE_ENABLE | (this.x2apicCapable ? APIC_BASE_X2APIC : 0);
    if (flags & ~(APIC_BASE_BSP | modeBits)) return false; // reserved
    const from = baseMode(this.baseMsr), to = baseMode(flags);
    if (!BASE_MODE_TRANSITIONS[from].includes(to)) return false;
    // The BSP flag is set by hardware at reset; keep it.
    this.baseMsr = value - flags + (flags & modeBits) + (this.baseMsr % 0x1000 & APIC_BASE_BSP);
    if (from !== 'disabled' && to === 'disabled') this.resetRegisters();
    if (from === 'xapic' && to === 'x2apic') this.apicId = this.initialId; // the x2APIC ID is the hardware's
    return true;
  }

  /** CR8 reads: TPR bits 7-4. */
  getCr8(): number { return this.tpr >> 4; }
  /** CR8 writes: TPR = value << 4. */
  setCr8(value: number): void {
    this.tpr = (value & 0xf) << 4;
    this.notifyIfDeliverable();
  }

  /**
   * Firmware's virtual wire setup (what a BIOS leaves behind on the BSP): software-enabled,
   * LINT0 = ExtINT (the 8259's INTR), LINT1 = NMI. Boards that start a kernel without firmware
   * call this so the PIC reaches the CPU through the APIC.
   */
  setVirtualWireMode(): void {
    this.svr = SVR_ENABLE | 0xff;
    this.lvt.set(APIC_LVT_LINT0, DM_EXTINT << DELIVERY_MODE_SHIFT); // edge, unmasked
    this.lvt.set(APIC_LVT_LINT1, DM_NMI << DELIVERY_MODE_SHIFT);
  }

  // ---- CPU side ----

  private ppr(): number {
    const isrv = highestBit(this.isr);
    const isrClass = isrv < 0 ? 0 : isrv & 0xf0;
    return (this.tpr & 0xf0) >= isrClass ? this.tpr : isrClass;
  }

  private extIntPending(): boolean {
    // The 8259's output first: it is a field read, and false nearly always (this runs per block).
    if (!this.extInt?.pendingInterrupt()) return false;
    const lint0 = this.lvt.get(APIC_LVT_LINT0)!;
    const wired = !(lint0 & LVT_MASKED) && DELIVERY_MODES[(lint0 & DELIVERY_MODE_MASK) >> DELIVERY_MODE_SHIFT] === 'extInt';
    return wired || this.extIntRequested;
  }

  private fixedPending(): number {
    const v = highestBit(this.irr);
    return v >= 0 && (v & 0xf0) > (this.ppr() & 0xf0) ? v : -1;
  }

  /** Whether the CPU's INTR is asserted (maskable interrupt ready, subject to RFLAGS.IF). */
  pendingInterrupt(): boolean {
    if (!this.hardwareEnabled) return this.extInt?.pendingInterrupt() ?? false;
    return this.extIntPending() || this.fixedPending() >= 0;
  }

  /** The interrupt-acknowledge cycle: returns the vector to deliver. */
  acknowledge(): number {
    if (!this.hardwareEnabled) return this.extInt ? this.extInt.acknowledge() : 0xff;
    if (this.extIntPending()) {
      this.extIntRequested = false;
      return this.extInt!.acknowledge();
    }
    const v = this.fixedPending();
    if (v < 0) return this.svr & 0xff; // spurious
    clearBit(this.irr, v);
    setBit(this.isr, v);
    this.onAcknowledge?.(v);
    if (this.timerInFlight && v === (this.lvt.get(APIC_LVT_TIMER)! & LVT_VECTOR)) {
      this.timerInFlight = false;
      this.raiseOwedTimer();
    }
    return v;
  }

  /** A fixed / lowest-priority interrupt arrives (from the I/O APIC, an IPI, or an LVT). */
  acceptInterrupt(vector: number, levelTriggered = false): void {
    vector &= 0xff;
    if (vector < 16) {
      this.recordError(ESR_RECEIVE_ILLEGAL_VECTOR);
      return;
    }
    setBit(this.irr, vector);
    if (levelTriggered) setBit(this.tmr, vector);
    else clearBit(this.tmr, vector);
    this.notifyIfDeliverable();
  }

  private notifyIfDeliverable(): void {
    if (this.onInterrupt && this.pendingInterrupt()) this.onInterrupt();
  }

  /** Drives the LINT0 (pin 0) or LINT1 (pin 1) input; fixed and NMI modes act on it. */
  setLint(pin: 0 | 1, level: boolean): void {
    const bit = 1 << pin;
    const rising = level && !(this.lintLevels & bit);
    this.lintLevels = level ? this.lintLevels | bit : this.lintLevels & ~bit;
    const entry = this.lvt.get(pin === 0 ? APIC_LVT_LINT0 : APIC_LVT_LINT1)!;
    if (entry & LVT_MASKED || !this.hardwareEnabled) return;
    const mode = DELIVERY_MODES[(entry & DELIVERY_MODE_MASK) >> DELIVERY_MODE_SHIFT];
    if (mode === 'nmi' && rising) this.onNmi?.();
    else if (mode === 'fixed' && (rising || (level && entry & LVT_LEVEL))) this.acceptInterrupt(entry & LVT_VECTOR, (entry & LVT_LEVEL) !== 0);
    else if (mode === 'extInt' && level) this.onInterrupt?.();
  }

  // ---- the APIC bus ----

  /** Whether a message is addressed to this APIC. */
  isTarget(msg: ApicMessage): boolean {
    if (!this.hardwareEnabled) return false;
    switch (msg.shorthand) {
      case 'self': return msg.source === this.apicId;
      case 'all': return true;
      case 'allButSelf': return msg.source !== this.apicId;
      case 'none': break;
    }
    if (this.x2apicMode) return x2apicTarget(this.apicId, msg);
    const dest = msg.destination & 0xff;
    if (msg.destMode === 'physical') return dest === APIC_BROADCAST || dest === this.apicId;
    const logicalId = this.ldr >>> 24;
    if (dest === APIC_BROADCAST) return true;
    if (this.dfr >>> 28 === DFR_FLAT) return (logicalId & dest) !== 0;
    return (dest >> 4) === (logicalId >> 4) && (dest & logicalId & 0xf) !== 0; // cluster model
  }


  /** Accepts a message addressed to this APIC (see isTarget). */
  receive(msg: ApicMessage): void {
    switch (msg.mode) {
      case 'fixed':
      case 'lowestPriority':
        if (this.softwareEnabled) this.acceptInterrupt(msg.vector, msg.trigger === 'level');
        return;
      case 'nmi':
        this.onNmi?.();
        return;
      case 'init':
        if (msg.trigger === 'level' && !msg.level) return; // INIT level de-assert: no effect
        this.resetRegisters();
        this.onInit?.();
        return;
      case 'startup':
        this.onSipi?.(msg.vector & 0xff);
        return;
      case 'extInt':
        this.extIntRequested = true;
        this.notifyIfDeliverable();
        return;
      case 'smi':
        return; // no SMM
    }
  }

  private recordError(bit: number): void {
    this.esrPending |= bit;
    const entry = this.lvt.get(APIC_LVT_ERROR)!;
    const vector = entry & LVT_VECTOR;
    if (!(entry & LVT_MASKED) && vector >= 16) this.acceptInterrupt(vector);
  }

  private eoi(): void {
    const v = highestBit(this.isr);
    if (v < 0) return;
    clearBit(this.isr, v);
    if (testBit(this.tmr, v)) {
      clearBit(this.tmr, v);
      this.onEoi?.(v);
    }
    this.notifyIfDeliverable();
  }

  private sendIcr(): void {
    const low = this.icrLow;
    const mode = DELIVERY_MODES[(low & DELIVERY_MODE_MASK) >> DELIVERY_MODE_SHIFT];
    const vector = low & ICR_VECTOR;
    if (mode === undefined) return; // reserved delivery mode: nothing is sent
    if ((mode === 'fixed' || mode === 'lowestPriority') && vector < 16) {
      this.recordError(ESR_SEND_ILLEGAL_VECTOR);
      return;
    }
    const x2apic = this.x2apicMode;
    this.sendIpi({
      source: this.apicId,
      destination: x2apic ? this.icrHigh : this.icrHigh >>> ICR_DEST_SHIFT,
      destMode: low & ICR_DEST_LOGICAL ? 'logical' : 'physical',
      mode,
      vector,
      shorthand: SHORTHANDS[(low >> ICR_SHORTHAND_SHIFT) & 3]!,
      level: (low & ICR_LEVEL_ASSERT) !== 0,
      trigger: low & ICR_TRIGGER_LEVEL ? 'level' : 'edge',
      ...(x2apic ? { x2apic } : {}),
    });
  }

  /** A write of the SELF IPI register: a fixed, edge-triggered `vector` to this APIC. */
  private selfIpi(vector: number): void {
    if (vector < 16) {
      this.recordError(ESR_SEND_ILLEGAL_VECTOR);
      return;
    }
    this.sendIpi({
      source: this.apicId, destination: this.apicId, destMode: 'physical', mode: 'fixed', vector,
      shorthand: 'self', level: true, trigger: 'edge', x2apic: true,
    });
  }

  // ---- timer ----

  private nsPerCount(): number {
    return divisorOf(this.timerDivide) * this.nsPerBusTick;
  }

  private timerMode(): number {
    return (this.lvt.get(APIC_LVT_TIMER)! >>> TIMER_MODE_SHIFT) & 3;
  }

  private periodic(): boolean {
    return this.timerMode() === TIMER_MODE_PERIODIC;
  }

  private tscDeadlineMode(): boolean {
    return this.timerMode() === TIMER_MODE_TSC_DEADLINE;
  }

  /** RDMSR IA32_TSC_DEADLINE, in the clock's nanoseconds (0: disarmed, fired, or not in TSC-deadline mode). */
  readTscDeadline(): number {
    return this.tscDeadlineMode() ? this.tscDeadlineNs : 0;
  }

  /**
   * WRMSR IA32_TSC_DEADLINE, converted to the clock's nanoseconds by the caller: arms the timer
   * for that time (one in the past fires at the next tick), 0 disarms; ignored in the other modes.
   */
  writeTscDeadline(ns: number): void {
    if (!this.tscDeadlineMode()) return;
    if (ns === 0) {
      this.tscDeadlineNs = 0;
      this.timerDeadline = undefined;
      return;
    }
    // A TSC value the clock reached before it started is as good as "now".
    this.tscDeadlineNs = Math.max(ns, Number.MIN_VALUE);
    this.timerDeadline = this.tscDeadlineNs;
  }

  /** The current-count register at `now`. */
  private currentCount(now: number): number {
    if (this.timerInitial === 0 || this.tscDeadlineMode()) return 0;
    const elapsed = Math.floor((now - this.timerStart) / this.nsPerCount());
    if (this.periodic()) return this.timerInitial - (elapsed % this.timerInitial);
    return elapsed >= this.timerInitial ? 0 : this.timerInitial - elapsed;
  }

  /** Recomputes the next expiry after `now` from the start time (undefined when none). */
  private scheduleTimer(now: number): void {
    if (this.timerInitial === 0) { this.timerDeadline = undefined; return; }
    const period = this.timerInitial * this.nsPerCount();
    if (this.periodic()) {
      const k = Math.max(1, Math.floor((now - this.timerStart) / period) + 1);
      this.timerDeadline = this.timerStart + k * period;
    } else {
      const end = this.timerStart + period;
      this.timerDeadline = end > now ? end : undefined;
    }
  }

  /** When the timer next expires (ns in the clock's time base), or undefined. Cached. */
  nextDeadline(): number | undefined {
    return this.timerDeadline;
  }

  /** Raises the timer interrupt if its deadline has passed, and moves the deadline on. */
  tick(now: number = this.now()): void {
    const d = this.timerDeadline;
    if (d === undefined || now < d) return;
    const entry = this.lvt.get(APIC_LVT_TIMER)!;
    if (this.reinjectPeriodic && this.periodic()) {
      const expiries = Math.floor((now - d) / (this.timerInitial * this.nsPerCount())) + 1;
      if (!(entry & LVT_MASKED)) {
        this.timerOwed = Math.min(this.timerOwed + expiries, MAX_TIMER_OWED); // a masked timer owes nothing
        this.raiseOwedTimer();
      }
      this.scheduleTimer(now);
      return;
    }
    if (!(entry & LVT_MASKED)) this.acceptInterrupt(entry & LVT_VECTOR);
    if (this.tscDeadlineMode()) {
      this.tscDeadlineNs = 0; // the MSR clears when the timer fires
      this.timerDeadline = undefined;
    } else if (this.periodic()) this.scheduleTimer(now);
    else this.timerDeadline = undefined;
  }

  /** Reinjection: raises the next owed periodic expiry unless one awaits its acknowledgement. */
  private raiseOwedTimer(): void {
    if (this.timerInFlight || this.timerOwed === 0) return;
    this.timerOwed--;
    this.timerInFlight = true;
    this.acceptInterrupt(this.lvt.get(APIC_LVT_TIMER)! & LVT_VECTOR);
  }

  /** Entering or leaving TSC-deadline mode: no count, no deadline. */
  private disarmTimer(): void {
    this.timerInitial = 0;
    this.tscDeadlineNs = 0;
    this.timerDeadline = undefined;
  }

  // ---- registers ----

  private readRegister(reg: number): number {
    if (reg >= APIC_ISR && reg < APIC_ISR + 0x80) return this.isr[(reg - APIC_ISR) >> 4]!;
    if (reg >= APIC_TMR && reg < APIC_TMR + 0x80) return this.tmr[(reg - APIC_TMR) >> 4]!;
    if (reg >= APIC_IRR && reg < APIC_IRR + 0x80) return this.irr[(reg - APIC_IRR) >> 4]!;
    const lvt = this.lvt.get(reg);
    if (lvt !== undefined) return lvt;
    switch (reg) {
      case APIC_ID: return (this.apicId << 24) >>> 0;
      case APIC_VERSION: return APIC_VERSION_VALUE;
      case APIC_TPR: return this.tpr;
      case APIC_APR: return 0;
      case APIC_PPR: return this.ppr();
      case APIC_LDR: return this.ldr;
      case APIC_DFR: return this.dfr;
      case APIC_SVR: return this.svr;
      case APIC_ESR: return this.esr;
      case APIC_ICR_LOW: return this.icrLow;
      case APIC_ICR_HIGH: return this.icrHigh;
      case APIC_TIMER_INITIAL: return this.timerInitial;
      case APIC_TIMER_CURRENT: return this.currentCount(this.now());
      case APIC_TIMER_DIVIDE: return this.timerDivide;
      default: return 0; // EOI and RRD read 0; reserved slots read 0
    }
  }

  private writeRegister(reg: number, value: number): void {
    const writable = reg === APIC_LVT_TIMER ? this.lvtTimerWritable : LVT_WRITABLE[reg];
    if (writable !== undefined) {
      let v = value & writable;
      if (!this.softwareEnabled) v |= LVT_MASKED;
      const wasPeriodic = this.periodic();
      const wasDeadline = this.tscDeadlineMode();
      this.lvt.set(reg, v >>> 0);
      if (reg === APIC_LVT_TIMER && wasDeadline !== this.tscDeadlineMode()) this.disarmTimer();
      else if (reg === APIC_LVT_TIMER && wasPeriodic !== this.periodic()) this.scheduleTimer(this.now());
      if (reg === APIC_LVT_LINT0) this.notifyIfDeliverable();
      return;
    }
    switch (reg) {
      case APIC_ID: this.apicId = value >>> 24; return;
      case APIC_TPR: this.tpr = value & 0xff; this.notifyIfDeliverable(); return;
      case APIC_EOI: this.eoi(); return;
      case APIC_LDR: this.ldr = (value & LDR_MASK) >>> 0; return;
      case APIC_DFR: this.dfr = (value | 0x0fff_ffff) >>> 0; return;
      case APIC_SVR:
        this.svr = value & SVR_WRITABLE;
        if (!this.softwareEnabled) for (const off of LVT_OFFSETS) this.lvt.set(off, (this.lvt.get(off)! | LVT_MASKED) >>> 0);
        return;
      case APIC_ESR: this.esr = this.esrPending; this.esrPending = 0; return;
      case APIC_ICR_HIGH: this.icrHigh = (value & 0xff00_0000) >>> 0; return;
      case APIC_ICR_LOW: this.icrLow = value & ICR_LOW_WRITABLE; this.sendIcr(); return;
      case APIC_TIMER_INITIAL: {
        if (this.tscDeadlineMode()) return; // ignored in TSC-deadline mode
        const now = this.now();
        this.timerOwed = 0; // a new count forgets the expiries owed
        this.timerInFlight = false;
        this.timerInitial = value >>> 0;
        this.timerStart = now;
        this.scheduleTimer(now);
        return;
      }
      case APIC_TIMER_DIVIDE: {
        const now = this.now();
        const remaining = this.currentCount(now);
        const oldPeriodPos = this.timerInitial - remaining; // counts already done in this period
        this.timerDivide = value & 0xb;
        if (this.timerInitial !== 0 && remaining !== 0) {
          this.timerStart = now - oldPeriodPos * this.nsPerCount();
          this.scheduleTimer(now);
        }
        return;
      }
      case APIC_VERSION: case APIC_APR: case APIC_PPR: case APIC_RRD: case APIC_TIMER_CURRENT:
        return; // read-only
      default:
        if ((reg >= APIC_ISR && reg < APIC_IRR + 0x80)) return; // ISR/TMR/IRR are read-only
        this.recordError(ESR_ILLEGAL_REGISTER);
    }
  }

  // ---- x2APIC MSRs ----

  /**
   * RDMSR of x2APIC MSR `msr` (0x800-0x8FF): the low and high words (the high is 0 but for the
   * ICR's destination), or undefined: #GP (not in x2APIC mode, a reserved or write-only register).
   */
  readX2apicMsr(msr: number): readonly [number, number] | undefined {
    const reg = this.x2apicRegister(msr, 'wo');
    if (reg === undefined) return undefined;
    switch (reg) {
      case APIC_ID: return [this.apicId, 0];
      case APIC_LDR: return [x2apicLogicalId(this.apicId), 0];
      case APIC_ICR_LOW: return [this.icrLow, this.icrHigh];
      default: return [this.readRegister(reg), 0];
    }
  }

  /**
   * WRMSR of x2APIC MSR `msr` with `lo` and `hi` (EAX, EDX; unsigned or not); false: #GP (not
   * in x2APIC mode, a reserved or read-only register, a reserved bit set).
   */
  writeX2apicMsr(msr: number, lo: number, hi: number): boolean {
    const reg = this.x2apicRegister(msr, 'ro');
    if (reg === undefined) return false;
    if ((lo & (X2APIC_RESERVED[reg] ?? 0)) !== 0) return false;
    if (reg === APIC_ICR_LOW) {
      this.icrHigh = hi >>> 0; // the 32-bit destination
      this.icrLow = lo & ICR_LOW_WRITABLE;
      this.sendIcr();
      return true;
    }
    if (hi !== 0) return false; // bits 63-32 of a 32-bit register
    if (reg === APIC_SELF_IPI) this.selfIpi(lo & 0xff);
    else this.writeRegister(reg, lo >>> 0);
    return true;
  }

  /** The page offset of x2APIC MSR `msr` if x2APIC mode has it and it is not `refused` (#GP otherwise). */
  private x2apicRegister(msr: number, refused: 'ro' | 'wo'): number | undefined {
    if (!this.x2apicMode || msr < X2APIC_MSR_FIRST || msr > X2APIC_MSR_LAST) return undefined;
    const reg = x2apicOffset(msr);
    const access = X2APIC_REGISTERS.get(reg);
    return access === undefined || access === refused ? undefined : reg;
  }

  // ---- MmioDevice ----

  read(offset: number, data: Uint8Array): void {
    const reg = offset & 0xff0;
    const byte = offset & 0xf;
    const value = offset < 0x1000 ? this.readRegister(reg) : 0;
    for (let i = 0; i < data.length; i++) {
      const b = byte + i;
      data[i] = b < 4 ? (value >>> (8 * b)) & 0xff : 0;
    }
  }

  write(offset: number, data: Uint8Array): void {
    if ((offset & 0xf) !== 0 || data.length !== 4 || offset >= 0x1000) return;
    this.writeRegister(offset, readLe(data, 4));
  }

  // ---- snapshot ----

  /** State with the timer's times in the clock's nanoseconds; restore under the same clock base. */
  getState(): LocalApicState {
    return {
      id: this.apicId, baseMsr: this.baseMsr, tpr: this.tpr, ldr: this.ldr, dfr: this.dfr, svr: this.svr,
      isr: [...this.isr], tmr: [...this.tmr], irr: [...this.irr], esr: this.esr, esrPending: this.esrPending,
      icrLow: this.icrLow, icrHigh: this.icrHigh, lvt: Object.fromEntries(this.lvt),
      timerInitial: this.timerInitial, timerDivide: this.timerDivide, timerStart: this.timerStart,
      timerDeadline: this.timerDeadline ?? null, tscDeadline: this.tscDeadlineNs, lintLevels: this.lintLevels, extIntRequested: this.extIntRequested,
      timerOwed: this.timerOwed, timerInFlight: this.timerInFlight,
    };
  }

  restore(s: LocalApicState): void {
    this.apicId = s.id & 0xff;
    // Only the flags this APIC has, never the invalid EXTD-without-EN state (a saved file is input).
    const base = Number.isSafeInteger(s.baseMsr) && s.baseMsr >= 0 && s.baseMsr < APIC_BASE_ADDRESS_LIMIT ? s.baseMsr : this.baseMsr;
    let flags = base % 0x1000 & (APIC_BASE_BSP | APIC_BASE_ENABLE | (this.x2apicCapable ? APIC_BASE_X2APIC : 0));
    if (baseMode(flags) === 'invalid') flags &= ~APIC_BASE_X2APIC;
    this.baseMsr = base - (base % 0x1000) + flags;
    this.tpr = s.tpr & 0xff;
    this.ldr = s.ldr >>> 0;
    this.dfr = s.dfr >>> 0;
    this.svr = s.svr & SVR_WRITABLE;
    this.isr.set(s.isr.slice(0, 8));
    this.tmr.set(s.tmr.slice(0, 8));
    this.irr.set(s.irr.slice(0, 8));
    this.esr = s.esr; this.esrPending = s.esrPending;
    this.icrLow = s.icrLow; this.icrHigh = s.icrHigh;
    for (const off of LVT_OFFSETS) this.lvt.set(off, (s.lvt[off] ?? LVT_MASKED) & (off === APIC_LVT_TIMER ? this.lvtTimerWritable : LVT_WRITABLE[off]!));
    this.timerInitial = s.timerInitial >>> 0;
    this.timerDivide = s.timerDivide & 0xb;
    this.timerStart = s.timerStart;
    this.timerDeadline = s.timerDeadline ?? undefined;
    this.tscDeadlineNs = s.tscDeadline ?? 0;
    this.lintLevels = s.lintLevels & 3;
    this.extIntRequested = s.extIntRequested === true;
    this.timerOwed = Math.max(0, Math.min(s.timerOwed ?? 0, MAX_TIMER_OWED) | 0);
    this.timerInFlight = s.timerInFlight === true;
  }
}

/**
 * Whether a message (its shorthand aside) addresses an APIC in x2APIC mode with ID `id`: a 32-bit
 * destination, physical or logical (cluster in bits 31-16, a member bit in 15-0, the LDR derived
 * from the ID); an 8-bit one (the I/O APIC's, without interrupt remapping) by physical ID or
 * broadcast only. Also the APIC bus's rule between threads (vmm/apic-bus.ts).
 */
export function x2apicTarget(id: number, msg: ApicMessage): boolean {
  if (!msg.x2apic) {
    const dest = msg.destination & 0xff;
    return dest === APIC_BROADCAST || (msg.destMode === 'physical' && dest === id);
  }
  const dest = msg.destination >>> 0;
  if (dest === X2APIC_BROADCAST) return true;
  if (msg.destMode === 'physical') return dest === id;
  const ldr = x2apicLogicalId(id);
  return dest >>> 16 === ldr >>> 16 && (dest & ldr & 0xffff) !== 0;
}

/**
 * Delivers an APIC-bus message to the APICs it addresses: every matching APIC, except lowest
 * priority which goes to the first match only (lowest priority treated as fixed to one target).
 * Boards route IPIs (LocalApic's sendIpi) and I/O APIC messages through this.
 */
export function deliverToApics(apics: readonly LocalApic[], msg: ApicMessage): void {
  if (msg.mode === 'lowestPriority') {
    apics.find((a) => a.isTarget(msg))?.receive(msg);
    return;
  }
  for (const a of apics) if (a.isTarget(msg)) a.receive(msg);
}
