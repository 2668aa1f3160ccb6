import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlkFuzzer, fuzzVirtioBlk } from './fuzz.js';

/**
 * Malformed and half-formed chains through virtio-mmio + virtio-blk. CI runs
 * TSVMM_VIRTIO_FUZZ_CHAINS chains (default 200,000, a few seconds); set it to 1000000 for the
 * long run, or use `npm run bench -- virtio-fuzz`.
 */
const CHAINS = Number(process.env.TSVMM_VIRTIO_FUZZ_CHAINS ?? 200_000);
const MiB = 1 << 20;

test(`fuzz: ${CHAINS} chains, no host exception, bounded memory, every kind of outcome seen`, () => {
  assert.ok(Number.isSafeInteger(CHAINS) && CHAINS > 0, 'TSVMM_VIRTIO_FUZZ_CHAINS is a positive integer');
  fuzzVirtioBlk(20_000, 99); // warm up the JIT and the heap before measuring
  const rssBefore = process.memoryUsage().rss;
  const r = fuzzVirtioBlk(CHAINS, 1);
  const growth = process.memoryUsage().rss - rssBefore;
  assert.equal(r.exceptions, 0, r.firstException ?? '');
  assert.ok(growth < 64 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
  assert.equal(r.chains, CHAINS);
  // The mix exercises both paths: completions of every status, and DEVICE_NEEDS_RESET + reset.
  assert.ok(r.ok > 0 && r.ioerr > 0 && r.unsupp > 0, JSON.stringify(r));
  assert.ok(r.resets > CHAINS / 10, JSON.stringify(r));
});

test('fuzz is deterministic for a seed', () => {
  const a = new BlkFuzzer(5);
  const b = new BlkFuzzer(5);
  for (let i = 0; i < 2000; i++) {
    a.step();
    b.step();
  }
  assert.deepEqual(a.finish(), b.finish());
  assert.deepEqual(a.ram, b.ram);
});
