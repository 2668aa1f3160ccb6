/**
 * virtio-blk (virtio 1.2 §5.2): one request queue over a BlockBackend (block-backend.ts).
 *
 * Features offered, and why:
 * - SEG_MAX (seg_max = queue size - 2): without it Linux puts one segment in a request. The
 *   queue has 1024 entries so that seg_max (1022) is well above the 256 pages of a 1 MiB buffer:
 *   with a 256-entry queue (seg_max 254) Linux split a third of dd's 1 MiB O_DIRECT writes in
 *   two. (An indirect table may be as long as the queue, queue.ts; a request costs host memory
 *   in proportion, 2 views per entry at most.)
 * - BLK_SIZE (512): the logical block size the guest should use, said outright.
 * - FLUSH: the backend caches (the host page cache), so the guest must send flushes; Linux
 *   then treats the disk as a write-back cache and sends FLUSH for fsync and barriers.
 * - DISCARD and WRITE_ZEROES (writable disks only): holes punched in the image file, so a guest
 *   fstrim or mkfs gives the space back to the host.
 * - RO (read-only disks): the guest mounts read-only; writes fail anyway.
 * Not offered: MQ (one queue is enough at this I/O rate, and requests are served on the thread
 * of the vCPU that notified), GEOMETRY and TOPOLOGY (nothing to say), CONFIG_WCE (the cache mode
 * is fixed), SIZE_MAX (no segment size limit), lifetime, secure erase, zoned.
 *
 * A request is the 16-byte header (type, reserved, sector) in device-readable memory, then
 * data, then the status byte as the last device-writable byte (§5.2.6). The device relies on
 * no descriptor layout (VIRTIO_F_VERSION_1 implies ANY_LAYOUT): it reads the header across
 * readable buffers and takes the status from the end of the writable ones.
 * - No writable byte for the status: the request cannot be completed, DEVICE_NEEDS_RESET.
 * - A header not all readable, data in the wrong direction for the type (readable data on a
 *   read, writable data on a write), data not a whole number of sectors, a range past the
 *   capacity, too many or too large discard/write-zeroes segments: VIRTIO_BLK_S_IOERR.
 * - Unknown types, DISCARD/WRITE_ZEROES not negotiated, unknown segment flags, UNMAP on a
 *   DISCARD: VIRTIO_BLK_S_UNSUPP (§5.2.6.2).
 * - Writes to a read-only disk: VIRTIO_BLK_S_IOERR, nothing written (§5.2.6.2).
 * The used length is the bytes written into the chain: data and status for IN and GET_ID, the
 * status byte otherwise.
 *
 * Completion: a backend outcome that is a Promise is posted when it settles (block-backend.ts);
 * a completion arriving after a reset or after the queue was torn down is dropped.
 */
import { TsvmmError } from '../../common/errors.js';
import type { BlockBackend, BlockCompletion, BlockOutcome } from './block-backend.js';
import { SECTOR_SIZE } from './block-backend.js';
import { VIRTIO_ID_BLOCK, featureBit, readConfigBytes, type VirtioDevice, type VirtioLink } from './device.js';
import { Chain, QueueFault, copyFromSegments, copyToSegments, sliceSegments, type SplitQueue } from './queue.js';

// Feature bits (§5.2.3).
export const VIRTIO_BLK_F_SIZE_MAX = 1n;
export const VIRTIO_BLK_F_SEG_MAX = 2n;
export const VIRTIO_BLK_F_RO = 5n;
export const VIRTIO_BLK_F_BLK_SIZE = 6n;
export const VIRTIO_BLK_F_FLUSH = 9n;
export const VIRTIO_BLK_F_DISCARD = 13n;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14n;

// Request types (§5.2.6).
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;

// Status values.
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

/** Discard / write-zeroes segment flag: the range may be deallocated. */
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

