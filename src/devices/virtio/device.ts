/**
 * What a virtio device type (network, block, console, entropy) and a transport (virtio-mmio.ts) know of
 * each other. The transport owns the status machine, feature negotiation, the queues' layout and
 * the interrupt; the device owns its configuration space and what its queues' buffers mean.
 *
 * Life of a device, as the transport drives it:
 *   reset()  ... activate(link) at DRIVER_OK ... notify(q) per QueueNotify ... reset()
 * Between activate() and reset() the device takes chains from `link.queue(q)`, returns them
 * with `queue.push()` and tells the transport with `link.usedBuffers(q)` (which interrupts if
 * the driver wants). A malformed chain or a request it cannot even complete is `link.fail()`:
 * DEVICE_NEEDS_RESET, and the device is left alone until the driver resets it.
 */
import type { QueueFault, SplitQueue } from './queue.js';

/** Device IDs (virtio 1.2 §5). */
export const VIRTIO_ID_NET = 1;
export const VIRTIO_ID_BLOCK = 2;
export const VIRTIO_ID_CONSOLE = 3;
export const VIRTIO_ID_RNG = 4;

/** Reserved feature bits the transport handles (§6). */
export const VIRTIO_F_INDIRECT_DESC = 28n; // descriptors may point to a table of descriptors
export const VIRTIO_F_EVENT_IDX = 29n; // used_event / avail_event notification suppression
export const VIRTIO_F_VERSION_1 = 32n; // compliant with virtio 1.x (required of modern MMIO)

export const featureBit = (bit: bigint): bigint => 1n << bit;

export interface VirtioLink {
  /** The queue `index` as the driver set it up, or null if it is not ready. */
  queue(index: number): SplitQueue | null;
  /** Whether the driver negotiated a feature (a bit number). */
  hasFeature(bit: bigint): boolean;
  /** Used buffers were pushed on queue `index`: the transport interrupts if the driver wants it. */
  usedBuffers(index: number): void;
  /** The configuration space changed: ConfigGeneration moves and the driver is interrupted. */
  configChanged(): void;
  /** The device cannot go on (a malformed chain): DEVICE_NEEDS_RESET. */
  fail(reason: QueueFault | string): void;
}

export interface VirtioDevice {
  readonly deviceId: number;
  /** Device-type feature bits offered (bits 0-23); the transport adds its own. */
  readonly features: bigint;
  /** The largest size of each queue; the number of entries is the number of queues. */
  readonly queueMaxSizes: readonly number[];
  /** Device configuration space reads and writes (offsets from the start of the space). */
  readConfig(offset: number, data: Uint8Array): void;
  writeConfig(offset: number, data: Uint8Array): void;
  /** The driver set DRIVER_OK: the device may now use its queues through `link`. */
  activate(link: VirtioLink): void;
  /** The driver notified queue `index` (only between activate() and reset()). */
  notify(index: number): void;
  /** Back to the state before activate(): forget queues, requests and negotiated features. */
  reset(): void;
  /**
   * The device's own state beyond the transport's (plain data, for a snapshot). Requests still
   * in flight cannot be saved: TSVMM_BUSY. A device without it cannot be snapshotted.
   */
  getState?(): unknown;
  /**
   * Puts back what getState returned, after the transport restored its registers and queues and
   * activated the device again if the driver had; a malformed state is TSVMM_SNAPSHOT_CORRUPT.
   */
  restore?(state: unknown): void;
}

/** Reads a little-endian configuration structure: bytes [offset, offset + data.length) of `space`, zeros past its end. */
export function readConfigBytes(space: Uint8Array, offset: number, data: Uint8Array): void {
  data.fill(0);
  if (offset < 0 || offset >= space.length) return;
  data.set(space.subarray(offset, Math.min(space.length, offset + data.length)));
}
