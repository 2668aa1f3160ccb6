/** Events injected into a vCPU (struct nvmm_vcpu_event) and the rules NVMM applies to them. */
import { TsvmmError } from '../common/errors.js';

export type VcpuEvent =
  | { type: 'interrupt'; vector: number }
  | { type: 'nmi' }
  | { type: 'exception'; vector: number; errorCode?: number };

/** Exceptions that push an error code (#DF #TS #NP #SS #GP #PF #AC #CP #SX). */
const ERROR_CODE_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17, 21, 30]);

export function exceptionHasErrorCode(vector: number): boolean {
  return ERROR_CODE_VECTORS.has(vector);
}

/**
 * Applies NVMM's rules (nvmm_x86_svm.c / _vmx.c, vcpu_inject): a vector outside 0-255 is refused;
 * an exception must be below 32 and must not be 2 (the NMI: inject `{ type: 'nmi' }`), 0 (#DE) or
 * 3 (#BP), which NVMM refuses because only the instructions that raise them can deliver them
 * correctly; an interrupt with vector 2 is an NMI, as in NVMM. Stricter than NVMM: an error code
 * given for an exception that has none is refused rather than ignored. An exception that needs an
 * error code gets 0 when none is given.
 */
export function validateEvent(event: VcpuEvent): VcpuEvent {
  switch (event.type) {
    case 'nmi':
      return event;
    case 'interrupt':
      if (!Number.isInteger(event.vector) || event.vector < 0 || event.vector > 255) {
        throw new TsvmmError('TSVMM_BAD_EVENT', `interrupt vector ${event.vector} is outside 0-255`);
      }
      return event.vector === 2 ? { type: 'nmi' } : event;
    case 'exception': {
      const { vector, errorCode } = event;
      if (!Number.isInteger(vector) || vector < 0 || vector >= 32) {
        throw new TsvmmError('TSVMM_BAD_EVENT', `exception vector ${vector} is outside 0-31`);
      }
      if (vector === 2) throw new TsvmmError('TSVMM_BAD_EVENT', 'exception vector 2 is the NMI: inject { type: "nmi" }');
      if (vector === 0 || vector === 3) {
        throw new TsvmmError('TSVMM_BAD_EVENT', `exception ${vector} (${vector === 0 ? '#DE' : '#BP'}) cannot be injected (NVMM refuses it too)`);
      }
      if (errorCode !== undefined && !exceptionHasErrorCode(vector)) {
        throw new TsvmmError('TSVMM_BAD_EVENT', `exception ${vector} takes no error code (got ${errorCode})`);
      }
      if (errorCode !== undefined && (!Number.isInteger(errorCode) || errorCode < 0 || errorCode > 0xffffffff)) {
        throw new TsvmmError('TSVMM_BAD_EVENT', `error code ${errorCode} is not a 32-bit value`);
      }
      return exceptionHasErrorCode(vector) ? { type: 'exception', vector, errorCode: errorCode ?? 0 } : { type: 'exception', vector };
    }
  }
}
