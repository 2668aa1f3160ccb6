/**
 * The virtio-over-MMIO transport, version 2 (virtio 1.2 §4.2: the "modern" register layout;
 * legacy version 1 is not offered). One window of VIRTIO_MMIO_SIZE bytes: control registers
 * below 0x100, the device's configuration space from 0x100.
 *
 * Rules this transport enforces (spec sections in brackets):
 * - Control registers are 32-bit, aligned [4.2.2.2]; any other access reads 0, writes are
 *   dropped, and both are counted.
 * - Status [2.1, 3.1.1]: writing 0 resets the device. The driver may only add bits; a write
 *   that clears one is ignored. DEVICE_NEEDS_RESET stays set until reset.
 * - FEATURES_OK is kept only if ACKNOWLEDGE and DRIVER are set, VIRTIO_F_VERSION_1 was accepted
 *   (a modern device needs it [6.1]) and the driver accepted nothing the device did not offer;
 *   otherwise the status reads back without it, which is how the driver learns of the refusal
 *   [3.1.1 step 6]. Driver feature writes after FEATURES_OK are ignored.
 * - DRIVER_OK without FEATURES_OK is refused the same way; queues can be made ready only after
 *   FEATURES_OK; QueueNotify before DRIVER_OK, for a queue not ready, or once
 *   DEVICE_NEEDS_RESET is set, is ignored [2.1.2, 3.1.1].
 * - A queue is checked when the driver writes QueueReady = 1 (queue.ts SplitQueue.open); a bad
 *   layout, like a malformed chain later, sets DEVICE_NEEDS_RESET, and once DRIVER_OK is set the
 *   transport raises a configuration change interrupt [2.1.2]. Queue registers of a ready queue
 *   are read-only until QueueReady = 0 [4.2.2.3].
 * - InterruptStatus bit 0 (used buffer) and bit 1 (configuration change); the IRQ line is
 *   asserted while either is set, InterruptACK clears [4.2.2].
 * - Buffers the driver made available before DRIVER_OK are looked at when DRIVER_OK is set.
 * Offered transport features: VERSION_1, INDIRECT_DESC and EVENT_IDX (queue.ts implements both);
 * not offered: packed rings, IN_ORDER, ACCESS_PLATFORM, NOTIFICATION_DATA, RING_RESET, shared
 * memory regions (SHMLen reads all ones: no region [4.2.2]).
 */
import type { MmioDevice } from '../bus.js';
import type { IrqLine } from '../irq.js';
import type { GuestMemory } from './guest-memory.js';
import { TsvmmError } from '../../common/errors.js';
import { QueueFault, SplitQueue, type QueueIndices } from './queue.js';
import {
  VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1, featureBit, type VirtioDevice, type VirtioLink,
} from './device.js';

/** The size of one virtio-mmio window (what Linux and QEMU use). */
export const VIRTIO_MMIO_SIZE = 0x200;

// Register offsets (§4.2.2).
export const VIRTIO_MMIO_MAGIC_VALUE = 0x000; // "virt"
export const VIRTIO_MMIO_VERSION = 0x004;
export const VIRTIO_MMIO_DEVICE_ID = 0x008;
export const VIRTIO_MMIO_VENDOR_ID = 0x00c;
export const VIRTIO_MMIO_DEVICE_FEATURES = 0x010;
export const VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014;
export const VIRTIO_MMIO_DRIVER_FEATURES = 0x020;
export const VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024;
export const VIRTIO_MMIO_QUEUE_SEL = 0x030;
export const VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034;
export const VIRTIO_MMIO_QUEUE_NUM = 0x038;
export const VIRTIO_MMIO_QUEUE_READY = 0x044;
export const VIRTIO_MMIO_QUEUE_NOTIFY = 0x050;
export const VIRTIO_MMIO_INTERRUPT_STATUS = 0x060;
export const VIRTIO_MMIO_INTERRUPT_ACK = 0x064;
export const VIRTIO_MMIO_STATUS = 0x070;
export const VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080;
export const VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084;
export const VIRTIO_MMIO_QUEUE_DRIVER_LOW = 0x090;
export const VIRTIO_MMIO_QUEUE_DRIVER_HIGH = 0x094;
export const VIRTIO_MMIO_QUEUE_DEVICE_LOW = 0x0a0;
export const VIRTIO_MMIO_QUEUE_DEVICE_HIGH = 0x0a4;
export const VIRTIO_MMIO_SHM_SEL = 0x0ac;
export const VIRTIO_MMIO_SHM_LEN_LOW = 0x0b0;
export const VIRTIO_MMIO_SHM_LEN_HIGH = 0x0b4;
export const VIRTIO_MMIO_SHM_BASE_LOW = 0x0b8;
export const VIRTIO_MMIO_SHM_BASE_HIGH = 0x0bc;
export const VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc;
export const VIRTIO_MMIO_CONFIG = 0x100;