export const VIRTIO_BLK_ID_BYTES = 20;
export const BLK_QUEUE_SIZE = 1024;
export const BLK_SEG_MAX = BLK_QUEUE_SIZE - 2; // the header and the status take a descriptor each
export const BLK_MAX_DISCARD_SECTORS = 1 << 22; // 2 GiB per segment
export const BLK_MAX_DISCARD_SEG = 16;
export const BLK_DISCARD_ALIGNMENT = 8; // sectors: 4 KiB, the usual filesystem block of the image
const HEADER_SIZE = 16;
const SEGMENT_SIZE = 16;

// Configuration space offsets (struct virtio_blk_config, §5.2.4).
const CFG_CAPACITY = 0;
const CFG_SEG_MAX = 12;
const CFG_BLK_SIZE = 20;
const CFG_MAX_DISCARD_SECTORS = 36;
const CFG_MAX_DISCARD_SEG = 40;
const CFG_DISCARD_SECTOR_ALIGNMENT = 44;
const CFG_MAX_WRITE_ZEROES_SECTORS = 48;
const CFG_MAX_WRITE_ZEROES_SEG = 52;
const CFG_WRITE_ZEROES_MAY_UNMAP = 56;
const CFG_SIZE = 60;

const STATUS_OF: Record<BlockOutcome, number> = { ok: VIRTIO_BLK_S_OK, 'io-error': VIRTIO_BLK_S_IOERR, unsupported: VIRTIO_BLK_S_UNSUPP };

/** Requests served, by outcome, for the host's diagnostics. */
export interface VirtioBlkCounters {
  requests: number;
  ok: number;
  ioerr: number;
  unsupp: number;
}

