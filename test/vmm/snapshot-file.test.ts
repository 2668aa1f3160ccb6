// The snapshot file (src/vmm/snapshot-file.ts, docs/snapshot-format.md): what is written is read
// back exactly, RAM sparsely; and a hostile or damaged file (truncated anywhere, any byte flipped,
// another version, absurd lengths and counts) is refused with its code before anything uses it,
// without allocating what its lengths claim.
import assert from 'node:assert/strict';
import { readFileSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { TsvmmError } from '../../src/common/errors.js';
import { emptyState, GPR, MSR, SEG, STATE, copyState } from '../../src/nvmm/state.js';
import { ramLayout } from '../../src/vmm/board.js';
import { machineConfig } from '../../src/vmm/config.js';
import {
  HEADER_BYTES, PAGE, SECTION, SECTION_HEADER_BYTES, SNAPSHOT_VERSION, loadRam, nonZeroRuns, readSnapshot, writeSnapshot, type SnapshotContents,
} from '../../src/vmm/snapshot-file.js';
import { withTempDir } from '../helpers/tools.js';

const MEMORY = 2 << 20;

function contents(): SnapshotContents {
  const state = emptyState();
  state.gprs.forEach((_, i) => (state.gprs[i] = 0x1111_2222_3333_0000n + BigInt(i)));
  state.gprs[GPR.RFLAGS] = 0x202n;
  state.segs[SEG.CS] = { selector: 0x08, base: 0xffff_8000_0000_0000n, limit: 0xffff_ffff, attrib: { type: 0xb, s: true, dpl: 0, p: true, avl: false, l: true, def: false, g: true } };
  state.crs[0] = 0x8005_0033n;
  state.msrs[MSR.EFER] = 0xd01n;
  state.msrs[MSR.TSC] = 123_456_789n;
  state.drs[5] = 0x400n;
  state.intr = { intShadow: true, intWindowExiting: false, nmiWindowExiting: true, evtPending: false };
  state.fpu.fcw = 0x37f;
  state.fpu.mxcsr = 0x1f80;
  state.fpu.mxcsrMask = 0xffff;
  state.fpu.sts.fill(7);
  state.fpu.xmms.forEach((_, i) => (state.fpu.xmms[i] = i & 0xff));
  const ram = new Uint8Array(MEMORY);
  ram.fill(0xaa, 0, PAGE); // page 0
  ram[5 * PAGE + 17] = 1; // page 5
  ram.fill(0x55, 7 * PAGE, 10 * PAGE); // pages 7-9
  ram[MEMORY - 1] = 0xff; // the last page
  return {
    machine: { config: machineConfig({ kernel: '/nonexistent/kernel', memory: MEMORY, accel: 'soft' }), backend: 'soft', guestNs: 987_654_321, drives: [], ram: ramLayout(MEMORY), agentReady: true },
    vcpus: [{ id: 0, state, xsaveExtended: new Uint8Array(0) }],
    devices: { com1: { rx: [1, 2, 3] }, virtio: {} },
    ram: [{ gpa: 0, bytes: ram }],
  };
}

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    if (e instanceof TsvmmError) return e.code;
    throw e;
  }
  return 'accepted';
};

/** Section boundaries of a well-formed file: [offset of each section header..., end]. */
function sections(bytes: Uint8Array): { at: number; type: number; length: number }[] {
  const out: { at: number; type: number; length: number }[] = [];
  const d = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let at = HEADER_BYTES; at < bytes.length;) {
    const length = Number(d.getBigUint64(at + 8, true));
    out.push({ at, type: d.getUint32(at, true), length });
    at += SECTION_HEADER_BYTES + length;
  }
  return out;
}

/** The file with section `index`'s payload replaced (its length and checksum made right again). */
function withPayload(bytes: Uint8Array, index: number, payload: (old: Uint8Array) => Uint8Array): Uint8Array {
  const s = sections(bytes)[index]!;
  const start = s.at + SECTION_HEADER_BYTES;
  const p = payload(bytes.slice(start, start + s.length));
  const out = new Uint8Array(bytes.length - s.length + p.length);
  out.set(bytes.subarray(0, s.at + SECTION_HEADER_BYTES));
  out.set(p, start);
  out.set(bytes.subarray(start + s.length), start + p.length);
  const d = new DataView(out.buffer);
  d.setBigUint64(s.at + 8, BigInt(p.length), true);
  d.setUint32(s.at + 16, crc32(p) >>> 0, true);
  return out;
}

test('CRC32 is the IEEE one (the check value of "123456789")', () => {
  assert.equal(crc32('123456789') >>> 0, 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)) >>> 0, 0);
});

