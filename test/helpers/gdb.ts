/**
 * The real gdb in the tests: batch mode over a command list, as a user at the terminal would run
 * it (Ctrl-C included), for the stub tests on each guest.
 */
import { spawn } from 'node:child_process';

/** How long gdb waits for a reply from the stub (s). */
const REMOTE_TIMEOUT_S = 60;

/**
 * gdb in batch mode running `commands`; with `interruptOn`, SIGINT (the terminal's Ctrl-C) goes
 * to gdb once that promise resolves. Resolves with what gdb printed.
 */
export async function gdbBatch(commands: string[], interruptOn?: Promise<void>): Promise<string> {
  // gdb gives up on a reply after 2 s by default and then takes the late one as the next
  // command's: on a loaded host (the nested-KVM run under QEMU's TCG) the session falls apart.
  const all = [`set remotetimeout ${REMOTE_TIMEOUT_S}`, ...commands];
  const p = spawn('gdb', ['-batch', '-nx', ...all.flatMap((c) => ['-ex', c])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (b: Buffer) => (out += b.toString()));
  p.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const killer = setTimeout(() => p.kill('SIGKILL'), 200_000);
  const ended = new Promise<void>((resolve) => p.once('close', () => resolve()));
  if (interruptOn) void Promise.race([interruptOn, ended]).then(() => p.kill('SIGINT'));
  await ended;
  clearTimeout(killer);
  return out;
}

/** The values gdb printed for `p` commands, in order. */
export const printedValues = (out: string): string[] => out.split('\n').filter((l) => /^\$\d+ = /.test(l)).map((l) => l.replace(/^\$\d+ = /, ''));
