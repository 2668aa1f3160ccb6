// The ticker thread kicks the vCPU when the board's published deadline passes. While guest time
// stands still (a paused machine) the thread, sleeping by the host's clock, kicks before the guest
// reaches the deadline and clears it; when the machine runs again the board publishes the same
// deadline, and the ticker must take it again (it once compared with what it had last published,
// and a resumed machine was never kicked for that deadline).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GuestClock } from '../../src/common/clock.js';
import { STOP_WORD } from '../../src/nvmm/stop.js';
import { Ticker } from '../../src/vmm/ticker.js';

/** Waits (bounded) for the stop word to be set, and clears it; false when it was not set in `ms`. */
function takeKick(words: Int32Array, ms: number): boolean {
  Atomics.wait(words, STOP_WORD.STOP, 0, ms);
  return Atomics.exchange(words, STOP_WORD.STOP, 0) === 1;
}

test('a deadline the ticker kicked for while guest time stood still is taken again when published again', async () => {
  const flag = new SharedArrayBuffer(3 * 4);
  const words = new Int32Array(flag);
  const clock = new GuestClock();
  const ticker = new Ticker({ flag }, clock);
  try {
    clock.stop();
    const deadline = clock.now() + 20_000_000; // 20 ms of guest time away
    ticker.set(deadline);
    assert.ok(takeKick(words, 10_000), 'kicked once the host time to the deadline passed');
    clock.start();
    ticker.set(deadline); // the board, running again, publishes the same next deadline
    assert.ok(takeKick(words, 10_000), 'kicked again for the republished deadline');
  } finally {
    await ticker.close();
  }
});
