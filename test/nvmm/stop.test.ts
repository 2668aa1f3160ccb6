// stop() from another thread ends a run that would never exit on its own (nvmm_vcpu_stop).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import type { StopHandle } from '../../src/nvmm/backend.js';
import { stopVcpu } from '../../src/nvmm/stop.js';
import { kvmOrSkip } from '../helpers/kvm.js';

test('a vCPU looping forever in a worker is stopped from the main thread, twice (kvm)', async (t) => {
  if (!kvmOrSkip(t)) return;
  const worker = new Worker(new URL('./stop-worker.js', import.meta.url));
  const messages: Record<string, unknown>[] = [];
  const next = async (key: string) => {
    for (;;) {
      const i = messages.findIndex((m) => key in m);
      if (i >= 0) return messages.splice(i, 1)[0]![key];
      messages.push(((await once(worker, 'message')) as [Record<string, unknown>])[0]);
    }
  };
  try {
    const handle = (await next('handle')) as StopHandle;
    for (let round = 0; round < 2; round++) {
      worker.postMessage('run');
      await next('running');
      await sleep(100); // well inside KVM_RUN by now
      stopVcpu(handle);
      assert.equal(await next('exit'), 'stopped');
    }
    worker.postMessage('done');
  } finally {
    await worker.terminate();
  }
});
