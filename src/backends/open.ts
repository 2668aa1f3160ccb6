/** Choosing a backend by name (the CLI's --accel). */
import { TsvmmError } from '../common/errors.js';
import type { Backend } from '../nvmm/backend.js';
import { KvmBackend } from './kvm/kvm-backend.js';

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
    case 'auto':
      // The software CPU is not built yet, so auto means KVM for now.
      return KvmBackend.open();
    case 'soft':
      throw new TsvmmError('TSVMM_UNSUPPORTED', 'the soft backend (the TypeScript x86 CPU) is not built yet; use --accel kvm');
  }
}
