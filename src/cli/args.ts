/** Command-line parsing shared by the commands: node:util's parseArgs, strict, with usage errors as TsvmmError. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { TsvmmError } from '../common/errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options, P extends boolean> = ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: P }>>;

export function parseCommandArgs<const O extends Options, const P extends boolean = false>(argv: string[], options: O, allowPositionals?: P): Parsed<O, P> {
  try {
    return parseArgs({ args: argv, options, strict: true as const, allowPositionals: (allowPositionals ?? false) as P });
  } catch (e) {
    throw new TsvmmError('TSVMM_USAGE', (e as Error).message);
  }
}

/** --accel, as every command that runs a guest takes it. */
export const ACCEL_OPTION = { accel: { type: 'string', default: 'auto' } } as const;
