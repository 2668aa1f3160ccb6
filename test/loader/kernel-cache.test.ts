// The decompressed-kernel cache (src/loader/kernel-cache.ts): the second --pvh load of the same
// bzImage reads the vmlinux back instead of inflating it again (seen in the cache's counters,
// not in timings); an entry that is corrupt, truncated, oversized or not this user's is never
// used and is replaced; the directory must be this user's alone; the cache stays within its
// bounds; a store is a rename of a whole file. Every test uses its own temporary directory.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { E820_RAM } from '../../src/loader/boot-params.js';
import { ArrayGuestMemory } from '../../src/loader/guest-memory.js';
import { defaultKernelCacheDir, KernelCache } from '../../src/loader/kernel-cache.js';
import { vmlinuxFromBzImage } from '../../src/loader/vmlinux.js';
import { bootImage } from '../../src/vmm/boot.js';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { hasTool, withTempDir, withTempDirAsync } from '../helpers/tools.js';
import { craftBzImage, craftElf64, withSizeTrailer } from './crafted.js';

const MiB = 1 << 20;
const RAM = 32 * MiB;
const HEADER_BYTES = 48;

/** An ELF with a PVH note, its code filled with `fill` (distinct kernels for distinct fills). */
const elf = (fill = 0x90): Uint8Array => craftElf64([{ paddr: 0x1000000, data: new Uint8Array(0x4000).fill(fill) }], 0x1000000, 0x1000000);

/** A bzImage whose payload is `vmlinux` gzipped (gzip's ISIZE is the declared size). */
const gzipBzImage = (vmlinux: Uint8Array): Uint8Array => craftBzImage({ payload: gzipSync(vmlinux) });

function entries(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.vmlinux')).sort();
}

function withCache<T>(fn: (dir: string, cache: KernelCache, logged: string[]) => T, options: { maxEntries?: number; maxBytes?: number } = {}): T {
  return withTempDir((tmp) => {
    const dir = join(tmp, 'cache');
    const logged: string[] = [];
    return fn(dir, new KernelCache(dir, { ...options, log: (m) => logged.push(m) }), logged);
  });
}

test('the second load of the same bzImage is read from the cache, not inflated', () => {
  withCache((dir, cache, logged) => {
    const vmlinux = elf();
    const image = gzipBzImage(vmlinux);
    assert.deepEqual(vmlinuxFromBzImage(image, RAM, { cache }), vmlinux);
    assert.deepEqual(cache.stats, { hits: 0, misses: 1, rejected: 0, stored: 1, evicted: 0 });
    assert.deepEqual(vmlinuxFromBzImage(image, RAM, { cache }), vmlinux);
    assert.deepEqual(cache.stats, { hits: 1, misses: 1, rejected: 0, stored: 1, evicted: 0 });
    // The directory is private, the entry is this user's only, and nothing temporary is left.
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(readdirSync(dir).length, 1);
    assert.equal(statSync(join(dir, entries(dir)[0]!)).mode & 0o777, 0o600);
    // Another boot (another process: a new cache object on the same directory), through bootImage.
    const again = new KernelCache(dir);
    const ram = new ArrayGuestMemory(RAM);
    const e820 = [{ addr: 0, size: 0x9fc00, type: E820_RAM }, { addr: 0x100000, size: RAM - 0x100000, type: E820_RAM }];
    const booted = bootImage(ram, { kernel: image, cmdline: '', e820, lowRamTop: RAM, pvh: true, kernelCache: again });
    assert.equal(booted.format, 'pvh');
    assert.equal(booted.entry.ip, 0x1000000);
    assert.deepEqual(again.stats, { hits: 1, misses: 0, rejected: 0, stored: 0, evicted: 0 });
    assert.deepEqual(logged, []);
  });
});

