import { TsvmmError } from '../common/errors.js';
import type { Command, CommandIo } from './command.js';
import { COMMANDS } from './commands/index.js';

const stdio: CommandIo = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  outStream: process.stdout,
};

function helpText(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `usage: tsvmm COMMAND [ARGS...]\n\ncommands:\n${lines.join('\n')}\n\n'tsvmm help COMMAND' shows a command's options.\n`;
}

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}

/** Entry point of the CLI; resolves to the process exit status. The only caller of process.exit is bin/tsvmm.js. */
export async function main(argv: string[], io: CommandIo = stdio): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const topic = name === 'help' && rest[0] !== undefined ? findCommand(rest[0]) : undefined;
    io.out(topic ? topic.usage : helpText());
    return 0;
  }
  const command = findCommand(name);
  if (!command) {
    io.err(`tsvmm: TSVMM_USAGE: unknown command '${name}'\n${helpText()}`);
    return 2;
  }
  try {
    return await command.run(rest, io);
  } catch (e) {
    if (e instanceof TsvmmError) {
      io.err(`tsvmm ${name}: ${e.code}: ${e.message}\n`);
      if (e.code === 'TSVMM_USAGE') io.err(command.usage);
      return e.code === 'TSVMM_USAGE' ? 2 : 1;
    }
    throw e;
  }
}
