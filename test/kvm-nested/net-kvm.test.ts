// The virtio network card on the kvm backend (the soft backend's test is test/linux/net-soft.test.ts,
// which shares its check, test/helpers/net.ts): Debian's Linux on kvm with a card on passt
// (`--nic user`) gets its address by DHCP, fetches a file from an HTTP server on this host's
// loopback through the gateway's address, hash checked, and a host port forwarded to the guest
// reaches it both ways; the card's queues are served by the board's thread through KVM's MMIO
// exits and the in-kernel irqchip's interrupt line. Needs KVM with VMX or SVM and passt;
// scripts/kvm-nested.sh runs it inside QEMU where the host has no KVM (its outer guest carries
// passt, and a dummy interface with a default route for passt to take its addresses from).
import { test } from 'node:test';
import { kvmUnavailable } from '../helpers/kvm.js';
import { checkUserNetwork } from '../helpers/net.js';
import { hardwareKvm } from '../soft/guest-run.js';

/** One Linux boot and three commands: ~2 minutes nested in QEMU on an idle host, over 5 on a busy one. */
const BOOT_TIMEOUT_MS = 10 * 60_000;

test('Linux with a virtio NIC on passt on the kvm backend: an address by DHCP, a file from the host\'s loopback through the gateway, a host port forwarded to the guest', { timeout: BOOT_TIMEOUT_MS + 60_000 }, async (t) => {
  const why = kvmUnavailable() ?? (hardwareKvm() ? undefined : 'needs KVM with VMX or SVM (kvm_pvm emulates the guest kernel: Linux would take hours)');
  if (why) return t.skip(why);
  await checkUserNetwork(t, 'kvm', BOOT_TIMEOUT_MS);
});
