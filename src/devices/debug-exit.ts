/**
 * QEMU's isa-debug-exit: a write of V ends the machine with exit status (V << 1) | 1, so a
 * guest test can never exit 0 by accident (status 1 means "wrote 0"). The board places it
 * (conventionally port 0x501); the device sees offset 0 only. Reads float.
 */
import type { PortDevice } from './bus.js';

export interface DebugExitOptions {
  /** The guest asked to exit with this status. */
  onExit: (status: number) => void;
}

export class DebugExit implements PortDevice {
  private readonly onExit: (status: number) => void;

  constructor(opts: DebugExitOptions) {
    this.onExit = opts.onExit;
  }

  read(_offset: number, size: 1 | 2 | 4): number {
    return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffff_ffff;
  }

  write(offset: number, _size: 1 | 2 | 4, value: number): void {
    if (offset !== 0) return;
    this.onExit((value >>> 0) * 2 + 1); // (V << 1) | 1 without 32-bit overflow
  }

  /** Stateless: nothing to migrate. */
  getState(): Record<string, never> {
    return {};
  }

  restore(_state: Record<string, never>): void {}
}
