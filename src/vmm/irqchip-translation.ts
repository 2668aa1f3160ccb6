/**
 * One snapshot format for both backends: the interrupt controllers and the PIT a backend runs
 * itself (KVM's in-kernel 8259 pair, I/O APIC, 8254 and local APIC: nvmm/irqchip-state.ts, the
 * kernel's structs with named fields) are saved as the state of the board's own devices, which
 * the soft backend runs (devices/i8259-pic.ts, ioapic.ts, i8254-pit.ts, port-61.ts,
 * local-apic.ts), under their bus names: 'pic', 'ioapic', 'pit', 'port-61', 'lapic-0'. A
 * snapshot saved on one backend restores on the other.
 *
 * The two models differ; docs/snapshot-format.md has the mapping. In short:
 * - 8259: the same registers. KVM keeps the highest priority IR (priority_add) where the device
 *   keeps the lowest (one apart), the ICW sequence's step one lower, and of the ICWs only ICW4's
 *   AEOI and SFNM bits and ICW1's IC4: the others come back as a PC programs them (cascade,
 *   8086 mode, edge; ICW3 4 on the master, 2 on the slave). KVM has neither single mode nor
 *   ICW1.LTIM, so a state with either does not go to KVM.
 * - I/O APIC: the same redirection entries (the delivery status bit reads idle on the device);
 *   KVM's pending requests (irr) stand for the device's asserted inputs: from the device, the
 *   asserted level-triggered inputs (KVM re-sends those; an asserted edge input was sent already).
 * - 8254: KVM keeps a channel's count and when it was loaded (the host's monotonic clock, which
 *   is hostNs's), its mode, access and latch state; the device keeps the same in the guest
 *   clock's nanoseconds, from which the ticks counted so far follow. KVM_SET_PIT2 loads every
 *   count anew: a restored periodic counter starts a new period (its phase within one period is
 *   lost), a one-shot one counts its whole count again. A count written during a mode 2/3
 *   period that the device would load at its end is loaded at once; NULL COUNT and the IRQ 0
 *   periods a reinjecting PIT still owed are not carried. Channel 2's gate and the speaker data
 *   bit are port 0x61's bits 0 and 1 (its bits 2-3 are not kept by KVM's dummy speaker port).
 * - Local APIC: the register page (ID in bits 31-24 in both modes, as KVM reads it without its
 *   x2APIC ID format) and IA32_APIC_BASE. Both timers count at 1 GHz (the device's default bus
 *   clock, KVM's APIC_BUS_CYCLE_NS of 1), so the current count carries the timer's progress:
 *   KVM_GET_LAPIC reports it and KVM_SET_LAPIC restarts the timer from it. Not carried: the
 *   TSC-deadline timer (refused while armed: the IA32_TSC_DEADLINE MSR is not in the groups),
 *   errors not yet moved into ESR, LINT input levels, an ExtINT request from the I/O APIC, and
 *   periodic expiries owed.
 *
 * What the kernel hands over is checked as a file's content is: a value the devices cannot
 * hold (a mode, a state or an address out of their range) is refused with TSVMM_UNSUPPORTED,
 * never carried into a snapshot; a snapshot's device state that is malformed is
 * TSVMM_SNAPSHOT_CORRUPT, and one KVM cannot take is TSVMM_SNAPSHOT_MISMATCH.
 */
