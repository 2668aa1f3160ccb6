/**
 * bench/workload: user-space work inside Debian's Linux (guests/linux/workload.sh: shell and awk
 * arithmetic, gzip, bzip2, sha256sum, fork+exec, page faults, system calls), on tsvmm's software
 * CPU and on QEMU's TCG in one invocation: the same vmlinux (entered through PVH by both),
 * initramfs, command line and memory, one boot per machine running every workload in turn.
 *
 * Each workload is timed by the guest's clock (the script reads it before and after), so boot time
 * and host-side start-up are left out, and prints what it computed; the results must be equal on
 * both machines. Prints a table of times, ratios (tsvmm / QEMU), their geometric mean and both
 * processes' peak RSS. Without QEMU, tsvmm's figures alone.
 *
 * The guest's clock counts wall time, and on a shared host the two machines, run one after the
 * other, may get very different shares of a CPU. So the table also gives the host CPU time each
 * process used during each workload (from /proc/PID/stat when the guest prints the workload's
 * start and end lines), and the ratio of those: the figure that holds on a loaded host.
 *
 * Environment: TSVMM_WORKLOAD_SCALE=PERCENT scales every workload (default 100, sized for 1-3 s
 * each on QEMU TCG on an idle machine); TSVMM_WORKLOAD_ONLY=a,b runs those workloads only;
 * TSVMM_WORKLOAD_TRACE=profile[,...] passes `--trace` to tsvmm and shows its profile; without
 * symbols=FILE in it, QEMU's run prints the guest's /proc/kallsyms after the workloads and tsvmm's
 * profile names kernel functions with it (both enter the kernel through PVH: no KASLR). The
 * profile covers the whole run unless it says from= and to=: the guest prints
 * `tsvmm-workload-start NAME` before a workload and `tsvmm-workload NAME` after it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GUESTS_DIR } from '../src/common/nasm.js';
import { findGuestBusybox, findGuestKernel } from '../src/loader/guest-kernels.js';
import { DEFAULT_BUSYBOX_APPLETS, Initramfs, addBaseLayout } from '../src/loader/initramfs.js';
import { watchPeakRss } from './peak-rss.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'tsvmm.js');
const LINE = /^tsvmm-workload (\S+) (\d+) ?(.*?)\r?$/;
const DONE = 'tsvmm-workload: done';
const MEMORY_MIB = 256;
const TIMEOUT_S = 3600;

export interface WorkloadResult {
  name: string;
  ns: number;
  result: string;
  /** Host CPU seconds the machine's process used during the workload, when known. */
  cpuS?: number;
}

interface Run {
  workloads: WorkloadResult[];
  done: boolean;
  status: number | null;
  wallS: number;
  peakRssKiB: number;
  out: string;
  err: string;
}

/** The workload lines of a guest's console output. */
export function parseWorkloadLines(text: string): WorkloadResult[] {
  const out: WorkloadResult[] = [];
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (m) out.push({ name: m[1]!, ns: Number(m[2]), result: m[3]! });
  }
  return out;
}

/** The input of the compression and hashing workloads: ~2.7 MB of numbered lines with pseudo-random fields. */
function workloadData(): Buffer {
  const lines: string[] = [];
  let s = 1;
  for (let i = 0; i < 90000; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 1;
    lines.push(`${i} ${s.toString(16)} line ${s % 1000} of the buffer\n`);
  }
  return Buffer.from(lines.join(''), 'latin1');
}

function writeInitramfs(dir: string, busybox: string): string {
  const fs = addBaseLayout(new Initramfs());
  fs.addFile('/init', readFileSync(join(GUESTS_DIR, 'linux', 'workload.sh')), 0o755);
  fs.addFile('/bin/busybox', readFileSync(busybox), 0o755);
  for (const applet of DEFAULT_BUSYBOX_APPLETS) if (!fs.has(`/${applet}`)) fs.addSymlink(`/${applet}`, '/bin/busybox');
  fs.addFile('/data/buf', workloadData(), 0o644);
  const path = join(dir, 'workload.cpio.gz');
  writeFileSync(path, fs.toGzip());
  return path;
}

