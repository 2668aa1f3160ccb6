/**
 * The nested KVM run's reading of the outer guest's console (outer-init.sh's framing), without
 * QEMU: steps, their status and output, the heartbeat that may cut a step's line in two, and a
 * step that never ended.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseOuterOutput } from './outer-guest.js';

const M = '@@kvm-nested';

test('outer console: steps framed by begin/end, with their status, time and output', () => {
  const run = parseOuterOutput([
    `${M} outer up at 3.1 s, 2 CPUs`, `${M} kvm up at 3.9 s: Nested Paging enabled;`, `${M} kvm-hold up`,
    `${M} begin a`, 'one', 'two', `${M} end a rc=0 from 4.0 to 6.5 s`,
    `${M} begin b`, 'three', `${M} end b rc=1 from 6.5 to 7.0 s`, `${M} done at 7.1 s`,
  ].join('\n'));
  assert.equal(run.outerUpS, 3.1);
  assert.equal(run.kvmUpS, 3.9);
  assert.equal(run.done, true);
  assert.equal(run.fatal, undefined);
  assert.deepEqual(run.steps.map((s) => [s.name, s.status, s.seconds, s.output]), [['a', 0, 2.5, 'one\ntwo'], ['b', 1, 0.5, 'three']]);
});

test('outer console: a heartbeat in the middle of a step line leaves that line whole', () => {
  const run = parseOuterOutput([`${M} begin a`, `PASS te${M} beat 20.0`, 'st13 - MMIO', `${M} beat 30.0`, '2 passed, 0 failed', `${M} end a rc=0 from 1 to 2 s`].join('\n'));
  assert.equal(run.steps[0]!.output, 'PASS test13 - MMIO\n2 passed, 0 failed');
});

test('outer console: a step that never ends is fatal and shows its output tail', () => {
  const run = parseOuterOutput([`${M} begin a`, 'PASS test12', `${M} beat 40.0`].join('\n'));
  assert.equal(run.done, false);
  assert.equal(run.steps.length, 0);
  assert.match(run.fatal ?? '', /^step a did not end; its output tail:\nPASS test12/);
});
