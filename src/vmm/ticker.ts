/**
 * The ticker: a thread that kicks a vCPU when the board's next timer deadline passes, so that a
 * vCPU that runs without exits (the software CPU) returns to the board in time to raise timer
 * interrupts. The board publishes the deadline in shared memory; the thread sleeps until it.
 * (QEMU's timer thread kicks vCPUs the same way.)
 */
import { Worker } from 'node:worker_threads';
import { GuestClock, type GuestClockShare } from '../common/clock.js';
import type { StopHandle } from '../nvmm/backend.js';

const DEADLINE = 0; // BigInt64: the deadline in the machine's guest time (GuestClock), or NONE
const CONTROL = 0; // Int32: bumped on every change (the thread waits on it); negative = quit
const NONE = -1n;

export interface TickerData {
  words: SharedArrayBuffer;
  deadline: SharedArrayBuffer;
  stop: StopHandle;
  /** The machine's guest clock (GuestClock.share), which the deadlines are in. */
  clock: GuestClockShare;
}

export class Ticker {
  private readonly words = new Int32Array(new SharedArrayBuffer(4));
  private readonly deadline = new BigInt64Array(new SharedArrayBuffer(8));
  private readonly worker: Worker;

  constructor(stop: StopHandle, clock: GuestClock) {
    Atomics.store(this.deadline, DEADLINE, NONE);
    const data: TickerData = { words: this.words.buffer as SharedArrayBuffer, deadline: this.deadline.buffer as SharedArrayBuffer, stop, clock: clock.share };
    this.worker = new Worker(new URL('./ticker-worker.js', import.meta.url), { workerData: data });
    this.worker.unref();
  }

  /** Publishes the next deadline (guest time), or undefined for none. */
  set(deadlineNs: number | undefined): void {
    const next = deadlineNs === undefined ? NONE : BigInt(Math.ceil(deadlineNs));
    // Compared with the shared word, not with what was last published: the thread clears it when
    // it kicks, and a deadline it kicked for early (guest time stopped meanwhile, in a pause) must
    // be published again.
    if (next === Atomics.load(this.deadline, DEADLINE)) return;
    Atomics.store(this.deadline, DEADLINE, next);
    Atomics.add(this.words, CONTROL, 1);
    Atomics.notify(this.words, CONTROL);
  }

  async close(): Promise<void> {
    Atomics.store(this.words, CONTROL, -1);
    Atomics.notify(this.words, CONTROL);
    await this.worker.terminate();
  }
}

/** The ticker thread's loop (ticker-worker.ts runs it). */
export function tickerLoop(data: TickerData, kick: (stop: StopHandle) => void): void {
  const words = new Int32Array(data.words);
  const deadline = new BigInt64Array(data.deadline);
  const clock = GuestClock.attach(data.clock);
  for (;;) {
    const seen = Atomics.load(words, CONTROL);
    if (seen < 0) return;
    const at = Atomics.load(deadline, DEADLINE);
    if (at === NONE) {
      Atomics.wait(words, CONTROL, seen);
      continue;
    }
    const wait = (Number(at) - clock.now()) / 1e6;
    if (wait > 0 && Atomics.wait(words, CONTROL, seen, wait) !== 'timed-out') continue; // the deadline moved
    if (Atomics.compareExchange(deadline, DEADLINE, at, NONE) === at) kick(data.stop);
  }
}