export class VirtioBlk implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_BLOCK;
  readonly features: bigint;
  readonly queueMaxSizes = [BLK_QUEUE_SIZE];
  readonly counters: VirtioBlkCounters = { requests: 0, ok: 0, ioerr: 0, unsupp: 0 };
  private readonly config = new Uint8Array(CFG_SIZE);
  private readonly header = new Uint8Array(HEADER_SIZE);
  private readonly headerView = new DataView(this.header.buffer);
  private readonly segment = new Uint8Array(SEGMENT_SIZE);
  private readonly segmentView = new DataView(this.segment.buffer);
  private readonly id = new Uint8Array(VIRTIO_BLK_ID_BYTES); // the serial, zero-padded
  private link: VirtioLink | null = null;
  /** Requests whose backend completion has not settled yet. */
  private inFlight = 0;

  constructor(readonly backend: BlockBackend) {
    this.id.set(new TextEncoder().encode(backend.id).subarray(0, VIRTIO_BLK_ID_BYTES));
    let f = featureBit(VIRTIO_BLK_F_SEG_MAX) | featureBit(VIRTIO_BLK_F_BLK_SIZE) | featureBit(VIRTIO_BLK_F_FLUSH);
    f |= backend.readOnly ? featureBit(VIRTIO_BLK_F_RO) : featureBit(VIRTIO_BLK_F_DISCARD) | featureBit(VIRTIO_BLK_F_WRITE_ZEROES);
    this.features = f;
    const c = new DataView(this.config.buffer);
    const sectors = backend.size / SECTOR_SIZE;
    c.setUint32(CFG_CAPACITY, sectors % 2 ** 32, true);
    c.setUint32(CFG_CAPACITY + 4, Math.floor(sectors / 2 ** 32), true);
    c.setUint32(CFG_SEG_MAX, BLK_SEG_MAX, true);
    c.setUint32(CFG_BLK_SIZE, SECTOR_SIZE, true);
    c.setUint32(CFG_MAX_DISCARD_SECTORS, BLK_MAX_DISCARD_SECTORS, true);
    c.setUint32(CFG_MAX_DISCARD_SEG, BLK_MAX_DISCARD_SEG, true);
    c.setUint32(CFG_DISCARD_SECTOR_ALIGNMENT, BLK_DISCARD_ALIGNMENT, true);
    c.setUint32(CFG_MAX_WRITE_ZEROES_SECTORS, BLK_MAX_DISCARD_SECTORS, true);
    c.setUint32(CFG_MAX_WRITE_ZEROES_SEG, BLK_MAX_DISCARD_SEG, true);
    c.setUint8(CFG_WRITE_ZEROES_MAY_UNMAP, 1);
  }

  readConfig(offset: number, data: Uint8Array): void {
    readConfigBytes(this.config, offset, data);
  }

  writeConfig(): void {} // every field is read-only without CONFIG_WCE

  activate(link: VirtioLink): void {
    this.link = link;
  }

  reset(): void {
    this.link = null;
  }

  /**
   * Nothing beyond the transport's once every request has completed (the image holds the data);
   * with requests in flight the state cannot be saved yet: TSVMM_BUSY.
   */
  getState(): Record<string, never> {
    if (this.inFlight > 0) throw new TsvmmError('TSVMM_BUSY', `virtio-blk ${this.backend.id}: ${this.inFlight} requests in flight; save again when they complete`);
    return {};
  }

  restore(): void {}

  notify(index: number): void {
    const link = this.link;
    const queue = link?.queue(index);
    if (!link || !queue || index !== 0) return;
    for (;;) {
      const chain = queue.pop();
      if (chain === null) break;
      if (chain instanceof QueueFault) {
        link.fail(chain);
        return;
      }
      if (chain.writableLength < 1) {
        link.fail(`request at descriptor ${chain.head} has no device-writable status byte`);
        return;
      }
      this.serve(link, queue, chain);
    }
    link.usedBuffers(0);
  }

  /** Serves one request; its completion is posted now or when the backend's Promise settles. */
  private serve(link: VirtioLink, queue: SplitQueue, chain: Chain): void {
    this.counters.requests++;
    const status = sliceSegments(chain.writable, chain.writableLength - 1, 1)[0]!;
    const dataIn = chain.writableLength - 1; // device-writable bytes before the status
    const complete = (s: number, written: number): void => {
      if (s === VIRTIO_BLK_S_OK) this.counters.ok++;
      else if (s === VIRTIO_BLK_S_IOERR) this.counters.ioerr++;
      else this.counters.unsupp++;
      status[0] = s;
      queue.push(chain.head, written);
    };
    const result = this.execute(link, chain, dataIn);
    if (typeof result === 'number') {
      complete(result, 1);
      return;
    }
    const [outcome, written] = result;
    if (typeof outcome === 'string') {
      complete(STATUS_OF[outcome], outcome === 'ok' ? written : 1);
      return;
    }
    this.inFlight++;
    outcome.then(
      (o) => { this.inFlight--; this.completeLater(link, queue, () => complete(STATUS_OF[o], o === 'ok' ? written : 1)); },
      () => { this.inFlight--; this.completeLater(link, queue, () => complete(VIRTIO_BLK_S_IOERR, 1)); },
    );
  }

  /** Posts a completion that arrived after notify() returned, unless the device was reset or the queue torn down since. */
  private completeLater(link: VirtioLink, queue: SplitQueue, post: () => void): void {
    if (link.queue(0) !== queue) return;
    post();
    link.usedBuffers(0);
  }

  /**
   * Checks the request and starts it: a status number when it is refused before the backend,
   * else the backend's completion with the bytes the request writes into the chain on success.
   */
  private execute(link: VirtioLink, chain: Chain, dataIn: number): number | [BlockCompletion, number] {
    if (copyFromSegments(chain.readable, 0, this.header) < HEADER_SIZE) return VIRTIO_BLK_S_IOERR;
    const type = this.headerView.getUint32(0, true);
    const sectorLow = this.headerView.getUint32(8, true);
    const sectorHigh = this.headerView.getUint32(12, true);
    const dataOut = chain.readableLength - HEADER_SIZE; // device-readable bytes after the header
    const b = this.backend;
    switch (type) {
      case VIRTIO_BLK_T_IN: {
        if (dataOut !== 0) return VIRTIO_BLK_S_IOERR;
        const offset = this.checkRange(sectorLow, sectorHigh, dataIn);
        if (offset < 0) return VIRTIO_BLK_S_IOERR;
        return [b.read(offset, sliceSegments(chain.writable, 0, dataIn)), dataIn + 1];
      }
      case VIRTIO_BLK_T_OUT: {
        if (dataIn !== 0 || b.readOnly) return VIRTIO_BLK_S_IOERR;
        const offset = this.checkRange(sectorLow, sectorHigh, dataOut);
        if (offset < 0) return VIRTIO_BLK_S_IOERR;
        return [b.write(offset, sliceSegments(chain.readable, HEADER_SIZE, dataOut)), 1];
      }
      case VIRTIO_BLK_T_FLUSH:
        return [b.flush(), 1];
      case VIRTIO_BLK_T_GET_ID: {
        const id = this.id.subarray(0, Math.min(VIRTIO_BLK_ID_BYTES, dataIn));
        copyToSegments(chain.writable, 0, id);
        return ['ok', id.length + 1];
      }
      case VIRTIO_BLK_T_DISCARD:
      case VIRTIO_BLK_T_WRITE_ZEROES:
        return this.discardOrZero(link, chain, type, dataIn);
      default:
        return VIRTIO_BLK_S_UNSUPP;
    }
  }

  private discardOrZero(link: VirtioLink, chain: Chain, type: number, dataIn: number): number | [BlockCompletion, number] {
    const zeroes = type === VIRTIO_BLK_T_WRITE_ZEROES;
    if (!link.hasFeature(zeroes ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD)) return VIRTIO_BLK_S_UNSUPP;
    const bytes = chain.readableLength - HEADER_SIZE;
    if (dataIn !== 0 || this.backend.readOnly || bytes === 0 || bytes % SEGMENT_SIZE !== 0 || bytes / SEGMENT_SIZE > BLK_MAX_DISCARD_SEG) {
      return VIRTIO_BLK_S_IOERR;
    }
    // Check every segment before acting on any.
    const ranges: [number, number, boolean][] = [];
    for (let at = HEADER_SIZE; at < chain.readableLength; at += SEGMENT_SIZE) {
      copyFromSegments(chain.readable, at, this.segment);
      const v = this.segmentView;
      const sectors = v.getUint32(8, true);
      const flags = v.getUint32(12, true);
      if (flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) return VIRTIO_BLK_S_UNSUPP;
      if (!zeroes && flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) return VIRTIO_BLK_S_UNSUPP;
      if (sectors > BLK_MAX_DISCARD_SECTORS) return VIRTIO_BLK_S_IOERR;
      const offset = this.checkRange(v.getUint32(0, true), v.getUint32(4, true), sectors * SECTOR_SIZE);
      if (offset < 0) return VIRTIO_BLK_S_IOERR;
      ranges.push([offset, sectors * SECTOR_SIZE, (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0]);
    }
    const results = ranges.map(([offset, length, unmap]) => (zeroes ? this.backend.writeZeroes(offset, length, unmap) : this.backend.discard(offset, length)));
    return [combine(results), 1];
  }

  /** The byte offset of a sector range, or -1 unless it is whole sectors inside the disk. */
  private checkRange(sectorLow: number, sectorHigh: number, length: number): number {
    if (length % SECTOR_SIZE !== 0 || sectorHigh >= 2 ** 20) return -1; // 2^52 sectors is far past any disk
    const offset = (sectorLow + sectorHigh * 2 ** 32) * SECTOR_SIZE;
    return Number.isSafeInteger(offset + length) && offset + length <= this.backend.size ? offset : -1;
  }
}

/** One outcome for several operations: the first failure, once all have finished. */
function combine(results: BlockCompletion[]): BlockCompletion {
  const worst = (os: BlockOutcome[]): BlockOutcome => os.find((o) => o !== 'ok') ?? 'ok';
  if (results.every((r): r is BlockOutcome => typeof r === 'string')) return worst(results);
  return Promise.all(results).then(worst);
}
