// The `tsvmm` process around any command (cli() in src/cli/main.ts), driven with stand-in
// commands: output written without waiting still all arrives through a pipe; a TsvmmError, from
// the command or from an event handler nobody awaits, is one line with its code and status 1 or
// 2; anything else is one `internal error` line and status 70; never a stack trace.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { withTempDir } from '../helpers/tools.js';

const DIST_SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');
const FLOOD_LINES = 40_000;

const SCRIPT = `
import { cli } from '${pathToFileURL(join(DIST_SRC, 'cli', 'main.js')).href}';
import { TsvmmError } from '${pathToFileURL(join(DIST_SRC, 'common', 'errors.js')).href}';
const never = () => new Promise(() => {});
const command = (name, run) => ({ name, summary: name, usage: 'usage: ' + name + '\\n', run });
cli(process.argv.slice(2), (status) => process.exit(status), [
  command('flood', async (_argv, io) => {
    const line = 'x'.repeat(99) + '\\n';
    for (let i = 0; i < ${FLOOD_LINES}; i++) io.out(line); // never waits for the pipe
    return 0;
  }),
  command('bad-kernel', async () => { throw new TsvmmError('TSVMM_BAD_KERNEL', 'no such kernel'); }),
  command('usage', async () => { throw new TsvmmError('TSVMM_USAGE', 'bad option'); }),
  command('bug', async () => { const o = undefined; return o.field; }),
  command('late-error', async () => { setTimeout(() => { throw new TsvmmError('TSVMM_SYSCALL', 'in an event handler'); }); return never(); }),
  command('late-bug', async () => { setTimeout(() => { throw new RangeError('in a timer\\nsecond line'); }); return never(); }),
  command('rejection', async () => { void Promise.reject(new TsvmmError('TSVMM_LIMIT', 'nobody awaited this')); return never(); }),
]);
`;

function withScript(fn: (run: (...args: string[]) => { status: number | null; stdout: string; stderr: string }) => void): void {
  withTempDir((dir) => {
    const script = join(dir, 'tsvmm-like.mjs');
    writeFileSync(script, SCRIPT);
    fn((...args) => spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', maxBuffer: 1 << 28, timeout: 60_000 }));
  });
}

test('output written without waiting is complete through a pipe: the exit waits for stdout to drain', () => {
  withScript((run) => {
    const r = run('flood');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.length, FLOOD_LINES * 100);
    assert.equal(r.stderr, '');
  });
});

test('failures: one line each, TsvmmError with its code and status 1 or 2, anything else internal error and 70', () => {
  withScript((run) => {
    const cases: [string, number, RegExp][] = [
      ['bad-kernel', 1, /^tsvmm bad-kernel: TSVMM_BAD_KERNEL: no such kernel\n$/],
      ['usage', 2, /^tsvmm usage: TSVMM_USAGE: bad option\nTry 'tsvmm usage --help' for its options\.\n$/],
      ['bug', 70, /^tsvmm: internal error: TypeError: Cannot read properties of undefined \(reading 'field'\) \(at file:\/\/\S+tsvmm-like\.mjs:\d+:\d+\)\n$/],
      ['late-error', 1, /^tsvmm: TSVMM_SYSCALL: in an event handler\n$/],
      ['late-bug', 70, /^tsvmm: internal error: RangeError: in a timer second line \(at \S+\)\n$/],
      ['rejection', 1, /^tsvmm: TSVMM_LIMIT: nobody awaited this\n$/],
    ];
    for (const [name, status, stderr] of cases) {
      const r = run(name);
      assert.equal(r.status, status, `${name}: ${r.stderr}`);
      assert.match(r.stderr, stderr, name);
      assert.equal(r.stdout, '', name);
    }
  });
});
