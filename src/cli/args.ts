/**
 * Command-line parsing shared by the commands: node:util's parseArgs, strict, with usage errors as
 * TsvmmError. `-h` and `--help` are every command's: they stop the command before it does anything,
 * and main() prints its usage.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { TsvmmError } from '../common/errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options, P extends boolean> = ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: P }>>;

/** Thrown by parseCommandArgs when the command line asks for the command's help. */
export class HelpRequested extends Error {
  constructor() {
    super('help requested');
    this.name = 'HelpRequested';
  }
}

const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * True when -h or --help is an option of `argv` (not an option's value, as in `--append -h`, and not
 * after `--`). It wins over any other mistake on the line, as `ls --bogus --help` shows help.
 */
function asksForHelp(argv: string[], options: Options): boolean {
  const { tokens } = parseArgs({ args: argv, options: { ...options, ...HELP_OPTION }, strict: false, allowPositionals: true, tokens: true });
  return tokens.some((t) => t.kind === 'option' && t.name === 'help');
}

export function parseCommandArgs<const O extends Options, const P extends boolean = false>(argv: string[], options: O, allowPositionals?: P): Parsed<O, P> {
  if (asksForHelp(argv, options)) throw new HelpRequested();
  try {
    return parseArgs({ args: argv, options, strict: true as const, allowPositionals: (allowPositionals ?? false) as P });
  } catch (e) {
    throw new TsvmmError('TSVMM_USAGE', (e as Error).message);
  }
}

/** --accel, as every command that runs a guest takes it. */
export const ACCEL_OPTION = { accel: { type: 'string', default: 'auto' } } as const;
