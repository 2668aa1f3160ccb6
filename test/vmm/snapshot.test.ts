// Save and restore of a whole machine on the soft backend, through the library API: the board's
// multiboot guest (guests/board/hello.asm: an interrupt-driven echo through the 16550 and the
// 8259, waiting in HLT) is saved mid-run, and the machine restored from the file continues where
// it stopped: no banner again, the echo goes on, the debug-exit port ends it.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { TsvmmError } from '../../src/common/errors.js';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { watchConsole } from '../helpers/console.js';
import { withBoardGuest } from '../helpers/nasm.js';

const isCode = (code: string) => (e: unknown) => e instanceof TsvmmError && e.code === code;

test('soft: a machine saved mid-run continues from the file where it stopped (serial echo, PIC, HLT)', { timeout: 120_000 }, async (t) => {
  await withBoardGuest(t, 'hello', 'soft', async (kernel, dir) => {
    const snap = join(dir, 'vm.snap');
    const vm = await VirtualMachine.create({ kernel, accel: 'soft', memory: 16 << 20 });
    const a = watchConsole(vm);
    vm.start();
    await a.until(/echo> $/);
    vm.console.write('ab');
    await a.until(/echo> ab$/);
    // Paused, the guest takes no input; resumed, it does.
    await vm.pause();
    assert.equal(vm.paused, true);
    vm.console.write('c');
    await vm.resume();
    await a.until(/echo> abc$/);
    await vm.save(snap);
    assert.equal(vm.paused, false, 'save() let the machine run again');
    vm.console.write('d');
    await a.until(/echo> abcd$/);
    assert.deepEqual((await vm.stop()).end, { how: 'stopped' });
    // The kernel image is not needed to continue.
    writeFileSync(kernel, 'gone');

    const size = statSync(snap).size;
    assert.ok(size < 2 << 20, `the snapshot of 16 MiB of mostly untouched RAM is sparse (${size} bytes)`);
    const restored = await VirtualMachine.restore(snap);
    const b = watchConsole(restored);
    let format: string | undefined;
    restored.on('ready', (f) => (format = f));
    restored.start();
    restored.console.write('xy');
    await b.until(/xy$/);
    restored.console.write('e5');
    const exited = await restored.exited;
    assert.deepEqual(exited.end, { how: 'debug-exit', status: (5 << 1) | 1 }); // isa-debug-exit's status
    assert.equal(b.output(), 'xy', 'the restored guest neither boots again nor repeats what it printed');
    assert.equal(format, 'snapshot');
  });
});

const CONCURRENT = 20;

/** Random bytes (RAM content that is not zero) in each restored machine. */
const CONTENT = 64 << 20;

test(`soft: one snapshot restored ${CONCURRENT} times at once in one process: each continues on its own, the file unchanged, and RSS grows by less than one copy of the saved RAM per machine (the pages are shared)`, { timeout: 20 * 60_000 }, async (t) => {
  await withBoardGuest(t, 'hello', 'soft', async (kernel, dir) => {
    // 64 MiB of random bytes as a multiboot module: RAM content that is not zero and does not
    // compress, so each restore has real pages to put back.
    const content = join(dir, 'content.bin');
    writeFileSync(content, randomBytes(CONTENT));
    const memory = 256 << 20;
    const snap = join(dir, 'vm.snap');
    const vm = await VirtualMachine.create({ kernel, initrd: content, accel: 'soft', memory });
    const a = watchConsole(vm);
    vm.start();
    await a.until(/echo> $/);
    await vm.save(snap);
    await vm.stop();
    assert.ok(statSync(snap).size > CONTENT, 'the snapshot holds the module\'s pages');
    const fileHash = createHash('sha256').update(readFileSync(snap)).digest('hex');

    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const machines = await Promise.all(Array.from({ length: CONCURRENT }, () => VirtualMachine.restore(snap)));
    const outputs = machines.map((m) => watchConsole(m));
    for (const m of machines) m.start();
    // Each one echoes its own line: all are running at once, each from the saved state.
    machines.forEach((m, i) => m.console.write(`m${i}.`));
    await Promise.all(outputs.map((o, i) => o.until(new RegExp(`m${i}\\.$`))));
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    machines.forEach((m) => m.console.write('e5'));
    const ends = await Promise.all(machines.map((m) => m.exited));
    for (const [i, e] of ends.entries()) {
      assert.deepEqual(e.end, { how: 'debug-exit', status: (5 << 1) | 1 }, `machine ${i}`);
      assert.equal(outputs[i]!.output(), `m${i}.`, `machine ${i} continued the saved guest and nothing else`);
    }
    assert.equal(createHash('sha256').update(readFileSync(snap)).digest('hex'), fileHash, 'what the machines wrote did not reach the snapshot file');
    // The saved pages are mapped from the file copy-on-write: a machine's RAM is resident only
    // where it touches it, and the pages it only reads are the page cache's, shared. What each
    // adds is its thread (about 22 MiB here) and the few pages it touches, not its 64 MiB of
    // content: copied into each machine (mapRam: false), it adds them all (about 86 MiB each).
    const grown = rssPeak - rssBefore;
    const bound = CONCURRENT * CONTENT * 3 / 4;
    t.diagnostic(`RSS grew by ${(grown / 2 ** 20).toFixed(0)} MiB for ${CONCURRENT} machines (${(grown / CONCURRENT / 2 ** 20).toFixed(1)} MiB each; bound ${bound / 2 ** 20} MiB; a copy of the content each: ${CONCURRENT * CONTENT / 2 ** 20} MiB)`);
    assert.ok(grown < bound, `RSS grew by ${grown} bytes for ${CONCURRENT} machines: not less than 3/4 of a copy of the saved RAM each (${bound} bytes)`);
  });
});

