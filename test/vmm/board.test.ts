// The PC board on kvm, through the library API: a multiboot guest (guests/board/hello.asm) and
// a flat one. Serial output and interrupt-driven input, the RTC, the i8042 reset, the debug-exit
// port, triple faults, timeouts; and the machine leaves no threads or descriptors behind.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { TsvmmError } from '../../src/common/errors.js';
import { UNKNOWN_LOGGED, UNKNOWN_RANGES } from '../../src/devices/bus.js';
import { VirtualMachine, type VmOptions } from '../../src/vmm/virtual-machine.js';
import { kvmOrSkip } from '../helpers/kvm.js';
import { withTempDirAsync } from '../helpers/tools.js';

/** Assembles guests/board/NAME.asm into a temporary file and runs `fn` with its path. */
async function withGuest<T>(t: TestContext, name: string, fn: (path: string) => Promise<T>): Promise<T | undefined> {
  if (!kvmOrSkip(t)) return undefined;
  if (!hasNasm()) {
    t.skip('nasm not installed');
    return undefined;
  }
  const image = assemble(`board/${name}.asm`);
  return withTempDirAsync(async (dir) => {
    const path = join(dir, `${name}.bin`);
    writeFileSync(path, image);
    return fn(path);
  });
}

/** Starts a machine and collects its console output; `until` resolves once the output matches. */
async function boot(options: VmOptions) {
  const vm = await VirtualMachine.create({ accel: 'kvm', memory: 64 << 20, ...options });
  let output = '';
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  vm.console.on('data', (b: Buffer) => {
    output += b.toString('latin1');
    for (const w of waiters.splice(0)) (w.re.test(output) ? w.resolve() : waiters.push(w));
  });
  vm.start();
  const until = (re: RegExp) => (re.test(output) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ re, resolve })));
  return { vm, until, output: () => output };
}

test('multiboot guest: banner, RTC date, interrupt-driven echo, i8042 reset (kvm)', async (t) => {
  await withGuest(t, 'hello', async (kernel) => {
    const { vm, until, output } = await boot({ kernel });
    await until(/echo> $/);
    vm.console.write('tsvmm!');
    await until(/tsvmm!$/);
    vm.console.write('r');
    const exited = await vm.exited;
    assert.deepEqual(exited.end, { how: 'reset' });
    const now = new Date();
    const bcd = (n: number) => (Math.floor(n / 10) * 16 + (n % 10)).toString(16).padStart(2, '0');
    assert.equal(output(), `hello from a multiboot guest\nrtc ${bcd(now.getUTCFullYear() % 100)}-${bcd(now.getUTCMonth() + 1)}\necho> tsvmm!`);
    assert.ok((exited.exits.io ?? 0) > 50, 'port I/O went through the board');
  });
});

test('debug-exit port: the written value becomes the exit status (kvm)', async (t) => {
  await withGuest(t, 'hello', async (kernel) => {
    const { vm, until } = await boot({ kernel });
    await until(/echo> $/);
    vm.console.write('e7');
    assert.deepEqual((await vm.exited).end, { how: 'debug-exit', status: (7 << 1) | 1 });
  });
});

