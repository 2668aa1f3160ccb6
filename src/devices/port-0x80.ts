/**
 * The POST-code port (0x80 on a PC): firmware and kernels write progress codes or use it as
 * an I/O delay. Writes are remembered, reads return the last value written; nothing else.
 */
import type { PortDevice } from './bus.js';

export interface Port80State {
  value: number;
}

const SIZE_MASK: Record<1 | 2 | 4, number> = { 1: 0xff, 2: 0xffff, 4: 0xffff_ffff };

export class Port80 implements PortDevice {
  private last = 0;

  /** The last value written (a POST code, for diagnostics). */
  get value(): number {
    return this.last;
  }

  read(_offset: number, size: 1 | 2 | 4): number {
    return (this.last & SIZE_MASK[size]) >>> 0;
  }

  write(_offset: number, size: 1 | 2 | 4, value: number): void {
    this.last = (value & SIZE_MASK[size]) >>> 0;
  }

  getState(): Port80State {
    return { value: this.last };
  }

  restore(state: Port80State): void {
    this.last = state.value >>> 0;
  }
}