test('all-zero pages are left out: runs of the others', () => {
  const c = contents();
  assert.deepEqual(nonZeroRuns(c.ram[0]!.bytes), [{ first: 0, count: 1 }, { first: 5, count: 1 }, { first: 7, count: 3 }, { first: MEMORY / PAGE - 1, count: 1 }]);
  assert.deepEqual(nonZeroRuns(new Uint8Array(3 * PAGE)), []);
});

test('a snapshot reads back as written: machine, every state group, devices, and RAM page for page', () => {
  withTempDir((dir) => {
    const path = join(dir, 's.snap');
    const c = contents();
    writeSnapshot(path, c);
    assert.ok(statSync(path).size < 7 * PAGE + 4096, 'six saved pages and the rest');
    const r = readSnapshot(path, ramLayout);
    assert.deepEqual(r.machine, c.machine);
    assert.deepEqual(r.devices, c.devices);
    const expected = emptyState();
    copyState(expected, c.vcpus[0]!.state, STATE.ALL);
    assert.deepEqual(r.vcpus[0]!.state, expected);
    assert.deepEqual(r.vcpus[0]!.xsaveExtended, new Uint8Array(0));
    const ram = new Uint8Array(MEMORY);
    loadRam(path, r, (gpa, size) => {
      assert.deepEqual([gpa, size], [0, MEMORY]);
      return { bytes: ram };
    });
    assert.deepEqual(ram, c.ram[0]!.bytes);
  });
});

/** The RAM section's payload of `bytes` (a well-formed file): where its pages start in the file. */
function ramDataOffset(bytes: Uint8Array): { section: number; tableEnd: number; dataOffset: number } {
  const all = sections(bytes);
  const section = all.findIndex((x) => x.type === SECTION.RAM);
  const payloadAt = all[section]!.at + SECTION_HEADER_BYTES;
  const runs = new DataView(bytes.buffer, bytes.byteOffset).getUint32(payloadAt + 16, true);
  const tableEnd = payloadAt + 24 + 8 * runs;
  return { section, tableEnd, dataOffset: Math.ceil(tableEnd / PAGE) * PAGE };
}

test('version 2 keeps RAM pages page-aligned in the file (zero padding after the run table), so that they can be mapped', () => {
  withTempDir((dir) => {
    const path = join(dir, 's.snap');
    writeSnapshot(path, contents());
    const bytes = readFileSync(path);
    assert.equal(new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true), SNAPSHOT_VERSION);
    assert.equal(SNAPSHOT_VERSION, 2);
    const r = readSnapshot(path, ramLayout);
    const { tableEnd, dataOffset } = ramDataOffset(bytes);
    assert.equal(r.ram[0]!.dataOffset, dataOffset);
    assert.equal(r.ram[0]!.dataOffset % PAGE, 0);
    assert.equal(r.ram[0]!.aligned, true);
    assert.ok(bytes.subarray(tableEnd, dataOffset).every((b) => b === 0));
    assert.ok(bytes.subarray(dataOffset, dataOffset + PAGE).every((b) => b === 0xaa), 'the first saved page starts there');
    assert.notEqual(bytes[dataOffset - 1], 0xaa);
    // A padding byte that is not zero is refused (the checksum made right again).
    const bad = join(dir, 'bad.snap');
    const { section } = ramDataOffset(bytes);
    const payloadAt = sections(bytes)[section]!.at + SECTION_HEADER_BYTES;
    writeFileSync(bad, withPayload(bytes, section, (p) => { p[tableEnd - payloadAt] = 1; return p; }));
    assert.equal(code(() => readSnapshot(bad, ramLayout)), 'TSVMM_SNAPSHOT_CORRUPT');
  });
});

test('version 1 (pages right after the run table, unaligned) is still read, and its pages copied', () => {
  withTempDir((dir) => {
    const path = join(dir, 's.snap');
    const c = contents();
    writeSnapshot(path, c);
    const v2 = readFileSync(path);
    const { section, tableEnd, dataOffset } = ramDataOffset(v2);
    const payloadAt = sections(v2)[section]!.at + SECTION_HEADER_BYTES;
    const v1 = withPayload(v2, section, (p) => Uint8Array.from([...p.subarray(0, tableEnd - payloadAt), ...p.subarray(dataOffset - payloadAt)]));
    new DataView(v1.buffer).setUint32(8, 1, true);
    writeFileSync(path, v1);
    const r = readSnapshot(path, ramLayout);
    assert.equal(r.ram[0]!.aligned, false);
    const ram = new Uint8Array(MEMORY);
    let offered = false;
    const load = loadRam(path, r, () => ({ bytes: ram, mapFile: () => (offered = true) }));
    assert.deepEqual(load, { mapped: 0, copied: 6 * PAGE });
    assert.equal(offered, false, 'unaligned pages are never offered for mapping');
    assert.deepEqual(ram, c.ram[0]!.bytes);
  });
});

