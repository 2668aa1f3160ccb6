import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { main } from '../../src/cli/main.js';
import { TsvmmError } from '../../src/common/errors.js';
import { findGuestBusybox } from '../../src/loader/guest-kernels.js';
import { Initramfs } from '../../src/loader/initramfs.js';
import { hasTool } from '../helpers/tools.js';

interface CpioRecord {
  name: string;
  ino: number;
  mode: number;
  nlink: number;
  rdevmajor: number;
  rdevminor: number;
  data: Uint8Array;
}

/** An independent newc reader: 110-byte ASCII header, name + NUL padded to 4, data padded to 4. */
function readNewc(archive: Uint8Array): CpioRecord[] {
  const text = new TextDecoder('latin1');
  const out: CpioRecord[] = [];
  let p = 0;
  for (;;) {
    assert.equal(p % 4, 0, 'headers start 4-byte aligned');
    const h = text.decode(archive.subarray(p, p + 110));
    assert.equal(h.slice(0, 6), '070701', `magic at ${p}`);
    const field = (i: number) => Number.parseInt(h.slice(6 + 8 * i, 14 + 8 * i), 16);
    const namesize = field(11);
    const filesize = field(6);
    const name = text.decode(archive.subarray(p + 110, p + 110 + namesize - 1));
    assert.equal(archive[p + 110 + namesize - 1], 0, 'name is NUL-terminated');
    const dataStart = Math.ceil((p + 110 + namesize) / 4) * 4;
    const rec = { name, ino: field(0), mode: field(1), nlink: field(4), rdevmajor: field(9), rdevminor: field(10), data: archive.subarray(dataStart, dataStart + filesize) };
    p = Math.ceil((dataStart + filesize) / 4) * 4;
    if (name === 'TRAILER!!!') {
      assert.equal(p, archive.length, 'nothing after the trailer');
      return out;
    }
    out.push(rec);
  }
}

