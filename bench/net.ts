/**
 * bench/net: guest-to-host TCP throughput over passt inside Debian's Linux, on tsvmm's software CPU
 * and on QEMU's TCG in one invocation: the same vmlinux (entered through PVH by both), initramfs
 * (`tsvmm initramfs --net-dhcp`, guests/linux/net-bench.sh as its script), command line and
 * memory, and the same backend: passt. tsvmm starts it itself (--nic user); QEMU 7.2 connects to
 * one this bench starts with `-netdev stream` on passt's UNIX socket (the way passt's own
 * documentation pairs them), under virtio-net-pci on its pc machine. The guest sends 64 MiB of
 * zeros with nc to the default gateway, which passt maps to the host's loopback, where this
 * bench's server counts them and times them from the first byte to the last (boot and DHCP left
 * out). Prints MiB/s for each, the ratio (tsvmm / QEMU, of throughput: below 1 is slower) and
 * both processes' peak RSS. Without QEMU or its stream netdev, tsvmm's figures alone, saying why.
 *
 * The server says one byte (a newline, which nc prints) when the connection opens. Without it,
 * passt 2023-03 resets the connection 24 s after it opened, under either machine (measured with
 * QEMU too, with a guest sending a line a second): for a connection the guest opened, passt
 * waits for the guest to acknowledge data it sent (its ACK_FROM_TAP_DUE flag, set with the
 * SYN-ACK, its timer armed for 10 s); the guest's ACK of the SYN-ACK does not clear it (passt
 * starts its acknowledged sequence one past the SYN, so only an ACK beyond that counts), so
 * with nothing sent the timer expires at 10 s and then every 2 s (ACK_TIMEOUT), and after
 * TCP_MAX_RETRANS (7) retries passt resets the connection. QEMU's 64 MiB took less than that;
 * the software CPU's take longer. One byte to the guest, once acknowledged, clears the flag.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../src/cli/main.js';
import { linuxGuest } from '../test/helpers/linux.js';
import { watchPeakRss } from './peak-rss.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'tsvmm.js');
const INIT = join(ROOT, 'guests', 'linux', 'net-bench.sh');
const DONE = 'tsvmm-net: done';
const MEMORY_MIB = 256;
const SEND_BYTES = 64 << 20;
const TIMEOUT_S = 1800;
/** virtio over MMIO (tsvmm) and over PCI (QEMU's pc machine), then the network driver. */
const MODULES = 'virtio_mmio,virtio_pci,virtio_net';
/** The user passt runs as when root starts it (what it would pick itself). */
const NOBODY = 65534;

interface Run {
  /** Nanoseconds from the first byte received to the last, when all arrived. */
  ns?: number;
  received: number;
  done: boolean;
  status: number | null;
  peakRssKiB: number;
  out: string;
}

