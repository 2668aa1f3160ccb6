/** Choosing a backend by name (the CLI's --accel). */
import { TsvmmError } from '../common/errors.js';
import type { Backend } from '../nvmm/backend.js';
import { KvmBackend } from './kvm/kvm-backend.js';
import type { TraceHook } from './soft/exec.js';
import { SoftBackend } from './soft/soft-backend.js';

export type Accel = 'kvm' | 'soft' | 'auto';
export const ACCELS: readonly Accel[] = ['kvm', 'soft', 'auto'];

export function parseAccel(value: string): Accel {
  if (!(ACCELS as readonly string[]).includes(value)) {
    throw new TsvmmError('TSVMM_USAGE', `unknown accelerator '${value}' (expected ${ACCELS.join(', ')})`);
  }
  return value as Accel;
}

export interface BackendOptions {
  /** Called with every instruction executed (the soft backend; KVM refuses). */
  trace?: TraceHook;
}

export function openBackend(accel: Accel, opts: BackendOptions = {}): Backend {
  if (opts.trace && accel === 'kvm') throw new TsvmmError('TSVMM_UNSUPPORTED', 'instruction tracing needs the soft backend (--accel soft)');
  switch (accel) {
    case 'kvm':
      return KvmBackend.open();
    case 'soft':
      return SoftBackend.open({ trace: opts.trace });
    case 'auto':
      // KVM where it is usable (/dev/kvm present with every capability the backend needs), else the software CPU.
      if (opts.trace) return SoftBackend.open({ trace: opts.trace });
      try {
        return KvmBackend.open();
      } catch (e) {
        if (e instanceof TsvmmError) return SoftBackend.open({ trace: opts.trace });
        throw e;
      }
  }
}
