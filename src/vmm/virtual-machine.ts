/**
 * The embeddable machine: `VirtualMachine.create(options)`, `vm.console` (a Duplex on the
 * guest's first serial port), `vm.start()`, `vm.stop()`, `await vm.exited`. The machine runs in
 * worker threads; nothing here blocks the caller's event loop. Serial bytes cross through shared
 * rings; typed input kicks the vCPU so that it feeds the UART at once.
 *
 * The console is flow-controlled end to end, as a serial line with hardware handshake: when
 * whoever reads `vm.console` stops (push() returns false), the output ring fills and the guest's
 * UART shows its transmitter busy until there is room; when the guest stops reading, writes to
 * `vm.console` wait (their callbacks are held, so write() returns false past the stream's
 * highWaterMark) until the guest takes bytes. Nothing is dropped and no buffer grows unbounded.
 */
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import { statSync } from 'node:fs';
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import { boardThread, warm as warmBoardThreads } from './board-threads.js';
import { TsvmmError } from '../common/errors.js';
import type { SoftProfile } from '../nvmm/profile.js';
import type { StopHandle } from '../nvmm/backend.js';
import type { VcpuExitKind } from '../nvmm/exit.js';
import { stopVcpu } from '../nvmm/stop.js';
import { KICK, ramLayout, type BoardControl, type BoardControlReply, type BoardFormat, type BoardRestore, type VmEnd } from './board.js';
import { readSnapshot, type DriveStamp } from './snapshot-file.js';
import type { Accel } from '../backends/open.js';
import { ByteRing } from './byte-ring.js';
import { machineConfig, type MachineConfig, type MachineOptions, type NicConfig } from './config.js';
import type { UnknownRange } from '../devices/bus.js';
import { checkImageFile, maxImageBytes } from './image-file.js';
import { checkDrives } from './virtio-devices.js';
import { createNetRings, NetBridgeHost, type NetBridgeCounters, type NetRings } from '../devices/net/frame-ring.js';
import type { NetBackend } from '../devices/net/net-backend.js';
import { openNetBackend } from '../devices/net/open.js';
import type { VirtioNetCounters } from '../devices/virtio/virtio-net.js';
import { Agent, type ExecOptions, type ExecResult } from './agent.js';
import { ChannelTarget } from './gdb/channel-target.js';
import { DebugChannel, WORD, newDebugChannel } from './gdb/channel.js';
import { GdbServer, type GdbServerOptions } from './gdb/server.js';

export type { VmEnd } from './board.js';
export type { UnknownRange } from '../devices/bus.js';
export type { ConsoleKind, DriveConfig, HostForward, HostForwardOptions, MachineConfig, MachineOptions, NicConfig, NicOptions } from './config.js';
export type { NetBridgeCounters } from '../devices/net/frame-ring.js';
export type { VirtioNetCounters } from '../devices/virtio/virtio-net.js';

/**
 * What VirtualMachine.create takes: the machine's options (config.ts: the kernel, and any other
 * field of MachineConfig), and beside them what the host wires to the running machine.
 */
export interface VmOptions extends MachineOptions {
  /**
   * With `profile`: samples are taken only while the first Int32 of this buffer is not 0 (perf
   * record's --control); the caller opens and closes it, e.g. on what the guest prints.
   */
  profileGate?: SharedArrayBuffer;
}

export interface VmExited {
  end: VmEnd;
  /** Exits taken by the boot vCPU, by kind. */
  exits: Partial<Record<VcpuExitKind, number>>;
  /** Port accesses the boot vCPU served inline, without an exit (the soft backend). */
  inlineIo: number;
  /** MMIO accesses the boot vCPU served inline, without an exit (the soft backend). */
  inlineMmio: number;
  /** The backend's counters for the boot vCPU (Vcpu.statistics). */
  cpu: Record<string, number>;
  /** Accesses to ports no device claims, by range of ports (a bounded list: close ranges merge). */
  unknownPorts: UnknownRange[];
  /** Accesses to guest-physical pages where nothing is mapped, by range of pages (bounded the same way). */
  unknownMmio: UnknownRange[];
  /** The boot vCPU's profile (with MachineConfig.profile). */
  profile?: SoftProfile;
  /** Each network card's counters (config.nics), in order. */
  nics: NicCounters[];
}

