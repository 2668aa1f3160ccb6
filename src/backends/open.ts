/**
 * Choosing a backend by name (the CLI's --accel), and what the VMM may hand to the one chosen:
 * the soft backend's capabilities (tracing, profiling, CPU models, compiler settings) come in
 * here, their data types from nvmm/, so the VMM imports no backend's internals.
 */
import { TsvmmError } from '../common/errors.js';
import type { Backend } from '../nvmm/backend.js';
import type { TraceHook } from '../nvmm/trace.js';
import { KvmBackend } from './kvm/kvm-backend.js';
import { checkKvmRing0 } from './kvm/ring0-check.js';
import { CPU_MODEL_NAMES, isCpuModelName, type CpuModelName } from './soft/cpu-models.js';
import type { JitOptions } from './soft/exec.js';
import { SoftProfiler } from './soft/profile.js';
import { SoftBackend } from './soft/soft-backend.js';

export type Accel = 'kvm' | 'soft' | 'auto';
export const ACCELS: readonly Accel[] = ['kvm', 'soft', 'auto'];
export type { CpuModelName } from './soft/cpu-models.js';
export { CPU_MODEL_NAMES } from './soft/cpu-models.js';
/** The soft backend's profiler (BackendOptions.profile). */
export { SoftProfiler };

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
  /** Samples the boot vCPU's phases and guest RIPs (the soft backend; KVM refuses). */
  profile?: SoftProfiler;
  /**
   * The soft CPU's compiler settings, if the soft backend is the one opened (KVM has none to
   * set; they do not choose soft under `auto`). Unset fields: SoftBackend.open's defaults.
   */
  jit?: JitOptions;
  /** Notes on the choice `auto` made, one line each (why it passed KVM over); the soft backend's notes (its JIT dump). */
  log?: (message: string) => void;
}

export function openBackend(accel: Accel, opts: BackendOptions = {}): Backend {
  if (accel === 'kvm') {
    if (opts.trace) throw new TsvmmError('TSVMM_UNSUPPORTED', 'instruction tracing needs the soft backend (--accel soft)');
    if (opts.profile) throw new TsvmmError('TSVMM_UNSUPPORTED', 'the profiler needs the soft backend (--accel soft)');
    if (opts.cpu) throw new TsvmmError('TSVMM_UNSUPPORTED', 'CPU models are the soft backend\'s (--accel soft); KVM presents the host\'s processor');
  }
  const soft = () => SoftBackend.open({ trace: opts.trace, cpu: opts.cpu, profile: opts.profile, jit: opts.jit, log: opts.log });
  switch (accel) {
    case 'kvm':
      return KvmBackend.open();
    case 'soft':
      return soft();
    case 'auto':
      // Options only the soft backend has choose it.
      return opts.trace || opts.cpu || opts.profile ? soft() : openAuto(soft, opts.log);
  }
}

/**
 * `--accel auto`: KVM where it is usable (/dev/kvm present with every capability the backend
 * needs) and runs guest kernel code natively, else the software CPU, saying why through `log`
 * when KVM was there. `openKvm` and `check` are KVM's (tests give their own).
 */
export function openAuto(
  soft: () => Backend, log?: (message: string) => void,
  openKvm: () => Backend = () => KvmBackend.open(), check: (kvm: Backend) => { native: boolean; why: string } = (kvm) => checkKvmRing0(kvm),
): Backend {
  let kvm: Backend;
  try {
    kvm = openKvm();
  } catch (e) {
    if (e instanceof TsvmmError) return soft();
    throw e;
  }
  let verdict: { native: boolean; why: string };
  try {
    verdict = check(kvm);
  } catch (e) {
    kvm.close?.();
    throw e;
  }
  if (verdict.native) return kvm;
  kvm.close?.();
  log?.(`--accel auto: ${verdict.why}: using the soft CPU (--accel kvm uses KVM anyway)`);
  return soft();
}
