// Debian's Linux on the soft backend with two and with four vCPUs (each a thread of its own over
// the shared arena, vmm/soft-ap.ts): it starts the APs by INIT/SIPI, keeps the TSC as its
// clocksource (the vCPUs' TSCs agree), and userspace sees every processor and runs on them at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findGuestKernel } from '../../src/loader/guest-kernels.js';
import { bootToShell, linuxGuest } from '../helpers/linux.js';
import { withTempDirAsync } from '../helpers/tools.js';

const BOOT_TIMEOUT_MS = 12 * 60_000;

/** Numbers each awk job sums: job k (1..N) sums (k-1)*PART+1 .. k*PART. */
const PART = 20000;

for (const cpus of [2, 4]) {
  test(`Linux on the soft backend with --smp ${cpus}: every processor up and online, nproc says ${cpus}, ${cpus} awk jobs in parallel give the right total`, { timeout: BOOT_TIMEOUT_MS + 60_000 }, async (t) => {
    const guest = linuxGuest();
    const vmlinux = findGuestKernel()?.vmlinux;
    if (typeof guest === 'string' || !vmlinux) return t.skip(typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)');
    await withTempDirAsync(async (dir) => {
      const shell = await bootToShell(guest, {
        kernel: vmlinux, initrd: guest.writeInitramfs(dir), cmdline: 'console=ttyS0 tsvmm.interactive',
        memory: 256 << 20, accel: 'soft', cpus, timeoutMs: BOOT_TIMEOUT_MS,
      });
      const out = shell.out();
      assert.match(out, new RegExp(`smp: Brought up 1 node, ${cpus} CPUs`));
      assert.doesNotMatch(out, /TSC warp|Marking TSC unstable|soft lockup|rcu_sched self-detected stall|BUG:|WARNING:/);
      shell.vm.console.write('echo cpus=$(grep -c ^processor /proc/cpuinfo) nproc=$(nproc) online=$(cat /sys/devices/system/cpu/online)\n');
      await shell.waitFor(new RegExp(`\\ncpus=${cpus} nproc=${cpus} online=0-${cpus - 1}\\r?\\n`));
      // N jobs at once, each summing its own range with awk; the parts add up to 1 + ... + N*PART.
      shell.vm.console.write(`for k in $(seq 1 ${cpus}); do awk -v k=$k 'BEGIN { s = 0; for (i = (k - 1) * ${PART} + 1; i <= k * ${PART}; i++) s += i; printf "%.0f\\n", s }' > /tmp/part$k & done; wait; cat /tmp/part* | awk '{ t += $1 } END { printf "total=%.0f\\n", t }'\n`);
      const n = cpus * PART;
      await shell.waitFor(/\ntotal=\d+\r?\n/);
      assert.match(shell.out(), new RegExp(`\\ntotal=${(n * (n + 1)) / 2}\\r?\\n`));
      shell.vm.console.write('grep -e LOC -e CAL /proc/interrupts\n');
      await shell.waitFor(/\nCAL:[^\n]*\n/);
      // Every vCPU takes its local timer's interrupts; function-call IPIs are counted per CPU.
      assert.match(shell.out(), new RegExp(`\\nLOC:${'\\s+[1-9]\\d*'.repeat(cpus)}\\s+Local timer interrupts`));
      assert.match(shell.out(), new RegExp(`\\nCAL:${'\\s+\\d+'.repeat(cpus)}\\s+Function call interrupts`));
      await shell.powerOff();
    });
  });
}
