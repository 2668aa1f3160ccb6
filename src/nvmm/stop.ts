/** Stopping a vCPU from any thread (nvmm_vcpu_stop), through its StopHandle. */
import * as libc from '../common/libc.js';
import { HostMemory } from '../memory/host-memory.js';
import type { StopHandle } from './backend.js';

/** kvm_run.immediate_exit: KVM_RUN returns EINTR at once while it is set. */
const IMMEDIATE_EXIT_OFFSET = 1;

export function stopVcpu(handle: StopHandle): void {
  // The flag first: a run loop that sees immediate_exit or the kick checks the flag after.
  Atomics.store(new Int32Array(handle.flag), 0, 1);
  if (handle.kick) {
    const { runAddress, pid, tid } = handle.kick;
    HostMemory.attach(runAddress, 4096).bytes[IMMEDIATE_EXIT_OFFSET] = 1;
    libc.tgkill(pid, tid, libc.KICK_SIGNAL);
  }
}