/** USER_HZ: the unit of /proc/PID/stat's times (100 on every Linux architecture tsvmm runs on). */
const USER_HZ = 100;

/** CPU seconds (user + system, all threads) a live process has used, or NaN. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // from field 3, state
    return (Number(f[11]) + Number(f[12])) / USER_HZ; // fields 14 and 15, utime and stime
  } catch {
    return NaN;
  }
}

/** Runs a machine to its end; collects its console output, the workload lines, its CPU time in each workload and its peak RSS. */
function runMachine(cmd: string, args: string[], echoErr: boolean): Promise<Run> {
  const t0 = process.hrtime.bigint();
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '', line = '';
  const cpuStart = new Map<string, number>(), cpu = new Map<string, number>();
  const rss = watchPeakRss(child.pid!);
  child.stdout.on('data', (b: Buffer) => {
    const text = b.toString('latin1');
    out += text;
    const lines = (line + text).split('\n');
    line = lines.pop()!;
    for (const l of lines) {
      const start = /^tsvmm-workload-start (\S+)/.exec(l);
      if (start) cpuStart.set(start[1]!, cpuSeconds(child.pid!));
      const end = LINE.exec(l);
      if (end && cpuStart.has(end[1]!)) cpu.set(end[1]!, cpuSeconds(child.pid!) - cpuStart.get(end[1]!)!);
    }
  });
  child.stderr.on('data', (b: Buffer) => {
    err += b.toString('latin1');
    if (echoErr) process.stderr.write(b);
  });
  return new Promise((resolve) => child.on('close', (status) => {
    const peak = rss.stop();
    const workloads = parseWorkloadLines(out).map((w) => (Number.isFinite(cpu.get(w.name)) ? { ...w, cpuS: cpu.get(w.name)! } : w));
    resolve({
      workloads, done: out.includes(DONE), status,
      wallS: Number(process.hrtime.bigint() - t0) / 1e9, peakRssKiB: peak, out, err,
    });
  }));
}

function qemuAvailable(): boolean {
  return spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0;
}

const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;

/** Geometric mean. */
export function geomean(xs: number[]): number {
  return Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
}