import { TsvmmError } from '../common/errors.js';
import {
  CASCADE_IRQ, ELCR_WRITABLE, ICW1_IC4, ICW1_LTIM, ICW1_SELECT, ICW1_SNGL, ICW2_VECTOR_BASE, ICW4_AEOI, ICW4_SFNM, ICW4_UPM,
  type I8259ChipState, type I8259PicState,
} from '../devices/i8259-pic.js';
import { IOAPIC_DEFAULT_BASE, IOAPIC_PINS, REDIR_LEVEL, REDIR_LOW_WRITABLE, REDIR_REMOTE_IRR, type IoApicState } from '../devices/ioapic.js';
import {
  ACCESS_LSB, ACCESS_MSB, ACCESS_WORD, CW_ACCESS_SHIFT, CW_BCD, CW_MODE_SHIFT, I8254Pit, PIT_HZ, newCounter,
  type I8254CounterState, type I8254PitState,
} from '../devices/i8254-pit.js';
import { PORT61_GATE2, PORT61_SPEAKER, type Port61State } from '../devices/port-61.js';
import {
  APIC_VERSION_VALUE, LVT_OFFSETS, TIMER_MODE_PERIODIC, TIMER_MODE_SHIFT, TIMER_MODE_TSC_DEADLINE, divisorOf, type LocalApicState,
} from '../devices/local-apic.js';
import {
  APIC_BASE_BSP, APIC_BASE_ENABLE, APIC_BASE_X2APIC, APIC_DFR, APIC_ESR, APIC_ICR_HIGH, APIC_ICR_LOW, APIC_ID, APIC_IRR, APIC_ISR,
  APIC_LDR, APIC_SVR, APIC_TIMER_CURRENT, APIC_TIMER_DIVIDE, APIC_TIMER_INITIAL, APIC_TMR, APIC_TPR, APIC_VERSION, LVT_MASKED,
} from '../x86/apic.js';
import {
  LAPIC_REGS_BYTES, PIT_FLAGS_SPEAKER_DATA_ON, PIT_MODE_UNPROGRAMMED, PIT_RW_STATE,
  type KernelIoapicState, type KernelIrqchipState, type KernelLapicState, type KernelPicState, type KernelPitChannel, type KernelPitState,
} from '../nvmm/irqchip-state.js';

/** One instant in both clocks: the guest's (GuestClock.now) and the host's monotonic one (hostNs). */
export interface ClockPair {
  guestNs: number;
  hostNs: number;
}

/** The devices' bus names in a snapshot for what the backend's irqchip runs (the soft board's names). */
export const IRQCHIP_DEVICES = ['pic', 'pit', 'port-61', 'ioapic', 'lapic-0'] as const;

const NS_PER_PIT_TICK = 1e9 / PIT_HZ;
/** Both local APIC timers' bus clock: 1 GHz (LocalApic's default timerHz; KVM's APIC_BUS_CYCLE_NS). */
const NS_PER_APIC_BUS_TICK = 1;
/** IA32_APIC_BASE's address bits end at MAXPHYADDR (52 at most). */
const APIC_BASE_LIMIT = 2n ** 52n;
const APIC_BASE_FLAGS = APIC_BASE_BSP | APIC_BASE_ENABLE | APIC_BASE_X2APIC;
const SVR_BITS = 0x1ff;
/** The 8259's ICW3 as a PC's cascade programs it: the slave on the master's IR2, the slave's ID 2. */
const ICW3 = { master: 1 << CASCADE_IRQ, slave: CASCADE_IRQ } as const;

// ---- checks ----

/** What the kernel gave is outside what the devices hold: the save is refused. */
function kernelRefuses(what: string, value: unknown, range: string): never {
  throw new TsvmmError('TSVMM_UNSUPPORTED', `the in-kernel ${what} is ${String(value)}, outside ${range}: the board's devices cannot carry it`);
}

function corrupt(what: string, value: unknown): never {
  throw new TsvmmError('TSVMM_SNAPSHOT_CORRUPT', `the snapshot's ${what} is ${JSON.stringify(value) ?? String(value)}`);
}

/** An integer 0..max of a snapshot's device state, or TSVMM_SNAPSHOT_CORRUPT. */
function int(what: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) corrupt(what, v);
  return v;
}

/** A time in nanoseconds (finite) of a snapshot's device state. */
function time(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) corrupt(what, v);
  return v;
}

function bool(what: string, v: unknown): boolean {
  if (typeof v !== 'boolean') corrupt(what, v);
  return v;
}

function words(what: string, v: unknown, n: number): number[] {
  if (!Array.isArray(v) || v.length !== n) corrupt(what, v);
  return v.map((w, i) => int(`${what}[${i}]`, w, 0xffff_ffff));
}

function object(what: string, v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) corrupt(what, v);
  return v as Record<string, unknown>;
}

function kernelRange(what: string, v: number, max: number): number {
  if (!Number.isInteger(v) || v < 0 || v > max) kernelRefuses(what, v, `0-${max}`);
  return v;
}

// ---- 8259 ----

type Chip = 'master' | 'slave';
const CHIP_INDEX: Record<Chip, 0 | 1> = { master: 0, slave: 1 };