/** What crossed one network card, and what was dropped. */
export interface NicCounters {
  /** The backend under it: "passt (pid 1234)", "tap tsvmm0". */
  backend: string;
  /** The host side: frames each way, and frames for the guest dropped because it did not take them (the ring between the threads was full). */
  host: NetBridgeCounters;
  /** The device's, as the guest saw it (absent when the machine never ran). */
  device?: VirtioNetCounters;
}

/** Posted to the board worker: the configuration as it is, and the host's ends of the machine beside it. */
export interface BoardWorkerData {
  config: MachineConfig;
  serialOut: SharedArrayBuffer;
  serialIn: SharedArrayBuffer;
  /** The agent port's rings (with config.agent). */
  agentOut?: SharedArrayBuffer;
  agentIn?: SharedArrayBuffer;
  control: SharedArrayBuffer;
  profileGate?: SharedArrayBuffer;
  /** Each vCPU's line to a debugger (gdb/channel.ts), by vCPU id. */
  debugChannels?: SharedArrayBuffer[];
  /** The rings of each network card (config.nics), in order. */
  nicRings?: NetRings[];
  /** Continue this snapshot instead of booting. */
  restore?: BoardRestore;
  /** The board's end of the control channel (pause, resume, save). */
  controlPort?: MessagePort;
}

/** A BoardControl before it has its id. */
type BoardRequest = BoardControl extends infer C ? (C extends BoardControl ? Omit<C, 'id'> : never) : never;

/** What VirtualMachine.restore takes beside the snapshot's path: what may differ from the saved machine. */
export interface RestoreOptions {
  /** The backend to continue on (default: the saved config's). */
  accel?: Accel;
  /** End the restored run with `timeout` after this many milliseconds (the saved timeout is not carried over). */
  timeoutMs?: number;
  profileGate?: SharedArrayBuffer;
  /**
   * Map the saved RAM pages from the file copy-on-write (default; the soft backend's arena and
   * KVM's RAM both take them), sharing the pages machines only read; false: copy them into each machine.
   */
  mapRam?: boolean;
}

/** Refuses a drive whose image changed since the snapshot recorded it (TSVMM_SNAPSHOT_MISMATCH). */
function checkDriveStamps(stamps: readonly DriveStamp[]): void {
  for (const d of stamps) {
    let now: { size: number; mtimeMs: number };
    try {
      now = statSync(d.file);
    } catch (e) {
      throw new TsvmmError('TSVMM_SNAPSHOT_MISMATCH', `the snapshot's drive ${d.file} cannot be read: ${(e as Error).message}`, { file: d.file });
    }
    if (now.size !== d.size || now.mtimeMs !== d.mtimeMs) {
      throw new TsvmmError('TSVMM_SNAPSHOT_MISMATCH',
        `the drive ${d.file} changed since the snapshot (${d.size} bytes modified at ${new Date(d.mtimeMs).toISOString()}, now ${now.size} bytes modified at ${new Date(now.mtimeMs).toISOString()}): the guest's view of it would not hold`,
        { file: d.file });
    }
  }
}

/** Posted by the board worker. */
export type FromBoard =
  | { type: 'ready'; stopHandle: StopHandle; apStops: StopHandle[]; format: BoardFormat }
  | { type: 'log'; message: string }
  | ({ type: 'end'; nicDevices: VirtioNetCounters[] } & Omit<VmExited, 'nics'>);

const RING_BYTES = 1 << 16;
/** The agent port carries command output (up to 16 MiB by default): a larger ring, fewer kicks. */
const AGENT_RING_BYTES = 1 << 20;
/** How long exec() waits for the guest's agent to say hello, unless told. */
export const DEFAULT_AGENT_READY_MS = 10 * 60_000;

/** How a machine that never ran ends (stopped before start, or its worker died); finish() fills in the NICs. */
function endedBeforeRunning(end: VmEnd): Omit<VmExited, 'nics'> {
  return { end, exits: {}, inlineIo: 0, inlineMmio: 0, cpu: {}, unknownPorts: [], unknownMmio: [] };
}

/** One network card's host side: its backend (passt, a TAP) and the bridge to the board's rings. */
interface HostNic {
  backend: NetBackend;
  rings: NetRings;
  bridge: NetBridgeHost;
}

export interface VirtualMachineEvents {
  /** The machine is built and its first vCPU runs. */
  ready: [format: BoardFormat];
  /** A note from the machine (unknown port, unknown MSR...). */
  log: [message: string];
  exit: [exited: VmExited];
}

