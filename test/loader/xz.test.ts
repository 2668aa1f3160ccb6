import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { TsvmmError } from '../../src/common/errors.js';
import { findGuestKernel, FETCH_GUEST_KERNEL_SCRIPT } from '../../src/loader/guest-kernels.js';
import { findPvhEntry } from '../../src/loader/pvh.js';
import { vmlinuxFromBzImage } from '../../src/loader/vmlinux.js';
import { crc32, tableCrc32, xzDecompress } from '../../src/loader/xz.js';
import { hasTool } from '../helpers/tools.js';

/** The output bound these tests decode with (their data is smaller). */
const LIMIT = { maxBytes: 64 << 20 };
const RAM = 256 << 20;

/** Some x86 code (E8/E9 branches for the BCJ filter): the host's busybox or node binary. */
function x86Sample(): Buffer {
  for (const p of ['/bin/busybox', process.execPath]) {
    try {
      return readFileSync(p).subarray(0, 1 << 20);
    } catch {
      // try the next
    }
  }
  return Buffer.alloc(1 << 16, 0xe8);
}

/** A copy of `bytes` with the bits of `mask` flipped in byte `at` (a RangeError if there is no such byte). */
function flipBits(bytes: Uint8Array, at: number, mask: number): Uint8Array {
  const out = bytes.slice();
  const dv = new DataView(out.buffer);
  dv.setUint8(at, dv.getUint8(at) ^ mask);
  return out;
}

test('xz round trips against the xz tool: filters, checks, blocks, literal/position settings', (t) => {
  if (!hasTool('xz')) {
    t.skip('xz not installed (apt-get install xz-utils)');
    return;
  }
  const code = x86Sample();
  const cases: [string, Buffer, string[]][] = [
    ['text', Buffer.from('the quick brown fox jumps over the lazy dog. '.repeat(500)), ['-6']],
    ['x86 BCJ + LZMA2, CRC32 (the kernel settings)', code, ['--x86', '--lzma2=dict=1MiB', '--check=crc32']],
    ['CRC64', code.subarray(0, 200_000), ['--check=crc64', '-1']],
    ['SHA-256', code.subarray(0, 50_000), ['--check=sha256']],
    ['no check, extreme', code.subarray(0, 100_000), ['--check=none', '-9e']],
    ['incompressible (uncompressed LZMA2 chunks)', randomBytes(300_000), ['-6']],
    ['several blocks, lc=1 lp=2 pb=0', code, ['--block-size=200000', '--x86', '--lzma2=preset=6,lc=1,lp=2,pb=0']],
    ['empty', Buffer.alloc(0), []],
  ];
  for (const [name, data, args] of cases) {
    const xz = execFileSync('xz', ['-c', '-T1', ...args], { input: data, maxBuffer: 1 << 26 });
    const out = xzDecompress(new Uint8Array(xz), LIMIT);
    assert.ok(Buffer.from(out).equals(data), name);
    // Trailing data after the stream is ignored (a bzImage appends the size).
    assert.ok(Buffer.from(xzDecompress(new Uint8Array(Buffer.concat([xz, Buffer.from([1, 2, 3, 4])])), LIMIT)).equals(data), `${name} + trailer`);
  }
});

test('corrupt or truncated xz data is rejected as a bad kernel', (t) => {
  if (!hasTool('xz')) {
    t.skip('xz not installed (apt-get install xz-utils)');
    return;
  }
  const data = x86Sample().subarray(0, 100_000);
  const xz = new Uint8Array(execFileSync('xz', ['-c', '--check=crc32'], { input: data }));
  const isBad = (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_BAD_KERNEL' && e.message.startsWith('xz: ');
  assert.throws(() => xzDecompress(xz.subarray(0, 5), LIMIT), isBad);
  assert.throws(() => xzDecompress(xz.subarray(0, xz.length >> 1), LIMIT), isBad);
  assert.throws(() => xzDecompress(flipBits(xz, 7, 0x04), LIMIT), /stream header CRC32 mismatch/);
  for (const at of [200, 5000, 20_000]) {
    assert.throws(() => xzDecompress(flipBits(xz, at, 0x10), LIMIT), isBad, `flip at ${at}`);
  }
  // Any single flipped byte in a small stream: a clean TSVMM_BAD_KERNEL (never a crash or a hang).
  const small = new Uint8Array(execFileSync('xz', ['-c', '--x86', '--lzma2=preset=6', '--check=crc32'], { input: data.subarray(0, 20_000) }));
  let seed = 12345;
  for (let i = 0; i < 150; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const flipped = flipBits(small, seed % small.length, 1 << (seed >>> 29));
    try {
      xzDecompress(flipped, LIMIT);
    } catch (e) {
      assert.ok(isBad(e), `flip at ${seed % small.length}: ${String(e)}`);
    }
  }
  // The check value of CRC-32, from zlib and from the table, over whole arrays and ranges.
  const check = new TextEncoder().encode('123456789');
  for (const f of [crc32, tableCrc32]) {
    assert.equal(f(check), 0xcbf43926);
    assert.equal(f(new Uint8Array([0xaa, ...check, 0xbb]), 1, 10), 0xcbf43926);
    assert.equal(f(data, 1000, 50_000), tableCrc32(data.subarray(1000, 50_000)));
  }
});

/** A minimal bzImage whose payload is `payload` (setup: 1 sector after the boot sector). */
function bzImageWithPayload(payload: Uint8Array): Uint8Array {
  const img = new Uint8Array(1024 + 0x100 + payload.length);
  const dv = new DataView(img.buffer);
  img[0x1f1] = 1;
  dv.setUint16(0x1fe, 0xaa55, true);
  img[0x201] = 0x264 - 0x202;
  dv.setUint32(0x202, 0x53726448, true);
  dv.setUint16(0x206, 0x020f, true);
  img[0x211] = 1;
  dv.setUint32(0x1f4, (0x100 + payload.length) / 16, true);
  dv.setUint32(0x248, 0x100, true);
  dv.setUint32(0x24c, payload.length, true);
  img.set(payload, 1024 + 0x100);
  return img;
}

test('vmlinux from a bzImage payload: gzip decoded, other compressions named', () => {
  const elf = new Uint8Array(64);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  const gz = gzipSync(elf);
  const padded = new Uint8Array(Math.ceil(gz.length / 16) * 16);
  padded.set(gz);
  assert.deepEqual(vmlinuxFromBzImage(bzImageWithPayload(padded.subarray(0, gz.length)).subarray(0), RAM).subarray(0, 7), elf.subarray(0, 7));
  const zstd = new Uint8Array(16);
  zstd.set([0x28, 0xb5, 0x2f, 0xfd]);
  assert.throws(
    () => vmlinuxFromBzImage(bzImageWithPayload(zstd), RAM),
    (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_UNSUPPORTED' && /zstd \(magic 28 b5 2f fd\)/.test(e.message),
  );
});

test("vmlinux decoded from Debian's bzImage equals the xz tool's output", (t) => {
  const kernel = findGuestKernel();
  if (!kernel?.vmlinux) {
    t.skip(`no cached kernel and vmlinux: run ${FETCH_GUEST_KERNEL_SCRIPT}`);
    return;
  }
  const elf = vmlinuxFromBzImage(new Uint8Array(readFileSync(kernel.vmlinuz)), RAM);
  assert.ok(Buffer.from(elf).equals(readFileSync(kernel.vmlinux)));
  assert.ok(findPvhEntry(elf) !== undefined);
});
