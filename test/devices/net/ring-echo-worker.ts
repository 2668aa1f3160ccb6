/**
 * A vCPU thread stand-in for frame-ring.test.ts: a RingNetBackend polled only when kicked (the
 * thread never returns to its event loop, as the board's run loop does not), echoing every frame
 * it receives, holding echoes while send() says the ring is full (as the device stops taking
 * transmit chains), until it has echoed `count` frames.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RingNetBackend, type NetRings } from '../../../src/devices/net/frame-ring.js';

const { rings, kick, count } = workerData as { rings: NetRings; kick: SharedArrayBuffer; count: number };
const kickWord = new Int32Array(kick);
const backend = new RingNetBackend(rings, 'test wire');
const held: Uint8Array[] = [];
let full = false;
let echoed = 0;
let writables = 0;
let closedWith: string | null | undefined;

function flush(): void {
  while (!full && held.length > 0) {
    const f = held.shift()!;
    echoed++;
    if (!backend.send(f)) full = true;
  }
}

backend.attach({
  frame: (f) => {
    held.push(new Uint8Array(f));
    flush();
  },
  writable: () => {
    writables++;
    full = false;
    flush();
  },
  closed: (reason) => {
    closedWith = reason;
  },
});

const deadline = Date.now() + 60_000; // a bound on a failing test
while (closedWith === undefined && Date.now() < deadline) {
  Atomics.wait(kickWord, 0, 0, 50);
  if (Atomics.exchange(kickWord, 0, 0) !== 0) backend.poll();
}
parentPort!.postMessage({ echoed, writables, closedWith: closedWith ?? 'timed out', held: held.length, count });
