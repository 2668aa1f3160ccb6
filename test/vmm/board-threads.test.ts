// Spare board threads (VirtualMachine.warm, src/vmm/board-threads.ts): machines started while
// spares wait run on them, created or restored, and each one taken is replaced; the count is
// bounded; warm(0) ends them; and spares never keep a process alive.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { TsvmmError } from '../../src/common/errors.js';
import { MAX_SPARE_THREADS, spareThreadIds } from '../../src/vmm/board-threads.js';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { watchConsole } from '../helpers/console.js';
import { boardGuestOrSkip, withBoardGuest } from '../helpers/nasm.js';
import { withTempDirAsync } from '../helpers/tools.js';

const isCode = (code: string) => (e: unknown) => e instanceof TsvmmError && e.code === code;

/** Resolves once a spare list other than `before`'s is complete again (a spare is started behind one taken). */
async function refilled(count: number, before: number[]): Promise<number[]> {
  for (;;) {
    const now = spareThreadIds();
    if (now.length === count && now.some((id) => !before.includes(id))) return now;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test('warm(count) takes 0 to MAX_SPARE_THREADS only', async () => {
  for (const bad of [-1, 1.5, MAX_SPARE_THREADS + 1, Number.NaN]) {
    await assert.rejects(VirtualMachine.warm(bad), isCode('TSVMM_BAD_ARGUMENT'), String(bad));
  }
  assert.deepEqual(spareThreadIds(), [], 'a refused count starts nothing');
});

test('soft: machines started while spares wait run on them, created or restored, and each spare taken is replaced', { timeout: 120_000 }, async (t: TestContext) => {
  await withBoardGuest(t, 'hello', 'soft', async (kernel, dir) => {
    const snap = join(dir, 'vm.snap');
    await VirtualMachine.warm(2);
    let spares = spareThreadIds();
    assert.equal(spares.length, 2);

    const vm = await VirtualMachine.create({ kernel, accel: 'soft', memory: 16 << 20 });
    const a = watchConsole(vm);
    vm.start();
    assert.deepEqual(spareThreadIds(), [spares[1]], 'the machine took the oldest spare');
    spares = await refilled(2, spares);
    await a.until(/echo> $/);
    vm.console.write('ab');
    await a.until(/echo> ab$/);
    await vm.save(snap);
    assert.deepEqual((await vm.stop()).end, { how: 'stopped' });

    const restored = await VirtualMachine.restore(snap);
    const b = watchConsole(restored);
    restored.start();
    assert.deepEqual(spareThreadIds(), [spares[1]], 'the restored machine took the next spare');
    await refilled(2, spares);
    restored.console.write('xy');
    await b.until(/xy$/);
    restored.console.write('e5');
    assert.deepEqual((await restored.exited).end, { how: 'debug-exit', status: (5 << 1) | 1 });
    assert.equal(b.output(), 'xy', 'the restored guest continued where it was saved');

    await VirtualMachine.warm(0);
    assert.deepEqual(spareThreadIds(), []);
  });
});

test('spare threads do not keep a process alive: one that only warms, and one that runs a machine on a spare, end by themselves (run as node --input-type=module -e)', { timeout: 120_000 }, (t: TestContext) => {
  const kernel = boardGuestOrSkip(t, 'hello');
  if (!kernel) return;
  const module = new URL('../../src/vmm/virtual-machine.js', import.meta.url).href;
  return withTempDirAsync(async (dir) => {
    const path = join(dir, 'hello.bin');
    writeFileSync(path, kernel);
    const load = `const { VirtualMachine } = await import(${JSON.stringify(module)});`;
    const cases = [
      // With an option a thread refuses when it is listed (threads take the others without it).
      { script: `${load} await VirtualMachine.warm(2); console.log('warm');`, prints: 'warm', options: ['--max-old-space-size=512'] },
      {
        script: `${load} await VirtualMachine.warm(1);
          const vm = await VirtualMachine.create({ kernel: ${JSON.stringify(path)}, accel: 'soft', memory: 16 << 20 });
          let out = ''; vm.console.on('data', (b) => { out += b; if (out.endsWith('echo> ')) vm.console.write('e3'); });
          vm.start(); console.log(JSON.stringify((await vm.exited).end));`,
        prints: JSON.stringify({ how: 'debug-exit', status: (3 << 1) | 1 }),
      },
    ];
    for (const { script, prints, options = [] } of cases as { script: string; prints: string; options?: string[] }[]) {
      // As a user tries the library from the command line (the board's thread must not inherit
      // --input-type). The bound is the test's: a process kept alive by a spare is killed and fails here.
      const r = spawnSync(process.execPath, ['--input-type=module', ...options, '-e', script], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
      assert.equal(r.signal, null, `the process ended by itself (stderr: ${r.stderr})`);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), prints);
    }
  });
});
