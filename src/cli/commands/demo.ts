import { openBackend, parseAccel } from '../../backends/open.js';
import { runCalcDemo } from '../../vmm/calc-demo.js';
import { ACCEL_OPTION, parseCommandArgs } from '../args.js';
import type { Command } from '../command.js';

const CTRL_C = 0x03;

/** Standard input as bytes; on a terminal, raw (keys go to the guest, which echoes) until Ctrl-C. */
async function* terminalInput(): AsyncGenerator<Uint8Array> {
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  try {
    for await (const chunk of stdin as AsyncIterable<Buffer>) {
      const ctrlC = raw ? chunk.indexOf(CTRL_C) : -1;
      if (ctrlC >= 0) {
        if (ctrlC > 0) yield chunk.subarray(0, ctrlC);
        return;
      }
      yield chunk;
    }
  } finally {
    if (raw) stdin.setRawMode(false);
    stdin.pause();
  }
}

export const demo: Command = {
  name: 'demo',
  summary: 'run the built-in calc guest: type expressions, get results',
  usage: `usage: tsvmm demo [--accel kvm|soft|auto]

Boots the built-in calc guest (guests/calc, real mode) on a UART console connected to this
terminal. Type an expression such as (2+3)*7 and Enter; 'quit' or Ctrl-D ends it (Ctrl-C too,
on a terminal). Standard input may also be a pipe: echo '6*7' | tsvmm demo
`,
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, ACCEL_OPTION);
    const backend = openBackend(parseAccel(values.accel), { log: (message) => io.err(`tsvmm: ${message}\n`) });
    const end = await runCalcDemo({
      backend,
      input: terminalInput(),
      output: (bytes) => io.out(Buffer.from(bytes).toString('latin1')),
    });
    if (end.reason === 'invalid') {
      io.err(`tsvmm demo: the guest stopped unexpectedly: ${end.detail}\n`);
      return 1;
    }
    if (end.reason === 'input-ended') io.out('\n');
    return 0;
  },
};
