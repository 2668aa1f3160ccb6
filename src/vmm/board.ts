/**
 * The PC board: the composition root. RAM with the 32-bit MMIO hole, the legacy devices on the
 * port bus, the virtio devices on the MMIO bus (virtio-devices.ts), the backend's interrupt
 * controllers, the boot image, and the run loop of the boot vCPU. It lives in the boot vCPU's thread, so that vCPU's exits reach the devices directly.
 *
 * It is built from the machine's configuration (config.ts: checked, plain data) and what its
 * thread gives it beside (BoardRuntime): the backend, which the caller opens in the thread that
 * runs the board (KVM's and koffi's state is per thread) and closes after close(), and the
 * host's ends of the console and the control word. Tests give it a fake backend.
 */
import { hex } from '../common/bits.js';
import { TsvmmError, assertNever } from '../common/errors.js';
import { MmioBus, PortBus, UNKNOWN_LOGGED } from '../devices/bus.js';
import { DebugExit } from '../devices/debug-exit.js';
import { I8042 } from '../devices/i8042.js';
import { Mc146818Rtc } from '../devices/mc146818-rtc.js';
import { Port80 } from '../devices/port-0x80.js';
import { Uart8250 } from '../devices/uart-8250.js';
import { E820_RAM, E820_RESERVED, type E820Entry } from '../loader/boot-params.js';
import type { GuestMemoryWriter } from '../loader/guest-memory.js';
import { KernelCache } from '../loader/kernel-cache.js';
import { HostMemory } from '../memory/host-memory.js';
import { assistIo, assistMem, type IoAccess, type MemAccess } from '../nvmm/assist.js';
import { PROT, type Backend, type StopHandle } from '../nvmm/backend.js';
import type { VcpuExitKind } from '../nvmm/exit.js';
import { Machine, type Vcpu } from '../nvmm/machine.js';
import { CR, GPR, MSR, SEG, STATE } from '../nvmm/state.js';
import { EXC_GP } from '../x86/exceptions.js';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { stopVcpu } from '../nvmm/stop.js';
import type { ApWorkerData } from './ap-worker.js';
import { ApicBus, newApicBus } from './apic-bus.js';
import type { ApBusMessage } from './soft-ap.js';
import { bootImage, TABLE_AREA, writeArea, type ImageFormat } from './boot.js';
import type { MachineConfig } from './config.js';
import { ACCESS, AP_END, DeviceMailbox, type DeviceAccess } from './device-mailbox.js';
import { buildMpTable } from './mptable.js';
import { RingBacklog, type ByteRing } from './byte-ring.js';
import { enterGuest } from './cpu-setup.js';
import { maxImageBytes, readImageFile } from './image-file.js';
import { AcpiPm, AcpiResetRegister } from '../devices/acpi-pm.js';
import { buildAcpiTables } from '../devices/acpi-tables.js';
import { BackendInterrupts, BoardInterrupts, type InterruptRouting } from './interrupts.js';
import { VcpuAgent } from './gdb/vcpu-agent.js';
import { BACKEND_RESERVED, BOOT, FOUR_GIB, HIGH_RAM_START, IRQS, LOW_RAM_END, MMIO_HOLE_START, PORTS } from './layout.js';
import { RegionGuestMemory, type RamRegion } from '../devices/virtio/guest-memory.js';
import { BoardVirtio } from './virtio-devices.js';
import type { NetRings } from '../devices/net/frame-ring.js';
import { GuestClock, hostNs } from '../common/clock.js';
import { IRQCHIP_DEVICES, devicesFromKernel, devicesToKernel, type ClockPair } from './irqchip-translation.js';
import { REDIR_MASKED } from '../devices/ioapic.js';
import { copyState } from '../nvmm/state.js';
import type { VirtioMmioState } from '../devices/virtio/virtio-mmio.js';
import { decodeVcpu, loadRam, type DriveStamp, type ParsedSnapshot, type SavedVcpu, type SnapshotContents } from './snapshot-file.js';
import { DebugChannel, WORD, newDebugChannel } from './gdb/channel.js';
import type { VcpuReply } from './gdb/target.js';
import type { ApRestore, ApRun } from './soft-ap.js';
import { LocalApic, type LocalApicState } from '../devices/local-apic.js';
import { statSync } from 'node:fs';
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { writeSnapshot } from './snapshot-file.js';

export { MAX_CPUS } from './layout.js';

/** How a run of the machine ended. */
export type VmEnd =
  | { how: 'reset' } // the guest reset the machine (i8042 pulse, triple fault is separate)
  | { how: 'poweroff' }
  | { how: 'debug-exit'; status: number } // a write to the debug-exit port
  | { how: 'triple-fault'; report: string }
  | { how: 'stopped' } // stop() from the host
  | { how: 'timeout'; report: string }
  | { how: 'error'; code: string; message: string };

/** The DSDT's \_S5 sleep type: writing it with SLP_EN powers off. */
const S5_SLEEP_TYPE = 5;
/** How long the application processors have to stop for a snapshot, and to answer (ms). */
const AP_SAVE_TIMEOUT_MS = 10_000;

/**
 * RAM above 4 GiB comes in host memory pieces of at most this size: one HostMemory is one typed
 * array (at most 4 GiB), and smaller pieces fit the soft CPU's arena more often.
 */
const HIGH_RAM_PIECE = 2 * 1024 * 1024 * 1024;

/**
 * Guest output of a virtio console port (hvc0, the agent's) that found the host's ring full waits
 * for room, up to this much per port; past it, output is dropped and counted (RingBacklog: the
 * device cannot hold a transmit buffer back, Linux's hvc spins until each one is returned).
 */
export const CONSOLE_BACKLOG_BYTES = 1 << 20;

/**
 * Why the host kicked the vCPU (control word 0): CONSOLE = serial bytes or network frames to move
 * (input to take, room for output the UART holds, frames or room in a network card's rings), else an end. The host may set an end before the vCPU
 * exists (stop() during start-up): run() looks at the word before it runs the guest.
 */
export const KICK = { CONSOLE: 0, STOP: 1, TIMEOUT: 2, CONTROL: 3 } as const;

/** What a board was started from: a kernel it boots, or a snapshot it continues. */
export type BoardFormat = ImageFormat | 'snapshot';

/** A snapshot to continue from (checked by readSnapshot), instead of booting config.kernel. */
export interface BoardRestore {
  path: string;
  snapshot: ParsedSnapshot;
  /** false: copy the saved pages into RAM even where they could be mapped from the file (loadRam). */
  mapRam?: boolean;
}

