/**
 * The process's standard output and error, as the `tsvmm` process uses them.
 *
 * Node writes to a pipe asynchronously: whatever is still queued when the process exits is lost
 * (`tsvmm disasm FILE | wc -l` once counted 1,692 of 12,069 lines). So output is drained before
 * the exit (`drainStdio`), and `stdioCommandIo.out` hands back a promise while stdout's queue is
 * above its high-water mark, which a command that writes a lot awaits: its memory stays bounded
 * however slowly the reader reads. Files and terminals are written synchronously on Linux; the
 * same code serves them.
 */
import type { CommandIo } from './command.js';

/** Resolves when `stream` has handed every queued byte to the OS, or can no longer write. */
function drained(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.writableLength === 0 || stream.destroyed) return Promise.resolve();
  // A write's callback runs after every earlier write has completed (or failed: EPIPE).
  return new Promise((resolve) => stream.write('', () => resolve()));
}

/** Resolves when stdout and stderr have drained (see `drained`). */
export function drainStdio(): Promise<void> {
  return Promise.all([drained(process.stdout), drained(process.stderr)]).then(() => undefined);
}

/** The wait for 'drain' of each stream that is backed up. */
const waiting = new Map<NodeJS.WriteStream, Promise<void>>();

/**
 * Resolves when `stream` wants more (its 'drain'), or can take no more at all (error, close).
 * One promise for all the writes made while it is backed up.
 */
function writable(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.destroyed) return new Promise(() => {}); // the process is ending (see cli() in main.ts)
  let pending = waiting.get(stream);
  if (!pending) {
    pending = new Promise((resolve) => {
      const done = (): void => {
        stream.off('drain', done);
        stream.off('error', done);
        stream.off('close', done);
        waiting.delete(stream);
        resolve();
      };
      stream.on('drain', done);
      stream.on('error', done);
      stream.on('close', done);
    });
    waiting.set(stream, pending);
  }
  return pending;
}

/** stdout and stderr as a CommandIo; `out` reports backpressure (see the file header). */
export const stdioCommandIo: CommandIo = {
  out: (text) => (process.stdout.write(text) ? undefined : writable(process.stdout)),
  err: (text) => void process.stderr.write(text),
  outStream: process.stdout,
};
