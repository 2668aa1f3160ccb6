/**
 * How device interrupts reach the boot vCPU. Two ways:
 * - the backend's own controllers (KVM's in-kernel PIC, IOAPIC, LAPIC, PIT): lines go to it and
 *   nothing else is needed;
 * - the board's devices (the software CPU): the 8259 pair and the timers are devices on the bus.
 *   A backend that serves devices inline (soft) calls the bus, the interrupt controller and the
 *   timers from its run loop, without exits. Otherwise interrupts are delivered as NVMM's VMMs
 *   do: ask for the interrupt window, inject the vector the PIC acknowledges when it opens, and a
 *   ticker thread kicks a running vCPU when a deadline passes. Either way a halted vCPU sleeps
 *   here until the next timer deadline or a kick. One halted with interrupts off can never wake
 *   (the board has no NMI source): where the host will end the run after a while (a timeout), it
 *   waits for that end, as it does in KVM's irqchip; otherwise its halt goes to the board, which
 *   ends the machine.
 *
 * The board's devices come in two shapes. PIC mode: the 8259 pair is the CPU's INTR (the exit
 * path above, and any backend without inline devices). APIC mode (`apic`; the soft CPU with
 * inline devices): a PC with an I/O APIC and a local APIC per vCPU. Every line goes to the 8259
 * input and to the I/O APIC pin of its GSI (ISA IRQ 0, the PIT, to pin 2, as the MADT's override
 * and the MP table say; the other ISA IRQs to the pin of their number). The vCPU asks its local
 * APIC for interrupts; the 8259 reaches it as ExtINT through LINT0, which starts in virtual wire
 * mode as firmware leaves it, so a guest that never touches the APIC runs as in PIC mode. The
 * local APIC's page (wherever IA32_APIC_BASE puts it) is dispatched per vCPU before the MMIO bus,
 * CR8 and the APIC MSRs reach it through InlineDevices.apic, its timer ticks with the others
 * (periodic expiries reinjected), and CPUID.1 says APIC (not TSC-deadline: see createApic).
 * Level-triggered EOIs go back to the I/O APIC (remote IRR).
 * What the SMP slice adds: a LocalApic per AP vCPU in `apics` (the I/O APIC and IPIs already
 * deliver to that list), INIT/SIPI (onInit/onSipi) starting the AP threads, and waking a vCPU
 * that sleeps in HLT when another thread makes its APIC's interrupt pending (onInterrupt).
 */
import type { GuestClock } from '../common/clock.js';
import { TsvmmError } from '../common/errors.js';
import type { MmioBus, PortBus } from '../devices/bus.js';
import type { IrqLine } from '../devices/irq.js';
import { I8259Pic } from '../devices/i8259-pic.js';
import { IOAPIC_DEFAULT_BASE, IoApic } from '../devices/ioapic.js';
import { LocalApic, deliverToApics, type ApicMessage } from '../devices/local-apic.js';
import type { BackendIrqchip, InlineApic } from '../nvmm/backend.js';
import type { VcpuExit } from '../nvmm/exit.js';
import type { Vcpu } from '../nvmm/machine.js';
import { GPR, STATE } from '../nvmm/state.js';
import { STOP_WORD } from '../nvmm/stop.js';
import { I8254Pit } from '../devices/i8254-pit.js';
import { Port61 } from '../devices/port-61.js';
import { IRQS, PORTS } from './layout.js';
import { Ticker } from './ticker.js';
import { FEATURE, LEAF, featureMask } from '../x86/cpuid.js';
import type { ApicBus } from './apic-bus.js';
import { APIC_DFR, APIC_ID, APIC_LDR } from '../x86/apic.js';

const RFLAGS_IF = 1n << 9n; // maskable interrupts enabled

/** The I/O APIC pin ISA IRQ 0 (the PIT) is wired to on a PC (the MADT's interrupt source override, the MP table's entry). */
export const PIT_IOAPIC_PIN = 2;
/** The I/O APIC pin of a GSI of the board's lines: ISA IRQ 0 to pin 2, every other to its own number. */
export function ioapicPin(gsi: number): number {
  return gsi === IRQS.PIT ? PIT_IOAPIC_PIN : gsi;
}
const ISA_IRQS = 16;
/** The local APIC registers whose writes change how the APIC bus addresses it (ApicBus.publish). */
export const IDENTITY_REGISTERS: ReadonlySet<number> = new Set([APIC_ID, APIC_LDR, APIC_DFR]);
/** The local APIC register page's size. */
const APIC_PAGE = 0x1000;
/** The I/O APIC's window on the MMIO bus: its page. */
const IOAPIC_WINDOW = 0x1000;

