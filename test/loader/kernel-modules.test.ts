// Kernel modules for an initramfs: dependencies from each module's .modinfo, checked against
// binutils' view of Debian's real modules, and refusals of hostile trees.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { TsvmmError, type ErrorCode } from '../../src/common/errors.js';
import { parseElfSections } from '../../src/loader/elf.js';
import { findGuestModules } from '../../src/loader/guest-kernels.js';
import { MODULE_MAX_BYTES, MODULE_MAX_DEPTH, ModuleTree, parseModinfo, resolveModules } from '../../src/loader/kernel-modules.js';
import { hasTool, withTempDir } from '../helpers/tools.js';
import { craftModule, xzZeros } from './crafted.js';

const RELEASE = '6.1.0-99-amd64';

function isCode(code: ErrorCode, message?: RegExp) {
  return (e: unknown): boolean => e instanceof TsvmmError && e.code === code && (message === undefined || message.test(e.message));
}

/** A module tree dir/<release>/ holding crafted modules: name -> [relative path, depends, extra modinfo]. */
function craftTree(dir: string, modules: Record<string, { path?: string; depends?: string; vermagic?: string; extra?: string[] }>, release = RELEASE): string {
  const root = join(dir, release);
  for (const [name, m] of Object.entries(modules)) {
    const path = join(root, m.path ?? `kernel/${name}.ko`);
    mkdirSync(dirname(path), { recursive: true });
    const info = [`name=${name.replace(/-/g, '_')}`, `depends=${m.depends ?? ''}`, `vermagic=${m.vermagic ?? `${release} SMP preempt mod_unload modversions `}`, ...(m.extra ?? [])];
    writeFileSync(path, craftModule({ modinfo: info }));
  }
  mkdirSync(root, { recursive: true });
  return root;
}

test("Debian's modules: virtio and ext4 with their dependencies, each after what it needs, as binutils reads .modinfo", (t) => {
  const dir = findGuestModules();
  if (!dir) return t.skip('the Debian kernel and its modules are not cached: run scripts/fetch-guest-kernel.sh');
  const tree = ModuleTree.open(dir);
  assert.match(tree.release, /^6\.1\.\d+-\d+-amd64$/);
  const sel = resolveModules(tree, ['virtio_mmio', 'virtio_blk', 'virtio_console', 'virtio-rng', 'ext4']);
  assert.equal(sel.release, tree.release);
  assert.deepEqual(sel.modules.map((m) => m.name), ['virtio_ring', 'virtio', 'virtio_mmio', 'virtio_blk', 'virtio_console', 'virtio_rng', 'jbd2', 'mbcache', 'crc16', 'ext4']);
  assert.deepEqual(
    sel.modules.map((m) => m.path),
    [
      'kernel/drivers/virtio/virtio_ring.ko', 'kernel/drivers/virtio/virtio.ko', 'kernel/drivers/virtio/virtio_mmio.ko',
      'kernel/drivers/block/virtio_blk.ko', 'kernel/drivers/char/virtio_console.ko', 'kernel/drivers/char/hw_random/virtio-rng.ko',
      'kernel/fs/jbd2/jbd2.ko', 'kernel/fs/mbcache.ko', 'kernel/lib/crc16.ko', 'kernel/fs/ext4/ext4.ko',
    ],
  );
  // ext4 and jbd2 ask for the crypto-crc32c alias first: reported, not guessed.
  assert.deepEqual(sel.unresolvedSoftdeps, [{ module: 'ext4', softdep: 'crypto-crc32c' }, { module: 'jbd2', softdep: 'crypto-crc32c' }]);
  const position = new Map(sel.modules.map((m, i) => [m.name, i]));
  for (const m of sel.modules) {
    assert.deepEqual(m.bytes, new Uint8Array(readFileSync(join(dir, m.path))), `${m.name}: the file's bytes`);
    for (const d of m.info.depends) assert.ok(position.get(d)! < position.get(m.name)!, `${d} before ${m.name}`);
    if (!hasTool('objcopy')) continue;
    // binutils' reading of the same section (objcopy writes a file it can seek in).
    const modinfo = withTempDir((tmp) => {
      execFileSync('objcopy', ['-O', 'binary', '--only-section=.modinfo', join(dir, m.path), join(tmp, 'modinfo')]);
      return readFileSync(join(tmp, 'modinfo'), 'latin1').split('\0');
    });
    const field = (k: string): string | undefined => modinfo.find((s) => s.startsWith(`${k}=`))?.slice(k.length + 1);
    assert.deepEqual(m.info.depends, (field('depends') ?? '').split(',').filter(Boolean), `${m.name}: depends`);
    assert.equal(m.info.vermagic, field('vermagic'), `${m.name}: vermagic`);
    assert.equal(m.info.name, field('name'));
  }
});

