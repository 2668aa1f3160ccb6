/** Fuzz: random byte strings never make the decoder (or the disassembler) throw or run away. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, DecodedInsn, DecodeStatus, type CpuMode } from '../../src/x86/decoder.js';
import { disasmOne } from '../../src/x86/disasm.js';

const N = Number(process.env['TSVMM_FUZZ_COUNT'] ?? 200000);

for (const mode of [16, 32, 64] as CpuMode[]) {
  test(`decoder survives ${N} random 15-byte strings in ${mode}-bit mode`, () => {
    let s = 0x1234567 ^ mode;
    const rnd = (): number => {
      s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
      return s >>> 0;
    };
    const buf = new Uint8Array(15);
    const insn = new DecodedInsn();
    const counts = [0, 0, 0];
    for (let i = 0; i < N; i++) {
      for (let k = 0; k < 15; k += 4) {
        const r = rnd();
        buf[k] = r; buf[k + 1] = r >>> 8; buf[k + 2] = r >>> 16; if (k + 3 < 15) buf[k + 3] = r >>> 24;
      }
      // sometimes short buffers, to exercise truncation
      const end = (i & 7) === 0 ? 1 + (rnd() % 15) : 15;
      decode(buf, 0, end, mode, insn);
      counts[insn.status]!++;
      if (insn.status === DecodeStatus.Ok) {
        assert.ok(insn.length >= 1 && insn.length <= end, `length ${insn.length}`);
      } else if (insn.status === DecodeStatus.Truncated) {
        assert.ok(insn.needed > end && insn.needed <= 15, `needed ${insn.needed} end ${end}`);
      }
      if ((i & 15) === 0) {
        const line = disasmOne(buf, 0, end, mode, 0n);
        assert.ok(line.length >= 1 && line.length <= end);
      }
    }
    assert.ok(counts[DecodeStatus.Ok]! > N / 4);
  });
}
