/**
 * virtio-net (virtio 1.2 §5.1): one receive queue and one transmit queue over a NetBackend
 * (devices/net/net-backend.ts: passt, a TAP device, or an in-memory wire).
 *
 * Features offered, and why:
 * - MAC: the card's address comes from the machine's configuration (a stable default per NIC),
 *   so DHCP leases and host-side rules survive reboots; without it Linux picks a random one.
 * - STATUS: the link goes down when the backend ends (passt exited, the TAP failed), and the
 *   guest sees it (a configuration change interrupt, carrier off).
 * - MTU: the host side's MTU (1500 by default, as passt is told too), so the guest neither
 *   sends frames the backend cannot carry nor guesses.
 * Not offered: no offloads at first (CSUM, GUEST_CSUM, the TSO/UFO/USO/ECN family, GUEST_ANNOUNCE,
 * RSC): every frame crosses whole and checksummed, which is all a stream to passt or a plain TAP
 * carries; checksum and segmentation offloads are the next step for throughput. MRG_RXBUF:
 * without offloads and with an MTU of 1500 Linux posts one 1530-byte buffer per frame, which is
 * what merging would save. CTRL_VQ and what needs it (CTRL_RX, CTRL_VLAN, CTRL_MAC_ADDR, MQ,
 * RSS, HASH_REPORT): one queue pair, and the device filters nothing (it delivers every frame the
 * backend gives, as a port in promiscuous mode). SPEED_DUPLEX: nothing true to say.
 *
 * Every buffer starts with struct virtio_net_hdr, 12 bytes with VERSION_1 (§5.1.6): flags,
 * gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers. The device relies on no
 * descriptor layout: header and frame may share or split descriptors anyhow.
 *
 * Transmit (guest to host): each chain is the header and one frame, all device-readable.
 * - A device-writable buffer in a transmit chain: DEVICE_NEEDS_RESET (the driver broke §5.1.6.2).
 * - Too short for the header and an Ethernet header, or a header asking for what was not
 *   negotiated (any flag, a gso_type other than NONE): the frame is dropped and counted
 *   (txErrors); a frame longer than NET_MAX_FRAME is dropped and counted (txOversize). The
 *   chain is returned either way: one bad packet is not a broken device.
 * - The frame goes to the backend (a view of guest RAM when it lies in one buffer, else a copy
 *   in a reused scratch buffer). A backend that says it is full stops the device taking
 *   transmit chains until it says `writable()`; the guest's ring fills and Linux stops its
 *   queue. With the link down (no backend, or it ended) frames are dropped (txDropped).
 * The used length of a transmit chain is 0 (the device writes nothing).
 *
 * Receive (host to guest): each chain is one device-writable buffer area for one frame.
 * - Device-readable buffers in it, or fewer than 12 writable bytes: DEVICE_NEEDS_RESET.
 * - The header is written zero but num_buffers = 1 (§5.1.6.4: without MRG_RXBUF the device
 *   sets it to 1); the frame follows it. The used length is 12 + the frame's length.
 * - A frame longer than the buffer at the head of the ring is dropped (rxTooBig) and the
 *   buffer kept for the next frame (queue.ts unpop()).
 * - No buffer posted: frames wait in a host buffer of `rxBufferBytes` (256 KiB by default) and
 *   go out, in order, when the guest posts buffers; past that bound they are dropped (rxDropped),
 *   as a NIC's FIFO overflows. Before DRIVER_OK and after a reset nothing is held (rxDropped).
 * Once the device has set DEVICE_NEEDS_RESET it touches neither ring until the driver resets it:
 * frames held or arriving meanwhile are dropped (rxDropped), transmit chains wait.
 *
 * Snapshots (getState/restore): the transport saves the negotiated features and the queues; the
 * device adds its MAC and MTU (a restore into a card configured otherwise is refused: the
 * guest's driver read them once), whether it had set DEVICE_NEEDS_RESET, the link status the
 * guest last saw and the counters. Frames held for the guest and a backend's fullness are not
 * saved: the backend is a new one after a restore (a new passt, the TAP opened again by name),
 * so what was in flight is lost as on a cable pulled and plugged back; the guest's TCP
 * retransmits, and connections passt was carrying are gone (the guest sees them reset or time
 * out). With a backend the link is up after a restore; if the guest last saw it down, it is
 * told with a configuration change interrupt at its next notification.
 *
 * Threads: the device runs on the thread of its transport (the vCPU thread that notified); the
 * backend's callbacks must arrive on that same thread.
 */
