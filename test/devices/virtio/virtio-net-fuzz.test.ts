import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NetFuzzer, fuzzVirtioNet } from './net-fuzz.js';

/**
 * Malformed and half-formed chains through virtio-mmio + virtio-net, with a backend that fills,
 * drains and goes away. CI runs TSVMM_VIRTIO_FUZZ_CHAINS chains (default 200,000, a few seconds).
 */
const CHAINS = Number(process.env.TSVMM_VIRTIO_FUZZ_CHAINS ?? 200_000);
const MiB = 1 << 20;

test(`net fuzz: ${CHAINS} chains, no host exception, bounded memory, every kind of outcome seen`, () => {
  assert.ok(Number.isSafeInteger(CHAINS) && CHAINS > 0, 'TSVMM_VIRTIO_FUZZ_CHAINS is a positive integer');
  fuzzVirtioNet(20_000, 99); // warm up the JIT and the heap before measuring
  const rssBefore = process.memoryUsage().rss;
  const r = fuzzVirtioNet(CHAINS, 1);
  const growth = process.memoryUsage().rss - rssBefore;
  assert.equal(r.exceptions, 0, r.firstException ?? '');
  assert.ok(growth < 64 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
  assert.equal(r.chains, CHAINS);
  assert.equal(r.badLengths, 0, 'the backend only gets frames of possible lengths');
  const seen = JSON.stringify(r);
  assert.ok(r.txFrames > 0 && r.txErrors > 0 && r.txOversize > 0 && r.txDropped > 0, seen);
  assert.ok(r.rxFrames > 0 && r.rxTooBig > 0 && r.rxDropped > 0 && r.rxErrors > 0, seen);
  assert.ok(r.resets > CHAINS / 20, seen);
});

test('net fuzz is deterministic for a seed', () => {
  const a = new NetFuzzer(5);
  const b = new NetFuzzer(5);
  for (let i = 0; i < 2000; i++) {
    a.step();
    b.step();
  }
  assert.deepEqual(a.finish(), b.finish());
  assert.deepEqual(a.ram, b.ram);
});