/** A device that raises interrupts on its own schedule (the PIT, the LAPIC timer). */
export interface TimerDevice {
  /** Brings the device up to `nowNs` (raising what is due). */
  tick(nowNs: number): void;
  /** When the device next needs tick(), or undefined. */
  nextDeadline(): number | undefined;
}

export interface InterruptRouting {
  line(gsi: number): IrqLine;
  /** Called before each run of the boot vCPU. */
  beforeRun(): void;
  /** Handles the exits that are the routing's business (interrupt window, halt); false otherwise. */
  onExit(exit: VcpuExit): boolean;
  close(): Promise<void>;
}

/** An interrupt line of the backend's irqchip, calling it only when the level changes. */
class IrqchipLine implements IrqLine {
  private level = false;
  constructor(private readonly chip: BackendIrqchip, private readonly gsi: number) {}
  set(level: boolean): void {
    if (level === this.level) return;
    this.level = level;
    this.chip.setIrq(this.gsi, level);
  }
  pulse(): void {
    this.set(true);
    this.set(false);
  }
}

export class BackendInterrupts implements InterruptRouting {
  constructor(readonly chip: BackendIrqchip) {}
  line(gsi: number): IrqLine {
    return new IrqchipLine(this.chip, gsi);
  }
  beforeRun(): void {}
  onExit(): boolean {
    return false;
  }
  async close(): Promise<void> {}
}

/** A line of the APIC-mode board: the 8259 input (ISA IRQs) and the I/O APIC pin, calling them when the level changes. */
class BoardLine implements IrqLine {
  private level = false;
  constructor(private readonly pic: IrqLine | undefined, private readonly ioapic: IoApic, private readonly pin: number) {}
  set(level: boolean): void {
    if (level === this.level) return;
    this.level = level;
    this.pic?.set(level);
    this.ioapic.setIrq(this.pin, level);
  }
  pulse(): void {
    this.set(true);
    this.set(false);
  }
}

export interface BoardInterruptsOptions {
  /** The host ends the run after a while (a timeout): a vCPU halted for good waits for that. */
  awaitHostEnd?: boolean;
  /** APIC mode (see the file comment): the I/O APIC goes on this bus, with this ID (the MADT's and the MP table's). */
  apic?: { mmio: MmioBus; ioapicId: number };
}

export class BoardInterrupts implements InterruptRouting {
  readonly pic = new I8259Pic({ onAck: (irq) => { if (irq === IRQS.PIT) this.pit.ackIrq0(); } });
  /** APIC mode: the I/O APIC, and the local APICs by vCPU id (the boot vCPU's once attached). */
  readonly ioapic: IoApic | undefined;
  readonly apics: LocalApic[] = [];
  private readonly timers: TimerDevice[] = [];
  private vcpu: Vcpu | undefined;
  private ticker: Ticker | undefined;
  private windowRequested = false;

  readonly pit: I8254Pit;
  readonly port61: Port61;
  private readonly clock: GuestClock;

  private readonly awaitHostEnd: boolean;
  /** The controller the boot vCPU takes interrupts from: its local APIC in APIC mode, else the 8259. */
  private intr: { pendingInterrupt(): boolean; acknowledge(): number } = this.pic;

  /** `clock`: the machine's guest time, which the timers, the inline tick and the ticker thread all read. */
  constructor(ports: PortBus, clock: GuestClock, opts: BoardInterruptsOptions = {}) {
    this.clock = clock;
    this.awaitHostEnd = opts.awaitHostEnd ?? false;
    if (opts.apic) {
      this.ioapic = new IoApic({
        id: opts.apic.ioapicId, deliver: (msg) => this.deliver(msg),
        // An IRQ 0 edge the 8259 took while masked is never acknowledged: the PIT must not wait for it.
        onUnmask: (pin) => { if (pin === PIT_IOAPIC_PIN) this.pit.resetReinject(); },
      });
      opts.apic.mmio.register(IOAPIC_DEFAULT_BASE, IOAPIC_WINDOW, 'ioapic', this.ioapic);
    }
    ports.register(PORTS.PIC_MASTER.base, PORTS.PIC_MASTER.length, 'pic-master', this.pic.master);
    ports.register(PORTS.PIC_SLAVE.base, PORTS.PIC_SLAVE.length, 'pic-slave', this.pic.slave);
    ports.register(PORTS.PIC_ELCR.base, PORTS.PIC_ELCR.length, 'pic-elcr', this.pic.elcr);
    // One clock for the timers and the ticker thread that wakes the vCPU at their deadlines.
    // Reinjection: the software CPU often runs with interrupts off for several PIT periods.
    this.pit = new I8254Pit({ irq0: this.line(IRQS.PIT), now: clock.now, reinject: true });
    ports.register(PORTS.PIT.base, PORTS.PIT.length, 'pit', this.pit);
    this.port61 = new Port61({ pit: this.pit, now: clock.now });
    ports.register(PORTS.SYSTEM_CONTROL_B.base, PORTS.SYSTEM_CONTROL_B.length, 'port-61', this.port61);
    this.timers.push(this.pit);
  }

