/**
 * A long fuzz of the decoder and the disassembler (outside the test suite's time): random 15-byte
 * strings, sometimes cut short, through `decode` (CPU view and objdump view) and `disasmOne` in 16-,
 * 32- and 64-bit mode. Prints the throws (must be 0), the results that break the record's contract
 * (length outside 1..end, `needed` not beyond the input) and inputs/s; the reference in the same run is
 * the loop that only generates the inputs, so the ratio says what one decode + disassembly costs in
 * input generations. test/x86/decoder-fuzz.test.ts runs a smaller count in CI.
 *
 *   npm run bench -- fuzz-decode          (TSVMM_FUZZ_DECODE_COUNT inputs per mode, default 10^7)
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { decode, DecodedInsn, DecodeStatus, type CpuMode } from '../src/x86/decoder.js';
import { disasmOne } from '../src/x86/disasm.js';

const COUNT = Number(process.env['TSVMM_FUZZ_DECODE_COUNT'] ?? 1e7);

let seed = 0x9e3779b9;
function rnd(): number {
  seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
  return seed >>> 0;
}

/** Fills `buf` with random bytes and returns the end (15, or shorter one time in eight). */
function fill(buf: Uint8Array, i: number): number {
  for (let k = 0; k < 15; k += 4) {
    const r = rnd();
    buf[k] = r; buf[k + 1] = r >>> 8; buf[k + 2] = r >>> 16; if (k + 3 < 15) buf[k + 3] = r >>> 24;
  }
  return (i & 7) === 0 ? 1 + (rnd() % 15) : 15;
}

interface ModeResult { throws: number; broken: number; first: string[]; seconds: number }

function fuzzMode(mode: CpuMode, n: number): ModeResult {
  const buf = new Uint8Array(15);
  const insn = new DecodedInsn();
  const res: ModeResult = { throws: 0, broken: 0, first: [], seconds: 0 };
  const hex = () => Array.from(buf, (b) => b.toString(16).padStart(2, '0')).join(' ');
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const end = fill(buf, i);
    try {
      for (const compat of [false, true]) {
        decode(buf, 0, end, mode, insn, compat);
        const okLen = insn.status === DecodeStatus.Truncated ? insn.needed > end && insn.needed <= 15
          : insn.length >= (insn.status === DecodeStatus.Ok ? 1 : 0) && insn.length <= 15;
        if (!okLen) { res.broken++; if (res.first.length < 5) res.first.push(`${mode}-bit ${hex()} (end ${end}): status ${insn.status} length ${insn.length} needed ${insn.needed}`); }
      }
      const line = disasmOne(buf, 0, end, mode, 0x1000n, insn);
      if (line.length < 1 || line.length > end || line.text.length === 0) {
        res.broken++;
        if (res.first.length < 5) res.first.push(`${mode}-bit ${hex()} (end ${end}): disassembly length ${line.length} '${line.text}'`);
      }
    } catch (e) {
      res.throws++;
      if (res.first.length < 5) res.first.push(`${mode}-bit ${hex()} (end ${end}): threw ${String(e)}`);
    }
  }
  res.seconds = (performance.now() - t0) / 1000;
  return res;
}

export async function run(): Promise<void> {
  // reference: generating the inputs alone
  const buf = new Uint8Array(15);
  let sink = 0;
  const r0 = performance.now();
  const refN = Math.min(COUNT, 2e6);
  for (let i = 0; i < refN; i++) sink ^= fill(buf, i) ^ buf[3]!;
  const refRate = refN / ((performance.now() - r0) / 1000);
  let throws = 0;
  let broken = 0;
  for (const mode of [16, 32, 64] as CpuMode[]) {
    const r = fuzzMode(mode, COUNT);
    throws += r.throws;
    broken += r.broken;
    const rate = COUNT / r.seconds;
    process.stdout.write(`fuzz-decode: ${mode}-bit: ${COUNT} inputs, ${r.throws} throws, ${r.broken} broken results, ` +
      `${(rate / 1e3).toFixed(0)} k inputs/s (decode x2 + disassembly); ratio ${(refRate / rate).toFixed(1)} input generations per input\n`);
    for (const f of r.first) process.stdout.write(`  ${f}\n`);
  }
  process.stdout.write(`fuzz-decode: total ${3 * COUNT} inputs, throws ${throws}, broken ${broken}${sink === 0.5 ? '' : ''}\n`);
  if (throws || broken) process.exitCode = 1;
}

export { run as bench };

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run();
