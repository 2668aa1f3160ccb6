// `tsvmm run` as a user meets it: a terminal with Ctrl-A x, exit statuses from how the guest
// ended, --serial file:, --trace exits, and usage errors. Guests from guests/board/.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
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
    [['run', '--kernel', 'x', '--smp', '0'], /TSVMM_USAGE: --smp 0 is too small: at least 1 vCPU/],
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

test('run: every option says what is wrong with a negative, zero, huge or non-numeric value, and the limit', async () => {
  await withTempDirAsync(async (dir) => {
    const cases: [string[], number, RegExp][] = [
      [['-m', '99999999G'], 2, /TSVMM_USAGE: memory size '99999999G' is too large: at most 136365211648 bytes \(127 GiB\)/],
      [['-m', '128G'], 2, /memory size '128G' is too large: at most 136365211648 bytes \(127 GiB\)/],
      [['-m', '0'], 2, /memory size '0' is too small: at least 2097152 bytes \(2 MiB\)/],
      [['-m', '1K'], 2, /memory size '1K' is too small: at least 2097152 bytes \(2 MiB\)/],
      [['--memory=-5'], 2, /bad memory size '-5'/],
      [['-m', '5001K'], 2, /memory size '5001K' is not a multiple of 4096 bytes \(4 KiB\)/],
      [['--smp', '65'], 2, /--smp 65 is too large: at most 64 vCPUs/],
      [['--smp', '0'], 2, /--smp 0 is too small: at least 1 vCPU/],
      [['--smp=-1'], 2, /bad --smp '-1': want a number of vCPUs, 1 to 64/],
      [['--smp', '1.5'], 2, /bad --smp '1.5'/],
      [['--smp', 'two'], 2, /bad --smp 'two'/],
      [['--timeout', '0'], 2, /--timeout 0 is too small: it must be more than 0/],
      [['--timeout=-1'], 2, /bad --timeout '-1': want a number of seconds/],
      [['--timeout', 'Infinity'], 2, /bad --timeout 'Infinity'/],
      [['--timeout', '1e10'], 2, /bad --timeout '1e10'/],
      [['--timeout', '3000000'], 2, /--timeout 3000000 is too large: at most 2147483647 ms \(2147483 seconds/],
      [['--flat', ':real16'], 2, /bad --flat ':real16': want ADDR\[:MODE\]/],
      [['--flat', '0x8000:real16:x'], 2, /bad --flat '0x8000:real16:x'/],
      [['--flat=-1'], 2, /bad --flat '-1'/],
      [['--flat', '1e3'], 2, /bad --flat '1e3'/],
      [['--flat', '0x100000000'], 2, /--flat 0x100000000 is too large: at most 0xffffffff \(flat images load below 4 GiB\)/],
      [['--flat', '0x8000:real32'], 2, /bad --flat mode 'real32'/],
      [['--trace', 'cpu=0'], 2, /--trace cpu=0 is too small: at least 1 instruction/],
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

/** Assembles `source` (under guests/, with nasm defines) into `dir` and returns its path. */
function guestIn(dir: string, source: string, defines: Record<string, number> = {}): string {
  const path = join(dir, 'guest.bin');
  writeFileSync(path, assemble(source, { defines }));
  return path;
}

/**
 * Runs tsvmm, on a pty (`pty`) or with pipes; `onStdout` sees what comes out. `unread`: nobody
 * reads its output (until stderr matches `readOnce`: tsvmm drains its output before it exits); `slow`: its output is read a chunk every 100 ms (a terminal slower than the
 * guest). A run still going after `limitMs` is killed (status null): these runs used to hang.
 */
function tsvmmRun(args: string[], opts: { pty?: boolean; unread?: boolean; readOnce?: RegExp; slow?: boolean; limitMs?: number; onStdout?: (text: string, stdin: NodeJS.WritableStream) => void }) {
  const command = opts.pty
    ? spawn('script', ['-qec', [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(' '), '/dev/null'])
    : spawn(process.execPath, [BIN, ...args]);
  const killer = setTimeout(() => command.kill('SIGKILL'), opts.limitMs ?? 120_000);
  let stdout = '';
  let stderr = '';
  command.stdout.on('data', (b: Buffer) => {
    stdout += b.toString('latin1');
    opts.onStdout?.(stdout, command.stdin);
    if (opts.slow) {
      command.stdout.pause();
      setTimeout(() => command.stdout.resume(), 100);
    }
  });
  if (opts.unread) command.stdout.pause();
  command.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
    // `readOnce`: the output is read from when stderr says so (tsvmm drains its output before it exits).
    if (opts.readOnce?.test(stderr)) command.stdout.resume();
  });
  const pid = command.pid!;
  const done = new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => command.on('close', (status) => {
    clearTimeout(killer);
    resolve({ status, stdout, stderr });
  }));
  return { pid, done, stdin: command.stdin };
}

test('--serial file: that cannot be opened or written ends with TSVMM_SYSCALL, not a stack trace (soft)', async (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  await withTempDirAsync(async (dir) => {
    const kernel = guestIn(dir, 'board/hello.asm');
    const r = spawnSync(process.execPath, [BIN, 'run', '--kernel', kernel, '--accel', 'soft', '-m', '64', '--serial', `file:${dir}/no/such/dir/serial.txt`], { encoding: 'utf8', input: '' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^tsvmm run: TSVMM_BAD_ARGUMENT: cannot write the --serial file .*serial\.txt: ENOENT\n$/);
    if (!existsSync('/dev/full')) return;
    // Writes that fail later (/dev/full: ENOSPC) stop the machine with the error, status 1.
    const full = spawnSync(process.execPath, [BIN, 'run', '--kernel', kernel, '--accel', 'soft', '-m', '64', '--serial', 'file:/dev/full'], { encoding: 'utf8', input: '', timeout: 120_000 });
    assert.equal(full.status, 1);
    assert.equal(full.stderr, "\ntsvmm: TSVMM_SYSCALL: writing the guest's console to /dev/full failed: ENOSPC\n");
  });
});

test('a guest flooding COM1 on a terminal slower than it: --timeout and Ctrl-A x still end the run (soft)', async (t) => {
  if (!hasTool('script')) return t.skip('script (util-linux) not installed: no pty to test with');
  if (!hasNasm()) return t.skip('nasm not installed');
  await withTempDirAsync(async (dir) => {
    const kernel = guestIn(dir, 'hostile/serial-flood.asm');
    const timedOut = await tsvmmRun(['run', '--kernel', kernel, '--accel', 'soft', '-m', '64', '--timeout', '2'], { pty: true, slow: true, limitMs: 60_000 }).done;
    assert.equal(timedOut.status, 4);
    assert.ok(timedOut.stdout.length > 4096, 'the output came through');
    let typed = false;
    const quit = await tsvmmRun(['run', '--kernel', kernel, '--accel', 'soft', '-m', '64'], {
      pty: true,
      slow: true,
      limitMs: 60_000,
      onStdout: (text, stdin) => {
        if (!typed && text.length > 64 * 1024) {
          typed = true;
          stdin.write('\x01x');
        }
      },
    }).done;
    assert.equal(quit.status, 0);
  });
});

test('console output to a pipe nobody reads: the guest waits, memory stays flat, --timeout ends the run (soft)', async (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  await withTempDirAsync(async (dir) => {
    const kernel = guestIn(dir, 'hostile/serial-flood.asm');
    const started = Date.now();
    const run = tsvmmRun(['run', '--kernel', kernel, '--accel', 'soft', '-m', '64', '--timeout', '10'], { unread: true, readOnce: /TSVMM_TIMEOUT/, limitMs: 60_000 });
    // RSS once the machine runs (after 3 s) and at its highest after: output that nobody reads
    // used to pile up in the process at several MB/s.
    let settledKiB = 0;
    let peakKiB = 0;
    const sample = setInterval(() => {
      try {
        const kib = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${run.pid}/status`, 'utf8'))?.[1] ?? 0);
        if (Date.now() - started < 3000) return;
        settledKiB ||= kib;
        peakKiB = Math.max(peakKiB, kib);
      } catch { /* ended */ }
    }, 100);
    const r = await run.done;
    clearInterval(sample);
    assert.equal(r.status, 4, r.stderr);
    assert.match(r.stderr, /TSVMM_TIMEOUT: timed out at RIP/);
    assert.ok(peakKiB - settledKiB < 24 * 1024, `tsvmm's RSS grew from ${settledKiB} to ${peakKiB} KiB while the guest flooded`);
  });
});

test('input piped beyond 64 KiB reaches the guest whole (soft)', async (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  await withTempDirAsync(async (dir) => {
    const kernel = guestIn(dir, 'board/serial-sum.asm');
    const n = 200_000;
    const input = Buffer.alloc(4 + n);
    input.writeUInt32LE(n, 0);
    let sum = 0;
    for (let i = 0; i < n; i++) sum = (sum + (input[4 + i] = (i * 13 + (i >> 9)) & 0xff)) >>> 0;
    let sent = false;
    const r = await tsvmmRun(['run', '--kernel', kernel, '--accel', 'soft', '-m', '64', '--timeout', '120'], {
      onStdout: (text, stdin) => {
        if (!sent && text === 'ready\n') {
          sent = true;
          stdin.end(input);
        }
      },
    }).done;
    assert.equal(r.stdout, `ready\ngot ${n.toString(16).padStart(8, '0')} sum ${sum.toString(16).padStart(8, '0')}\n`);
    assert.equal(r.status, 3);
  });
});

test('run --drive/--console/--rng: each bad value is named by its flag (status 2), each bad image by its code (status 1)', async () => {
  await withTempDirAsync(async (dir) => {
    const kernel = join(dir, 'kernel');
    writeFileSync(kernel, new Uint8Array(4096));
    const odd = join(dir, 'odd.img');
    writeFileSync(odd, new Uint8Array(1000));
    const many = Array.from({ length: 17 }, (_, i) => ['--drive', `file=${join(dir, `d${i}`)}`]).flat();
    const cases: [string[], number, RegExp][] = [
      [['--drive', 'readonly=on'], 2, /bad --drive 'readonly=on': file=PATH is missing/],
      [['--drive', 'file=a,cache=none'], 2, /bad --drive 'file=a,cache=none': unknown or malformed 'cache=none'/],
      [['--drive', 'file=a,readonly=yes'], 2, /unknown or malformed 'readonly=yes'/],
      [['--drive', 'file='], 2, /--drive file=: file is not a file name/],
      [['--drive', `file=${odd}`, '--drive', `file=${odd},readonly`], 2, /--drive file=.*odd.img,readonly: file is given twice: an image is one disk/],
      [['--drive', 'file=a,serial=123456789012345678901'], 2, /serial is too long: at most 20 bytes/],
      [many, 2, /--drive has 17 disks: at most 16/],
      [['--console', 'hvc0'], 2, /bad --console 'hvc0' \(serial or virtio\)/],
      [['--drive', `file=${join(dir, 'missing.img')}`], 1, /TSVMM_BAD_DISK: disk image .*missing.img cannot be opened for reading and writing/],
      [['--drive', `file=${odd},readonly=on`], 1, /TSVMM_BAD_DISK: disk image .*odd.img is 1000 bytes, not a whole number of 512-byte sectors/],
    ];
    for (const [args, status, re] of cases) {
      let err = '';
      const got = await main(['run', '--kernel', kernel, '--accel', 'soft', ...args], { out: () => {}, err: (s) => void (err += s) });
      assert.match(err, re, args.join(' '));
      assert.equal(got, status, args.join(' '));
    }
  });
});

test('run --nic: each bad value is named (status 2); a missing passt is TSVMM_TOOL_MISSING naming its package (status 1), before the guest starts', async () => {
  await withTempDirAsync(async (dir) => {
    const kernel = join(dir, 'kernel');
    writeFileSync(kernel, new Uint8Array(4096));
    const nine = Array.from({ length: 9 }, () => ['--nic', 'user']).flat();
    const cases: [string[], number, RegExp][] = [
      [['--nic', 'slirp'], 2, /--nic slirp: the kind is 'user' \(passt\) or 'tap', not 'slirp'/],
      [['--nic', 'tap'], 2, /--nic tap needs ifname=NAME/],
      [['--nic', 'user,mac=01:00:00:00:00:01'], 2, /MAC address '01:00:00:00:00:01' is a multicast address/],
      [['--nic', 'user,hostfwd=tcp::99999-:22'], 2, /host port '99999' in hostfwd=tcp::99999-:22 is not a port/],
      [['--nic', 'user,mac=02:00:00:00:00:01', '--nic', 'tap,ifname=t0,mac=02:00:00:00:00:01'], 2, /--nic are refused: two NICs have the MAC address 02:00:00:00:00:01/],
      [nine, 2, /--nic has 9 network cards: at most 8/],
    ];
    for (const [args, status, re] of cases) {
      let err = '';
      const got = await main(['run', '--kernel', kernel, '--accel', 'soft', ...args], { out: () => {}, err: (s) => void (err += s) });
      assert.match(err, re, args.join(' '));
      assert.equal(got, status, args.join(' '));
    }
    const path = process.env['PATH'];
    process.env['PATH'] = dir; // no passt there
    try {
      let err = '';
      const got = await main(['run', '--kernel', kernel, '--accel', 'soft', '--nic', 'user'], { out: () => {}, err: (s) => void (err += s) });
      assert.match(err, /TSVMM_TOOL_MISSING: passt not found: --nic user needs passt \(Debian package passt/);
      assert.equal(got, 1);
    } finally {
      process.env['PATH'] = path;
    }
  });
});

test('run --drive: QEMU\'s spelling (a doubled comma is a comma of the path; readonly alone is on)', async () => {
  const { parseDrive } = await import('../../src/cli/commands/run.js');
  assert.deepEqual(parseDrive('file=a,,b.img,readonly,serial=x y'), { file: 'a,b.img', readonly: true, serial: 'x y' });
  assert.deepEqual(parseDrive('file=/d.img,readonly=off'), { file: '/d.img', readonly: false });
});