test("an xz kernel is cached too; its key changes with the payload", (t) => {
  if (!hasTool('xz')) return t.skip('xz not installed (apt-get install xz-utils)');
  withCache((dir, cache) => {
    const xz = (data: Uint8Array) =>
      craftBzImage({ payload: withSizeTrailer(new Uint8Array(execFileSync('xz', ['-c', '--x86', '--lzma2', '--check=crc32'], { input: data })), data.length) });
    const [a, b] = [elf(0x90), elf(0xcc)];
    for (const image of [xz(a), xz(b), xz(a), xz(b)]) vmlinuxFromBzImage(image, RAM, { cache });
    assert.deepEqual(cache.stats, { hits: 2, misses: 2, rejected: 0, stored: 2, evicted: 0 });
    assert.equal(entries(dir).length, 2);
    assert.deepEqual(vmlinuxFromBzImage(xz(b), RAM, { cache }), b);
  });
});

test('a corrupt, truncated, oversized or foreign entry is not used: it is replaced by a fresh decode', () => {
  const vmlinux = elf();
  const image = gzipBzImage(vmlinux);
  const damages: [string, (path: string) => void, RegExp][] = [
    ['a flipped byte in the kernel', (p) => flip(p, HEADER_BYTES + 100), /sha256 mismatch/],
    ['a flipped byte in the stored hash', (p) => flip(p, 20), /sha256 mismatch/],
    ['truncated', (p) => writeFileSync(p, readFileSync(p).subarray(0, HEADER_BYTES + 10)), /file of 58 bytes/],
    ['truncated header', (p) => writeFileSync(p, readFileSync(p).subarray(0, 20)), /truncated header/],
    ['not an entry', (p) => writeFileSync(p, Buffer.alloc(HEADER_BYTES + vmlinux.length)), /bad magic/],
    ['claims more than the payload declares', (p) => growEntry(p, vmlinux.length + 1), /more than the \d+ expected/],
  ];
  for (const [what, damage, why] of damages) {
    withCache((dir, cache, logged) => {
      vmlinuxFromBzImage(image, RAM, { cache });
      const path = join(dir, entries(dir)[0]!);
      damage(path);
      assert.deepEqual(vmlinuxFromBzImage(image, RAM, { cache }), vmlinux, what);
      assert.equal(cache.stats.hits, 0, what);
      assert.equal(cache.stats.rejected, 1, what);
      assert.equal(cache.stats.stored, 2, `${what}: stored again`);
      assert.match(logged.join('\n'), why, what);
      // The replacement is whole: the next load hits.
      assert.deepEqual(vmlinuxFromBzImage(image, RAM, { cache }), vmlinux, what);
      assert.equal(cache.stats.hits, 1, what);
    });
  }
});

function flip(path: string, at: number): void {
  const bytes = readFileSync(path);
  bytes[at]! ^= 0x01;
  writeFileSync(path, bytes);
}

/** Rewrites an entry so that its header (and its file) claim `length` bytes with a matching hash. */
function growEntry(path: string, length: number): void {
  const bytes = readFileSync(path);
  const body = Buffer.alloc(length);
  bytes.copy(body, 0, HEADER_BYTES);
  const header = Buffer.from(bytes.subarray(0, HEADER_BYTES));
  header.writeBigUInt64LE(BigInt(length), 8);
  createHash('sha256').update(body).digest().copy(header, 16);
  writeFileSync(path, Buffer.concat([header, body]));
}

