// Debian's Linux on the soft backend with the board's virtio devices, found through the DSDT and
// driven by Debian's own modules (loaded by guests/linux/virtio-test.sh): an ext4 image made on the
// host with mke2fs -d is mounted as /dev/vda, its file's hash checked, a new file written, synced
// and unmounted; the host then reads that file with debugfs and e2fsck finds the image clean. A
// read-only disk mounts read-only, refuses writes (EROFS through its filesystem, EPERM on the
// device) and keeps its bytes; the entropy device serves bytes;
// hvc0 is a console the host types into. A second boot, through the CLI, writes with O_DIRECT and
// fsync and reports it; the host process is killed at once, and the data is in the image.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { linuxGuest } from '../helpers/linux.js';
import { hasTool, withTempDirAsync } from '../helpers/tools.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'tsvmm.js');
const BOOT_TIMEOUT_MS = 10 * 60_000;
/** What virtio_mmio and virtio_blk need, in order (each module's .modinfo names its dependencies). */
const VIRTIO_BLK_MODULES = ['virtio_ring', 'virtio', 'virtio_mmio', 'virtio_blk'];
/** ext4 needs crc16, mbcache and jbd2, and the crc32c hash (checksums) which nothing loads for it. */
const MODULES = [...VIRTIO_BLK_MODULES, 'virtio_console', 'virtio-rng', 'crc16', 'mbcache', 'jbd2', 'crc32c_generic', 'ext4'];
const APPLETS = ['usr/bin/sha256sum', 'usr/bin/cut', 'usr/bin/tr'];
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
/** What `seq 1 20000` prints. */
const SEQ = Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join('');

function run(cmd: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'latin1' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('Linux with virtio disks, entropy and hvc0 on the soft backend: ext4 written in the guest, read by debugfs, clean for e2fsck', { timeout: BOOT_TIMEOUT_MS + 60_000 }, async (t) => {
  const guest = linuxGuest();
  if (typeof guest === 'string' || !guest.vmlinux) return t.skip(typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)');
  for (const tool of ['mke2fs', 'debugfs', 'e2fsck']) if (!hasTool(tool)) return t.skip(`${tool} not installed (e2fsprogs)`);
  await withTempDirAsync(async (dir) => {
    const src = join(dir, 'src');
    mkdirSync(src);
    const hello = randomBytes(200 * 1024);
    writeFileSync(join(src, 'hello.bin'), hello);
    const vda = join(dir, 'vda.img');
    writeFileSync(vda, new Uint8Array(16 << 20));
    const mkfs = run('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', src, vda]);
    assert.equal(mkfs.status, 0, mkfs.stderr);
    const roSrc = join(dir, 'ro');
    mkdirSync(roSrc);
    writeFileSync(join(roSrc, 'marker'), 'tsvmm-ro-marker\n');
    const vdb = join(dir, 'vdb.img');
    writeFileSync(vdb, new Uint8Array(4 << 20));
    const mkfsRo = run('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', roSrc, vdb]);
    assert.equal(mkfsRo.status, 0, mkfsRo.stderr);
    const vdbBytes = new Uint8Array(readFileSync(vdb));

    const vm = await VirtualMachine.create({
      kernel: guest.vmlinux!, initrd: guest.writeInitramfs(dir, { init: 'linux/virtio-test.sh', modules: MODULES, applets: APPLETS }),
      cmdline: 'console=ttyS0 console=hvc0', memory: 256 << 20, accel: 'soft', timeoutMs: BOOT_TIMEOUT_MS,
      drives: [{ file: vda, readonly: false, serial: 'tsvmm-vda' }, { file: vdb, readonly: true }], console: 'virtio', rng: true,
    });
    let out = '';
    vm.console.on('data', (b: Buffer) => {
      out += b.toString('latin1');
      if (/hello on hvc0, type a line/.test(out) && !out.includes('typed')) {
        out += '(typed)';
        vm.console.write('ping-42\n');
      }
    });
    vm.start();
    const exited = await vm.exited;
    const tail = `\noutput tail:\n${out.slice(-4000)}`;
    assert.deepEqual(exited.end, { how: 'poweroff' }, tail);
    const line = (what: string) => new RegExp(`tsvmm-virtio: ${what}\\r?\\n`);
    assert.doesNotMatch(out, /insmod .* failed/, tail);
    assert.match(out, line('modules loaded; disks: vda vdb '), tail);
    assert.match(out, line('vda serial: tsvmm-vda'), tail);
    assert.match(out, line('vdb read-only: 1'), tail);
    assert.match(out, line('vda mounted'), tail);
    assert.match(out, line(`hello.bin sha256: ${sha256(hello)}`), tail);
    assert.match(out, line(`new sha256: ${sha256(SEQ)}`), tail);
    assert.match(out, line('vda unmounted'), tail);
    assert.match(out, line('vdb mounted: ro'), tail);
    assert.match(out, line('vdb marker: tsvmm-ro-marker'), tail);
    assert.match(out, /tsvmm-virtio: vdb file write: .*can't create \/ro\/new: Read-only file system\r?\n/, tail);
    assert.match(out, line('vdb raw write: dd: error writing \'/dev/vdb\': Operation not permitted'), tail);
    assert.match(out, line('rng: virtio_rng.0 gave 64 bytes'), tail);
    // hvc0: what the guest writes to it comes out once (COM1 does not carry it); a kernel message
    // comes out on both consoles; the line the host typed was read from hvc0 (input goes there).
    assert.equal(out.split('tsvmm-virtio: hello on hvc0').length - 1, 1, tail);
    assert.equal(out.split('tsvmm-virtio: kernel message').length - 1, 2, tail);
    assert.match(out, line('hvc0 read \'ping-42\''), tail);
    // The devices' registers were served inside the CPU loop, not through exits.
    assert.ok(exited.inlineMmio > 0, 'inline MMIO accesses');
    assert.equal(exited.exits.memory ?? 0, 0, 'no MMIO exit');

    const cat = run('debugfs', ['-R', 'cat /new', vda]);
    assert.equal(cat.status, 0, cat.stderr);
    assert.equal(cat.stdout, SEQ);
    const fsck = run('e2fsck', ['-fn', vda]);
    assert.equal(fsck.status, 0, `e2fsck -fn: ${fsck.stdout}${fsck.stderr}`);
    assert.deepEqual(new Uint8Array(readFileSync(vdb)), vdbBytes, 'the read-only image is unchanged');
  });
});