/** Guest RAM of `size` bytes as the board lays it out: below the MMIO hole, then pieces above 4 GiB. */
export function ramLayout(size: number): { gpa: number; size: number }[] {
  const low = Math.min(size, MMIO_HOLE_START);
  const top = size > low ? FOUR_GIB + (size - low) : low;
  const regions = [{ gpa: 0, size: low }];
  for (let gpa = FOUR_GIB; gpa < top; gpa += HIGH_RAM_PIECE) regions.push({ gpa, size: Math.min(HIGH_RAM_PIECE, top - gpa) });
  return regions;
}

/** What the board's thread gives the board beside its configuration: none of it is configuration. */
export interface BoardRuntime {
  /** The backend, opened in this thread; the board does not close it (its opener does, after close()). */
  backend: Backend;
  /** Guest serial output (COM1 transmit) and input (COM1 receive). */
  serialOut: ByteRing;
  serialIn: ByteRing;
  /** Shared control words from the host (see KICK). */
  control: Int32Array;
  /** The agent port's bytes from the guest and to it (with config.agent). */
  agentOut?: ByteRing;
  agentIn?: ByteRing;
  /** The shared rings of each network card (config.nics), in order (frame-ring.ts). */
  nicRings?: readonly NetRings[];
  log: (message: string) => void;
  /**
   * Each vCPU's line to a debugger (gdb/channel.ts), by vCPU id: the boot vCPU's is served by a
   * VcpuAgent in the run loop, each application processor's by one in its thread.
   */
  debugChannels?: SharedArrayBuffer[];
  /** Continue this snapshot instead of booting (its config is `config`). */
  restore?: BoardRestore;
  /** Requests from the host (BoardControl), read when it kicks with KICK.CONTROL; replies go back on it. */
  controlPort?: MessagePort;
}

/** What the host asks of a running board, beside ending it. */
export type BoardControl =
  | { id: number; op: 'pause' }
  | { id: number; op: 'resume' }
  | { id: number; op: 'save'; path: string; agentReady: boolean };

export type BoardControlReply = { id: number; ok: true } | { id: number; ok: false; code: string; message: string };

export class PcBoard {
  readonly machine: Machine;
  readonly vcpu: Vcpu;
  readonly format: BoardFormat;
  readonly ports: PortBus;
  readonly mmio: MmioBus;
  readonly exits = new Map<VcpuExitKind, number>();
  private readonly interrupts: InterruptRouting;
  /** Guest RAM: the piece below the MMIO hole first, then the pieces above 4 GiB. */
  private readonly ram: HostMemory[] = [];
  /** The same pieces by guest-physical address, as the virtio devices reach them. */
  private readonly ramRegions: RamRegion[] = [];
  private readonly uart: Uart8250;
  /** The legacy devices by bus name, for snapshots (the 8259s and the 8254 are the routing's). */
  private readonly legacy = new Map<string, { getState(): unknown; restore(state: never): void }>();
  /** The virtio devices (none unless the configuration asks for some). */
  readonly virtio: BoardVirtio | undefined;
  /** hvc0 output, and the agent port's, on their way into the host's rings. */
  private readonly consoleOut: RingBacklog;
  private readonly agentOut: RingBacklog | undefined;
  private readonly rt: BoardRuntime;
  private end: VmEnd | undefined;
  /** Unknown MSRs noted in the log, at most UNKNOWN_LOGGED of them (a guest may try all 2^32). */
  private readonly unknownMsrs = new Set<number>();
  private unknownMsrsUnlogged = false;
  /** The application processors' threads; on soft, `save` is the board's line to each (snapshots). */
  private readonly aps: { mailbox: DeviceMailbox; stopHandle: StopHandle; gone: Promise<void>; save?: DebugChannel }[] = [];
  /** A restored machine's application processors (vCPU 1 first), handed to their threads at startAps. */
  private apRestores: ApRestore[] | undefined;
  /** Word 0 set when the machine has ended: application processors stop. */
  private readonly apsEnded = new Int32Array(new SharedArrayBuffer(4));
  private debugAgent: VcpuAgent | undefined;

