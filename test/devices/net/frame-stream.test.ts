import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { FrameDecoder, StreamNetBackend, encodeFrame } from '../../../src/devices/net/frame-stream.js';
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
