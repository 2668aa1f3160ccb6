// `tsvmm run` as a user meets it: a terminal with Ctrl-A x, exit statuses from how the guest
// ended, --serial file:, --trace exits, and usage errors. Guests from guests/board/.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { kvmOrSkip } from '../helpers/kvm.js';
import { hasTool, withTempDirAsync } from '../helpers/tools.js';

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
    [['run', '--kernel', 'x', '--trace', 'everything'], /TSVMM_USAGE: unknown --trace 'everything' \(exits, cpu\[=N\], profile/],
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