export function picChipFromKernel(k: KernelPicState, chip: Chip): I8259ChipState {
  const what = (f: string) => `8259 ${chip}'s ${f}`;
  kernelRange(what('init_state'), k.initState, 3);
  kernelRange(what('priority_add'), k.priorityAdd, 7);
  if (k.irqBase & ~ICW2_VECTOR_BASE) kernelRefuses(what('irq_base'), k.irqBase, 'multiples of 8');
  const elcrWritable = ELCR_WRITABLE[CHIP_INDEX[chip]];
  if (k.elcr & ~elcrWritable) kernelRefuses(what('elcr'), k.elcr, `the bits of 0x${elcrWritable.toString(16)}`);
  if (k.autoEoi && !k.init4) kernelRefuses(what('auto_eoi without init4'), k.autoEoi, 'an ICW4 that was written');
  return {
    irr: k.irr, isr: k.isr, imr: k.imr, inputs: k.lastIrr, elcr: k.elcr, vectorBase: k.irqBase,
    icw1: ICW1_SELECT | (k.init4 ? ICW1_IC4 : 0),
    icw3: ICW3[chip],
    icw4: k.init4 ? ICW4_UPM | (k.autoEoi ? ICW4_AEOI : 0) | (k.specialFullyNestedMode ? ICW4_SFNM : 0) : 0,
    initStep: k.initState === 0 ? 0 : k.initState + 1,
    lowestPriority: (k.priorityAdd + 7) & 7,
    readIsr: k.readRegSelect, poll: k.poll, specialMask: k.specialMask, rotateOnAutoEoi: k.rotateOnAutoEoi,
  };
}

export function picChipToKernel(state: unknown, chip: Chip): KernelPicState {
  const s = object(`8259 ${chip}`, state);
  const f = (name: string) => `8259 ${chip}'s ${name}`;
  const byte = (name: keyof I8259ChipState) => int(f(name), s[name], 0xff);
  const icw1 = byte('icw1');
  if (icw1 & (ICW1_SNGL | ICW1_LTIM)) {
    throw new TsvmmError('TSVMM_SNAPSHOT_MISMATCH', `the ${chip} 8259 was programmed ${icw1 & ICW1_SNGL ? 'single (ICW1.SNGL)' : 'level-triggered (ICW1.LTIM)'}, which KVM's 8259 does not have`);
  }
  const step = int(f('initStep'), s.initStep, 4);
  if (step === 1) corrupt(f('initStep'), step);
  const icw4 = int(f('icw4'), s.icw4, 0x1f);
  const vectorBase = byte('vectorBase');
  if (vectorBase & ~ICW2_VECTOR_BASE) corrupt(f('vectorBase'), vectorBase);
  return {
    lastIrr: byte('inputs'), irr: byte('irr'), imr: byte('imr'), isr: byte('isr'),
    priorityAdd: (int(f('lowestPriority'), s.lowestPriority, 7) + 1) & 7,
    irqBase: vectorBase,
    readRegSelect: bool(f('readIsr'), s.readIsr), poll: bool(f('poll'), s.poll), specialMask: bool(f('specialMask'), s.specialMask),
    initState: step === 0 ? 0 : step - 1,
    autoEoi: (icw4 & ICW4_AEOI) !== 0, rotateOnAutoEoi: bool(f('rotateOnAutoEoi'), s.rotateOnAutoEoi),
    specialFullyNestedMode: (icw4 & ICW4_SFNM) !== 0, init4: (icw1 & ICW1_IC4) !== 0,
    elcr: byte('elcr') & ELCR_WRITABLE[CHIP_INDEX[chip]], elcrMask: ELCR_WRITABLE[CHIP_INDEX[chip]],
  };
}

// ---- I/O APIC ----

const LOW32 = 0xffff_ffffn;

export function ioapicFromKernel(k: KernelIoapicState): IoApicState {
  if (k.baseAddress !== IOAPIC_DEFAULT_BASE) kernelRefuses('I/O APIC base', `0x${k.baseAddress.toString(16)}`, `its one address 0x${IOAPIC_DEFAULT_BASE.toString(16)}`);
  kernelRange('I/O APIC id', k.id, 0xf);
  kernelRange('I/O APIC ioregsel', k.ioregsel, 0xff);
  kernelRange('I/O APIC irr', k.irr, 2 ** IOAPIC_PINS - 1);
  if (k.redirtbl.length !== IOAPIC_PINS) kernelRefuses('I/O APIC redirection table length', k.redirtbl.length, `${IOAPIC_PINS} entries`);
  // Reserved bits the guest wrote are dropped, as the device drops them from a write.
  return {
    id: k.id, select: k.ioregsel,
    low: k.redirtbl.map((e) => Number(e & LOW32) & (REDIR_LOW_WRITABLE | REDIR_REMOTE_IRR)),
    high: k.redirtbl.map((e) => (Number(e >> 32n) & 0xff00_0000) >>> 0),
    levels: k.irr,
  };
}

