// The kernel and initrd a user names are untrusted files: they must be regular files no larger
// than the guest's RAM. Devices (/dev/zero never ends), FIFOs (opening one blocks until a writer
// comes) and directories are refused at once with a stable code, by VirtualMachine.create before
// any thread starts and again by the board's reader on the descriptor it reads from.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { evalInNode, hasTool, withTempDirAsync } from '../helpers/tools.js';

const MiB = 1 << 20;

/** A temporary directory with a small regular file, a FIFO, a subdirectory and a sparse file of `bigBytes`. */
async function withFiles(bigBytes: number, fn: (f: { ok: string; fifo: string; dir: string; big: string }) => Promise<void>): Promise<void> {
  await withTempDirAsync(async (root) => {
    const ok = join(root, 'kernel');
    writeFileSync(ok, new Uint8Array(4096).fill(0x90));
    const fifo = join(root, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const dir = join(root, 'dir');
    mkdirSync(dir);
    const big = join(root, 'big');
    writeFileSync(big, '');
    truncateSync(big, bigBytes);
    await fn({ ok, fifo, dir, big });
  });
}

test('VirtualMachine.create refuses devices, FIFOs, directories and oversized files as kernel or initrd', async (t) => {
  if (!hasTool('mkfifo')) return t.skip('mkfifo not installed (coreutils)');
  const memory = 64 * MiB;
  await withFiles(memory + 1, async ({ ok, fifo, dir, big }) => {
    const refused = (kernel: string, initrd: string | undefined, code: string, message: RegExp) =>
      assert.rejects(VirtualMachine.create({ kernel, initrd, memory, accel: 'soft' }), (e: Error & { code?: string }) => {
        assert.equal(e.code, code, e.message);
        assert.match(e.message, message);
        return true;
      });
    await refused('/dev/zero', undefined, 'TSVMM_BAD_ARGUMENT', /kernel \/dev\/zero is a character device, not a regular file/);
    await refused(fifo, undefined, 'TSVMM_BAD_ARGUMENT', /kernel .*fifo is a FIFO, not a regular file/);
    await refused(dir, undefined, 'TSVMM_BAD_ARGUMENT', /kernel .*dir is a directory, not a regular file/);
    await refused(ok, '/dev/urandom', 'TSVMM_BAD_ARGUMENT', /initrd \/dev\/urandom is a character device/);
    await refused(ok, fifo, 'TSVMM_BAD_ARGUMENT', /initrd .*fifo is a FIFO/);
    await refused(big, undefined, 'TSVMM_LIMIT', /kernel .*big is 67108865 bytes, more than the 67108864 bytes of guest RAM/);
    await refused(ok, big, 'TSVMM_LIMIT', /initrd .*big is 67108865 bytes/);
    // A small regular file is accepted (the machine is not started).
    assert.ok(await VirtualMachine.create({ kernel: ok, initrd: ok, memory, accel: 'soft' }));
  });
});

/** readImageFile in a fresh node process (a reader that blocks must not hang the test runner). */
function readInChild(path: string, maxBytes: number): { code: string; message: string; length: number } {
  const script = `
    const { readImageFile } = await import(process.argv[1]);
    let code = 'none', message = '', length = -1;
    try { length = readImageFile(process.argv[2], 'kernel', Number(process.argv[3])).length; } catch (e) { code = e.code ?? e.name; message = e.message; }
    process.stdout.write(JSON.stringify({ code, message, length }));`;
  const module = fileURLToPath(new URL('../../src/vmm/image-file.js', import.meta.url));
  // The timeout only ends a reader that hangs (the defect), so that the test fails instead.
  return evalInNode(script, [module, path, String(maxBytes)], { timeoutMs: 60_000 });
}

test("the board's image reader refuses what is not a regular file of at most the guest's RAM", async (t) => {
  if (!hasTool('mkfifo')) return t.skip('mkfifo not installed (coreutils)');
  const max = 8 * MiB;
  await withFiles(max + 1, async ({ ok, fifo, dir, big }) => {
    for (const [path, kind] of [['/dev/zero', 'a character device'], ['/dev/urandom', 'a character device'], [fifo, 'a FIFO'], [dir, 'a directory']] as const) {
      const r = readInChild(path, max);
      assert.equal(r.code, 'TSVMM_BAD_ARGUMENT', `${path}: ${r.message}`);
      assert.match(r.message, new RegExp(`is ${kind}, not a regular file`));
    }
    const r = readInChild(big, max);
    assert.equal(r.code, 'TSVMM_LIMIT', r.message);
    assert.match(r.message, /is 8388609 bytes, more than the 8388608 bytes of guest RAM/);
    assert.deepEqual(readInChild(ok, max), { code: 'none', message: '', length: 4096 });
    assert.equal(readInChild('/nonexistent/kernel', max).code, 'TSVMM_BAD_KERNEL');
  });
});