test('a cache directory or entry that another user could have written is not used', (t) => {
  withTempDir((tmp) => {
    const image = gzipBzImage(elf());
    const open = join(tmp, 'open');
    const logged: string[] = [];
    new KernelCache(open).store(KernelCache.key('x', new Uint8Array(1)), new Uint8Array(1));
    chmodSync(open, 0o775);
    const cache = new KernelCache(open, { log: (m) => logged.push(m) });
    vmlinuxFromBzImage(image, RAM, { cache });
    vmlinuxFromBzImage(image, RAM, { cache });
    assert.deepEqual(cache.stats, { hits: 0, misses: 0, rejected: 0, stored: 0, evicted: 0 });
    assert.equal(entries(open).length, 1, 'nothing stored in it');
    assert.equal(logged.length, 1, 'said once');
    assert.match(logged[0]!, /is not used: mode 775 lets other users in/);
    if (process.getuid?.() !== 0) return t.skip('chown to another user needs root');
    // A private directory of another user, and an entry of another user in ours.
    const theirs = join(tmp, 'theirs');
    new KernelCache(theirs).store(KernelCache.key('x', new Uint8Array(1)), new Uint8Array(1));
    chownSync(theirs, 12345, 12345);
    const foreign = new KernelCache(theirs, { log: (m) => logged.push(m) });
    vmlinuxFromBzImage(image, RAM, { cache: foreign });
    assert.match(logged.at(-1)!, /is not used: owned by user 12345/);
    assert.equal(foreign.stats.stored, 0);
    const ours = join(tmp, 'ours');
    const mine = new KernelCache(ours, { log: (m) => logged.push(m) });
    vmlinuxFromBzImage(image, RAM, { cache: mine });
    chownSync(join(ours, entries(ours)[0]!), 12345, 12345);
    vmlinuxFromBzImage(image, RAM, { cache: mine });
    assert.match(logged.at(-1)!, /owned by user 12345/);
    assert.deepEqual(mine.stats, { hits: 0, misses: 1, rejected: 1, stored: 2, evicted: 0 });
  });
});

test('the cache keeps its most recently used entries within maxEntries and maxBytes', () => {
  const kernels = [0x10, 0x20, 0x30, 0x40].map((fill) => elf(fill));
  const images = kernels.map(gzipBzImage);
  withCache((dir, cache) => {
    const age = (i: number, secondsAgo: number) => {
      const t = new Date(Date.now() - secondsAgo * 1000);
      utimesSync(join(dir, `${KernelCache.key(`zlib ${process.versions.zlib}`, payloadOf(images[i]!))}.vmlinux`), t, t);
    };
    vmlinuxFromBzImage(images[0]!, RAM, { cache });
    age(0, 30);
    vmlinuxFromBzImage(images[1]!, RAM, { cache });
    age(1, 20);
    // Using kernel 0 again makes kernel 1 the least recently used.
    vmlinuxFromBzImage(images[0]!, RAM, { cache });
    age(0, 10);
    vmlinuxFromBzImage(images[2]!, RAM, { cache });
    assert.equal(cache.stats.evicted, 1);
    assert.equal(entries(dir).length, 2);
    vmlinuxFromBzImage(images[1]!, RAM, { cache });
    assert.equal(cache.stats.misses, 3 + 1, 'kernel 1 was evicted');
    vmlinuxFromBzImage(images[2]!, RAM, { cache });
    assert.equal(cache.stats.hits, 2, 'kernel 2 was kept');
  }, { maxEntries: 2 });
  // By bytes: an entry is its kernel plus a 48-byte header; room for two.
  withCache((dir, cache) => {
    for (const image of images) vmlinuxFromBzImage(image, RAM, { cache });
    assert.equal(entries(dir).length, 2);
    assert.equal(cache.stats.evicted, 2);
    // A kernel larger than the whole cache is not stored at all.
    const big = new KernelCache(join(dir, 'small'), { maxBytes: kernels[0]!.length });
    vmlinuxFromBzImage(images[0]!, RAM, { cache: big });
    assert.equal(big.stats.stored, 0);
  }, { maxBytes: 2 * (kernels[0]!.length + HEADER_BYTES) + 10 });
});

/** The payload of a crafted bzImage (after the boot sector, one setup sector and a 0x100 stub). */
function payloadOf(image: Uint8Array): Uint8Array {
  const dv = new DataView(image.buffer, image.byteOffset);
  return image.subarray(1024 + 0x100, 1024 + 0x100 + dv.getUint32(0x24c, true));
}

