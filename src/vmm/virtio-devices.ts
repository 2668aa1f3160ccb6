/**
 * The board's virtio devices: what the configuration asks for (config.drives, console, rng, nics),
 * each behind a virtio-mmio transport in its slot of the layout (layout.ts VIRTIO_MMIO: window
 * and IRQ), and the three ways a guest learns of them: the MMIO bus (the board registers the
 * windows), the DSDT (`LNRO0005` devices, how Debian's kernel finds them) and the kernel command
 * line (`virtio_mmio.device=`, for kernels built with CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES). A
 * kernel that has both sees each device twice; the second probe of a window fails (virtio_mmio
 * requests its memory region, which the first already holds) and the device works once.
 *
 * Where the devices run, and why there:
 * - soft: the CPU serves MMIO inside its run loop (InlineDevices.mmio), so a queue notification
 *   is a call from the instruction that wrote QueueNotify into the device, with no exit.
 * - KVM: a notification is an MMIO exit in the vCPU thread, served there. The alternative, an
 *   ioeventfd that wakes a device thread which then signals an irqfd, spares the exit (~8 µs of
 *   round trip on hardware, as measured on this project's machines) but adds a thread hop (a futex wake-up
 *   between Node threads costs ~55 µs measured here) to every request, and moves the device's
 *   state to a thread the other registers (status, interrupt acknowledge, configuration) do not
 *   reach without another hop. Served where the exit lands, a request costs one exit and no hop.
 *
 * Block I/O is synchronous in that thread (block-file.ts: pread/pwrite, fdatasync for FLUSH).
 * Why that is acceptable for now: guest time is the host's clock on both backends, so an I/O that
 * takes long does not make the guest's timers drift; they are late, not lost. On KVM the timers
 * (LAPIC, PIT) run in the kernel and the other vCPUs go on; the vCPU doing the I/O takes its
 * interrupts when it re-enters, as when the host deschedules it. On soft the one vCPU waits, and
 * the 8254 reinjects the ticks it missed when it resumes. What a slow disk does cost is that the
 * guest cannot run other work during the I/O (it waits as on a disk without queueing); the
 * device already takes completions as Promises (block-backend.ts), so an engine on its own
 * thread can lift that without changing the device.
 *
 * Network cards are served in the same thread, but their backends (passt's socket, a TAP's
 * poll) need an event loop, which this thread's run loop never yields to: the machine's owner
 * (VirtualMachine) opens them on the main thread and frames cross in two shared rings per card
 * (devices/net/frame-ring.ts). Here a RingNetBackend is the device's backend: what the guest
 * sends goes into a ring at once, never waiting for the host (a full ring makes the device stop
 * taking transmit buffers until the host side kicks: the guest's queue fills, its timers run
 * on); what the host received waits in the other ring, bounded, and is taken when the host
 * kicks the vCPU (pollNics() on the board's 'stopped' exit). A guest that stops reading makes
 * the host side drop and count (NetBridgeHost's counters), as the device does past its own
 * bounded buffer (VirtioNetCounters.rxDropped): nothing grows without bound.
 */
import { TsvmmError } from '../common/errors.js';
import type { MmioBus } from '../devices/bus.js';
import { WiredOrIrq, type IrqLine } from '../devices/irq.js';
import type { VirtioMmioAcpi } from '../devices/acpi-tables.js';
import type { BlockBackend } from '../devices/virtio/block-backend.js';
import { FileBlockBackend } from '../devices/virtio/block-file.js';
import type { VirtioDevice } from '../devices/virtio/device.js';
import type { GuestMemory } from '../devices/virtio/guest-memory.js';
import { VirtioBlk } from '../devices/virtio/virtio-blk.js';
import { VirtioConsole, type ConsolePort, type ConsolePortOptions } from '../devices/virtio/virtio-console.js';
import { VirtioMmio, VIRTIO_MMIO_SIZE, virtioMmioCmdline } from '../devices/virtio/virtio-mmio.js';
import { VirtioRng } from '../devices/virtio/virtio-rng.js';
import { VirtioNet, type VirtioNetCounters } from '../devices/virtio/virtio-net.js';
import { RingNetBackend, type NetRings } from '../devices/net/frame-ring.js';
import { macBytes } from '../devices/net/nic-config.js';
import type { DriveConfig, MachineConfig } from './config.js';
import { VIRTIO_SLOT, virtioMmioSlot } from './layout.js';
import { AGENT_PORT_NAME } from './agent.js';

/** One device in its slot. */
export interface PlacedVirtio {
  slot: number;
  /** The bus name: `virtio-blk0`, `virtio-net0`, `virtio-console`, `virtio-rng`. */
  name: string;
  base: number;
  irq: number;
  device: VirtioDevice;
  transport: VirtioMmio;
}

export interface VirtioWiring {
  /** The board's interrupt line for an ISA IRQ (the 8259's on soft, the in-kernel irqchip's on KVM). */
  line(irq: number): IrqLine;
  memory: GuestMemory;
  /** The host side of the console's first port (hvc0). */
  consolePort?: ConsolePortOptions;
  /** The host side of the agent's port (config.agent). */
  agentPort?: Omit<ConsolePortOptions, 'name'>;
  /** The shared rings of each network card (config.nics), in order; the host's ends are NetBridgeHosts. */
  nicRings?: readonly NetRings[];
  log: (message: string) => void;
}

