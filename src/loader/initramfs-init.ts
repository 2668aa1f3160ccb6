/**
 * The /init that `tsvmm initramfs` writes: a short busybox script that loads the kernel modules
 * chosen with --modules (busybox insmod, in dependency order, from /lib/modules/<release>/), starts
 * the exec agent in the background when a virtio-console device is bound to its driver
 * (guests/agent/tsvmm-agent.sh at AGENT_GUEST_PATH: it serves the port named org.tsvmm.agent),
 * and then execs the user's script (USER_INIT_GUEST_PATH), which so stays PID 1 and gets /init's
 * arguments and environment. The agent runs beside the user's script, so it works whatever that
 * script does (`exec sleep 1d` included). A module that fails to load is reported on the console
 * and the boot goes on.
 *
 * The check for the device is made before the user's script starts, on a sysfs of the agent's own
 * (AGENT_SYSFS_GUEST_PATH, unmounted again when there is no device), so that the script finds the
 * mounts it makes itself, not one that raced it: without a virtio-console device, /init leaves
 * nothing mounted and nothing running.
 *
 * With `netDhcp` (`tsvmm initramfs --net-dhcp`), /init then brings up lo and eth0 and asks for an
 * address with busybox udhcpc, once, in the foreground (at most DHCP_TRIES requests a
 * DHCP_PAUSE_SECONDS apart), before the agent and the user's script start, so both find the
 * network configured. udhcpc only talks DHCP: what it learns it hands to a script, which sets it
 * (UDHCPC_SCRIPT_GUEST_PATH: the address and prefix, the MTU, the default route, resolv.conf).
 * No lease (no DHCP server, no eth0: virtio_mmio and virtio_net must be in --modules unless the
 * kernel has them built in) is reported on the console and the boot goes on.
 */
import { join } from 'node:path';
import { GUESTS_DIR } from '../common/nasm.js';
import type { Initramfs } from './initramfs.js';
import type { ModuleSelection } from './kernel-modules.js';

/** The agent script, as the guest runs it (busybox sh only). */
export const AGENT_SCRIPT = join(GUESTS_DIR, 'agent', 'tsvmm-agent.sh');
/** Where the agent is in the initramfs. */
export const AGENT_GUEST_PATH = '/sbin/tsvmm-agent';
/** Where the user's --init script is in the initramfs (the generated /init execs it). */
export const USER_INIT_GUEST_PATH = '/usr/lib/tsvmm/init';
/** The agent's own sysfs mount point. */
export const AGENT_SYSFS_GUEST_PATH = '/usr/lib/tsvmm/sys';
/** The script udhcpc runs with what the DHCP server said (with netDhcp). */
export const UDHCPC_SCRIPT_GUEST_PATH = '/usr/lib/tsvmm/udhcpc.script';
/** DHCPDISCOVERs udhcpc sends before it gives up, and the seconds between them. */
const DHCP_TRIES = 5;
const DHCP_PAUSE_SECONDS = 2;

/**
 * What udhcpc runs (busybox sh): $1 is deconfig, bound, renew, leasefail or nak; the lease is in
 * the environment: interface, ip, subnet (a dotted mask), router, dns, domain, mtu.
 */
export const UDHCPC_SCRIPT = `#!/bin/sh
# Written by tsvmm initramfs --net-dhcp: sets what busybox udhcpc learned on $interface.
prefix() { # a dotted netmask as a prefix length
  n=0; IFS=.; set -- $1; unset IFS
  for o in "$@"; do
    case $o in 255) n=$((n+8));; 254) n=$((n+7));; 252) n=$((n+6));; 248) n=$((n+5));;
      240) n=$((n+4));; 224) n=$((n+3));; 192) n=$((n+2));; 128) n=$((n+1));; esac
  done
  echo $n
}
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/$(prefix "\${subnet:-255.255.255.0}")" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    for r in $router; do ip route add default via "$r" dev "$interface" && break; done
    : > /etc/resolv.conf
    [ -n "$domain" ] && echo "search $domain" >> /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    echo "tsvmm-init: $interface has $ip/$(prefix "\${subnet:-255.255.255.0}") by DHCP\${router:+, router $router}"
    ;;
esac
exit 0
`;

/** What /init may do beside loading modules and starting the agent. */
export interface InitOptions {
  /** Bring eth0 up with an address from DHCP (busybox udhcpc) before the agent and the user's script start. */
  netDhcp?: boolean;
}

/** `text` as one single-quoted shell word. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** The text of the generated /init for `modules` (in load order, already in the archive). */
export function generateInit(modules?: ModuleSelection, opts: InitOptions = {}): string {
  const lines = [
    '#!/bin/sh',
    '# /init written by tsvmm initramfs: loads the kernel modules given with --modules, starts the',
    '# exec agent (docs/agent-protocol.md) in the background, then runs the --init script as PID 1.',
    'export PATH=/bin:/sbin:/usr/bin:/usr/sbin',
  ];
  if (modules && modules.modules.length > 0) {
    lines.push(
      `for m in ${modules.modules.map((m) => shellQuote(m.path)).join(' ')}; do`,
      `  insmod ${shellQuote(`/lib/modules/${modules.release}`)}/"$m" || echo "tsvmm-init: insmod $m failed" >&2`,
      'done',
    );
  }
  if (opts.netDhcp) {
    lines.push(
      'ip link set lo up',
      'if ip link set eth0 up 2>/dev/null; then',
      `  udhcpc -i eth0 -s ${UDHCPC_SCRIPT_GUEST_PATH} -f -q -n -t ${DHCP_TRIES} -T ${DHCP_PAUSE_SECONDS} || echo "tsvmm-init: no DHCP lease on eth0" >&2`,
      'else',
      '  echo "tsvmm-init: --net-dhcp: there is no eth0 (virtio_mmio and virtio_net in --modules?)" >&2',
      'fi',
    );
  }
  const sys = AGENT_SYSFS_GUEST_PATH;
  lines.push(
    `if mount -t sysfs sysfs ${sys} 2>/dev/null; then`,
    '  agent=',
    `  for d in ${sys}/bus/virtio/drivers/virtio_console/virtio*; do [ -e "$d" ] && agent=1; done`,
    '  if [ -n "$agent" ]; then',
    `    TSVMM_AGENT_SYSFS=${sys} ${AGENT_GUEST_PATH} </dev/null >/dev/null 2>&1 &`,
    '  else',
    `    umount ${sys}`,
    '  fi',
    'fi',
    `exec ${USER_INIT_GUEST_PATH} "$@"`,
    '',
  );
  return lines.join('\n');
}

/**
 * Puts the user's init script, the modules, the agent (`agentScript`: the bytes of AGENT_SCRIPT)
 * and the generated /init into `fs`.
 */
export function addTsvmmInit(fs: Initramfs, userInit: Uint8Array, agentScript: Uint8Array, modules?: ModuleSelection, opts: InitOptions = {}): void {
  fs.addFile(USER_INIT_GUEST_PATH, userInit, 0o755);
  fs.addFile(AGENT_GUEST_PATH, agentScript, 0o755);
  fs.addDir(AGENT_SYSFS_GUEST_PATH, 0o755);
  for (const m of modules?.modules ?? []) fs.addFile(`/lib/modules/${modules!.release}/${m.path}`, m.bytes, 0o644);
  if (opts.netDhcp) fs.addFile(UDHCPC_SCRIPT_GUEST_PATH, new TextEncoder().encode(UDHCPC_SCRIPT), 0o755);
  fs.addFile('/init', generateInit(modules, opts), 0o755);
}