export function ioapicToKernel(state: unknown): KernelIoapicState {
  const s = object('I/O APIC', state);
  const low = words('I/O APIC low', s.low, IOAPIC_PINS);
  const high = words('I/O APIC high', s.high, IOAPIC_PINS);
  const levels = int('I/O APIC levels', s.levels, 2 ** IOAPIC_PINS - 1);
  const levelTriggered = low.reduce((m, e, pin) => (e & REDIR_LEVEL ? m | (1 << pin) : m), 0);
  return {
    baseAddress: IOAPIC_DEFAULT_BASE, ioregsel: int('I/O APIC select', s.select, 0xff), id: int('I/O APIC id', s.id, 0xf),
    irr: (levels & levelTriggered) >>> 0,
    redirtbl: low.map((l, i) => (BigInt(high[i]! & 0xff00_0000) << 32n) | BigInt(l & (REDIR_LOW_WRITABLE | REDIR_REMOTE_IRR))),
  };
}

// ---- 8254 and port 0x61 ----

/** The access modes of a control word (RW bits) as KVM's rw_mode and read/write states have them. */
const ACCESS_MODES = [ACCESS_LSB, ACCESS_MSB, ACCESS_WORD] as readonly number[];

function pitChannelFromKernel(k: KernelPitChannel, i: number, at: ClockPair): I8254CounterState {
  const what = (f: string) => `8254 channel ${i}'s ${f}`;
  if (k.mode === PIT_MODE_UNPROGRAMMED) return { ...newCounter(), gate: k.gate };
  kernelRange(what('mode'), k.mode, 5);
  if (!ACCESS_MODES.includes(k.rwMode)) kernelRefuses(what('rw_mode'), k.rwMode, '1-3');
  kernelRange(what('count'), k.count, 0x10000);
  kernelRange(what('count_latched'), k.countLatched, PIT_RW_STATE.WORD0);
  kernelRange(what('read_state'), k.readState, PIT_RW_STATE.WORD1);
  kernelRange(what('write_state'), k.writeState, PIT_RW_STATE.WORD1);
  const count = k.count === 0 ? 0x10000 : k.count;
  const elapsedNs = at.hostNs - Number(k.countLoadTime);
  if (!(elapsedNs >= 0) || !Number.isFinite(elapsedNs)) kernelRefuses(what('count_load_time'), k.countLoadTime, `host times before now (${at.hostNs})`);
  const control = (k.rwMode << CW_ACCESS_SHIFT) | (k.mode << CW_MODE_SHIFT) | (k.bcd ? CW_BCD : 0);
  const c: I8254CounterState = {
    ...newCounter(), control, countRegister: count, reload: count, loaded: true, gate: k.gate, counting: true,
    // The counter counts from when KVM loaded it, in guest time.
    elapsedBefore: 0, segmentStart: at.guestNs - elapsedNs,
    writeMsbNext: k.rwMode === ACCESS_WORD && k.writeState === PIT_RW_STATE.WORD1, writeLow: k.writeLatch,
    readMsbNext: k.rwMode === ACCESS_WORD && k.readState === PIT_RW_STATE.WORD1,
    latchedCount: k.countLatched === 0 ? null : k.latchedCount,
    latchedMsbNext: k.countLatched === PIT_RW_STATE.MSB && k.rwMode === ACCESS_WORD,
    latchedStatus: k.statusLatched ? k.status : null,
  };
  // The edges so far were signalled (KVM's reinjection backlog is not in kvm_pit_state2).
  c.edgesSeen = I8254Pit.edges(c, I8254Pit.ticks(c, at.guestNs));
  return c;
}

