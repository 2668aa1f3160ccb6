/**
 * bench/restore: a saved Linux (Debian's kernel, a busybox initramfs with the exec agent, 256 MiB)
 * restored on the soft backend, against booting it cold, in one invocation:
 * - the references: cold boot to the init's ready line on QEMU's TCG and on tsvmm's soft CPU;
 * - restore to running (VirtualMachine.restore until 'ready': the file read and checked, RAM and
 *   devices put back, the vCPU running; of it, VirtualMachine.restore itself, which reads and
 *   checks the file) and restore + exec('true') (the guest answering), the median of RUNS;
 * - the snapshot's size, the time save() took, and this process's peak RSS;
 * - CONCURRENT restores in this one process (default 20; TSVMM_BENCH_RESTORES), each answering an
 *   exec: the time for all of them and the memory they added, per machine: RSS (which counts a
 *   page cache page once per machine that maps it), its private part (RssAnon: each machine's own
 *   pages and its thread) and PSS (a page shared by n mappings counted 1/n).
 * The restores run twice: with RAM mapped from the file copy-on-write (the default) and copied
 * into each machine (mapRam: false, as every restore did before mapping); and mapped again with
 * a spare board thread waiting (VirtualMachine.warm), as a server restoring on demand would run.
 * Prints `ratio` (restore + exec / cold boot on soft) and `ratio-qemu` (restore + exec / cold
 * boot on QEMU's TCG).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findGuestKernel } from '../src/loader/guest-kernels.js';
import { VirtualMachine } from '../src/vmm/virtual-machine.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'tsvmm.js');
const READY = 'tsvmm-bench: ready';
const CMDLINE = 'console=ttyS0 quiet';
const MEMORY = 256 << 20;
const RUNS = 3;
const TIMEOUT_MS = 10 * 60_000;

const INIT = `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "${READY}"
while :; do sleep 1000; done
`;

const now = () => Number(process.hrtime.bigint()) / 1e9;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mib = (bytes: number) => (bytes / (1 << 20)).toFixed(1);

/** Seconds from spawning QEMU's TCG on the same kernel and initramfs to the ready line. */
function qemuColdBoot(vmlinux: string, initrd: string): Promise<number | undefined> {
  const t0 = now();
  const child = spawn('qemu-system-x86_64', ['-accel', 'tcg', '-kernel', vmlinux, '-initrd', initrd, '-append', CMDLINE,
    '-m', '256', '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.on('error', () => resolve(undefined));
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString('latin1');
      if (out.includes(READY)) {
        resolve(now() - t0);
        child.kill('SIGKILL');
      }
    });
    child.on('close', () => { clearTimeout(timer); resolve(undefined); });
  });
}

/** Resolves once the machine's console has printed `text`. */
function printed(vm: VirtualMachine, text: string): Promise<void> {
  let out = '';
  return new Promise((resolve) => vm.console.on('data', (b: Buffer) => {
    out = (out + b.toString('latin1')).slice(-4096);
    if (out.includes(text)) resolve();
  }));
}

/** This process's memory in bytes: RSS, its anonymous part, and PSS (/proc/self/status, /proc/self/smaps_rollup). */
function memory(): { rss: number; anon: number; pss: number } {
  const status = readFileSync('/proc/self/status', 'latin1');
  const rollup = readFileSync('/proc/self/smaps_rollup', 'latin1');
  const kib = (text: string, key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kib(status, 'VmRSS'), anon: kib(status, 'RssAnon'), pss: kib(rollup, 'Pss') };
}

/** Restores `snap`, runs until 'ready', then answers exec('true'); the seconds to each, with the machine still running. */
async function restoreOnce(snap: string, mapRam: boolean): Promise<{ vm: VirtualMachine; readS: number; readyS: number; execS: number }> {
  const t0 = now();
  const vm = await VirtualMachine.restore(snap, { timeoutMs: TIMEOUT_MS, mapRam });
  const readS = now() - t0;
  vm.console.resume();
  const ready = new Promise<number>((resolve) => vm.once('ready', () => resolve(now() - t0)));
  vm.start();
  const readyS = await ready;
  const r = await vm.exec('true', { timeoutMs: TIMEOUT_MS }).catch(async (e: unknown) => {
    const ended = vm.exited.then((x) => ` (the machine ended: ${JSON.stringify(x.end)})`);
    throw new Error(`exec('true') in a restored guest failed: ${(e as Error).message}${await Promise.race([ended, new Promise<string>((resolve) => setTimeout(() => resolve(''), 60_000))])}`);
  });
  if (r.code !== 0) throw new Error(`exec('true') in the restored guest: status ${r.code}`);
  return { vm, readS, readyS, execS: now() - t0 };
}

/** Medians of RUNS restores of each way, one after the other, the two ways taking turns (the host's load drifts). */
async function sequential(snap: string): Promise<Map<boolean, { reads: number[]; readies: number[]; execs: number[] }>> {
  const out = new Map([true, false].map((m) => [m, { reads: [] as number[], readies: [] as number[], execs: [] as number[] }]));
  for (let i = 0; i < RUNS; i++) {
    for (const mapRam of [true, false]) {
      const r = await restoreOnce(snap, mapRam);
      const o = out.get(mapRam)!;
      o.reads.push(r.readS);
      o.readies.push(r.readyS);
      o.execs.push(r.execS);
      await r.vm.stop();
    }
  }
  return out;
}

