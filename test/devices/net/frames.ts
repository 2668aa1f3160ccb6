/** A NetReceiver for tests: keeps what a backend delivers and waits for a frame that matches. */
import type { NetReceiver } from '../../../src/devices/net/net-backend.js';

export class FrameCollector implements NetReceiver {
  readonly frames: Uint8Array[] = [];
  writables = 0;
  closedWith: (string | null)[] = [];
  private waiters: { match: (f: Uint8Array) => boolean; resolve: (f: Uint8Array) => void }[] = [];
  private closeWaiters: ((reason: string | null) => void)[] = [];

  frame(frame: Uint8Array): void {
    const copy = new Uint8Array(frame); // a copy even of a Buffer view
    this.frames.push(copy);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(copy)) return true;
      w.resolve(copy);
      return false;
    });
  }

  writable(): void {
    this.writables++;
  }

  closed(reason: string | null): void {
    this.closedWith.push(reason);
    for (const w of this.closeWaiters.splice(0)) w(reason);
  }

  /**
   * The first frame (already received or to come) that `match` accepts; rejects after
   * `timeoutMs` (a bound on a failing test, not a measurement).
   */
  waitFor(match: (f: Uint8Array) => boolean, what: string, timeoutMs = 10_000): Promise<Uint8Array> {
    const seen = this.frames.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms (${this.frames.length} other frames)`)), timeoutMs);
      this.waiters.push({ match, resolve: (f) => { clearTimeout(timer); resolve(f); } });
    });
  }

  waitClosed(timeoutMs = 10_000): Promise<string | null> {
    if (this.closedWith.length > 0) return Promise.resolve(this.closedWith[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the backend did not end within ${timeoutMs} ms`)), timeoutMs);
      this.closeWaiters.push((r) => { clearTimeout(timer); resolve(r); });
    });
  }
}
