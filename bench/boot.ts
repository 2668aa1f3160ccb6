/**
 * bench/boot: Debian's kernel with a busybox initramfs, booted to its first userspace line and
 * to power-off, on tsvmm's software CPU and on QEMU's TCG, in one invocation: the same vmlinux
 * (entered through PVH by both), initramfs and command line. Prints both and `ratio R`
 * (tsvmm / QEMU) for the time to power-off. Where KVM runs the guest's ring 0 natively (kvm_intel
 * or kvm_amd: not kvm_pvm, which emulates it), a third line: the same boot on `--accel kvm`.
 *
 * On a shared host the two machines, run one after the other, may get very different shares of
 * a CPU, so each line also gives the host CPU time its process used (read from /proc/PID/stat
 * while it runs, the last reading before it ends) and `ratio-cpu R` the ratio of those.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KvmBackend } from '../src/backends/kvm/kvm-backend.js';
import { cpuSeconds } from './workload.js';
import { findGuestKernel } from '../src/loader/guest-kernels.js';
import { linuxGuest } from '../test/helpers/linux.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'tsvmm.js');
const FIRST_LINE = 'tsvmm-init: userspace up';
const CMDLINE = 'console=ttyS0 quiet';
const TIMEOUT_S = 600;
/** How often the child's CPU time is read: the figure misses at most this much of its end. */
const CPU_POLL_MS = 20;

interface Timing {
  firstLineS: number | undefined;
  powerOffS: number;
  /** Host CPU seconds of the process (user + system, all threads) at the last reading. */
  cpuS: number;
  status: number | null;
  tail: string;
}

/** Runs a command; times the first userspace line on its output and its exit. */
function timeBoot(cmd: string, args: string[]): Promise<Timing> {
  const t0 = process.hrtime.bigint();
  const seconds = () => Number(process.hrtime.bigint() - t0) / 1e9;
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let firstLineS: number | undefined;
  let cpuS = 0;
  const poll = setInterval(() => {
    const c = cpuSeconds(child.pid!);
    if (Number.isFinite(c)) cpuS = c;
  }, CPU_POLL_MS);
  const onData = (b: Buffer) => {
    out += b.toString('latin1');
    if (firstLineS === undefined && out.includes(FIRST_LINE)) firstLineS = seconds();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return new Promise((resolve) => child.on('close', (status) => {
    clearInterval(poll);
    resolve({ firstLineS, powerOffS: seconds(), cpuS, status, tail: out.slice(-400) });
  }));
}

/** Whether /dev/kvm is usable and hardware-assisted (kvm_intel or kvm_amd loaded): Linux then boots at native speed. */
function fastKvm(): boolean {
  if (!existsSync('/sys/module/kvm_intel') && !existsSync('/sys/module/kvm_amd')) return false;
  try {
    KvmBackend.open().close();
    return true;
  } catch {
    return false;
  }
}

export async function run(): Promise<void> {
  const guest = linuxGuest();
  const vmlinux = findGuestKernel()?.vmlinux;
  if (typeof guest === 'string' || !vmlinux) {
    process.stdout.write(`boot: skipped: ${typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)'}\n`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-bench-boot-'));
  try {
    const initrd = guest.writeInitramfs(dir);
    const qemu = await timeBoot('qemu-system-x86_64', ['-accel', 'tcg', '-kernel', vmlinux, '-initrd', initrd, '-append', CMDLINE,
      '-m', '256', '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio']);
    const tsvmmRun = (accel: string) => timeBoot(process.execPath, [BIN, 'run', '--accel', accel, '--kernel', vmlinux, '--initrd', initrd, '--append', CMDLINE,
      '-m', '256M', '--timeout', String(TIMEOUT_S)]);
    const tsvmm = await tsvmmRun('soft');
    const kvm = fastKvm() ? await tsvmmRun('kvm') : undefined;
    const line = (name: string, t: Timing) =>
      `${name.padEnd(22)} first userspace line ${t.firstLineS?.toFixed(2) ?? 'never'} s, power-off ${t.powerOffS.toFixed(2)} s, host CPU ${t.cpuS.toFixed(2)} s (exit status ${t.status})\n`;
    process.stdout.write(`boot: Debian ${guest.version}, busybox initramfs, '${CMDLINE}', 256 MiB, PVH entry\n`);
    process.stdout.write(line('qemu-system-x86_64 tcg', qemu));
    process.stdout.write(line('tsvmm --accel soft', tsvmm));
    if (kvm) process.stdout.write(line('tsvmm --accel kvm', kvm));
    if (tsvmm.firstLineS === undefined || tsvmm.status !== 0) {
      process.stdout.write(`tsvmm did not reach power-off; last output:\n${tsvmm.tail}\n`);
      return;
    }
    process.stdout.write(`ratio ${(tsvmm.powerOffS / qemu.powerOffS).toFixed(2)}\n`);
    if (qemu.cpuS > 0) process.stdout.write(`ratio-cpu ${(tsvmm.cpuS / qemu.cpuS).toFixed(2)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