export const VIRTIO_MMIO_MAGIC = 0x74726976; // "virt" little-endian
export const VIRTIO_MMIO_VERSION_2 = 2;
/** Our vendor ID: "TSVM" little-endian (informational; drivers match on the device ID). */
export const VIRTIO_MMIO_VENDOR = 0x4d565354;

// Device status bits (§2.1).
export const STATUS_ACKNOWLEDGE = 1; // the guest found the device
export const STATUS_DRIVER = 2; // the guest has a driver for it
export const STATUS_DRIVER_OK = 4; // the driver is ready
export const STATUS_FEATURES_OK = 8; // feature negotiation is complete
export const STATUS_DEVICE_NEEDS_RESET = 64; // the device hit an error it cannot recover from
export const STATUS_FAILED = 128; // the driver gave up on the device

// InterruptStatus bits (§4.2.2).
export const INTERRUPT_USED_BUFFER = 1;
export const INTERRUPT_CONFIG_CHANGE = 2;

/** Transport feature bits offered on top of the device's. */
const TRANSPORT_FEATURES = featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_INDIRECT_DESC) | featureBit(VIRTIO_F_EVENT_IDX);
const MASK32 = 0xffff_ffffn;

export interface VirtioMmioOptions {
  device: VirtioDevice;
  memory: GuestMemory;
  irq: IrqLine;
  /** Where notices about guest misbehaviour go (default: nowhere); each kind is logged once. */
  log?: (message: string) => void;
}

/** Guest misbehaviour the transport met, by kind. */
export interface VirtioMmioCounters {
  badAccesses: number; // control register access not 32-bit aligned
  refusedStatus: number; // status writes clearing bits, FEATURES_OK or DRIVER_OK refused
  ignoredWrites: number; // queue registers of a ready queue, features after FEATURES_OK, QueueReady before FEATURES_OK
  ignoredNotifies: number; // notifies before DRIVER_OK, for a queue not ready, or after NEEDS_RESET
  faults: number; // DEVICE_NEEDS_RESET raised
}

/** One queue's registers and, when it is ready, the device's positions in its rings. */
export interface VirtioQueueState {
  size: number;
  desc: [number, number];
  driver: [number, number];
  device: [number, number];
  /** Set when the queue is ready (QueueReady = 1). */
  indices: QueueIndices | null;
}

/** The transport's migratable state, with the device's own (VirtioDevice.getState) inside. */
export interface VirtioMmioState {
  status: number;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  /** Bigints as hexadecimal strings (plain data survives JSON). */
  driverFeatures: string;
  driverFeaturesUnoffered: boolean;
  negotiated: string;
  queueSel: number;
  interruptStatus: number;
  configGeneration: number;
  queues: VirtioQueueState[];
  device: unknown;
}

interface QueueRegisters {
  size: number;
  desc: [number, number]; // low, high
  driver: [number, number];
  device: [number, number];
  queue: SplitQueue | null;
}

const u64 = (pair: [number, number]): number => pair[0] + pair[1] * 2 ** 32;

