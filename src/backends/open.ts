/** Choosing a backend by name (the CLI's --accel). */
import { TsvmmError } from '../common/errors.js';
import type { Backend } from '../nvmm/backend.js';
import { KvmBackend } from './kvm/kvm-backend.js';
import { SoftBackend } from './soft/soft-backend.js';

export type Accel = 'kvm' | 'soft' | 'auto';
export const ACCELS: readonly Accel[] = ['kvm', 'soft', 'auto'];

export function parseAccel(value: string): Accel {
  if (!(ACCELS as readonly string[]).includes(value)) {
    throw new TsvmmError('TSVMM_USAGE', `unknown accelerator '${value}' (expected ${ACCELS.join(', ')})`);
  }
  return value as Accel;
}

export function openBackend(accel: Accel): Backend {
  switch (accel) {
    case 'kvm':
      return KvmBackend.open();
    case 'soft':
      return SoftBackend.open();
    case 'auto':
      // KVM where it is usable (/dev/kvm present with every capability the backend needs), else the software CPU.
      try {
        return KvmBackend.open();
      } catch (e) {
        if (e instanceof TsvmmError) return SoftBackend.open();
        throw e;
      }
  }
}