import { TsvmmError } from '../../common/errors.js';
import { ETH_HLEN, NET_DEFAULT_MTU, NET_MAX_FRAME, type NetBackend, type NetReceiver } from '../net/net-backend.js';
import { VIRTIO_ID_NET, featureBit, readConfigBytes, type VirtioDevice, type VirtioLink } from './device.js';
import { Chain, QueueFault, copyFromSegments, copyToSegments, sliceSegments, type SplitQueue } from './queue.js';

// Feature bits (§5.1.3).
export const VIRTIO_NET_F_CSUM = 0n;
export const VIRTIO_NET_F_GUEST_CSUM = 1n;
export const VIRTIO_NET_F_MTU = 3n;
export const VIRTIO_NET_F_MAC = 5n;
export const VIRTIO_NET_F_MRG_RXBUF = 15n;
export const VIRTIO_NET_F_STATUS = 16n;
export const VIRTIO_NET_F_CTRL_VQ = 17n;

/** status field: the link is up (§5.1.4). */
export const VIRTIO_NET_S_LINK_UP = 1;

/** struct virtio_net_hdr with VERSION_1 (num_buffers included). */
export const VIRTIO_NET_HDR_SIZE = 12;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1; // csum_start/csum_offset say where to checksum (needs CSUM)
export const VIRTIO_NET_HDR_GSO_NONE = 0;
const HDR_FLAGS = 0;
const HDR_GSO_TYPE = 1;
const HDR_NUM_BUFFERS = 10;

/** The largest chain a transmit frame may take, header included (65562: the spec's largest receive buffer). */
export const NET_MAX_BUFFER = VIRTIO_NET_HDR_SIZE + NET_MAX_FRAME;
export const NET_QUEUE_SIZE = 256;
export const NET_RX_QUEUE = 0;
export const NET_TX_QUEUE = 1;
export { NET_DEFAULT_MTU };
/** Linux refuses an MTU below the IPv4 minimum (68); the top leaves room for the Ethernet and a VLAN header. */
export const NET_MIN_MTU = 68;
export const NET_MAX_MTU = NET_MAX_FRAME - ETH_HLEN - 4;
export const NET_RX_BUFFER_BYTES = 256 * 1024;

// Configuration space (struct virtio_net_config, §5.1.4), up to the fields the offered features use.
const CFG_MAC = 0;
const CFG_STATUS = 6;
const CFG_MAX_VIRTQUEUE_PAIRS = 8;
const CFG_MTU = 10;
const CFG_SIZE = 12;

/** Frames and refusals, for the host's diagnostics. */
export interface VirtioNetCounters {
  rxFrames: number;
  rxBytes: number;
  /** Frames dropped for want of a receive buffer: the driver not ready, or the host buffer full. */
  rxDropped: number;
  /** Frames longer than the receive buffer at the head of the ring. */
  rxTooBig: number;
  /** Frames from the backend shorter than an Ethernet header or longer than NET_MAX_FRAME. */
  rxErrors: number;
  txFrames: number;
  txBytes: number;
  /** Transmit chains too short for the headers, or whose header asks for an offload not negotiated. */
  txErrors: number;
  /** Transmit frames longer than NET_MAX_FRAME. */
  txOversize: number;
  /** Transmit frames dropped with the link down. */
  txDropped: number;
}

export interface VirtioNetOptions {
  /** The card's address: 6 bytes, unicast (nic-config.ts parses and defaults it). */
  mac: Uint8Array;
  /** Where frames go and come from; none: the link is down. */
  backend?: NetBackend;
  /** The MTU the guest is told (NET_DEFAULT_MTU by default). */
  mtu?: number;
  /** Bytes of received frames held while the guest has no buffer posted (NET_RX_BUFFER_BYTES by default). */
  rxBufferBytes?: number;
  /** Where notices go (the backend ending); default nowhere. */
  log?: (message: string) => void;
}

