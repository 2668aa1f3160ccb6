// The PC board on kvm, through the library API: a multiboot guest (guests/board/hello.asm) and
// a flat one. Serial output and interrupt-driven input, the RTC, the i8042 reset, the debug-exit
// port, triple faults, timeouts; and the machine leaves no threads or descriptors behind.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { assemble, hasNasm } from '../../src/common/nasm.js';
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

test('SMP: the guest finds its processors in the MP table and each prints its APIC id (kvm)', async (t) => {
  await withGuest(t, 'smp', async (kernel) => {
    for (const cpus of [2, 3]) {
      const { vm, output } = await boot({ kernel, cpus });
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

test('SMP: an application processor that triple-faults ends the machine, and the host survives (kvm)', async (t) => {
  await withGuest(t, 'smp', async (kernel) => {
    for (let i = 0; i < 3; i++) {
      const { vm } = await boot({ kernel, cpus: 2, cmdline: 'apfault', timeoutMs: 10_000 });
      const { end } = await vm.exited;
      assert.equal(end.how, 'triple-fault');
    }
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

test('soft backend: a guest waiting in HLT ends with timeout, and stop() ends it', async (t) => {
  await withSoftGuest(t, 'hello', async (kernel) => {
    const a = await boot({ kernel, accel: 'soft', timeoutMs: 300 });
    assert.equal((await a.vm.exited).end.how, 'timeout');
    const b = await boot({ kernel, accel: 'soft' });
    await b.until(/echo> $/);
    assert.deepEqual((await b.vm.stop()).end, { how: 'stopped' });
  });
});