test('a triple fault ends the machine with a report (kvm)', async (t) => {
  await withGuest(t, 'hello', async (kernel) => {
    const { vm, until } = await boot({ kernel });
    await until(/echo> $/);
    vm.console.write('f');
    const { end } = await vm.exited;
    assert.equal(end.how, 'triple-fault');
    // kvm_amd INITs the vCPU at a SHUTDOWN intercept (the VMCB is undefined after it): the report shows that state.
    const init = existsSync('/sys/module/kvm_amd');
    assert.match((end as { report: string }).report, init ? /^triple fault at RIP 0xfff0 \(CS 0xf000/ : /^triple fault at RIP 0x10[0-9a-f]{4} .*CR0 0x8000001[01]/);
  });
});

test('a guest waiting forever ends with timeout; stop() ends a running machine (kvm)', async (t) => {
  await withGuest(t, 'hello', async (kernel) => {
    const a = await boot({ kernel, timeoutMs: 300 });
    const ended = await a.vm.exited;
    assert.equal(ended.end.how, 'timeout');
    assert.match((ended.end as { report: string }).report, /^timed out at RIP 0x10/);
    const b = await boot({ kernel });
    await b.until(/echo> $/);
    assert.deepEqual((await b.vm.stop()).end, { how: 'stopped' });
  });
});

test('flat real-mode guest through the debug-exit port (kvm)', async (t) => {
  await withGuest(t, 'flat', async (kernel) => {
    const { vm, output } = await boot({ kernel, flat: { loadAddr: 0x8000, mode: 'real16' } });
    const exited = await vm.exited;
    assert.deepEqual(exited.end, { how: 'debug-exit', status: 0x43 });
    assert.equal(output(), 'flat guest\n');
  });
});

test('bad images are refused with stable codes', async () => {
  await assert.rejects(VirtualMachine.create({ kernel: '/nonexistent/bzImage' }), { code: 'TSVMM_BAD_KERNEL' });
  await withTempDirAsync(async (dir) => {
    const junk = join(dir, 'junk');
    writeFileSync(junk, new Uint8Array(16384).fill(0x90));
    const vm = await VirtualMachine.create({ kernel: junk, accel: 'kvm' });
    vm.start();
    const { end } = await vm.exited;
    if (end.how === 'error' && end.code === 'TSVMM_NO_KVM') return;
    assert.equal(end.how, 'error');
    assert.equal((end as { code: string }).code, 'TSVMM_BAD_KERNEL');
  });
});

test('machines leave no file descriptors or threads behind (kvm)', async (t) => {
  await withGuest(t, 'hello', async (kernel) => {
    const fds = () => readdirSync('/proc/self/fd').length;
    const threads = () => readdirSync('/proc/self/task').length;
    // One machine first, so that lazily created process-wide resources exist before counting.
    const warm = await boot({ kernel });
    await warm.until(/echo> $/);
    await warm.vm.stop();
    const before = { fds: fds(), threads: threads() };
    for (let i = 0; i < 3; i++) {
      const { vm, until } = await boot({ kernel });
      await until(/echo> $/);
      await vm.stop();
    }
    assert.equal(fds(), before.fds);
    assert.equal(threads(), before.threads);
  });
});

// SMP on both backends: on kvm the in-kernel LAPICs start the APs; on soft each AP is a vCPU in
// its own thread over the shared arena, its local APIC beside it (vmm/soft-ap.ts, apic-bus.ts).
const SMP_BACKENDS = [
  { accel: 'kvm', cpuCounts: [2, 3] },
  { accel: 'soft', cpuCounts: [2, 4] },
] as const;

for (const { accel, cpuCounts } of SMP_BACKENDS) {
  const guest = accel === 'kvm' ? withGuest : withSoftGuest;
  test(`SMP: the guest finds its processors in the MP table and each prints its APIC id (${accel})`, async (t) => {
    await guest(t, 'smp', async (kernel) => {
      for (const cpus of cpuCounts) {
        const { vm, output } = await boot({ kernel, cpus, accel });
        const exited = await vm.exited;
        assert.deepEqual(exited.end, { how: 'debug-exit', status: (cpus << 1) | 1 });
        const lines = output().trim().split('\n');
        assert.equal(lines[0], `mp table: ${cpus} cpus`);
        assert.equal(lines[1], 'cpu 0');
        assert.deepEqual(lines.slice(2, -1).sort(), Array.from({ length: cpus - 1 }, (_, i) => `cpu ${i + 1}`));
        assert.equal(lines.at(-1), 'all cpus up');
      }
    });
  });

  test(`SMP: an application processor that triple-faults ends the machine, and the host survives (${accel})`, async (t) => {
    await guest(t, 'smp', async (kernel) => {
      for (let i = 0; i < 3; i++) {
        const { vm } = await boot({ kernel, cpus: 2, cmdline: 'apfault', timeoutMs: 10_000, accel });
        const { end } = await vm.exited;
        assert.equal(end.how, 'triple-fault');
      }
    });
  });
}

// Locked read-modify-writes from several vCPU threads at once (backends/soft/ops-lock.ts): the
// guest's totals are exact only if no update is lost, interpreted and in compiled code.
for (const jit of ['off', 'on'] as const) {
  test(`SMP on the soft CPU: lock xadd, lock inc, lock cmpxchg, cmpxchg16b, a misaligned lock add and an xchg spinlock lose no update (JIT ${jit})`, async (t) => {
    await withSoftGuest(t, 'smp', async (kernel) => {
      const saved = process.env.TSVMM_SOFT_JIT;
      if (jit === 'off') process.env.TSVMM_SOFT_JIT = 'off';
      else delete process.env.TSVMM_SOFT_JIT;
      try {
        const cpus = 2;
        const { vm, output } = await boot({ kernel, cpus, accel: 'soft', cmdline: 'atomic' });
        const exited = await vm.exited;
        assert.match(output(), /atomic ok\n/);
        assert.deepEqual(exited.end, { how: 'debug-exit', status: (cpus << 1) | 1 });
        if (jit === 'on') assert.ok((exited.cpu.compiled ?? 0) > 0, 'the boot vCPU ran the loop compiled');
      } finally {
        if (saved === undefined) delete process.env.TSVMM_SOFT_JIT;
        else process.env.TSVMM_SOFT_JIT = saved;
      }
    });
  });
}

test('SMP on the soft CPU: code another vCPU rewrites runs new after the executing vCPU serializes (IRETQ), also when compiled', async (t) => {
  await withSoftGuest(t, 'smp', async (kernel) => {
    const cpus = 2;
    const { vm, output } = await boot({ kernel, cpus, accel: 'soft', cmdline: 'xmc' });
    const exited = await vm.exited;
    assert.match(output(), /xmc ok\n/);
    assert.deepEqual(exited.end, { how: 'debug-exit', status: (cpus << 1) | 1 });
  });
});

/** The same guests on the software CPU: the board's own 8259 delivers the UART's interrupt. */
async function withSoftGuest(t: TestContext, name: string, fn: (path: string) => Promise<void>): Promise<void> {
  if (!hasNasm()) return t.skip('nasm not installed');
  await withTempDirAsync(async (dir) => {
    const path = join(dir, `${name}.bin`);
    writeFileSync(path, assemble(`board/${name}.asm`));
    await fn(path);
  });
}

for (const inlineDevices of [true, false]) {
  const how = inlineDevices ? 'served inline by the CPU loop' : 'through exits and the interrupt window';
  test(`soft backend: the multiboot guest echoes through the board PIC (${how}), then ends by debug-exit and by reset`, async (t) => {
    await withSoftGuest(t, 'hello', async (kernel) => {
      await echoAndEnd(kernel, inlineDevices);
    });
  });
}

async function echoAndEnd(kernel: string, inlineDevices: boolean): Promise<void> {
  const a = await boot({ kernel, accel: 'soft', inlineDevices });
  await a.until(/echo> $/);
  a.vm.console.write('hi tsvmm!');
  await a.until(/hi tsvmm!$/);
  a.vm.console.write('e3');
  const exited = await a.vm.exited;
  assert.deepEqual(exited.end, { how: 'debug-exit', status: 7 });
  if (inlineDevices) {
    assert.equal(exited.exits.interruptWindow ?? 0, 0, 'no interrupt went through the window exit');
    assert.equal(exited.exits.io ?? 0, 0, 'no port access took an exit');
    assert.ok(exited.inlineIo > 0, 'port accesses were served inline');
  } else {
    assert.ok((exited.exits.interruptWindow ?? 0) > 0, 'interrupts went through the window exit');
    assert.equal(exited.inlineIo, 0);
  }
  assert.match(a.output(), /^hello from a multiboot guest\nrtc \d\d-\d\d\necho> hi tsvmm!$/);
  const b = await boot({ kernel, accel: 'soft', inlineDevices });
  await b.until(/echo> $/);
  b.vm.console.write('r');
  assert.deepEqual((await b.vm.exited).end, { how: 'reset' });
}

test('soft backend: the local APIC (CPUID, base MSR, CR8 = TPR) and its timer in periodic, one-shot and TSC-deadline modes', async (t) => {
  await withSoftGuest(t, 'lapic-timer', async (kernel) => {
    const { vm, output } = await boot({ kernel, accel: 'soft', timeoutMs: 60_000 });
    const exited = await vm.exited;
    assert.equal(output(), 'apic base ok\ncr8 is the tpr\nperiodic 5\none-shot 1\ntsc-deadline 1\ntpr held it back\n');
    assert.deepEqual(exited.end, { how: 'debug-exit', status: 0xf5 }); // 0x7A written
    assert.ok(exited.inlineMmio > 0, 'the APIC page was served inline');
  });
});

test('soft backend: x2APIC mode through the MSRs (CPUID, IA32_APIC_BASE transitions, #GPs, ID/LDR, timer, SELF IPI, ICR); the page is gone meanwhile', async (t) => {
  await withSoftGuest(t, 'x2apic', async (kernel) => {
    const { vm, output } = await boot({ kernel, accel: 'soft', timeoutMs: 60_000 });
    const exited = await vm.exited;
    assert.equal(output(), 'x2apic msrs #gp in xapic mode\nx2apic mode, page gone\nid 0 ldr 1\ntimer 3\nself ipi, icr ipi\ndisabled, then xapic\n');
    assert.deepEqual(exited.end, { how: 'debug-exit', status: 0xf5 }); // 0x7A written
  });
});

test('soft backend: a guest waiting in HLT ends with timeout, and stop() ends it', async (t) => {
  await withSoftGuest(t, 'hello', async (kernel) => {
    const a = await boot({ kernel, accel: 'soft', timeoutMs: 300 });
    assert.equal((await a.vm.exited).end.how, 'timeout');
    const b = await boot({ kernel, accel: 'soft' });
    await b.until(/echo> $/);
    assert.deepEqual((await b.vm.stop()).end, { how: 'stopped' });
  });
});

/** Assembles `source` (a path under guests/, with nasm defines) into a temporary file and runs `fn` with its path. */
async function withAssembled(t: TestContext, source: string, fn: (path: string) => Promise<void>, defines: Record<string, number> = {}): Promise<void> {
  if (!hasNasm()) return t.skip('nasm not installed');
  await withTempDirAsync(async (dir) => {
    const path = join(dir, 'guest.bin');
    writeFileSync(path, assemble(source, { defines }));
    await fn(path);
  });
}

const rss = () => process.memoryUsage().rss;

test('soft backend: -m 7G puts RAM above 4 GiB, in pieces; the guest reads back both sides of each boundary', async (t) => {
  await withAssembled(t, 'board/high-ram.asm', async (kernel) => {
    const { vm, output } = await boot({ kernel, accel: 'soft', memory: 7 * 2 ** 30 });
    const exited = await vm.exited;
    assert.equal(output(), 'high ram ok\n');
    assert.deepEqual(exited.end, { how: 'debug-exit', status: 3 });
  });
});

test('stop() before start() ends the machine at once; start() is refused after', async (t) => {
  await withSoftGuest(t, 'hello', async (kernel) => {
    const idle = await VirtualMachine.create({ kernel, accel: 'soft', memory: 64 << 20 });
    assert.deepEqual((await idle.stop()).end, { how: 'stopped' });
    assert.throws(() => idle.start(), (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_BUSY');
    idle.console.resume();
    await once(idle.console, 'end');
  });
});

test('stop() while the machine is being built ends it once built; after the end, stop() resolves with it', async (t) => {
  await withSoftGuest(t, 'hello', async (kernel) => {
    // A stop the machine cannot act on yet (it is still being built) used to be dropped; the
    // timeout is there so that a lost stop fails the test instead of hanging it.
    const starting = await boot({ kernel, accel: 'soft', timeoutMs: 60_000 });
    const exited = await starting.vm.stop();
    assert.deepEqual(exited.end, { how: 'stopped' });
    assert.equal(starting.output(), '', 'the guest never ran');
    assert.equal(await starting.vm.stop(), exited, 'after the end, stop() resolves with it');
  });
});

test('soft backend: machines leave no mappings, file descriptors or threads behind', async (t) => {
  await withSoftGuest(t, 'hello', async (kernel) => {
    const maps = () => readFileSync('/proc/self/maps', 'utf8').trim().split('\n').length;
    const fds = () => readdirSync('/proc/self/fd').length;
    const threads = () => readdirSync('/proc/self/task').length;
    const cycle = async () => {
      const { vm, until } = await boot({ kernel, accel: 'soft' });
      await until(/echo> $/);
      await vm.stop();
    };
    for (let i = 0; i < 2; i++) await cycle(); // process-wide resources made lazily exist before counting
    const before = { maps: maps(), fds: fds(), threads: threads() };
    const cycles = 20;
    for (let i = 0; i < cycles; i++) await cycle();
    // Each machine used to keep 3 mappings (koffi's per-thread memory in its worker thread); the
    // engine's own heap moves by a few either way, and settles.
    assert.ok(maps() - before.maps < cycles, `${maps() - before.maps} more mappings after ${cycles} machines`);
    assert.equal(fds(), before.fds);
    assert.equal(threads(), before.threads);
  });
});

for (const [mode, defines] of [['polling LSR', {}], ['waiting for THRE interrupts', { THRE_IRQ: 1 }]] as const) {
  test(`a guest flooding COM1 (${mode}) into a console nobody reads: the host stays bounded, no byte is lost, stop() ends it`, async (t) => {
    await withAssembled(t, 'hostile/serial-flood.asm', async (kernel) => {
      const base = rss();
      let peak = base;
      const vm = await VirtualMachine.create({ kernel, accel: 'soft', memory: 64 << 20 });
      vm.start();
      await once(vm, 'ready');
      for (let i = 0; i < 15; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100)); // the guest writes on meanwhile
        peak = Math.max(peak, rss());
        assert.ok(vm.console.readableLength <= 64 * 1024, `the console holds ${vm.console.readableLength} bytes nobody read`);
      }
      assert.ok(vm.console.readableLength > 0);
      // Now read: the stream goes on where it stopped, without a gap.
      let previous = -1;
      let received = 0;
      await new Promise<void>((resolve) => {
        const onData = (b: Buffer) => {
          for (const byte of b) {
            if (previous >= 0) assert.equal(byte, (previous + 1) & 0xff, `byte ${received}`);
            previous = byte;
            received++;
          }
          if (received >= 256 * 1024) {
            vm.console.off('data', onData);
            resolve();
          }
        };
        vm.console.on('data', onData);
      });
      assert.deepEqual((await vm.stop()).end, { how: 'stopped' });
      assert.ok(peak - base < 128 * 1024 * 1024, `RSS grew by ${((peak - base) / 1048576).toFixed(0)} MiB`);
    }, defines);
  });
}

test('a console reader slower than the flooding guest (synchronous, as a terminal is) leaves the event loop free', async (t) => {
  await withAssembled(t, 'hostile/serial-flood.asm', async (kernel) => {
    const vm = await VirtualMachine.create({ kernel, accel: 'soft', memory: 64 << 20 });
    vm.start();
    await once(vm, 'ready');
    let timerSet = false;
    let timerRan = false;
    let chunksBeforeTimer = 0;
    await new Promise<void>((resolve) => {
      const onData = () => {
        if (!timerSet) {
          timerSet = true;
          setTimeout(() => (timerRan = true), 0);
        }
        const until = Date.now() + 20; // a write to a slow terminal blocks the thread
        while (Date.now() < until);
        if (!timerRan) chunksBeforeTimer++;
        // The guest refills the ring during each write: the output pump used to go on with
        // microtasks only, and no timer (--timeout), no input (Ctrl-A x) ever ran again.
        if (timerRan || chunksBeforeTimer >= 20) {
          vm.console.off('data', onData);
          vm.console.pause();
          resolve();
        }
      };
      vm.console.on('data', onData);
    });
    assert.ok(timerRan, `a timer due at once waited through ${chunksBeforeTimer} chunks of output`);
    assert.deepEqual((await vm.stop()).end, { how: 'stopped' });
  });
});

test('a guest writing COM1 blindly (never looking at LSR): the host stays bounded and stop() ends it', async (t) => {
  await withAssembled(t, 'hostile/serial-flood.asm', async (kernel) => {
    const vm = await VirtualMachine.create({ kernel, accel: 'soft', memory: 64 << 20 });
    vm.start();
    await once(vm, 'ready');
    for (let i = 0; i < 10; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.ok(vm.console.readableLength <= 64 * 1024);
    }
    assert.deepEqual((await vm.stop()).end, { how: 'stopped' });
  }, { BLIND: 1 });
});

test('console input beyond the ring (64 KiB) waits for the guest to read it; nothing is dropped', async (t) => {
  await withAssembled(t, 'board/serial-sum.asm', async (kernel) => {
    const n = 200_000;
    const input = Buffer.alloc(4 + n);
    input.writeUInt32LE(n, 0);
    let sum = 0;
    for (let i = 0; i < n; i++) sum = (sum + (input[4 + i] = (i * 7 + (i >> 8)) & 0xff)) >>> 0;
    // A guest that never gets all its input would wait forever: the timeout turns that into a failure.
    const { vm, until, output } = await boot({ kernel, accel: 'soft', timeoutMs: 120_000 });
    await until(/^ready\n$/);
    let written = false;
    const accepted = vm.console.write(input, () => (written = true));
    assert.equal(accepted, false, 'write() says to wait: the guest has not read it yet');
    const exited = await vm.exited;
    assert.equal(output(), `ready\ngot ${n.toString(16).padStart(8, '0')} sum ${sum.toString(16).padStart(8, '0')}\n`);
    assert.deepEqual(exited.end, { how: 'debug-exit', status: 3 });
    assert.ok(written);
  });
});

test('a guest touching every port and every unbacked page: notes are bounded, counts are by range, stop() ends it', async (t) => {
  await withAssembled(t, 'hostile/mmio-sweep.asm', async (kernel) => {
    const base = rss();
    const notes: string[] = [];
    const { vm, until } = await boot({ kernel, accel: 'soft' });
    vm.on('log', (m) => notes.push(m));
    await until(/\./); // 65536 ports, then 65536 pages
    const exited = await vm.stop();
    assert.deepEqual(exited.end, { how: 'stopped' });
    assert.ok(notes.length <= 2 * (UNKNOWN_LOGGED + 1), `${notes.length} log lines`);
    assert.ok(notes.some((m) => /more ports with nothing there/.test(m)));
    assert.ok(notes.some((m) => /more MMIO pages with nothing there/.test(m)));
    for (const ranges of [exited.unknownPorts, exited.unknownMmio]) {
      assert.ok(ranges.length > 0 && ranges.length <= UNKNOWN_RANGES, `${ranges.length} ranges`);
      assert.ok(ranges.reduce((n, r) => n + r.count, 0) >= 0x1_0000 - 0x100, 'every access counted');
    }
    assert.equal(exited.unknownMmio[0]!.first, 0x1000_0000);
    assert.ok(rss() - base < 128 * 1024 * 1024);
  });
});
