// Save and restore on the kvm backend, whose 8259s, I/O APIC, local APIC and 8254 are KVM's own
// (saved as the board's devices' states: vmm/irqchip-translation.ts), and across backends: the
// board's multiboot guest (guests/board/hello.asm: an interrupt-driven echo through the 16550 and
// the 8259, waiting in HLT) saved mid-run on one backend continues on the same or the other one
// where it stopped. These need /dev/kvm; elsewhere they skip (the nested-KVM run has one).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Accel } from '../../src/backends/open.js';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { kvmOrSkip } from '../helpers/kvm.js';
import { withTempDirAsync } from '../helpers/tools.js';

function guestOrSkip(t: TestContext): Uint8Array | undefined {
  if (!kvmOrSkip(t)) return undefined;
  if (!hasNasm()) {
    t.skip('nasm not installed');
    return undefined;
  }
  return assemble('board/hello.asm');
}

/** Collects a machine's console output; `until` resolves once it matches. */
function watch(vm: VirtualMachine) {
  let output = '';
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  vm.console.on('data', (b: Buffer) => {
    output += b.toString('latin1');
    for (const w of waiters.splice(0)) (w.re.test(output) ? w.resolve() : waiters.push(w));
  });
  const until = (re: RegExp) => (re.test(output) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ re, resolve })));
  return { until, output: () => output };
}

/** Runs the echo guest on `from`, saves it mid-run, and continues the file on `to`. */
async function saveAndContinue(image: Uint8Array, from: Accel, to: Accel): Promise<void> {
  await withTempDirAsync(async (dir) => {
    const kernel = join(dir, 'hello.bin');
    writeFileSync(kernel, image);
    const snap = join(dir, 'vm.snap');
    const vm = await VirtualMachine.create({ kernel, accel: from, memory: 16 << 20 });
    const a = watch(vm);
    vm.start();
    await a.until(/echo> $/);
    vm.console.write('ab');
    await a.until(/echo> ab$/);
    await vm.save(snap);
    // The saved machine goes on after the save.
    vm.console.write('c');
    await a.until(/echo> abc$/);
    assert.deepEqual((await vm.stop()).end, { how: 'stopped' });

    const restored = await VirtualMachine.restore(snap, { accel: to, timeoutMs: 60_000 });
    const b = watch(restored);
    restored.start();
    // Its interrupts work: the 8259 (and on kvm the local APIC's virtual wire) as saved, with
    // IRQ 4 unmasked and the guest waiting in HLT for it.
    restored.console.write('xy');
    await b.until(/xy$/);
    restored.console.write('e5');
    const exited = await restored.exited;
    assert.deepEqual(exited.end, { how: 'debug-exit', status: (5 << 1) | 1 }); // isa-debug-exit's status
    assert.equal(b.output(), 'xy', `the guest restored on ${to} neither boots again nor repeats what it printed`);
  });
}

test('(kvm) a machine saved mid-run on the kvm backend continues from the file where it stopped (serial echo, in-kernel 8259, HLT)', { timeout: 300_000 }, async (t) => {
  const image = guestOrSkip(t);
  if (image) await saveAndContinue(image, 'kvm', 'kvm');
});

test('(kvm) a machine saved on the soft backend continues on the kvm backend', { timeout: 300_000 }, async (t) => {
  const image = guestOrSkip(t);
  if (image) await saveAndContinue(image, 'soft', 'kvm');
});

test('(kvm) a machine saved on the kvm backend continues on the soft backend', { timeout: 300_000 }, async (t) => {
  const image = guestOrSkip(t);
  if (image) await saveAndContinue(image, 'kvm', 'soft');
});