function pitChannelToKernel(state: unknown, i: number, at: ClockPair): KernelPitChannel {
  const s = object(`8254 counter ${i}`, state);
  const f = (name: string) => `8254 counter ${i}'s ${name}`;
  const control = int(f('control'), s.control, 0x3f);
  const c = {
    control, countRegister: int(f('countRegister'), s.countRegister, 0x10000), reload: int(f('reload'), s.reload, 0x10000),
    loaded: bool(f('loaded'), s.loaded), gate: bool(f('gate'), s.gate), counting: bool(f('counting'), s.counting),
    elapsedBefore: time(f('elapsedBefore'), s.elapsedBefore), segmentStart: time(f('segmentStart'), s.segmentStart),
    pendingReload: s.pendingReload === null ? null : int(f('pendingReload'), s.pendingReload, 0x10000),
    latchedCount: s.latchedCount === null ? null : int(f('latchedCount'), s.latchedCount, 0xffff),
    latchedStatus: s.latchedStatus === null ? null : int(f('latchedStatus'), s.latchedStatus, 0xff),
  } as I8254CounterState;
  const access = (control >> CW_ACCESS_SHIFT) & 3;
  const word = access === ACCESS_WORD;
  const writeMsbNext = bool(f('writeMsbNext'), s.writeMsbNext);
  const readMsbNext = bool(f('readMsbNext'), s.readMsbNext);
  const latchedMsbNext = bool(f('latchedMsbNext'), s.latchedMsbNext);
  // A counter never programmed (access 0 is a latch command, never a counter's mode) stays so.
  if (access === 0) corrupt(f('control'), control);
  // A counter no control word has programmed (the device's reset state) is KVM's unprogrammed one:
  // loaded with a count, KVM would count it (and interrupt on channel 0).
  const reset = newCounter();
  if (!c.loaded && control === reset.control && c.countRegister === reset.countRegister && s.nullCount === false) {
    return {
      count: 0, latchedCount: 0, countLatched: 0, statusLatched: false, status: 0, readState: access, writeState: access,
      writeLatch: 0, rwMode: access, mode: PIT_MODE_UNPROGRAMMED, bcd: false, gate: c.gate, countLoadTime: BigInt(Math.round(at.hostNs)),
    };
  }
  const mode = I8254Pit.mode(c);
  // The time counted so far (to the nanosecond, not whole ticks) sets when KVM's count was
  // loaded (which KVM_SET_PIT2 does anew anyway; a save keeps it).
  const countedNs = !c.loaded ? 0 : c.elapsedBefore * NS_PER_PIT_TICK + (c.counting ? Math.max(0, at.guestNs - c.segmentStart) : 0);
  const count = c.pendingReload ?? (c.loaded ? c.reload : c.countRegister);
  return {
    count: count === 0x10000 ? 0 : count,
    latchedCount: c.latchedCount ?? 0,
    countLatched: c.latchedCount === null ? 0 : word ? (latchedMsbNext ? PIT_RW_STATE.MSB : PIT_RW_STATE.WORD0) : access,
    statusLatched: c.latchedStatus !== null, status: c.latchedStatus ?? 0,
    readState: word ? (readMsbNext ? PIT_RW_STATE.WORD1 : PIT_RW_STATE.WORD0) : access,
    writeState: word ? (writeMsbNext ? PIT_RW_STATE.WORD1 : PIT_RW_STATE.WORD0) : access,
    writeLatch: int(f('writeLow'), s.writeLow, 0xff),
    rwMode: access, mode, bcd: (control & CW_BCD) !== 0, gate: c.gate,
    countLoadTime: BigInt(Math.round(at.hostNs - countedNs)),
  };
}

export function pitFromKernel(k: KernelPitState, at: ClockPair): { pit: I8254PitState; port61: Port61State } {
  if (k.channels.length !== 3) kernelRefuses('8254 channel count', k.channels.length, '3');
  if (k.flags & ~PIT_FLAGS_SPEAKER_DATA_ON) kernelRefuses('8254 flags', `0x${k.flags.toString(16)}`, 'the speaker bit (no HPET legacy route)');
  return {
    pit: { counters: k.channels.map((c, i) => pitChannelFromKernel(c, i, at)) },
    port61: { value: (k.channels[2]!.gate ? PORT61_GATE2 : 0) | (k.flags & PIT_FLAGS_SPEAKER_DATA_ON ? PORT61_SPEAKER : 0) },
  };
}