export class VirtualMachine extends EventEmitter<VirtualMachineEvents> {
  /** The guest's COM1: what the guest writes comes out, what is written goes in (both flow-controlled). */
  readonly console: Duplex;
  /** Resolves when the machine has ended (however it ended). */
  readonly exited: Promise<VmExited>;
  /** The machine's configuration, checked and with its defaults (config.ts). */
  readonly config: MachineConfig;
  /**
   * With config.agent: the guest's exec agent on the virtio console port org.tsvmm.agent (the
   * initramfs `tsvmm initramfs` writes starts it; docs/agent-protocol.md). exec() is the short way.
   */
  readonly agent: Agent | undefined;
  private readonly agentRings: { out: ByteRing; in: ByteRing; pending: Uint8Array[] } | undefined;
  private readonly profileGate: SharedArrayBuffer | undefined;
  private readonly serialOut = new ByteRing(RING_BYTES);
  private readonly serialIn = new ByteRing(RING_BYTES);
  private readonly control = new Int32Array(new SharedArrayBuffer(4));
  private worker: Worker | undefined;
  private workerGone: Promise<void> = Promise.resolve();
  private stopHandle: StopHandle | undefined;
  /** An end asked for before the vCPU could be kicked (KICK.STOP or TIMEOUT), sent at 'ready'. */
  private pendingEnd = 0;
  private ended = false;
  private resolveExited!: (e: VmExited) => void;
  /** The console's reader wants bytes (push() has not said stop since it last asked). */
  private outputWanted = true;
  private wakeOutput: (() => void) | undefined;
  /** Each vCPU's line to a debugger (by vCPU id), and the server on them (gdbServer()). */
  private readonly debugChannels: SharedArrayBuffer[];
  /** The application processors' stop handles (vCPU id - 1), known at 'ready'. */
  private apStops: StopHandle[] = [];
  private gdb: { server: GdbServer; target: ChannelTarget } | undefined;
  /** The network cards' host sides (config.nics), in order. */
  private readonly nics: HostNic[] = [];
  /** The snapshot this machine continues, if it was restored. */
  private readonly restoreFrom: BoardRestore | undefined;
  /** Requests to the board (pause, resume, save) and their replies. */
  private readonly controlChannel = new MessageChannel();
  private readonly controlWaiters = new Map<number, { resolve(): void; reject(e: TsvmmError): void }>();
  private nextControlId = 1;
  private isPaused = false;
  private readonly started: Promise<void>;
  private resolveStarted!: () => void;

  private constructor(config: MachineConfig, profileGate: SharedArrayBuffer | undefined, restoreFrom?: BoardRestore) {
    super();
    this.config = config;
    this.debugChannels = Array.from({ length: config.cpus }, () => newDebugChannel());
    this.profileGate = profileGate;
    this.restoreFrom = restoreFrom;
    this.started = new Promise((resolve) => (this.resolveStarted = resolve));
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
    if (config.agent) {
      const rings = { out: new ByteRing(AGENT_RING_BYTES), in: new ByteRing(AGENT_RING_BYTES), pending: [] as Uint8Array[] };
      this.agentRings = rings;
      this.agent = new Agent({ write: (bytes) => this.toAgent(bytes) });
    }
    const vm = this;
    this.console = new Duplex({
      read() {
        vm.outputWanted = true;
        vm.wakeOutput?.();
      },
      write(chunk: Buffer, _encoding, callback) {
        vm.type(chunk).then(() => callback(), callback);
      },
    });
  }

  /**
   * Checks the options (machineConfig: a ConfigError names a bad value) and prepares a machine;
   * start() runs it. The images must be readable regular files no larger than the guest's RAM
   * (devices, FIFOs and directories are refused here, before any thread could block on them).
   * Each drive is opened as the machine will open it: a missing or unreadable image, one that
   * is not a whole number of 512-byte sectors (TSVMM_BAD_DISK) or that another process holds
   * (TSVMM_BUSY) is refused here, before the guest starts.
   * Each network card's backend is started here: passt (missing: TSVMM_TOOL_MISSING, naming its
   * Debian package; failing: TSVMM_NET_BACKEND) or the TAP (TSVMM_NET_PERMISSION, TSVMM_NET_BACKEND).
   * The machine holds them until it ends: a machine created with NICs is to be started or
   * stopped (stop() ends one that never started).
   */
  static async create(options: VmOptions): Promise<VirtualMachine> {
    const config = machineConfig(options);
    const maxBytes = maxImageBytes(config.memory);
    for (const [what, path] of [['kernel', config.kernel], ['initrd', config.initrd]] as const) {
      if (path !== undefined) checkImageFile(path, what, maxBytes);
    }
    checkDrives(config.drives ?? []);
    const vm = new VirtualMachine(config, options.profileGate);
    await vm.openNics();
    return vm;
  }

