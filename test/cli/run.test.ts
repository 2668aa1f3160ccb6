// `tsvmm run` as a user meets it: a terminal with Ctrl-A x, exit statuses from how the guest
// ended, --serial file:, --trace exits, and usage errors. Guests from guests/board/.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.js';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { kvmOrSkip } from '../helpers/kvm.js';
import { hasTool, withTempDir, withTempDirAsync } from '../helpers/tools.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'tsvmm.js');

async function withHello(t: TestContext, fn: (kernel: string, dir: string) => Promise<void>): Promise<void> {
  if (!kvmOrSkip(t)) return;
  if (!hasNasm()) return t.skip('nasm not installed');
  await withTempDirAsync(async (dir) => {
    const kernel = join(dir, 'hello.elf');
    writeFileSync(kernel, assemble('board/hello.asm'));
    await fn(kernel, dir);
  });
}

/** Runs tsvmm, typing each step's text once the output matches its pattern; resolves with status and output. */
function tsvmm(args: string[], input: string | [RegExp, string][], opts: { pty?: boolean } = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const steps: [RegExp, string][] = typeof input === 'string' ? [[/echo> $/, input]] : [...input];
  const command = opts.pty
    ? spawn('script', ['-qec', [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(' '), '/dev/null'])
    : spawn(process.execPath, [BIN, ...args]);
  let stdout = '';
  let stderr = '';
  command.stdout.on('data', (b: Buffer) => {
    stdout += b.toString('latin1');
    while (steps.length && steps[0]![0].test(stdout)) command.stdin.write(steps.shift()![1]);
  });
  command.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => command.on('close', (status) => resolve({ status, stdout, stderr })));
}

test('on a terminal, Ctrl-A x ends the machine with status 0 (kvm)', async (t) => {
  if (!hasTool('script')) return t.skip('script (util-linux) not installed: no pty to test with');
  await withHello(t, async (kernel) => {
    const r = await tsvmm(['run', '--kernel', kernel, '--accel', 'kvm', '-m', '64'], [[/echo> $/, 'hi'], [/hi$/, '\x01x']], { pty: true });
    assert.equal(r.status, 0);
    assert.match(r.stdout, /echo> hi$/);
  });
});

test('the exit status says how the guest ended; --trace exits counts exits (kvm)', async (t) => {
  await withHello(t, async (kernel) => {
    const debugExit = await tsvmm(['run', '--kernel', kernel, '--accel', 'kvm', '-m', '64', '--trace', 'exits'], 'e5');
    assert.equal(debugExit.status, (5 << 1) | 1);
    assert.match(debugExit.stderr, /^exits: .*io \d+/m);
    const fault = await tsvmm(['run', '--kernel', kernel, '--accel', 'kvm', '-m', '64'], 'f');
    assert.equal(fault.status, 3);
    assert.match(fault.stderr, /the guest triple-faulted: triple fault at RIP 0x/);
    const reset = await tsvmm(['run', '--kernel', kernel, '--accel', 'kvm', '-m', '64'], 'r');
    assert.equal(reset.status, 0);
  });
});

test('--serial file: sends the console to a file (kvm)', async (t) => {
  await withHello(t, async (kernel, dir) => {
    const out = join(dir, 'serial.txt');
    const r = spawnSync(process.execPath, [BIN, 'run', '--kernel', kernel, '--accel', 'kvm', '-m', '64', '--serial', `file:${out}`, '--timeout', '1'], { encoding: 'utf8' });
    assert.equal(r.status, 4, 'ended by --timeout');
    assert.match(r.stderr, /TSVMM_TIMEOUT: timed out at RIP/);
    assert.equal(r.stdout, '');
    assert.match(readFileSync(out, 'latin1'), /^hello from a multiboot guest\nrtc \d\d-\d\d\necho> $/);
  });
});

test('run: usage errors name the bad value', () => {
  const cases: [string[], RegExp][] = [
    [['run'], /TSVMM_USAGE: --kernel is required/],
    [['run', '--kernel', 'x', '-m', 'lots'], /TSVMM_USAGE: bad memory size 'lots'/],
    [['run', '--kernel', 'x', '--smp', '0'], /TSVMM_USAGE: bad --smp '0'/],
    [['run', '--kernel', 'x', '--serial', 'tcp:1'], /TSVMM_USAGE: bad --serial 'tcp:1'/],
    [['run', '--kernel', 'x', '--trace', 'everything'], /TSVMM_USAGE: unknown --trace 'everything' \(exits, cpu\[=N\]\)/],
    [['run', '--kernel', '/nonexistent/kernel'], /TSVMM_BAD_KERNEL: the kernel \/nonexistent\/kernel does not exist/],
  ];
  for (const [args, re] of cases) {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
    assert.match(r.stderr, re, args.join(' '));
    assert.notEqual(r.status, 0);
  }
});

