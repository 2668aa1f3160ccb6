import { TsvmmError } from '../common/errors.js';
import { HelpRequested } from './args.js';
import type { Command, CommandIo } from './command.js';
import { COMMANDS } from './commands/index.js';
import { EXIT, reportFailure } from './status.js';
import { drainStdio, stdioCommandIo } from './stdio.js';

function helpText(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `usage: tsvmm COMMAND [ARGS...]\n\ncommands:\n${lines.join('\n')}\n\n'tsvmm help COMMAND' or 'tsvmm COMMAND --help' shows a command's options.\n`;
}

export function findCommand(name: string, commands: readonly Command[] = COMMANDS): Command | undefined {
  return commands.find((c) => c.name === name);
}

/**
 * Runs `tsvmm ARGV`; resolves to the exit status. A TsvmmError becomes one line with its code and
 * status 1 (2 for TSVMM_USAGE, with a pointer to the command's --help); anything else rejects (a bug: cli()
 * reports it). `-h`/`--help` print the command's usage on stdout, status 0.
 */
export async function main(argv: string[], io: CommandIo = stdioCommandIo, commands: readonly Command[] = COMMANDS): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const topic = name === 'help' && rest[0] !== undefined ? findCommand(rest[0], commands) : undefined;
    await io.out(topic ? topic.usage : helpText(commands));
    return EXIT.OK;
  }
  const command = findCommand(name, commands);
  if (!command) {
    io.err(`tsvmm: TSVMM_USAGE: unknown command '${name}'\n${helpText(commands)}`);
    return EXIT.USAGE;
  }
  try {
    return await command.run(rest, io);
  } catch (e) {
    if (e instanceof HelpRequested) {
      await io.out(command.usage);
      return EXIT.OK;
    }
    if (e instanceof TsvmmError) {
      io.err(`tsvmm ${name}: ${e.code}: ${e.message}\n`);
      // The reason, and where the options are: a page of usage would bury the one line that matters.
      if (e.code === 'TSVMM_USAGE') io.err(`Try 'tsvmm ${name} --help' for its options.\n`);
      return e.code === 'TSVMM_USAGE' ? EXIT.USAGE : EXIT.ERROR;
    }
    throw e;
  }
}

/**
 * `tsvmm` as a process (bin/tsvmm.js): runs main() on the process's stdio and calls `exit` once,
 * after stdout and stderr have drained, so that no output is lost through a pipe. A failure
 * anywhere, also in an event handler or a promise nobody awaits, ends the process with one line
 * on stderr (see status.ts). When the reader of stdout goes away (`tsvmm disasm FILE | head`),
 * the process ends at once with status 141, as a program killed by SIGPIPE does.
 */
export function cli(argv: string[], exit: (status: number) => void, commands: readonly Command[] = COMMANDS): void {
  const io = stdioCommandIo;
  let ending = false;
  const end = (status: number): void => {
    if (ending) return;
    ending = true;
    void drainStdio().then(() => exit(status));
  };
  const fail = (e: unknown): void => {
    const { line, status } = reportFailure(e);
    io.err(line);
    end(status);
  };
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') end(EXIT.BROKEN_PIPE);
    else fail(new TsvmmError('TSVMM_SYSCALL', `cannot write to standard output: ${e.code ?? e.message}`));
  });
  process.stderr.on('error', () => {}); // nowhere left to say it
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  main(argv, io, commands).then(end, fail);
}
