// Save and restore of a machine with two vCPUs on the soft backend: the board's SMP guest in its
// "count" mode (guests/board/smp.asm: each processor counts in a register and prints its ticks,
// the application processor with interrupts enabled) is saved while both count, and the machine
// restored from the file goes on counting on both from where each was (not from 0: the AP's
// registers came back, and it does not wait for a start-up IPI again), and an IPI the boot vCPU
// sends after the restore reaches the AP (its local APIC came back software-enabled). A file whose
// configuration says another number of vCPUs than it has VCPU sections is refused.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { TsvmmError } from '../../src/common/errors.js';
import { GPR } from '../../src/nvmm/state.js';
import { ramLayout } from '../../src/vmm/board.js';
import { readSnapshot } from '../../src/vmm/snapshot-file.js';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { watchConsole } from '../helpers/console.js';
import { withBoardGuest } from '../helpers/nasm.js';

/** The ticks processor `cpu` printed ("cN T" lines), in order. */
function ticks(output: string, cpu: number): number[] {
  return [...output.matchAll(new RegExp(`^c${cpu} (\\d+)$`, 'gm'))].map((m) => Number(m[1]));
}

const isCode = (code: string) => (e: unknown) => e instanceof TsvmmError && e.code === code;

/** The file with its MACHINE section's config.cpus set to `cpus` (checksum updated). */
function withCpus(file: Uint8Array, cpus: number): Uint8Array {
  const d = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const at = 16; // the first section, MACHINE
  const len = Number(d.getBigUint64(at + 8, true));
  const machine = JSON.parse(Buffer.from(file.subarray(at + 24, at + 24 + len)).toString('utf8')) as { config: { cpus: number } };
  machine.config.cpus = cpus;
  const payload = Buffer.from(JSON.stringify(machine), 'utf8');
  const out = Buffer.alloc(file.length - len + payload.length);
  out.set(file.subarray(0, at + 24));
  out.set(payload, at + 24);
  out.set(file.subarray(at + 24 + len), at + 24 + payload.length);
  const o = new DataView(out.buffer, out.byteOffset, out.byteLength);
  o.setBigUint64(at + 8, BigInt(payload.length), true);
  o.setUint32(at + 16, crc32(payload) >>> 0, true);
  return out;
}

test('soft, --smp 2: a machine saved while both vCPUs count continues on both from the file, and an IPI after the restore is delivered', { timeout: 300_000 }, async (t) => {
  await withBoardGuest(t, 'smp', 'soft', async (kernel, dir) => {
    const snap = join(dir, 'vm.snap');
    const vm = await VirtualMachine.create({ kernel, accel: 'soft', cpus: 2, memory: 32 << 20, cmdline: 'count' });
    const a = watchConsole(vm);
    vm.start();
    await a.until(/^c0 3$/m);
    await a.until(/^c1 3$/m);
    await vm.save(snap);
    assert.deepEqual((await vm.stop()).end, { how: 'stopped' });
    const before = [ticks(a.output(), 0), ticks(a.output(), 1)];
    const file = readSnapshot(snap, ramLayout);
    assert.equal(file.vcpus.length, 2);
    assert.deepEqual(file.devices['cpu-1'], { runState: 'running', sipiVector: -1, nmiPending: false });
    assert.equal(((file.devices['lapic-1'] as { svr: number }).svr & 0x100), 0x100, 'the AP\'s local APIC, software-enabled by the guest');

    // A restored machine that cannot go on ends by its timeout, failing the checks below.
    const restored = await VirtualMachine.restore(snap, { timeoutMs: 60_000 });
    const b = watchConsole(restored);
    restored.start();
    await b.until(/^c0 \d+$/m);
    await b.until(/^c1 \d+$/m);
    assert.doesNotMatch(b.output(), /mp table|cpu \d/, 'the restored guest does not boot again');
    for (const cpu of [0, 1]) {
      const first = ticks(b.output(), cpu)[0]!;
      const last = before[cpu]!.at(-1)!;
      // Saved after tick 3 was printed, and no later than the original's last tick.
      assert.ok(first > 3 && first <= last + 1, `vCPU ${cpu} goes on from its saved count: first tick ${first} after the restore, ticks 3 to ${last} before`);
    }
    restored.console.write('i');
    const exited = await restored.exited;
    assert.deepEqual(exited.end, { how: 'debug-exit', status: (0x21 << 1) | 1 }, b.output().slice(-500));
    assert.match(b.output(), /^ipi 1$/m);

    // A file that says one vCPU, or three, beside its two VCPU sections.
    const bytes = readFileSync(snap);
    for (const cpus of [1, 3]) {
      const bad = join(dir, `cpus-${cpus}.snap`);
      writeFileSync(bad, withCpus(bytes, cpus));
      await assert.rejects(VirtualMachine.restore(bad), isCode('TSVMM_SNAPSHOT_CORRUPT'), `a file of 2 vCPUs that says ${cpus}`);
    }
  });
});

