/**
 * virtio-rng, the entropy device (virtio 1.2 §5.4): one request queue of device-writable
 * buffers that the device fills with random bytes from the host's CSPRNG (node:crypto), no
 * configuration space, no feature bits.
 *
 * Bounded: at most RNG_MAX_BYTES_PER_REQUEST bytes go into one chain (the spec lets the device
 * use less than the whole buffer, and the used length says how much); Linux asks for a few
 * dozen bytes at a time. A chain with a device-readable buffer, or with nothing writable, is
 * not a request this device understands: DEVICE_NEEDS_RESET.
 */
import { randomFillSync } from 'node:crypto';
import { VIRTIO_ID_RNG, type VirtioDevice, type VirtioLink } from './device.js';
import { QueueFault } from './queue.js';

export const RNG_QUEUE_SIZE = 64;
export const RNG_MAX_BYTES_PER_REQUEST = 4096;

/** Where the random bytes come from (the host CSPRNG unless a test says otherwise). */
export type RandomSource = (into: Uint8Array) => void;

export class VirtioRng implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_RNG;
  readonly features = 0n;
  readonly queueMaxSizes = [RNG_QUEUE_SIZE];
  /** Random bytes handed to the guest. */
  bytesServed = 0;
  private link: VirtioLink | null = null;
  private readonly fill: RandomSource;

  constructor(opts: { source?: RandomSource } = {}) {
    this.fill = opts.source ?? ((into) => { randomFillSync(into); });
  }

  readConfig(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  writeConfig(): void {}

  activate(link: VirtioLink): void {
    this.link = link;
  }

  reset(): void {
    this.link = null;
  }

  /** Nothing beyond the transport's: requests are served as they come. */
  getState(): Record<string, never> {
    return {};
  }

  restore(): void {}

  notify(index: number): void {
    const link = this.link;
    const queue = link?.queue(index);
    if (!link || !queue) return;
    for (;;) {
      const chain = queue.pop();
      if (chain === null) break;
      if (chain instanceof QueueFault) {
        link.fail(chain);
        return;
      }
      if (chain.readableLength > 0 || chain.writableLength === 0) {
        link.fail(`entropy request at descriptor ${chain.head} has ${chain.readableLength} device-readable and ${chain.writableLength} device-writable bytes; it needs only writable ones`);
        return;
      }
      let left = RNG_MAX_BYTES_PER_REQUEST;
      for (const buffer of chain.writable) {
        if (left === 0) break;
        const part = buffer.length <= left ? buffer : buffer.subarray(0, left);
        this.fill(part);
        left -= part.length;
      }
      const written = RNG_MAX_BYTES_PER_REQUEST - left;
      this.bytesServed += written;
      queue.push(chain.head, written);
    }
    link.usedBuffers(index);
  }
}