test('.ko.xz and .ko.gz modules are decompressed; dashes and underscores name the same module', (t) => {
  const dir = findGuestModules();
  if (!dir) return t.skip('the Debian kernel and its modules are not cached: run scripts/fetch-guest-kernel.sh');
  if (!hasTool('xz')) return t.skip('xz is not installed (apt-get install xz-utils)');
  withTempDir((tmp) => {
    const release = ModuleTree.open(dir).release;
    const root = join(tmp, release);
    mkdirSync(join(root, 'kernel', 'drivers'), { recursive: true });
    const ring = readFileSync(join(dir, 'kernel/drivers/virtio/virtio_ring.ko'));
    const virtio = readFileSync(join(dir, 'kernel/drivers/virtio/virtio.ko'));
    const rng = readFileSync(join(dir, 'kernel/drivers/char/hw_random/virtio-rng.ko'));
    // As Debian's later kernels and kmod compress them: CRC32 checks.
    writeFileSync(join(root, 'kernel/drivers/virtio_ring.ko.xz'), execFileSync('xz', ['-c', '--check=crc32'], { input: ring }));
    writeFileSync(join(root, 'kernel/drivers/virtio.ko.gz'), execFileSync('gzip', ['-c'], { input: virtio }));
    copyFileSync(join(dir, 'kernel/drivers/char/hw_random/virtio-rng.ko'), join(root, 'kernel/drivers/virtio-rng.ko'));
    const sel = resolveModules(ModuleTree.open(root), ['virtio_rng']);
    assert.deepEqual(sel.modules.map((m) => [m.name, m.path]), [
      ['virtio_ring', 'kernel/drivers/virtio_ring.ko'],
      ['virtio', 'kernel/drivers/virtio.ko'],
      ['virtio_rng', 'kernel/drivers/virtio-rng.ko'],
    ]);
    assert.deepEqual(sel.modules.map((m) => m.bytes), [new Uint8Array(ring), new Uint8Array(virtio), new Uint8Array(rng)]);
    // A decompression bomb stops at the module size limit.
    writeFileSync(join(root, 'kernel/bomb.ko.xz'), xzZeros(1 << 20, MODULE_MAX_BYTES / (1 << 20) + 1));
    assert.throws(() => resolveModules(ModuleTree.open(root), ['bomb']), isCode('TSVMM_BAD_MODULE', /bomb.*does not decompress within/));
    writeFileSync(join(root, 'kernel/zst.ko.zst'), new Uint8Array(8));
    assert.throws(() => resolveModules(ModuleTree.open(root), ['zst']), isCode('TSVMM_BAD_MODULE', /zstd/));
  });
});

