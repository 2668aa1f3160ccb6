/**
 * A TAP device of the host as the network under a NIC (`--nic tap,ifname=NAME`): the guest's
 * frames come out of the host's interface NAME, and what the host sends through NAME reaches
 * the guest, so the guest joins whatever NAME is attached to (a bridge, routes, a namespace).
 *
 * Opening (Linux's Documentation/networking/tuntap.rst): open /dev/net/tun, then TUNSETIFF with
 * the name and IFF_TAP | IFF_NO_PI (Ethernet frames, no 4-byte packet-information prefix; no
 * IFF_VNET_HDR, as the device offers no offloads). That attaches to an existing persistent TAP
 * the user may use (`ip tuntap add dev NAME mode tap user USER`), or creates NAME, which needs
 * CAP_NET_ADMIN; a TAP created here goes away when it is closed. Refusals:
 * - /dev/net/tun or TUNSETIFF not permitted: TSVMM_NET_PERMISSION, saying what would allow it;
 * - /dev/net/tun missing, NAME busy (attached by another process) or not a TAP: TSVMM_NET_BACKEND.
 *
 * I/O: the descriptor is non-blocking. Reading: poll(2) for it (and for an eventfd that close()
 * signals) runs on one of koffi's worker threads, so the event loop never blocks; once it returns,
 * frames are read here until EAGAIN, at most READ_BATCH before the event loop gets a turn. Each
 * read returns one frame, read into one buffer of NET_MAX_FRAME + 1 bytes (a longer frame shows
 * as oversized and the device drops it). Writing: write(2) takes one whole frame or fails at
 * once; a failure (the interface is down: EIO; its queue is full: EAGAIN) drops the frame and is
 * counted, as a NIC drops on a dead link. send() never asks the device to wait: a TAP does not
 * hold frames.
 */
import { SyscallError, TsvmmError, errnoName } from '../../common/errors.js';
import * as libc from '../../common/libc.js';
import { checkIfname } from './nic-config.js';
import { NET_MAX_FRAME, type NetBackend, type NetReceiver } from './net-backend.js';

export const TUN_DEVICE = '/dev/net/tun';
// <linux/if_tun.h>
const TUNSETIFF = 0x400454ca; // _IOW('T', 202, int)
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
// struct ifreq: char ifr_name[IFNAMSIZ]; then a union whose first short is ifr_flags.
const IFREQ_SIZE = 40;
const IFR_FLAGS = 16;
// struct pollfd: int fd; short events; short revents.
const POLLFD_SIZE = 8;
const POLLIN = 1;
/** Frames read before the event loop gets a turn. */
const READ_BATCH = 64;
const EPERM = 1;
const EACCES = 13;
const ENOENT = 2;

export interface TapOptions {
  ifname: string;
  /** The clone device (TUN_DEVICE unless a test says otherwise). */
  device?: string;
}

/** Frames the host side refused, for diagnostics. */
export interface TapCounters {
  writeErrors: number;
  lastWriteErrno: number;
}

export class TapBackend implements NetBackend {
  readonly description: string;
  readonly counters: TapCounters = { writeErrors: 0, lastWriteErrno: 0 };
  private receiver: NetReceiver | null = null;
  private ended = false;
  private readonly buffer = new Uint8Array(NET_MAX_FRAME + 1);
  private readonly reading: Promise<void>;

  private constructor(readonly ifname: string, private readonly fd: number, private readonly wake: number) {
    this.description = `tap ${ifname}`;
    this.reading = this.readLoop();
  }

