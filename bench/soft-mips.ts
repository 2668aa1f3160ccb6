/**
 * soft-mips: instruction rate of the soft CPU against QEMU's TCG on the same CPU-bound 64-bit guest
 * (guests/soft/mips.asm: sieve, CRC32, memcpy loops; it enters long mode itself).
 *
 * The soft CPU counts the instructions it retires; TCG executes the same deterministic stream. QEMU
 * is timed as a whole process twice (ITER = BIG and ITER = SMALL) and the difference is divided into
 * the difference of the instruction counts, which removes QEMU's start-up and boot. The soft CPU is
 * measured both ways: its first (cold) BIG run as a whole, and like QEMU, the difference of a BIG and
 * a SMALL run (each a new machine, after one SMALL run that warms the process), which removes the
 * block compiler's warm-up as QEMU's translation warm-up is removed. Prints the rates, `ratio R`
 * (like for like: soft differential / TCG) and `ratio-cold` (soft cold whole run / TCG).
 * TSVMM_MIPS_ITER sets BIG; TSVMM_SOFT_JIT=off measures the interpreter alone.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SoftBackend } from '../src/backends/soft/soft-backend.js';
import { assemble } from '../src/common/nasm.js';
import { PROT } from '../src/nvmm/backend.js';
import { Machine } from '../src/nvmm/machine.js';
import { GPR, STATE } from '../src/nvmm/state.js';
import { enterFlat32 } from '../src/selftest/guest-x64.js';

const LOAD = 0x100000;
const RAM = 8 << 20;

function build(iter: number): Uint8Array {
  return assemble('soft/mips.asm', { defines: { ITER: iter } });
}


/** Runs the image on the soft CPU from the multiboot entry state; returns instructions and ms. */
export function runSoft(image: Uint8Array): { instructions: number; ms: number; exit: string } {
  const backend = SoftBackend.open();
  const machine = new Machine(backend);
  const mem = machine.allocateMemory(RAM);
  try {
    machine.mapHva(mem);
    machine.mapGpa(0, mem.hva, RAM, PROT.ALL);
    mem.bytes.set(image, LOAD);
    const vcpu = machine.createVcpu(0);
    const s = enterFlat32(vcpu, LOAD + 32); // start32, right after the 32-byte multiboot header
    s.gprs[GPR.RAX] = 0x2badb002n;
    vcpu.setState(STATE.ALL);
    const t0 = performance.now();
    let exit = vcpu.run();
    while (exit.kind === 'none') exit = vcpu.run();
    const ms = performance.now() - t0;
    const count = softInstructionCount(machine);
    return { instructions: count, ms, exit: exit.kind === 'io' ? `io 0x${exit.port.toString(16)}` : exit.kind === 'invalid' ? exit.reason : exit.kind };
  } finally {
    machine.destroy();
    mem.free();
  }
}

/** The soft vCPU's retired-instruction counter (through the backend object, a benchmark-only peek). */
function softInstructionCount(machine: Machine): number {
  const impl = (machine as unknown as { impl: { vcpuList?: () => { exec: { icount: number } }[] } }).impl;
  const list = impl.vcpuList?.() ?? [];
  return list.reduce((a, v) => a + v.exec.icount, 0);
}

function runQemu(dir: string, image: Uint8Array, iter: number): number {
  const path = join(dir, `mips-${iter}.bin`);
  writeFileSync(path, image);
  const t0 = performance.now();
  const r = spawnSync('qemu-system-x86_64', ['-accel', 'tcg', '-m', '64', '-nodefaults', '-display', 'none', '-no-reboot',
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=4', '-kernel', path], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
  const ms = performance.now() - t0;
  if (r.status !== 1) throw new Error(`qemu exited with ${r.status} (${r.error?.message ?? ''}): ${r.stderr?.toString().trim()}`);
  return ms;
}

export async function run(): Promise<void> {
  const big = Number(process.env.TSVMM_MIPS_ITER ?? 1000);
  const small = Math.max(1, Math.floor(big / 10));
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-mips-'));
  try {
    const imgBig = build(big), imgSmall = build(small);
    const softCold = runSoft(imgBig);
    if (!softCold.exit.startsWith('io 0xf4')) throw new Error(`soft run ended with ${softCold.exit}`);
    runSoft(imgSmall);
    const softBig = runSoft(imgBig);
    const softSmall = runSoft(imgSmall);
    const coldRate = softCold.instructions / softCold.ms / 1000;
    const softRate = (softBig.instructions - softSmall.instructions) / Math.max(1, softBig.ms - softSmall.ms) / 1000;
    const hasQemu = spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0;
    process.stdout.write(`soft-mips: guest ${big} iterations, ${softBig.instructions} instructions\n`);
    process.stdout.write(`soft  ${coldRate.toFixed(1)} MIPS cold (${softCold.ms.toFixed(0)} ms, first run in the process)\n`);
    process.stdout.write(`soft  ${softRate.toFixed(1)} MIPS (${softBig.ms.toFixed(0)} ms and ${softSmall.ms.toFixed(0)} ms for ${big} and ${small} iterations)\n`);
    if (!hasQemu) {
      process.stdout.write('tcg   skipped: qemu-system-x86_64 not installed (apt-get install qemu-system-x86)\n');
      return;
    }
    const qBig = runQemu(dir, imgBig, big), qSmall = runQemu(dir, imgSmall, small);
    const tcgRate = (softBig.instructions - softSmall.instructions) / Math.max(1, qBig - qSmall) / 1000;
    process.stdout.write(`tcg   ${tcgRate.toFixed(1)} MIPS (${qBig.toFixed(0)} ms and ${qSmall.toFixed(0)} ms for ${big} and ${small} iterations)\n`);
    process.stdout.write(`ratio ${(softRate / tcgRate).toFixed(3)}\n`);
    process.stdout.write(`ratio-cold ${(coldRate / tcgRate).toFixed(3)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
