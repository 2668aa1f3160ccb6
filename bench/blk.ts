/**
 * bench/blk: sequential virtio-blk throughput inside Debian's Linux, on tsvmm's software CPU and on
 * QEMU's TCG in one invocation: the same vmlinux (entered through PVH by both), initramfs, command
 * line and memory, and a 64 MiB raw image (a fresh one for each machine) as the guest's /dev/vda:
 * tsvmm's --drive (virtio-mmio) and QEMU's virtio-blk-pci on its pc machine with its default cache
 * (writeback: the host page cache, as tsvmm's file backend). guests/linux/blk-bench.sh writes
 * 64 MiB with dd oflag=direct and reads it back with iflag=direct, 1 MiB requests, each timed by
 * the guest's clock. Then the same on a 64 MiB RAM disk in the guest (brd, /dev/ram0): the guest
 * kernel's block layer and copies with no device behind them, run by the same CPU. Prints MiB/s
 * for each, the ratios (tsvmm / QEMU, of throughput: below 1 is slower) and both processes' peak
 * RSS. Without QEMU, tsvmm's figures alone.
 *
 * Whether the disk path is the bottleneck is measured directly: tsvmm runs with `--trace profile`
 * over the virtio disk's part (between the script's "disk start" and "disk end" lines), and the
 * bench prints the share of the vCPU thread's time spent in device work (the virtio-blk device,
 * its queue walks and the host file's reads and writes, all served inline in that thread). The
 * rest is the guest kernel's own code (its block layer, page pinning, scheduler) on the soft
 * CPU, whose cost is the CPU's ratio: the RAM disk's line shows it for the block layer alone.
 * The RAM disk runs less guest code per request than virtio-blk (no blk-mq, no scatter list, no
 * interrupt), so its ratio is a reference for the CPU, not a bound on the disk's.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { linuxGuest } from '../test/helpers/linux.js';
import { watchPeakRss } from './peak-rss.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'tsvmm.js');
const LINE = /tsvmm-blk ((?:ram-)?(?:write|read)) (\d+)\r?$/; // not anchored: firmware may leave its line unfinished
const DONE = 'tsvmm-blk: done';
/** The device phase of `--trace profile`'s table (src/vmm/profile.ts): seconds, then percent. */
const DEVICE_PHASE = /^\s+device \(inline\)\s+[\d.]+\s+([\d.]+)\s*$/m;
const MEMORY_MIB = 256;
const DISK_MIB = 64;
const TIMEOUT_S = 1800;
const CMDLINE = 'console=ttyS0 quiet';
/** virtio over MMIO (tsvmm) and over PCI (QEMU's pc machine), then the block driver. */
const MODULES = ['virtio_ring', 'virtio', 'virtio_mmio', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'virtio_blk', 'brd'];
const MEASURES = ['write', 'read', 'ram-write', 'ram-read'] as const;
type Measure = (typeof MEASURES)[number];

interface Run {
  ns: Partial<Record<Measure, number>>;
  done: boolean;
  status: number | null;
  peakRssKiB: number;
  out: string;
}

function runMachine(cmd: string, args: string[]): Promise<Run> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const rss = watchPeakRss(child.pid!);
  child.stdout.on('data', (b: Buffer) => (out += b.toString('latin1')));
  child.stderr.on('data', (b: Buffer) => (out += b.toString('latin1')));
  return new Promise((resolve) => child.on('close', (status) => {
    const peak = rss.stop();
    const ns: Run['ns'] = {};
    for (const l of out.split('\n')) {
      const m = LINE.exec(l);
      if (m) ns[m[1] as Measure] = Number(m[2]);
    }
    resolve({ ns, done: out.includes(DONE), status, peakRssKiB: peak, out });
  }));
}

const mibPerS = (ns: number | undefined) => (ns === undefined ? undefined : DISK_MIB / (ns / 1e9));
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