  line(gsi: number): IrqLine {
    if (!this.ioapic) return this.pic.line(gsi);
    return new BoardLine(gsi < ISA_IRQS ? this.pic.line(gsi) : undefined, this.ioapic, ioapicPin(gsi));
  }

  /**
   * SMP on the software CPU: the APIC bus to the local APICs of the other vCPUs' threads (set
   * before the boot vCPU first runs). The I/O APIC's messages and this thread's IPIs go through it.
   */
  private bus: ApicBus | undefined;

  setApicBus(bus: ApicBus): void {
    this.bus = bus;
    const apic = this.apics[0];
    if (apic) bus.publish(0, apic);
  }

  /** An APIC-bus message from this thread (the I/O APIC's, an IPI of the boot vCPU's APIC). */
  private deliver(msg: ApicMessage): void {
    const local = this.apics[0];
    if (this.bus) this.bus.deliver(msg, local && { index: 0, apic: local });
    else deliverToApics(this.apics, msg);
  }

  /** Takes what other vCPUs' threads left in the boot vCPU's inbox. */
  drainBus(): void {
    const bus = this.bus, apic = this.apics[0];
    if (bus && apic && bus.pending(0)) bus.drain(0, apic);
  }

  /**
   * The local APIC of vCPU `id` (APIC mode): firmware's virtual wire setup, the timer among the
   * board's timers, EOIs of level-triggered vectors to the I/O APIC, and the PIT's reinjection
   * acknowledged when its I/O APIC vector is taken (as the 8259's INTA acknowledges it in PIC mode).
   */
  createApic(id: number): LocalApic {
    const ioapic = this.ioapic;
    if (!ioapic) throw new TsvmmError('TSVMM_BAD_ARGUMENT', 'local APICs are for the board\'s APIC mode');
    const apic = new LocalApic({
      id, bsp: id === 0, now: this.clock.now, tscDeadline: true, x2apic: true, reinjectPeriodic: true, extInt: this.pic,
      onEoi: (vector) => ioapic.eoi(vector),
      sendIpi: (msg) => this.deliver(msg),
      onAcknowledge: (vector) => { if (ioapic.routes(PIT_IOAPIC_PIN, vector)) this.pit.ackIrq0(); },
    });
    apic.setVirtualWireMode();
    this.apics[id] = apic;
    this.timers.push(apic);
    return apic;
  }

  /** Tells vCPU `vcpu` what createApic gave it. */
  private advertiseApic(vcpu: Vcpu): void {
    // CPUID.1 EDX.APIC (and its AMD copy in 0x80000001 EDX): the vCPU has one now. TSC-deadline
    // mode works but is not advertised: Linux would tick with it, one-shot, and on this CPU an
    // interrupt taken later than a tick period loses that jiffy (nothing reinjects a one-shot),
    // so its jiffies watchdog would find the TSC "unstable". With the periodic timer, reinjected
    // like the PIT, its jiffies keep up, the TSC stays its clocksource, and it boots faster.
    // x2APIC mode (CPUID.1 ECX.X2APIC) is there and advertised: the vCPU reaches its MSRs (APs too: soft-ap.ts).
    const apicBit = featureMask(FEATURE.APIC);
    vcpu.configure({ kind: 'cpuid', leaf: LEAF.FEATURES, set: { edx: apicBit, ecx: featureMask(FEATURE.X2APIC) } });
    vcpu.configure({ kind: 'cpuid', leaf: LEAF.EXT_FEATURES1, set: { edx: apicBit } });
  }