export class VirtioMmio implements MmioDevice {
  readonly counters: VirtioMmioCounters = { badAccesses: 0, refusedStatus: 0, ignoredWrites: 0, ignoredNotifies: 0, faults: 0 };
  /** The last reason DEVICE_NEEDS_RESET was set. */
  lastFault: string | null = null;

  private readonly device: VirtioDevice;
  private readonly memory: GuestMemory;
  private readonly irq: IrqLine;
  private readonly log: (message: string) => void;
  private readonly logged = new Set<string>();
  private readonly offered: bigint;
  private readonly queues: QueueRegisters[];

  private status = 0;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  private driverFeaturesUnoffered = false; // a non-zero write to a selector past bit 63
  private negotiated = 0n;
  private queueSel = 0;
  private interruptStatus = 0;
  private configGeneration = 0;
  private link: Link | null = null;

  constructor(opts: VirtioMmioOptions) {
    this.device = opts.device;
    this.memory = opts.memory;
    this.irq = opts.irq;
    this.log = opts.log ?? (() => {});
    this.offered = opts.device.features | TRANSPORT_FEATURES;
    this.queues = opts.device.queueMaxSizes.map((max) => ({ size: max, desc: [0, 0], driver: [0, 0], device: [0, 0], queue: null }));
  }

  /** The device status byte (for tests and the board's diagnostics). */
  get deviceStatus(): number {
    return this.status;
  }

  /** The negotiated features (valid once FEATURES_OK is set). */
  get features(): bigint {
    return this.negotiated;
  }

  read(offset: number, data: Uint8Array): void {
    if (offset >= VIRTIO_MMIO_CONFIG) {
      this.device.readConfig(offset - VIRTIO_MMIO_CONFIG, data);
      return;
    }
    data.fill(0);
    if (data.length !== 4 || offset % 4 !== 0) {
      this.note('badAccesses', 'access', `read of ${data.length} byte(s) at offset 0x${offset.toString(16)}: control registers are 32-bit`);
      return;
    }
    const v = this.readRegister(offset);
    data[0] = v & 0xff;
    data[1] = (v >>> 8) & 0xff;
    data[2] = (v >>> 16) & 0xff;
    data[3] = (v >>> 24) & 0xff;
  }

  write(offset: number, data: Uint8Array): void {
    if (offset >= VIRTIO_MMIO_CONFIG) {
      this.device.writeConfig(offset - VIRTIO_MMIO_CONFIG, data);
      return;
    }
    if (data.length !== 4 || offset % 4 !== 0) {
      this.note('badAccesses', 'access', `write of ${data.length} byte(s) at offset 0x${offset.toString(16)}: control registers are 32-bit`);
      return;
    }
    this.writeRegister(offset, (data[0]! | (data[1]! << 8) | (data[2]! << 16) | (data[3]! << 24)) >>> 0);
  }

  private selected(): QueueRegisters | undefined {
    return this.queues[this.queueSel];
  }

