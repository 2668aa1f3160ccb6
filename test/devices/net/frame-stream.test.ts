import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { FrameDecoder, StreamNetBackend, encodeFrame } from '../../../src/devices/net/frame-stream.js';
import { NetBridgeHost, RingNetBackend, createNetRings } from '../../../src/devices/net/frame-ring.js';
import { NET_MAX_FRAME } from '../../../src/devices/net/net-backend.js';
import { tempDir } from '../../helpers/tools.js';
import { FrameCollector } from './frames.js';

function pattern(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 13 + seed) & 0xff);
}

test('framing: 4-byte big-endian length, then the frame', () => {
  assert.deepEqual([...encodeFrame(Uint8Array.from([0xaa, 0xbb, 0xcc]))], [0, 0, 0, 3, 0xaa, 0xbb, 0xcc]);
  assert.deepEqual([...encodeFrame(new Uint8Array(0x1234)).subarray(0, 4)], [0, 0, 0x12, 0x34]);
});

test('decoder: frames whole, split at every byte, several per chunk, empty ones, the largest allowed', () => {
  const frames = [pattern(60, 1), pattern(0, 0), pattern(1514, 2), pattern(NET_MAX_FRAME, 3), pattern(14, 4)];
  const stream = Buffer.concat(frames.map(encodeFrame));
  for (const chunkSize of [1, 3, 4, 5, 1000, 65536, stream.length]) {
    const got: number[][] = [];
    const d = new FrameDecoder((f) => got.push([...f]));
    for (let at = 0; at < stream.length; at += chunkSize) assert.equal(d.push(stream.subarray(at, at + chunkSize)), null);
    assert.deepEqual(got, frames.map((f) => [...f]), `chunks of ${chunkSize}`);
    assert.equal(d.partial, 0);
  }
});

test('decoder: a length above NET_MAX_FRAME is an error as soon as its 4 bytes are in', () => {
  for (const length of [NET_MAX_FRAME + 1, 65562 + 1, 0xffff_ffff]) {
    let frames = 0;
    const d = new FrameDecoder(() => frames++);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(length);
    assert.equal(d.push(head.subarray(0, 3)), null);
    assert.match(d.push(head.subarray(3)) ?? '', new RegExp(`frame length ${length} from the peer is larger than ${NET_MAX_FRAME}`));
    assert.equal(frames, 0);
  }
});

/** A connected pair of stream sockets over a UNIX socket in a temporary directory. */
async function socketPair(dir: string): Promise<[Socket, Socket]> {
  const path = join(dir, 's');
  const server = createServer();
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const client = connect(path);
  const peer = await accepted;
  server.close();
  return [client, peer];
}

test('StreamNetBackend: frames both ways; a peer breaking the framing ends it with the reason', async (t) => {
  const [ours, peer] = await socketPair(tempDir(t));
  const backend = new StreamNetBackend(ours, 'test peer');
  const rx = new FrameCollector();
  backend.attach(rx);
  const fromUs: Buffer[] = [];
  const all = new Promise<void>((resolve) => peer.on('data', (d: Buffer) => {
    fromUs.push(d);
    if (Buffer.concat(fromUs).length >= 64) resolve();
  }));
  assert.equal(backend.send(pattern(60, 9)), true);
  peer.write(Buffer.concat([encodeFrame(pattern(100, 1)), encodeFrame(pattern(2000, 2))]));
  await rx.waitFor((f) => f.length === 2000, 'the second frame');
  assert.deepEqual(rx.frames.map((f) => f.length), [100, 2000]);
  assert.deepEqual(rx.frames[1], pattern(2000, 2));
  await all;
  assert.deepEqual([...Buffer.concat(fromUs)], [...encodeFrame(pattern(60, 9))]);
  peer.write(Buffer.from([0x00, 0x01, 0x00, 0x0f])); // 65551: one byte too long
  assert.match((await rx.waitClosed()) ?? '', /frame length 65551 from the peer is larger than 65550/);
  assert.equal(backend.send(pattern(60, 1)), true, 'dropped after the end');
  peer.destroy();
});

test('StreamNetBackend: backpressure: send() says no above the socket\'s mark, writable() once the peer reads', async (t) => {
  const [ours, peer] = await socketPair(tempDir(t));
  peer.pause(); // the peer reads nothing for now
  const backend = new StreamNetBackend(ours, 'slow peer');
  const rx = new FrameCollector();
  backend.attach(rx);
  let sent = 0;
  while (backend.send(pattern(NET_MAX_FRAME, sent))) {
    sent++;
    assert.ok(sent < 1000, 'the socket never filled');
  }
  assert.equal(rx.writables, 0);
  peer.resume();
  await new Promise<void>((resolve) => ours.once('drain', () => setImmediate(resolve)));
  assert.equal(rx.writables, 1);
  await backend.close();
  assert.deepEqual(rx.closedWith, [null]);
  peer.destroy();
});

