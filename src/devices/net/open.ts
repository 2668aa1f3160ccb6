/**
 * From a NicConfig (nic-config.ts) to the backend under the NIC: what the machine does for each
 * `--nic` when it starts. The device (virtio-net.ts) then takes the backend and the MAC:
 *
 *   const backend = await openNetBackend(nic);
 *   const net = new VirtioNet({ mac: macBytes(nic.mac), backend, mtu });
 *   ... at the end: await backend.close();
 */
import { assertNever } from '../../common/errors.js';
import type { NetBackend } from './net-backend.js';
import type { NicConfig } from './nic-config.js';
import { PasstBackend, type PasstOptions } from './passt.js';
import { TapBackend } from './tap.js';

export interface OpenNetOptions {
  /** The MTU the guest is told by passt's DHCP (the device's; NET_DEFAULT_MTU by default). */
  mtu?: number;
  /** Overrides for passt (its program, extra arguments). */
  passt?: Omit<PasstOptions, 'hostForwards' | 'mtu'>;
}

/** Starts passt or opens the TAP; throws TSVMM_TOOL_MISSING, TSVMM_NET_BACKEND or TSVMM_NET_PERMISSION. */
export async function openNetBackend(nic: NicConfig, opts: OpenNetOptions = {}): Promise<NetBackend> {
  switch (nic.kind) {
    case 'user': return PasstBackend.start({ ...opts.passt, hostForwards: nic.hostForwards, mtu: opts.mtu });
    case 'tap': return TapBackend.open({ ifname: nic.ifname });
    default: return assertNever(nic, 'NIC kind');
  }
}
