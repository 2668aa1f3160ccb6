/** Choosing a backend by name (the CLI's --accel). */
import { TsvmmError } from '../common/errors.js';
import type { Backend } from '../nvmm/backend.js';
import { KvmBackend } from './kvm/kvm-backend.js';
import { CPU_MODEL_NAMES, isCpuModelName, type CpuModelName } from './soft/cpu-models.js';
import type { TraceHook } from './soft/exec.js';
import { SoftBackend } from './soft/soft-backend.js';

export type Accel = 'kvm' | 'soft' | 'auto';
export const ACCELS: readonly Accel[] = ['kvm', 'soft', 'auto'];
export type { CpuModelName } from './soft/cpu-models.js';
export { CPU_MODEL_NAMES } from './soft/cpu-models.js';

export function parseAccel(value: string): Accel {
  if (!(ACCELS as readonly string[]).includes(value)) {
    throw new TsvmmError('TSVMM_USAGE', `unknown accelerator '${value}' (expected ${ACCELS.join(', ')})`);
  }
  return value as Accel;
}

/** --cpu: a CPU model of the soft backend. */
export function parseCpuModel(value: string): CpuModelName {
  if (!isCpuModelName(value)) throw new TsvmmError('TSVMM_USAGE', `unknown CPU model '${value}' (expected ${CPU_MODEL_NAMES.join(', ')})`);
  return value;
}

export interface BackendOptions {
  /** Called with every instruction executed (the soft backend; KVM refuses). */
  trace?: TraceHook;
  /** The soft CPU's model (default `max`); KVM presents the host's processor and refuses it. */
  cpu?: CpuModelName;
}

export function openBackend(accel: Accel, opts: BackendOptions = {}): Backend {
  if (accel === 'kvm') {
    if (opts.trace) throw new TsvmmError('TSVMM_UNSUPPORTED', 'instruction tracing needs the soft backend (--accel soft)');
    if (opts.cpu) throw new TsvmmError('TSVMM_UNSUPPORTED', 'CPU models are the soft backend\'s (--accel soft); KVM presents the host\'s processor');
  }
  const soft = () => SoftBackend.open({ trace: opts.trace, cpu: opts.cpu });
  switch (accel) {
    case 'kvm':
      return KvmBackend.open();
    case 'soft':
      return soft();
    case 'auto':
      // KVM where it is usable (/dev/kvm present with every capability the backend needs), else the
      // software CPU; options only the soft backend has choose it.
      if (opts.trace || opts.cpu) return soft();
      try {
        return KvmBackend.open();
      } catch (e) {
        if (e instanceof TsvmmError) return soft();
        throw e;
      }
  }
}