  private readRegister(offset: number): number {
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE: return VIRTIO_MMIO_MAGIC;
      case VIRTIO_MMIO_VERSION: return VIRTIO_MMIO_VERSION_2;
      case VIRTIO_MMIO_DEVICE_ID: return this.device.deviceId;
      case VIRTIO_MMIO_VENDOR_ID: return VIRTIO_MMIO_VENDOR;
      case VIRTIO_MMIO_DEVICE_FEATURES:
        return this.deviceFeaturesSel < 2 ? Number((this.offered >> BigInt(32 * this.deviceFeaturesSel)) & MASK32) : 0;
      case VIRTIO_MMIO_QUEUE_NUM_MAX: return this.device.queueMaxSizes[this.queueSel] ?? 0;
      case VIRTIO_MMIO_QUEUE_READY: return this.selected()?.queue ? 1 : 0;
      case VIRTIO_MMIO_INTERRUPT_STATUS: return this.interruptStatus;
      case VIRTIO_MMIO_STATUS: return this.status;
      case VIRTIO_MMIO_SHM_LEN_LOW:
      case VIRTIO_MMIO_SHM_LEN_HIGH:
      case VIRTIO_MMIO_SHM_BASE_LOW:
      case VIRTIO_MMIO_SHM_BASE_HIGH:
        return 0xffff_ffff; // no shared memory region
      case VIRTIO_MMIO_CONFIG_GENERATION: return this.configGeneration;
      default: return 0; // write-only and reserved registers
    }
  }

  private writeRegister(offset: number, v: number): void {
    switch (offset) {
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL: this.deviceFeaturesSel = v; return;
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL: this.driverFeaturesSel = v; return;
      case VIRTIO_MMIO_DRIVER_FEATURES: this.writeDriverFeatures(v); return;
      case VIRTIO_MMIO_QUEUE_SEL: this.queueSel = v; return;
      case VIRTIO_MMIO_QUEUE_NUM: this.writeQueueRegister((q) => { q.size = v; }); return;
      case VIRTIO_MMIO_QUEUE_DESC_LOW: this.writeQueueRegister((q) => { q.desc[0] = v; }); return;
      case VIRTIO_MMIO_QUEUE_DESC_HIGH: this.writeQueueRegister((q) => { q.desc[1] = v; }); return;
      case VIRTIO_MMIO_QUEUE_DRIVER_LOW: this.writeQueueRegister((q) => { q.driver[0] = v; }); return;
      case VIRTIO_MMIO_QUEUE_DRIVER_HIGH: this.writeQueueRegister((q) => { q.driver[1] = v; }); return;
      case VIRTIO_MMIO_QUEUE_DEVICE_LOW: this.writeQueueRegister((q) => { q.device[0] = v; }); return;
      case VIRTIO_MMIO_QUEUE_DEVICE_HIGH: this.writeQueueRegister((q) => { q.device[1] = v; }); return;
      case VIRTIO_MMIO_QUEUE_READY: this.writeQueueReady(v); return;
      case VIRTIO_MMIO_QUEUE_NOTIFY: this.notify(v); return;
      case VIRTIO_MMIO_INTERRUPT_ACK:
        this.interruptStatus &= ~v;
        this.irq.set(this.interruptStatus !== 0);
        return;
      case VIRTIO_MMIO_STATUS: this.writeStatus(v & 0xff); return;
      default: return; // read-only and reserved registers
    }
  }

  private writeDriverFeatures(v: number): void {
    if (this.status & STATUS_FEATURES_OK) {
      this.note('ignoredWrites', 'features-late', 'driver features written after FEATURES_OK: ignored');
      return;
    }
    if (this.driverFeaturesSel >= 2) {
      if (v !== 0) this.driverFeaturesUnoffered = true;
      return;
    }
    const shift = BigInt(32 * this.driverFeaturesSel);
    this.driverFeatures = (this.driverFeatures & ~(MASK32 << shift)) | (BigInt(v) << shift);
  }

  private writeQueueRegister(set: (q: QueueRegisters) => void): void {
    const q = this.selected();
    if (!q || q.queue) {
      this.note('ignoredWrites', 'queue-reg', `queue register write for queue ${this.queueSel}, which ${q ? 'is ready' : 'does not exist'}: ignored`);
      return;
    }
    set(q);
  }

  private writeQueueReady(v: number): void {
    const q = this.selected();
    if (!q) {
      this.note('ignoredWrites', 'queue-reg', `QueueReady for queue ${this.queueSel}, which does not exist: ignored`);
      return;
    }
    if ((v & 1) === 0) {
      q.queue = null;
      return;
    }
    if (q.queue) return;
    if (!(this.status & STATUS_FEATURES_OK)) {
      this.note('ignoredWrites', 'ready-early', `QueueReady for queue ${this.queueSel} before FEATURES_OK: ignored`);
      return;
    }
    const opened = SplitQueue.open(
      this.memory,
      { size: q.size, desc: u64(q.desc), driver: u64(q.driver), device: u64(q.device) },
      { indirect: this.hasFeature(VIRTIO_F_INDIRECT_DESC), eventIdx: this.hasFeature(VIRTIO_F_EVENT_IDX) },
      this.device.queueMaxSizes[this.queueSel]!,
    );
    if (opened instanceof QueueFault) {
      this.fail(`queue ${this.queueSel}: ${opened.message}`);
      return;
    }
    q.queue = opened;
  }

  private hasFeature(bit: bigint): boolean {
    return (this.negotiated & featureBit(bit)) !== 0n;
  }

  private writeStatus(v: number): void {
    if (v === 0) {
      this.reset();
      return;
    }
    const old = this.status;
    let next = v | (old & STATUS_DEVICE_NEEDS_RESET);
    if (old & ~next) {
      this.note('refusedStatus', 'status-clear', `status write 0x${v.toString(16)} would clear bits of 0x${old.toString(16)}: ignored`);
      return;
    }
    if ((next & STATUS_FEATURES_OK) && !(old & STATUS_FEATURES_OK)) {
      const why = this.featuresRefusal(next);
      if (why) {
        this.note('refusedStatus', 'features', `FEATURES_OK refused: ${why}`);
        next &= ~STATUS_FEATURES_OK;
      } else {
        this.negotiated = this.driverFeatures;
      }
    }
    if ((next & STATUS_DRIVER_OK) && !(old & STATUS_DRIVER_OK) && !(next & STATUS_FEATURES_OK)) {
      this.note('refusedStatus', 'driver-ok', 'DRIVER_OK before FEATURES_OK refused');
      next &= ~STATUS_DRIVER_OK;
    }
    this.status = next;
    if ((next & STATUS_DRIVER_OK) && !(old & STATUS_DRIVER_OK) && !(next & STATUS_DEVICE_NEEDS_RESET)) {
      this.link = new Link(this);
      this.device.activate(this.link);
      this.queues.forEach((q, i) => {
        if (q.queue && this.canNotify()) this.device.notify(i);
      });
    } else if ((next & STATUS_DRIVER_OK) && !(old & STATUS_DRIVER_OK)) {
      this.raise(INTERRUPT_CONFIG_CHANGE); // DEVICE_NEEDS_RESET was set during setup: tell the now live driver
    }
  }

  private featuresRefusal(next: number): string | null {
    if ((next & (STATUS_ACKNOWLEDGE | STATUS_DRIVER)) !== (STATUS_ACKNOWLEDGE | STATUS_DRIVER)) return 'ACKNOWLEDGE and DRIVER are not both set';
    if (this.driverFeaturesUnoffered || (this.driverFeatures & ~this.offered) !== 0n) {
      return `the driver accepted features 0x${(this.driverFeatures & ~this.offered).toString(16)} the device did not offer`;
    }
    if ((this.driverFeatures & featureBit(VIRTIO_F_VERSION_1)) === 0n) return 'VIRTIO_F_VERSION_1 was not accepted';
    return null;
  }

  private canNotify(): boolean {
    return (this.status & (STATUS_DRIVER_OK | STATUS_DEVICE_NEEDS_RESET)) === STATUS_DRIVER_OK;
  }

  private notify(index: number): void {
    if (!this.canNotify() || !this.queues[index]?.queue) {
      this.note('ignoredNotifies', 'notify', `notify of queue ${index} while the device or queue is not live: ignored`);
      return;
    }
    this.device.notify(index);
  }

  private reset(): void {
    if (this.link) this.link.alive = false;
    this.link = null;
    this.device.reset();
    this.status = 0;
    this.deviceFeaturesSel = 0;
    this.driverFeaturesSel = 0;
    this.driverFeatures = 0n;
    this.driverFeaturesUnoffered = false;
    this.negotiated = 0n;
    this.queueSel = 0;
    this.queues.forEach((q, i) => {
      q.size = this.device.queueMaxSizes[i]!;
      q.desc = [0, 0];
      q.driver = [0, 0];
      q.device = [0, 0];
      q.queue = null;
    });
    this.interruptStatus = 0;
    this.irq.set(false);
  }

  private raise(bits: number): void {
    this.interruptStatus |= bits;
    this.irq.set(true);
  }

  /** Called through the device's link. */
  queueAt(index: number): SplitQueue | null {
    return this.queues[index]?.queue ?? null;
  }

  /** Called through the device's link. */
  usedBuffers(index: number): void {
    const q = this.queueAt(index);
    if (q && q.needsNotification() && this.canNotify()) this.raise(INTERRUPT_USED_BUFFER);
  }

  /** Called through the device's link. */
  configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    if (this.status & STATUS_DRIVER_OK) this.raise(INTERRUPT_CONFIG_CHANGE);
  }

  /** Sets DEVICE_NEEDS_RESET (once until reset) and tells a live driver. */
  fail(reason: QueueFault | string): void {
    if (this.status & STATUS_DEVICE_NEEDS_RESET) return;
    const message = typeof reason === 'string' ? reason : reason.message;
    this.lastFault = message;
    this.status |= STATUS_DEVICE_NEEDS_RESET;
    this.note('faults', 'fault', `device needs reset: ${message}`);
    if (this.status & STATUS_DRIVER_OK) this.raise(INTERRUPT_CONFIG_CHANGE);
  }

  /** Whether the driver negotiated `bit` (for the device's link). */
  negotiatedFeature(bit: bigint): boolean {
    return this.hasFeature(bit);
  }

  // ---- snapshot ----

  /** The transport's state and the device's (TSVMM_UNSUPPORTED for a device that has none, TSVMM_BUSY with requests in flight). */
  getState(): VirtioMmioState {
    if (!this.device.getState) throw new TsvmmError('TSVMM_UNSUPPORTED', `virtio device ${this.device.deviceId} cannot save its state`);
    return {
      status: this.status, deviceFeaturesSel: this.deviceFeaturesSel, driverFeaturesSel: this.driverFeaturesSel,
      driverFeatures: this.driverFeatures.toString(16), driverFeaturesUnoffered: this.driverFeaturesUnoffered,
      negotiated: this.negotiated.toString(16), queueSel: this.queueSel, interruptStatus: this.interruptStatus,
      configGeneration: this.configGeneration,
      queues: this.queues.map((q) => ({ size: q.size, desc: [...q.desc], driver: [...q.driver], device: [...q.device], indices: q.queue ? q.queue.indices : null })),
      device: this.device.getState(),
    };
  }

  /**
   * Puts back a saved state on a transport that has not been used (its guest memory holding the
   * saved RAM): the registers, each ready queue opened again over its layout with its indices,
   * the device activated if the driver had set DRIVER_OK, then the device's own state. Nothing
   * is notified: buffers the driver made available are looked at on its next notification, as
   * they would have been. A malformed state is TSVMM_SNAPSHOT_CORRUPT.
   */
  restore(s: VirtioMmioState): void {
    const bad = (what: string): never => { throw new TsvmmError('TSVMM_SNAPSHOT_CORRUPT', `virtio device ${this.device.deviceId}: ${what}`); };
    const u32 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;
    const pair = (v: unknown): v is [number, number] => Array.isArray(v) && v.length === 2 && u32(v[0]) && u32(v[1]);
    const features = (v: unknown): bigint => (typeof v === 'string' && /^[0-9a-f]{1,16}$/.test(v) ? BigInt(`0x${v}`) : bad(`features ${String(v)} are not 64-bit hexadecimal`));
    if (typeof s !== 'object' || s === null) bad('no transport state');
    for (const k of ['status', 'deviceFeaturesSel', 'driverFeaturesSel', 'queueSel', 'interruptStatus', 'configGeneration'] as const) if (!u32(s[k])) bad(`${k} is not a 32-bit number`);
    if (typeof s.driverFeaturesUnoffered !== 'boolean') bad('driverFeaturesUnoffered is not a boolean');
    if (!Array.isArray(s.queues) || s.queues.length !== this.queues.length) bad(`${Array.isArray(s.queues) ? s.queues.length : 'no'} queues saved for ${this.queues.length}`);
    const negotiated = features(s.negotiated);
    if (negotiated & ~this.offered) bad(`negotiated features 0x${s.negotiated} were never offered`);
    this.reset();
    this.status = s.status & 0xff;
    this.deviceFeaturesSel = s.deviceFeaturesSel;
    this.driverFeaturesSel = s.driverFeaturesSel;
    this.driverFeatures = features(s.driverFeatures);
    this.driverFeaturesUnoffered = s.driverFeaturesUnoffered;
    this.negotiated = negotiated;
    this.queueSel = s.queueSel;
    this.configGeneration = s.configGeneration;
    s.queues.forEach((saved, i) => {
      const q = this.queues[i]!;
      if (!u32(saved.size) || !pair(saved.desc) || !pair(saved.driver) || !pair(saved.device)) bad(`queue ${i}'s registers are malformed`);
      q.size = saved.size;
      q.desc = [saved.desc[0], saved.desc[1]];
      q.driver = [saved.driver[0], saved.driver[1]];
      q.device = [saved.device[0], saved.device[1]];
      if (saved.indices === null) return;
      const ix = saved.indices;
      if (typeof ix !== 'object' || !u32(ix.lastAvail) || !u32(ix.usedIdx) || !u32(ix.signalledUsed)) bad(`queue ${i}'s indices are malformed`);
      const opened = SplitQueue.open(
        this.memory,
        { size: q.size, desc: u64(q.desc), driver: u64(q.driver), device: u64(q.device) },
        { indirect: this.hasFeature(VIRTIO_F_INDIRECT_DESC), eventIdx: this.hasFeature(VIRTIO_F_EVENT_IDX) },
        this.device.queueMaxSizes[i]!,
      );
      if (opened instanceof QueueFault) return bad(`queue ${i} was ready but its layout is refused: ${opened.message}`);
      opened.restoreIndices(ix);
      q.queue = opened;
    });
    if ((this.status & STATUS_DRIVER_OK) && !(this.status & STATUS_DEVICE_NEEDS_RESET)) {
      this.link = new Link(this);
      this.device.activate(this.link);
    }
    if (!this.device.restore) return bad('the device cannot restore its state');
    this.device.restore(s.device);
    this.interruptStatus = s.interruptStatus & (INTERRUPT_USED_BUFFER | INTERRUPT_CONFIG_CHANGE);
    this.irq.set(this.interruptStatus !== 0);
  }

  private note(counter: keyof VirtioMmioCounters, kind: string, message: string): void {
    this.counters[counter]++;
    if (this.logged.has(kind)) return;
    this.logged.add(kind);
    this.log(`virtio-mmio (device ${this.device.deviceId}): ${message} (further ones counted, not logged)`);
  }
}

/** The device's handle on the transport for one activation; dead after the next reset. */
class Link implements VirtioLink {
  alive = true;

  constructor(private readonly transport: VirtioMmio) {}

  queue(index: number): SplitQueue | null {
    return this.alive ? this.transport.queueAt(index) : null;
  }

  hasFeature(bit: bigint): boolean {
    return this.alive && this.transport.negotiatedFeature(bit);
  }

  usedBuffers(index: number): void {
    if (this.alive) this.transport.usedBuffers(index);
  }

  configChanged(): void {
    if (this.alive) this.transport.configChanged();
  }

  fail(reason: QueueFault | string): void {
    if (this.alive) this.transport.fail(reason);
  }
}

/**
 * The kernel command-line fragment that declares one virtio-mmio device to a kernel built with
 * CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES (Debian's is not: it reads the DSDT, see acpi-tables.ts):
 * `virtio_mmio.device=<size>@<base>:<irq>`.
 */
export function virtioMmioCmdline(base: number, irq: number, size = VIRTIO_MMIO_SIZE): string {
  return `virtio_mmio.device=0x${size.toString(16)}@0x${base.toString(16)}:${irq}`;
}
