// A bzImage's payload is inflated on the host for --pvh. Its output is bounded by guest RAM and
// by the size the payload declares (mkpiggy's trailer; gzip's ISIZE): a payload of zeros that is
// small on disk and inflates to a gigabyte is refused once it passes the bound, in a process
// whose memory grows by about the bound, not by the gigabyte.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TsvmmError } from '../../src/common/errors.js';
import { E820_RAM } from '../../src/loader/boot-params.js';
import { ArrayGuestMemory } from '../../src/loader/guest-memory.js';
import { vmlinuxFromBzImage } from '../../src/loader/vmlinux.js';
import { xzDecompress } from '../../src/loader/xz.js';
import { bootImage } from '../../src/vmm/boot.js';
import { evalInNode, hasTool, withTempDir } from '../helpers/tools.js';
import { craftBzImage, gzipZeros, withSizeTrailer, xzZeros } from './crafted.js';

const MiB = 1 << 20;
/** The guest RAM of these tests: what the inflated kernel must fit in. */
const RAM = 32 * MiB;

function rejects(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TsvmmError, `TsvmmError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

/**
 * Runs vmlinuxFromBzImage(image, RAM) in a fresh node process and reports the error code and how
 * much the process's peak resident memory grew during the call.
 */
function inflateInChild(image: Uint8Array): { code: string; message: string; growth: number } {
  return withTempDir((dir) => {
    const file = join(dir, 'bzImage');
    writeFileSync(file, image);
    const script = `
      import { readFileSync } from 'node:fs';
      const { vmlinuxFromBzImage } = await import(process.argv[1]);
      const image = new Uint8Array(readFileSync(process.argv[2]));
      const before = process.resourceUsage().maxRSS;
      let code = 'none', message = '';
      try { vmlinuxFromBzImage(image, Number(process.argv[3])); } catch (e) { code = e.code ?? e.name; message = e.message; }
      const growth = (process.resourceUsage().maxRSS - before) * 1024;
      process.stdout.write(JSON.stringify({ code, message, growth }));`;
    const module = fileURLToPath(new URL('../../src/loader/vmlinux.js', import.meta.url));
    return evalInNode(script, [module, file, String(RAM)]);
  });
}

test('a gzip payload inflating to 1 GiB is refused after its bound, with memory near the bound', () => {
  // 64 gzip members of 16 MiB of zeros: 1 MiB on disk; the last member's ISIZE says 16 MiB.
  const image = craftBzImage({ payload: gzipZeros(16 * MiB, 64) });
  assert.ok(image.length < 2 * MiB);
  const r = inflateInChild(image);
  assert.equal(r.code, 'TSVMM_LIMIT', r.message);
  assert.match(r.message, /inflates beyond 16777216 bytes/);
  assert.ok(r.growth < 3 * RAM, `peak memory grew by ${r.growth} bytes while inflating`);
});

test('an xz payload inflating to 512 MiB is refused after its bound, with memory near the bound', (t) => {
  if (!hasTool('xz')) return t.skip('xz not installed (apt-get install xz-utils)');
  // 32 blocks of 16 MiB of zeros, and a trailer that claims 24 MiB (it fits in RAM).
  const image = craftBzImage({ payload: withSizeTrailer(xzZeros(16 * MiB, 32), 24 * MiB) });
  assert.ok(image.length < MiB);
  const r = inflateInChild(image);
  assert.equal(r.code, 'TSVMM_LIMIT', r.message);
  assert.match(r.message, /inflates beyond 25165824 bytes/);
  assert.ok(r.growth < 3 * RAM, `peak memory grew by ${r.growth} bytes while inflating`);
});

test('a payload that declares more than guest RAM is refused before inflating', (t) => {
  if (!hasTool('xz')) return t.skip('xz not installed (apt-get install xz-utils)');
  const xz = xzZeros(MiB, 1);
  rejects(() => vmlinuxFromBzImage(craftBzImage({ payload: withSizeTrailer(xz, 0xffffffff) }), RAM), 'TSVMM_LIMIT', /declares 4294967295 bytes.*guest RAM/);
  rejects(() => vmlinuxFromBzImage(craftBzImage({ payload: withSizeTrailer(xz, RAM + 1) }), RAM), 'TSVMM_LIMIT', /declares 33554433 bytes/);
  // gzip's own ISIZE is the declared size.
  rejects(() => vmlinuxFromBzImage(craftBzImage({ payload: gzipZeros(RAM + 4096, 1) }), RAM), 'TSVMM_LIMIT', /declares 33558528 bytes/);
});

test('--pvh on a decompression bomb: bootImage refuses it against the guest RAM', () => {
  const ram = new ArrayGuestMemory(RAM);
  const e820 = [{ addr: 0, size: 0x9fc00, type: E820_RAM }, { addr: 0x100000, size: RAM - 0x100000, type: E820_RAM }];
  const kernel = craftBzImage({ payload: gzipZeros(16 * MiB, 4) });
  // The last member's ISIZE (16 MiB) fits; the 64 MiB of output does not.
  rejects(() => bootImage(ram, { kernel, cmdline: '', e820, lowRamTop: RAM, pvh: true }), 'TSVMM_LIMIT', /inflates beyond/);
  const declaredTooBig = craftBzImage({ payload: gzipZeros(RAM + 4096, 1) });
  rejects(() => bootImage(ram, { kernel: declaredTooBig, cmdline: '', e820, lowRamTop: RAM, pvh: true }), 'TSVMM_LIMIT', /declares 33558528 bytes/);
});

test('xzDecompress stops at maxBytes; a corrupt gzip payload is a bad kernel', (t) => {
  const corrupt = craftBzImage({ payload: Uint8Array.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0x40, 0, 0]) });
  rejects(() => vmlinuxFromBzImage(corrupt, RAM), 'TSVMM_BAD_KERNEL', /gzip/);
  if (!hasTool('xz')) return t.skip('xz not installed (apt-get install xz-utils)');
  const xz = xzZeros(4 * MiB, 2);
  assert.equal(xzDecompress(xz, { maxBytes: 8 * MiB }).length, 8 * MiB);
  rejects(() => xzDecompress(xz, { maxBytes: 8 * MiB - 1 }), 'TSVMM_LIMIT', /xz: .*beyond 8388607 bytes/);
  // A size hint beyond the limit does not allocate beyond it.
  rejects(() => xzDecompress(xz, { maxBytes: MiB, sizeHint: 2 ** 32 - 1 }), 'TSVMM_LIMIT', /beyond 1048576 bytes/);
});
