/** Events injected into a vCPU (struct nvmm_vcpu_event) and the rules NVMM applies to them. */
import { TsvmmError } from '../common/errors.js';
import { EXC_BP, EXC_DE, EXC_NMI, exceptionHasErrorCode } from '../x86/exceptions.js';

export type VcpuEvent =
  | { type: 'interrupt'; vector: number }
  | { type: 'nmi' }
  | { type: 'exception'; vector: number; errorCode?: number };

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
      return event.vector === EXC_NMI ? { type: 'nmi' } : event;
    case 'exception': {
      const { vector, errorCode } = event;
      if (!Number.isInteger(vector) || vector < 0 || vector >= 32) {
        throw new TsvmmError('TSVMM_BAD_EVENT', `exception vector ${vector} is outside 0-31`);
      }
      if (vector === EXC_NMI) throw new TsvmmError('TSVMM_BAD_EVENT', 'exception vector 2 is the NMI: inject { type: "nmi" }');
      if (vector === EXC_DE || vector === EXC_BP) {
        throw new TsvmmError('TSVMM_BAD_EVENT', `exception ${vector} (${vector === EXC_DE ? '#DE' : '#BP'}) cannot be injected (NVMM refuses it too)`);
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
