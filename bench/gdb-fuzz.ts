/**
 * gdb-fuzz: 10^6 hostile inputs through the GDB stub and its packet reader (test/vmm/gdb-fuzz.ts,
 * against a fake machine), the long run of the fuzz test. Prints the host exceptions and
 * malformed replies (both must be 0), the most the stub held (partial packet bytes, waiting
 * commands), RSS growth, the rate, and `ratio R`: the cost of one fuzzed input against one
 * well-formed `m` (memory read) request and its reply through the same stub in the same run.
 * TSVMM_GDB_FUZZ_INPUTS sets the count.
 */
import { performance } from 'node:perf_hooks';
import { encodePacket } from '../src/vmm/gdb/packet.js';
import { GdbStub } from '../src/vmm/gdb/stub.js';
import { FakeTarget, FUZZ_BOUNDS, Prng, fuzzGdbStub } from '../test/vmm/gdb-fuzz.js';

const MiB = 1 << 20;

/** µs per well-formed 64-byte memory read, request to reply. */
async function referenceRead(count: number): Promise<number> {
  const stub = new GdbStub(new FakeTarget(new Prng(7)), () => {});
  const packet = encodePacket('m100000,40');
  const t = performance.now();
  for (let i = 0; i < count; i++) {
    stub.feed(packet);
    await stub.idle();
  }
  return ((performance.now() - t) * 1000) / count;
}

export async function run(): Promise<void> {
  const inputs = Number(process.env.TSVMM_GDB_FUZZ_INPUTS ?? 1_000_000);
  await referenceRead(20_000);
  await fuzzGdbStub(20_000, 99);
  const rssBefore = process.memoryUsage().rss;
  const t = performance.now();
  const r = await fuzzGdbStub(inputs, 1);
  const s = (performance.now() - t) / 1000;
  const growth = (process.memoryUsage().rss - rssBefore) / MiB;
  const refUs = await referenceRead(100_000);
  const fuzzUs = (s * 1e6) / inputs;
  process.stdout.write(
    `gdb-fuzz: ${r.inputs} inputs in ${s.toFixed(1)} s (${fuzzUs.toFixed(2)} µs/input), ${r.replies} replies, ${r.sessions} sessions; ` +
      `host exceptions ${r.exceptions}, malformed replies ${r.malformed}; held at most ${r.maxBuffered} bytes (bound ${FUZZ_BOUNDS.buffered}) ` +
      `and ${r.maxQueued} commands (bound ${FUZZ_BOUNDS.queued}); RSS growth ${growth.toFixed(1)} MiB\n` +
      `reference: a well-formed memory read ${refUs.toFixed(2)} µs; ratio ${(fuzzUs / refUs).toFixed(2)}\n`,
  );
  const bad = r.exceptions > 0 || r.malformed > 0 || r.maxBuffered > FUZZ_BOUNDS.buffered || r.maxQueued > FUZZ_BOUNDS.queued;
  if (r.exceptions > 0) process.stdout.write(`first exception: ${r.firstException}\n`);
  if (r.malformed > 0) process.stdout.write(`first malformed reply: ${r.firstMalformed}\n`);
  if (bad) process.exitCode = 1;
}