test('loadRam refuses a file that is not the version readSnapshot checked: shorter (TRUNCATED) or changed (CORRUPT)', () => {
  withTempDir((dir) => {
    const path = join(dir, 's.snap');
    writeSnapshot(path, contents());
    const bytes = readFileSync(path);
    const target = () => ({ bytes: new Uint8Array(MEMORY) });
    let r = readSnapshot(path, ramLayout);
    truncateSync(path, bytes.length - PAGE);
    assert.equal(code(() => loadRam(path, r, target)), 'TSVMM_SNAPSHOT_TRUNCATED');
    writeFileSync(path, bytes);
    r = readSnapshot(path, ramLayout);
    const changed = Uint8Array.from(bytes);
    changed[ramDataOffset(bytes).dataOffset]! ^= 1;
    const later = new Date(statSync(path).mtimeMs + 5000);
    writeFileSync(path, changed);
    utimesSync(path, later, later);
    assert.equal(code(() => loadRam(path, r, target)), 'TSVMM_SNAPSHOT_CORRUPT');
  });
});

test('a file truncated at any section boundary, or anywhere else, is TSVMM_SNAPSHOT_TRUNCATED', () => {
  withTempDir((dir) => {
    const path = join(dir, 's.snap');
    writeSnapshot(path, contents());
    const bytes = readFileSync(path);
    const cuts = new Set<number>([0, 1, HEADER_BYTES - 1, HEADER_BYTES]);
    for (const s of sections(bytes)) for (const d of [-1, 0, 1, SECTION_HEADER_BYTES - 1, SECTION_HEADER_BYTES, SECTION_HEADER_BYTES + 1]) cuts.add(s.at + d);
    let seed = 12345;
    for (let i = 0; i < 200; i++) cuts.add((seed = (seed * 1103515245 + 12345) % 2 ** 31) % bytes.length);
    const cut = join(dir, 'cut.snap');
    for (const n of [...cuts].filter((n) => n >= 0 && n < bytes.length)) {
      writeFileSync(cut, bytes.subarray(0, n));
      assert.equal(code(() => readSnapshot(cut, ramLayout)), 'TSVMM_SNAPSHOT_TRUNCATED', `cut at ${n} of ${bytes.length}`);
    }
  });
});

test('any flipped byte is refused (a checksum, a header field, the magic or the version)', () => {
  withTempDir((dir) => {
    const path = join(dir, 's.snap');
    writeSnapshot(path, contents());
    const bytes = readFileSync(path);
    const bad = join(dir, 'bad.snap');
    const positions = new Set<number>();
    for (let i = 0; i < 64; i++) positions.add(i); // the header and the first section header
    let seed = 777;
    for (let i = 0; i < 300; i++) positions.add((seed = (seed * 1103515245 + 12345) % 2 ** 31) % bytes.length);
    for (const s of sections(bytes)) for (let i = 0; i < SECTION_HEADER_BYTES; i++) positions.add(s.at + i);
    for (const at of positions) {
      const b = Uint8Array.from(bytes);
      b[at]! ^= 1 << (at % 8);
      writeFileSync(bad, b);
      const got = code(() => readSnapshot(bad, ramLayout));
      const expected = at >= 8 && at < 12 ? ['TSVMM_SNAPSHOT_VERSION'] : ['TSVMM_SNAPSHOT_CORRUPT', 'TSVMM_SNAPSHOT_TRUNCATED'];
      assert.ok(expected.includes(got), `byte ${at} flipped: ${got}`);
    }
  });
});

