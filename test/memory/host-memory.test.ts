// HostMemory's limits and free(): more than one typed array holds is refused with a code (it
// used to abort the process inside koffi), and a view kept past free() reaches neither unmapped
// memory (a segfault) nor memory handed out since (another machine's RAM).
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { TsvmmError } from '../../src/common/errors.js';
import { HostMemory, MAX_HOST_MEMORY } from '../../src/memory/host-memory.js';
import { arenaHostMemory, arenaOffsetOf } from '../../src/backends/soft/arena.js';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { PROT } from '../../src/nvmm/backend.js';
import { Machine } from '../../src/nvmm/machine.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const isCode = (code: string) => (e: unknown) => e instanceof TsvmmError && e.code === code;

/** Collects garbage and lets finalizers run. */
async function collect(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Whether some mapping of this process covers `address`. */
function mapped(address: number): boolean {
  return readFileSync('/proc/self/maps', 'utf8').trim().split('\n').some((line) => {
    const [lo, hi] = line.split(' ')[0]!.split('-').map((x) => parseInt(x, 16));
    return address >= lo! && address < hi!;
  });
}

test('more than one typed array holds is refused with TSVMM_LIMIT, not a process abort', () => {
  assert.equal(MAX_HOST_MEMORY, 2 ** 32);
  assert.throws(() => HostMemory.allocate(8 * 2 ** 30), (e: unknown) => isCode('TSVMM_LIMIT')(e) && /4 GiB/.test((e as Error).message));
  assert.throws(() => HostMemory.allocate(MAX_HOST_MEMORY + 4096), isCode('TSVMM_LIMIT'));
  assert.throws(() => HostMemory.attach(0x10000, 5 * 2 ** 30), isCode('TSVMM_LIMIT'));
  assert.throws(() => HostMemory.allocate(4095), isCode('TSVMM_BAD_ARGUMENT'));
  // The limit itself works (the memory is reserved, not touched).
  const big = HostMemory.allocate(MAX_HOST_MEMORY);
  assert.equal(big.bytes.length, MAX_HOST_MEMORY);
  big.bytes[MAX_HOST_MEMORY - 1] = 0x5a;
  assert.equal(big.bytes[MAX_HOST_MEMORY - 1], 0x5a);
  big.free();
});

test('after free(), bytes throws; a view taken before reads zeros and writes reach no other memory', () => {
  const a = HostMemory.allocate(16 * 4096);
  const old = a.bytes;
  old.fill(7);
  a.free();
  assert.equal(a.freed, true);
  assert.throws(() => a.bytes, isCode('TSVMM_DESTROYED'));
  assert.equal(old[0], 0, 'the freed pages were released');
  a.free(); // twice is harmless
  const b = HostMemory.allocate(16 * 4096);
  old.fill(9);
  assert.ok(b.bytes.every((x) => x === 0), 'the stale view does not reach the new memory');
  b.bytes.fill(5);
  assert.ok(old.every((x) => x === 9), 'nor the other way round');
  b.free();
});

test('a freed mapping is unmapped once no view of it is left', async () => {
  const hva = (() => {
    const m = HostMemory.allocate(16 * 4096);
    m.bytes.fill(1);
    m.free();
    return m.hva;
  })();
  assert.ok(mapped(hva), 'kept (blank) while a view may exist');
  await collect();
  assert.ok(!mapped(hva), 'unmapped once the views are garbage');
});

test('arena memory goes back to the arena only when no view of it is left', async () => {
  const a = arenaHostMemory(64 * 1024)!;
  const aOffset = arenaOffsetOf(a);
  let old: Uint8Array | undefined = a.bytes;
  old.fill(3);
  a.free();
  assert.throws(() => a.bytes, isCode('TSVMM_DESTROYED'));
  const b = arenaHostMemory(64 * 1024)!;
  assert.notEqual(arenaOffsetOf(b), aOffset, 'not handed out again while a view of it lives');
  old.fill(4);
  assert.ok(b.bytes.every((x) => x === 0));
  b.free();
  old = undefined;
  await collect();
  const c = arenaHostMemory(64 * 1024)!;
  assert.ok(arenaOffsetOf(c) === aOffset || arenaOffsetOf(c) === arenaOffsetOf(b), 'reused once the views are gone');
  assert.ok(c.bytes.every((x) => x === 0), 'zeroed');
  c.free();
});

test("memory from machine.allocateMemory is freed by machine.destroy() (the README's API example frees nothing)", async () => {
  const machine = new Machine(SoftBackend.open());
  const kept = machine.allocateMemory(4096);
  const freedEarly = machine.allocateMemory(4096);
  freedEarly.free();
  const mine = HostMemory.allocate(4096);
  machine.mapHva(kept);
  machine.mapGpa(0, kept.hva, 4096, PROT.ALL);
  machine.destroy();
  assert.equal(kept.freed, true);
  assert.equal(freedEarly.freed, true);
  assert.equal(mine.freed, false, 'memory the caller allocated stays the caller\'s');
  mine.free();
});

test("allocated memory (KVM's guest RAM) takes a file's pages copy-on-write, and free() lets go of them", () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-hostmem-'));
  const file = join(dir, 'pages');
  const content = Buffer.alloc(8 * 4096, 0x5a);
  writeFileSync(file, content);
  const m = HostMemory.allocate(16 * 4096);
  const fd = openSync(file, 'r');
  try {
    m.bytes.fill(1);
    const inMaps = () => readFileSync('/proc/self/maps', 'utf8').includes(file);
    assert.equal(m.mapFile(fd, 0, 4 * 4096, 8 * 4096), true);
    assert.ok(inMaps(), 'the file is mapped into the process');
    assert.ok(m.bytes.subarray(4 * 4096, 12 * 4096).every((x) => x === 0x5a), 'the file\'s pages are seen');
    assert.ok(m.bytes.subarray(0, 4 * 4096).every((x) => x === 1) && m.bytes.subarray(12 * 4096).every((x) => x === 1), 'the rest is as it was');
    m.bytes.fill(7, 4 * 4096, 5 * 4096);
    assert.ok(readFileSync(file).equals(content), 'a write stays in memory: the file is not changed');
    assert.equal(m.mapFile(fd, 0, 4096 + 1, 4096), false, 'not page-aligned');
    assert.equal(m.mapFile(fd, 0, 15 * 4096, 2 * 4096), false, 'past the end');
    m.free();
    assert.ok(!inMaps(), 'free() replaced the file\'s pages at once');
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});
