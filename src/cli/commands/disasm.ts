/**
 * `tsvmm disasm FILE`: objdump-style disassembly of a flat binary, streamed. The file is read in
 * chunks and each batch of lines is written as soon as it is formatted, waiting while the output
 * is backed up: memory stays bounded for any file size (64 MiB of zeros print 32 million lines),
 * and `tsvmm disasm FILE | head` ends as soon as head has its lines.
 */
import { open } from 'node:fs/promises';
import { TsvmmError } from '../../common/errors.js';
import { DecodedInsn, type CpuMode } from '../../x86/decoder.js';
import { disasmOne } from '../../x86/disasm.js';
import { parseCommandArgs } from '../args.js';
import type { Command, CommandIo } from '../command.js';

/** Bytes read from the file at a time. */
const READ_CHUNK = 1 << 20;
/**
 * disasmOne reads at most this far past an instruction's first byte (15 bytes of instruction
 * after up to 14 folded FWAITs): an instruction is formatted once this many bytes follow it, or
 * at the end of the file, so a chunk boundary never changes a line.
 */
const LOOKAHEAD = 64;
/** Output is written in batches of about this many characters. */
const BATCH = 1 << 16;

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

/** The file as chunks of at most `chunkBytes`. */
async function* readChunks(path: string, chunkBytes: number): AsyncGenerator<Uint8Array> {
  let file;
  try {
    file = await open(path, 'r');
  } catch (e) {
    throw new TsvmmError('TSVMM_USAGE', `cannot read '${path}': ${(e as Error).message}`);
  }
  try {
    for (;;) {
      const buf = new Uint8Array(chunkBytes);
      let n;
      try {
        ({ bytesRead: n } = await file.read(buf, 0, chunkBytes, null));
      } catch (e) {
        throw new TsvmmError('TSVMM_USAGE', `cannot read '${path}': ${(e as Error).message}`);
      }
      if (n === 0) return;
      yield buf.subarray(0, n);
    }
  } finally {
    await file.close();
  }
}

/**
 * Writes the disassembly of the bytes `chunks` yields, loaded at `org`, one objdump line per
 * instruction: `<address hex>:<TAB><bytes><TAB><instruction>`.
 */
export async function disassembleStream(chunks: AsyncIterable<Uint8Array>, mode: CpuMode, org: bigint, io: CommandIo): Promise<void> {
  const insn = new DecodedInsn();
  let code = new Uint8Array(0); // bytes not yet disassembled, starting at file offset `base`
  let base = 0;
  let text = '';
  const format = async (end: number): Promise<number> => {
    let off = 0;
    while (off < end) {
      const address = org + BigInt(base + off);
      const line = disasmOne(code, off, code.length, mode, address, insn);
      let bytes = HEX[code[off]!]!;
      for (let i = 1; i < line.length; i++) bytes += ' ' + HEX[code[off + i]!]!;
      text += `${address.toString(16).padStart(4, ' ')}:\t${bytes}\t${line.text}\n`;
      off += line.length;
      if (text.length >= BATCH) {
        const ready = io.out(text);
        text = '';
        if (ready) await ready;
      }
    }
    return off;
  };
  for await (const chunk of chunks) {
    const joined = new Uint8Array(code.length + chunk.length);
    joined.set(code);
    joined.set(chunk, code.length);
    code = joined;
    const done = await format(code.length - LOOKAHEAD);
    code = code.slice(done);
    base += done;
  }
  await format(code.length);
  if (text !== '') await io.out(text);
}

export const disasm: Command = {
  name: 'disasm',
  summary: 'disassemble a flat binary (AT&T syntax, as objdump prints it)',
  usage: `usage: tsvmm disasm FILE [--mode 16|32|64] [--org ADDR]

Disassembles FILE as raw x86 code (default 64-bit) loaded at ADDR (default 0; decimal or 0x hex).
Prints one line per instruction: <address hex>:<TAB><bytes><TAB><instruction>, like
'objdump -D -b binary -m i386:x86-64' (or -m i386 / -m i8086). Streams: any file size, in
bounded memory.
`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, { mode: { type: 'string', default: '64' }, org: { type: 'string', default: '0' } }, true);
    if (positionals.length !== 1) throw new TsvmmError('TSVMM_USAGE', `disasm takes exactly one FILE, got ${positionals.length}`);
    const mode = Number(values.mode);
    if (mode !== 16 && mode !== 32 && mode !== 64) throw new TsvmmError('TSVMM_USAGE', `bad --mode '${values.mode}': want 16, 32 or 64`);
    const orgText = values.org!;
    if (!/^(0x[0-9a-f]+|[0-9]+)$/i.test(orgText)) throw new TsvmmError('TSVMM_USAGE', `bad --org '${orgText}': want a number`);
    await disassembleStream(readChunks(positionals[0]!, READ_CHUNK), mode, BigInt(orgText), io);
    return 0;
  },
};
