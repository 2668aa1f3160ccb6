// `tsvmm run --gdb tcp:HOST:PORT [--gdb-wait]`: the option's forms and errors, and a run a user
// would make: the machine waits for gdb, which sets the guest's variables and detaches, and the
// guest then runs to its end, which the exit status shows.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { parseGdb } from '../../src/cli/commands/run.js';
import { TsvmmError } from '../../src/common/errors.js';
import { assembleText } from '../helpers/nasm.js';
import { REPO_ROOT, TSVMM_BIN, hasTool, tempDir } from '../helpers/tools.js';

test('--gdb takes tcp:HOST:PORT or tcp:PORT, on 127.0.0.1 by default', () => {
  assert.deepEqual(parseGdb('tcp:1234'), { host: '127.0.0.1', port: 1234 });
  assert.deepEqual(parseGdb('tcp::1234'), { host: '127.0.0.1', port: 1234 });
  assert.deepEqual(parseGdb('tcp:0.0.0.0:1234'), { host: '0.0.0.0', port: 1234 });
  assert.deepEqual(parseGdb('tcp:[::1]:0'), { host: '::1', port: 0 });
  for (const bad of ['1234', 'tcp:', 'tcp:host', 'tcp:1:99999', 'udp::1234']) {
    assert.throws(() => parseGdb(bad), (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_USAGE', bad);
  }
});

test('tsvmm run --gdb-wait: gdb sets the guest going, detaches, and the guest ends (soft)', { skip: !hasTool('nasm') ? 'nasm not installed' : !hasTool('gdb') ? 'gdb not installed' : false }, async (t) => {
  const dir = tempDir(t);
  const source = readFileSync(join(REPO_ROOT, 'guests', 'gdb', 'target.asm'), 'utf8');
  const image = assembleText(source);
  const table = assembleText(`${source}\nalign 8\ndq go\ndq status\n`);
  const base = image.length + ((8 - (image.length % 8)) % 8);
  const dv = new DataView(table.buffer, table.byteOffset);
  const go = Number(dv.getBigUint64(base, true)), status = Number(dv.getBigUint64(base + 8, true));
  const kernel = join(dir, 'target.bin');
  writeFileSync(kernel, image);
  const vm = spawn(process.execPath, [TSVMM_BIN, 'run', '--kernel', kernel, '--flat', '0x100000:long64', '--accel', 'soft', '-m', '16',
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
  const ex = [`target remote :${port}`, 'p/x $pc', `set var *(char *)${status} = 0x10`, `set var *(long *)${go} = 1`, 'detach'];
  const { stdout: out } = await promisify(execFile)('gdb', ['-batch', '-nx', ...ex.flatMap((e) => ['-ex', e])], { timeout: 200_000 });
  assert.match(out, /\$1 = 0x100000/);
  assert.equal(await closed, (0x10 << 1) | 1, stderr);
  assert.match(stdout, /done/);
});
