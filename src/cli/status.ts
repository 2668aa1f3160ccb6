/**
 * The `tsvmm` process's exit statuses, and the one line it prints for a failure: a TsvmmError
 * says its stable code and message; anything else is a bug in tsvmm, reported as one
 * `internal error` line (no stack trace on a user's terminal; the line names where it was thrown).
 */
import { TsvmmError } from '../common/errors.js';

export const EXIT = {
  OK: 0,
  /** A TsvmmError: bad input, a missing device or tool, a failed system call. */
  ERROR: 1,
  /** TSVMM_USAGE: a bad command line. */
  USAGE: 2,
  /** A bug in tsvmm (sysexits.h EX_SOFTWARE). */
  INTERNAL: 70,
  /** The reader of standard output went away (EPIPE): what a shell reports for a process killed by SIGPIPE. */
  BROKEN_PIPE: 128 + 13,
} as const;

/** Collapses a message to one line. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** `Error: message (at file:line:col)` from an error's stack: the message and the innermost frame. */
export function describeInternalError(e: unknown): string {
  if (!(e instanceof Error)) return oneLine(String(e));
  return describeStack(e.stack ?? `${e.name}: ${e.message}`);
}

/** The same from a stack trace as text (what a worker thread reports). */
export function describeStack(stack: string): string {
  const lines = stack.split('\n');
  const at = lines.findIndex((l) => /^\s+at /.test(l));
  const message = oneLine((at < 0 ? lines : lines.slice(0, at)).join('\n'));
  const frame = at < 0 ? undefined : /^\s+at (?:.*\()?(.*?)\)?$/.exec(lines[at]!)?.[1];
  return frame ? `${message} (at ${frame})` : message;
}

/** The line (with its newline) and the exit status for a failure that reached the top of the process. */
export function reportFailure(e: unknown): { line: string; status: number } {
  if (e instanceof TsvmmError) {
    return { line: `tsvmm: ${e.code}: ${e.message}\n`, status: e.code === 'TSVMM_USAGE' ? EXIT.USAGE : EXIT.ERROR };
  }
  return { line: `tsvmm: internal error: ${describeInternalError(e)}\n`, status: EXIT.INTERNAL };
}