test('soft, --smp 2: vm.pause() stops every vCPU (neither counts on) until resume(), and a save while paused continues from the file', { timeout: 300_000 }, async (t) => {
  await withBoardGuest(t, 'smp', 'soft', async (kernel, dir) => {
    const vm = await VirtualMachine.create({ kernel, accel: 'soft', cpus: 2, memory: 32 << 20, cmdline: 'count', timeoutMs: 240_000 });
    const a = watchConsole(vm);
    vm.start();
    // Both have printed (the AP may count ahead of the boot vCPU: the last tick of each is read below).
    await a.until(/^c0 3$/m);
    await a.until(/^c1 3$/m);
    await vm.pause();
    const atPause = [ticks(a.output(), 0).at(-1)!, ticks(a.output(), 1).at(-1)!];
    // Paused, neither processor prints another tick (each prints several a second when it runs).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.deepEqual([ticks(a.output(), 0).at(-1), ticks(a.output(), 1).at(-1)], atPause, `ticks while paused:\n${a.output().slice(-300)}`);
    // What the guest had written when it stopped: a pause may fall inside a line it was printing.
    const atPauseText = a.output();
    // Two saves while paused take every vCPU where it stood: an AP left running would have
    // counted on (R12) between them, up to its next tick's output, which waits for the paused board.
    const snap = join(dir, 'paused.snap'), again = join(dir, 'again.snap');
    await vm.save(snap);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await vm.save(again);
    const [first, second] = [readSnapshot(snap, ramLayout), readSnapshot(again, ramLayout)];
    for (const cpu of [0, 1]) {
      const at = (f: typeof first) => [f.vcpus[cpu]!.state.gprs[GPR.R12], f.vcpus[cpu]!.state.gprs[GPR.RIP]];
      assert.deepEqual(at(second), at(first), `vCPU ${cpu}'s R12 and RIP in two saves of the paused machine`);
    }
    await vm.resume();
    await a.until(new RegExp(`^c1 ${atPause[1]! + 2}$`, 'm'));
    await a.until(new RegExp(`^c0 ${atPause[0]! + 2}$`, 'm'));
    await vm.stop();
    const restored = await VirtualMachine.restore(snap, { timeoutMs: 60_000 });
    const b = watchConsole(restored);
    restored.start();
    await b.until(/^c1 \d+$/m);
    // Read on from the pause, the restored machine's output continues the AP's count (and the
    // line the pause cut, if it cut one): its next tick is the one after the last before the pause.
    const c1 = ticks(atPauseText + b.output(), 1);
    assert.equal(c1[c1.lastIndexOf(atPause[1]!) + 1], atPause[1]! + 1, `the AP goes on from the tick it had when paused: ${JSON.stringify(b.output().slice(0, 200))}`);
    await restored.stop();
  });
});

test('soft, --smp 2: an application processor the guest never started is saved waiting for its start-up IPI, and waits on after the restore', { timeout: 120_000 }, async (t) => {
  // guests/board/hello.asm runs on the boot vCPU alone: an interrupt-driven echo (16550, 8259).
  await withBoardGuest(t, 'hello', 'soft', async (kernel, dir) => {
    const snap = join(dir, 'vm.snap');
    const vm = await VirtualMachine.create({ kernel, accel: 'soft', cpus: 2, memory: 16 << 20 });
    const a = watchConsole(vm);
    vm.start();
    await a.until(/echo> $/);
    vm.console.write('ab');
    await a.until(/echo> ab$/);
    await vm.save(snap);
    vm.console.write('c');
    await a.until(/echo> abc$/);
    assert.deepEqual((await vm.stop()).end, { how: 'stopped' });
    const file = readSnapshot(snap, ramLayout);
    assert.deepEqual(file.devices['cpu-1'], { runState: 'wait-for-SIPI', sipiVector: -1, nmiPending: false });

    const restored = await VirtualMachine.restore(snap, { timeoutMs: 60_000 });
    const b = watchConsole(restored);
    restored.start();
    restored.console.write('xy');
    await b.until(/xy$/);
    // Saved again, the AP still waits (it did not run from its power-up state instead).
    const again = join(dir, 'again.snap');
    await restored.save(again);
    assert.deepEqual(readSnapshot(again, ramLayout).devices['cpu-1'], { runState: 'wait-for-SIPI', sipiVector: -1, nmiPending: false });
    restored.console.write('e5');
    const exited = await restored.exited;
    assert.deepEqual(exited.end, { how: 'debug-exit', status: (5 << 1) | 1 });
    assert.equal(b.output(), 'xy');
  });
});
