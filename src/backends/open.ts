/** Choosing a backend by name (the CLI's --accel). */
import { TsvmmError } from '../common/errors.js';
import type { Backend } from '../nvmm/backend.js';
import { KvmBackend } from './kvm/kvm-backend.js';
import type { TraceHook } from './soft/exec.js';
import type { SoftProfiler } from './soft/profile.js';
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
  /** Samples the boot vCPU's phases and guest RIPs (the soft backend; KVM refuses). */
  profile?: SoftProfiler;
}

export function openBackend(accel: Accel, opts: BackendOptions = {}): Backend {
  if (opts.trace && accel === 'kvm') throw new TsvmmError('TSVMM_UNSUPPORTED', 'instruction tracing needs the soft backend (--accel soft)');
  if (opts.profile && accel === 'kvm') throw new TsvmmError('TSVMM_UNSUPPORTED', 'the profiler needs the soft backend (--accel soft)');
  const soft = { trace: opts.trace, profile: opts.profile };
  switch (accel) {
    case 'kvm':
      return KvmBackend.open();
    case 'soft':
      return SoftBackend.open(soft);
    case 'auto':
      // KVM where it is usable (/dev/kvm present with every capability the backend needs), else the software CPU.
      if (opts.trace || opts.profile) return SoftBackend.open(soft);
      try {
        return KvmBackend.open();
      } catch (e) {
        if (e instanceof TsvmmError) return SoftBackend.open(soft);
        throw e;
      }
  }
}
