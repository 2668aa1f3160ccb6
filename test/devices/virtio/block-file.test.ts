import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, statSync, openSync, closeSync, fsyncSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileBlockBackend } from '../../../src/devices/virtio/block-file.js';
import { TsvmmError } from '../../../src/common/errors.js';
import * as libc from '../../../src/common/libc.js';
import {
  VIRTIO_BLK_F_RO, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES,
} from '../../../src/devices/virtio/virtio-blk.js';
import { featureBit } from '../../../src/devices/virtio/device.js';
import { tempDir } from '../../helpers/tools.js';
import { BlkHarness, segment } from './blk.js';

const MiB = 1 << 20;

function withDir(body: (dir: string, t: TestContext) => void | Promise<void>): (t: TestContext) => Promise<void> {
  return async (t) => body(tempDir(t), t);
}

function image(dir: string, name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof TsvmmError) return e.code;
    throw e;
  }
  return 'no error';
}

test('refused at open: missing, not whole sectors, a directory', withDir((dir) => {
  assert.equal(code(() => FileBlockBackend.open({ path: join(dir, 'nope.img') })), 'TSVMM_BAD_DISK');
  assert.equal(code(() => FileBlockBackend.open({ path: image(dir, 'odd.img', new Uint8Array(1000)) })), 'TSVMM_BAD_DISK');
  assert.equal(code(() => FileBlockBackend.open({ path: dir, readOnly: true })), 'TSVMM_BAD_DISK');
  assert.throws(() => FileBlockBackend.open({ path: image(dir, 'odd2.img', new Uint8Array(513)) }), /513 bytes, not a whole number of 512-byte sectors/);
}));

test('refused at open: a file the user cannot read', withDir((dir, t) => {
  const path = image(dir, 'secret.img', new Uint8Array(512));
  chmodSync(path, 0o000);
  if (process.getuid?.() === 0) {
    t.skip('running as root, which reads any file: no permission refuses the open');
    return;
  }
  assert.equal(code(() => FileBlockBackend.open({ path })), 'TSVMM_BAD_DISK');
}));

test('a second opener is refused while the image is in use (exclusive for writers, shared for readers)', withDir((dir) => {
  const path = image(dir, 'disk.img', new Uint8Array(MiB));
  const first = FileBlockBackend.open({ path });
  try {
    assert.equal(code(() => FileBlockBackend.open({ path })), 'TSVMM_BUSY');
    assert.equal(code(() => FileBlockBackend.open({ path, readOnly: true })), 'TSVMM_BUSY');
  } finally {
    first.close();
  }
  const r1 = FileBlockBackend.open({ path, readOnly: true });
  const r2 = FileBlockBackend.open({ path, readOnly: true });
  assert.equal(code(() => FileBlockBackend.open({ path })), 'TSVMM_BUSY');
  r1.close();
  r2.close();
  FileBlockBackend.open({ path }).close();
}));

test('through the device: writes land in the file, reads come from it, FLUSH and GET_ID complete', withDir((dir) => {
  const path = image(dir, 'disk.img', new Uint8Array(MiB));
  const backend = FileBlockBackend.open({ path, id: 'serial-42' });
  try {
    const h = new BlkHarness(backend).probe();
    const data = Uint8Array.from({ length: 8192 }, (_, i) => (i * 13) & 0xff);
    assert.equal(h.request(VIRTIO_BLK_T_OUT, 16, data, 0).status, VIRTIO_BLK_S_OK);
    assert.equal(h.request(VIRTIO_BLK_T_FLUSH, 0, null, 0).status, VIRTIO_BLK_S_OK);
    assert.deepEqual(readFileSync(path).subarray(16 * 512, 16 * 512 + 8192), Buffer.from(data));
    const r = h.request(VIRTIO_BLK_T_IN, 16, null, 8192);
    assert.deepEqual(r.data, data);
    assert.equal(new TextDecoder().decode(h.request(VIRTIO_BLK_T_GET_ID, 0, null, 20).data).replace(/\0+$/, ''), 'serial-42');
  } finally {
    backend.close();
  }
}));

test('read-only: opened read-only, VIRTIO_BLK_F_RO offered, writes fail and the file is unchanged', withDir((dir) => {
  const before = Uint8Array.from({ length: 4096 }, (_, i) => i & 0xff);
  const path = image(dir, 'ro.img', before);
  const backend = FileBlockBackend.open({ path, readOnly: true });
  try {
    const h = new BlkHarness(backend).probe();
    assert.notEqual(h.transport.features & featureBit(VIRTIO_BLK_F_RO), 0n);
    assert.equal(h.request(VIRTIO_BLK_T_OUT, 0, new Uint8Array(512), 0).status, VIRTIO_BLK_S_IOERR);
    assert.equal(backend.write(0, [new Uint8Array(512)]), 'io-error');
    assert.deepEqual(h.request(VIRTIO_BLK_T_IN, 0, null, 4096).data, before);
    assert.deepEqual(new Uint8Array(readFileSync(path)), before);
  } finally {
    backend.close();
  }
}));

/** Whether this filesystem punches holes (tmpfs, ext4, xfs, btrfs do; some overlay setups do not). */
function punchHoleWorks(dir: string): boolean {
  const path = image(dir, 'probe', new Uint8Array(64 * 1024).fill(1));
  const fd = openSync(path, 'r+');
  try {
    return libc.fallocate(fd, libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE, 0, 4096) === 0;
  } finally {
    closeSync(fd);
  }
}

test('DISCARD and WRITE_ZEROES punch holes: zeros read back, the size stays, fewer blocks', withDir((dir, t) => {
  const path = image(dir, 'sparse.img', new Uint8Array(MiB).fill(0xab));
  const fd = openSync(path, 'r+');
  fsyncSync(fd);
  closeSync(fd);
  const punches = punchHoleWorks(dir);
  const blocksBefore = statSync(path).blocks;
  const backend = FileBlockBackend.open({ path });
  try {
    const h = new BlkHarness(backend).probe();
    assert.equal(h.request(VIRTIO_BLK_T_DISCARD, 0, segment(256, 512), 0).status, VIRTIO_BLK_S_OK); // 256 KiB at 128 KiB
    assert.equal(h.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, segment(1024, 256, 1), 0).status, VIRTIO_BLK_S_OK); // unmap allowed
    assert.equal(h.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, segment(1536, 8, 0), 0).status, VIRTIO_BLK_S_OK); // kept allocated
    const file = readFileSync(path);
    assert.equal(file.length, MiB);
    assert.ok(file.subarray(1024 * 512, 1280 * 512).every((b) => b === 0));
    assert.ok(file.subarray(1536 * 512, 1544 * 512).every((b) => b === 0));
    assert.equal(file[1280 * 512], 0xab);
    assert.equal(file[1544 * 512], 0xab);
    if (punches) {
      assert.ok(file.subarray(256 * 512, 768 * 512).every((b) => b === 0), 'a punched hole reads as zeros');
      assert.ok(statSync(path).blocks < blocksBefore, `blocks ${statSync(path).blocks} < ${blocksBefore}`);
    }
  } finally {
    backend.close();
  }
  if (!punches) t.skip(`the filesystem of ${tmpdir()} does not punch holes (fallocate PUNCH_HOLE failed): zeros were checked, the block count was not`);
}));
