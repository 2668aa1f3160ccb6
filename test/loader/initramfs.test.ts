import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { main } from '../../src/cli/main.js';
import { TsvmmError } from '../../src/common/errors.js';
import { DEFAULT_BUSYBOX_APPLETS, Initramfs, INITRAMFS_MAX_BYTES } from '../../src/loader/initramfs.js';
import { AGENT_SCRIPT } from '../../src/loader/initramfs-init.js';
import { findGuestBusybox, findGuestModules } from '../../src/loader/guest-kernels.js';
import { craftModule } from './crafted.js';
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

test('tsvmm initramfs: the generated /init, the user script, the agent, busybox and its applets, base layout, --add trees', async (t) => {
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
    // The user's script runs as PID 1 after /init started the agent; no modules were asked for.
    assert.equal(by.get('usr/lib/tsvmm/init')!.mode, 0o100755);
    assert.equal(new TextDecoder().decode(by.get('usr/lib/tsvmm/init')!.data), readFileSync(script, 'utf8'));
    assert.equal(by.get('sbin/tsvmm-agent')!.mode, 0o100755);
    assert.deepEqual(by.get('sbin/tsvmm-agent')!.data, new Uint8Array(readFileSync(AGENT_SCRIPT)));
    assert.equal(by.get('init')!.mode, 0o100755);
    const init = new TextDecoder().decode(by.get('init')!.data);
    assert.match(init, /^#!\/bin\/sh\n/);
    assert.match(init, /\n    TSVMM_AGENT_SYSFS=\/usr\/lib\/tsvmm\/sys \/sbin\/tsvmm-agent <\/dev\/null >\/dev\/null 2>&1 &\n/);
    assert.match(init, /\nexec \/usr\/lib\/tsvmm\/init "\$@"\n$/);
    assert.equal(by.get('usr/lib/tsvmm/sys')!.mode, 0o040755);
    assert.doesNotMatch(init, /insmod/);
    assert.ok(!recs.some((r) => r.name.startsWith('lib/modules')));
    assert.equal(by.get('bin/busybox')!.mode, 0o100755);
    assert.deepEqual(by.get('bin/busybox')!.data, new Uint8Array(readFileSync(busybox)));
    for (const applet of ['bin/sh', 'bin/mount', 'bin/echo', 'bin/cat', 'bin/ls', 'bin/uname', 'sbin/poweroff', 'sbin/reboot', 'bin/mkdir', 'bin/base64', 'bin/stat', 'usr/bin/setsid', 'sbin/insmod']) {
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

test('tsvmm initramfs --net-dhcp: /init asks for eth0\'s address with udhcpc before the agent and the user\'s script start; the script it runs sets what DHCP said', async (t) => {
  const busybox = busyboxOrSkip(t);
  if (!busybox) return;
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-initramfs-'));
  try {
    const script = join(dir, 'init.sh');
    writeFileSync(script, '#!/bin/sh\nexec sleep 1000\n');
    const io = { out: () => {}, err: () => {} };
    const read = async (extra: string[]) => {
      const out = join(dir, `initrd${extra.length}.gz`);
      assert.equal(await main(['initramfs', '--init', script, '--busybox', busybox, ...extra, '-o', out], io), 0);
      return new Map(readNewc(new Uint8Array(gunzipSync(readFileSync(out)))).map((r) => [r.name, r]));
    };
    const plain = await read([]);
    assert.doesNotMatch(new TextDecoder().decode(plain.get('init')!.data), /udhcpc/);
    assert.ok(!plain.has('usr/lib/tsvmm/udhcpc.script'));
    const by = await read(['--net-dhcp']);
    const init = new TextDecoder().decode(by.get('init')!.data);
    const dhcp = init.indexOf('udhcpc -i eth0 -s /usr/lib/tsvmm/udhcpc.script -f -q -n ');
    assert.ok(dhcp > 0, init);
    assert.ok(init.indexOf('ip link set eth0 up') < dhcp);
    assert.ok(dhcp < init.indexOf('/sbin/tsvmm-agent <'), 'DHCP before the agent');
    assert.ok(by.has('sbin/udhcpc') || by.has('usr/sbin/udhcpc') || by.has('bin/udhcpc'), 'busybox\'s udhcpc applet is linked');
    const udhcpc = by.get('usr/lib/tsvmm/udhcpc.script')!;
    assert.equal(udhcpc.mode, 0o100755);
    const text = new TextDecoder().decode(udhcpc.data);
    for (const line of [/ip addr add "\$ip\/\$\(prefix /, /ip route add default via "\$r" dev "\$interface"/, /ip link set "\$interface" mtu "\$mtu"/, /echo "nameserver \$d" >> \/etc\/resolv.conf/]) assert.match(text, line);
    // The script's netmask arithmetic, run by the host's sh (its own function only).
    const prefix = text.slice(text.indexOf('prefix() {'), text.indexOf('\ncase "$1"'));
    const r = spawnSync('sh', ['-c', `${prefix}\nfor m in 255.255.255.0 255.255.240.0 255.255.255.255 255.0.0.0; do prefix $m; done`], { encoding: 'utf8' });
    assert.equal(r.stdout, '24\n20\n32\n8\n', r.stderr);
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

test('the archive keeps its length as it is built, and refuses to pass INITRAMFS_MAX_BYTES', () => {
  const fs = new Initramfs();
  const check = () => assert.equal(fs.byteLength, fs.toCpio().length);
  check();
  fs.addFile('/a/b/c.txt', 'hello');
  check();
  fs.addFile('/a/b/c.txt', 'a longer replacement, with an odd length');
  check();
  fs.addSymlink('/bin/sh', '/bin/busybox');
  fs.addCharDevice('/dev/console', 5, 1);
  fs.addDir('/ünïcode');
  check();
  assert.equal(fs.room, INITRAMFS_MAX_BYTES - fs.byteLength);
  // Zero-filled arrays cost no memory until touched; the archive is never built here.
  const limit = (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_LIMIT' && /above its limit of 1073741824/.test(e.message);
  assert.throws(() => fs.addFile('/big', new Uint8Array(fs.room)), limit);
  fs.addFile('/big', new Uint8Array(fs.room - 1024));
  assert.ok(fs.room < 1024);
  assert.throws(() => fs.addFile('/more', new Uint8Array(1024)), limit);
  assert.equal(fs.has('/more'), false);
});

test('tsvmm initramfs: clear errors, and nothing written, for inputs it cannot take', async (t) => {
  const busybox = busyboxOrSkip(t);
  if (!busybox) return;
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-initramfs-'));
  try {
    const script = join(dir, 'init.sh');
    const text = '#!/bin/sh\necho hi\n';
    writeFileSync(script, text);
    const tree = join(dir, 'tree');
    mkdirSync(tree);
    writeFileSync(join(tree, 'file'), 'x');
    const big = join(dir, 'big');
    writeFileSync(big, '');
    truncateSync(big, 3 * 2 ** 30); // sparse: 3 GiB that take no disk
    symlinkSync(script, join(dir, 'link'));
    linkSync(script, join(dir, 'hard'));
    const out = join(dir, 'out.gz');
    const run = async (args: string[]) => {
      let err = '';
      const status = await main(['initramfs', '--busybox', busybox, ...args], { out: () => {}, err: (s: string) => void (err += s) });
      return { status, err };
    };
    const cases: [string[], number, RegExp][] = [
      [['--init', script, '--add', '/proc/1:/p', '-o', out], 1, /TSVMM_BAD_ARGUMENT: cannot read \/proc\/1\/\S+ \(in --add \/proc\/1\): E[A-Z]+/],
      [['--init', script, '--add', `${big}:/big`, '-o', out], 1, /TSVMM_LIMIT: --add \S+big is 3221225472 bytes: an initramfs holds at most 1073741824 bytes \(1 GiB\)/],
      [['--init', big, '-o', out], 1, /TSVMM_LIMIT: --init \S+big is 3221225472 bytes/],
      [['--init', script, '--add', '/dev/null:/x', '-o', out], 1, /TSVMM_BAD_ARGUMENT: --add \/dev\/null is a character device; only regular files, symlinks and directories can be added/],
      [['--init', dir, '-o', out], 2, /TSVMM_USAGE: --init \S+ is a directory, not a regular file/],
      [['--init', script, '--busybox', '/dev/null', '-o', out], 2, /TSVMM_USAGE: --busybox \/dev\/null is a character device, not a regular file/],
      [['--init', script, '-o', tree], 2, /TSVMM_USAGE: -o \S+tree is a directory; want a file name/],
      [['--init', script, '-o', join(dir, 'no', 'out.gz')], 1, /TSVMM_BAD_ARGUMENT: cannot write \S+: \S+no does not exist/],
    ];
    for (const [args, status, re] of cases) {
      const r = await run(args);
      assert.match(r.err, re, args.join(' '));
      assert.equal(r.status, status, args.join(' '));
      assert.ok(!existsSync(out), `nothing written (${args.join(' ')})`);
      assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
    }
    // The output named as an input, by the same path, a symlink, a hard link, or inside an --add tree.
    const same: [string[], RegExp][] = [
      [['--init', script, '-o', script], /-o \S+init\.sh is the same file as --init \S+init\.sh: writing it would destroy an input/],
      [['--init', script, '-o', join(dir, 'link')], /-o \S+link is the same file as --init \S+init\.sh/],
      [['--init', join(dir, 'hard'), '-o', script], /-o \S+init\.sh is the same file as --init \S+hard/],
      [['--init', join(dir, 'other.sh'), '--add', `${dir}:/d`, '-o', script], /-o \S+init\.sh is the same file as \S+(init\.sh|hard) \(in --add \S+\)/],
    ];
    writeFileSync(join(dir, 'other.sh'), text);
    rmSync(big);
    for (const [args, re] of same) {
      const r = await run(args);
      assert.match(r.err, new RegExp(`TSVMM_USAGE: ${re.source}`), args.join(' '));
      assert.equal(r.status, 2);
      assert.equal(readFileSync(script, 'utf8'), text, 'the script is intact');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tsvmm initramfs --modules: Debian modules and their dependencies, uncompressed, insmod in dependency order', async (t) => {
  const busybox = busyboxOrSkip(t);
  if (!busybox) return;
  const tree = findGuestModules();
  if (!tree) return t.skip('the Debian kernel and its modules are not cached: run scripts/fetch-guest-kernel.sh');
  const release = tree.split('/').at(-1)!;
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-initramfs-'));
  try {
    const script = join(dir, 'init.sh');
    writeFileSync(script, '#!/bin/sh\necho user\n');
    const out = join(dir, 'initrd.gz');
    let stdout = '';
    const io = { out: (s: string) => void (stdout += s), err: (s: string) => void (stdout += s) };
    // The default tree (the cached kernel's); names with dashes; the option repeated.
    const status = await main(['initramfs', '--init', script, '--busybox', busybox, '--modules', 'virtio-blk,virtio_console', '--modules', 'ext4', '-o', out], io);
    assert.equal(status, 0, stdout);
    assert.match(stdout, new RegExp(`, 8 kernel modules \\(${release.replace(/\./g, '\\.')}\\), `));
    assert.match(stdout, /note: ext4 asks for crypto-crc32c first \(softdep\)/);
    const recs = readNewc(new Uint8Array(gunzipSync(readFileSync(out))));
    const by = new Map(recs.map((r) => [r.name, r]));
    const paths = ['drivers/virtio/virtio_ring.ko', 'drivers/virtio/virtio.ko', 'drivers/block/virtio_blk.ko', 'drivers/char/virtio_console.ko', 'fs/jbd2/jbd2.ko', 'fs/mbcache.ko', 'lib/crc16.ko', 'fs/ext4/ext4.ko'];
    assert.equal(recs.filter((r) => r.name.endsWith('.ko')).length, 8);
    for (const p of paths) {
      const r = by.get(`lib/modules/${release}/kernel/${p}`);
      assert.ok(r, p);
      assert.equal(r.mode, 0o100644);
      assert.deepEqual(r.data, new Uint8Array(readFileSync(join(tree, 'kernel', p))), p);
    }
    const init = new TextDecoder().decode(by.get('init')!.data);
    assert.ok(init.includes(`for m in ${paths.map((p) => `'kernel/${p}'`).join(' ')}; do\n  insmod '/lib/modules/${release}'/"$m" ||`), init);
    assert.ok(init.indexOf('insmod') < init.indexOf('/sbin/tsvmm-agent') && init.indexOf('/sbin/tsvmm-agent') < init.indexOf('exec /usr/lib/tsvmm/init'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tsvmm initramfs --modules: missing, foreign and malformed modules are refused with their codes, nothing written', async (t) => {
  const busybox = busyboxOrSkip(t);
  if (!busybox) return;
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-initramfs-'));
  try {
    const script = join(dir, 'init.sh');
    writeFileSync(script, '#!/bin/sh\n');
    const tree = join(dir, '6.1.0-99-amd64');
    mkdirSync(join(tree, 'kernel'), { recursive: true });
    const module = (name: string, depends: string, vermagic = '6.1.0-99-amd64 SMP mod_unload ') =>
      writeFileSync(join(tree, 'kernel', `${name}.ko`), craftModule({ modinfo: [`name=${name}`, `depends=${depends}`, `vermagic=${vermagic}`] }));
    module('good', 'helper');
    module('helper', '');
    module('foreign', '', '6.1.0-1-amd64 SMP mod_unload ');
    module('loop_a', 'loop_b');
    module('loop_b', 'loop_a');
    module('lost', 'gone');
    writeFileSync(join(tree, 'kernel', 'cut.ko'), craftModule({ modinfo: ['name=cut'] }).subarray(0, 80));
    const out = join(dir, 'out.gz');
    const run = async (args: string[]) => {
      let err = '';
      const status = await main(['initramfs', '--busybox', busybox, '--init', script, ...args], { out: () => {}, err: (s: string) => void (err += s) });
      return { status, err };
    };
    const cases: [string[], number, RegExp][] = [
      [['--modules', 'nope', '--kernel-modules', tree, '-o', out], 1, /TSVMM_NO_MODULE: module nope is not in \S+6\.1\.0-99-amd64/],
      [['--modules', 'lost', '--kernel-modules', tree, '-o', out], 1, /TSVMM_NO_MODULE: module gone is not in \S+ \(lost depends on it\)/],
      [['--modules', 'good,foreign', '--kernel-modules', tree, '-o', out], 1, /TSVMM_BAD_MODULE: module foreign \(\S+foreign\.ko\) is for kernel 6\.1\.0-1-amd64/],
      [['--modules', 'loop_a', '--kernel-modules', tree, '-o', out], 1, /TSVMM_BAD_MODULE: module dependency cycle: loop_a -> loop_b -> loop_a/],
      [['--modules', 'cut', '--kernel-modules', tree, '-o', out], 1, /TSVMM_BAD_MODULE: module cut \(\S+\): ELF truncated/],
      [['--modules', 'good', '--kernel-modules', join(dir, 'none'), '-o', out], 1, /TSVMM_NO_MODULE: no kernel module tree at/],
      [['--modules', 'a b', '-o', out], 2, /TSVMM_USAGE: --modules 'a b': 'a b' is not a module name/],
      [['--modules', 'a,,b', '-o', out], 2, /TSVMM_USAGE: --modules 'a,,b': '' is not a module name/],
      [['--kernel-modules', tree, '-o', out], 2, /TSVMM_USAGE: --kernel-modules DIR needs --modules/],
      [['--modules', 'good', '--kernel-modules', tree, '-o', join(tree, 'kernel', 'helper.ko')], 2, /TSVMM_USAGE: -o \S+helper\.ko is the same file as module helper/],
    ];
    for (const [args, status, re] of cases) {
      const r = await run(args);
      assert.match(r.err, re, args.join(' '));
      assert.equal(r.status, status, args.join(' '));
      assert.ok(!existsSync(out), `nothing written (${args.join(' ')})`);
    }
    // The crafted tree works when nothing is wrong.
    const r = await run(['--modules', 'good', '--kernel-modules', tree, '-o', out]);
    assert.equal(r.status, 0, r.err);
    const names = readNewc(new Uint8Array(gunzipSync(readFileSync(out)))).map((rec) => rec.name).filter((n) => n.endsWith('.ko'));
    assert.deepEqual(names, ['lib/modules/6.1.0-99-amd64/kernel/helper.ko', 'lib/modules/6.1.0-99-amd64/kernel/good.ko']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the applets the agent needs are in the fallback applet set', () => {
  for (const a of ['bin/sh', 'bin/base64', 'bin/stat', 'usr/bin/setsid', 'bin/sleep', 'bin/cat', 'bin/mkdir', 'bin/rm', 'bin/mknod', 'bin/mount', 'sbin/insmod']) {
    assert.ok(DEFAULT_BUSYBOX_APPLETS.includes(a), a);
  }
  assert.ok(DEFAULT_BUSYBOX_APPLETS.some((a) => a.endsWith('/head')));
});
