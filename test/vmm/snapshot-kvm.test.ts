// Save and restore on the kvm backend, whose 8259s, I/O APIC, local APIC and 8254 are KVM's own
// (saved as the board's devices' states: vmm/irqchip-translation.ts), and across backends: the
// board's multiboot guest (guests/board/hello.asm: an interrupt-driven echo through the 16550 and
// the 8259, waiting in HLT) saved mid-run on one backend continues on the same or the other one
// where it stopped. These need /dev/kvm; elsewhere they skip (the nested-KVM run has one).
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Accel } from '../../src/backends/open.js';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { ramLayout } from '../../src/vmm/board.js';
import { loadRam, readSnapshot, writeSnapshot } from '../../src/vmm/snapshot-file.js';
import { REDIR_MASKED, type IoApicState } from '../../src/devices/ioapic.js';
import type { I8259ChipState, I8259PicState } from '../../src/devices/i8259-pic.js';
import type { LocalApicState } from '../../src/devices/local-apic.js';
import { APIC_LVT_LINT0 } from '../../src/x86/apic.js';
import { watchConsole } from '../helpers/console.js';
import { boardGuestOrSkip } from '../helpers/nasm.js';
import { withTempDirAsync } from '../helpers/tools.js';

/**
 * Continues the snapshot `snap` on `accel` and checks the guest echoes `text`, typed a character
 * at a time: the first may find the guest polling its UART before it halts again, each later one
 * reaches a guest halted in getc, which only IRQ 4 wakes (on kvm, where HLT waits in the kernel).
 */
async function continueOn(snap: string, accel: Accel, text: string): Promise<VirtualMachine> {
  const restored = await VirtualMachine.restore(snap, { accel, timeoutMs: 60_000 });
  const b = watchConsole(restored);
  restored.start();
  // A guest that never gets its interrupt ends at the timeout: fail then, with what it printed.
  let echoed = false;
  const ended = restored.exited.then((e) => { if (!echoed) assert.fail(`the guest restored on ${accel} ended (${JSON.stringify(e.end)}) before it echoed ${text}; it printed ${JSON.stringify(b.output())}`); });
  for (let i = 1; i <= text.length; i++) {
    restored.console.write(text[i - 1]!);
    await Promise.race([b.until(new RegExp(`${text.slice(0, i)}$`)), ended]);
  }
  echoed = true;
  assert.equal(b.output(), text, `the guest restored on ${accel} neither boots again nor repeats what it printed`);
  // Its RAM came from the file copy-on-write (soft: the arena; kvm: the memory slot's pages), not copied.
  assert.ok(readFileSync('/proc/self/maps', 'utf8').includes(snap), `the snapshot's pages are mapped into the machine restored on ${accel}`);
  return restored;
}

/**
 * The interrupt controllers in a saved file are what the echo guest programmed, whichever backend
 * saved it: the 8259 pair initialized with vectors 0x20 and 0x28, only IRQ 4 unmasked, nothing in
 * service; the I/O APIC untouched (all masked); the local APIC's LINT0 in virtual wire mode.
 */
function checkSavedControllers(path: string, savedOn: Accel): void {
  const d = readSnapshot(path, ramLayout).devices as { pic: I8259PicState; ioapic: IoApicState; 'lapic-0': LocalApicState };
  const chip = (c: I8259ChipState) => ({ imr: c.imr, isr: c.isr, vectorBase: c.vectorBase, initStep: c.initStep, aeoi: c.icw4 & 2, lowestPriority: c.lowestPriority });
  assert.deepEqual(chip(d.pic.master), { imr: 0xef, isr: 0, vectorBase: 0x20, initStep: 0, aeoi: 0, lowestPriority: 7 }, `the master 8259 saved on ${savedOn}`);
  assert.deepEqual(chip(d.pic.slave), { imr: 0xff, isr: 0, vectorBase: 0x28, initStep: 0, aeoi: 0, lowestPriority: 7 }, `the slave 8259 saved on ${savedOn}`);
  assert.ok(d.ioapic.low.every((e) => (e & REDIR_MASKED) !== 0), `the I/O APIC saved on ${savedOn} has every entry masked`);
  assert.equal(d['lapic-0'].lvt[APIC_LVT_LINT0]! & 0x1_0700, 0x700, `LINT0 saved on ${savedOn} is ExtINT, unmasked`);
}

/** Ends the echo guest through the debug-exit port. */
async function endEcho(vm: VirtualMachine): Promise<void> {
  vm.console.write('e5');
  assert.deepEqual((await vm.exited).end, { how: 'debug-exit', status: (5 << 1) | 1 }); // isa-debug-exit's status
}

/**
 * Runs the echo guest on `path[0]`, saves it mid-run, and continues the file on `path[1]`; there,
 * saved again, on `path[2]` and so on. On kvm the guest's HLT waits in the kernel for IRQ 4
 * through the in-kernel 8259 (and the local APIC's virtual wire), so a continuation on kvm shows
 * that the interrupt controllers came through every step before it. (The soft board also wakes
 * a halted vCPU for the host's input, so a last step on soft alone would not.)
 */