  /** Opens (attaching to or creating) the TAP interface `ifname`. */
  static open(opts: TapOptions): TapBackend {
    const ifname = checkIfname(opts.ifname);
    const device = opts.device ?? TUN_DEVICE;
    const fd = libc.open(device, libc.O_RDWR | libc.O_CLOEXEC | libc.O_NONBLOCK);
    if (fd < 0) {
      const errno = libc.lastErrno();
      if (errno === EACCES || errno === EPERM) {
        throw new TsvmmError('TSVMM_NET_PERMISSION', `${device} is not accessible (${errnoName(errno)}): a TAP NIC needs read-write access to it`, { device, errno });
      }
      const why = errno === ENOENT ? 'does not exist (is the tun module loaded?)' : `cannot be opened (${errnoName(errno)})`;
      throw new TsvmmError('TSVMM_NET_BACKEND', `${device} ${why}`, { device, errno });
    }
    const ifr = new Uint8Array(IFREQ_SIZE);
    new TextEncoder().encodeInto(ifname, ifr);
    new DataView(ifr.buffer).setUint16(IFR_FLAGS, IFF_TAP | IFF_NO_PI, true);
    if (libc.ioctlPtr(fd, TUNSETIFF, ifr) < 0) {
      const errno = libc.lastErrno();
      libc.close(fd);
      if (errno === EPERM || errno === EACCES) {
        throw new TsvmmError('TSVMM_NET_PERMISSION',
          `TAP ${ifname}: not permitted (${errnoName(errno)}); creating it needs CAP_NET_ADMIN, or make it persistent for this user first: ip tuntap add dev ${ifname} mode tap user $(id -un)`,
          { ifname, errno });
      }
      const why = errno === 16 ? 'is in use by another process' : errno === 22 ? 'exists and is not a TAP device (or its flags differ)' : `cannot be attached (${errnoName(errno)})`;
      throw new TsvmmError('TSVMM_NET_BACKEND', `TAP ${ifname} ${why}`, { ifname, errno });
    }
    const wake = libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK);
    if (wake < 0) {
      const errno = libc.lastErrno();
      libc.close(fd);
      throw new SyscallError('eventfd', errno);
    }
    return new TapBackend(ifname, fd, wake);
  }

  attach(receiver: NetReceiver): void {
    this.receiver = receiver;
  }

  send(frame: Uint8Array): boolean {
    if (this.ended) return true;
    if (libc.write(this.fd, frame, frame.length) < 0) {
      this.counters.writeErrors++;
      this.counters.lastWriteErrno = libc.lastErrno();
    }
    return true;
  }

  async close(): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      this.signalWake();
      this.receiver?.closed(null);
    }
    await this.reading;
  }

  private signalWake(): void {
    const one = new Uint8Array(8);
    one[0] = 1;
    libc.write(this.wake, one, 8);
  }

  /** Reads frames until close(); the descriptors are closed when it returns (no poll uses them then). */
  private async readLoop(): Promise<void> {
    const fds = new Uint8Array(2 * POLLFD_SIZE);
    const v = new DataView(fds.buffer);
    v.setInt32(0, this.fd, true);
    v.setInt16(4, POLLIN, true);
    v.setInt32(POLLFD_SIZE, this.wake, true);
    v.setInt16(POLLFD_SIZE + 4, POLLIN, true);
    let failure: string | null = null;
    try {
      while (!this.ended) {
        let n = 0;
        for (; n < READ_BATCH && !this.ended; n++) {
          const got = libc.read(this.fd, this.buffer, this.buffer.length);
          if (got < 0) {
            const errno = libc.lastErrno();
            if (errno !== libc.EAGAIN && errno !== 4 /* EINTR */) failure = `read from TAP ${this.ifname} failed: ${errnoName(errno)}`;
            break;
          }
          this.receiver?.frame(this.buffer.subarray(0, got));
        }
        if (failure !== null || this.ended) break;
        if (n === READ_BATCH) await new Promise((resolve) => setImmediate(resolve)); // more may be waiting: let the loop breathe
        else await libc.pollAsync(fds, 2, -1);
      }
    } finally {
      libc.close(this.fd);
      libc.close(this.wake);
    }
    if (failure !== null && !this.ended) {
      this.ended = true;
      this.receiver?.closed(failure);
    }
  }
}
