/**
 * The embeddable machine: `VirtualMachine.create(options)`, `vm.console` (a Duplex on the
 * guest's first serial port), `vm.start()`, `vm.stop()`, `await vm.exited`. The machine runs in
 * worker threads; nothing here blocks the caller's event loop. Serial bytes cross through shared
 * rings; typed input kicks the vCPU so that it feeds the UART at once.
 */
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { TsvmmError } from '../common/errors.js';
import type { Accel } from '../backends/open.js';
import type { ProfileOptions, SoftProfile } from '../backends/soft/profile.js';
import type { StopHandle } from '../nvmm/backend.js';
import type { VcpuExitKind } from '../nvmm/exit.js';
import { stopVcpu } from '../nvmm/stop.js';
import type { EntryMode } from '../loader/load-result.js';
import { KICK, type VmEnd } from './board.js';
import type { ImageFormat } from './boot.js';
import { ByteRing } from './byte-ring.js';
import { checkImageFile, maxImageBytes } from './image-file.js';

export type { VmEnd } from './board.js';

export interface VmOptions {
  /** The kernel image: a bzImage, a multiboot kernel, or (with `flat`) a flat binary. */
  kernel: string;
  initrd?: string;
  /** The kernel command line. */
  cmdline?: string;
  /** Guest RAM in bytes (default 256 MiB). */
  memory?: number;
  /** vCPUs (default 1); guests find them in the MP table. */
  cpus?: number;
  accel?: Accel;
  /** Load `kernel` as a flat binary at `loadAddr`, entered in `mode`. */
  flat?: { loadAddr: number; mode: EntryMode };
  /** End the run with `timeout` after this many milliseconds. */
  timeoutMs?: number;
  /** Print the first N executed instructions to standard error (soft backend). */
  traceCpu?: number;
  /** Sample the boot vCPU (soft backend): VmExited.profile. */
  profile?: ProfileOptions;
  /** For a bzImage: decompress the kernel on the host and enter it through PVH. */
  pvh?: boolean;
  /**
   * Soft backend: serve port I/O, interrupts and timers inside the CPU loop (default true); false
   * takes an exit for each, as NVMM's VMMs do (slower; it keeps that path tested).
   */
  inlineDevices?: boolean;
}

export interface VmExited {
  end: VmEnd;
  /** Exits taken by the boot vCPU, by kind. */
  exits: Partial<Record<VcpuExitKind, number>>;
  /** Port accesses the boot vCPU served inline, without an exit (the soft backend). */
  inlineIo: number;
  /** The backend's counters for the boot vCPU (Vcpu.statistics). */
  cpu: Record<string, number>;
  /** Accesses to ports no device claims, by port. */
  unknownPorts: Record<number, number>;
  /** The boot vCPU's profile (with VmOptions.profile). */
  profile?: SoftProfile;
}

/** Posted to the board worker. */
export interface BoardWorkerData {
  accel: Accel;
  memoryBytes: number;
  cpus: number;
  kernel: string;
  initrd?: string;
  cmdline: string;
  flat?: { loadAddr: number; mode: EntryMode };
  traceCpu?: number;
  profile?: ProfileOptions;
  pvh?: boolean;
  inlineDevices?: boolean;
  serialOut: SharedArrayBuffer;
  serialIn: SharedArrayBuffer;
  control: SharedArrayBuffer;
}

/** Posted by the board worker. */
export type FromBoard =
  | { type: 'ready'; stopHandle: StopHandle; format: ImageFormat }
  | { type: 'log'; message: string }
  | ({ type: 'end' } & VmExited);

const RING_BYTES = 1 << 16;
const DEFAULT_MEMORY_BYTES = 256 * 1024 * 1024;

export interface VirtualMachineEvents {
  /** The machine is built and its first vCPU runs. */
  ready: [format: ImageFormat];
  /** A note from the machine (unknown port, unknown MSR...). */
  log: [message: string];
  exit: [exited: VmExited];
}

export class VirtualMachine extends EventEmitter<VirtualMachineEvents> {
  /** The guest's COM1: what the guest writes comes out, what is written goes in. */
  readonly console: Duplex;
  /** Resolves when the machine has ended (however it ended). */
  readonly exited: Promise<VmExited>;
  private readonly options: Required<Pick<VmOptions, 'kernel' | 'cmdline' | 'memory' | 'accel' | 'cpus'>> & VmOptions;
  private readonly serialOut = new ByteRing(RING_BYTES);
  private readonly serialIn = new ByteRing(RING_BYTES);
  private readonly control = new Int32Array(new SharedArrayBuffer(4));
  private worker: Worker | undefined;
  private workerGone: Promise<void> = Promise.resolve();
  private stopHandle: StopHandle | undefined;
  private ended = false;
  private resolveExited!: (e: VmExited) => void;

