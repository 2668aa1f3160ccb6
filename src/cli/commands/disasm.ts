import { readFileSync } from 'node:fs';
import { TsvmmError } from '../../common/errors.js';
import type { CpuMode } from '../../x86/decoder.js';
import { disassemble } from '../../x86/disasm.js';
import { parseCommandArgs } from '../args.js';
import type { Command } from '../command.js';

export const disasm: Command = {
  name: 'disasm',
  summary: 'disassemble a flat binary (AT&T syntax, as objdump prints it)',
  usage: `usage: tsvmm disasm FILE [--mode 16|32|64] [--org ADDR]

Disassembles FILE as raw x86 code (default 64-bit) loaded at ADDR (default 0; decimal or 0x hex).
Prints one line per instruction: <address hex>:<TAB><bytes><TAB><instruction>, like
'objdump -D -b binary -m i386:x86-64' (or -m i386 / -m i8086).
`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, { mode: { type: 'string', default: '64' }, org: { type: 'string', default: '0' } }, true);
    if (positionals.length !== 1) throw new TsvmmError('TSVMM_USAGE', `disasm takes exactly one FILE, got ${positionals.length}`);
    const mode = Number(values.mode);
    if (mode !== 16 && mode !== 32 && mode !== 64) throw new TsvmmError('TSVMM_USAGE', `bad --mode '${values.mode}': want 16, 32 or 64`);
    const orgText = values.org!;
    if (!/^(0x[0-9a-f]+|[0-9]+)$/i.test(orgText)) throw new TsvmmError('TSVMM_USAGE', `bad --org '${orgText}': want a number`);
    const org = BigInt(orgText);
    const file = positionals[0]!;
    let code: Uint8Array;
    try {
      code = readFileSync(file);
    } catch (e) {
      throw new TsvmmError('TSVMM_USAGE', `cannot read '${file}': ${(e as Error).message}`);
    }
    const lines = disassemble(code, mode as CpuMode, org);
    let text = '';
    for (const l of lines) {
      const addr = (org + BigInt(l.offset)).toString(16).padStart(4, ' ');
      const bytes = Array.from(code.subarray(l.offset, l.offset + l.length), (b) => b.toString(16).padStart(2, '0')).join(' ');
      text += `${addr}:\t${bytes}\t${l.text}\n`;
      if (text.length > 1 << 16) {
        io.out(text);
        text = '';
      }
    }
    io.out(text);
    return 0;
  },
};
