/**
 * bench/exit-cost: the cost of one port-I/O exit round trip through tsvmm's API (run() returning
 * a decoded exit, assistIo calling a device callback), as a ratio to a C loop over the same
 * ioctls on the same guest, compiled with gcc and run in the same invocation. Rounds alternate
 * between the two so that machine noise hits both; the figure per side is its best round (noise
 * only ever adds time), and the medians are printed beside it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KvmBackend } from '../src/backends/kvm/kvm-backend.js';
import { HostMemory } from '../src/memory/host-memory.js';
import { assistIo } from '../src/nvmm/assist.js';
import { PROT } from '../src/nvmm/backend.js';
import { Machine } from '../src/nvmm/machine.js';

const ROUNDS = 9;
const ITERATIONS = 20_000;
const SOURCE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'reference', 'exit-cost.c');

function best(xs: number[]): number {
  return Math.min(...xs);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** ns per exit through the API, over `iterations` exits. */
function tsvmmRound(run: () => void, iterations: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) run();
  return Number(process.hrtime.bigint() - t0) / iterations;
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-bench-'));
  try {
    const binary = join(dir, 'exit-cost');
    execFileSync('gcc', ['-O2', '-o', binary, SOURCE]);

    const machine = new Machine(KvmBackend.open());
    const page = HostMemory.allocate(4096);
    page.bytes.set([0xe6, 0x10, 0xeb, 0xfc], 0xff0); // out %al,$0x10; jmp .-4 at the reset vector
    machine.mapHva(page);
    machine.mapGpa(0xfffff000, page.hva, 4096, PROT.READ | PROT.EXEC);
    const vcpu = machine.createVcpu(0);
    let bytesOut = 0;
    const device = () => void bytesOut++;
    const step = () => {
      const exit = vcpu.run();
      if (exit.kind !== 'io' || exit.port !== 0x10) throw new Error(`unexpected exit ${exit.kind}`);
      assistIo(vcpu, device);
    };
    for (let i = 0; i < 2000; i++) step(); // warm-up: JIT and caches

    const c: number[] = [];
    const ts: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      c.push(Number(execFileSync(binary, [String(ITERATIONS)], { encoding: 'utf8' }).trim()));
      ts.push(tsvmmRound(step, ITERATIONS));
    }
    machine.destroy();
    page.free();
    const us = (ns: number) => (ns / 1000).toFixed(2);
    process.stdout.write(`exit-cost: PIO exit round trip, ${ROUNDS} alternating rounds of ${ITERATIONS} exits (best round; median)\n`);
    process.stdout.write(`C loop over the same ioctls (gcc -O2): ${us(best(c))} us/exit; median ${us(median(c))}\n`);
    process.stdout.write(`tsvmm API (run + assistIo):            ${us(best(ts))} us/exit; median ${us(median(ts))}\n`);
    process.stdout.write(`median ratio ${(median(ts) / median(c)).toFixed(3)}\n`);
    process.stdout.write(`ratio ${(best(ts) / best(c)).toFixed(3)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
