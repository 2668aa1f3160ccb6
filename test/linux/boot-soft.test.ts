// Debian's Linux kernel on tsvmm's own CPU (the soft backend): the busybox /init mounts proc,
// sysfs and tmpfs, prints uname and cpuinfo, writes and reads a tmpfs file; then a shell is typed
// into through the library's console stream, and `poweroff -f` ends the VM through ACPI S5.
// One boot (about 5 minutes here) covers both the scripted and the interactive requirement, and
// the board's APIC mode (the I/O APIC, the local APIC timer as clock event device). The
// CPU (the default model, max) is an AMD one to Linux, which runs its AMD init, finds a
// hypervisor it does not know (so no PV guest code), and reads no MSR the CPU lacks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findGuestKernel } from '../../src/loader/guest-kernels.js';
import { bootToShell, linuxGuest } from '../helpers/linux.js';
import { withTempDirAsync } from '../helpers/tools.js';

const BOOT_TIMEOUT_MS = 12 * 60_000;

test('Linux on the soft backend: busybox /init, commands typed into the console, power-off', { timeout: BOOT_TIMEOUT_MS + 60_000 }, async (t) => {
  const guest = linuxGuest();
  const vmlinux = findGuestKernel()?.vmlinux;
  if (typeof guest === 'string' || !vmlinux) return t.skip(typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)');
  await withTempDirAsync(async (dir) => {
    const shell = await bootToShell(guest, {
      kernel: vmlinux, initrd: guest.writeInitramfs(dir), cmdline: 'console=ttyS0 tsvmm.interactive',
      memory: 256 << 20, accel: 'soft', timeoutMs: BOOT_TIMEOUT_MS,
    });
    const out = shell.out();
    // The soft CPU reports itself immune to speculative attacks (IA32_ARCH_CAPABILITIES), and Linux believes it.
    assert.match(out, /vulnerability meltdown: Not affected/);
    assert.match(out, /vulnerability spectre_v2: Mitigation: Enhanced/);
    assert.match(out, /vulnerability mds: Not affected/);
    // A real vendor's CPU: Linux's AMD init ran (its family-0xF erratum check, the AMD TLB leaves),
    // not the generic one; the hypervisor bit is seen (no PMU "due to virtualization"), the
    // hypervisor leaf taken for no hypervisor Linux knows.
    assert.doesNotMatch(out, /unknown, using generic init|Your system may be unstable/);
    assert.match(out, /vendor_id\s*: AuthenticAMD\r?\n/);
    assert.match(out, /model name\s*: tsvmm soft CPU \(max\)/);
    assert.match(out, /process: using AMD E400 aware idle routine/);
    assert.match(out, /Last level dTLB entries: 4KB 512, 2MB 8, 4MB 4/);
    assert.match(out, /PMU not available due to virtualization/);
    assert.doesNotMatch(out, /Hypervisor detected/);
    assert.match(out, /BHI: Not affected/);
    assert.doesNotMatch(out, /unchecked MSR access|general protection/);
    assert.deepEqual(shell.logs.filter((n) => /MSR 0xc001/.test(n)), [], 'an AMD MSR the CPU model lacks');
    // APIC mode: the board's I/O APIC routes the ISA interrupts (the PIT through pin 2) and the
    // local APIC's timer is the clock event device that ticks (lapic: the board does not
    // advertise TSC-deadline mode, see vmm/interrupts.ts).
    assert.match(out, /IOAPIC\[0\]: apic_id 1, version 17, address 0xfec00000, GSI 0-23/);
    assert.match(out, /INT_SRC_OVR \(bus 0 bus_irq 0 global_irq 2 dfl dfl\)/);
    assert.doesNotMatch(out, /timer doesn't work|MP-BIOS bug|APIC error/);
    // x2APIC is advertised (CPUID.1:ECX.X2APIC) and Linux stays in xAPIC mode: with no interrupt
    // remapping (no DMAR/IVRS table) it enters x2APIC mode only under a hypervisor it knows to
    // allow that, and it does not know this one. (It says so only when the CPU has x2APIC.)
    assert.match(out, /x2apic: IRQ remapping doesn't support X2APIC mode/);
    assert.doesNotMatch(out, /x2apic enabled|Switched APIC routing to.*x2apic/i);
    shell.vm.console.write('grep -e LOC -e timer -e ttyS0 /proc/interrupts; cat /sys/devices/system/clockevents/clockevent0/current_device\n');
    await shell.waitFor(/\nlapic\r?\n/);
    assert.match(shell.out(), /\n\s*0:\s+\d+\s+IO-APIC\s+2-edge\s+timer/);
    assert.match(shell.out(), /\n\s*4:\s+[1-9]\d*\s+IO-APIC\s+4-edge\s+ttyS0/);
    assert.match(shell.out(), /\nLOC:\s+[1-9]\d*\s+Local timer interrupts/);
    shell.vm.console.write('echo typed-$((6*7))\n');
    await shell.waitFor(/typed-42/);
    await shell.powerOff();
  });
});
