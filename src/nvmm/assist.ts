/**
 * libnvmm's assists: turn an io or memory exit into device callbacks (nvmm_assist_io,
 * nvmm_assist_mem). A callback sees one access: for a read (IN, MMIO load) it fills `data`;
 * for a write it reads `data`.
 */
import { TsvmmError } from '../common/errors.js';
import type { IoExit, MemoryExit } from './exit.js';
import type { Vcpu } from './machine.js';

/** One port access (struct nvmm_io). */
export interface IoAccess {
  port: number;
  in: boolean;
  /** 1, 2 or 4 bytes. */
  size: number;
  data: Uint8Array;
}

/** One guest-physical memory access (struct nvmm_mem). */
export interface MemAccess {
  gpa: number;
  write: boolean;
  size: number;
  data: Uint8Array;
}

export type IoCallback = (io: IoAccess) => void;
export type MemCallback = (mem: MemAccess) => void;

function lastExit<K extends 'io' | 'memory'>(vcpu: Vcpu, kind: K): K extends 'io' ? IoExit : MemoryExit {
  const exit = vcpu.exit;
  if (exit.kind !== kind) throw new TsvmmError('TSVMM_ASSIST', `assist${kind === 'io' ? 'Io' : 'Mem'} called after a '${exit.kind}' exit`);
  return exit as K extends 'io' ? IoExit : MemoryExit;
}

/**
 * Emulates the port I/O of the vCPU's last exit through `callback`, once per element (so a
 * `rep outsb` of five bytes calls it five times, in order).
 */
export function assistIo(vcpu: Vcpu, callback: IoCallback): void {
  const exit = lastExit(vcpu, 'io');
  if (!exit.data) {
    throw new TsvmmError('TSVMM_ASSIST', `the ${vcpu.machine.backend.name} backend left port ${exit.port} for instruction emulation, which this build lacks`);
  }
  // The backend has executed the instruction's memory side: only the device accesses remain.
  const size = exit.operandSize;
  const data = exit.data;
  if (data.length === size) {
    callback({ port: exit.port, in: exit.in, size, data });
    return;
  }
  for (let off = 0; off < data.length; off += size) {
    callback({ port: exit.port, in: exit.in, size, data: data.subarray(off, off + size) });
  }
}

/** Emulates the guest-physical access of the vCPU's last exit through `callback`. */
export function assistMem(vcpu: Vcpu, callback: MemCallback): void {
  const exit = lastExit(vcpu, 'memory');
  if (!exit.data) {
    throw new TsvmmError('TSVMM_ASSIST', `the ${vcpu.machine.backend.name} backend left the access at 0x${exit.gpa.toString(16)} for instruction emulation, which this build lacks`);
  }
  callback({ gpa: exit.gpa, write: exit.prot === 'write', size: exit.data.length, data: exit.data });
}