/** `concurrent` restores at once in this process: the time for all and what each added to RSS, its private part and PSS. */
async function together(snap: string, mapRam: boolean, concurrent: number): Promise<string> {
  const before = memory();
  const t0 = now();
  const many = await Promise.all(Array.from({ length: concurrent }, () => restoreOnce(snap, mapRam)));
  const allS = now() - t0;
  const after = memory();
  await Promise.all(many.map((m) => m.vm.stop()));
  const each = (k: 'rss' | 'anon' | 'pss') => `${mib((after[k] - before[k]) / concurrent)}`;
  return `${how(mapRam)}: ${concurrent} concurrent restores + exec in one process: ${allS.toFixed(2)} s; added per machine: RSS ${each('rss')} MiB, private (RssAnon) ${each('anon')} MiB, PSS ${each('pss')} MiB`;
}

const how = (mapRam: boolean) => (mapRam ? 'RAM mapped from the file' : 'RAM copied');

export async function run(): Promise<void> {
  const vmlinux = findGuestKernel()?.vmlinux;
  if (!vmlinux) {
    process.stdout.write('restore: skipped: no vmlinux in the cache (scripts/fetch-guest-kernel.sh)\n');
    return;
  }
  const concurrent = Number(process.env.TSVMM_BENCH_RESTORES ?? 20);
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-bench-restore-'));
  try {
    writeFileSync(join(dir, 'init.sh'), INIT);
    const initrd = join(dir, 'initrd.gz');
    const made = spawnSync(process.execPath, [BIN, 'initramfs', '--init', join(dir, 'init.sh'), '--modules', 'virtio_mmio,virtio_console', '-o', initrd], { encoding: 'latin1' });
    if (made.status !== 0) throw new Error(`tsvmm initramfs failed: ${made.stderr}`);
    const snap = join(dir, 'linux.snap');

    const qemuS = await qemuColdBoot(vmlinux, initrd);

    // The soft cold boot, which is also the machine that is saved.
    let t0 = now();
    const booted = await VirtualMachine.create({ kernel: vmlinux, initrd, cmdline: CMDLINE, memory: MEMORY, accel: 'soft', agent: true, timeoutMs: TIMEOUT_MS });
    const ready = printed(booted, READY);
    booted.start();
    await ready;
    const coldS = now() - t0;
    await booted.exec('true', { timeoutMs: TIMEOUT_MS }); // the agent is up: the snapshot carries it ready
    t0 = now();
    await booted.save(snap);
    const saveS = now() - t0;
    await booted.stop();
    const size = statSync(snap).size;

    // The first restore of the file in this process reads all its pages for their checksums; later
    // ones of the same unchanged file do not (once it is 2 s old: docs/snapshot-format.md).
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const first = await restoreOnce(snap, true);
    await first.vm.stop();
    const runs = await sequential(snap);
    // A server restoring machines on demand keeps a board thread ready (VirtualMachine.warm): each
    // restore then skips the thread's start and module load. Each run waits for the spare first.
    const warmRuns = { readies: [] as number[], execs: [] as number[] };
    for (let i = 0; i < RUNS; i++) {
      await VirtualMachine.warm(1);
      const r = await restoreOnce(snap, true);
      warmRuns.readies.push(r.readyS);
      warmRuns.execs.push(r.execS);
      await r.vm.stop();
    }
    await VirtualMachine.warm(0);
    const lines = [
      `first restore of the file in this process (RAM checksums read): VirtualMachine.restore ${first.readS.toFixed(3)} s, to running ${first.readyS.toFixed(3)} s`,
      ...[true, false].map((m) => {
        const r = runs.get(m)!;
        return `${how(m)}: restore to running: median ${median(r.readies).toFixed(3)} s (VirtualMachine.restore ${median(r.reads).toFixed(3)} s); restore + exec('true'): median ${median(r.execs).toFixed(3)} s (of ${RUNS})`;
      }),
      `${how(true)}, a spare board thread ready (VirtualMachine.warm): restore to running: median ${median(warmRuns.readies).toFixed(3)} s; restore + exec('true'): median ${median(warmRuns.execs).toFixed(3)} s (of ${RUNS})`,
      await together(snap, true, concurrent),
      await together(snap, false, concurrent),
    ];
    const restoreExecS = median(runs.get(true)!.execs);

    process.stdout.write(`restore: Debian Linux, busybox initramfs with the exec agent, '${CMDLINE}', ${mib(MEMORY)} MiB, soft backend\n`);
    process.stdout.write(`cold boot to the ready line: qemu-system-x86_64 tcg ${qemuS?.toFixed(2) ?? 'n/a'} s, tsvmm --accel soft ${coldS.toFixed(2)} s\n`);
    process.stdout.write(`save: ${saveS.toFixed(3)} s, snapshot ${mib(size)} MiB of ${mib(MEMORY)} MiB RAM\n`);
    for (const line of lines) process.stdout.write(`${line}\n`);
    process.stdout.write(`peak RSS of this process: ${mib(process.resourceUsage().maxRSS * 1024)} MiB\n`);
    process.stdout.write(`ratio ${(restoreExecS / coldS).toFixed(3)}\n`);
    if (qemuS !== undefined) process.stdout.write(`ratio-qemu ${(restoreExecS / qemuS).toFixed(3)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
