// gdb on Debian's Linux (soft backend). A first boot reads the guest's /proc/kallsyms (the cache
// has no System.map: Debian ships it in the -dbg package): start_kernel's address and the
// kernel's text range. The second boot starts paused (vm.gdbServer's wait, which `--gdb-wait`
// sets); gdb sets `hbreak *ADDRESS` there and continues; the breakpoint stops the boot vCPU in
// start_kernel, `bt` finds its caller's frame in the kernel's text; the breakpoint deleted, the
// kernel boots on to the shell, whose kallsyms shows the same address (a vmlinux entered through
// PVH runs at its link addresses: the project adds no `nokaslr`, KASLR is the bzImage
// decompressor's), and powering the machine off ends gdb's session with it.
// start_kernel is hit a few instructions after the entry: the soft CPU runs one instruction at a
// time while a hardware breakpoint is set, so one hit late in the boot would take minutes here.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { bootToShell, linuxGuest, type LinuxGuest } from '../helpers/linux.js';
import { hasTool, withTempDirAsync } from '../helpers/tools.js';

const BOOT_TIMEOUT_MS = 10 * 60_000;
const NAMES = ['start_kernel', '_stext', '_etext', '_sinittext', '_einittext'] as const;
const KALLSYMS = `grep ${NAMES.map((n) => `-e ' ${n}$'`).join(' ')} /proc/kallsyms; echo kallsyms-done\n`;

/** The addresses KALLSYMS printed. */
function symbols(out: string): Record<(typeof NAMES)[number], bigint> {
  const at = (name: string) => {
    const m = new RegExp(`([0-9a-f]{16}) [Tt] ${name}\\r?\\n`).exec(out);
    assert.ok(m, `${name} in /proc/kallsyms:\n${out.slice(-500)}`);
    return BigInt(`0x${m[1]}`);
  };
  return Object.fromEntries(NAMES.map((n) => [n, at(n)])) as Record<(typeof NAMES)[number], bigint>;
}

/** In the kernel's text: its .text, or its .init.text (start_kernel and its callers are __init). */
function inText(at: Record<(typeof NAMES)[number], bigint>, a: bigint): boolean {
  return (a >= at._stext && a < at._etext) || (a >= at._sinittext && a < at._einittext);
}

function options(guest: LinuxGuest, dir: string) {
  return {
    kernel: guest.vmlinux!, initrd: guest.writeInitramfs(dir), cmdline: 'console=ttyS0 tsvmm.interactive',
    memory: 256 << 20, accel: 'soft' as const, timeoutMs: BOOT_TIMEOUT_MS,
  };
}

test('gdb on Linux (soft): --gdb-wait, hbreak at a kallsyms address, bt, the kernel boots on and ends normally', { timeout: 2 * BOOT_TIMEOUT_MS + 60_000 }, async (t) => {
  if (!hasTool('gdb')) return t.skip('gdb not installed');
  const guest = linuxGuest();
  if (typeof guest === 'string' || !guest.vmlinux) return t.skip(typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)');
  await withTempDirAsync(async (dir) => {
    const first = await bootToShell(guest, options(guest, dir), async (vm) => void t.after(() => vm.stop()));
    first.vm.console.write(KALLSYMS);
    await first.waitFor(/\nkallsyms-done\r?\n/);
    const at = symbols(first.out());
    assert.ok(inText(at, at.start_kernel), `start_kernel at 0x${at.start_kernel.toString(16)}`);
    await first.powerOff();

    let gdbOut = '';
    let gdbEnded: Promise<number | null> | undefined;
    const second = await bootToShell(guest, options(guest, dir), async (vm) => {
      t.after(() => vm.stop());
      const server = await vm.gdbServer({ port: 0, wait: true });
      // After the stop, gdb logs the remote packets: a failure shows the protocol's last exchange.
      const ex = ['set pagination off', 'set confirm off', `target remote 127.0.0.1:${server.port}`,
        `hbreak *0x${at.start_kernel.toString(16)}`, 'continue', 'info registers rip', 'bt 2', 'set debug remote 1', 'delete', 'continue'];
      const gdb = spawn('gdb', ['-batch', '-nx', ...ex.flatMap((e) => ['-ex', e])], { stdio: ['ignore', 'pipe', 'pipe'] });
      gdb.stdout.on('data', (b: Buffer) => (gdbOut += b.toString()));
      gdb.stderr.on('data', (b: Buffer) => (gdbOut += b.toString()));
      gdbEnded = new Promise((resolve) => gdb.once('close', resolve));
      t.after(() => { if (gdb.exitCode === null) gdb.kill('SIGKILL'); });
    });
    second.vm.console.write(KALLSYMS);
    await second.waitFor(/\nkallsyms-done\r?\n/);
    assert.deepEqual(symbols(second.out()), at, 'the same addresses in both boots: no KASLR for a PVH entry');
    await second.powerOff();
    assert.equal(await gdbEnded, 0, gdbOut);

    const hex = at.start_kernel.toString(16);
    assert.match(gdbOut, new RegExp(`Hardware assisted breakpoint 1 at 0x${hex}`), gdbOut);
    assert.match(gdbOut, new RegExp(`Breakpoint 1, 0x0*${hex} in \\?\\? \\(\\)`), 'the breakpoint stopped the boot');
    assert.match(gdbOut, new RegExp(`rip\\s+0x${hex}\\s`), 'at start_kernel');
    const caller = /#1 +0x([0-9a-f]+) in /.exec(gdbOut);
    assert.ok(caller, gdbOut);
    const ret = BigInt(`0x${caller[1]}`);
    assert.ok(inText(at, ret) && ret !== at.start_kernel, `the caller's frame (0x${caller[1]}) lies in the kernel's text`);
    assert.match(gdbOut, /\[Inferior 1 \(Remote target\) exited normally\]/, "gdb saw the machine's end");
  });
});
