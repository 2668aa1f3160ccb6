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

/** `text` as one single-quoted shell word. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** The text of the generated /init for `modules` (in load order, already in the archive). */
export function generateInit(modules?: ModuleSelection): string {
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
export function addTsvmmInit(fs: Initramfs, userInit: Uint8Array, agentScript: Uint8Array, modules?: ModuleSelection): void {
  fs.addFile(USER_INIT_GUEST_PATH, userInit, 0o755);
  fs.addFile(AGENT_GUEST_PATH, agentScript, 0o755);
  fs.addDir(AGENT_SYSFS_GUEST_PATH, 0o755);
  for (const m of modules?.modules ?? []) fs.addFile(`/lib/modules/${modules!.release}/${m.path}`, m.bytes, 0o644);
  fs.addFile('/init', generateInit(modules), 0o755);
}