test('missing modules and dependencies are TSVMM_NO_MODULE; another release, cycles and deep chains TSVMM_BAD_MODULE', () => {
  withTempDir((dir) => {
    const root = craftTree(dir, {
      a: { depends: 'b' },
      b: { depends: 'c-d', path: 'kernel/sub/b.ko' },
      'c-d': {},
      lost: { depends: 'b,nothere' },
      other: { vermagic: '6.1.0-1-amd64 SMP preempt mod_unload modversions ' },
      needsother: { depends: 'other' },
      novermagic: {},
      x: { depends: 'y' },
      y: { depends: 'z' },
      z: { depends: 'x' },
      self: { depends: 'self' },
      liar: {},
      soft: { extra: ['softdep=pre: c_d crypto-sha256 post: a'] },
    });
    // novermagic and liar: rewritten by hand.
    writeFileSync(join(root, 'kernel/novermagic.ko'), craftModule({ modinfo: ['name=novermagic', 'depends='] }));
    writeFileSync(join(root, 'kernel/liar.ko'), craftModule({ modinfo: ['name=someone_else', 'depends=', `vermagic=${RELEASE} SMP`] }));
    const tree = ModuleTree.open(root);
    assert.equal(tree.release, RELEASE);
    assert.deepEqual(resolveModules(tree, ['a']).modules.map((m) => [m.name, m.path]), [['c_d', 'kernel/c-d.ko'], ['b', 'kernel/sub/b.ko'], ['a', 'kernel/a.ko']]);
    assert.throws(() => resolveModules(tree, ['nope']), isCode('TSVMM_NO_MODULE', /module nope is not in /));
    assert.throws(() => resolveModules(tree, ['lost']), isCode('TSVMM_NO_MODULE', /module nothere is not in .* \(lost depends on it\)/));
    assert.throws(() => resolveModules(tree, ['../a']), isCode('TSVMM_NO_MODULE'));
    assert.throws(() => resolveModules(tree, ['needsother']), isCode('TSVMM_BAD_MODULE', /module other .* is for kernel 6\.1\.0-1-amd64 .*not 6\.1\.0-99-amd64/));
    assert.throws(() => resolveModules(tree, ['novermagic']), isCode('TSVMM_BAD_MODULE', /no vermagic/));
    assert.throws(() => resolveModules(tree, ['x']), isCode('TSVMM_BAD_MODULE', /cycle: x -> y -> z -> x/));
    assert.throws(() => resolveModules(tree, ['self']), isCode('TSVMM_BAD_MODULE', /cycle: self -> self/));
    assert.throws(() => resolveModules(tree, ['liar']), isCode('TSVMM_BAD_MODULE', /calls itself someone_else/));
    // Soft dependencies: by module name, loaded before (pre) or after (post); aliases reported.
    const soft = resolveModules(tree, ['soft']);
    assert.deepEqual(soft.modules.map((m) => m.name), ['c_d', 'soft', 'b', 'a']);
    assert.deepEqual(soft.unresolvedSoftdeps, [{ module: 'soft', softdep: 'crypto-sha256' }]);
  });
  withTempDir((dir) => {
    // A chain one longer than the limit.
    const chain: Record<string, { depends?: string }> = {};
    for (let i = 0; i <= MODULE_MAX_DEPTH; i++) chain[`m${i}`] = i < MODULE_MAX_DEPTH ? { depends: `m${i + 1}` } : {};
    const tree = ModuleTree.open(craftTree(dir, chain));
    assert.throws(() => resolveModules(tree, ['m0']), isCode('TSVMM_BAD_MODULE', new RegExp(`deeper than ${MODULE_MAX_DEPTH}`)));
    assert.equal(resolveModules(tree, ['m1']).modules.length, MODULE_MAX_DEPTH);
  });
});