/** Opens a drive's image as the device's backend (TSVMM_BAD_DISK, or TSVMM_BUSY when another process holds it). */
export function openDrive(drive: DriveConfig): FileBlockBackend {
  return FileBlockBackend.open({ path: drive.file, readOnly: drive.readonly, id: drive.serial });
}

/**
 * Checks each drive the way the board will open it (the file, its size, its lock) and lets go
 * of it: a bad image is refused before a machine starts. The board opens them again, and a disk
 * that changed in between is refused then.
 */
export function checkDrives(drives: readonly DriveConfig[]): void {
  for (const drive of drives) openDrive(drive).close();
}

/** The virtio devices of a machine, placed and wired; close() lets go of the disks. */
export class BoardVirtio {
  readonly devices: PlacedVirtio[] = [];
  /**
   * The virtio console, when config.console is 'virtio' or config.agent is set: port 0 is hvc0,
   * port 1 (with config.agent) the agent's, named AGENT_PORT_NAME.
   */
  readonly console: VirtioConsole | undefined;
  /** The network cards (config.nics), in order, each with the ring backend the board polls. */
  readonly nics: { device: VirtioNet; rings: RingNetBackend }[] = [];
  private readonly disks: BlockBackend[] = [];
  private readonly lines = new Map<number, WiredOrIrq>();

  constructor(config: Pick<MachineConfig, 'drives' | 'console' | 'rng' | 'agent' | 'nics'>, private readonly wiring: VirtioWiring) {
    try {
      if (config.console === 'virtio' || config.agent) {
        const ports = [wiring.consolePort ?? {}];
        if (config.agent) ports.push({ ...wiring.agentPort, name: AGENT_PORT_NAME });
        this.console = new VirtioConsole({ ports });
        this.place(VIRTIO_SLOT.CONSOLE, 'virtio-console', this.console);
      }
      if (config.rng) this.place(VIRTIO_SLOT.RNG, 'virtio-rng', new VirtioRng());
      (config.drives ?? []).forEach((drive, i) => {
        const disk = openDrive(drive);
        this.disks.push(disk);
        this.place(VIRTIO_SLOT.DRIVE + i, `virtio-blk${i}`, new VirtioBlk(disk));
      });
      const nics = config.nics ?? [];
      if (nics.length > 0 && wiring.nicRings?.length !== nics.length) {
        throw new TsvmmError('TSVMM_BAD_ARGUMENT', `config.nics has ${nics.length} network cards and the board was given ${wiring.nicRings?.length ?? 0} pairs of rings (VirtioWiring.nicRings)`);
      }
      nics.forEach((nic, i) => {
        const rings = new RingNetBackend(wiring.nicRings![i]!, nic.kind === 'user' ? 'passt' : `tap ${nic.ifname}`);
        const device = new VirtioNet({ mac: macBytes(nic.mac), backend: rings });
        this.nics.push({ device, rings });
        this.place(VIRTIO_SLOT.NIC + i, `virtio-net${i}`, device);
      });
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private place(slot: number, name: string, device: VirtioDevice): void {
    const { base, irq } = virtioMmioSlot(slot);
    let shared = this.lines.get(irq);
    if (!shared) {
      shared = new WiredOrIrq(this.wiring.line(irq));
      this.lines.set(irq, shared);
    }
    const transport = new VirtioMmio({ device, memory: this.wiring.memory, irq: shared.input(), log: (m) => this.wiring.log(`${name}: ${m}`) });
    this.devices.push({ slot, name, base, irq, device, transport });
  }

  /** Puts each window on the bus. */
  register(bus: MmioBus): void {
    for (const d of this.devices) bus.register(d.base, VIRTIO_MMIO_SIZE, d.name, d.transport);
  }

  /** The DSDT's description of the devices. */
  acpi(): VirtioMmioAcpi[] {
    return this.devices.map((d) => ({ base: d.base, size: VIRTIO_MMIO_SIZE, irq: d.irq }));
  }

  /** The kernel command line with each device declared on it (unchanged without devices). */
  cmdline(cmdline: string): string {
    const extra = this.devices.map((d) => virtioMmioCmdline(d.base, d.irq));
    return [cmdline, ...extra].filter((s) => s !== '').join(' ');
  }

  /** Takes what the host side of each network card left in its rings (frames, room, its end). */
  pollNics(): void {
    for (const nic of this.nics) nic.rings.poll();
  }

  /** Each network card's counters, in order. */
  nicCounters(): VirtioNetCounters[] {
    return this.nics.map((nic) => ({ ...nic.device.counters }));
  }

  /** The console's first port (hvc0). */
  get consolePort(): ConsolePort {
    if (!this.console) throw new TsvmmError('TSVMM_UNSUPPORTED', 'the machine has no virtio console');
    return this.console.port(0);
  }

  /** The agent's port, with config.agent. */
  get agentPort(): ConsolePort | undefined {
    return this.console?.ports[1];
  }

  close(): void {
    for (const disk of this.disks.splice(0)) disk.close();
  }
}
