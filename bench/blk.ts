/**
 * bench/blk: sequential virtio-blk throughput inside Debian's Linux, on tsvmm's software CPU and on
 * QEMU's TCG in one invocation: the same vmlinux (entered through PVH by both), initramfs, command
 * line and memory, and a 64 MiB raw image (a fresh one for each machine) as the guest's /dev/vda:
 * tsvmm's --drive (virtio-mmio) and QEMU's virtio-blk-pci on its pc machine with its default cache
 * (writeback: the host page cache, as tsvmm's file backend). guests/linux/blk-bench.sh writes
 * 64 MiB with dd oflag=direct and reads it back with iflag=direct, 1 MiB requests, each timed by
 * the guest's clock. Prints MiB/s for each, the ratios (tsvmm / QEMU, of throughput: below 1 is
 * slower) and both processes' peak RSS. Without QEMU, tsvmm's figures alone.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { linuxGuest } from '../test/helpers/linux.js';
import { watchPeakRss } from './peak-rss.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'tsvmm.js');
const LINE = /tsvmm-blk (write|read) (\d+)\r?$/; // not anchored: firmware may leave its line unfinished
const DONE = 'tsvmm-blk: done';
const MEMORY_MIB = 256;
const DISK_MIB = 64;
const TIMEOUT_S = 1800;
const CMDLINE = 'console=ttyS0 quiet';
/** virtio over MMIO (tsvmm) and over PCI (QEMU's pc machine), then the block driver. */
const MODULES = ['virtio_ring', 'virtio', 'virtio_mmio', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'virtio_blk'];

interface Run {
  ns: Partial<Record<'write' | 'read', number>>;
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
      if (m) ns[m[1] as 'write' | 'read'] = Number(m[2]);
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
      if (!qemu.done || qemu.ns.write === undefined || qemu.ns.read === undefined) throw new Error(`QEMU did not finish (status ${qemu.status}); last output:\n${qemu.out.slice(-1500)}`);
    } else {
      process.stdout.write('blk: qemu-system-x86_64 is not installed (Debian: qemu-system-x86): tsvmm figures only\n');
    }
    fresh();
    const tsvmm = await runMachine(process.execPath, [BIN, 'run', '--accel', 'soft', '--kernel', guest.vmlinux, '--initrd', initrd, '--append', CMDLINE,
      '-m', `${MEMORY_MIB}M`, '--drive', `file=${image}`, '--timeout', String(TIMEOUT_S)]);
    if (!tsvmm.done || tsvmm.status !== 0 || tsvmm.ns.write === undefined || tsvmm.ns.read === undefined) throw new Error(`tsvmm did not finish (status ${tsvmm.status}); last output:\n${tsvmm.out.slice(-800)}`);
    const f = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(1)).padStart(9);
    const lines = [`${'direction'.padEnd(10)} ${'qemu MiB/s'.padStart(10)} ${'tsvmm MiB/s'.padStart(11)} ${'ratio'.padStart(7)}`];
    const ratios: number[] = [];
    for (const dirn of ['write', 'read'] as const) {
      const q = mibPerS(qemu?.ns[dirn]);
      const s = mibPerS(tsvmm.ns[dirn]);
      const ratio = q !== undefined && s !== undefined ? s / q : undefined;
      if (ratio !== undefined) ratios.push(ratio);
      lines.push(`${dirn.padEnd(10)} ${f(q).padStart(10)} ${f(s).padStart(11)} ${(ratio === undefined ? '-' : ratio.toFixed(2)).padStart(7)}`);
    }
    const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;
    if (qemu) lines.push(`qemu-system-x86_64 tcg: peak RSS ${mib(qemu.peakRssKiB)}`);
    lines.push(`tsvmm --accel soft: peak RSS ${mib(tsvmm.peakRssKiB)}`);
    if (ratios.length === 2) lines.push(`ratio ${Math.sqrt(ratios[0]! * ratios[1]!).toFixed(2)} (geometric mean of write and read; tsvmm / QEMU throughput)`);
    process.stdout.write(`${lines.join('\n')}\nload average at the end ${load()}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
