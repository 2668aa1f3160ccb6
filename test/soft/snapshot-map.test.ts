// A snapshot's RAM mapped copy-on-write into the soft CPU's arena (loadRam with HostMemory.mapFile,
// docs/snapshot-format.md): what a machine writes stays its own (neither the file nor another
// machine restored from it sees it), freed RAM is zeroed anonymous memory again (not the file's
// pages), and a file that shrinks before or while it is mapped is refused with a code, before any
// page past its end could be touched (which would kill the process with SIGBUS).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { arenaHostMemory } from '../../src/backends/soft/arena.js';
import { TsvmmError } from '../../src/common/errors.js';
import type { HostMemory } from '../../src/memory/host-memory.js';
import { emptyState } from '../../src/nvmm/state.js';
import { ramLayout } from '../../src/vmm/board.js';
import { machineConfig } from '../../src/vmm/config.js';
import { PAGE, loadRam, readSnapshot, writeSnapshot, type ParsedSnapshot, type RamTarget } from '../../src/vmm/snapshot-file.js';
import { withTempDir } from '../helpers/tools.js';

const MEMORY = 4 << 20;

/** RAM with random pages in runs (pages 0-15, 40, 100-163) and zeros elsewhere. */
function ram(): Uint8Array {
  const bytes = new Uint8Array(MEMORY);
  bytes.set(randomBytes(16 * PAGE), 0);
  bytes.set(randomBytes(PAGE), 40 * PAGE);
  bytes.set(randomBytes(64 * PAGE), 100 * PAGE);
  return bytes;
}
const SAVED_BYTES = (16 + 1 + 64) * PAGE;

function save(path: string, bytes: Uint8Array): void {
  writeSnapshot(path, {
    machine: { config: machineConfig({ kernel: '/nonexistent/kernel', memory: MEMORY, accel: 'soft' }), backend: 'soft', guestNs: 0, drives: [], ram: ramLayout(MEMORY), agentReady: false },
    vcpus: [{ id: 0, state: emptyState(), xsaveExtended: new Uint8Array(0) }],
    devices: { virtio: {} },
    ram: [{ gpa: 0, bytes }],
  });
}

/** Guest RAM in the arena, as the board gives loadRam. */
function arenaRam(): HostMemory {
  const m = arenaHostMemory(MEMORY);
  assert.ok(m, 'the arena holds the RAM');
  return m;
}
const target = (m: HostMemory, onMap?: () => void) => (): RamTarget => ({
  bytes: m.bytes,
  mapFile: (fd, fileOffset, at, length) => {
    const ok = m.mapFile(fd, fileOffset, at, length);
    onMap?.();
    return ok;
  },
});

/** Lines of /proc/self/maps that map `path` inside `m`. */
function mapsOf(path: string, m: { hva: number; size: number }): string[] {
  return readFileSync('/proc/self/maps', 'latin1').split('\n').filter((line) => {
    if (!line.endsWith(path)) return false;
    const [start] = line.split('-');
    const at = parseInt(start!, 16);
    return at >= m.hva && at < m.hva + m.size;
  });
}

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    if (e instanceof TsvmmError) return e.code;
    throw e;
  }
  return 'accepted';
};

test('mapped snapshot RAM: each machine sees the saved pages and writes its own; neither the file nor another machine sees the writes', () => {
  withTempDir((dir) => {
    const path = join(dir, 'vm.snap');
    const content = ram();
    save(path, content);
    const file = readFileSync(path);
    const snap = readSnapshot(path, ramLayout);
    const a = arenaRam();
    const b = arenaRam();
    assert.deepEqual(loadRam(path, snap, target(a)), { mapped: SAVED_BYTES, copied: 0 });
    assert.deepEqual(loadRam(path, snap, target(b)), { mapped: SAVED_BYTES, copied: 0 });
    assert.equal(mapsOf(path, a).length, 3, 'one mapping of the file per run, inside the machine\'s RAM');
    assert.deepEqual(a.bytes, content);
    assert.deepEqual(b.bytes, content);

    a.bytes.fill(0x11, 0, PAGE); // a saved page
    a.bytes.fill(0x12, 20 * PAGE, 21 * PAGE); // a zero page
    b.bytes[100 * PAGE + 5] = content[100 * PAGE + 5]! ^ 0xff;
    assert.ok(a.bytes.subarray(0, PAGE).every((x) => x === 0x11));
    assert.deepEqual(b.bytes.subarray(0, PAGE), content.subarray(0, PAGE), 'b does not see a\'s write');
    assert.ok(b.bytes.subarray(20 * PAGE, 21 * PAGE).every((x) => x === 0));
    assert.equal(a.bytes[100 * PAGE + 5], content[100 * PAGE + 5], 'a does not see b\'s write');
    assert.deepEqual(readFileSync(path), file, 'the snapshot file is unchanged');

    const c = arenaRam();
    loadRam(path, snap, target(c));
    assert.deepEqual(c.bytes, content, 'a machine restored later starts from the saved pages, not from a\'s or b\'s');
    for (const m of [a, b, c]) m.free();
  });
});