  /** Opens each network card of the configuration (openNic); if one fails, those opened are let go. */
  private async openNics(): Promise<void> {
    try {
      for (const nic of this.config.nics ?? []) await this.openNic(nic);
    } catch (e) {
      await this.closeNics();
      throw e;
    }
  }

  /** Starts a network card's backend and bridges it to a new pair of rings (frames before the guest's driver is ready are dropped by the device). */
  private async openNic(nic: NicConfig): Promise<void> {
    const index = this.nics.length;
    const backend = await openNetBackend(nic);
    const rings = createNetRings();
    const bridge = new NetBridgeHost(backend, rings, () => this.kick(KICK.CONSOLE), (reason) => {
      if (reason !== null) this.emit('log', `network card ${index} (${backend.description}) ended: ${reason}; its link is down`);
    });
    this.nics.push({ backend, rings, bridge });
  }

  /** Stops the bridges and lets go of the backends (passt ends, the TAP closes). */
  private async closeNics(): Promise<void> {
    await Promise.all(this.nics.map(async (nic) => {
      await nic.bridge.stop();
      await nic.backend.close();
    }));
  }

  /**
   * A machine that continues the snapshot at `path` (written by save()); start() runs it. The
   * file is checked whole first (TSVMM_SNAPSHOT_CORRUPT, _VERSION, _TRUNCATED: nothing runs);
   * each drive must be the image the snapshot recorded, unchanged (TSVMM_SNAPSHOT_MISMATCH): a
   * guest's page cache and filesystem state are in the snapshot's RAM, and would not match
   * another disk. Images are never written by a restore itself.
   */
  static async restore(path: string, options: RestoreOptions = {}): Promise<VirtualMachine> {
    const snapshot = readSnapshot(path, ramLayout);
    const saved = snapshot.machine.config;
    checkDriveStamps(snapshot.machine.drives);
    const { timeoutMs: _savedTimeout, ...rest } = saved;
    const config = machineConfig({ ...rest, accel: options.accel ?? saved.accel, ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) });
    checkDrives(config.drives ?? []);
    const vm = new VirtualMachine(config, options.profileGate, { path, snapshot, mapRam: options.mapRam ?? true });
    if (snapshot.machine.agentReady) vm.agent?.continueReady();
    // Each network card gets a new backend (a new passt, the TAP opened again by name): what
    // the saved one carried is gone, and the guest's connections through it with it.
    await vm.openNics();
    return vm;
  }

  /**
   * Keeps `count` (0 to 16) board threads started ahead of need, their modules loaded, and
   * resolves when they are: a machine started afterwards (create or restore, then start) skips the
   * ~0.3 s a new thread spends loading them, and a new spare is started behind each one taken.
   * Spares do not keep the process alive; warm(0) ends them. What a server restoring machines on
   * demand calls once at its start (Firecracker's process is likewise up before its snapshot load).
   */
  static warm(count = 1): Promise<void> {
    return warmBoardThreads(count);
  }

  /** Whether pause() holds the machine. */
  get paused(): boolean {
    return this.isPaused;
  }

  /**
   * Stops the guest at its next instruction boundary, until resume(): its vCPUs do not run and
   * its devices take no host input (on KVM the application processors of an --smp machine still
   * run: they have no line from the board yet). On the soft backend guest time stands still too (the TSC,
   * the timers and the RTC all continue from where they were, none counting the pause); on KVM,
   * whose TSC runs with the host's, guest time goes on and the timers catch up when it resumes.
   * Resolves once the vCPU has stopped.
   */
  async pause(): Promise<void> {
    await this.request({ op: 'pause' });
    this.isPaused = true;
  }

  async resume(): Promise<void> {
    await this.request({ op: 'resume' });
    this.isPaused = false;
  }

  /**
   * Writes a snapshot of the machine to `path` (docs/snapshot-format.md): it pauses the machine,
   * saves, and lets it run again unless it was paused already. The file is written beside `path`
   * and renamed over it when complete. Refused: TSVMM_UNSUPPORTED for a machine that cannot be
   * saved yet (more than one vCPU, KVM's in-kernel irqchip), TSVMM_BUSY while an agent exec or a
   * device request is in flight.
   */
  async save(path: string): Promise<void> {
    const wasPaused = this.isPaused;
    if (!wasPaused) await this.pause();
    try {
      // What the guest's agent wrote before the pause reaches the Agent first.
      const ring = this.agentRings?.out;
      while (ring && ring.length > 0 && !this.ended) await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      const agent = this.agent;
      if (agent && agent.ready && !agent.idle) throw new TsvmmError('TSVMM_BUSY', 'an agent exec is in flight: save when it has finished');
      await this.request({ op: 'save', path, agentReady: agent?.idle ?? false });
    } finally {
      if (!wasPaused && !this.ended) await this.resume();
    }
  }

  /** Sends a request to the board and waits for its reply. */
  private async request(request: BoardRequest): Promise<void> {
    if (this.ended) throw new TsvmmError('TSVMM_BUSY', 'the machine has ended');
    if (!this.worker) throw new TsvmmError('TSVMM_BUSY', 'the machine has not been started');
    await this.started;
    if (this.ended) throw new TsvmmError('TSVMM_BUSY', 'the machine has ended');
    const id = this.nextControlId++;
    await new Promise<void>((resolve, reject) => {
      this.controlWaiters.set(id, { resolve, reject });
      this.controlChannel.port1.postMessage({ ...request, id } as BoardControl);
      this.kick(KICK.CONTROL);
    });
  }

  private onControlReply(reply: BoardControlReply): void {
    const w = this.controlWaiters.get(reply.id);
    if (!w) return;
    this.controlWaiters.delete(reply.id);
    if (reply.ok) w.resolve();
    else w.reject(new TsvmmError(reply.code as TsvmmError['code'], reply.message));
  }

  /** Builds and runs the machine in a worker thread; 'ready' says when its first vCPU runs. Once only. */
  start(): void {
    if (this.ended) throw new TsvmmError('TSVMM_BUSY', 'the machine has ended (stopped before it started)');
    if (this.worker) throw new TsvmmError('TSVMM_BUSY', 'the machine was already started');
    const data: BoardWorkerData = {
      config: this.config,
      serialOut: this.serialOut.buffer, serialIn: this.serialIn.buffer, control: this.control.buffer as SharedArrayBuffer, profileGate: this.profileGate,
      agentOut: this.agentRings?.out.buffer, agentIn: this.agentRings?.in.buffer,
      debugChannels: this.debugChannels,
      nicRings: this.nics.map((nic) => nic.rings),
      restore: this.restoreFrom,
      controlPort: this.controlChannel.port2,
    };
    const worker = boardThread(data, [this.controlChannel.port2]);
    this.controlChannel.port1.on('message', (reply: BoardControlReply) => this.onControlReply(reply));
    this.controlChannel.port1.unref();
    this.worker = worker;
    this.workerGone = new Promise((resolve) => worker.once('exit', () => resolve()));
    let timer: NodeJS.Timeout | undefined;
    worker.on('message', (msg: FromBoard) => {
      switch (msg.type) {
        case 'ready':
          this.stopHandle = msg.stopHandle;
          this.apStops = msg.apStops;
          // A debugger that asked to stop the machine before it ran.
          if (this.gdb) {
            [msg.stopHandle, ...msg.apStops].forEach((h, id) => {
              if (new DebugChannel(this.debugChannels[id]!).load(WORD.STOP_REQ)) stopVcpu(h);
            });
          }
          if (this.config.timeoutMs !== undefined) timer = setTimeout(() => this.kick(KICK.TIMEOUT), this.config.timeoutMs);
          this.resolveStarted();
          this.emit('ready', msg.format);
          if (this.pendingEnd) this.kick(this.pendingEnd);
          // Bytes or network frames that arrived before the vCPU could be kicked (a restored agent is ready at once).
          else if (this.serialIn.length || (this.agentRings?.in.length ?? 0) > 0 || this.nics.length) this.kick(KICK.CONSOLE);
          break;
        case 'log':
          this.emit('log', msg.message);
          break;
        case 'end':
          clearTimeout(timer);
          void this.finish({ end: msg.end, exits: msg.exits, inlineIo: msg.inlineIo, inlineMmio: msg.inlineMmio, cpu: msg.cpu, unknownPorts: msg.unknownPorts, unknownMmio: msg.unknownMmio, profile: msg.profile }, msg.nicDevices);
          break;
      }
    });
    worker.on('error', (e) => {
      clearTimeout(timer);
      void this.finish(endedBeforeRunning({ how: 'error', code: 'TSVMM_INTERNAL', message: e.stack ?? String(e) }));
    });
    void this.pumpOutput();
    if (this.agentRings) void this.pumpAgent(this.agentRings.out);
  }

  /**
   * Runs `command` in the guest through its exec agent (config.agent) and resolves with its
   * stdout, stderr and exit status (Agent.exec: TSVMM_TIMEOUT, TSVMM_LIMIT, TSVMM_AGENT_PROTOCOL,
   * TSVMM_AGENT_CLOSED when the machine ends first). Waits for the agent's hello first, at most
   * `readyTimeoutMs` (default DEFAULT_AGENT_READY_MS: the guest has to boot).
   */
  async exec(command: string | Uint8Array, options: ExecOptions & { readyTimeoutMs?: number } = {}): Promise<ExecResult> {
    const agent = this.agent;
    if (!agent) throw new TsvmmError('TSVMM_UNSUPPORTED', 'the machine has no agent port: create it with { agent: true }');
    const { readyTimeoutMs = DEFAULT_AGENT_READY_MS, ...execOptions } = options;
    await agent.whenReady(readyTimeoutMs);
    return agent.exec(command, execOptions);
  }

  /** Bytes for the guest's agent: into its ring, in order, waiting for room while the machine runs. */
  private toAgent(bytes: Uint8Array): void {
    const rings = this.agentRings!;
    rings.pending.push(bytes.slice());
    if (rings.pending.length === 1) void this.sendToAgent(rings);
  }

  private async sendToAgent(rings: { in: ByteRing; pending: Uint8Array[] }): Promise<void> {
    while (rings.pending.length > 0 && !this.ended) {
      const head = rings.pending[0]!;
      const wasEmpty = rings.in.length === 0;
      const n = rings.in.write(head);
      if (n > 0 && wasEmpty) this.kick(KICK.CONSOLE);
      if (n === head.length) rings.pending.shift();
      else {
        rings.pending[0] = head.subarray(n);
        await rings.in.whenWritable();
      }
    }
  }

  /** Moves the agent port's output to the Agent until the machine ends. */
  private async pumpAgent(ring: ByteRing): Promise<void> {
    for (;;) {
      if (!this.ended) await ring.whenReadable();
      if (this.ended && ring.length === 0) break;
      const bytes = ring.read(AGENT_RING_BYTES);
      if (ring.takeWaiting()) this.kick(KICK.CONSOLE);
      if (bytes.length) this.agent!.receive(bytes);
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.agent!.end('the machine ended');
  }

  /**
   * Ends the machine, in any state, and resolves with how it ended: before start() it ends at
   * once ({ how: 'stopped' }, and start() is refused after); while it is being built, it ends as
   * soon as it is built, without running the guest; once ended, it resolves with that end.
   */
  async stop(): Promise<VmExited> {
    if (this.ended) return this.exited;
    if (!this.worker) {
      this.console.push(null);
      void this.finish(endedBeforeRunning({ how: 'stopped' }));
      return this.exited;
    }
    this.kick(KICK.STOP);
    return this.exited;
  }

  /**
   * Serves GDB's remote protocol on TCP (`target remote HOST:PORT`; host 127.0.0.1 unless given,
   * port 0 for any free one: see GdbServer.port), one client at a time, with each vCPU a thread
   * (thread id = vCPU id + 1), stopped and resumed together. `wait`, before start(): the machine starts paused
   * until the debugger resumes it (QEMU's -S). The server closes when the machine ends.
   */
  async gdbServer(opts: GdbServerOptions & { wait?: boolean }): Promise<GdbServer> {
    if (this.gdb) throw new TsvmmError('TSVMM_BUSY', `a gdb server already listens on ${this.gdb.server.host}:${this.gdb.server.port}`);
    if (this.ended) throw new TsvmmError('TSVMM_BUSY', 'the machine has ended');
    if (opts.wait) {
      if (this.worker) throw new TsvmmError('TSVMM_BUSY', 'wait: the machine already started (call gdbServer before start)');
      for (const ch of this.debugChannels) new DebugChannel(ch).store(WORD.WAIT_AT_START, 1);
    }
    const log = opts.log ?? ((m: string) => void this.emit('log', m));
    const target = new ChannelTarget(
      this.debugChannels.map((channel, id) => ({
        id, channel,
        kick: () => {
          const h = id === 0 ? this.stopHandle : this.apStops[id - 1];
          if (h) stopVcpu(h);
        },
      })),
      () => void this.stop(),
      { log },
    );
    const server = await GdbServer.listen(target, { ...opts, log });
    this.gdb = { server, target };
    return server;
  }

  /** Sends bytes to the guest's serial input, waiting for room in the ring as long as the machine runs. */
  private async type(bytes: Uint8Array): Promise<void> {
    let sent = 0;
    while (sent < bytes.length && !this.ended) {
      const wasEmpty = this.serialIn.length === 0;
      const n = this.serialIn.write(bytes.subarray(sent));
      sent += n;
      // The board takes more by itself whenever the UART makes room; it needs a kick only for
      // bytes that arrive while it has none.
      if (n > 0 && wasEmpty) this.kick(KICK.CONSOLE);
      if (sent < bytes.length) await this.serialIn.whenWritable();
    }
  }

  /** Kicks the vCPU out of its run (an end, or console bytes to move); an end asked for before 'ready' waits for it. */
  private kick(why: number): void {
    if (this.ended) return;
    if (why === KICK.CONTROL) {
      // Never over an end the board has not taken yet (it serves requests at any kick).
      Atomics.compareExchange(this.control, 0, KICK.CONSOLE, KICK.CONTROL);
      Atomics.notify(this.control, 0);
    } else if (why !== KICK.CONSOLE) {
      Atomics.store(this.control, 0, why);
      Atomics.notify(this.control, 0);
      if (!this.stopHandle) this.pendingEnd = why;
    }
    if (this.stopHandle) stopVcpu(this.stopHandle);
  }

  /**
   * Moves guest serial output to the console stream until the machine ends, as fast as the
   * stream's reader takes it; yields to the event loop between chunks (a guest that floods its
   * console must not starve timers and input).
   */
  private async pumpOutput(): Promise<void> {
    const ring = this.serialOut;
    for (;;) {
      if (!this.ended) await ring.whenReadable(); // finish() wakes it
      if (this.ended && ring.length === 0) break;
      while (!this.outputWanted) await new Promise<void>((resolve) => (this.wakeOutput = resolve));
      this.wakeOutput = undefined;
      const bytes = ring.read(RING_BYTES);
      // The UART holds bytes for lack of room: now there is some.
      if (ring.takeWaiting()) this.kick(KICK.CONSOLE);
      if (bytes.length && !this.console.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length))) this.outputWanted = false;
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.console.push(null);
  }

  private async finish(ran: Omit<VmExited, 'nics'>, nicDevices: VirtioNetCounters[] = []): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    if (this.gdb) {
      const e = ran.end;
      this.gdb.target.machineEnded(e.how, e.how === 'debug-exit' ? e.status : e.how === 'poweroff' || e.how === 'reset' || e.how === 'stopped' ? 0 : 1);
      // The client gets its W packet first.
      const server = this.gdb.server;
      setTimeout(() => void server.close(), 100).unref();
    }
    this.resolveStarted();
    for (const w of this.controlWaiters.values()) w.reject(new TsvmmError('TSVMM_BUSY', 'the machine ended'));
    this.controlWaiters.clear();
    this.controlChannel.port1.close();
    this.serialOut.wake();
    this.serialIn.wake();
    this.agentRings?.out.wake();
    this.agentRings?.in.wake();
    // The worker closes the machine (KVM descriptors are per process) and exits by itself.
    if (ran.end.how === 'error' && ran.end.code === 'TSVMM_INTERNAL') await this.worker?.terminate();
    await this.workerGone;
    await this.closeNics();
    const exited: VmExited = {
      ...ran,
      nics: this.nics.map((nic, i) => ({ backend: nic.backend.description, host: { ...nic.bridge.counters }, ...(nicDevices[i] ? { device: nicDevices[i] } : {}) })),
    };
    this.emit('exit', exited);
    this.resolveExited(exited);
  }
}