test('restore refuses a snapshot whose drive changed, and a damaged one, before anything runs', { timeout: 120_000 }, async (t) => {
  await withBoardGuest(t, 'hello', 'soft', async (kernel, dir) => {
    const disk = join(dir, 'disk.img');
    writeFileSync(disk, new Uint8Array(64 * 512));
    const snap = join(dir, 'vm.snap');
    const vm = await VirtualMachine.create({ kernel, accel: 'soft', memory: 8 << 20, drives: [{ file: disk, readonly: false }] });
    const a = watchConsole(vm);
    vm.start();
    await a.until(/echo> $/);
    await vm.save(snap);
    await vm.stop();
    const diskBytes = readFileSync(disk);

    const bytes = readFileSync(snap);
    const flipped = Uint8Array.from(bytes);
    flipped[bytes.length - 100]! ^= 0x40; // in the last RAM section's pages
    writeFileSync(join(dir, 'flipped.snap'), flipped);
    await assert.rejects(VirtualMachine.restore(join(dir, 'flipped.snap')), isCode('TSVMM_SNAPSHOT_CORRUPT'));

    const st = statSync(disk);
    utimesSync(disk, st.atime, new Date(st.mtimeMs + 5000));
    await assert.rejects(VirtualMachine.restore(snap), isCode('TSVMM_SNAPSHOT_MISMATCH'));
    assert.deepEqual(readFileSync(disk), diskBytes, 'the image was not touched');
  });
});

test('a snapshot truncated after VirtualMachine.restore checked it, before its RAM is mapped, ends the machine with TSVMM_SNAPSHOT_TRUNCATED (no SIGBUS)', { timeout: 120_000 }, async (t) => {
  await withBoardGuest(t, 'hello', 'soft', async (kernel, dir) => {
    const content = join(dir, 'content.bin');
    writeFileSync(content, randomBytes(1 << 20));
    const snap = join(dir, 'vm.snap');
    const vm = await VirtualMachine.create({ kernel, initrd: content, accel: 'soft', memory: 16 << 20 });
    const a = watchConsole(vm);
    vm.start();
    await a.until(/echo> $/);
    await vm.save(snap);
    await vm.stop();

    const restored = await VirtualMachine.restore(snap);
    truncateSync(snap, statSync(snap).size - (512 << 10));
    restored.start();
    const end = (await restored.exited).end;
    assert.equal(end.how, 'error', JSON.stringify(end));
    assert.equal(end.how === 'error' && end.code, 'TSVMM_SNAPSHOT_TRUNCATED', JSON.stringify(end));
  });
});

test('a paused machine ends when stopped; save() is refused on a machine that has not started or has ended', async (t) => {
  await withBoardGuest(t, 'hello', 'soft', async (kernel, dir) => {
    const vm = await VirtualMachine.create({ kernel, accel: 'soft', memory: 8 << 20 });
    await assert.rejects(vm.save(join(dir, 'x.snap')), isCode('TSVMM_BUSY'));
    const a = watchConsole(vm);
    vm.start();
    await a.until(/echo> $/);
    await vm.pause();
    assert.deepEqual((await vm.stop()).end, { how: 'stopped' });
    await assert.rejects(vm.save(join(dir, 'x.snap')), isCode('TSVMM_BUSY'));
    await assert.rejects(vm.resume(), isCode('TSVMM_BUSY'));
  });
});