test('freed RAM that held file pages is zeroed anonymous memory again: no view and no later allocation sees the file', () => {
  withTempDir((dir) => {
    const path = join(dir, 'vm.snap');
    save(path, ram());
    const snap = readSnapshot(path, ramLayout);
    const a = arenaRam();
    loadRam(path, snap, target(a));
    const stale = a.bytes;
    stale[5] = 1; // a private (copied-on-write) page, and the file's pages beside it
    const where = { hva: a.hva, size: a.size };
    a.free();
    assert.deepEqual(mapsOf(path, where), [], 'the file is no longer mapped in that range');
    assert.ok(stale.every((x) => x === 0), 'a view kept from before free() reads zeros');
    // The range stays writable memory of the arena, as V8 committed it: the allocator hands it out again as it is.
    stale[PAGE] = 7;
    assert.equal(stale[PAGE], 7);
    // Truncating the file now cannot fault anything: nothing maps it.
    truncateSync(path, 0);
    assert.equal(stale[2 * PAGE], 0);
  });
});

test('a snapshot truncated after it was read, or while its pages are being mapped, is refused (TSVMM_SNAPSHOT_TRUNCATED), never a SIGBUS', () => {
  withTempDir((dir) => {
    const path = join(dir, 'vm.snap');
    const content = ram();
    save(path, content);
    const length = readFileSync(path).length;
    let snap: ParsedSnapshot = readSnapshot(path, ramLayout);

    // Shrunk between the check and the mapping: nothing is mapped.
    truncateSync(path, length - 10 * PAGE);
    const a = arenaRam();
    let maps = 0;
    assert.equal(codeOf(() => loadRam(path, snap, target(a, () => maps++))), 'TSVMM_SNAPSHOT_TRUNCATED');
    assert.equal(maps, 0);
    assert.ok(a.bytes.every((x) => x === 0));
    a.free();

    // Shrunk by another writer while the runs are being mapped (after the first): refused before
    // anything touches a page; the mapped pages past the new end are never read, and free() takes them away.
    save(path, content);
    snap = readSnapshot(path, ramLayout);
    const b = arenaRam();
    const view = b.bytes;
    assert.equal(codeOf(() => loadRam(path, snap, target(b, () => { if (maps++ === 0) truncateSync(path, PAGE); }))), 'TSVMM_SNAPSHOT_TRUNCATED');
    b.free();
    assert.ok(view.every((x) => x === 0), 'after free() the range is anonymous zeroed memory: reading it all does not fault');
  });
});

test('memory that is not the arena\'s takes no file pages: mapFile says so and the pages are copied', () => {
  withTempDir((dir) => {
    const path = join(dir, 'vm.snap');
    const content = ram();
    save(path, content);
    const snap = readSnapshot(path, ramLayout);
    const m = arenaRam();
    // Refused ranges: unaligned, past the end.
    assert.equal(m.mapFile(0, 0, 100, PAGE), false);
    assert.equal(m.mapFile(0, 0, MEMORY, PAGE), false);
    // loadRam with mapping disabled copies.
    assert.deepEqual(loadRam(path, snap, target(m), { map: false }), { mapped: 0, copied: SAVED_BYTES });
    assert.deepEqual(m.bytes, content);
    assert.deepEqual(mapsOf(path, m), []);
    m.free();
  });
});
