/**
 * Differential test: tsvmm's disassembler against GNU objdump (the oracle), per mode.
 *
 * A seeded generator builds random encodings over every opcode map (one-byte, 0F, 0F38, 0F3A, x87,
 * VEX) with random legacy prefixes, REX, ModRM, SIB, displacements and immediates. Each candidate is
 * cut to the length tsvmm decodes and laid out as
 *     [instruction][24 zero bytes][F8]
 * so that a length disagreement cannot desynchronise the rest: objdump collapses zero runs in
 * multiples of 4 and the leftover 0-3 zeros always pair up with the F8 (`add %bh,%al` / `clc`).
 * objdump runs once per mode over the whole blob; lines are matched by address.
 *
 * Env: TSVMM_DISASM_COUNT (encodings per mode, default 100000), TSVMM_DISASM_SEED,
 *      TSVMM_DISASM_VERBOSE=1 (print mismatch classes), TSVMM_DISASM_MODES (e.g. "64").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode, DecodedInsn, DecodeStatus, type CpuMode } from '../../src/x86/decoder.js';
import { disasmOne } from '../../src/x86/disasm.js';

const COUNT = Number(process.env['TSVMM_DISASM_COUNT'] ?? 100000);
const SEED = Number(process.env['TSVMM_DISASM_SEED'] ?? 12345);
const VERBOSE = process.env['TSVMM_DISASM_VERBOSE'] === '1';
const MODES = (process.env['TSVMM_DISASM_MODES'] ?? '16,32,64').split(',').map(Number) as CpuMode[];
/** If set, every mismatch is written to `${DUMP}.${mode}` (one per line) for classification. */
const DUMP = process.env['TSVMM_DISASM_DUMP'];
const OBJDUMP = '/usr/bin/objdump';
const PAD = 24;
/**
 * Regression floors per mode (measured agreement at the time of writing, 99.99-99.999 % over five seeds,
 * minus a margin). The classes still disagreeing are listed in test/vectors/x86/README.md.
 */
const FLOOR: Record<CpuMode, number> = { 16: 0.9995, 32: 0.9995, 64: 0.9995 };
const TARGET = 0.999;

/** xorshift32: small, seeded, reproducible. */
class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  int(n: number): number {
    return this.next() % n;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
}

const LEGACY_PREFIXES = [0x66, 0x66, 0x67, 0xf2, 0xf3, 0xf0, 0x2e, 0x3e, 0x26, 0x36, 0x64, 0x65];

/** One random candidate (15 bytes; the decoder decides how many of them form the instruction). */
function candidate(rng: Rng, mode: CpuMode, out: Uint8Array): void {
  let p = 0;
  // legacy prefixes
  const np = rng.int(8);
  const nPrefixes = np < 4 ? 0 : np < 6 ? 1 : np < 7 ? 2 : 3;
  for (let i = 0; i < nPrefixes; i++) out[p++] = rng.pick(LEGACY_PREFIXES);
  if (mode === 64 && rng.int(5) < 2) out[p++] = 0x40 | rng.int(16);
  const cls = rng.int(100);
  if (cls < 35) {
    // one-byte map (not a prefix, not 0F)
    let b: number;
    do {
      b = rng.int(256);
    } while (b === 0x0f || [0x66, 0x67, 0xf2, 0xf3, 0xf0, 0x2e, 0x3e, 0x26, 0x36, 0x64, 0x65].includes(b) ||
      (mode === 64 && (b & 0xf0) === 0x40) || (b >= 0xd8 && b <= 0xdf) || b === 0xc4 || b === 0xc5);
    out[p++] = b;
  } else if (cls < 43) {
    out[p++] = 0xd8 + rng.int(8);
  } else if (cls < 73) {
    out[p++] = 0x0f;
    let b: number;
    do {
      b = rng.int(256);
    } while (b === 0x38 || b === 0x3a);
    out[p++] = b;
  } else if (cls < 83) {
    out[p++] = 0x0f;
    out[p++] = 0x38;
    out[p++] = rng.int(256);
  } else if (cls < 90) {
    out[p++] = 0x0f;
    out[p++] = 0x3a;
    out[p++] = rng.int(256);
  } else {
    // VEX (2- or 3-byte); in 16/32-bit modes the byte after C4/C5 must have mod == 11
    const three = rng.int(2) === 0;
    out[p++] = three ? 0xc4 : 0xc5;
    let b1 = rng.int(256);
    if (mode !== 64) b1 |= 0xc0;
    if (three) {
      b1 = (b1 & 0xe0) | (1 + rng.int(3));
      out[p++] = b1;
      out[p++] = rng.int(256);
    } else out[p++] = b1;
    out[p++] = rng.int(256);
  }
  // ModRM, SIB, displacement, immediates: random, with a bias towards interesting shapes
  const modrm = rng.int(256);
  out[p++] = modrm;
  while (p < 15) {
    const r = rng.int(8);
    out[p++] = r === 0 ? 0 : r === 1 ? 0xff : rng.int(256);
  }
}