test('a temporary file left by a writer that died is removed once it is old; a fresh one is not touched', () => {
  withCache((dir, cache) => {
    vmlinuxFromBzImage(gzipBzImage(elf(1)), RAM, { cache });
    const key = 'ab'.repeat(32);
    const stale = join(dir, `.${key}.1.aaaa.tmp`);
    const fresh = join(dir, `.${key}.2.bbbb.tmp`);
    writeFileSync(stale, 'x');
    writeFileSync(fresh, 'y');
    const old = new Date(Date.now() - 2 * 3600 * 1000);
    utimesSync(stale, old, old);
    vmlinuxFromBzImage(gzipBzImage(elf(2)), RAM, { cache });
    assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), [`.${key}.2.bbbb.tmp`]);
  });
});

test('the cache directory: TSVMM_CACHE_DIR, else $XDG_CACHE_HOME/tsvmm, else ~/.cache/tsvmm', () => {
  assert.equal(defaultKernelCacheDir({ TSVMM_CACHE_DIR: '/x/y', XDG_CACHE_HOME: '/c' }), '/x/y');
  assert.equal(defaultKernelCacheDir({ XDG_CACHE_HOME: '/c' }), '/c/tsvmm');
  assert.equal(defaultKernelCacheDir({ XDG_CACHE_HOME: 'relative' }), join(homedir(), '.cache', 'tsvmm'));
  assert.equal(defaultKernelCacheDir({}), join(homedir(), '.cache', 'tsvmm'));
});

test('VirtualMachine with pvh: the board (in its worker) uses the cache directory it is given, or none', async () => {
  await withTempDirAsync(async (tmp) => {
    // 32-bit PVH entry: mov dx, 0x501; mov al, 1; out dx, al (debug-exit, status 3); hlt.
    const code = new Uint8Array(0x1000).fill(0xf4);
    code.set([0x66, 0xba, 0x01, 0x05, 0xb0, 0x01, 0xee, 0xf4]);
    const kernel = join(tmp, 'bzImage');
    writeFileSync(kernel, gzipBzImage(craftElf64([{ paddr: 0x1000000, data: code }], 0x1000000, 0x1000000)));
    const dir = join(tmp, 'cache');
    const boot = async (kernelCache: string | false | undefined): Promise<string[]> => {
      const vm = await VirtualMachine.create({ kernel, pvh: true, kernelCache, accel: 'soft', memory: 32 * MiB, timeoutMs: 60_000 });
      const logged: string[] = [];
      vm.on('log', (m) => logged.push(m));
      vm.start();
      const { end } = await vm.exited;
      assert.deepEqual(end, { how: 'debug-exit', status: 3 });
      return logged.filter((m) => m.startsWith('kernel cache'));
    };
    assert.deepEqual(await boot(dir), []);
    const [entry] = entries(dir);
    assert.ok(entry, 'the first boot stored the kernel');
    const path = join(dir, entry);
    // A hit marks the entry as used (its time), and a corrupt entry is said and replaced.
    const old = new Date(Date.now() - 3600 * 1000);
    utimesSync(path, old, old);
    assert.deepEqual(await boot(dir), []);
    assert.ok(statSync(path).mtimeMs > old.getTime() + 1000, 'the second boot read the entry');
    flip(path, HEADER_BYTES + 64);
    assert.match((await boot(dir)).join('\n'), /is not used \(sha256 mismatch\)/);
    assert.deepEqual(await boot(dir), [], 'replaced by a good entry');
    // false: no cache; undefined: the default directory ($TSVMM_CACHE_DIR here).
    const byDefault = join(tmp, 'default');
    const saved = process.env['TSVMM_CACHE_DIR'];
    process.env['TSVMM_CACHE_DIR'] = byDefault;
    try {
      await boot(false);
      assert.ok(!existsSync(byDefault));
      await boot(undefined);
      assert.equal(entries(byDefault).length, 1);
    } finally {
      if (saved === undefined) delete process.env['TSVMM_CACHE_DIR'];
      else process.env['TSVMM_CACHE_DIR'] = saved;
    }
  });
});