  /**
   * The vCPU interrupts go to (set once it exists). A backend that serves devices inline (the
   * software CPU) gets the buses, the PIC and the timers themselves: port I/O, MMIO, interrupt
   * delivery and timer ticks then happen inside its run loop, without exits (buses null: it exits).
   */
  attach(vcpu: Vcpu, buses: { ports: PortBus; mmio: MmioBus } | null, ended: () => boolean): void {
    this.vcpu = vcpu;
    if (!buses || !vcpu.machine.capability.inlineDevices) {
      if (this.ioapic) throw new TsvmmError('TSVMM_BAD_ARGUMENT', 'the board\'s APIC mode needs a vCPU that serves devices inline');
      this.ticker = new Ticker(vcpu.stopHandle(), this.clock);
      return;
    }
    this.inline = true;
    const { ports, mmio } = buses;
    const apic = this.ioapic ? this.createApic(vcpu.id) : undefined;
    if (apic) this.advertiseApic(vcpu);
    const intr = (this.intr = apic ?? this.pic);
    vcpu.setInlineDevices({
      io: (port, size, isIn, value) => {
        this.inlineIo++;
        if (isIn) return ports.read(port, size);
        ports.write(port, size, value);
        return 0;
      },
      interruptPending: () => {
        this.drainBus();
        return intr.pendingInterrupt();
      },
      acknowledge: () => intr.acknowledge(),
      tick: (now) => this.tickTimers(now) ?? Infinity,
      ended,
      mmio: (gpa, data, write) => {
        this.inlineMmio++;
        // This vCPU's local APIC page comes before the bus (each vCPU sees its own there),
        // unless the APIC is disabled or in x2APIC mode.
        if (apic?.xapicMmio) {
          const offset = gpa - apic.baseAddress;
          if (offset >= 0 && offset < APIC_PAGE) {
            if (write) {
              apic.write(offset, data);
              if (this.bus && IDENTITY_REGISTERS.has(offset)) this.bus.publish(vcpu.id, apic);
            } else apic.read(offset, data);
            return;
          }
        }
        if (write) mmio.write(gpa, data);
        else mmio.read(gpa, data);
      },
      ...(apic ? { apic: this.busApic(vcpu.id, apic) } : {}),
    });
  }

  /** The APIC as the CPU reaches it, publishing a base MSR write (hardware enable) on the APIC bus. */
  private busApic(id: number, apic: LocalApic): InlineApic {
    return {
      getCr8: () => apic.getCr8(), setCr8: (v) => apic.setCr8(v), readBaseMsr: () => apic.readBaseMsr(),
      readTscDeadline: () => apic.readTscDeadline(), writeTscDeadline: (ns) => apic.writeTscDeadline(ns),
      writeBaseMsr: (v) => {
        const ok = apic.writeBaseMsr(v);
        this.bus?.publish(id, apic);
        return ok;
      },
      readX2apicMsr: (msr) => apic.readX2apicMsr(msr), writeX2apicMsr: (msr, lo, hi) => apic.writeX2apicMsr(msr, lo, hi),
    };
  }

  /** Port accesses served inline (without an exit). */
  inlineIo = 0;
  /** MMIO accesses served inline (without an exit). */
  inlineMmio = 0;
  private inline = false;

  /** Brings the timers up to now, publishes their next deadline to the ticker and returns it. */
  private tickTimers(now = this.clock.now()): number | undefined {
    let next: number | undefined;
    for (const t of this.timers) {
      t.tick(now);
      const d = t.nextDeadline();
      if (d !== undefined && (next === undefined || d < next)) next = d;
    }
    this.ticker?.set(next);
    return next;
  }

  private setWindowExiting(on: boolean): void {
    const vcpu = this.vcpu!;
    vcpu.getState(STATE.INTR).intr.intWindowExiting = on;
    vcpu.setState(STATE.INTR);
    this.windowRequested = on;
  }

  beforeRun(): void {
    this.tickTimers();
    if (this.inline) return;
    if (this.pic.pendingInterrupt() !== this.windowRequested) this.setWindowExiting(!this.windowRequested);
  }

  onExit(exit: VcpuExit): boolean {
    switch (exit.kind) {
      case 'interruptWindow':
        this.setWindowExiting(false);
        if (this.pic.pendingInterrupt()) this.vcpu!.inject({ type: 'interrupt', vector: this.pic.acknowledge() });
        return true;
      case 'halted':
        // With interrupts off only an NMI wakes a halted CPU, and nothing here sends one.
        if (!this.awaitHostEnd && !this.interruptsEnabled()) return false;
        this.sleepUntilWoken();
        return true;
      default:
        return false;
    }
  }

  private interruptsEnabled(): boolean {
    return (this.vcpu!.getState(STATE.GPRS).gprs[GPR.RFLAGS]! & RFLAGS_IF) !== 0n;
  }

  /** A halted vCPU: sleep until an interrupt is pending, the next timer deadline, or a kick. */
  private sleepUntilWoken(): void {
    const words = new Int32Array(this.vcpu!.stopHandle().flag);
    for (;;) {
      const next = this.tickTimers();
      this.drainBus();
      if (this.intr.pendingInterrupt()) return;
      const waitMs = next === undefined ? 1000 : Math.max(0, (next - this.clock.now()) / 1e6);
      // A kick (host input, stop) sets the stop word and wakes us; the run loop then sees it.
      if (Atomics.wait(words, STOP_WORD.STOP, 0, waitMs) !== 'timed-out') return;
    }
  }

  async close(): Promise<void> {
    await this.ticker?.close();
  }
}