  private constructor(options: VmOptions) {
    super();
    this.options = { cmdline: '', memory: DEFAULT_MEMORY_BYTES, accel: 'auto', cpus: 1, ...options };
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
    const vm = this;
    this.console = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        vm.type(chunk);
        callback();
      },
    });
  }

  /**
   * Checks the options and prepares a machine; start() runs it. The images must be readable
   * regular files no larger than the guest's RAM (devices, FIFOs and directories are refused here,
   * before any thread could block on them).
   */
  static async create(options: VmOptions): Promise<VirtualMachine> {
    if (options.memory !== undefined && (!Number.isSafeInteger(options.memory) || options.memory % 4096 !== 0 || options.memory < 2 << 20)) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `memory ${options.memory} must be a multiple of 4 KiB and at least 2 MiB`);
    }
    const maxBytes = maxImageBytes(options.memory ?? DEFAULT_MEMORY_BYTES);
    for (const [what, path] of [['kernel', options.kernel], ['initrd', options.initrd]] as const) {
      if (path !== undefined) checkImageFile(path, what, maxBytes);
    }
    return new VirtualMachine(options);
  }

  start(): void {
    if (this.worker) throw new TsvmmError('TSVMM_BUSY', 'the machine was already started');
    const o = this.options;
    const data: BoardWorkerData = {
      accel: o.accel, memoryBytes: o.memory, cpus: o.cpus, kernel: o.kernel, initrd: o.initrd, cmdline: o.cmdline, flat: o.flat, traceCpu: o.traceCpu, profile: o.profile, pvh: o.pvh, inlineDevices: o.inlineDevices,
      serialOut: this.serialOut.buffer, serialIn: this.serialIn.buffer, control: this.control.buffer as SharedArrayBuffer,
    };
    const worker = new Worker(new URL('./board-worker.js', import.meta.url), { workerData: data });
    this.worker = worker;
    this.workerGone = new Promise((resolve) => worker.once('exit', () => resolve()));
    let timer: NodeJS.Timeout | undefined;
    worker.on('message', (msg: FromBoard) => {
      switch (msg.type) {
        case 'ready':
          this.stopHandle = msg.stopHandle;
          if (o.timeoutMs !== undefined) timer = setTimeout(() => this.kick(KICK.TIMEOUT), o.timeoutMs);
          this.emit('ready', msg.format);
          if (this.serialIn.length) this.kick(KICK.INPUT);
          break;
        case 'log':
          this.emit('log', msg.message);
          break;
        case 'end':
          clearTimeout(timer);
          void this.finish({ end: msg.end, exits: msg.exits, inlineIo: msg.inlineIo, cpu: msg.cpu, unknownPorts: msg.unknownPorts, profile: msg.profile });
          break;
      }
    });
    worker.on('error', (e) => {
      clearTimeout(timer);
      void this.finish({ end: { how: 'error', code: 'TSVMM_INTERNAL', message: e.stack ?? String(e) }, exits: {}, inlineIo: 0, cpu: {}, unknownPorts: {} });
    });
    void this.pumpOutput();
  }

  /** Ends the machine; resolves with how it ended. */
  async stop(): Promise<VmExited> {
    if (!this.worker) throw new TsvmmError('TSVMM_BUSY', 'the machine was not started');
    if (!this.ended) this.kick(KICK.STOP);
    return this.exited;
  }

  /** Sends bytes to the guest's serial input. */
  private type(bytes: Uint8Array): void {
    if (this.ended) return;
    this.serialIn.write(bytes);
    if (this.stopHandle) this.kick(KICK.INPUT);
  }

  private kick(why: number): void {
    if (!this.stopHandle || this.ended) return;
    if (why !== KICK.INPUT) Atomics.store(this.control, 0, why);
    stopVcpu(this.stopHandle);
  }

  /** Moves guest serial output to the console stream until the machine ends. */
  private async pumpOutput(): Promise<void> {
    for (;;) {
      await this.serialOut.whenReadable();
      const bytes = this.serialOut.read();
      if (bytes.length) this.console.push(Buffer.from(bytes));
      if (this.ended && this.serialOut.length === 0) break;
    }
    this.console.push(null);
  }

  private async finish(exited: VmExited): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.serialOut.wake();
    // The worker closes the machine (KVM descriptors are per process) and exits by itself.
    if (exited.end.how === 'error' && exited.end.code === 'TSVMM_INTERNAL') await this.worker?.terminate();
    await this.workerGone;
    this.emit('exit', exited);
    this.resolveExited(exited);
  }
}