test('newc archive: entries, modes, devices, symlinks, padding, trailer; parents created; replacement in place', () => {
  const fs = new Initramfs();
  fs.addFile('/init', '#!/bin/sh\necho hi\n', 0o755);
  fs.addFile('/etc/deep/er/file.txt', new Uint8Array([1, 2, 3]));
  fs.addCharDevice('/dev/console', 5, 1);
  fs.addBlockDevice('dev/vda', 254, 0, 0o660);
  fs.addSymlink('/bin/sh', '/bin/busybox');
  fs.addDir('/tmp', 0o1777);
  fs.addFile('/init', 'replaced', 0o700);
  const recs = readNewc(fs.toCpio());
  assert.deepEqual(
    recs.map((r) => r.name),
    ['init', 'etc', 'etc/deep', 'etc/deep/er', 'etc/deep/er/file.txt', 'dev', 'dev/console', 'dev/vda', 'bin', 'bin/sh', 'tmp'],
  );
  const by = new Map(recs.map((r) => [r.name, r]));
  assert.equal(by.get('init')!.mode, 0o100700);
  assert.equal(new TextDecoder().decode(by.get('init')!.data), 'replaced');
  assert.deepEqual([...by.get('etc/deep/er/file.txt')!.data], [1, 2, 3]);
  assert.equal(by.get('etc')!.mode, 0o040755);
  assert.equal(by.get('dev/console')!.mode, 0o020600);
  assert.deepEqual([by.get('dev/console')!.rdevmajor, by.get('dev/console')!.rdevminor], [5, 1]);
  assert.equal(by.get('dev/vda')!.mode, 0o060660);
  assert.equal(by.get('bin/sh')!.mode, 0o120777);
  assert.equal(new TextDecoder().decode(by.get('bin/sh')!.data), '/bin/busybox');
  assert.equal(by.get('tmp')!.mode, 0o041777);
  // Distinct inode numbers (the kernel treats equal ino + nlink > 1 as hard links).
  assert.equal(new Set(recs.map((r) => r.ino)).size, recs.length);
  // gzip round trip.
  assert.deepEqual(new Uint8Array(gunzipSync(fs.toGzip())), fs.toCpio());
  // Bad paths and modes.
  assert.throws(() => fs.addFile('/a/../b', ''), (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_BAD_ARGUMENT' && /'\/a\/..\/b'/.test(e.message));
  assert.throws(() => fs.addFile('/', ''), /empty/);
  assert.throws(() => fs.addFile('/init/x', ''), /parent init is a file/);
  assert.throws(() => fs.addDir('/x', 0o10000), /mode 10000/);
});

test('the system cpio lists the archive the same way', (t) => {
  if (!hasTool('cpio')) {
    t.skip('cpio not installed (apt-get install cpio)');
    return;
  }
  const fs = new Initramfs();
  fs.addFile('init', 'x'.repeat(1001), 0o755);
  fs.addCharDevice('dev/console', 5, 1);
  fs.addSymlink('bin/sh', '/bin/busybox');
  const r = spawnSync('cpio', ['-t', '-v', '--quiet'], { input: fs.toCpio(), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 5);
  assert.match(lines[0]!, /^-rwxr-xr-x .* 1001 .* init$/);
  assert.match(lines[1]!, /^drwxr-xr-x .* dev$/);
  assert.match(lines[2]!, /^crw------- .* 5,\s+1 .* dev\/console$/);
  assert.match(lines[4]!, /^lrwxrwxrwx .* bin\/sh -> \/bin\/busybox$/);
});

function busyboxOrSkip(t: { skip(msg: string): void }): string | undefined {
  for (const p of ['/bin/busybox', findGuestBusybox()]) {
    if (p && existsSync(p) && !/dynamically/.test(spawnSync('file', ['-L', p], { encoding: 'utf8' }).stdout ?? '')) return p;
  }
  t.skip('no static busybox: apt-get install busybox-static or run scripts/fetch-guest-kernel.sh');
  return undefined;
}

test('tsvmm initramfs: /init, busybox and its applets, base layout, --add trees', async (t) => {
  const busybox = busyboxOrSkip(t);
  if (!busybox) return;
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-initramfs-'));
  try {
    const script = join(dir, 'init.sh');
    writeFileSync(script, '#!/bin/sh\nmount -t proc proc /proc\necho ok\npoweroff -f\n');
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'sub'), { recursive: true });
    writeFileSync(join(tree, 'sub', 'run.sh'), 'echo run\n');
    chmodSync(join(tree, 'sub', 'run.sh'), 0o750);
    symlinkSync('sub/run.sh', join(tree, 'link'));
    const out = join(dir, 'initrd.gz');
    let stdout = '';
    const io = { out: (s: string) => void (stdout += s), err: (s: string) => void (stdout += s) };
    const status = await main(['initramfs', '--init', script, '--busybox', busybox, '--add', `${tree}:/opt/tree`, '--add', `${script}:/etc/copy`, '-o', out], io);
    assert.equal(status, 0, stdout);
    assert.match(stdout, /wrote .*initrd\.gz: \d+ entries, \d+ busybox applets/);
    const recs = readNewc(new Uint8Array(gunzipSync(readFileSync(out))));
    const by = new Map(recs.map((r) => [r.name, r]));
    assert.equal(by.get('init')!.mode, 0o100755);
    assert.equal(new TextDecoder().decode(by.get('init')!.data), readFileSync(script, 'utf8'));
    assert.equal(by.get('bin/busybox')!.mode, 0o100755);
    assert.deepEqual(by.get('bin/busybox')!.data, new Uint8Array(readFileSync(busybox)));
    for (const applet of ['bin/sh', 'bin/mount', 'bin/echo', 'bin/cat', 'bin/ls', 'bin/uname', 'sbin/poweroff', 'sbin/reboot', 'bin/mkdir']) {
      const r = by.get(applet);
      assert.ok(r, `${applet} linked`);
      assert.equal(new TextDecoder().decode(r.data), '/bin/busybox');
    }
    const console = by.get('dev/console')!;
    assert.deepEqual([console.mode, console.rdevmajor, console.rdevminor], [0o020600, 5, 1]);
    for (const d of ['dev', 'proc', 'sys', 'tmp']) assert.equal(by.get(d)!.mode & 0o170000, 0o040000, `${d} is a directory`);
    assert.equal(by.get('opt/tree/sub/run.sh')!.mode, 0o100750);
    assert.equal(new TextDecoder().decode(by.get('opt/tree/link')!.data), 'sub/run.sh');
    assert.ok(by.has('etc/copy'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tsvmm initramfs: usage errors and a dynamic busybox', async () => {
  let err = '';
  const io = { out: () => {}, err: (s: string) => void (err += s) };
  assert.equal(await main(['initramfs', '-o', '/dev/null'], io), 2);
  assert.match(err, /TSVMM_USAGE: --init SCRIPT is required/);
  err = '';
  assert.equal(await main(['initramfs', '--init', '/etc/hostname'], io), 2);
  assert.match(err, /-o FILE is required/);
  err = '';
  assert.equal(await main(['initramfs', '--init', '/etc/hostname', '--add', 'nocolon', '-o', '/dev/null'], io), 2);
  assert.match(err, /--add 'nocolon' is not SRC:DST/);
  // node itself is dynamically linked: refused as a busybox.
  err = '';
  assert.equal(await main(['initramfs', '--init', '/etc/hostname', '--busybox', process.execPath, '-o', '/dev/null'], io), 1);
  assert.match(err, /TSVMM_BAD_ARGUMENT: busybox .* is dynamically linked/);
});
