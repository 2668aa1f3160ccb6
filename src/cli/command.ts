/** A subcommand of `tsvmm`: one file under cli/commands/, listed once in cli/commands/index.ts. */
export interface Command {
  readonly name: string;
  /** One line for `tsvmm help`. */
  readonly summary: string;
  /** Full usage text, printed by `tsvmm help NAME`, `tsvmm NAME --help` and on usage errors. */
  readonly usage: string;
  /** Runs the command; resolves to the process exit status. Throws TsvmmError for bad input. */
  run(argv: string[], io: CommandIo): Promise<number>;
}

/** Where a command writes. Commands never touch process.stdout directly, so tests can capture them. */
export interface CommandIo {
  /**
   * Writes to standard output. May return a promise when the output is backed up (a slow pipe):
   * a command that writes a lot awaits it before writing more, so that its memory stays bounded
   * however slowly the reader reads. The promise never rejects.
   */
  out(text: string): void | Promise<void>;
  err(text: string): void;
  /** The byte stream behind out(), where there is one: for output that must wait while it is full (a guest's console). */
  outStream?: NodeJS.WritableStream;
}
