/**
 * bench/smp: the speed-up of a parallel workload inside Debian's Linux from one vCPU to two, on
 * tsvmm's software CPU (--smp, each vCPU a thread) and on QEMU's multi-threaded TCG, in one
 * invocation: the same vmlinux (entered through PVH by both), initramfs, command line and
 * memory. guests/linux/smp-bench.sh starts two CPU-bound jobs together and times them with the
 * guest's clock (boot left out). Prints each run's time, each emulator's speed-up (time with
 * one vCPU / time with two; 2 is perfect) and the ratio of the speed-ups. This host's cores are
 * shared: the load average is printed with the figures. Without QEMU, tsvmm's figures alone.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { linuxGuest } from '../test/helpers/linux.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'tsvmm.js');
const JOBS = /tsvmm-smp jobs (\d+)\r?$/m;
const CPUS = /tsvmm-smp cpus (\d+)\r?$/m;
const DONE = 'tsvmm-smp: done';
const MEMORY_MIB = 256;
const TIMEOUT_S = 1800;
const CMDLINE = 'console=ttyS0 quiet';

interface Run {
  ns: number | undefined;
  cpus: number | undefined;
  done: boolean;
  status: number | null;
  out: string;
}

function runMachine(cmd: string, args: string[]): Promise<Run> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString('latin1')));
  child.stderr.on('data', (b: Buffer) => (out += b.toString('latin1')));
  return new Promise((resolve) => child.on('close', (status) => {
    const ns = JOBS.exec(out), cpus = CPUS.exec(out);
    resolve({ ns: ns ? Number(ns[1]) : undefined, cpus: cpus ? Number(cpus[1]) : undefined, done: out.includes(DONE), status, out });
  }));
}

const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

function check(name: string, r: Run, cpus: number): number {
  if (!r.done || r.ns === undefined) throw new Error(`${name} did not finish (status ${r.status}); last output:\n${r.out.slice(-1500)}`);
  if (r.cpus !== cpus) throw new Error(`${name}: the guest saw ${r.cpus} processors, not ${cpus}`);
  return r.ns;
}

export async function run(): Promise<void> {
  const guest = linuxGuest();
  if (typeof guest === 'string' || !guest.vmlinux) {
    process.stdout.write(`smp: skipped: ${typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)'}\n`);
    return;
  }
  const vmlinux = guest.vmlinux;
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-bench-smp-'));
  try {
    const initrd = guest.writeInitramfs(dir, { init: 'linux/smp-bench.sh' });
    process.stdout.write(`smp: Debian ${guest.version}, two CPU-bound jobs at once, ${MEMORY_MIB} MiB, PVH entry; load average ${load()}\n`);
    const hasQemu = spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0;
    if (!hasQemu) process.stdout.write('smp: qemu-system-x86_64 is not installed (Debian: qemu-system-x86): tsvmm figures only\n');
    const qemu = (cpus: number) => runMachine('qemu-system-x86_64', ['-accel', 'tcg,thread=multi', '-smp', String(cpus), '-kernel', vmlinux, '-initrd', initrd,
      '-append', CMDLINE, '-m', String(MEMORY_MIB), '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio']);
    const tsvmm = (cpus: number) => runMachine(process.execPath, [BIN, 'run', '--accel', 'soft', '--smp', String(cpus), '--kernel', vmlinux, '--initrd', initrd,
      '--append', CMDLINE, '-m', `${MEMORY_MIB}M`, '--timeout', String(TIMEOUT_S)]);
    const rows: [string, number, number][] = [];
    if (hasQemu) rows.push(['qemu tcg', check('QEMU -smp 1', await qemu(1), 1), check('QEMU -smp 2', await qemu(2), 2)]);
    rows.push(['tsvmm soft', check('tsvmm --smp 1', await tsvmm(1), 1), check('tsvmm --smp 2', await tsvmm(2), 2)]);
    const s = (ns: number) => (ns / 1e9).toFixed(3).padStart(10);
    const lines = [`${'what'.padEnd(11)} ${'1 vCPU s'.padStart(10)} ${'2 vCPUs s'.padStart(10)} ${'speed-up'.padStart(9)}`];
    const speedUp = new Map<string, number>();
    for (const [name, one, two] of rows) {
      speedUp.set(name, one / two);
      lines.push(`${name.padEnd(11)} ${s(one)} ${s(two)} ${(one / two).toFixed(2).padStart(9)}`);
    }
    const q = speedUp.get('qemu tcg'), t = speedUp.get('tsvmm soft')!;
    if (q !== undefined) lines.push(`speed-up ratio ${(t / q).toFixed(2)} (tsvmm's speed-up / QEMU's; 1 is as good)`);
    process.stdout.write(`${lines.join('\n')}\nload average at the end ${load()}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
