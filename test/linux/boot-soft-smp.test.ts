// Debian's Linux on the soft backend with two vCPUs (each a thread of its own over the shared
// arena, vmm/soft-ap.ts): it starts the AP by INIT/SIPI, keeps the TSC as its clocksource (the
// vCPUs' TSCs agree), and userspace sees both processors and runs on them at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findGuestKernel } from '../../src/loader/guest-kernels.js';
import { bootToShell, linuxGuest } from '../helpers/linux.js';
import { withTempDirAsync } from '../helpers/tools.js';

const BOOT_TIMEOUT_MS = 12 * 60_000;

test('Linux on the soft backend with --smp 2: both processors up, /proc/cpuinfo and nproc say 2, two jobs run in parallel', { timeout: BOOT_TIMEOUT_MS + 60_000 }, async (t) => {
  const guest = linuxGuest();
  const vmlinux = findGuestKernel()?.vmlinux;
  if (typeof guest === 'string' || !vmlinux) return t.skip(typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)');
  await withTempDirAsync(async (dir) => {
    const shell = await bootToShell(guest, {
      kernel: vmlinux, initrd: guest.writeInitramfs(dir), cmdline: 'console=ttyS0 tsvmm.interactive',
      memory: 256 << 20, accel: 'soft', cpus: 2, timeoutMs: BOOT_TIMEOUT_MS,
    });
    const out = shell.out();
    assert.match(out, /smp: Brought up 1 node, 2 CPUs/);
    assert.doesNotMatch(out, /TSC warp|Marking TSC unstable|soft lockup|rcu_sched self-detected stall|BUG:|WARNING:/);
    shell.vm.console.write('echo cpus=$(grep -c ^processor /proc/cpuinfo) nproc=$(nproc)\n');
    await shell.waitFor(/\ncpus=2 nproc=2\r?\n/);
    // Two busy shells at once.
    shell.vm.console.write('for j in a b; do (i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo job-$j-done) & done; wait; echo jobs-done\n');
    await shell.waitFor(/\njobs-done\r?\n/);
    assert.match(shell.out(), /\njob-a-done\r?\n/);
    assert.match(shell.out(), /\njob-b-done\r?\n/);
    shell.vm.console.write('grep -e LOC -e CAL /proc/interrupts\n');
    await shell.waitFor(/\nCAL:[^\n]*\n/);
    // Both vCPUs take their local timer's interrupts and function-call IPIs from each other.
    assert.match(shell.out(), /\nLOC:\s+[1-9]\d*\s+[1-9]\d*\s+Local timer interrupts/);
    assert.match(shell.out(), /\nCAL:\s+\d+\s+\d+\s+Function call interrupts/);
    await shell.powerOff();
  });
});
