// RingBacklog.canTake, the question a flow-controlled producer (the agent's virtio-console port)
// asks before handing over output: yes only when write() would drop nothing; a no asks the
// consumer to report the room its next read makes, which is when the producer asks again.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteRing, RingBacklog } from '../../src/vmm/byte-ring.js';

test('RingBacklog.canTake: yes while ring and backlog have room; a no raises WAITING; yes again after the consumer reads', () => {
  const ring = new ByteRing(16);
  const backlog = new RingBacklog(ring, 8);
  assert.equal(backlog.canTake(24), true, 'ring (16) and backlog (8) are free');
  assert.equal(backlog.canTake(1000), true, 'both empty: nothing would make more room, so it is taken (and the excess dropped)');
  assert.equal(ring.takeWaiting(), false, 'a yes asks for nothing');
  backlog.write(new Uint8Array(20).fill(1)); // 16 in the ring, 4 waiting
  assert.equal(backlog.length, 4);
  ring.takeWaiting(); // (the offer that did not fit raised it)
  assert.equal(backlog.canTake(4), true);
  assert.equal(backlog.canTake(5), false, 'only 4 bytes of backlog left');
  assert.equal(ring.takeWaiting(), true, 'the no asked the consumer to report room');
  assert.equal(ring.read(10).length, 10);
  backlog.flush();
  assert.equal(backlog.length, 0);
  assert.equal(backlog.canTake(5), true);
  assert.equal(backlog.canTake(6 + 8), true, 'the ring holds 10 (6 left of 16, 4 flushed): 6 free, and the backlog 8');
  assert.equal(backlog.canTake(15), false);
  assert.equal(backlog.dropped, 0);
});