async function saveAndContinue(image: Uint8Array, path: Accel[]): Promise<void> {
  await withTempDirAsync(async (dir) => {
    const kernel = join(dir, 'hello.bin');
    writeFileSync(kernel, image);
    const snap = (i: number) => join(dir, `vm${i}.snap`);
    let vm = await VirtualMachine.create({ kernel, accel: path[0]!, memory: 16 << 20 });
    try {
      const a = watchConsole(vm);
      vm.start();
      await a.until(/echo> $/);
      vm.console.write('ab');
      await a.until(/echo> ab$/);
      await vm.save(snap(0));
      checkSavedControllers(snap(0), path[0]!);
      // The saved machine goes on after the save.
      vm.console.write('c');
      await a.until(/echo> abc$/);
      assert.deepEqual((await vm.stop()).end, { how: 'stopped' });
      for (let i = 1; i < path.length; i++) {
        vm = await continueOn(snap(i - 1), path[i]!, `xyz${i}`);
        if (i === path.length - 1) break;
        await vm.save(snap(i));
        checkSavedControllers(snap(i), path[i]!);
        assert.deepEqual((await vm.stop()).end, { how: 'stopped' });
      }
      await endEcho(vm);
    } finally {
      await vm.stop(); // a failed check leaves no machine running (a no-op once it ended)
    }
  });
}

test('(kvm) a machine saved mid-run on the kvm backend continues from the file where it stopped (serial echo, in-kernel 8259, HLT)', { timeout: 300_000 }, async (t) => {
  const image = boardGuestOrSkip(t, 'hello', 'kvm');
  if (image) await saveAndContinue(image, ['kvm', 'kvm']);
});

test('(kvm) a machine saved on the soft backend continues on the kvm backend', { timeout: 300_000 }, async (t) => {
  const image = boardGuestOrSkip(t, 'hello', 'kvm');
  if (image) await saveAndContinue(image, ['soft', 'kvm']);
});

test('(kvm) a machine saved on the kvm backend continues on the soft backend, and saved there continues on kvm', { timeout: 300_000 }, async (t) => {
  const image = boardGuestOrSkip(t, 'hello', 'kvm');
  if (image) await saveAndContinue(image, ['kvm', 'soft', 'kvm']);
});

/** The snapshot at `path` as written by `backend`, with I/O APIC entry `pin` unmasked (when given). */
function rewrite(path: string, out: string, backend: 'kvm' | 'soft', pin?: number): void {
  const snap = readSnapshot(path, ramLayout);
  const ram = snap.ram.map((r) => ({ gpa: r.gpa, bytes: new Uint8Array(r.size) }));
  loadRam(path, snap, (gpa) => ({ bytes: ram.find((r) => r.gpa === gpa)!.bytes }), { map: false });
  const ioapic = structuredClone(snap.devices.ioapic) as IoApicState;
  if (pin !== undefined) ioapic.low[pin] = ioapic.low[pin]! & ~REDIR_MASKED;
  writeSnapshot(out, { machine: { ...snap.machine, backend }, vcpus: snap.vcpus, devices: { ...snap.devices, ioapic }, ram });
}

test('a snapshot that moves between backends is refused when the guest routes interrupts through I/O APIC pin 0 or 2 (ISA IRQ 0 is wired to one on kvm, the other on soft)', { timeout: 120_000 }, async (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  await withTempDirAsync(async (dir) => {
    const kernel = join(dir, 'hello.bin');
    writeFileSync(kernel, assemble('board/hello.asm'));
    const snap = join(dir, 'vm.snap');
    const vm = await VirtualMachine.create({ kernel, accel: 'soft', memory: 16 << 20 });
    const a = watchConsole(vm);
    vm.start();
    await a.until(/echo> $/);
    await vm.save(snap);
    await vm.stop();
    // "Saved on kvm", restored on soft: refused with pin 2 in use (the board refuses it as it is
    // built, before the guest runs), not with the guest on the 8259 alone.
    rewrite(snap, join(dir, 'pin2.snap'), 'kvm', 2);
    const refused = await VirtualMachine.restore(join(dir, 'pin2.snap'), { accel: 'soft' });
    refused.start();
    const end = (await refused.exited).end;
    assert.ok(end.how === 'error' && end.code === 'TSVMM_SNAPSHOT_MISMATCH' && /pin 2/.test(end.message), JSON.stringify(end));
    rewrite(snap, join(dir, 'pin2-soft.snap'), 'soft', 2);
    const same = await VirtualMachine.restore(join(dir, 'pin2-soft.snap'), { accel: 'soft' });
    same.start();
    await endEcho(same);
    rewrite(snap, join(dir, 'pic.snap'), 'kvm');
    const moved = await continueOn(join(dir, 'pic.snap'), 'soft', 'ok');
    await endEcho(moved);
  });
});