test('malformed module files are TSVMM_BAD_MODULE naming the file; the tree walk is bounded', (t) => {
  withTempDir((dir) => {
    const root = craftTree(dir, { good: {}, dup: {}, 'dup-2': {} });
    mkdirSync(join(root, 'updates'));
    writeFileSync(join(root, 'updates/dup.ko'), readFileSync(join(root, 'kernel/dup.ko')));
    const bad: Record<string, Uint8Array> = {
      empty: new Uint8Array(0),
      text: new TextEncoder().encode('#!/bin/sh\necho not a module\n'),
      exec: craftModule({ modinfo: ['name=exec'], type: 2 }),
      arm: craftModule({ modinfo: ['name=arm'], machine: 183 }),
      noinfo: craftModule({}),
    };
    for (const [name, bytes] of Object.entries(bad)) writeFileSync(join(root, 'kernel', `${name}.ko`), bytes);
    // Truncated: a real module's section headers (at its end) cut off, and a crafted one's.
    const real = findGuestModules();
    const cut = real ? readFileSync(join(real, 'kernel/drivers/virtio/virtio.ko')) : craftModule({ modinfo: ['name=cut'] });
    writeFileSync(join(root, 'kernel/cut.ko'), cut.subarray(0, Math.floor(cut.length / 2)));
    writeFileSync(join(root, 'kernel/cut2.ko'), craftModule({ modinfo: [`vermagic=${RELEASE}`] }).subarray(0, 100));
    // Larger than a module may be (sparse: nothing is read).
    writeFileSync(join(root, 'kernel/huge.ko'), '');
    truncateSync(join(root, 'kernel/huge.ko'), MODULE_MAX_BYTES + 1);
    symlinkSync('/nonexistent', join(root, 'kernel/dangling.ko'));
    const tree = ModuleTree.open(root);
    const expect: [string, RegExp][] = [
      ['empty', /module empty \(.*empty\.ko\): ELF truncated/],
      ['text', /not an ELF file/],
      ['exec', /not an x86-64 kernel module/],
      ['arm', /ELF machine 183 is not x86/],
      ['noinfo', /no \.modinfo section/],
      ['cut', /ELF truncated: section headers/],
      ['cut2', /ELF truncated/],
      ['huge', /is 67108865 bytes, more than the 67108864/],
      ['dup', /module dup is in .* more than once: kernel\/dup\.ko, updates\/dup\.ko/],
    ];
    for (const [name, message] of expect) assert.throws(() => resolveModules(tree, [name]), isCode('TSVMM_BAD_MODULE', message), name);
    // dup-2 is a module of its own (dup_2), not a third dup.
    assert.equal(resolveModules(tree, ['dup_2']).modules[0]!.name, 'dup_2');
    assert.throws(() => resolveModules(tree, ['dangling']), isCode('TSVMM_NO_MODULE', /cannot read module dangling/));
    assert.equal(resolveModules(tree, ['good']).modules.length, 1);
  });
  assert.throws(() => ModuleTree.open('/nonexistent/6.1.0-1-amd64'), isCode('TSVMM_NO_MODULE', /no kernel module tree at/));
  assert.throws(() => ModuleTree.open('/etc/hostname'), isCode('TSVMM_NO_MODULE'));
  // A directory loop through symlinks is not followed.
  withTempDir((dir) => {
    const root = craftTree(dir, { good: {} });
    symlinkSync('..', join(root, 'kernel', 'loop'));
    assert.equal(ModuleTree.open(root).names().join(), 'good');
  });
  if (!hasTool('objcopy')) t.diagnostic('objcopy missing: the section table is checked against crafted files only');
});

test('parseModinfo and parseElfSections on crafted files: softdep lists, repeated depends, names inside the string table', () => {
  const info = parseModinfo(craftModule({ modinfo: ['depends=a-b,c', 'softdep=pre: x y post: z', 'softdep=pre: w', 'vermagic=1.2.3 SMP', 'alias=foo'] }));
  assert.deepEqual(info, { name: undefined, vermagic: '1.2.3 SMP', depends: ['a_b', 'c'], softdepPre: ['x', 'y', 'w'], softdepPost: ['z'] });
  const img = craftModule({ modinfo: ['name=a'] });
  assert.deepEqual(parseElfSections(img).sections.map((s) => s.name), ['', '.modinfo', '.shstrtab']);
  // A section name offset beyond the string table.
  const broken = img.slice();
  const shoff = Number(new DataView(broken.buffer).getBigUint64(0x28, true));
  new DataView(broken.buffer).setUint32(shoff + 64, 0xffff, true);
  assert.throws(() => parseModinfo(broken), isCode('TSVMM_BAD_MODULE', /name offset 0xffff is outside/));
  // e_shstrndx naming no section.
  const noStrtab = img.slice();
  new DataView(noStrtab.buffer).setUint16(0x3e, 7, true);
  assert.throws(() => parseModinfo(noStrtab), isCode('TSVMM_BAD_MODULE', /e_shstrndx 7/));
  // A .modinfo reaching past the end of the file.
  const long = img.slice();
  new DataView(long.buffer).setBigUint64(shoff + 64 + 0x20, 1n << 40n, true);
  assert.throws(() => parseModinfo(long), isCode('TSVMM_BAD_MODULE', /ELF truncated: section 1/));
});
