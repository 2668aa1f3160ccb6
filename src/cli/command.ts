/** A subcommand of `tsvmm`: one file under cli/commands/, listed once in cli/commands/index.ts. */
export interface Command {
  readonly name: string;
  /** One line for `tsvmm help`. */
  readonly summary: string;
  /** Full usage text, printed by `tsvmm help NAME` and on usage errors. */
  readonly usage: string;
  /** Runs the command; resolves to the process exit status. Throws TsvmmError for bad input. */
  run(argv: string[], io: CommandIo): Promise<number>;
}

/** Where a command writes. Commands never touch process.stdout directly, so tests can capture them. */
export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
  /** The byte stream behind out(), where there is one: for output that must wait while it is full (a guest's console). */
  outStream?: NodeJS.WritableStream;
}