export function pitToKernel(pitState: unknown, port61State: unknown, at: ClockPair): KernelPitState {
  const pit = object('8254', pitState);
  if (!Array.isArray(pit.counters) || pit.counters.length !== 3) corrupt('8254 counters', pit.counters);
  const port61 = int('port 0x61 value', object('port 0x61', port61State).value, 0xff);
  const channels = pit.counters.map((c, i) => pitChannelToKernel(c, i, at));
  channels[2]!.gate = (port61 & PORT61_GATE2) !== 0;
  return { channels, flags: port61 & PORT61_SPEAKER ? PIT_FLAGS_SPEAKER_DATA_ON : 0 };
}

// ---- local APIC ----

const reg = (regs: Uint8Array, offset: number) => new DataView(regs.buffer, regs.byteOffset, regs.length).getUint32(offset, true);

function timerMode(lvtTimer: number): number {
  return (lvtTimer >>> TIMER_MODE_SHIFT) & 3;
}

export function lapicFromKernel(k: KernelLapicState, at: ClockPair): LocalApicState {
  if (k.regs.length !== LAPIC_REGS_BYTES) kernelRefuses('local APIC page length', k.regs.length, `${LAPIC_REGS_BYTES} bytes`);
  const flags = Number(k.apicBase & 0xfffn);
  if (k.apicBase >= APIC_BASE_LIMIT || flags & ~APIC_BASE_FLAGS || (flags & APIC_BASE_X2APIC && !(flags & APIC_BASE_ENABLE))) {
    kernelRefuses('IA32_APIC_BASE', `0x${k.apicBase.toString(16)}`, 'an address below 2^52 with BSP, EN and EXTD (not EXTD alone)');
  }
  const r = (offset: number) => reg(k.regs, offset);
  const lvt = Object.fromEntries(LVT_OFFSETS.map((o) => [o, r(o)]));
  const lvtTimer = lvt[0x320] ?? LVT_MASKED;
  if (timerMode(lvtTimer) === TIMER_MODE_TSC_DEADLINE) {
    throw new TsvmmError('TSVMM_UNSUPPORTED', 'the local APIC timer is in TSC-deadline mode, whose deadline (IA32_TSC_DEADLINE) is not saved');
  }
  if (timerMode(lvtTimer) === 3) kernelRefuses('local APIC timer mode', 3, 'one-shot, periodic and TSC-deadline');
  const timerInitial = r(APIC_TIMER_INITIAL);
  const timerDivide = r(APIC_TIMER_DIVIDE) & 0xb;
  const current = r(APIC_TIMER_CURRENT);
  if (current > timerInitial) kernelRefuses('local APIC current count', current, `0-${timerInitial} (the initial count)`);
  const nsPerCount = divisorOf(timerDivide) * NS_PER_APIC_BUS_TICK;
  // The timer started counting (initial - current) counts ago; it expires after `current` more.
  const running = timerInitial !== 0 && current !== 0;
  return {
    id: r(APIC_ID) >>> 24, baseMsr: Number(k.apicBase), tpr: r(APIC_TPR) & 0xff, ldr: r(APIC_LDR), dfr: r(APIC_DFR), svr: r(APIC_SVR) & SVR_BITS,
    isr: Array.from({ length: 8 }, (_, i) => r(APIC_ISR + 0x10 * i)),
    tmr: Array.from({ length: 8 }, (_, i) => r(APIC_TMR + 0x10 * i)),
    irr: Array.from({ length: 8 }, (_, i) => r(APIC_IRR + 0x10 * i)),
    esr: r(APIC_ESR), esrPending: 0, icrLow: r(APIC_ICR_LOW), icrHigh: r(APIC_ICR_HIGH), lvt,
    timerInitial, timerDivide,
    timerStart: timerInitial === 0 ? 0 : at.guestNs - (timerInitial - (running ? current : 0)) * nsPerCount,
    timerDeadline: running ? at.guestNs + current * nsPerCount : null,
    tscDeadline: 0, lintLevels: 0, extIntRequested: false, timerOwed: 0, timerInFlight: false,
  };
}

