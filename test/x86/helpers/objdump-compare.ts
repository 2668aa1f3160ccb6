/**
 * Comparing tsvmm's disassembler with GNU objdump (the oracle) over generated instructions, shared by
 * the structured generator (disasm-objdump.test.ts) and the random-bytes one (disasm-random.test.ts).
 *
 Each candidate (15 bytes) is laid out as
 *     [candidate][24 zero bytes][F8]
 * so that a length disagreement cannot desynchronise the rest: an instruction objdump starts in the
 * candidate's tail ends inside the zeros, objdump collapses zero runs in multiples of 4 and the
 * leftover 0-3 zeros always pair up with the F8 (`add %bh,%al` / `clc`). objdump runs once per mode
 * over the whole blob; lines are matched by address. With `cut`, a candidate is first cut to the length
 * tsvmm decodes (both sides then see zeros where tsvmm stopped: this hides an instruction tsvmm ends too
 * early, so the random-bytes comparison does not cut).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decode, DecodedInsn, DecodeStatus, type CpuMode } from '../../../src/x86/decoder.js';
import { disasmOne } from '../../../src/x86/disasm.js';

export const OBJDUMP = '/usr/bin/objdump';
const PAD = 24;

/** xorshift32: small, seeded, reproducible. */
export class Rng {
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

export function hexBytes(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}

export interface Mismatch {
  /** The bytes both sides looked at (the longer of the two lengths). */
  bytes: string;
  /** The four bytes after them (for classification). */
  next: string;
  ours: string;
  theirs: string;
}

export interface CompareResult {
  total: number;
  agree: number;
  mismatches: Mismatch[];
}

/**
 * Generates `count` candidates with `candidate` (which fills 15 bytes), disassembles them with tsvmm
 * and with objdump (one run, in `dir`), and counts the instructions both print alike (length and text,
 * whitespace-normalised).
 */
export function compareWithObjdump(mode: CpuMode, count: number, dir: string,
  candidate: (out: Uint8Array) => void, cut = true): CompareResult {
  const cand = new Uint8Array(15);
  const insn = new DecodedInsn();
  const blob = new Uint8Array(count * (15 + PAD + 1));
  const offsets: number[] = [];
  let off = 0;
  for (let i = 0; i < count; i++) {
    candidate(cand);
    decode(cand, 0, 15, mode, insn);
    let len = insn.status === DecodeStatus.Ok ? insn.length : Math.max(1, insn.length);
    if (insn.status === DecodeStatus.Truncated || !cut) len = 15;
    // objdump would swallow an instruction starting with 4 zeros into its zero-run skipping
    if (cand.subarray(0, Math.min(len, 4)).every((x) => x === 0)) continue;
    offsets.push(off);
    blob.set(cand.subarray(0, len), off);
    off += len + PAD; // zeros already there
    blob[off++] = 0xf8;
  }
  const data = blob.subarray(0, off);
  const file = join(dir, `blob${mode}.bin`);
  writeFileSync(file, data);
  const theirs = runObjdump(file, mode);
  const res: CompareResult = { total: offsets.length, agree: 0, mismatches: [] };
  for (const o of offsets) {
    const t = theirs.get(o);
    const ours = disasmOne(data, o, data.length, mode, BigInt(o), insn);
    const ourText = norm(ours.text);
    if (t && t.len === ours.length && t.text === ourText) {
      res.agree++;
    } else {
      const n = Math.max(ours.length, t ? t.len : 0, 1);
      res.mismatches.push({
        bytes: hexBytes(data.subarray(o, o + n)),
        next: hexBytes(data.subarray(o + n, o + n + 4)),
        ours: `${ours.length} ${ourText}`,
        theirs: t ? `${t.len} ${t.text}` : '(no line)',
      });
    }
  }
  return res;
}