test('--trace cpu=N prints the first N instructions with bytes, disassembly and changed registers (soft)', async (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  await withTempDirAsync(async (dir) => {
    const kernel = join(dir, 'hello.elf');
    writeFileSync(kernel, assemble('board/hello.asm'));
    const r = await tsvmm(['run', '--kernel', kernel, '--accel', 'soft', '-m', '64', '--trace', 'cpu=4'], 'r');
    assert.equal(r.status, 0);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 5);
    assert.match(lines[0]!, /^0000000000100020: bc 00 60 10 00 +mov +\$0x106000,%esp +rsp=0x106000$/);
    assert.match(lines[3]!, /^000000000010002f: 31 c0 +xor +%eax,%eax +rax=0x0 rflags=0x46$/);
    assert.equal(lines[4], 'trace: 4 instructions traced, tracing stops');
  });
});

test('run: every option says what is wrong with a negative, zero, huge or non-numeric value, and the limit', async () => {
  await withTempDirAsync(async (dir) => {
    const cases: [string[], number, RegExp][] = [
      [['-m', '99999999G'], 2, /TSVMM_USAGE: memory size '99999999G' is too large: at most 4G \(4294967296 bytes\)/],
      [['-m', '8G'], 2, /memory size '8G' is too large: at most 4G/],
      [['-m', '0'], 2, /memory size '0' is too small: at least 2M/],
      [['-m', '1K'], 2, /memory size '1K' is too small: at least 2M/],
      [['--memory=-5'], 2, /bad memory size '-5'/],
      [['-m', '5001K'], 2, /memory size '5001K' is not a multiple of 4K/],
      [['--smp', '65'], 2, /--smp 65 is too large: the board takes at most 64 vCPUs/],
      [['--smp', '0'], 2, /bad --smp '0': at least 1 vCPU/],
      [['--smp=-1'], 2, /bad --smp '-1': want a number of vCPUs, 1 to 64/],
      [['--smp', '1.5'], 2, /bad --smp '1.5'/],
      [['--smp', 'two'], 2, /bad --smp 'two'/],
      [['--timeout', '0'], 2, /bad --timeout '0': want more than 0 seconds/],
      [['--timeout=-1'], 2, /bad --timeout '-1': want a number of seconds/],
      [['--timeout', 'Infinity'], 2, /bad --timeout 'Infinity'/],
      [['--timeout', '1e10'], 2, /bad --timeout '1e10'/],
      [['--timeout', '3000000'], 2, /--timeout 3000000 is too large: at most 2147483 seconds/],
      [['--flat', ':real16'], 2, /bad --flat ':real16': want ADDR\[:MODE\]/],
      [['--flat', '0x8000:real16:x'], 2, /bad --flat '0x8000:real16:x'/],
      [['--flat=-1'], 2, /bad --flat '-1'/],
      [['--flat', '1e3'], 2, /bad --flat '1e3'/],
      [['--flat', '0x100000000'], 2, /--flat address 0x100000000 is too large: flat images load below 4 GiB/],
      [['--flat', '0x8000:real32'], 2, /bad --flat mode 'real32'/],
      [['--trace', 'cpu=0'], 2, /bad --trace 'cpu=0': want cpu=N, N instructions from 1 to 9007199254740991/],
      [['--trace', 'cpu=-1'], 2, /bad --trace 'cpu=-1'/],
      [['--trace', 'cpu=many'], 2, /bad --trace 'cpu=many'/],
      [['--serial', 'file:'], 2, /bad --serial 'file:': the PATH after file: is missing/],
      [['--serial', `file:${dir}`], 1, /TSVMM_BAD_ARGUMENT: cannot write the --serial file .*: EISDIR/],
      [['--serial', `file:${join(dir, 'no', 'such')}`], 1, /TSVMM_BAD_ARGUMENT: cannot write the --serial file .*: ENOENT/],
    ];
    for (const [args, status, re] of cases) {
      let err = '';
      const got = await main(['run', '--kernel', join(dir, 'no-kernel'), '--accel', 'soft', ...args], { out: () => {}, err: (s) => void (err += s) });
      assert.match(err, re, args.join(' '));
      assert.equal(got, status, args.join(' '));
    }
  });
});

test('run: a write of 0 to the debug-exit port ends with status 1 and says so (soft)', () => {
  withTempDir((dir) => {
    const kernel = join(dir, 'exit.bin');
    for (const [value, status] of [[0, 1], [0x21, 0x43], [0x80, 1]] as const) {
      // mov dx, 0x501; mov al, VALUE; out dx, al; hlt
      writeFileSync(kernel, new Uint8Array([0xba, 0x01, 0x05, 0xb0, value, 0xee, 0xf4]));
      const r = spawnSync(process.execPath, [BIN, 'run', '--kernel', kernel, '--flat', '0x8000', '--accel', 'soft', '-m', '16', '--timeout', '60'], { encoding: 'utf8', input: '' });
      assert.equal(r.status, status, r.stderr);
      assert.equal(r.stderr, `\ntsvmm: the guest wrote 0x${value.toString(16)} to the debug-exit port (status ${status})\n`);
    }
  });
});