test('StreamNetBackend: the peer closing ends the backend with a reason', async (t) => {
  const [ours, peer] = await socketPair(tempDir(t));
  const backend = new StreamNetBackend(ours, 'test peer');
  const rx = new FrameCollector();
  backend.attach(rx);
  peer.end();
  assert.match((await rx.waitClosed()) ?? '', /test peer closed the connection/);
});

/** A deterministic generator (xorshift32) so that a failing chunking can be replayed. */
function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x % n;
  };
}

/** Frames numbered in their first 4 bytes, of sizes from the smallest to the largest. */
function numbered(count: number, random: (n: number) => number): Uint8Array[] {
  const sizes = [14, 60, 1514, 9000, NET_MAX_FRAME, 0];
  return Array.from({ length: count }, (_, i) => {
    const size = i % 7 === 6 ? 14 + random(NET_MAX_FRAME - 13) : sizes[i % sizes.length]!;
    const f = pattern(Math.max(size, 4), i);
    new DataView(f.buffer).setUint32(0, i);
    return f;
  });
}

test('decoder: random chunkings (1-byte reads, lengths split anywhere, many frames per chunk) give back every frame intact and in order', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const random = rng(seed);
    const frames = numbered(60, random);
    const stream = Buffer.concat(frames.map(encodeFrame));
    const got: Uint8Array[] = [];
    const d = new FrameDecoder((f) => got.push(new Uint8Array(f)));
    for (let at = 0; at < stream.length;) {
      const pick = random(4);
      const n = pick === 0 ? 1 : pick === 1 ? 1 + random(7) : pick === 2 ? 1 + random(3000) : 1 + random(300_000);
      assert.equal(d.push(stream.subarray(at, at + n)), null);
      at += n;
    }
    assert.equal(got.length, frames.length, `seed ${seed}`);
    got.forEach((f, i) => assert.deepEqual(f, frames[i], `seed ${seed}, frame ${i}`));
    assert.equal(d.partial, 0);
  }
});

test('StreamNetBackend: a peer writing in adversarial pieces (single bytes, split lengths, bursts) loses or corrupts nothing', async (t) => {
  const [ours, peer] = await socketPair(tempDir(t));
  const backend = new StreamNetBackend(ours, 'choppy peer');
  const rx = new FrameCollector();
  backend.attach(rx);
  const random = rng(7);
  const frames = numbered(200, random);
  const stream = Buffer.concat(frames.map(encodeFrame));
  for (let at = 0; at < stream.length;) {
    const n = random(3) === 0 ? 1 + random(5) : 1 + random(200_000);
    peer.write(stream.subarray(at, at + n));
    at += n;
    if (random(4) === 0) await new Promise((resolve) => setImmediate(resolve)); // separate reads on our side
  }
  await rx.waitFor(() => rx.frames.length === frames.length, 'every frame');
  rx.frames.forEach((f, i) => assert.deepEqual(f, frames[i], `frame ${i}`));
  await backend.close();
  peer.destroy();
});

test('StreamNetBackend under the ring bridge: a peer that reads slowly (the socket would block) gets every guest frame, whole and in order', async (t) => {
  const [ours, peer] = await socketPair(tempDir(t));
  const rings = createNetRings(1 << 18);
  const device = new RingNetBackend(rings);
  const deviceRx = new FrameCollector();
  device.attach(deviceRx);
  const backend = new StreamNetBackend(ours, 'slow peer');
  const bridge = new NetBridgeHost(backend, rings, () => queueMicrotask(() => device.poll()));
  t.after(async () => {
    await bridge.stop();
    await backend.close();
    peer.destroy();
  });
  const random = rng(11);
  const frames = numbered(400, random); // about 10 MB: many times the socket's buffer
  const got: Uint8Array[] = [];
  const decoder = new FrameDecoder((f) => got.push(new Uint8Array(f)));
  peer.on('data', (d: Buffer) => assert.equal(decoder.push(d), null));
  // The peer stalls and resumes at random, so the socket's buffer fills (EAGAIN) again and again.
  let stalls = 0;
  const timer = setInterval(() => {
    if (peer.isPaused()) peer.resume();
    else if (random(2) === 0) { peer.pause(); stalls++; }
  }, 2);
  t.after(() => clearInterval(timer));
  let next = 0;
  let waits = 0;
  while (next < frames.length) {
    // The device's side: send until told to wait, then wait for writable() (as virtio-net does).
    const before = deviceRx.writables;
    while (next < frames.length && device.send(frames[next++]!));
    if (next < frames.length || deviceRx.writables === before) {
      waits++;
      while (deviceRx.writables === before && next < frames.length) await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
  const deadline = Date.now() + 20_000; // a bound on a failing test
  while (got.length < frames.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  clearInterval(timer);
  peer.resume();
  assert.ok(waits > 0 && stalls > 0, `the sender had to wait (${waits}) and the peer stalled (${stalls})`);
  assert.equal(got.length, frames.length, 'every frame reached the peer');
  got.forEach((f, i) => assert.deepEqual(f, frames[i], `frame ${i}`));
  assert.equal(bridge.counters.toHost, frames.length);
});