interface Line {
  len: number;
  text: string;
}

function runObjdump(file: string, mode: CpuMode): Map<number, Line> {
  const arch = mode === 64 ? 'i386:x86-64' : mode === 32 ? 'i386' : 'i8086';
  const r = spawnSync(OBJDUMP, ['-D', '-w', '-b', 'binary', '-m', arch, file], {
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  assert.equal(r.status, 0, r.stderr);
  const lines = new Map<number, Line>();
  for (const line of r.stdout.split('\n')) {
    const m = /^ *([0-9a-f]+):\t([0-9a-f ]+)\t?(.*)$/.exec(line);
    if (!m) continue;
    const len = m[2]!.trim().split(/ +/).length;
    lines.set(parseInt(m[1]!, 16), { len, text: norm(m[3]!) });
  }
  return lines;
}

function norm(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

function hexBytes(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}

interface Result {
  total: number;
  agree: number;
  mismatches: { bytes: string; ours: string; theirs: string }[];
}

function runMode(mode: CpuMode, count: number, seed: number, dir: string): Result {
  const rng = new Rng(seed ^ (mode * 0x9e3779b1));
  const cand = new Uint8Array(15);
  const insn = new DecodedInsn();
  const blob = new Uint8Array(count * (15 + PAD + 1));
  const offsets: number[] = [];
  let off = 0;
  for (let i = 0; i < count; i++) {
    candidate(rng, mode, cand);
    decode(cand, 0, 15, mode, insn);
    let len = insn.status === DecodeStatus.Ok ? insn.length : Math.max(1, insn.length);
    if (insn.status === DecodeStatus.Truncated) len = 15;
    // objdump would swallow an all-zero instruction into its zero-run skipping
    if (cand.subarray(0, len).every((x) => x === 0)) continue;
    offsets.push(off);
    blob.set(cand.subarray(0, len), off);
    off += len + PAD; // zeros already there
    blob[off++] = 0xf8;
  }
  const data = blob.subarray(0, off);
  const file = join(dir, `blob${mode}.bin`);
  writeFileSync(file, data);
  const theirs = runObjdump(file, mode);
  const res: Result = { total: offsets.length, agree: 0, mismatches: [] };
  for (const o of offsets) {
    const t = theirs.get(o);
    const ours = disasmOne(data, o, data.length, mode, BigInt(o), insn);
    const ourText = norm(ours.text);
    if (t && t.len === ours.length && t.text === ourText) {
      res.agree++;
    } else {
      const theirLen = t ? t.len : 0;
      res.mismatches.push({
        bytes: hexBytes(data.subarray(o, o + Math.max(ours.length, theirLen, 1))) +
          (DUMP ? ` [${hexBytes(data.subarray(o + Math.max(ours.length, theirLen, 1), o + Math.max(ours.length, theirLen, 1) + 4))}]` : ''),
        ours: `${ours.length} ${ourText}`,
        theirs: t ? `${t.len} ${t.text}` : '(no line)',
      });
    }
  }
  return res;
}

const haveObjdump = existsSync(OBJDUMP);

for (const mode of MODES) {
  test(`disassembly agrees with objdump in ${mode}-bit mode`, (t) => {
    if (!haveObjdump) {
      t.skip('objdump not installed');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'tsvmm-disasm-'));
    try {
      const res = runMode(mode, COUNT, SEED, dir);
      const rate = res.agree / res.total;
      const msg = `${mode}-bit: ${res.agree}/${res.total} agree (${(rate * 100).toFixed(3)} %)`;
      t.diagnostic(msg);
      if (DUMP) {
        writeFileSync(`${DUMP}.${mode}`, res.mismatches.map((m) => `${m.bytes} | ours: ${m.ours} | objdump: ${m.theirs}\n`).join(''));
      }
      if (rate < TARGET) t.diagnostic(`below the ${TARGET * 100} % target; see test/vectors/x86/README.md`);
      if (VERBOSE || rate < FLOOR[mode]) {
        for (const m of res.mismatches.slice(0, VERBOSE ? 400 : 25)) {
          t.diagnostic(`${m.bytes} | ours: ${m.ours} | objdump: ${m.theirs}`);
        }
      }
      assert.ok(rate >= FLOOR[mode], msg);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