test('another version is TSVMM_SNAPSHOT_VERSION; another file is TSVMM_SNAPSHOT_CORRUPT', () => {
  withTempDir((dir) => {
    const path = join(dir, 's.snap');
    writeSnapshot(path, contents());
    const bytes = readFileSync(path);
    new DataView(bytes.buffer, bytes.byteOffset).setUint32(8, 3, true);
    writeFileSync(path, bytes);
    assert.throws(() => readSnapshot(path, ramLayout), (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_SNAPSHOT_VERSION' && /version 3/.test(e.message));
    writeFileSync(path, new Uint8Array(4096).fill(0x41));
    assert.equal(code(() => readSnapshot(path, ramLayout)), 'TSVMM_SNAPSHOT_CORRUPT');
  });
});

test('absurd lengths and counts are refused without allocating them', () => {
  withTempDir((dir) => {
    const path = join(dir, 's.snap');
    writeSnapshot(path, contents());
    const good = readFileSync(path);
    const s = sections(good);
    const bad = join(dir, 'bad.snap');
    const check = (what: string, bytes: Uint8Array, expected: string) => {
      writeFileSync(bad, bytes);
      assert.equal(code(() => readSnapshot(bad, ramLayout)), expected, what);
    };
    const setU64 = (at: number, v: bigint) => { const b = Uint8Array.from(good); new DataView(b.buffer).setBigUint64(at, v, true); return b; };
    const setU32 = (b: Uint8Array, at: number, v: number) => { new DataView(b.buffer, b.byteOffset).setUint32(at, v, true); return b; };
    // Section lengths beyond the file: 2^63, 2^40.
    check('2^63-byte machine section', setU64(s[0]!.at + 8, 1n << 63n), 'TSVMM_SNAPSHOT_TRUNCATED');
    check('2^40-byte RAM section', setU64(s[3]!.at + 8, 1n << 40n), 'TSVMM_SNAPSHOT_TRUNCATED');
    // A machine section larger than its bound, present in the file.
    check('2 MiB machine section', withPayload(good, 0, () => new Uint8Array(2 << 20).fill(0x20)), 'TSVMM_SNAPSHOT_CORRUPT');
    // RAM: a run count of 2^32 - 1, a run past the region, overlapping runs, pages missing.
    check('4 billion page runs', withPayload(good, 3, (p) => setU32(p, 16, 0xffff_ffff)), 'TSVMM_SNAPSHOT_CORRUPT');
    check('a run past the region', withPayload(good, 3, (p) => setU32(p, 24, MEMORY / PAGE)), 'TSVMM_SNAPSHOT_CORRUPT');
    check('a run of 2^32 - 1 pages', withPayload(good, 3, (p) => setU32(p, 28, 0xffff_ffff)), 'TSVMM_SNAPSHOT_CORRUPT');
    check('runs out of order', withPayload(good, 3, (p) => setU32(p, 32, 0)), 'TSVMM_SNAPSHOT_CORRUPT');
    check('a page missing', withPayload(good, 3, (p) => p.subarray(0, p.length - PAGE)), 'TSVMM_SNAPSHOT_CORRUPT');
    check('RAM at another address', withPayload(good, 3, (p) => { new DataView(p.buffer).setBigUint64(0, 1n << 32n, true); return p; }), 'TSVMM_SNAPSHOT_CORRUPT');
    // vCPU: an XSAVE image of 1 GiB, undefined bits.
    const xsaveLengthAt = sections(good)[1]!.length - 576 - 4;
    check('a 1 GiB XSAVE image', withPayload(good, 1, (p) => setU32(p, xsaveLengthAt, 1 << 30)), 'TSVMM_SNAPSHOT_CORRUPT');
    check('another state-group mask', withPayload(good, 1, (p) => setU32(p, 4, 0x3f)), 'TSVMM_SNAPSHOT_CORRUPT');
    // The machine description: a config machineConfig refuses, RAM that does not match it, garbage.
    const machine = (edit: (m: Record<string, unknown>) => void) => withPayload(good, 0, (p) => {
      const m = JSON.parse(new TextDecoder().decode(p)) as Record<string, unknown>;
      edit(m);
      return new TextEncoder().encode(JSON.stringify(m));
    });
    check('128 GiB of memory', machine((m) => { (m.config as Record<string, unknown>).memory = 128 * 2 ** 30; }), 'TSVMM_SNAPSHOT_CORRUPT');
    check('memory the RAM sections do not cover', machine((m) => { (m.config as Record<string, unknown>).memory = 4 << 20; m.ram = ramLayout(4 << 20); }), 'TSVMM_SNAPSHOT_CORRUPT');
    check('two vCPUs, one saved', machine((m) => { (m.config as Record<string, unknown>).cpus = 2; }), 'TSVMM_SNAPSHOT_CORRUPT');
    check('a negative guest time', machine((m) => { m.guestNs = -1; }), 'TSVMM_SNAPSHOT_CORRUPT');
    check('a drive not configured', machine((m) => { m.drives = [{ file: '/x', size: 512, mtimeMs: 0 }]; }), 'TSVMM_SNAPSHOT_CORRUPT');
    check('not JSON', withPayload(good, 0, () => new TextEncoder().encode('{"config":')), 'TSVMM_SNAPSHOT_CORRUPT');
    check('the devices not an object', withPayload(good, 2, () => new TextEncoder().encode('[1,2]')), 'TSVMM_SNAPSHOT_CORRUPT');
    // Structure: sections out of order, bytes after the end, an unknown section.
    const end = s[s.length - 1]!;
    check('bytes after the end marker', Uint8Array.from([...good, 0]), 'TSVMM_SNAPSHOT_CORRUPT');
    const swapped = Uint8Array.from(good);
    setU32(swapped, s[2]!.at, SECTION.RAM);
    check('RAM where the devices go', swapped, 'TSVMM_SNAPSHOT_CORRUPT');
    const unknown = Uint8Array.from(good);
    setU32(unknown, end.at, 0x77);
    check('an unknown section type', unknown, 'TSVMM_SNAPSHOT_CORRUPT');
  });
});
