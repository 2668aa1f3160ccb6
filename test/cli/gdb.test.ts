// `tsvmm run --gdb tcp:HOST:PORT [--gdb-wait]`: the option's forms and errors, and the README's
// session: the machine waits for gdb, which loads the guest's symbols, breaks and steps, sets the
// guest's variables and detaches, and the guest then runs to its end, which the exit status shows.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { parseGdb } from '../../src/cli/commands/run.js';
import { TsvmmError } from '../../src/common/errors.js';
import { linkedGuest } from '../helpers/nasm.js';
import { TSVMM_BIN, hasTool, tempDir } from '../helpers/tools.js';

test('--gdb takes tcp:HOST:PORT or tcp:PORT, on 127.0.0.1 by default', () => {
  assert.deepEqual(parseGdb('tcp:1234'), { host: '127.0.0.1', port: 1234 });
  assert.deepEqual(parseGdb('tcp::1234'), { host: '127.0.0.1', port: 1234 });
  assert.deepEqual(parseGdb('tcp:0.0.0.0:1234'), { host: '0.0.0.0', port: 1234 });
  assert.deepEqual(parseGdb('tcp:[::1]:0'), { host: '::1', port: 0 });
  for (const bad of ['1234', 'tcp:', 'tcp:host', 'tcp:1:99999', 'udp::1234']) {
    assert.throws(() => parseGdb(bad), (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_USAGE', bad);
  }
});

test('tsvmm run --gdb-wait: the README session (break, stepi), then gdb sets the guest going and detaches (soft)', { skip: !hasTool('nasm') ? 'nasm not installed' : !hasTool('ld') ? 'ld (binutils) not installed' : !hasTool('gdb') ? 'gdb not installed' : false }, async (t) => {
  const dir = tempDir(t);
  const { elf, symbols: at } = linkedGuest('gdb/target.asm', 'gdb/target.ld');
  const kernel = join(dir, 'target.elf');
  writeFileSync(kernel, elf);
  const vm = spawn(process.execPath, [TSVMM_BIN, 'run', '--kernel', kernel, '--accel', 'soft', '-m', '16',
    '--timeout', '240', '--gdb', 'tcp::0', '--gdb-wait'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  vm.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    vm.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      const m = /gdb server on 127\.0\.0\.1:(\d+) \(the machine waits for the debugger\)/.exec(stderr);
      if (m) resolve(Number(m[1]));
    });
    vm.once('close', () => reject(new Error(`tsvmm ended first: ${stderr}`)));
  });
  const closed = new Promise<number | null>((resolve) => vm.once('close', resolve));
  // The README's commands (with this run's port), then what lets the guest end.
  const ex = [`file ${kernel}`, `target remote :${port}`, 'break sum', 'continue', 'info registers rax rbx', 'stepi', 'info registers rip',
    'set {char}&status = 0x10', 'set {long}&go = 1', 'detach'];
  const { stdout: out } = await promisify(execFile)('gdb', ['-batch', '-nx', ...ex.flatMap((e) => ['-ex', e])], { timeout: 200_000 });
  assert.match(out, /Breakpoint 1, 0x0*[0-9a-f]+ in sum \(\)/);
  assert.match(out, /rax\s+0x1111\s+4369\nrbx\s+0x2222\s+8738\n/);
  assert.match(out, new RegExp(`rip\\s+0x${at.store!.toString(16)}\\s+0x${at.store!.toString(16)} <store>`));
  assert.equal(await closed, (0x10 << 1) | 1, stderr);
  assert.match(stdout, /spin\ndone\n/);
});