  constructor(readonly config: MachineConfig, rt: BoardRuntime) {
    this.rt = rt;
    this.consoleOut = new RingBacklog(rt.serialOut, CONSOLE_BACKLOG_BYTES, () => rt.log(`the host is not reading the guest's console: hvc0 output beyond ${CONSOLE_BACKLOG_BYTES} waiting bytes is dropped (counted)`));
    if (config.agent && (!rt.agentOut || !rt.agentIn)) throw new TsvmmError('TSVMM_BAD_ARGUMENT', 'config.agent needs the agent port\'s rings (BoardRuntime.agentOut and agentIn)');
    this.agentOut = rt.agentOut && new RingBacklog(rt.agentOut, CONSOLE_BACKLOG_BYTES, () => rt.log(`the host is not reading the agent's port: output beyond ${CONSOLE_BACKLOG_BYTES} waiting bytes is dropped (counted)`));
    const size = config.memory;
    const maxImage = maxImageBytes(size);
    const restore = rt.restore;
    const kernel = restore ? undefined : readImageFile(config.kernel, 'kernel', maxImage);
    const initrd = restore || config.initrd === undefined ? undefined : readImageFile(config.initrd, 'initrd', maxImage);
    // A restored machine's guest time continues from the snapshot's: it stands still at the saved
    // time while the machine is built (the TSC, every device time base and the RTC are put back
    // against it) and runs from the vCPU's first run (run()), so no clock counts the restore.
    this.machine = new Machine(rt.backend, restore ? { clock: new GuestClock({ stoppedAt: restore.snapshot.machine.guestNs }) } : {});
    try {
      const low = Math.min(size, MMIO_HOLE_START);
      const top = size > low ? FOUR_GIB + (size - low) : low;
      if (top > this.machine.capability.maxRam) {
        throw new TsvmmError('TSVMM_LIMIT', `${size} bytes of RAM end at ${hex(top)} with the MMIO hole, above the ${this.machine.backend.name} backend's guest-physical limit ${hex(this.machine.capability.maxRam)}`);
      }
      for (const r of ramLayout(size)) this.mapRam(r.gpa, r.size);
      const lowRam = this.ram[0]!;
      this.ports = new PortBus({ log: rt.log });
      this.mmio = new MmioBus({ log: rt.log });
      // The board's own interrupt controllers are a PC's APIC set (I/O APIC, local APIC) where the
      // vCPU serves them inline (soft), else the 8259 pair alone (interrupts.ts).
      const ioapicId = config.cpus; // one above the processors' APIC ids, as the MP table has it
      const boardApic = !this.machine.capability.irqchip && config.inlineDevices && this.machine.capability.inlineDevices === true;
      this.interrupts = this.machine.capability.irqchip
        ? new BackendInterrupts(this.machine.createIrqchip({ reserved: BACKEND_RESERVED }))
        : new BoardInterrupts(this.ports, this.machine.clock, { awaitHostEnd: config.timeoutMs !== undefined, ...(boardApic ? { apic: { mmio: this.mmio, ioapicId } } : {}) });
      const line = (gsi: number) => this.interrupts.line(gsi);
      this.uart = new Uart8250({ irq: line(IRQS.COM1), tx: (byte) => rt.serialOut.writeByte(byte) });
      this.uart.onRxSpace = () => this.pumpSerialIn();
      // The RTC's calendar runs on guest time from the host's calendar at guest time 0 (it stops
      // and continues with the machine's other clocks).
      const clock = this.machine.clock;
      const calendarAtZero = Date.now() - clock.now() / 1e6;
      const rtc = new Mc146818Rtc({ irq8: line(IRQS.RTC), now: () => new Date(calendarAtZero + clock.now() / 1e6) });
      rtc.setMemorySize(size, low);
      this.ports.register(PORTS.COM1.base, PORTS.COM1.length, 'com1', this.uart);
      this.legacy.set('com1', this.uart);
      this.legacy.set('rtc', rtc);
      const i8042 = new I8042({ onReset: () => this.finish({ how: 'reset' }), irq1: line(IRQS.KEYBOARD), irq12: line(IRQS.MOUSE) });
      this.ports.register(PORTS.I8042_DATA.base, PORTS.I8042_DATA.length, 'i8042', i8042);
      this.ports.register(PORTS.I8042_COMMAND.base, PORTS.I8042_COMMAND.length, 'i8042-command', i8042.commandPort);
      this.ports.register(PORTS.RTC.base, PORTS.RTC.length, 'rtc', rtc);
      this.legacy.set('i8042', i8042);
      const post = new Port80();
      this.legacy.set('post', post);
      this.ports.register(PORTS.POST.base, PORTS.POST.length, 'post', post);
      const debugExit = new DebugExit({ onExit: (status) => this.finish({ how: 'debug-exit', status }) });
      this.legacy.set('debug-exit', debugExit);
      this.ports.register(PORTS.DEBUG_EXIT.base, PORTS.DEBUG_EXIT.length, 'debug-exit', debugExit);

      this.virtio = new BoardVirtio(config, {
        line,
        memory: new RegionGuestMemory(this.ramRegions),
        consolePort: { output: (bytes) => this.consoleOut.write(bytes), onInputSpace: () => this.pumpSerialIn() },
        agentPort: { output: (bytes) => this.agentOut?.write(bytes), outputRoom: (n) => this.agentOut?.canTake(n) ?? true, onInputSpace: () => this.pumpAgentIn() },
        nicRings: rt.nicRings,
        log: rt.log,
      });
      this.virtio.register(this.mmio);

      const cpus = config.cpus; // 1 to MAX_CPUS (config.ts)
      if (cpus > this.machine.capability.maxVcpus) {
        throw new TsvmmError('TSVMM_LIMIT', `${cpus} vCPUs: the ${this.machine.backend.name} backend takes at most ${this.machine.capability.maxVcpus}`);
      }
      const ram = this.ramWriter(low);
      // ISA IRQ 0 reaches I/O APIC pin 0 in KVM's default routing, pin 2 (a PC's) on the board's own I/O APIC.
      const irq0ToGsi2 = boardApic;
      const mp = buildMpTable(TABLE_AREA.mpConfig.gpa, cpus, { irq0ToPin2: irq0ToGsi2, sciIrq: IRQS.SCI });
      // A restored machine's tables are in its RAM already.
      if (!restore) {
        writeArea(ram, TABLE_AREA.mpPointer, mp.pointer);
        writeArea(ram, TABLE_AREA.mpConfig, mp.table);
      }
      // ACPI: how Linux powers off (\_S5 through the PM1 control block) and resets (0xCF9).
      // IRQ 0's I/O APIC pin as the MP table has it (above).
      // The virtio devices are described in the DSDT (LNRO0005), each with its window and IRQ.
      const acpi = buildAcpiTables(TABLE_AREA.acpi.gpa, { cpus, ioapicId, pmBase: PORTS.ACPI_PM.base, sciIrq: IRQS.SCI, irq0ToGsi2, virtioMmio: this.virtio.acpi() });
      if (!restore) writeArea(ram, TABLE_AREA.acpi, acpi.bytes);
      const acpiPm = new AcpiPm({
        onSleep: (type) => this.finish(type === S5_SLEEP_TYPE ? { how: 'poweroff' } : { how: 'error', code: 'TSVMM_GUEST', message: `ACPI sleep type ${type} is not supported` }),
        sci: line(IRQS.SCI),
        now: this.machine.clock.now,
      });
      this.legacy.set('acpi-pm', acpiPm);
      this.ports.register(PORTS.ACPI_PM.base, PORTS.ACPI_PM.length, 'acpi-pm', acpiPm);
      const acpiReset = new AcpiResetRegister({ onReset: () => this.finish({ how: 'reset' }) });
      this.legacy.set('acpi-reset', acpiReset);
      this.ports.register(PORTS.ACPI_RESET.base, PORTS.ACPI_RESET.length, 'acpi-reset', acpiReset);
      if (this.interrupts instanceof BoardInterrupts) {
        this.legacy.set('pic', this.interrupts.pic);
        this.legacy.set('pit', this.interrupts.pit);
        this.legacy.set('port-61', this.interrupts.port61);
      }
      const booted = kernel && this.boot(ram, kernel, initrd, acpi.rsdpAddress);
      this.format = booted ? booted.format : 'snapshot';
      this.vcpu = this.machine.createVcpu(0);
      if (this.interrupts instanceof BoardInterrupts) {
        this.interrupts.attach(this.vcpu, config.inlineDevices ? { ports: this.ports, mmio: this.mmio } : null, () => this.end !== undefined);
        // APIC mode: the I/O APIC and the boot vCPU's local APIC are saved with the others.
        if (this.interrupts.ioapic) this.legacy.set('ioapic', this.interrupts.ioapic);
        const lapic = this.interrupts.apics[0];
        if (lapic) this.legacy.set('lapic-0', lapic);
      }
      if (booted) enterGuest(this.vcpu, lowRam.bytes, booted.entry);
      else if (restore) this.applySnapshot(restore);
      const debugChannel = rt.debugChannels?.[0];
      if (debugChannel) {
        const control = rt.control;
        this.debugAgent = new VcpuAgent(this.vcpu, debugChannel, {
          ending: () => Atomics.load(control, 0) !== KICK.CONSOLE || this.end !== undefined,
          runState: () => this.vcpu.runState() ?? 'running',
          // Paused, the boot thread still serves the APs' device accesses: an AP waiting on one
          // could not stop for the debugger (all-stop) before it is served.
          ...(config.cpus > 1 ? { idle: () => this.serveAps() } : {}),
        });
      }
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /** Loads the kernel (and initrd) into RAM as the configuration says. */
  private boot(ram: GuestMemoryWriter, kernel: Uint8Array, initrd: Uint8Array | undefined, acpiRsdp: number) {
    const config = this.config;
    const e820 = memoryMap(config.memory);
    const kernelCache = config.pvh && config.kernelCache !== false ? new KernelCache(config.kernelCache, { log: this.rt.log }) : undefined;
    const cmdline = this.virtio!.cmdline(config.cmdline);
    return bootImage(ram, { ...config, cmdline, kernel, initrd, e820, lowRamTop: ram.size, kernelCache, acpiRsdp });
  }

  /** Why this board cannot be saved, or undefined. */
  private snapshotRefusal(): string | undefined {
    if (this.config.cpus !== 1 && this.machine.backend.name !== 'soft') {
      return `a machine of ${this.config.cpus} vCPUs on ${this.machine.backend.name} cannot be saved yet (its application processors' in-kernel local APICs are not walked)`;
    }
    if (this.interrupts instanceof BackendInterrupts && !(this.interrupts.chip.getState && this.interrupts.chip.setState)) {
      return `the ${this.machine.backend.name} backend runs the interrupt controllers and the PIT itself, and cannot hand over their state`;
    }
    return undefined;
  }

  /**
   * The backend's interrupt controllers, PIT and local APIC as the board's devices' states
   * (irqchip-translation.ts), at one instant of the guest's clock and the host's.
   */
  private kernelDevices(routing: BackendInterrupts, guestNs: number): Record<string, unknown> {
    const chip = routing.chip.getState!();
    const lapic = this.vcpu.getLapic();
    if (!lapic) throw new TsvmmError('TSVMM_UNSUPPORTED', `the ${this.machine.backend.name} backend's vCPU has no local APIC state to save`);
    return devicesFromKernel(chip, lapic, { guestNs, hostNs: hostNs() });
  }

  /**
   * The machine's whole state, at an instruction boundary of the boot vCPU (call it between runs):
   * its state groups, every device's state, RAM, and the guest time they were taken at; with
   * several vCPUs, `aps`: the application processors withApsPaused took (keep them paused until
   * the RAM is written). TSVMM_UNSUPPORTED for a machine this cannot capture, TSVMM_BUSY while a device has work in flight.
   */
  snapshot(host: { agentReady: boolean }, aps: readonly SavedAp[] = []): SnapshotContents {
    const refusal = this.snapshotRefusal();
    if (refusal) throw new TsvmmError('TSVMM_UNSUPPORTED', refusal);
    if (aps.length !== this.config.cpus - 1) throw new TsvmmError('TSVMM_BUSY', `a snapshot of ${this.config.cpus} vCPUs needs its ${this.config.cpus - 1} application processors paused and taken (withApsPaused), not ${aps.length}`);
    if (this.agentOut && this.agentOut.length > 0) throw new TsvmmError('TSVMM_BUSY', 'the agent port has output the host has not taken yet');
    // Guest time stands still while the state is taken: the TSC, the devices' time bases and
    // guestNs are all of one instant (the machine is paused already when the host saves it).
    const clock = this.machine.clock;
    const wasRunning = clock.running;
    clock.stop();
    try {
      return this.takeSnapshot(host, aps);
    } finally {
      if (wasRunning) clock.start();
    }
  }

  private takeSnapshot(host: { agentReady: boolean }, aps: readonly SavedAp[]): SnapshotContents {
    if (this.vcpu.xsaveExtendedInUse()) {
      throw new TsvmmError('TSVMM_UNSUPPORTED', 'the vCPU\'s AVX (or later XSAVE) registers hold state, which a snapshot does not carry yet');
    }
    const state = this.vcpu.getState(STATE.ALL);
    const guestNs = this.machine.clock.now();
    const saved = { id: 0, state: structuredClone(state), xsaveExtended: new Uint8Array(0) };
    const devices: Record<string, unknown> = {};
    for (const [name, d] of this.legacy) devices[name] = d.getState();
    for (const ap of aps) {
      devices[`lapic-${ap.vcpu.id}`] = ap.apic;
      devices[`cpu-${ap.vcpu.id}`] = ap.run;
    }
    if (this.interrupts instanceof BackendInterrupts) Object.assign(devices, this.kernelDevices(this.interrupts, guestNs));
    const virtio: Record<string, VirtioMmioState> = {};
    for (const d of this.virtio?.devices ?? []) virtio[d.name] = d.transport.getState();
    devices.virtio = virtio;
    const drives: DriveStamp[] = (this.config.drives ?? []).map((d) => {
      const st = statSync(d.file);
      return { file: d.file, size: st.size, mtimeMs: st.mtimeMs };
    });
    return {
      machine: { config: this.config, backend: this.machine.backend.name, guestNs, drives, ram: ramLayout(this.config.memory), agentReady: host.agentReady },
      vcpus: [saved, ...aps.map((ap) => ap.vcpu)],
      devices,
      ram: this.ramRegions.map((r) => ({ gpa: r.gpa, bytes: r.bytes })),
    };
  }

  /** Puts a checked snapshot's RAM, devices and vCPU state into this new board (before it runs). */
  private applySnapshot(restore: BoardRestore): void {
    const refusal = this.snapshotRefusal();
    if (refusal) throw new TsvmmError('TSVMM_SNAPSHOT_MISMATCH', `the snapshot cannot be restored here: ${refusal}`);
    const snap = restore.snapshot;
    const saved = snap.vcpus[0]!;
    if (saved.xsaveExtended.some((b) => b !== 0)) {
      throw new TsvmmError('TSVMM_SNAPSHOT_MISMATCH', `the snapshot holds extended XSAVE state (AVX or later) the ${this.machine.backend.name} backend does not have`);
    }
    const devices = snap.devices;
    const kernel = this.interrupts instanceof BackendInterrupts ? this.interrupts : undefined;
    const apNames = Array.from({ length: this.config.cpus - 1 }, (_, i) => [`lapic-${i + 1}`, `cpu-${i + 1}`]).flat();
    const names = [...this.legacy.keys(), 'virtio', ...(kernel ? IRQCHIP_DEVICES : []), ...apNames];
    const savedNames = Object.keys(devices);
    this.checkInterruptWiring(snap);
    if (savedNames.length !== names.length || !names.every((n) => n in devices)) {
      throw new TsvmmError('TSVMM_SNAPSHOT_CORRUPT', `the snapshot's devices (${savedNames.join(', ')}) are not this board's (${names.join(', ')})`);
    }
    this.apRestores = snap.vcpus.slice(1).map((v) => checkedApRestore(v, devices[`lapic-${v.id}`], devices[`cpu-${v.id}`]));
    if (snap.vcpus.slice(1).some((v) => v.xsaveExtended.some((b) => b !== 0))) {
      throw new TsvmmError('TSVMM_SNAPSHOT_MISMATCH', `the snapshot holds extended XSAVE state (AVX or later) the ${this.machine.backend.name} backend does not have`);
    }
    const virtio = devices.virtio as Record<string, VirtioMmioState>;
    const placed = this.virtio?.devices ?? [];
    if (typeof virtio !== 'object' || virtio === null || Object.keys(virtio).length !== placed.length || !placed.every((d) => d.name in virtio)) {
      throw new TsvmmError('TSVMM_SNAPSHOT_CORRUPT', 'the snapshot\'s virtio devices are not this board\'s');
    }
    // The backend's controllers as the devices' states say, translated (and checked) before
    // anything is put back; the guest clock stands at the saved time (the LAPIC timer's count).
    let kernelState: ReturnType<typeof devicesToKernel> | undefined;
    if (kernel) {
      const at: ClockPair = { guestNs: snap.machine.guestNs, hostNs: hostNs() };
      try {
        kernelState = devicesToKernel(devices, at);
      } catch (e) {
        if (e instanceof TsvmmError) throw e;
        throw new TsvmmError('TSVMM_SNAPSHOT_CORRUPT', `the snapshot's interrupt controller state is malformed: ${(e as Error).message}`);
      }
    }
    // Where the backend's RAM allows it (the soft CPU's arena, KVM's anonymous RAM), the saved pages
    // are mapped from the file copy-on-write: machines restored from one file share the pages they only read.
    loadRam(restore.path, snap, (gpa, size) => {
      const i = this.ramRegions.findIndex((r) => r.gpa === gpa && r.bytes.length === size);
      const region = this.ramRegions[i], piece = this.ram[i];
      if (!region || !piece) throw new TsvmmError('TSVMM_SNAPSHOT_CORRUPT', `the snapshot's RAM at 0x${gpa.toString(16)} is not this board's`);
      if (!piece.remappable) return { bytes: region.bytes };
      return { bytes: region.bytes, mapFile: (fd, fileOffset, at, length) => piece.mapFile(fd, fileOffset, at, length) };
    }, { map: restore.mapRam !== false });
    try {
      // The virtio transports first: they set their interrupt lines, which the 8259s' saved state then overrides.
      for (const d of placed) d.transport.restore(virtio[d.name]!);
      for (const [name, d] of this.legacy) d.restore(devices[name] as never);
    } catch (e) {
      if (e instanceof TsvmmError) throw e;
      throw new TsvmmError('TSVMM_SNAPSHOT_CORRUPT', `the snapshot's device state is malformed: ${(e as Error).message}`);
    }
    // The backend's controllers after the board's devices, whose restores drove their lines
    // (the saved state overrides what that did, as the 8259s' does on the board); the local APIC
    // before the state groups (KVM_SET_LAPIC after the CPUID and the APIC base; CR8 is its TPR).
    if (kernel && kernelState) {
      kernel.chip.setState!(kernelState.chip);
      this.vcpu.setLapic(kernelState.lapic);
    }
    // The guest clock reads the saved guestNs until the first run, and the state goes into the
    // vCPU now (not at its first run, when guest time runs again): the TSC keeps exactly its saved
    // distance to guest time, which the PM timer, the PIT and the APIC timer read.
    copyState(this.vcpu.getState(STATE.ALL), saved.state, STATE.ALL);
    this.vcpu.setState(STATE.ALL);
    this.vcpu.commitState();
    // A TSC that runs with the host's (KVM), and the in-kernel PIT and APIC timer, run from the
    // moment they were set, not from the first run: guest time runs from then too, so the
    // board's clocks (the PM timer, the RTC) stay in step with them.
    if (!this.machine.capability.tscFromClock) this.machine.clock.start();
  }

  /**
   * A snapshot that moves between backends keeps its interrupt wiring only where both boards
   * have it: ISA IRQ 0 (the PIT) reaches I/O APIC pin 0 on KVM (its default routing) and pin 2
   * on the board's own I/O APIC (soft), and the guest's tables said which. A guest that routes
   * the PIT through the I/O APIC (pin 0 or 2 unmasked) is refused on the other backend; one on the
   * 8259 (the local APIC's virtual wire) moves. A board without an I/O APIC (soft, devices not
   * served inline) takes no snapshot that has one.
   */
  private checkInterruptWiring(snap: ParsedSnapshot): void {
    const here = this.machine.backend.name;
    const hasIoapic = this.interrupts instanceof BackendInterrupts || (this.interrupts instanceof BoardInterrupts && this.interrupts.ioapic !== undefined);
    const savedIoapic = snap.devices.ioapic;
    if (hasIoapic !== (savedIoapic !== undefined)) {
      throw new TsvmmError('TSVMM_SNAPSHOT_MISMATCH', `the snapshot was saved on a board ${savedIoapic === undefined ? 'without' : 'with'} an I/O APIC and local APIC, this ${here} board has ${hasIoapic ? 'them' : 'none (devices not served inline)'}`);
    }
    if (snap.machine.backend === here || savedIoapic === undefined) return;
    const low = (savedIoapic as { low?: unknown }).low;
    const unmasked = (pin: number) => Array.isArray(low) && typeof low[pin] === 'number' && ((low[pin] as number) & REDIR_MASKED) === 0;
    if (unmasked(0) || unmasked(2)) {
      throw new TsvmmError('TSVMM_SNAPSHOT_MISMATCH', `the guest routes interrupts through I/O APIC pin ${unmasked(0) ? 0 : 2}, and ISA IRQ 0 is wired to pin 0 on kvm, pin 2 on soft: saved on ${snap.machine.backend}, it cannot continue on ${here}`);
    }
  }

  /** Allocates `size` bytes of RAM and maps them at `gpa`. */
  private mapRam(gpa: number, size: number): void {
    const piece = this.machine.allocateMemory(size);
    this.ram.push(piece);
    this.ramRegions.push({ gpa, bytes: piece.bytes.subarray(0, size) });
    this.machine.mapHva(piece);
    this.machine.mapGpa(gpa, piece.hva, size, PROT.ALL);
  }

  /** RAM below the hole as the loaders write it. */
  private ramWriter(low: number): GuestMemoryWriter {
    const bytes = this.ram[0]!.bytes;
    return {
      size: low,
      write(gpa: number, data: Uint8Array): void {
        if (gpa < 0 || gpa + data.length > low) throw new TsvmmError('TSVMM_LIMIT', `write of ${data.length} bytes at ${hex(gpa)} is outside RAM`);
        bytes.set(data, gpa);
      },
    };
  }

  stopHandle(): StopHandle {
    return this.vcpu.stopHandle();
  }

  /**
   * Starts a thread per application processor and waits until each has created its vCPU, so
   * that none misses the guest's INIT/SIPI.
   */
  async startAps(): Promise<void> {
    if (this.config.cpus === 1) return;
    const share = this.machine.shareHandle();
    // The soft CPU: local APICs live in their vCPUs' threads and meet on the APIC bus.
    const soft = this.machine.backend.name === 'soft';
    if (soft && !(this.interrupts instanceof BoardInterrupts && this.interrupts.ioapic)) {
      throw new TsvmmError('TSVMM_UNSUPPORTED', 'several vCPUs on the soft CPU need the board\'s APICs (devices served inline)');
    }
    const apicBus = soft ? newApicBus(this.config.cpus) : undefined;
    const workers: Worker[] = [];
    for (let id = 1; id < this.config.cpus; id++) {
      const mailbox = new DeviceMailbox();
      const save = soft ? newDebugChannel() : undefined;
      const restore = this.apRestores?.[id - 1];
      const data: ApWorkerData = {
        accel: this.machine.backend.name, share, id, mailbox: mailbox.buffer, ended: this.apsEnded.buffer as SharedArrayBuffer, bspStop: this.stopHandle(),
        ...(this.rt.debugChannels?.[id] ? { debugChannel: this.rt.debugChannels[id] } : {}),
        ...(soft ? { apicBus, saveChannel: save, ...(this.config.cpu ? { cpu: this.config.cpu } : {}) } : {}),
        ...(restore ? { restore } : {}),
      };
      const worker = new Worker(new URL('./ap-worker.js', import.meta.url), { workerData: data });
      workers.push(worker);
      const gone = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      const ready = await Promise.race([
        once(worker, 'message').then(([m]) => m as { stopHandle: StopHandle }),
        once(worker, 'error').then(([e]) => Promise.reject(e as Error)),
      ]);
      this.aps.push({ mailbox, stopHandle: ready.stopHandle, gone, ...(save ? { save: new DebugChannel(save) } : {}) });
    }
    if (apicBus && this.interrupts instanceof BoardInterrupts) {
      const stops = [this.stopHandle(), ...this.aps.map((ap) => ap.stopHandle)];
      const msg: ApBusMessage = { stops };
      for (const w of workers) w.postMessage(msg);
      this.interrupts.setApicBus(new ApicBus(apicBus, stops));
    }
  }

  /**
   * Runs `f` with every application processor paused at an instruction boundary (or in HLT, or
   * waiting for its start-up IPI) and its state taken, then lets them run on. Each is paused on
   * the board's line to it with the debugger's machinery (gdb/channel.ts, a VcpuAgent in its
   * thread), driven synchronously from here: this thread cannot await, and it serves the APs'
   * device accesses while it waits (an AP waiting on one stops only once it is served). The boot
   * vCPU's inbox on the APIC bus is taken into its local APIC after every AP has stopped (none
   * sends more), each AP's by the AP as it saves: no IPI is left in flight. An AP that does not
   * stop in time (a debugger holds it) refuses the save (TSVMM_BUSY).
   */
  private withApsPaused<T>(f: (aps: SavedAp[]) => T): T {
    const held = this.heldAps; // the machine is paused (vm.pause()): its APs are already
    const paused = held ?? this.pauseAps();
    try {
      if (this.interrupts instanceof BoardInterrupts) this.interrupts.drainBus();
      const deadline = hostNs() + AP_SAVE_TIMEOUT_MS * 1e6;
      return f(paused.map((ch, i) => this.saveAp(ch, i + 1, deadline)));
    } finally {
      if (!held) this.releaseAps(paused);
    }
  }

  /**
   * Pauses every application processor on the board's line to it (withApsPaused says how) and
   * returns the lines, for releaseAps. When one does not stop in time, those that did are let go
   * and the pause is refused (TSVMM_BUSY).
   */
  private pauseAps(): DebugChannel[] {
    const lines = this.aps.map((ap) => ap.save);
    const deadline = hostNs() + AP_SAVE_TIMEOUT_MS * 1e6;
    lines.forEach((ch, i) => {
      ch?.store(WORD.STOP_REQ, 1);
      stopVcpu(this.aps[i]!.stopHandle);
    });
    const paused: DebugChannel[] = [];
    try {
      lines.forEach((ch, i) => {
        if (!ch) throw new TsvmmError('TSVMM_UNSUPPORTED', `vCPU ${i + 1} has no line for snapshots`);
        this.waitAps(() => ch.load(WORD.PAUSED) === 1, deadline, `vCPU ${i + 1} did not stop within ${AP_SAVE_TIMEOUT_MS} ms (is a debugger holding it?)`);
        paused.push(ch);
      });
      return paused;
    } catch (e) {
      for (const ch of lines) {
        if (!ch || paused.includes(ch)) continue;
        // Not stopped yet: the request is taken back, or, when the AP took it already, it is let go once it stops.
        if (Atomics.exchange(ch.words, WORD.STOP_REQ, 0) === 0) {
          try {
            this.waitAps(() => ch.load(WORD.PAUSED) === 1, hostNs() + AP_SAVE_TIMEOUT_MS * 1e6, 'an application processor did not stop');
            paused.push(ch);
          } catch { /* it never stopped: nothing to let go */ }
        }
      }
      this.releaseAps(paused);
      throw e;
    }
  }

  /** Lets the application processors pauseAps paused run on. */
  private releaseAps(paused: DebugChannel[]): void {
    for (const ch of paused) this.apCommand(ch, { op: 'release' }, hostNs() + AP_SAVE_TIMEOUT_MS * 1e6);
  }

  /** Waits until `done`, serving the APs' device accesses, or refuses with TSVMM_BUSY at `deadline` (host ns). */
  private waitAps(done: () => boolean, deadline: number, why: string): void {
    const tick = new Int32Array(new SharedArrayBuffer(4));
    while (!done()) {
      if (hostNs() > deadline) throw new TsvmmError('TSVMM_BUSY', why);
      this.serveAps();
      Atomics.wait(tick, 0, 0, 1);
    }
  }

  /** Sends a command on a paused AP's line and returns its reply. */
  private apCommand(ch: DebugChannel, cmd: { op: 'save' } | { op: 'release' }, deadline: number): VcpuReply {
    const before = ch.load(WORD.REPLY_SEQ);
    ch.sendCommand(cmd);
    this.waitAps(() => ch.load(WORD.REPLY_SEQ) !== before, deadline, `an application processor did not answer ${cmd.op}`);
    return ch.reply<VcpuReply>();
  }

  /** vCPU `id`'s state groups, local APIC and run state, from its thread (soft-ap.ts). */
  private saveAp(ch: DebugChannel, id: number, deadline: number): SavedAp {
    const r = this.apCommand(ch, { op: 'save' }, deadline);
    if (!r.ok) {
      const m = /^(TSVMM_[A-Z_]+): ([^]*)$/.exec(r.error);
      throw new TsvmmError((m?.[1] ?? 'TSVMM_UNSUPPORTED') as TsvmmError['code'], m?.[2] ?? r.error);
    }
    const { apic, run } = JSON.parse(r.text!) as { apic: LocalApicState; run: ApRun };
    return { vcpu: decodeVcpu(r.bytes!, id), apic, run };
  }

  /** The application processors' stop handles, by vCPU id - 1 (the debugger kicks them). */
  apStopHandles(): StopHandle[] {
    return this.aps.map((ap) => ap.stopHandle);
  }

  /** Ends the application processors' threads (after run() returned). */
  async stopAps(): Promise<void> {
    Atomics.store(this.apsEnded, 0, 1);
    for (const ap of this.aps) stopVcpu(ap.stopHandle);
    await Promise.all(this.aps.map((ap) => ap.gone));
  }

  /** Serves the device accesses application processors are waiting on. */
  private serveAps(): void {
    for (const ap of this.aps) ap.mailbox.serve(this.serveAp);
  }

  private readonly serveAp = (a: DeviceAccess) => {
    switch (a.kind) {
      case ACCESS.IO:
        this.ports.access({ port: a.addr, in: !a.write, size: a.size, data: a.data });
        return;
      case ACCESS.MMIO:
        this.mmio.access({ gpa: a.addr, write: a.write, size: a.size, data: a.data });
        return;
      case ACCESS.EOI:
        if (this.interrupts instanceof BoardInterrupts) this.interrupts.ioapic?.eoi(a.addr);
        return;
      case ACCESS.END:
        this.finish(a.addr === AP_END.TRIPLE_FAULT
          ? { how: 'triple-fault', report: 'triple fault on an application processor' }
          : { how: 'error', code: 'TSVMM_GUEST', message: 'an application processor stopped on an exit it cannot handle' });
        return;
    }
  };

  /** Logs the first accesses to each unknown MSR, as the buses do for ports and pages: a bounded number, then one line. */
  private noteUnknownMsr(kind: 'rdmsr' | 'wrmsr', msr: number): void {
    if (this.unknownMsrs.has(msr) || this.unknownMsrsUnlogged) return;
    if (this.unknownMsrs.size < UNKNOWN_LOGGED) {
      this.unknownMsrs.add(msr);
      this.rt.log(`${kind} of unknown MSR ${hex(msr)}: #GP`);
    } else {
      this.unknownMsrsUnlogged = true;
      this.rt.log('more unknown MSRs: #GP, not logged');
    }
  }

  private finish(end: VmEnd): void {
    this.end ??= end;
  }

  /** Moves bytes the host typed into the console (the UART, or hvc0), as far as it takes them. */
  private pumpSerialIn(): void {
    const ring = this.rt.serialIn;
    if (ring.length === 0) return;
    const hvc = this.config.console === 'virtio' ? this.virtio?.console?.port(0) : undefined;
    if (hvc) ring.consume(hvc.input(ring.peek(hvc.inputSpace)));
    else ring.consume(this.uart.receive(ring.peek(this.uart.rxSpace())));
  }

  /** Moves bytes the host sent to the agent into its port, as far as the port takes them. */
  private pumpAgentIn(): void {
    const ring = this.rt.agentIn;
    const port = this.virtio?.agentPort;
    if (!ring || !port || ring.length === 0) return;
    ring.consume(port.input(ring.peek(port.inputSpace)));
  }

  /** hvc0 output dropped because the host did not read its console. */
  get consoleDropped(): number {
    return this.consoleOut.dropped;
  }

  private readonly portAccess = (io: IoAccess) => this.ports.access(io);
  private readonly mmioAccess = (mem: MemAccess) => this.mmio.access(mem);

  /** The host paused the machine (BoardControl 'pause'): the vCPU does not run until 'resume'. */
  private paused = false;
  /** While paused: the application processors' lines, each paused too (pauseAps). */
  private heldAps: DebugChannel[] | undefined;

  /** Serves the host's requests waiting on the control port, each answered on it. */
  private serveControl(): void {
    const port = this.rt.controlPort;
    if (!port) return;
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
      const msg = m.message as BoardControl;
      let reply: BoardControlReply;
      try {
        this.control(msg);
        reply = { id: msg.id, ok: true };
      } catch (e) {
        reply = e instanceof TsvmmError ? { id: msg.id, ok: false, code: e.code, message: e.message } : { id: msg.id, ok: false, code: 'TSVMM_INTERNAL', message: (e as Error).stack ?? String(e) };
      }
      port.postMessage(reply);
    }
  }

  private control(msg: BoardControl): void {
    switch (msg.op) {
      case 'pause':
        // The application processors first (a pause they refuse changes nothing), then guest time.
        // On kvm they have no line to pause them yet: they run on (docs/snapshot-format.md).
        if (this.aps.every((ap) => ap.save)) this.heldAps ??= this.pauseAps();
        this.paused = true;
        this.stopGuestTime();
        // What the guest wrote before the pause goes to the host's rings now.
        this.uart.txReady();
        this.consoleOut.flush();
        this.agentOut?.flush();
        return;
      case 'resume':
        this.paused = false;
        this.machine.clock.start();
        if (this.heldAps) {
          const held = this.heldAps;
          this.heldAps = undefined;
          this.releaseAps(held);
        }
        return;
      case 'save':
        // The application processors stay paused until the file is written: its RAM is theirs too.
        this.withApsPaused((aps) => writeSnapshot(msg.path, this.snapshot({ agentReady: msg.agentReady }, aps)));
        return;
      default:
        assertNever(msg, 'control request');
    }
  }

  /**
   * Paused, guest time stands still with the vCPU, where the backend's TSC counts the guest clock
   * (soft); a TSC that runs with the host's (KVM) keeps guest time running, or the devices'
   * timers and the TSC would part by the pause.
   */
  private stopGuestTime(): void {
    if (this.machine.capability.tscFromClock) this.machine.clock.stop();
  }

  /** While paused: waits for the host's next kick, and serves it (an end, requests), until resumed. */
  private waitWhilePaused(): void {
    while (this.paused && !this.end) {
      Atomics.wait(this.rt.control, 0, KICK.CONSOLE, 1000);
      this.takeEnd();
      this.serveControl();
    }
  }

  /** What the host kicked the vCPU for (see KICK): an end, requests, or console bytes to move. */
  private takeKick(): void {
    if (this.takeEnd()) return;
    this.serveControl();
    if (this.paused) return;
    this.pumpSerialIn();
    this.pumpAgentIn();
    this.virtio?.pollNics();
    this.uart.txReady();
    this.consoleOut.flush();
    this.agentOut?.flush();
    this.virtio?.agentPort?.outputSpaceFreed(); // the agent's output waits for room (flow control), not dropped
  }

  /** Takes an end the host asked for, if any (a CONTROL kick is not one: its requests are on the control port). */
  private takeEnd(): boolean {
    const why = Atomics.exchange(this.rt.control, 0, KICK.CONSOLE);
    if (why === KICK.STOP) this.finish({ how: 'stopped' });
    else if (why === KICK.TIMEOUT) this.finish({ how: 'timeout', report: this.report('timed out') });
    return why === KICK.STOP || why === KICK.TIMEOUT;
  }

  /** Runs the boot vCPU until the machine ends. */
  run(): VmEnd {
    const vcpu = this.vcpu;
    // An end asked for while the machine was being built. (Console input waits for the host's
    // kick at 'ready': taken now, it would reach the UART before the guest resets its FIFOs.)
    if (this.takeEnd()) return this.end!;
    // A restored machine's guest time runs from here (it stood still at the saved time), unless
    // the host paused it before it ran.
    if (!this.paused) this.machine.clock.start();
    this.debugAgent?.atStart();
    for (;;) {
      this.interrupts.beforeRun();
      const exit = vcpu.run();
      this.exits.set(exit.kind, (this.exits.get(exit.kind) ?? 0) + 1);
      // A debugger's stop: the vCPU pauses in the agent until the debugger resumes it.
      if (this.debugAgent?.onExit(exit)) continue;
      if (this.interrupts.onExit(exit)) {
        if (this.end) return this.end;
        continue;
      }
      switch (exit.kind) {
        case 'io':
          assistIo(vcpu, this.portAccess);
          break;
        case 'memory':
          assistMem(vcpu, this.mmioAccess);
          break;
        case 'rdmsr':
        case 'wrmsr':
          // An MSR nobody emulates: #GP, as a PC without it does (and as KVM does by default).
          this.noteUnknownMsr(exit.kind, exit.msr);
          vcpu.inject({ type: 'exception', vector: EXC_GP, errorCode: 0 });
          break;
        case 'stopped':
          this.takeKick();
          this.serveAps();
          this.waitWhilePaused();
          break;
        case 'shutdown':
          this.finish({ how: 'triple-fault', report: this.report('triple fault') });
          break;
        case 'invalid':
          this.finish({ how: 'error', code: 'TSVMM_GUEST', message: this.report(exit.reason) });
          break;
        case 'halted': // HLT waits in the backend's irqchip or the board's routing; this one has nothing to wake it
          this.finish({ how: 'error', code: 'TSVMM_GUEST', message: this.report('halted with no interrupt source') });
          break;
        case 'none': case 'interruptWindow': case 'nmiWindow': case 'tprChanged': case 'debug': case 'cpuid':
          break;
        default:
          assertNever(exit, 'exit');
      }
      if (this.end) return this.end;
    }
  }

  /** Port accesses the boot vCPU served inline, without an exit. */
  get inlineIo(): number {
    return this.interrupts instanceof BoardInterrupts ? this.interrupts.inlineIo : 0;
  }

  /** MMIO accesses the boot vCPU served inline, without an exit. */
  get inlineMmio(): number {
    return this.interrupts instanceof BoardInterrupts ? this.interrupts.inlineMmio : 0;
  }

  /** A short report of where the vCPU is, for endings that need explaining. */
  report(what: string): string {
    const s = this.vcpu.getState(STATE.GPRS | STATE.SEGS | STATE.CRS | STATE.MSRS);
    const h = (v: bigint | undefined) => `0x${(v ?? 0n).toString(16)}`;
    return `${what} at RIP ${h(s.gprs[GPR.RIP])} (CS ${h(BigInt(s.segs[SEG.CS]!.selector))}, RSP ${h(s.gprs[GPR.RSP])}); ` +
      `CR0 ${h(s.crs[CR.CR0])} CR2 ${h(s.crs[CR.CR2])} CR3 ${h(s.crs[CR.CR3])} CR4 ${h(s.crs[CR.CR4])} EFER ${h(s.msrs[MSR.EFER])}`;
  }

  /** Releases the machine (not the backend: its opener closes it); the board is unusable after. */
  async close(): Promise<void> {
    await this.interrupts.close();
    this.destroy();
  }

  private destroy(): void {
    this.virtio?.close();
    this.machine.destroy();
    for (const piece of this.ram) piece.free();
  }
}

/** The e820 map of a PC with `size` bytes of RAM: base memory, the BIOS area, RAM from 1 MiB, RAM above 4 GiB. */
export function memoryMap(size: number): E820Entry[] {
  const low = Math.min(size, MMIO_HOLE_START);
  const map: E820Entry[] = [
    { addr: 0, size: LOW_RAM_END, type: E820_RAM },
    { addr: LOW_RAM_END, size: 0xa0000 - LOW_RAM_END, type: E820_RESERVED },
    { addr: BOOT.ACPI, size: HIGH_RAM_START - BOOT.ACPI, type: E820_RESERVED }, // ACPI tables and the BIOS area
    { addr: HIGH_RAM_START, size: low - HIGH_RAM_START, type: E820_RAM },
  ];
  if (size > low) map.push({ addr: FOUR_GIB, size: size - low, type: E820_RAM });
  return map;
}

/** An application processor as a snapshot carries it: its VCPU section, and `lapic-N` and `cpu-N` in DEVICES. */
export interface SavedAp {
  vcpu: SavedVcpu;
  apic: LocalApicState;
  run: ApRun;
}

const AP_RUN_STATES: readonly ApRun['runState'][] = ['running', 'halted', 'wait-for-SIPI'];

/** A saved AP's devices, checked here (a malformed one would fail in the AP's thread): TSVMM_SNAPSHOT_CORRUPT. */
function checkedApRestore(v: SavedVcpu, apic: unknown, run: unknown): ApRestore {
  const r = run as Partial<ApRun> | null;
  if (typeof r !== 'object' || r === null || !AP_RUN_STATES.includes(r.runState as ApRun['runState']) ||
      !Number.isInteger(r.sipiVector) || r.sipiVector! < -1 || r.sipiVector! > 0xff || typeof r.nmiPending !== 'boolean') {
    throw new TsvmmError('TSVMM_SNAPSHOT_CORRUPT', `the snapshot's run state of vCPU ${v.id} is malformed`);
  }
  try {
    new LocalApic({ id: v.id, now: () => 0 }).restore(apic as LocalApicState);
  } catch (e) {
    throw new TsvmmError('TSVMM_SNAPSHOT_CORRUPT', `the snapshot's local APIC of vCPU ${v.id} is malformed: ${(e as Error).message}`);
  }
  return { state: v.state, apic: apic as LocalApicState, run: { runState: r.runState!, sipiVector: r.sipiVector!, nmiPending: r.nmiPending! } };
}
