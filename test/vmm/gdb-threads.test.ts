// GDB's threads on a machine of two vCPUs (vm.gdbServer with --smp 2): each vCPU a thread (id =
// vCPU id + 1), stopped and resumed together. The real gdb in batch mode on
// guests/gdb/smp-target.asm (an ELF with its symbols): both threads listed while the application
// processor still waits for its start-up IPI (its reset state readable, a step of it refused),
// a breakpoint on code only the AP runs stopping thread 2, each thread's own registers, a step
// of thread 2, and the guest run to its end. Then without breakpoints (so on kvm nested in QEMU's
// TCG too, which does not intercept a nested INT3): both vCPUs spinning stopped together by Ctrl-C,
// each thread's own registers, a step of thread 2 alone. On each backend (kvm skips where
// /dev/kvm is missing).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Accel } from '../../src/backends/open.js';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { gdbBatch, printedValues } from '../helpers/gdb.js';
import { KVM_ON_QEMU_TCG, kvmUnavailable } from '../helpers/kvm.js';
import { linkedGuest, linkedGuestUnavailable } from '../helpers/nasm.js';
import { hasTool, tempDir } from '../helpers/tools.js';

const GUEST = ['gdb/smp-target.asm', 'gdb/target.ld'] as const;
const tools: string | false = linkedGuestUnavailable(...GUEST) || (!hasTool('gdb') ? 'gdb not installed' : false);