test('a write the guest flushed is in the image when the host process is killed right after (soft, CLI)', { timeout: BOOT_TIMEOUT_MS + 60_000 }, async (t) => {
  const guest = linuxGuest();
  if (typeof guest === 'string' || !guest.vmlinux) return t.skip(typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)');
  await withTempDirAsync(async (dir) => {
    const pattern = randomBytes(256 * 1024);
    const image = join(dir, 'disk.img');
    writeFileSync(image, new Uint8Array(4 << 20));
    const initrd = guest.writeInitramfs(dir, { init: 'linux/virtio-test.sh', modules: VIRTIO_BLK_MODULES, files: { '/pattern': pattern } });
    const child = spawn(process.execPath, [BIN, 'run', '--accel', 'soft', '--kernel', guest.vmlinux!, '--initrd', initrd,
      '--append', 'console=ttyS0 tsvmm.durability', '-m', '256', '--drive', `file=${image}`, '--timeout', String(BOOT_TIMEOUT_MS / 1000)]);
    let out = '';
    let killed = false;
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString('latin1');
      if (!killed && /tsvmm-virtio: flushed 262144 bytes/.test(out)) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (b: Buffer) => (out += b.toString('latin1')));
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, sig) => resolve(sig)));
    assert.ok(killed, `the guest never reported its flush; output tail:\n${out.slice(-3000)}`);
    assert.equal(signal, 'SIGKILL');
    const bytes = readFileSync(image);
    assert.equal(sha256(bytes.subarray(1 << 20, (1 << 20) + pattern.length)), sha256(pattern), 'the flushed data is in the image');
  });
});

test('tsvmm run --drive ... --exec: the command runs in the guest through its agent; its output and status are the CLI\'s (soft)', { timeout: BOOT_TIMEOUT_MS + 60_000 }, async (t) => {
  const guest = linuxGuest();
  if (typeof guest === 'string' || !guest.vmlinux) return t.skip(typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)');
  await withTempDirAsync(async (dir) => {
    // As the README shows it: an initramfs with the virtio modules (and the agent, always there),
    // an init that only waits, a disk, and a command.
    const init = join(dir, 'init.sh');
    writeFileSync(init, '#!/bin/sh\nmount -t proc proc /proc\nmount -t sysfs sysfs /sys\nmount -t devtmpfs devtmpfs /dev\nwhile :; do sleep 1000; done\n');
    const initrd = join(dir, 'initrd.gz');
    const made = run(process.execPath, [BIN, 'initramfs', '--init', init, '--modules', 'virtio_mmio,virtio_blk,virtio_console', '-o', initrd]);
    assert.equal(made.status, 0, made.stderr);
    const image = join(dir, 'disk.img');
    const bytes = new Uint8Array(1 << 20);
    bytes.set(new TextEncoder().encode('tsvmm disk image\n'));
    writeFileSync(image, bytes);
    const child = spawn(process.execPath, [BIN, 'run', '--accel', 'soft', '--kernel', guest.vmlinux!, '--initrd', initrd, '--append', 'console=ttyS0',
      '-m', '256', '--drive', `file=${image},serial=exec-disk`, '--timeout', String(BOOT_TIMEOUT_MS / 1000),
      '--exec', 'echo "$(cat /sys/block/vda/serial)"; head -n 1 /dev/vda; echo to-stderr >&2; exit 7']);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString('latin1')));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('latin1')));
    const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    assert.equal(stdout, 'exec-disk\ntsvmm disk image\n', `stderr tail:\n${stderr.slice(-3000)}`);
    assert.equal(status, 7, `stderr tail:\n${stderr.slice(-3000)}`);
    assert.match(stderr, /to-stderr\n/);
    assert.match(stderr, /Linux version/, 'the console went to standard error');
  });
});
