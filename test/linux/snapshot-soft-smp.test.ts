// Debian's Linux on the soft backend with two vCPUs, saved and restored through the CLI: the
// guest reaches its shell on both processors, `tsvmm run --save` saves it, and `tsvmm run --restore
// --exec` continues it in another process: the agent runs a command, nproc is still 2, and each
// CPU's local APIC timer still interrupts it (its LOC count in /proc/interrupts grows on both), so
// the application processor came back running, with its local APIC, in step with guest time.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { linuxGuest } from '../helpers/linux.js';
import { withTempDirAsync } from '../helpers/tools.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'tsvmm.js');
const BOOT_TIMEOUT_MS = 10 * 60_000;

/** Runs the CLI; each line of its standard output is timed as it arrives. */
function tsvmm(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string; lines: { at: number; text: string }[]; started: number; ended: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, [BIN, ...args]);
  let stdout = '';
  let stderr = '';
  const lines: { at: number; text: string }[] = [];
  let partial = '';
  let partialAt = 0;
  child.stdout.on('data', (b: Buffer) => {
    const text = b.toString('latin1');
    stdout += text;
    if (partial === '') partialAt = Date.now();
    partial += text;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const p of parts) lines.push({ at: Date.now(), text: p });
    if (partial !== '') partialAt = Date.now();
  });
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString('latin1')));
  child.stdin.end();
  return new Promise((resolve) => child.on('close', (status) => {
    // The last line may have no newline: --save-when saves as soon as its text is out, before the guest's newline.
    if (partial !== '') lines.push({ at: partialAt, text: partial });
    resolve({ status, stdout, stderr, lines, started, ended: Date.now() });
  }));
}

test('Linux on soft with --smp 2: saved at its shell, restored in another process; both CPUs still run and take timer interrupts (CLI, --exec)', { timeout: 2 * BOOT_TIMEOUT_MS }, async (t) => {
  const guest = linuxGuest();
  if (typeof guest === 'string' || !guest.vmlinux) return t.skip(typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)');
  await withTempDirAsync(async (dir) => {
    const init = join(dir, 'init.sh');
    writeFileSync(init, [
      '#!/bin/sh',
      'mount -t proc proc /proc',
      'mount -t sysfs sysfs /sys',
      'mount -t devtmpfs devtmpfs /dev',
      'echo "tsvmm-snap: cpus $(nproc)" >&2',
      'echo "tsvmm-snap: ready"',
      'exec sh',
      '',
    ].join('\n'));
    const initrd = join(dir, 'initrd.gz');
    const made = spawnSync(process.execPath, [BIN, 'initramfs', '--init', init, '--modules', 'virtio_mmio,virtio_console', '-o', initrd], { encoding: 'latin1' });
    assert.equal(made.status, 0, made.stderr);
    const snap = join(dir, 'linux.snap');

    const saved = await tsvmm(['run', '--accel', 'soft', '--smp', '2', '--kernel', guest.vmlinux!, '--initrd', initrd, '--append', 'console=ttyS0',
      '-m', '256', '--agent', '--timeout', String(BOOT_TIMEOUT_MS / 1000), '--save', snap, '--save-when', 'tsvmm-snap: ready']);
    const tail = `stdout tail:\n${saved.stdout.slice(-3000)}\nstderr tail:\n${saved.stderr.slice(-3000)}`;
    assert.equal(saved.status, 0, tail);
    assert.match(saved.stderr, /tsvmm: saved the machine to /, tail);
    assert.match(saved.stdout, /tsvmm-snap: cpus 2/, tail);

    // The local APIC timer interrupts (LOC) of each CPU, twice, a second apart.
    const restored = await tsvmm(['run', '--restore', snap, '--timeout', String(BOOT_TIMEOUT_MS / 1000), '--exec',
      'nproc; grep LOC: /proc/interrupts; sleep 1; grep LOC: /proc/interrupts']);
    assert.equal(restored.status, 0, `stderr tail:\n${restored.stderr.slice(-3000)}`);
    const [nproc, loc1, loc2] = restored.stdout.split('\n');
    assert.equal(nproc, '2', restored.stdout);
    const counts = (line: string | undefined) => (line ?? '').trim().split(/\s+/).slice(1, 3).map(Number);
    const [a, b] = [counts(loc1), counts(loc2)];
    assert.equal(a.length, 2, restored.stdout);
    for (const cpu of [0, 1]) assert.ok(b[cpu]! > a[cpu]!, `CPU ${cpu} takes timer interrupts after the restore: LOC ${a[cpu]} then ${b[cpu]}\n${restored.stdout}`);
    assert.doesNotMatch(restored.stderr, /Linux version/, 'the restored machine did not boot again');
  });
});