export async function run(): Promise<void> {
  const kernel = findGuestKernel();
  const busybox = findGuestBusybox();
  if (!kernel?.vmlinux || !busybox) {
    process.stdout.write('workload: skipped: the Debian kernel (vmlinux) or busybox is not cached: run scripts/fetch-guest-kernel.sh\n');
    return;
  }
  const scale = process.env.TSVMM_WORKLOAD_SCALE;
  const only = process.env.TSVMM_WORKLOAD_ONLY;
  const trace = process.env.TSVMM_WORKLOAD_TRACE;
  const cmdline = ['console=ttyS0', 'quiet', ...(scale ? [`tsvmm.scale=${scale}`] : []), ...(only ? [`tsvmm.only=${only}`] : [])].join(' ');
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-bench-workload-'));
  try {
    const initrd = writeInitramfs(dir, busybox);
    process.stdout.write(`workload: Debian ${kernel.version}, busybox initramfs, '${cmdline}', ${MEMORY_MIB} MiB, PVH entry; load average ${load()}\n`);
    let qemu: Run | undefined;
    let tsvmmTrace = trace;
    if (qemuAvailable()) {
      const kallsyms = trace !== undefined && /(^|,)profile/.test(trace) && !/(^|,)symbols=/.test(trace);
      qemu = await runMachine('qemu-system-x86_64', ['-accel', 'tcg', '-kernel', kernel.vmlinux, '-initrd', initrd,
        '-append', kallsyms ? `${cmdline} tsvmm.kallsyms` : cmdline,
        '-m', String(MEMORY_MIB), '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio'], false);
      if (!qemu.done) throw new Error(`QEMU did not finish the workloads (status ${qemu.status}); last output:\n${qemu.out.slice(-600)}${qemu.err.slice(-600)}`);
      const symbols = /tsvmm-kallsyms-begin\r?\n([\s\S]*?)tsvmm-kallsyms-end/.exec(qemu.out)?.[1];
      if (kallsyms && symbols) {
        writeFileSync(join(dir, 'kallsyms'), symbols);
        tsvmmTrace = `${trace},symbols=${join(dir, 'kallsyms')}`;
      }
    } else {
      process.stdout.write('workload: qemu-system-x86_64 is not installed (Debian: qemu-system-x86): tsvmm figures only\n');
    }
    const tsvmm = await runMachine(process.execPath, [BIN, 'run', '--accel', 'soft', '--kernel', kernel.vmlinux, '--initrd', initrd, '--append', cmdline,
      '-m', `${MEMORY_MIB}M`, '--timeout', String(TIMEOUT_S), ...(tsvmmTrace ? ['--trace', tsvmmTrace] : [])], trace !== undefined);
    if (!tsvmm.done || tsvmm.status !== 0) {
      throw new Error(`tsvmm did not finish the workloads (status ${tsvmm.status}); last output:\n${tsvmm.out.slice(-600)}${tsvmm.err.slice(-600)}`);
    }
    process.stdout.write(report(tsvmm, qemu));
    process.stdout.write(`load average at the end ${load()}\n`);
    const wrong = qemu ? tsvmm.workloads.filter((w) => qemu.workloads.find((q) => q.name === w.name)?.result !== w.result) : [];
    if (wrong.length > 0) throw new Error(`workload: results differ from QEMU's: ${wrong.map((w) => w.name).join(', ')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The table: each workload's guest-clock time and host CPU time on both machines, the ratios, and whether the results agree. */
function report(tsvmm: Run, qemu: Run | undefined): string {
  const s = (ns: number) => (ns / 1e9).toFixed(2).padStart(8);
  const c = (sec: number | undefined) => (sec === undefined ? '-' : sec.toFixed(2)).padStart(8);
  const r = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(2)).padStart(7);
  const lines: string[] = [];
  lines.push(`${''.padEnd(12)} ${'guest clock'.padEnd(25)} ${'host CPU time'.padEnd(25)}`);
  lines.push(`${'workload'.padEnd(12)} ${'qemu s'.padStart(8)} ${'tsvmm s'.padStart(8)} ${'ratio'.padStart(7)} ${'qemu s'.padStart(8)} ${'tsvmm s'.padStart(8)} ${'ratio'.padStart(7)}  result`);
  const ratios: number[] = [], cpuRatios: number[] = [];
  for (const w of tsvmm.workloads) {
    const q = qemu?.workloads.find((x) => x.name === w.name);
    const ratio = q ? w.ns / q.ns : undefined;
    const cpuRatio = q?.cpuS && w.cpuS !== undefined ? w.cpuS / q.cpuS : undefined;
    if (ratio !== undefined) ratios.push(ratio);
    if (cpuRatio !== undefined) cpuRatios.push(cpuRatio);
    const check = !q ? '' : q.result === w.result ? ' (same on both)' : ` MISMATCH: qemu '${q.result}'`;
    lines.push(`${w.name.padEnd(12)} ${q ? s(q.ns) : '       -'} ${s(w.ns)} ${r(ratio)} ${c(q?.cpuS)} ${c(w.cpuS)} ${r(cpuRatio)}  ${w.result}${check}`);
  }
  if (ratios.length > 0) lines.push(`geometric mean of the ratios: guest clock ${geomean(ratios).toFixed(2)}${cpuRatios.length > 0 ? `, host CPU time ${geomean(cpuRatios).toFixed(2)}` : ''}`);
  const rss = (name: string, r: Run) => `${name}: whole run ${r.wallS.toFixed(1)} s, peak RSS ${mib(r.peakRssKiB)}`;
  if (qemu) lines.push(rss('qemu-system-x86_64 tcg', qemu));
  lines.push(rss('tsvmm --accel soft', tsvmm));
  if (qemu && qemu.peakRssKiB > 0) lines.push(`peak RSS ratio ${(tsvmm.peakRssKiB / qemu.peakRssKiB).toFixed(2)}`);
  if (ratios.length > 0) lines.push(`ratio ${geomean(ratios).toFixed(2)}`);
  if (cpuRatios.length > 0) lines.push(`ratio-cpu ${geomean(cpuRatios).toFixed(2)}`);
  return `${lines.join('\n')}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