/** A server on the host's loopback that takes one connection and times SEND_BYTES through it. */
async function sink(): Promise<{ server: Server; port: number; result: () => { ns?: number; received: number } }> {
  let received = 0;
  let first: bigint | undefined;
  let ns: number | undefined;
  const server = createServer((socket) => {
    socket.write('\n'); // passt (2023-03) resets a connection over which it sent nothing: see the header
    socket.on('data', (b: Buffer) => {
      first ??= process.hrtime.bigint();
      received += b.length;
      if (received >= SEND_BYTES && ns === undefined) {
        ns = Number(process.hrtime.bigint() - first);
        socket.end();
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, result: () => ({ ns, received }) };
}

async function runMachine(cmd: string, args: (port: number) => string[]): Promise<Run> {
  const { server, port, result } = await sink();
  const child = spawn(cmd, args(port), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const rss = watchPeakRss(child.pid!);
  child.stdout.on('data', (b: Buffer) => (out = (out + b.toString('latin1')).slice(-20000)));
  child.stderr.on('data', (b: Buffer) => (out = (out + b.toString('latin1')).slice(-20000)));
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const peak = rss.stop();
  server.close();
  return { ...result(), done: out.includes(DONE), status, peakRssKiB: peak, out };
}

/** passt listening for QEMU on a UNIX socket in `dir`, for one connection; resolves once the socket is there. */
async function startPasst(dir: string): Promise<{ child: ChildProcess; socket: string }> {
  const root = process.getuid?.() === 0;
  if (root) chownSync(dir, NOBODY, NOBODY);
  const socket = join(dir, 'passt.socket');
  const child = spawn('passt', ['--foreground', '--one-off', '--quiet', '--socket', socket, ...(root ? ['--runas', `${NOBODY}:${NOBODY}`] : [])], { stdio: ['ignore', 'ignore', 'pipe'] });
  let said = '';
  child.stderr!.on('data', (b: Buffer) => (said += b.toString('latin1')));
  for (let waited = 0; !existsSync(socket); waited += 20) {
    if (child.exitCode !== null || waited > 10_000) throw new Error(`passt did not make its socket: ${said}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { child, socket };
}

const mibPerS = (ns: number | undefined) => (ns === undefined ? undefined : (SEND_BYTES / (1 << 20)) / (ns / 1e9));
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

/** Why QEMU cannot be the reference here, or undefined when it can. */
function qemuMissing(): string | undefined {
  const help = spawnSync('qemu-system-x86_64', ['-netdev', 'help'], { encoding: 'latin1' });
  if (help.error || help.status !== 0) return 'qemu-system-x86_64 is not installed (Debian: qemu-system-x86)';
  if (!/^stream$/m.test(help.stdout)) return 'this QEMU has no -netdev stream (QEMU 7.2 and later): it cannot reach passt as tsvmm does';
  return undefined;
}

export async function run(): Promise<void> {
  const guest = linuxGuest();
  if (typeof guest === 'string' || !guest.vmlinux) {
    process.stdout.write(`net: skipped: ${typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)'}\n`);
    return;
  }
  if (spawnSync('passt', ['--version'], { stdio: 'ignore' }).error) {
    process.stdout.write('net: skipped: passt is not installed (Debian package passt)\n');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-bench-net-'));
  try {
    const initrd = join(dir, 'initrd.gz');
    let said = '';
    const made = await main(['initramfs', '--init', INIT, '--modules', MODULES, '--net-dhcp', '-o', initrd], { out: (s) => void (said += s), err: (s) => void (said += s) });
    if (made !== 0) throw new Error(`tsvmm initramfs failed: ${said}`);
    const cmdline = (port: number) => `console=ttyS0 quiet tsvmm.netbench=${port}`;
    process.stdout.write(`net: Debian ${guest.version}, ${SEND_BYTES >> 20} MiB guest to host over TCP (nc) through passt, ${MEMORY_MIB} MiB, PVH entry; load average ${load()}\n`);
    let qemu: Run | undefined;
    const missing = qemuMissing();
    if (missing === undefined) {
      const passtDir = mkdtempSync(join(tmpdir(), 'tsvmm-bench-passt-'));
      try {
        const passt = await startPasst(passtDir);
        qemu = await runMachine('qemu-system-x86_64', (port) => ['-accel', 'tcg', '-kernel', guest.vmlinux!, '-initrd', initrd, '-append', cmdline(port),
          '-m', String(MEMORY_MIB), '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio',
          '-netdev', `stream,id=n0,server=off,addr.type=unix,addr.path=${passt.socket}`, '-device', 'virtio-net-pci,netdev=n0']);
        if (passt.child.exitCode === null) passt.child.kill();
      } finally {
        rmSync(passtDir, { recursive: true, force: true });
      }
      if (!qemu.done || qemu.ns === undefined) throw new Error(`QEMU did not finish (status ${qemu.status}, ${qemu.received} bytes received); last output:\n${qemu.out.slice(-1500)}`);
      process.stdout.write(`net: qemu-system-x86_64 tcg: ${mibPerS(qemu.ns)!.toFixed(1)} MiB/s\n`);
    } else {
      process.stdout.write(`net: ${missing}: tsvmm figures only\n`);
    }
    const tsvmm = await runMachine(process.execPath, (port) => [BIN, 'run', '--accel', 'soft', '--kernel', guest.vmlinux!, '--initrd', initrd, '--append', cmdline(port),
      '-m', `${MEMORY_MIB}M`, '--nic', 'user', '--timeout', String(TIMEOUT_S)]);
    if (!tsvmm.done || tsvmm.status !== 0 || tsvmm.ns === undefined) throw new Error(`tsvmm did not finish (status ${tsvmm.status}, ${tsvmm.received} bytes received); last output:\n${tsvmm.out.slice(-1500)}`);
    const q = mibPerS(qemu?.ns);
    const s = mibPerS(tsvmm.ns)!;
    const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;
    const lines = [
      `${'direction'.padEnd(14)} ${'qemu MiB/s'.padStart(10)} ${'tsvmm MiB/s'.padStart(11)} ${'ratio'.padStart(7)}`,
      `${'guest-to-host'.padEnd(14)} ${(q === undefined ? '-' : q.toFixed(1)).padStart(10)} ${s.toFixed(1).padStart(11)} ${(q === undefined ? '-' : (s / q).toFixed(2)).padStart(7)}`,
    ];
    if (qemu) lines.push(`qemu-system-x86_64 tcg (virtio-net-pci, -netdev stream to passt): peak RSS ${mib(qemu.peakRssKiB)} (passt not counted)`);
    lines.push(`tsvmm --accel soft (--nic user): peak RSS ${mib(tsvmm.peakRssKiB)} (passt not counted)`);
    if (q !== undefined) lines.push(`ratio ${(s / q).toFixed(2)} (tsvmm / QEMU throughput)`);
    process.stdout.write(`${lines.join('\n')}\nload average at the end ${load()}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
