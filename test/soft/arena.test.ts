// The soft CPU's arena shared between threads (src/backends/soft/arena.ts): a thread given the
// Memory allocates from the same allocator, never overlapping the owner's blocks, and a block it
// frees is reused by the others (an AP thread's vCPU state is freed when its machine ends).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { arenaAllocate, arenaFree, arenaMemory } from '../../src/backends/soft/arena.js';

const ARENA_URL = new URL('../../src/backends/soft/arena.js', import.meta.url).href;

test('arena: another thread allocates without overlap, and what it frees is reused here', async () => {
  const mine = arenaAllocate(65536);
  assert.ok(mine > 0);
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.url).then((a) => {
      a.adoptArenaMemory(workerData.memory);
      const off = a.arenaAllocate(65536);
      a.arenaFree(off, 65536);
      parentPort.postMessage(off);
    });`, { eval: true, workerData: { memory: arenaMemory(), url: ARENA_URL } });
  const [theirs] = (await once(worker, 'message')) as [number];
  await once(worker, 'exit');
  assert.ok(theirs > 0 && theirs !== mine, `the thread's block ${theirs} is not ours ${mine}`);
  assert.equal(arenaAllocate(65536), theirs, 'the block the other thread freed is reused');
  arenaFree(mine, 65536);
});
