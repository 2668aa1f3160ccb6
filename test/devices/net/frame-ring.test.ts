import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { FrameRing, NetBridgeHost, RingNetBackend, createNetRings } from '../../../src/devices/net/frame-ring.js';
import { MemoryNetBackend, NET_MAX_FRAME } from '../../../src/devices/net/net-backend.js';
import { FrameCollector } from './frames.js';

function pattern(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
}

const SMALL = 1 << 18; // the smallest ring: room for two largest frames

test('frame ring: frames in order across the wrap, refused when full, sizes checked', () => {
  const ring = new FrameRing(SMALL);
  const into = new Uint8Array(NET_MAX_FRAME);
  let seed = 0;
  for (let round = 0; round < 20; round++) {
    // 4 + 65550, 4 + 60, 4 + 65550, 4 + 1514, 4 + 65550 bytes fit in 2^18; 4 + 65543 more do not.
    const sizes = [NET_MAX_FRAME, 60, NET_MAX_FRAME, 1514, NET_MAX_FRAME, NET_MAX_FRAME - 7];
    const pushed: Uint8Array[] = [];
    for (const s of sizes) {
      const f = pattern(s, seed++);
      if (!ring.push(f)) break;
      pushed.push(f);
    }
    assert.equal(pushed.length, 5, `round ${round}`);
    for (const f of pushed) {
      const n = ring.shift(into);
      assert.deepEqual(into.subarray(0, n), f);
    }
    assert.equal(ring.shift(into), -1);
    assert.equal(ring.used, 0);
  }
  assert.throws(() => ring.push(new Uint8Array(NET_MAX_FRAME + 1)), /larger than 65550/);
  assert.throws(() => new FrameRing(1 << 17), /at least/);
  assert.throws(() => new FrameRing(3 << 17), /power of two/);
});

test('bridge on one thread: frames both ways, the device told to wait and then writable, the end passed on', async () => {
  const rings = createNetRings(SMALL);
  const device = new RingNetBackend(rings);
  const fromHost = new FrameCollector();
  device.attach(fromHost);
  const [hostEnd, peer] = MemoryNetBackend.pair({ record: false });
  const atPeer = new FrameCollector();
  peer.attach(atPeer);
  let kicks = 0;
  const ended: (string | null)[] = [];
  const bridge = new NetBridgeHost(hostEnd, rings, () => { kicks++; queueMicrotask(() => device.poll()); }, (r) => ended.push(r));
  // Host to guest: a kick per burst, not per frame.
  for (let i = 0; i < 5; i++) peer.send(pattern(100 + i, i));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(fromHost.frames, [0, 1, 2, 3, 4].map((i) => pattern(100 + i, i)));
  assert.equal(kicks, 1);
  // Guest to host: the device may send until less than a largest frame's room is left.
  let sent = 0;
  while (device.send(pattern(NET_MAX_FRAME, sent))) sent++;
  sent++;
  assert.equal(sent, 3, 'a 256 KiB ring keeps room for one more largest frame');
  assert.equal(fromHost.writables, 0);
  await atPeer.waitFor(() => atPeer.frames.length === sent, 'the frames at the peer');
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(fromHost.writables, 1, 'room again: the device hears of it');
  assert.deepEqual(atPeer.frames.map((f) => f[0]), [0, 1, 2].map((s) => pattern(NET_MAX_FRAME, s)[0]));
  // A frame the ring cannot take is dropped and counted (the device would drop it too).
  hostEnd.inject(new Uint8Array(NET_MAX_FRAME + 1));
  assert.equal(bridge.counters.dropped, 1);
  // The backend ends: the device hears of it at the next poll.
  peer.fail('peer gone'); // only the peer's side; end the host's side too
  hostEnd.fail('the network went away');
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(ended, ['the network went away']);
  assert.deepEqual(fromHost.closedWith, ['the host side of the network ended']);
  await bridge.stop();
});

test('bridge across threads: a vCPU-like thread polled only on kicks echoes 3000 frames in order through a backend that fills up', async () => {
  const COUNT = 3000;
  // The guest's ring holds a whole burst; the host's is small, so the device has to wait for room.
  const rings = { toHost: new FrameRing(SMALL).buffer, toGuest: new FrameRing(1 << 22).buffer };
  const kick = new SharedArrayBuffer(4);
  const kickWord = new Int32Array(kick);
  const [hostEnd, peer] = MemoryNetBackend.pair({ limit: 4, record: false });
  const atPeer = new FrameCollector();
  peer.attach({
    frame: (f) => {
      atPeer.frame(f);
      setImmediate(() => hostEnd.drain()); // the backend empties a little later: it fills now and then
    },
    writable: () => {},
    closed: () => {},
  });
  const bridge = new NetBridgeHost(hostEnd, rings, () => { Atomics.store(kickWord, 0, 1); Atomics.notify(kickWord, 0); });
  const worker = new Worker(new URL('./ring-echo-worker.js', import.meta.url), { workerData: { rings, kick, count: COUNT } });
  const result = new Promise<{ echoed: number; writables: number; closedWith: string | null; held: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const size = (i: number): number => (i % 10 === 9 ? NET_MAX_FRAME : 14 + ((i * 37) % 1500));
  for (let i = 0; i < COUNT; i += 50) {
    for (let j = i; j < i + 50; j++) peer.send(pattern(size(j), j));
    await atPeer.waitFor(() => atPeer.frames.length >= i + 50, `echoes of frames up to ${i + 50}`, 30_000);
  }
  assert.equal(bridge.counters.dropped, 0);
  atPeer.frames.forEach((f, i) => assert.deepEqual(f, pattern(size(i), i), `frame ${i}`));
  hostEnd.fail('done');
  const r = await result;
  await worker.terminate();
  assert.equal(r.echoed, COUNT);
  assert.equal(r.held, 0);
  assert.equal(r.closedWith, 'the host side of the network ended');
  assert.ok(r.writables > 0, 'the device was told to wait and then writable at least once');
});