type Delivery = 'delivered' | 'dropped' | 'no-buffer' | 'failed';

/** What a snapshot keeps of the device beyond the transport (plain data). */
export interface VirtioNetState {
  /** The card's address, 12 hexadecimal digits, and its MTU: checked against the restoring card's. */
  mac: string;
  mtu: number;
  failed: boolean;
  /** The link status the guest last saw. */
  linkUp: boolean;
  counters: VirtioNetCounters;
}

function corrupt(what: string): never {
  throw new TsvmmError('TSVMM_SNAPSHOT_CORRUPT', `virtio-net: ${what}`);
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export class VirtioNet implements VirtioDevice, NetReceiver {
  readonly deviceId = VIRTIO_ID_NET;
  readonly features = featureBit(VIRTIO_NET_F_MAC) | featureBit(VIRTIO_NET_F_STATUS) | featureBit(VIRTIO_NET_F_MTU);
  readonly queueMaxSizes = [NET_QUEUE_SIZE, NET_QUEUE_SIZE];
  readonly counters: VirtioNetCounters = {
    rxFrames: 0, rxBytes: 0, rxDropped: 0, rxTooBig: 0, rxErrors: 0, txFrames: 0, txBytes: 0, txErrors: 0, txOversize: 0, txDropped: 0,
  };
  readonly mtu: number;
  private readonly config = new Uint8Array(CFG_SIZE);
  private readonly configView = new DataView(this.config.buffer);
  private readonly header = new Uint8Array(VIRTIO_NET_HDR_SIZE);
  private readonly rxHeader = new Uint8Array(VIRTIO_NET_HDR_SIZE);
  private scratch: Uint8Array | null = null; // a transmit frame split across buffers, gathered
  private readonly backend: NetBackend | null;
  private readonly log: (message: string) => void;
  private link: VirtioLink | null = null;
  /** The device set DEVICE_NEEDS_RESET: it touches no ring until the driver resets it. */
  private failed = false;
  private up: boolean;
  /** The backend said it was full; no transmit chain is taken until it says writable(). */
  private backendFull = false;
  /** Received frames waiting for guest buffers (copies), oldest first, and their total size. */
  private readonly pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private readonly rxBufferBytes: number;
  /** Restored with the link up where the guest last saw it down: tell it at the next notification. */
  private announceLink = false;

  constructor(opts: VirtioNetOptions) {
    if (opts.mac.length !== 6 || (opts.mac[0]! & 1) !== 0) throw new RangeError('a NIC address is 6 bytes and unicast');
    const mtu = opts.mtu ?? NET_DEFAULT_MTU;
    if (!Number.isInteger(mtu) || mtu < NET_MIN_MTU || mtu > NET_MAX_MTU) throw new RangeError(`MTU ${mtu} is not an integer from ${NET_MIN_MTU} to ${NET_MAX_MTU}`);
    const rxBufferBytes = opts.rxBufferBytes ?? NET_RX_BUFFER_BYTES;
    if (!Number.isSafeInteger(rxBufferBytes) || rxBufferBytes < 0) throw new RangeError(`receive buffer of ${rxBufferBytes} bytes`);
    this.mtu = mtu;
    this.rxBufferBytes = rxBufferBytes;
    this.backend = opts.backend ?? null;
    this.log = opts.log ?? (() => {});
    this.up = this.backend !== null;
    this.config.set(opts.mac, CFG_MAC);
    this.configView.setUint16(CFG_MAX_VIRTQUEUE_PAIRS, 1, true);
    this.configView.setUint16(CFG_MTU, mtu, true);
    this.writeStatus();
    new DataView(this.rxHeader.buffer).setUint16(HDR_NUM_BUFFERS, 1, true);
    this.backend?.attach(this);
  }

  /** The address the guest reads. */
  get mac(): Uint8Array {
    return this.config.slice(CFG_MAC, CFG_MAC + 6);
  }

  get linkUp(): boolean {
    return this.up;
  }

  /** Frames held for the guest (received while it had no buffer posted). */
  get rxPending(): number {
    return this.pending.length;
  }

  /** Sets the link status the guest sees (a configuration change interrupt when it is live). */
  setLinkUp(up: boolean): void {
    if (up === this.up) return;
    this.up = up;
    this.writeStatus();
    this.link?.configChanged();
  }

  private writeStatus(): void {
    this.configView.setUint16(CFG_STATUS, this.up ? VIRTIO_NET_S_LINK_UP : 0, true);
  }

  readConfig(offset: number, data: Uint8Array): void {
    readConfigBytes(this.config, offset, data);
  }

  writeConfig(): void {} // modern drivers write nothing here without CTRL_MAC_ADDR

  activate(link: VirtioLink): void {
    this.link = link;
  }

  reset(): void {
    this.link = null;
    this.failed = false;
    this.counters.rxDropped += this.pending.length;
    this.pending.length = 0;
    this.pendingBytes = 0;
  }

  notify(index: number): void {
    if (this.announceLink) {
      this.announceLink = false;
      this.link?.configChanged();
    }
    if (index === NET_RX_QUEUE) this.flushPending();
    else if (index === NET_TX_QUEUE) this.transmit();
  }

  // --- snapshot ---

  getState(): VirtioNetState {
    return { mac: hex(this.mac), mtu: this.mtu, failed: this.failed, linkUp: this.up, counters: { ...this.counters } };
  }

  /** After the transport restored the queues (and activated the device if the driver had): the rest; held frames start empty. */
  restore(state: unknown): void {
    const s = state as VirtioNetState;
    if (typeof s !== 'object' || s === null || typeof s.failed !== 'boolean' || typeof s.linkUp !== 'boolean') corrupt('the state is malformed');
    if (s.mac !== hex(this.mac)) corrupt(`the card was saved with address ${String(s.mac)}, and is configured with ${hex(this.mac)}`);
    if (s.mtu !== this.mtu) corrupt(`the card was saved with MTU ${String(s.mtu)}, and is configured with ${this.mtu}`);
    const c = s.counters as unknown as Record<string, unknown>;
    if (typeof c !== 'object' || c === null) corrupt('no counters');
    for (const k of Object.keys(this.counters) as (keyof VirtioNetCounters)[]) {
      const v = c[k];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) corrupt(`counter ${k} is malformed`);
      this.counters[k] = v;
    }
    this.failed = s.failed;
    this.pending.length = 0;
    this.pendingBytes = 0;
    this.backendFull = false;
    // The guest's view until it is told otherwise: the new backend's, announced if it differs.
    this.announceLink = this.up !== s.linkUp && this.link !== null;
  }

  // --- NetReceiver: what the backend calls ---

  /** A frame from the backend: into a guest buffer now, into the bounded host buffer, or dropped. */
  frame(frame: Uint8Array): void {
    if (frame.length < ETH_HLEN || frame.length > NET_MAX_FRAME) {
      this.counters.rxErrors++;
      return;
    }
    const link = this.live();
    const queue = link?.queue(NET_RX_QUEUE);
    if (!link || !queue) {
      this.counters.rxDropped++;
      return;
    }
    if (this.pending.length > 0) this.flushPending();
    if (this.failed) {
      this.counters.rxDropped++;
      return;
    }
    if (this.pending.length === 0) {
      const r = this.deliver(link, queue, frame);
      if (r === 'delivered') link.usedBuffers(NET_RX_QUEUE);
      if (r !== 'no-buffer') return;
    }
    if (this.pendingBytes + frame.length > this.rxBufferBytes) {
      this.counters.rxDropped++;
      return;
    }
    this.pending.push(new Uint8Array(frame)); // a copy even of a Buffer (whose slice() is a view)
    this.pendingBytes += frame.length;
  }

  writable(): void {
    if (!this.backendFull) return;
    this.backendFull = false;
    this.transmit();
  }

  closed(reason: string | null): void {
    if (reason !== null) this.log(`virtio-net: ${this.backend?.description ?? 'backend'} ended: ${reason}; link down`);
    this.backendFull = false;
    this.setLinkUp(false);
    this.transmit(); // chains held back for a full backend are returned, their frames dropped
  }

  /** The link while the device may use its rings. */
  private live(): VirtioLink | null {
    return this.failed ? null : this.link;
  }

  private fail(link: VirtioLink, reason: QueueFault | string): void {
    this.failed = true;
    this.counters.rxDropped += this.pending.length;
    this.pending.length = 0;
    this.pendingBytes = 0;
    link.fail(reason);
  }

  // --- receive ---

  /** Moves held frames into the buffers the guest posted, in order. */
  private flushPending(): void {
    const link = this.live();
    const queue = link?.queue(NET_RX_QUEUE);
    if (!link || !queue) return;
    let delivered = false;
    while (this.pending.length > 0) {
      const frame = this.pending[0]!;
      const r = this.deliver(link, queue, frame);
      if (r === 'no-buffer') break;
      if (r === 'failed') return;
      delivered ||= r === 'delivered';
      this.pending.shift();
      this.pendingBytes -= frame.length;
    }
    if (delivered) link.usedBuffers(NET_RX_QUEUE);
  }

  private deliver(link: VirtioLink, queue: SplitQueue, frame: Uint8Array): Delivery {
    const chain = queue.pop();
    if (chain === null) return 'no-buffer';
    if (chain instanceof QueueFault) {
      this.fail(link, chain);
      return 'failed';
    }
    if (chain.readableLength > 0 || chain.writableLength < VIRTIO_NET_HDR_SIZE) {
      this.fail(link, `receive chain at descriptor ${chain.head} has ${chain.readableLength} device-readable and ${chain.writableLength} device-writable bytes; it needs only writable ones, at least ${VIRTIO_NET_HDR_SIZE}`);
      return 'failed';
    }
    if (chain.writableLength < VIRTIO_NET_HDR_SIZE + frame.length) {
      queue.unpop();
      this.counters.rxTooBig++;
      return 'dropped';
    }
    copyToSegments(chain.writable, 0, this.rxHeader);
    copyToSegments(chain.writable, VIRTIO_NET_HDR_SIZE, frame);
    queue.push(chain.head, VIRTIO_NET_HDR_SIZE + frame.length);
    this.counters.rxFrames++;
    this.counters.rxBytes += frame.length;
    return 'delivered';
  }

  // --- transmit ---

  private transmit(): void {
    const link = this.live();
    const queue = link?.queue(NET_TX_QUEUE);
    if (!link || !queue) return;
    let returned = false;
    while (!this.backendFull) {
      const chain = queue.pop();
      if (chain === null) break;
      if (chain instanceof QueueFault) {
        this.fail(link, chain);
        return;
      }
      if (chain.writableLength > 0) {
        this.fail(link, `transmit chain at descriptor ${chain.head} has ${chain.writableLength} device-writable bytes`);
        return;
      }
      this.send(chain);
      queue.push(chain.head, 0);
      returned = true;
    }
    if (returned) link.usedBuffers(NET_TX_QUEUE);
  }

  /** Checks one transmit chain and hands its frame to the backend, or counts why not. */
  private send(chain: Chain): void {
    const length = chain.readableLength - VIRTIO_NET_HDR_SIZE;
    if (length < ETH_HLEN) {
      this.counters.txErrors++;
      return;
    }
    if (length > NET_MAX_FRAME) {
      this.counters.txOversize++;
      return;
    }
    copyFromSegments(chain.readable, 0, this.header);
    if (this.header[HDR_FLAGS] !== 0 || this.header[HDR_GSO_TYPE] !== VIRTIO_NET_HDR_GSO_NONE) {
      this.counters.txErrors++;
      return;
    }
    if (!this.up || !this.backend) {
      this.counters.txDropped++;
      return;
    }
    const parts = sliceSegments(chain.readable, VIRTIO_NET_HDR_SIZE, length);
    let frame: Uint8Array;
    if (parts.length === 1) {
      frame = parts[0]!;
    } else {
      this.scratch ??= new Uint8Array(NET_MAX_FRAME);
      copyFromSegments(parts, 0, this.scratch.subarray(0, length));
      frame = this.scratch.subarray(0, length);
    }
    this.counters.txFrames++;
    this.counters.txBytes += length;
    if (!this.backend.send(frame)) this.backendFull = true;
  }
}