export function lapicToKernel(state: unknown, at: ClockPair): KernelLapicState {
  const s = object('local APIC', state);
  const f = (name: string) => `local APIC's ${name}`;
  const u32 = (name: string) => int(f(name), s[name], 0xffff_ffff);
  const baseMsr = int(f('baseMsr'), s.baseMsr, Number.MAX_SAFE_INTEGER);
  const lvtIn = object(f('lvt'), s.lvt);
  const lvt = new Map(LVT_OFFSETS.map((o) => [o, lvtIn[o] === undefined ? LVT_MASKED : int(f(`lvt ${o}`), lvtIn[o], 0xffff_ffff)]));
  const lvtTimer = lvt.get(0x320)!;
  const timerInitial = u32('timerInitial');
  const timerDivide = int(f('timerDivide'), s.timerDivide, 0xf) & 0xb;
  const timerStart = time(f('timerStart'), s.timerStart);
  const tscDeadline = s.tscDeadline === undefined ? 0 : time(f('tscDeadline'), s.tscDeadline);
  if (timerMode(lvtTimer) === TIMER_MODE_TSC_DEADLINE && tscDeadline !== 0) {
    throw new TsvmmError('TSVMM_SNAPSHOT_MISMATCH', 'the local APIC\'s TSC-deadline timer is armed, and its deadline does not go to KVM');
  }
  // The current count at the saved instant, as the device reads it.
  let current = 0;
  if (timerInitial !== 0 && timerMode(lvtTimer) !== TIMER_MODE_TSC_DEADLINE) {
    const elapsed = Math.max(0, Math.floor((at.guestNs - timerStart) / (divisorOf(timerDivide) * NS_PER_APIC_BUS_TICK)));
    current = timerMode(lvtTimer) === TIMER_MODE_PERIODIC ? timerInitial - (elapsed % timerInitial) : elapsed >= timerInitial ? 0 : timerInitial - elapsed;
  }
  const regs = new Uint8Array(LAPIC_REGS_BYTES);
  const d = new DataView(regs.buffer);
  const put = (offset: number, v: number) => d.setUint32(offset, v >>> 0, true);
  put(APIC_ID, int(f('id'), s.id, 0xff) << 24);
  put(APIC_VERSION, APIC_VERSION_VALUE);
  put(APIC_TPR, int(f('tpr'), s.tpr, 0xff));
  put(APIC_LDR, u32('ldr'));
  put(APIC_DFR, u32('dfr'));
  put(APIC_SVR, int(f('svr'), s.svr, 0xffff_ffff) & SVR_BITS);
  words(f('isr'), s.isr, 8).forEach((w, i) => put(APIC_ISR + 0x10 * i, w));
  words(f('tmr'), s.tmr, 8).forEach((w, i) => put(APIC_TMR + 0x10 * i, w));
  words(f('irr'), s.irr, 8).forEach((w, i) => put(APIC_IRR + 0x10 * i, w));
  put(APIC_ESR, u32('esr'));
  put(APIC_ICR_LOW, u32('icrLow'));
  put(APIC_ICR_HIGH, u32('icrHigh'));
  for (const [o, v] of lvt) put(o, v);
  put(APIC_TIMER_INITIAL, timerInitial);
  put(APIC_TIMER_DIVIDE, timerDivide);
  put(APIC_TIMER_CURRENT, current);
  return { regs, apicBase: BigInt(baseMsr) };
}

// ---- the whole set ----

/** The devices' states (by IRQCHIP_DEVICES name) of what the backend's irqchip holds. */
export function devicesFromKernel(chip: KernelIrqchipState, lapic: KernelLapicState, at: ClockPair): Record<string, unknown> {
  const { pit, port61 } = pitFromKernel(chip.pit, at);
  const pic: I8259PicState = { master: picChipFromKernel(chip.picMaster, 'master'), slave: picChipFromKernel(chip.picSlave, 'slave') };
  return { pic, pit, 'port-61': port61, ioapic: ioapicFromKernel(chip.ioapic), 'lapic-0': lapicFromKernel(lapic, at) };
}

/** The backend's irqchip and local APIC state from a snapshot's devices (by IRQCHIP_DEVICES name). */
export function devicesToKernel(devices: Record<string, unknown>, at: ClockPair): { chip: KernelIrqchipState; lapic: KernelLapicState } {
  const pic = object('8259 pair', devices.pic);
  return {
    chip: {
      picMaster: picChipToKernel(pic.master, 'master'),
      picSlave: picChipToKernel(pic.slave, 'slave'),
      ioapic: ioapicToKernel(devices.ioapic),
      pit: pitToKernel(devices.pit, devices['port-61'], at),
    },
    lapic: lapicToKernel(devices['lapic-0'], at),
  };
}