/** Why the test cannot run on `accel` here, or false; `breakpoints`: it needs the guest's INT3 to stop it. */
function skipOn(accel: Accel, breakpoints: boolean): string | false {
  if (tools) return tools;
  if (accel !== 'kvm') return false;
  // As in gdb.test.ts: nested in QEMU's TCG, a guest's INT3 is not intercepted.
  return kvmUnavailable() ?? (breakpoints && KVM_ON_QEMU_TCG ? 'QEMU TCG does not intercept a nested INT3 as #BP' : false);
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** The SMP guest on `accel` with 2 vCPUs, paused at its entry (gdbServer's wait) until a client resumes it. */
async function startSmp(dir: string, accel: Accel, timeoutMs = 240_000) {
  const { elf, symbols: at } = linkedGuest(...GUEST);
  const path = join(dir, 'smp-target.elf');
  writeFileSync(path, elf);
  const vm = await VirtualMachine.create({ kernel: path, accel, cpus: 2, memory: 16 << 20, timeoutMs });
  const server = await vm.gdbServer({ port: 0, wait: true });
  let console = '';
  const waiters: (() => void)[] = [];
  vm.console.on('data', (b: Buffer) => {
    console += b.toString('latin1');
    for (const w of waiters.splice(0)) w();
  });
  vm.start();
  /** Resolves once the guest's console shows `text`. */
  const printed = async (text: string) => {
    while (!console.includes(text)) await new Promise<void>((resolve) => waiters.push(resolve));
  };
  return { vm, port: server.port, path, at, console: () => console, printed };
}

for (const accel of ['soft', 'kvm'] as const) {
  test(`gdb threads on an SMP guest: one per vCPU, a breakpoint the AP hits, each thread's registers, stepping thread 2 (${accel})`, async (t: TestContext) => {
    const skip = skipOn(accel, true);
    if (skip) return t.skip(skip);
    const { vm, port, path, at, console } = await startSmp(tempDir(t), accel);
    const out = await gdbBatch([
      'set pagination off', 'set confirm off',
      `file ${path}`,
      `target remote 127.0.0.1:${port}`,
      'info threads',
      'thread 2', 'p/x $pc',
      'stepi',
      'thread 1',
      'break ap_work',
      'continue',
      'p/x $r12',
      'info threads',
      'thread 1', 'p/x $r12',
      'thread 2', 'stepi', 'p/x $pc', 'p/x $r13',
      'delete',
      'continue',
    ]);
    const exited = await vm.exited;
    // Both vCPUs are threads from the start, the AP waiting for its start-up IPI at its reset
    // state (CS:IP f000:fff0); a step of it is refused (an error reply, not a hang).
    assert.match(out, /\* 1 +Thread 1 \(vCPU 0 \(running\)\) +0x0*100010 in _start \(\)/, out);
    assert.match(out, /\n +2 +Thread 2 \(vCPU 1 \(wait-for-SIPI\)\) +0x0*fff0 in \?\? \(\)/, out);
    assert.match(out, /Remote failure reply: E05/, 'stepping the waiting AP is an error reply');
    // The breakpoint on code only the AP runs stops thread 2; each thread has its own R12
    // (0x100 + its APIC id), and a step of thread 2 moves it alone to the next instruction.
    assert.match(out, new RegExp(`Thread 2 hit Breakpoint 1, 0x0*${at.ap_work!.toString(16)} in ap_work \\(\\)`), out);
    assert.match(out, /\n +1 +Thread 1 \(vCPU 0 \(running\)\) +0x[0-9a-f]+ in bsp_wait \(\)/, 'the boot vCPU stopped too (all-stop), in its wait loop');
    assert.match(out, /\* 2 +Thread 2 \(vCPU 1 \(running\)\) +0x[0-9a-f]+ in ap_work \(\)/);
    assert.deepEqual(printedValues(out), ['0xfff0', '0x101', '0x100', hex(at.ap_stepped!), '0x5a5a'], out);
    assert.match(out, /\[Inferior 1 \(Remote target\) exited with code 0103\]/, 'the session ends with the machine (W packet)');
    assert.deepEqual(exited.end, { how: 'debug-exit', status: 2 * 0x21 + 1 }, 'the guest ran to its end');
    assert.match(console(), /smp done/);
  });

  test(`gdb threads: detach with thread 2 stopped at a breakpoint resumes every vCPU (${accel})`, async (t: TestContext) => {
    const skip = skipOn(accel, true);
    if (skip) return t.skip(skip);
    // A vCPU left paused would keep the boot vCPU waiting for ever: the machine's timeout ends that.
    const { vm, port, path, console } = await startSmp(tempDir(t), accel, 60_000);
    const out = await gdbBatch([
      'set pagination off', 'set confirm off',
      `file ${path}`,
      `target remote 127.0.0.1:${port}`,
      'break ap_work',
      'continue',
      'detach',
    ]);
    const exited = await vm.exited;
    assert.match(out, /Thread 2 hit Breakpoint 1, 0x[0-9a-f]+ in ap_work \(\)/, out);
    assert.match(out, /\[Inferior 1 \(Remote target\) detached\]/);
    assert.deepEqual(exited.end, { how: 'debug-exit', status: 2 * 0x21 + 1 }, 'both vCPUs ran on: the AP counted itself, the boot vCPU saw it and ended');
    assert.match(console(), /smp done/);
  });
}

// No breakpoint: what runs on kvm nested in QEMU's TCG too (a step, the registers, Ctrl-C). Both
// vCPUs spin, each in its own loop with its own R12, until gdb clears `hold`; Ctrl-C must stop
// them all (on kvm: the AP's thread kicked out of KVM_RUN to its debug channel).
for (const accel of ['soft', 'kvm'] as const) {
  test(`gdb threads: Ctrl-C stops both spinning vCPUs, each thread's registers, a step of thread 2 alone, the guest run to its end (${accel})`, async (t: TestContext) => {
    const skip = skipOn(accel, false);
    if (skip) return t.skip(skip);
    const { vm, port, path, at, console, printed } = await startSmp(tempDir(t), accel);
    const out = await gdbBatch([
      'set pagination off', 'set confirm off',
      `file ${path}`,
      `target remote 127.0.0.1:${port}`,
      'info threads',
      'set {char}&hold = 1',
      'continue', // both spin, the boot vCPU having printed "both hold": SIGINT then
      'info threads',
      'thread 1', 'p/x $r12', 'p/x $pc',
      'thread 2', 'p/x $r12', 'p/x $pc',
      // Only the thread stepped runs during a step (GDB's default lets the others run on meanwhile).
      'set scheduler-locking step',
      'stepi', 'p/x $pc',
      'thread 1', 'p/x $pc',
      'set {char}&hold = 0',
      'set {char}&status = 0x12',
      'continue',
    ], printed('both hold\n'));
    const exited = await vm.exited;
    assert.match(out, /\n +2 +Thread 2 \(vCPU 1 \(wait-for-SIPI\)\) +0x0*fff0 in \?\? \(\)/, out);
    assert.match(out, /Thread [12] received signal SIGINT, Interrupt\./, 'Ctrl-C stopped the spinning guest');
    // All-stop: both vCPUs stopped in their own loops (the AP's has inner labels: gdb shows ap_hold[test], ap_hold[loop]).
    assert.match(out, /\n[ *] +1 +Thread 1 \(vCPU 0 \(running\)\) +0x[0-9a-f]+ in bsp_hold \(\)/, out);
    assert.match(out, /\n[ *] +2 +Thread 2 \(vCPU 1 \(running\)\) +0x[0-9a-f]+ in ap_hold(\[test\]|\[loop\])? \(\)/, out);
    const [r12a, pc1, r12b, pc2, stepped, pc1After, ...rest] = printedValues(out);
    assert.deepEqual([r12a, r12b, rest], ['0x100', '0x101', []], `each thread's own R12 (0x100 + its APIC id)\n${out}`);
    // The step moves thread 2 to the loop's next instruction (`hold` still set: jne goes back), thread 1 not at all.
    const loop = [at.ap_hold!, at['ap_hold.test']!, at['ap_hold.loop']!];
    const i = loop.indexOf(Number(pc2));
    assert.ok(i >= 0, `thread 2 stopped in its loop (${pc2})\n${out}`);
    assert.equal(stepped, hex(loop[(i + 1) % loop.length]!), 'stepi of thread 2 ran its next instruction');
    assert.ok(Number(pc1) >= at.bsp_hold! && Number(pc1) < at.bsp_end!, `thread 1 stopped in its loop (${pc1})`);
    assert.equal(pc1After, pc1, 'thread 1 did not move while thread 2 stepped');
    assert.match(out, /\[Inferior 1 \(Remote target\) exited with code 045\]/, 'the session ends with the machine (W packet)');
    assert.deepEqual(exited.end, { how: 'debug-exit', status: 2 * 0x12 + 1 }, 'the guest ran to its end with the status gdb wrote');
    assert.match(console(), /both hold\r?\nsmp done/);
  });
}
