import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { findGuestBusybox, findGuestKernel, FETCH_GUEST_KERNEL_SCRIPT, guestCacheDir } from '../../src/loader/guest-kernels.js';
import { REPO_ROOT, withTempDir } from '../helpers/tools.js';

function withGuestsDir(fn: (dir: string) => void): void {
  withTempDir((dir) => {
    const saved = process.env['TSVMM_GUESTS_DIR'];
    process.env['TSVMM_GUESTS_DIR'] = dir;
    try {
      fn(dir);
    } finally {
      if (saved === undefined) delete process.env['TSVMM_GUESTS_DIR'];
      else process.env['TSVMM_GUESTS_DIR'] = saved;
    }
  });
}

test('findGuestKernel reads guests.env, falls back to an extracted package, else undefined', () => {
  withGuestsDir((dir) => {
    assert.equal(guestCacheDir(), dir);
    assert.equal(findGuestKernel(), undefined);
    assert.equal(findGuestBusybox(), undefined);
    // An extracted package without a manifest (an interrupted run).
    mkdirSync(join(dir, 'linux-image-6.1.0-9-amd64', 'boot'), { recursive: true });
    writeFileSync(join(dir, 'linux-image-6.1.0-9-amd64', 'boot', 'vmlinuz-6.1.0-9-amd64'), 'MZ');
    assert.deepEqual(findGuestKernel(), { vmlinuz: join(dir, 'linux-image-6.1.0-9-amd64/boot/vmlinuz-6.1.0-9-amd64'), version: '6.1.0-9-amd64' });
    // The manifest wins; entries whose files are missing are left out.
    mkdirSync(join(dir, 'bb', 'bin'), { recursive: true });
    writeFileSync(join(dir, 'bb', 'bin', 'busybox'), 'ELF');
    writeFileSync(
      join(dir, 'guests.env'),
      'KERNEL_VERSION=6.1.0-9-amd64\nVMLINUZ=linux-image-6.1.0-9-amd64/boot/vmlinuz-6.1.0-9-amd64\nVMLINUX=linux-image-6.1.0-9-amd64/vmlinux\nBUSYBOX=bb/bin/busybox\n',
    );
    assert.deepEqual(findGuestKernel(), { vmlinuz: join(dir, 'linux-image-6.1.0-9-amd64/boot/vmlinuz-6.1.0-9-amd64'), version: '6.1.0-9-amd64' });
    assert.equal(findGuestBusybox(), join(dir, 'bb/bin/busybox'));
  });
});

test(`${FETCH_GUEST_KERNEL_SCRIPT} is idempotent: a second run only prints the cached paths`, (t) => {
  const kernel = findGuestKernel();
  if (!kernel || !findGuestBusybox()) {
    t.skip(`no cached guests: run ${FETCH_GUEST_KERNEL_SCRIPT}`);
    return;
  }
  const manifest = join(guestCacheDir(), 'guests.env');
  const before = statSync(manifest).mtimeMs;
  const r = spawnSync(join(REPO_ROOT, FETCH_GUEST_KERNEL_SCRIPT), { encoding: 'utf8', timeout: 30_000, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', 'nothing downloaded');
  assert.ok(r.stdout.includes(`VMLINUZ=${kernel.vmlinuz}\n`), r.stdout);
  assert.ok(r.stdout.includes(`KERNEL_VERSION=${kernel.version}\n`), r.stdout);
  assert.equal(statSync(manifest).mtimeMs, before, 'guests.env untouched');
});
