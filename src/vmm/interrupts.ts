/**
 * How device interrupts reach the boot vCPU. Two ways:
 * - the backend's own controllers (KVM's in-kernel PIC, IOAPIC, LAPIC, PIT): lines go to it and
 *   nothing else is needed;
 * - the board's devices (the software CPU): the 8259 pair and the timers are devices on the bus.
 *   A backend that serves devices inline (soft) calls the bus, the PIC and the timers from its
 *   run loop, without exits. Otherwise interrupts are delivered as NVMM's VMMs do: ask for the
 *   interrupt window, inject the vector the PIC acknowledges when it opens, and a ticker thread
 *   kicks a running vCPU when a deadline passes. Either way a halted vCPU sleeps here until the
 *   next timer deadline or a kick. One halted with interrupts off can never wake (the board has
 *   no NMI source): where the host will end the run after a while (a timeout), it waits for that
 *   end, as it does in KVM's irqchip; otherwise its halt goes to the board, which ends the machine.
 */
import type { GuestClock } from '../common/clock.js';
import type { MmioBus, PortBus } from '../devices/bus.js';
import type { IrqLine } from '../devices/irq.js';
import { I8259Pic } from '../devices/i8259-pic.js';
import type { BackendIrqchip } from '../nvmm/backend.js';
import type { VcpuExit } from '../nvmm/exit.js';
import type { Vcpu } from '../nvmm/machine.js';
import { GPR, STATE } from '../nvmm/state.js';
import { STOP_WORD } from '../nvmm/stop.js';
import { I8254Pit } from '../devices/i8254-pit.js';
import { Port61 } from '../devices/port-61.js';
import { IRQS, PORTS } from './layout.js';
import { Ticker } from './ticker.js';

const RFLAGS_IF = 1n << 9n; // maskable interrupts enabled

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
  constructor(private readonly chip: BackendIrqchip) {}
  line(gsi: number): IrqLine {
    return new IrqchipLine(this.chip, gsi);
  }
  beforeRun(): void {}
  onExit(): boolean {
    return false;
  }
  async close(): Promise<void> {}
}

export class BoardInterrupts implements InterruptRouting {
  readonly pic = new I8259Pic({ onAck: (irq) => { if (irq === IRQS.PIT) this.pit.ackIrq0(); } });
  private readonly timers: TimerDevice[] = [];
  private vcpu: Vcpu | undefined;
  private ticker: Ticker | undefined;
  private windowRequested = false;

  readonly pit: I8254Pit;
  readonly port61: Port61;
  private readonly clock: GuestClock;

  /**
   * `clock`: the machine's guest time, which the timers, the inline tick and the ticker thread all
   * read. `awaitHostEnd`: the host ends the run after a while; a vCPU halted for good waits for that.
   */
  constructor(ports: PortBus, clock: GuestClock, private readonly awaitHostEnd = false) {
    this.clock = clock;
    ports.register(PORTS.PIC_MASTER.base, PORTS.PIC_MASTER.length, 'pic-master', this.pic.master);
    ports.register(PORTS.PIC_SLAVE.base, PORTS.PIC_SLAVE.length, 'pic-slave', this.pic.slave);
    ports.register(PORTS.PIC_ELCR.base, PORTS.PIC_ELCR.length, 'pic-elcr', this.pic.elcr);
    // One clock for the timers and the ticker thread that wakes the vCPU at their deadlines.
    // Reinjection: the software CPU often runs with interrupts off for several PIT periods.
    this.pit = new I8254Pit({ irq0: this.pic.line(IRQS.PIT), now: clock.now, reinject: true });
    ports.register(PORTS.PIT.base, PORTS.PIT.length, 'pit', this.pit);
    this.port61 = new Port61({ pit: this.pit, now: clock.now });
    ports.register(PORTS.SYSTEM_CONTROL_B.base, PORTS.SYSTEM_CONTROL_B.length, 'port-61', this.port61);
    this.timers.push(this.pit);
  }

  line(gsi: number): IrqLine {
    return this.pic.line(gsi);
  }

  /**
   * The vCPU interrupts go to (set once it exists). A backend that serves devices inline (the
   * software CPU) gets the buses, the PIC and the timers themselves: port I/O, MMIO, interrupt
   * delivery and timer ticks then happen inside its run loop, without exits (buses null: it exits).
   */
  attach(vcpu: Vcpu, buses: { ports: PortBus; mmio: MmioBus } | null, ended: () => boolean): void {
    this.vcpu = vcpu;
    if (!buses || !vcpu.machine.capability.inlineDevices) {
      this.ticker = new Ticker(vcpu.stopHandle(), this.clock);
      return;
    }
    this.inline = true;
    const pic = this.pic;
    const { ports, mmio } = buses;
    vcpu.setInlineDevices({
      io: (port, size, isIn, value) => {
        this.inlineIo++;
        if (isIn) return ports.read(port, size);
        ports.write(port, size, value);
        return 0;
      },
      interruptPending: () => pic.pendingInterrupt(),
      acknowledge: () => pic.acknowledge(),
      tick: (now) => this.tickTimers(now) ?? Infinity,
      ended,
      mmio: (gpa, data, write) => {
        this.inlineMmio++;
        if (write) mmio.write(gpa, data);
        else mmio.read(gpa, data);
      },
    });
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
      if (this.pic.pendingInterrupt()) return;
      const waitMs = next === undefined ? 1000 : Math.max(0, (next - this.clock.now()) / 1e6);
      // A kick (host input, stop) sets the stop word and wakes us; the run loop then sees it.
      if (Atomics.wait(words, STOP_WORD.STOP, 0, waitMs) !== 'timed-out') return;
    }
  }

  async close(): Promise<void> {
    await this.ticker?.close();
  }
}