export async function run(): Promise<void> {
  const guest = linuxGuest();
  if (typeof guest === 'string' || !guest.vmlinux) {
    process.stdout.write(`blk: skipped: ${typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)'}\n`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-bench-blk-'));
  try {
    const initrd = guest.writeInitramfs(dir, { init: 'linux/blk-bench.sh', modules: MODULES });
    const image = join(dir, 'disk.img');
    const fresh = () => writeFileSync(image, new Uint8Array(DISK_MIB << 20));
    process.stdout.write(`blk: Debian ${guest.version}, ${DISK_MIB} MiB sequential, 1 MiB O_DIRECT requests, ${MEMORY_MIB} MiB, PVH entry; load average ${load()}\n`);
    let qemu: Run | undefined;
    if (spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0) {
      fresh();
      qemu = await runMachine('qemu-system-x86_64', ['-accel', 'tcg', '-kernel', guest.vmlinux, '-initrd', initrd, '-append', CMDLINE,
        '-m', String(MEMORY_MIB), '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio',
        '-drive', `file=${image},format=raw,if=none,id=vda`, '-device', 'virtio-blk-pci,drive=vda']);
      if (!qemu.done || MEASURES.some((k) => qemu!.ns[k] === undefined)) throw new Error(`QEMU did not finish (status ${qemu.status}); last output:\n${qemu.out.slice(-1500)}`);
    } else {
      process.stdout.write('blk: qemu-system-x86_64 is not installed (Debian: qemu-system-x86): tsvmm figures only\n');
    }
    fresh();
    const tsvmm = await runMachine(process.execPath, [BIN, 'run', '--accel', 'soft', '--kernel', guest.vmlinux, '--initrd', initrd, '--append', CMDLINE,
      '-m', `${MEMORY_MIB}M`, '--drive', `file=${image}`, '--timeout', String(TIMEOUT_S), '--trace', 'profile,top=1,from=tsvmm-blk: disk start,to=tsvmm-blk: disk end']);
    if (!tsvmm.done || tsvmm.status !== 0 || MEASURES.some((k) => tsvmm.ns[k] === undefined)) throw new Error(`tsvmm did not finish (status ${tsvmm.status}); last output:\n${tsvmm.out.slice(-800)}`);
    const f = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(1)).padStart(9);
    const lines = [`${'what'.padEnd(10)} ${'qemu MiB/s'.padStart(10)} ${'tsvmm MiB/s'.padStart(11)} ${'ratio'.padStart(7)}`];
    const ratio: Partial<Record<Measure, number>> = {};
    for (const what of MEASURES) {
      const q = mibPerS(qemu?.ns[what]);
      const s = mibPerS(tsvmm.ns[what]);
      if (q !== undefined && s !== undefined) ratio[what] = s / q;
      lines.push(`${what.padEnd(10)} ${f(q).padStart(10)} ${f(s).padStart(11)} ${(ratio[what] === undefined ? '-' : ratio[what]!.toFixed(2)).padStart(7)}`);
    }
    const mean = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : Math.sqrt(a * b));
    const disk = mean(ratio.write, ratio.read);
    const ram = mean(ratio['ram-write'], ratio['ram-read']);
    const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;
    if (qemu) lines.push(`qemu-system-x86_64 tcg: peak RSS ${mib(qemu.peakRssKiB)}`);
    lines.push(`tsvmm --accel soft: peak RSS ${mib(tsvmm.peakRssKiB)}`);
    if (disk !== undefined && ram !== undefined) {
      lines.push(`ratio ${disk.toFixed(2)} (virtio disk: geometric mean of write and read; tsvmm / QEMU throughput)`);
      lines.push(`ram-disk ratio ${ram.toFixed(2)} (the same guest work on brd, no device: what the CPU costs)`);
    }
    const device = DEVICE_PHASE.exec(tsvmm.out);
    lines.push(device
      ? `tsvmm disk path: ${device[1]} % of the vCPU thread's time during the virtio disk's part (device work, inline; the rest is guest code on the soft CPU)`
      : 'tsvmm disk path: no profile line (the profile did not cover the disk part)');
    process.stdout.write(`${lines.join('\n')}\nload average at the end ${load()}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
